"""``jrule graph``: state-machine drawings from the IR (rules_dsl.graph).

Golden files: every ``tests/fixtures/graph/NAME.jrule`` has ``NAME.mmd`` and
``NAME.dot`` next to it, the drawing of all its contracts.  The tests only
compare; when the drawing changes on purpose, write the new files by hand (or
with ``jrule graph NAME.jrule --format mermaid -o NAME.mmd`` and ``--format
dot -o NAME.dot``) and review the diff.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rules_dsl.cli import main
from rules_dsl.compiler import compile_path
from rules_dsl.graph import (
    Edge,
    contract_edges,
    expr_text,
    period_text,
    state_ids,
    state_label,
    timing_text,
    to_dot,
    to_dot_all,
    to_mermaid,
    to_mermaid_all,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "graph"
EXAMPLES = ROOT / "examples"
SOURCES = sorted(FIXTURES.glob("*.jrule"))
APPROVAL_HEAD = re.compile(r"^(approved by|rejected by|timeout of approval by) ")


def _contracts(path: Path) -> list[Any]:
    result = compile_path(path)
    assert result.ir is not None, [d.message for d in result.check.diagnostics]
    contracts: list[Any] = result.ir.to_data()["contracts"]
    return contracts


def _contract(path: Path, name: str | None = None) -> Any:
    contracts = _contracts(path)
    if name is None:
        assert len(contracts) == 1
        return contracts[0]
    return next(c for c in contracts if c["name"] == name)


def _edges(contract: Any) -> list[tuple[str, str, str]]:
    return [(e.source, e.target, e.label) for e in contract_edges(contract)]


# --- golden files ------------------------------------------------------------------


def test_there_are_fixtures() -> None:
    assert len(SOURCES) >= 4


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_mermaid_matches_golden_file(source: Path) -> None:
    expected = source.with_suffix(".mmd").read_bytes().decode("utf-8")
    assert to_mermaid_all(_contracts(source)) == expected


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_dot_matches_golden_file(source: Path) -> None:
    expected = source.with_suffix(".dot").read_bytes().decode("utf-8")
    assert to_dot_all(_contracts(source)) == expected


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_cli_output_is_the_golden_file(source: Path, capsysbinary: pytest.CaptureFixture[bytes],
                                       ) -> None:
    for fmt, suffix in (("mermaid", ".mmd"), ("dot", ".dot")):
        assert main(["graph", str(source), "--format", fmt]) == 0
        assert capsysbinary.readouterr().out == source.with_suffix(suffix).read_bytes()


# --- structure ----------------------------------------------------------------------


def _walk_gotos(body: list[Any], in_approval: bool = False) -> Iterator[tuple[str, bool]]:
    """(target, inside an approval branch) for every goto in a body."""
    for stmt in body:
        if stmt["stmt"] == "goto":
            yield stmt["state"], in_approval
        elif stmt["stmt"] == "if":
            for branch in stmt["branches"]:
                yield from _walk_gotos(branch["body"], in_approval)
            yield from _walk_gotos(stmt["otherwise"] or [], in_approval)
        elif stmt["stmt"] == "do" and stmt["approval"] is not None:
            for key in ("on_approved", "on_rejected", "on_timeout"):
                yield from _walk_gotos(stmt["approval"][key], True)


def _head(rule: Any, is_deadline: bool) -> str:
    return f"⏰ {rule['name']} " if is_deadline else f"{rule['event']}"


def _rules(contract: Any) -> Iterator[tuple[Any, bool]]:
    for t in contract["transitions"]:
        yield t, False
    for d in contract["deadlines"]:
        yield d, True


def _check_structure(contract: Any) -> None:
    edges = contract_edges(contract)
    ids = state_ids(contract)
    names = [s["name"] for s in contract["states"]]
    mermaid, dot = to_mermaid(contract), to_dot(contract)

    # every state is drawn, with its label, under its own id
    assert list(ids) == names
    for state in contract["states"]:
        sid = ids[state["name"]]
        assert re.search(rf'^    state ".*" as {sid}$', mermaid, re.M)
        assert re.search(rf"^  {sid} \[label=", dot, re.M)
        assert state["name"] in state_label(state)
    # ids are safe whatever the state names are
    assert all(re.fullmatch(r"s\d+", sid) for sid in ids.values())

    # the start and end markers
    initial = [s["name"] for s in contract["states"] if s["initial"]]
    assert initial == [contract["initial_state"]]
    assert mermaid.count("[*] -->") == 1
    assert f"    [*] --> {ids[initial[0]]}\n" in mermaid
    for state in contract["states"]:
        sid = ids[state["name"]]
        assert (f"    {sid} --> [*]\n" in mermaid) == state["terminal"]
        line = next(ln for ln in dot.splitlines() if ln.startswith(f"  {sid} ["))
        assert ("doublecircle" in line) == state["terminal"]
        assert ("bold" in line) == state["initial"]

    # no edge twice; every edge is drawn in both formats
    assert len(set(edges)) == len(edges)
    mermaid_edges = [ln for ln in mermaid.splitlines() if " --> " in ln and "[*]" not in ln]
    dot_edges = [ln for ln in dot.splitlines() if " -> " in ln and "start ->" not in ln]
    assert len(mermaid_edges) == len(dot_edges) == len(edges)

    # every goto of a rule's own body gives exactly one edge per state it runs in
    want: Counter[tuple[str, str, str]] = Counter()
    for rule, is_deadline in _rules(contract):
        for target, in_approval in _walk_gotos(rule["body"]):
            if not in_approval:
                for source in rule["states"]:
                    want[(source, target, _head(rule, is_deadline))] += 1
    got: Counter[tuple[str, str, str]] = Counter()
    for edge in edges:
        if edge.stays or APPROVAL_HEAD.match(edge.label):
            continue
        head = edge.label.split(" [")[0].split(" / ")[0]
        if head.startswith("⏰ "):
            head = " ".join(head.split(" ")[:2]) + " "
        got[(edge.source, edge.target, head)] += 1
    assert got == want

    # every goto inside an approval branch gives at least one edge to its target
    approval_targets = {
        target
        for rule, _ in _rules(contract)
        for target, in_approval in _walk_gotos(rule["body"])
        if in_approval
    }
    drawn = {e.target for e in edges if APPROVAL_HEAD.match(e.label) and not e.stays}
    assert approval_targets == drawn

    # self-loops marked "(stays)" are exactly the stays edges, and do something
    for edge in edges:
        assert edge.label.endswith(" (stays)") == edge.stays
        if edge.stays:
            assert edge.source == edge.target and " / " in edge.label

    # guards are in the labels of the edges their transitions draw
    for t in contract["transitions"]:
        if t["guard"] is not None:
            prefix = f"{t['event']} [{expr_text(t['guard'])}]"
            if any(True for _ in _walk_gotos(t["body"])):
                assert any(e.label.startswith(prefix) for e in edges), prefix

    # every state but the initial one is entered by some edge
    entered = {e.target for e in edges if e.source != e.target or not e.stays}
    for name in names:
        if name != contract["initial_state"]:
            assert name in entered, name


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_structure_of_fixtures(source: Path) -> None:
    for contract in _contracts(source):
        _check_structure(contract)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_deterministic(source: Path) -> None:
    first = [(to_mermaid(c), to_dot(c)) for c in _contracts(source)]
    second = [(to_mermaid(c), to_dot(c)) for c in _contracts(source)]
    assert first == second
    # keys in another order make no difference either
    for contract, (mermaid, dot) in zip(_contracts(source), first, strict=True):
        shuffled = dict(reversed(list(contract.items())))
        assert (to_mermaid(shuffled), to_dot(shuffled)) == (mermaid, dot)


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.jrule"))


def test_every_example_that_compiles_is_fully_drawn() -> None:
    drawn = 0
    for path in _examples():
        result = compile_path(path)
        if result.ir is None:
            continue
        for contract in result.ir.to_data()["contracts"]:
            _check_structure(contract)
            assert to_mermaid(contract) == to_mermaid(contract)
            drawn += 1
    if drawn == 0:
        pytest.skip("no example in examples/ compiles (yet)")


# --- what the edges say ---------------------------------------------------------------


def test_branches_split_on_gotos_and_merge_what_falls_through() -> None:
    edges = _edges(_contract(FIXTURES / "branches.jrule"))
    assert ("open", "paid_off", "payment [paid >= owed]") in edges
    # the else-if and the else both carry on: one path, their actions optional
    assert ("open", "open", "payment [not (paid >= owed)] / notify?, remind? (stays)") in edges
    # nested ifs add one condition each; a rule in two states draws both
    for state in ("open", "paused"):
        assert (state, "enforced", "check [confirmed] [paid == ¥0.00] / notify") in edges
        assert (state, "enforced", "check [confirmed] [not (paid == ¥0.00)] / notify") in edges
        assert (state, "sued", "check [else if paid < owed and reminders > 2]") in edges
    # the first and last branches carry on: "a or (not a and not b)" is "a or not b"
    assert ("open", "enforced", "pause [else if confirmed]") in edges
    assert ("open", "paused",
            "pause [reminders > 5 or not confirmed] / notify, suspend expiry") in edges
    assert ("paused", "open", "unpause / resume expiry") in edges
    # a deadline without goto that acts is a self-loop; one that only sets is not drawn
    assert ("open", "open", "⏰ nudge (every 1 month after entering for 1 year) / remind? "
            "(stays)") in edges
    assert not any("quiet" in label for _, _, label in edges)
    assert ("open", "enforced", "⏰ expiry (by due) [confirmed] / file_enforcement_case") in edges
    assert ("open", "sued", "⏰ expiry (by due) [not confirmed] / file_trial_case") in edges


def test_written_else_is_labelled_else() -> None:
    edges = _edges(_contract(ROOT / "tests" / "fixtures" / "graph" / "all_constructs.jrule"))
    assert edges == [
        ("performing", "done", "payment [payment.amount > ¥0.00] [paid >= amount]"),
        ("performing", "performing", "payment [payment.amount > ¥0.00] [not (paid >= amount)] "
         "/ notify?, suspend d?, freeze✔申请人 (stays)"),
        ("performing", "done", "timeout of approval by 申请人 (payment → freeze)"),
        ("performing", "done", "⏰ d (by plan[0].due)"),
    ]


def test_approval_branches_start_where_the_rule_left_the_contract() -> None:
    edges = _edges(_contract(FIXTURES / "approvals.jrule"))
    assert edges == [
        ("searching", "waiting", "found / freeze✔judge"),
        ("waiting", "frozen_state", "approved by judge (found → freeze)"),
        ("waiting", "searching", "rejected by judge (found → freeze) / notify"),
        ("waiting", "frozen_state",
         "timeout of approval by judge (found → freeze) [frozen > ¥0.00]"),
        ("waiting", "lapsed",
         "timeout of approval by judge (found → freeze) [not (frozen > ¥0.00)] / notify"),
        ("waiting", "waiting", "found / deduct✔judge (stays)"),
        ("waiting", "waiting", "approved by judge (found → deduct) / notify (stays)"),
        ("searching", "lapsed", "gone"),
        ("waiting", "lapsed", "gone"),
    ]


def test_rules_without_in_apply_in_every_non_terminal_state() -> None:
    first = _contract(FIXTURES / "two_contracts.jrule", "first")
    assert [e for e in _edges(first) if e[1] == "end_"] == [
        ("a", "end_", "stop / notify"),
        ("b", "end_", "stop / notify"),
    ]


def test_edges_are_plain_values() -> None:
    edge = contract_edges(_contract(FIXTURES / "approvals.jrule"))[0]
    assert edge == Edge("searching", "waiting", "found / freeze✔judge")
    assert not edge.stays


# --- expressions and timings -------------------------------------------------------------


def _lit(type_: str, value: Any) -> dict[str, Any]:
    return {"expr": "literal", "type": type_, "value": value}


def _var(name: str) -> dict[str, Any]:
    return {"expr": "var", "name": name}


def _bin(op: str, left: Any, right: Any) -> dict[str, Any]:
    return {"expr": "binary", "op": op, "left": left, "right": right}


def _un(op: str, operand: Any) -> dict[str, Any]:
    return {"expr": "unary", "op": op, "operand": operand}


A, B, C = _var("a"), _var("b"), _var("c")


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        (_lit("Int", 3), "3"),
        (_lit("Decimal", "0.000175"), "0.000175"),
        (_lit("Money", "12.50"), "¥12.50"),
        (_lit("Date", "2025-01-31"), "2025-01-31"),
        (_lit("DateTime", "2025-01-31T09:00:00+08:00"), "2025-01-31T09:00:00+08:00"),
        (_lit("Bool", True), "true"),
        (_lit("Bool", False), "false"),
        (_lit("Text", 'say "hi"\\\n\tnow'), r'"say \"hi\"\\\n\tnow"'),
        (_lit("Text", "\x01"), r'"\u0001"'),
        ({"expr": "term", "name": "金额"}, "金额"),
        ({"expr": "role", "name": "申请人"}, "申请人"),
        ({"expr": "event_date", "event": "payment"}, "payment"),
        ({"expr": "payload", "event": "payment", "field": "amount"}, "payment.amount"),
        ({"expr": "last_payload", "event": "served", "field": "on"}, "served.on"),
        ({"expr": "enum", "enum": "Kind", "value": "a"}, "Kind.a"),
        ({"expr": "today"}, "today"),
        ({"expr": "now"}, "now"),
        ({"expr": "entering"}, "entering"),
        ({"expr": "call", "function": "round",
          "args": [_bin("*", A, B), {"expr": "rounding", "mode": "half_up"}]},
         "round(a * b, half_up)"),
        ({"expr": "list", "items": [A, _lit("Int", 1)]}, "[a, 1]"),
        ({"expr": "list", "items": []}, "[]"),
        ({"expr": "field", "of": {"expr": "index", "of": A, "index": _lit("Int", 0)},
          "field": "due"}, "a[0].due"),
        ({"expr": "field", "of": _bin("+", A, B), "field": "x"}, "(a + b).x"),
        (_bin("+", _bin("+", A, B), C), "a + b + c"),
        (_bin("+", A, _bin("+", B, C)), "a + (b + c)"),
        (_bin("-", A, _bin("-", B, C)), "a - (b - c)"),
        (_bin("*", _bin("+", A, B), C), "(a + b) * c"),
        (_bin("+", A, _bin("*", B, C)), "a + b * c"),
        (_bin("/", A, _bin("*", B, C)), "a / (b * c)"),
        (_bin("<", _bin("+", A, B), C), "a + b < c"),
        (_bin("==", _bin("<", A, B), C), "(a < b) == c"),
        (_bin("==", A, _bin("<", B, C)), "a == (b < c)"),
        (_bin("and", _bin("or", A, B), C), "(a or b) and c"),
        (_bin("or", _bin("and", A, B), C), "a and b or c"),
        (_bin("or", A, _bin("and", B, C)), "a or b and c"),
        (_bin("and", A, _bin("and", B, C)), "a and (b and c)"),
        (_bin("and", _un("not", A), _un("not", _bin(">=", B, C))), "not a and not (b >= c)"),
        (_un("not", _un("not", A)), "not (not a)"),
        (_bin("==", _un("not", A), B), "(not a) == b"),
        (_un("-", A), "-a"),
        (_un("-", _un("-", A)), "-(-a)"),
        (_un("-", _bin("-", A, B)), "-(a - b)"),
        (_un("-", {"expr": "payload", "event": "p", "field": "x"}), "-p.x"),
        (_bin("*", _un("-", A), B), "-a * b"),
        (_bin("<", _un("-", A), _un("-", B)), "-a < -b"),
        ({"expr": "mystery"}, "?"),
        (None, "?"),
    ],
)
def test_expr_text(expr: Any, text: str) -> None:
    assert expr_text(expr) == text


def _period(amount: Any, unit: str) -> dict[str, Any]:
    return {"amount": amount, "unit": unit}


def test_timing_text() -> None:
    served = {"expr": "last_payload", "event": "served", "field": "on"}
    assert timing_text({"kind": "after", "period": _period(_lit("Int", 15), "days"),
                        "anchor": {"expr": "term", "name": "served_on"}}) == (
        "15 days after served_on")
    assert timing_text({"kind": "by", "date": {"expr": "term", "name": "due_date"}}) == (
        "by due_date")
    assert timing_text({"kind": "every", "period": _period(_lit("Int", 6), "months"),
                        "anchor": {"expr": "entering"},
                        "limit": _period(_lit("Int", 5), "years")}) == (
        "every 6 months after entering for 5 years")
    assert timing_text({"kind": "every", "period": _period(_lit("Int", 1), "months"),
                        "anchor": served, "limit": None}) == "every 1 month after served.on"
    assert timing_text({"kind": "before", "period": _period(_lit("Int", 3), "working_days"),
                        "anchor": _lit("Date", "2025-01-01")}) == (
        "3 working days before 2025-01-01")
    assert timing_text({"kind": "nonsense"}) == "?"
    assert period_text(_period(_lit("Int", 1), "working_days")) == "1 working day"
    assert period_text(_period(_lit("Int", 1), "years")) == "1 year"
    assert period_text(_period({"expr": "term", "name": "grace"}, "days")) == "grace days"


def test_timings_of_compiled_deadlines() -> None:
    contract = _contract(FIXTURES / "expressions.jrule")
    assert {d["name"]: timing_text(d["timing"]) for d in contract["deadlines"]} == {
        "by_first": "by first(plan).due",
        "before_due": "1 working day before plan[0].due",
        "after_pay": "grace days after pay.on_date",
        "after_event": "2 months after pay",
        "yearly": "every 1 year after 2024-01-01",
        "monthly": "every 3 months after entering for 2 years",
    }


def test_guards_of_compiled_transitions() -> None:
    contract = _contract(FIXTURES / "expressions.jrule")
    assert [expr_text(t["guard"]) for t in contract["transitions"]] == [
        "(pay.amount + paid) * 2 >= owed - ¥1.50 and not (stage == Stage.early or count_ > 3)",
        "-(count_ - 1) < -grace and pay.on_date <= 2025-01-31",
        "count_ - (1 - grace) == count(plan) and rate * 2.50 > 1.0",
        'note.text == "x: y; z" and date(signed_at) < today',
    ]


# --- escaping ------------------------------------------------------------------------------


def test_mermaid_escapes_what_would_break_it() -> None:
    mermaid = to_mermaid(_contract(FIXTURES / "expressions.jrule"))
    line = next(ln for ln in mermaid.splitlines() if ln.endswith(" as s0"))
    # the quote, the statement end, the colon, the hash, the ampersand and a
    # tag-like "<" are entity codes; the rest is as written
    assert line == ('    state "open#59; #quot;quoted#quot; #lt;b>bold#lt;/b> a#58;b #35;x '
                    '#amp; \\ back (open)" as s0')
    assert '[note.text == "x#58; y#59; z" and' in mermaid
    assert "-grace and pay.on_date <= 2025-01-31" in mermaid
    for ln in mermaid.splitlines():
        assert ";" not in re.sub(r"#\w+;", "", ln)


def test_dot_escapes_quotes_and_backslashes() -> None:
    dot = to_dot(_contract(FIXTURES / "expressions.jrule"))
    assert ('s0 [label="open; \\"quoted\\" <b>bold</b> a:b #x & \\\\ back (open)", '
            'style="rounded,bold"];') in dot
    assert 'label="表达式 \\"Expressions\\"; a:b <tag> & #1 (expressions) v0.1.0"' in dot
    assert '[label="note [note.text == \\"x: y; z\\" and date(signed_at) < today] / notify"]' in dot


def test_titles_with_newlines() -> None:
    contract = {
        "name": "c", "title": "line one\nline two", "version": "1",
        "states": [{"name": "s", "title": "a\nb", "initial": True, "terminal": False}],
        "transitions": [], "deadlines": [],
    }
    assert 'state "a b (s)" as s0' in to_mermaid(contract)
    dot = to_dot(contract)
    assert 'label="a\\nb (s)"' in dot and 'label="line one\\nline two (c) v1"' in dot


def test_several_contracts() -> None:
    contracts = _contracts(FIXTURES / "two_contracts.jrule")
    mermaid = to_mermaid_all(contracts)
    assert mermaid == (f"%% contract first\n{to_mermaid(contracts[0])}\n"
                       f"%% contract second\n{to_mermaid(contracts[1])}")
    assert mermaid.count("stateDiagram-v2") == 2
    dot = to_dot_all(contracts)
    assert dot.count("digraph") == 1 and dot.count("subgraph cluster_") == 2
    assert "c0_s0" in dot and "c1_s0" in dot
    # one contract is drawn on its own
    assert to_mermaid_all(contracts[:1]) == to_mermaid(contracts[0])
    assert to_dot_all(contracts[:1]) == to_dot(contracts[0])


# --- the command ------------------------------------------------------------------------------


def test_cli_defaults_to_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(FIXTURES / "approvals.jrule")]) == 0
    assert capsys.readouterr().out == (FIXTURES / "approvals.mmd").read_text("utf-8")


def test_cli_contract_option(capsys: pytest.CaptureFixture[str]) -> None:
    source = str(FIXTURES / "two_contracts.jrule")
    assert main(["graph", source, "--contract", "second", "--format", "mermaid"]) == 0
    out = capsys.readouterr().out
    assert out == to_mermaid(_contract(FIXTURES / "two_contracts.jrule", "second"))
    assert "%% contract" not in out
    assert main(["graph", source, "--contract", "first", "--format", "dot"]) == 0
    assert capsys.readouterr().out == to_dot(_contract(FIXTURES / "two_contracts.jrule", "first"))


def test_cli_unknown_contract(capsys: pytest.CaptureFixture[str]) -> None:
    source = str(FIXTURES / "two_contracts.jrule")
    assert main(["graph", source, "--contract", "third"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no contract named `third`" in captured.err
    assert "available: first, second" in captured.err
    assert "Traceback" not in captured.err


def test_cli_writes_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "drawing.dot"
    assert main(["graph", str(FIXTURES / "branches.jrule"), "-o", str(out)]) == 0
    # the format follows the suffix when --format is not given
    assert out.read_bytes() == (FIXTURES / "branches.dot").read_bytes()
    out = tmp_path / "drawing.txt"
    assert main(["graph", str(FIXTURES / "branches.jrule"), "-o", str(out)]) == 0
    assert out.read_bytes() == (FIXTURES / "branches.mmd").read_bytes()
    assert capsys.readouterr().out == ""


def test_cli_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "drawing.mmd"
    assert main(["graph", str(FIXTURES / "branches.jrule"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("jrule graph: error: cannot write ") and "Traceback" not in err


def test_cli_compile_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jrule"
    bad.write_text('contract c "C" version "1" {\n  state a initial\n  goto nowhere\n}\n',
                   "utf-8")
    assert main(["graph", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error[" in captured.err and "bad.jrule:3" in captured.err
    assert "Traceback" not in captured.err


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(tmp_path / "nope.jrule")]) == 1
    captured = capsys.readouterr()
    assert "cannot read" in captured.err and "Traceback" not in captured.err


def test_cli_svg_without_graphviz(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    assert main(["graph", str(FIXTURES / "branches.jrule"), "--format", "svg"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "jrule graph: error: --format svg needs Graphviz (the `dot` program); install it "
        "(apt-get install graphviz) or use --format dot\n"
    )


def test_cli_svg_with_graphviz(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz (dot) is not installed")
    assert main(["graph", str(FIXTURES / "two_contracts.jrule"), "--format", "svg"]) == 0
    svg = capsysbinary.readouterr().out
    assert b"<svg" in svg and svg.rstrip().endswith(b"</svg>")
    assert "第一 First".encode() in svg
    out = tmp_path / "a.svg"
    assert main(["graph", str(FIXTURES / "expressions.jrule"), "-o", str(out)]) == 0
    text = out.read_text("utf-8")
    assert "<svg" in text and "&quot;quoted&quot; &lt;b&gt;bold&lt;/b&gt;" in text


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_graphviz_accepts_the_dot(source: Path, tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz (dot) is not installed")
    import subprocess

    done = subprocess.run(["dot", "-Tcanon"], input=source.with_suffix(".dot").read_bytes(),
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
