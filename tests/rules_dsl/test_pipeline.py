"""The compiler pipeline end to end: syntax errors, IR content, the CLI."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_dsl import ast
from rules_dsl.check_structure import guards_disjoint
from rules_dsl.cli import main
from rules_dsl.compiler import check_bytes, compile_bytes
from rules_dsl.syntax import parse_source

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "fixtures" / "check" / "good"

HEADER = """contract c "Test" version "1.0.0" {
  role applicant
  role respondent
  state open initial
  state closed terminal
  event pay by respondent { amount: Money }
"""


def _codes(text: str) -> list[tuple[str, int, int]]:
    result = check_bytes(text.encode(), "t.jrule")
    return [(d.code, d.span.line, d.span.column) for d in result.diagnostics]


def test_syntax_error_points_at_the_token() -> None:
    text = HEADER + "  on pay { goto }\n}\n"
    assert _codes(text) == [("E001", 8, 1)] or _codes(text)[0][:2] == ("E001", 7)
    result = check_bytes(text.encode(), "t.jrule")
    assert "expected a name" in result.diagnostics[0].message


def test_missing_closing_brace_hint() -> None:
    result = check_bytes((HEADER + "  on pay { goto closed }\n").encode(), "t.jrule")
    (d,) = result.diagnostics
    assert d.code == "E001"
    assert d.hint is not None and "}" in d.hint


def test_header_clauses_in_any_order_mean_the_same() -> None:
    a = HEADER + '  on pay in open when pay.amount > ¥0.00 priority 1 cite "x" { goto closed }\n}\n'
    b = HEADER + '  on pay cite "x" priority 1 when pay.amount > ¥0.00 in open { goto closed }\n}\n'
    sa, _ = parse_source(a, "t.jrule")
    sb, _ = parse_source(b, "t.jrule")
    assert sa == sb


def test_repeated_header_clause_is_an_error() -> None:
    text = HEADER + "  on pay priority 1 priority 2 { goto closed }\n}\n"
    assert [c for c, _, _ in _codes(text)] == ["E001"]


def test_unicode_identifiers_and_titles() -> None:
    text = (GOOD / "mediation_minimal.jrule").read_bytes()
    result = compile_bytes(text, "mediation_minimal.jrule")
    assert result.ir is not None
    data = result.ir.to_data()
    contract = data["contracts"][0]
    assert contract["name"] == "调解协议"
    assert [s["name"] for s in contract["states"]][:2] == ["履行中", "已履行"]
    assert "调解协议".encode() in result.ir.canonical  # UTF-8, not \\u escapes


def test_ir_records_source_hash_compiler_and_catalogue() -> None:
    text = (GOOD / "mediation_minimal.jrule").read_bytes()
    result = compile_bytes(text, "mediation_minimal.jrule")
    assert result.ir is not None
    data = result.ir.to_data()
    assert data["format"] == "jrule-ir/1"
    assert data["source"]["sha256"] == hashlib.sha256(text).hexdigest()
    assert data["compiler"]["name"] == "jrule"
    assert len(data["catalogue"]) == 64
    assert result.ir.id == hashlib.sha256(result.ir.canonical).hexdigest()


def test_contract_id_is_hash_of_contract_without_id() -> None:
    from rules_dsl.to_ir import canonical_json

    result = compile_bytes((GOOD / "all_constructs.jrule").read_bytes(), "a.jrule")
    assert result.ir is not None
    (contract,) = result.ir.to_data()["contracts"]
    cid = contract.pop("id")
    assert cid == hashlib.sha256(canonical_json(contract)).hexdigest()


def test_ir_resolves_names_and_types() -> None:
    result = compile_bytes((GOOD / "mediation_minimal.jrule").read_bytes(), "m.jrule")
    assert result.ir is not None
    contract = result.ir.to_data()["contracts"][0]
    (transition,) = contract["transitions"]
    assert transition["states"] == ["履行中"]
    guard = transition["guard"]
    assert guard["expr"] == "binary" and guard["type"] == "Bool"
    assert guard["left"] == {**guard["left"], "expr": "payload", "event": "付款", "type": "Money"}
    deadline = contract["deadlines"][1]
    assert deadline["timing"]["kind"] == "by"
    assert deadline["timing"]["date"]["expr"] == "term"
    branch = deadline["body"][0]["branches"][0]
    assert [s["stmt"] for s in branch["body"]] == ["do", "goto"]
    do = branch["body"][0]
    assert do["action"] == "file_enforcement_case"
    assert [a["name"] for a in do["args"]] == ["applicant", "respondent", "amount", "basis"]
    # the Chinese alias resolves to the canonical action name
    assert deadline["body"][0]["otherwise"][0]["action"] == "file_trial_case"


def _without_positions(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_positions(v) for k, v in value.items() if k not in ("span", "id")}
    if isinstance(value, list):
        return [_without_positions(v) for v in value]
    return value


def test_a_comment_moves_spans_but_not_meaning() -> None:
    text = (GOOD / "mediation_minimal.jrule").read_text(encoding="utf-8")
    a = compile_bytes(text.encode(), "m.jrule").ir
    b = compile_bytes(("# another comment\n" + text).encode(), "m.jrule").ir
    assert a is not None and b is not None
    assert a.id != b.id  # the source hash and spans differ
    ca, cb = a.to_data()["contracts"][0], b.to_data()["contracts"][0]
    assert ca["id"] != cb["id"]
    assert _without_positions(ca) == _without_positions(cb)


# --- guard disjointness is sound --------------------------------------------------

_S = ast.Span("t.jrule", 1, 1, 1, 1)
_X, _Y, _B = ast.NameRef("x", _S), ast.NameRef("y", _S), ast.NameRef("b", _S)
_ATOMS: list[ast.Expr] = [
    _B,
    ast.UnaryOp("not", _B, _S),
    *[ast.BinaryOp(op, _X, _Y, _S) for op in ("<", "<=", "==", "!=", ">", ">=")],
    *[ast.BinaryOp(op, _Y, _X, _S) for op in ("<", ">=")],
    *[ast.BinaryOp("==", _X, ast.IntLit(i, _S), _S) for i in (0, 1, 2)],
    ast.BinaryOp(">", _X, ast.IntLit(1, _S), _S),
]


def _conj(atoms: list[ast.Expr]) -> ast.Expr:
    expr = atoms[0]
    for a in atoms[1:]:
        expr = ast.BinaryOp("and", expr, a, _S)
    return expr


def _eval(e: ast.Expr, env: dict[str, object]) -> object:
    match e:
        case ast.NameRef(name=n):
            return env[n]
        case ast.IntLit(value=v):
            return v
        case ast.UnaryOp(op="not", operand=o):
            return not _eval(o, env)
        case ast.BinaryOp(op="and", left=left, right=right):
            return _eval(left, env) and _eval(right, env)
        case ast.BinaryOp(op=op, left=left, right=right):
            a, b = _eval(left, env), _eval(right, env)
            return {"<": a < b, "<=": a <= b, "==": a == b, "!=": a != b,  # type: ignore[operator]
                    ">": a > b, ">=": a >= b}[op]  # type: ignore[operator]
    raise AssertionError(e)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=3),
    st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=3),
)
def test_guards_called_disjoint_never_both_hold(a: list[ast.Expr], b: list[ast.Expr]) -> None:
    g1, g2 = _conj(a), _conj(b)
    if not guards_disjoint(g1, g2):
        return
    for x, y, flag in itertools.product(range(-1, 4), range(-1, 4), (True, False)):
        env = {"x": x, "y": y, "b": flag}
        assert not (_eval(g1, env) and _eval(g2, env)), (g1, g2, env)


def test_exclusive_guards_are_recognised() -> None:
    assert guards_disjoint(_B, ast.UnaryOp("not", _B, _S))
    assert guards_disjoint(ast.BinaryOp(">=", _X, _Y, _S), ast.BinaryOp("<", _X, _Y, _S))
    assert guards_disjoint(ast.BinaryOp("==", _X, ast.IntLit(1, _S), _S),
                           ast.BinaryOp("==", _X, ast.IntLit(2, _S), _S))
    assert not guards_disjoint(_B, ast.BinaryOp("<", _X, _Y, _S))
    assert not guards_disjoint(None, _B)


# --- the CLI ---------------------------------------------------------------------


def test_cli_check_ok_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = GOOD / "mediation_minimal.jrule"
    assert main(["check", str(good)]) == 0
    bad = tmp_path / "bad.jrule"
    bad.write_text(HEADER + "  on pay when pay.amount > 0 { goto closed }\n}\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["check", "--format", "json", str(bad), str(good)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in report] == [False, True]
    assert report[0]["diagnostics"][0]["code"] == "E202"
    assert report[0]["diagnostics"][0]["line"] == 7


def test_cli_check_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/no/such/file.jrule"]) == 1
    out = capsys.readouterr().out
    assert "E004" in out and "Traceback" not in out


def test_cli_compile_writes_canonical_ir(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "ir.json"
    assert main(["compile", str(GOOD / "mediation_minimal.jrule"), "-o", str(out)]) == 0
    data = out.read_bytes()
    err = capsys.readouterr().err
    assert f"ir sha256:{hashlib.sha256(data).hexdigest()}" in err
    assert json.loads(data)["format"] == "jrule-ir/1"


def test_cli_compile_refuses_bad_source(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jrule"
    bad.write_text(HEADER + "  on pay { goto nowhere }\n}\n", encoding="utf-8")
    out = tmp_path / "ir.json"
    assert main(["compile", str(bad), "-o", str(out)]) == 1
    assert not out.exists()
    assert "E106" in capsys.readouterr().err
