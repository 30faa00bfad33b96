"""``jrule fmt``: canonical layout, round trip, idempotence, comments, CLI.

Most cases are data: ``tests/fixtures/fmt/NAME.jrule`` must format to
``NAME.expected.jrule``.  Set JRULE_UPDATE_FIXTURES=1 to rewrite the expected
files (then review the diff).  Every other ``.jrule`` file in the repository
that parses is checked for the formatter's guarantees, and random trees from
``strategies`` check them too.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import KEYWORDS, PATH, source_files

from rules_dsl import ast, fmt
from rules_dsl.cli import main
from rules_dsl.diagnostics import has_errors
from rules_dsl.fmt import MAX_WIDTH, format_source, format_text
from rules_dsl.syntax import parse_source

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "fmt"
UPDATE = os.environ.get("JRULE_UPDATE_FIXTURES") == "1"

INPUTS = sorted(p for p in FIXTURES.glob("*.jrule") if not p.name.endswith(".expected.jrule"))


def _expected_path(path: Path) -> Path:
    return path.with_name(path.stem + ".expected.jrule")


def _parse(text: str, path: str = "t.jrule") -> ast.SourceFile:
    source, diagnostics = parse_source(text, path)
    assert source is not None and not has_errors(diagnostics), diagnostics
    return source


def _comments(source: ast.SourceFile) -> list[str]:
    return sorted(c.text.rstrip() for c in source.comments)


def _fmt(text: str) -> str:
    out, diagnostics = format_text(text, "t.jrule")
    assert out is not None, diagnostics
    return out


def assert_guarantees(text: str, path: str = "t.jrule") -> str:
    """Formatting keeps the tree and every comment, and is a fixed point."""
    before = _parse(text, path)
    out = format_source(before)
    after = _parse(out, path)
    assert after == before, out
    assert _comments(after) == _comments(before), out
    assert format_source(after) == out
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n"))
    assert "\n\n\n" not in out
    assert all(line == line.rstrip() for line in out.split("\n")), out
    return out


# --- fixtures ----------------------------------------------------------------------


def test_there_are_enough_fixture_pairs() -> None:
    assert len(INPUTS) >= 8
    for path in INPUTS:
        assert _expected_path(path).exists() or UPDATE, f"{path.name} has no expected output"


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.stem)
def test_fixture_formats_to_expected(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    out = assert_guarantees(text, path.name)
    expected = _expected_path(path)
    if UPDATE:
        expected.write_text(out, encoding="utf-8")
    assert out == expected.read_text(encoding="utf-8")


def _repository_sources() -> list[Path]:
    roots = [ROOT / "examples", ROOT / "tests" / "fixtures", ROOT / "contracts_lib" / "modules"]
    return sorted(p for root in roots if root.is_dir() for p in root.rglob("*.jrule"))


def test_every_parsing_jrule_file_round_trips() -> None:
    """Globbed at test time: other people's examples and fixtures count too."""
    checked = 0
    for path in _repository_sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        source, diagnostics = parse_source(text, path.name)
        if source is None or has_errors(diagnostics):
            continue
        assert_guarantees(text, path.name)
        checked += 1
    assert checked >= len(INPUTS)


# --- layout ------------------------------------------------------------------------


def _var(expr: str) -> str:
    return f'contract c "t" version "1" {{\n  var x: Int = {expr}\n}}\n'


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("(a - b) - c", "a - b - c"),
        ("a - (b - c)", "a - (b - c)"),
        ("a / (b * c)", "a / (b * c)"),
        ("(a + b) * c", "(a + b) * c"),
        ("a + (b * c)", "a + b * c"),
        ("(a or b) or c", "a or b or c"),
        ("a or (b or c)", "a or (b or c)"),
        ("a and (b or c)", "a and (b or c)"),
        ("not (a == b)", "not a == b"),
        ("(not a) == b", "(not a) == b"),
        ("(a < b) == c", "(a < b) == c"),
        ("a == (b < c)", "a == (b < c)"),
        ("-(a * b)", "-(a * b)"),
        ("(-a) * b", "-a * b"),
        ("-(-a)", "- -a"),
        ("-(a.b)", "-a.b"),
        ("(-a).b", "(-a).b"),
        ("(a + b)[0]", "(a + b)[0]"),
        ("f((a or b), [(c)])", "f(a or b, [c])"),
        ("[1, 2,]", "[1, 2]"),
        ("((x))", "x"),
        ("(1).x", "1.x"),
    ],
)
def test_expression_parentheses_are_minimal(written: str, canonical: str) -> None:
    assert _fmt(_var(written)) == _var(canonical)


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ('"a\\"b"', '"a\\"b"'),
        ('"back\\\\slash"', '"back\\\\slash"'),
        ('"line\\nbreak\\ttab"', '"line\\nbreak\\ttab"'),
        ('"\\u6cd5\\u9662"', '"法院"'),
        ('"\\u000d\\u0000"', '"\\u000d\\u0000"'),
        ("￥3", "¥3.00"),
        ("¥3.5", "¥3.50"),
        ("00.50", "0.50"),
        ("007", "7"),
        ("2025-01-31T08:00:00+08:00", "2025-01-31T08:00:00+08:00"),
    ],
)
def test_literals_are_canonical(written: str, canonical: str) -> None:
    assert _fmt(_var(written)) == _var(canonical)


def _deadline(timing: str) -> str:
    return f'contract c "t" version "1" {{\n  deadline d in s: {timing} {{}}\n}}\n'


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("1 days after entering", "1 day after entering"),
        ("2 day after entering", "2 days after entering"),
        ("1 working days after x", "1 working day after x"),
        ("n day after x", "n days after x"),
        ("1 months before x", "1 month before x"),
        ("every 1 years after entering for 1 years", "every 1 year after entering for 1 year"),
        ("by   x . y", "by x.y"),
        ("3 days after (entering)", "3 days after (entering)"),
        ("3 days after (entering.x)", "3 days after (entering.x)"),
        ("3 days after (entering_date)", "3 days after entering_date"),
        ("3 days before (entering)", "3 days before entering"),
    ],
)
def test_periods_and_timings(written: str, canonical: str) -> None:
    assert _fmt(_deadline(written)) == _deadline(canonical)


def test_long_transition_header_breaks_before_clauses() -> None:
    guard = " and ".join(f"condition_{i}" for i in range(8))
    rule = f'on e in s when {guard} priority 2 cite "x" {{ goto s }}'
    text = f'contract c "t" version "1" {{ {rule} }}'
    lines = _fmt(text).split("\n")
    assert lines[1] == "  on e in s"
    assert lines[2] == f"      when {guard}"
    assert lines[3] == "      priority 2"
    assert lines[4] == '      cite "x" {'
    assert lines[5] == "    goto s"


def test_header_of_exactly_max_width_stays_on_one_line() -> None:
    prefix = '  on e when x cite "'
    cite = "y" * (MAX_WIDTH - len(prefix) - len('" {'))
    text = f'contract c "t" version "1" {{ on e when x cite "{cite}" {{ goto s }} }}'
    line = _fmt(text).split("\n")[1]
    assert len(line) == MAX_WIDTH and line.endswith(" {")
    longer = text.replace(cite, cite + "y")
    assert _fmt(longer).split("\n")[1] == "  on e"


def test_width_counts_chinese_characters_as_two_columns() -> None:
    cite = "《民事诉讼法》第二百五十一条（执行通知）、第二百五十二条（报告财产）、第二百五十三条"
    rule = f'on 送达 in 受理 cite "{cite}" {{ goto 查询 }}'
    assert len(f"  {rule}") < MAX_WIDTH  # in characters it would fit
    assert _fmt(f'contract c "t" version "1" {{ {rule} }}').split("\n")[1:4] == [
        "  on 送达 in 受理",
        f'      cite "{cite}" {{',
        "    goto 查询",
    ]


def test_clauses_print_in_canonical_order_and_once() -> None:
    text = 'contract c "t" version "1" { on e cite "c" priority 1 when x in s {} }'
    assert _fmt(text).split("\n")[1] == '  on e in s when x priority 1 cite "c" {}'
    out, diagnostics = format_text(text.replace('cite "c"', 'cite "c" cite "d"'), "t.jrule")
    assert out is None and diagnostics[0].code == "E001"


def test_keywords_are_every_word_of_the_grammar() -> None:
    grammar = (ROOT / "rules_dsl" / "jrule.lark").read_text(encoding="utf-8")
    words = set(re.findall(r'"([a-z]+)"', grammar))
    assert fmt.KEYWORDS == words
    assert words <= KEYWORDS


def test_long_approval_moves_to_a_continuation_line() -> None:
    args = ", ".join(f"argument_{i}: value_{i}" for i in range(4))
    text = (
        'contract c "t" version "1" { on e { '
        f"do act({args}) approved by judge within 3 working days on timeout {{ goto s }} }} }}"
    )
    assert _fmt(text).split("\n")[2:8] == [
        f"    do act({args})",
        "        approved by judge within 3 working days",
        "      on timeout {",
        "        goto s",
        "      }",
        "  }",
    ]


def test_blank_lines_between_kinds_and_around_multiline_members() -> None:
    text = (
        'contract c "t" version "1" { role a role b state s initial event e '
        "event f by a { x: Int } event g on e { } on e { } }"
    )
    assert _fmt(text) == (
        'contract c "t" version "1" {\n'
        "  role a\n  role b\n\n  state s initial\n\n  event e\n\n"
        "  event f by a {\n    x: Int\n  }\n\n  event g\n\n"
        "  on e {}\n\n  on e {}\n}\n"
    )


def test_empty_file_and_comment_only_file() -> None:
    assert _fmt("") == ""
    assert _fmt("\n\n   \n") == ""
    assert _fmt("  # one\n\n\n# two   \n") == "# one\n# two\n"


def test_crlf_input_gives_lf_output() -> None:
    text = 'contract c "t" version "1" {  # header\r\n  role a\r\n}\r\n'
    assert _fmt(text) == 'contract c "t" version "1" {  # header\n  role a\n}\n'


def test_syntax_and_literal_errors_give_no_text() -> None:
    out, diagnostics = format_text('contract c "t" version "1" { role }', "bad.jrule")
    assert out is None and diagnostics[0].code == "E001"
    # ¥1.234 would print as ¥1.23: a literal error must stop the formatter.
    out, diagnostics = format_text(_var("¥1.234"), "bad.jrule")
    assert out is None and diagnostics[0].code == "E002"


# --- comments ----------------------------------------------------------------------


def test_comment_positions() -> None:
    text = (
        "# top\n"
        'contract c "t" version "1" { # header\n'
        "  role a # after a\n"
        "  # before b\n"
        "  role b\n"
        "  on e { # brace\n"
        "    if x { goto s } # after if\n"
        "    # before close\n"
        "  }\n"
        "  # last member comment\n"
        "}\n"
        "# end\n"
    )
    assert _fmt(text) == (
        "# top\n"
        'contract c "t" version "1" {  # header\n'
        "  role a  # after a\n"
        "  # before b\n"
        "  role b\n"
        "\n"
        "  on e {  # brace\n"
        "    if x {\n"
        "      goto s\n"
        "    }  # after if\n"
        "    # before close\n"
        "  }\n"
        "  # last member comment\n"
        "}\n"
        "# end\n"
    )


def test_comment_in_empty_block_keeps_the_block_open() -> None:
    text = 'contract c "t" version "1" { on e {\n # nothing yet\n } }'
    assert _fmt(text) == (
        'contract c "t" version "1" {\n  on e {\n    # nothing yet\n  }\n}\n'
    )


def test_two_trailing_comments_on_one_output_line() -> None:
    text = 'contract c "t" version "1" {\n  var x: Int = 1 + # one\n    2 # two\n  role a\n}\n'
    out = _fmt(text)
    assert out == (
        'contract c "t" version "1" {\n'
        "  var x: Int = 1 + 2  # one\n\n  # two\n  role a\n}\n"
    )
    assert _fmt(out) == out


def test_comment_inside_string_is_text() -> None:
    out = _fmt(_var('"# not a comment"'))
    assert _parse(out).comments == ()


# --- random trees ------------------------------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source_files)
def test_random_tree_round_trips(tree: ast.SourceFile) -> None:
    out = format_source(tree)
    parsed, diagnostics = parse_source(out, PATH)
    assert parsed is not None and not diagnostics, (out, diagnostics)
    assert parsed == tree, out
    assert format_source(parsed) == out


def _spans(node: object) -> Iterator[ast.Span]:
    if isinstance(node, tuple):
        for child in node:
            yield from _spans(child)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.name == "span":
                yield value
            elif f.name != "comments":
                yield from _spans(value)


_COMMENT_FORMS = (" # c{}\n", "\n# c{}\n", "\n    # c{}  \n", "# c{}\n")


def _with_comments(text: str, data: st.DataObject) -> tuple[str, int]:
    """``text`` with comments inserted at random token boundaries."""
    parsed = _parse(text, PATH)
    offsets = sorted(
        {s.start for s in _spans(parsed.items)} | {s.end for s in _spans(parsed.items)}
        | {len(text)}
    )
    chosen = data.draw(st.lists(st.sampled_from(offsets), max_size=8))
    forms = data.draw(st.lists(st.sampled_from(_COMMENT_FORMS), min_size=len(chosen),
                               max_size=len(chosen)))
    # Insert from the end so earlier offsets stay valid; a form without a
    # leading newline after code becomes a trailing comment.
    for n, (offset, form) in sorted(enumerate(zip(chosen, forms, strict=True)),
                                    key=lambda item: -item[1][0]):
        text = text[:offset] + form.format(n) + text[offset:]
    return text, len(chosen)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source_files, st.data())
def test_comments_anywhere_are_kept_and_stable(tree: ast.SourceFile, data: st.DataObject) -> None:
    """Comments at random places in the canonical text of a random tree."""
    text, count = _with_comments(format_source(tree), data)
    commented = _parse(text, PATH)
    assert commented == tree
    assert len(commented.comments) == count
    assert_guarantees(text, PATH)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(INPUTS), st.data())
def test_comments_anywhere_in_hand_written_layouts(path: Path, data: st.DataObject) -> None:
    """Comments at random places in the fixtures' own (non-canonical) layouts,
    where header clauses may be out of order and lines joined or split."""
    text, _count = _with_comments(path.read_text(encoding="utf-8"), data)
    assert_guarantees(text, PATH)


# --- the command -------------------------------------------------------------------

MESSY = 'contract c "t" version "1" { role a   state s initial }\n'
CANONICAL = 'contract c "t" version "1" {\n  role a\n\n  state s initial\n}\n'


def test_cli_rewrites_only_changed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messy = tmp_path / "messy.jrule"
    tidy = tmp_path / "tidy.jrule"
    messy.write_text(MESSY, encoding="utf-8")
    tidy.write_text(CANONICAL, encoding="utf-8")
    tidy_mtime = tidy.stat().st_mtime_ns
    assert main(["fmt", str(messy), str(tidy)]) == 0
    assert messy.read_text(encoding="utf-8") == CANONICAL
    assert tidy.stat().st_mtime_ns == tidy_mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messy.jrule", "tidy.jrule"]
    assert capsys.readouterr().err == ""


def test_cli_check_lists_files_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messy = tmp_path / "messy.jrule"
    tidy = tmp_path / "tidy.jrule"
    messy.write_text(MESSY, encoding="utf-8")
    tidy.write_text(CANONICAL, encoding="utf-8")
    assert main(["fmt", "--check", str(messy), str(tidy)]) == 1
    assert capsys.readouterr().out == f"{messy}\n"
    assert messy.read_text(encoding="utf-8") == MESSY
    assert main(["fmt", "--check", str(tidy)]) == 0
    assert capsys.readouterr().out == ""


def test_cli_syntax_error_leaves_file_and_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jrule"
    messy = tmp_path / "messy.jrule"
    bad.write_text('contract c "t" version "1" { role }\n', encoding="utf-8")
    messy.write_text(MESSY, encoding="utf-8")
    assert main(["fmt", str(bad), str(messy)]) == 1
    err = capsys.readouterr().err
    assert "error[E001]" in err and "1 error(s)" in err
    assert bad.read_text(encoding="utf-8") == 'contract c "t" version "1" { role }\n'
    assert messy.read_text(encoding="utf-8") == CANONICAL


def test_cli_missing_file_is_exit_2_after_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jrule"
    bad = tmp_path / "bad.jrule"
    bad.write_text("contract", encoding="utf-8")
    messy = tmp_path / "messy.jrule"
    messy.write_text(MESSY, encoding="utf-8")
    assert main(["fmt", str(missing), str(bad), str(messy), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"jrule fmt: error: {missing}: No such file or directory\n" in err
    assert f"jrule fmt: error: {tmp_path}: Is a directory\n" in err
    assert "Traceback" not in err
    assert messy.read_text(encoding="utf-8") == CANONICAL


def test_cli_refuses_output_that_would_change_the_meaning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rules_dsl.commands import fmt as command

    messy = tmp_path / "messy.jrule"
    messy.write_text(MESSY, encoding="utf-8")
    monkeypatch.setattr(command, "format_source", lambda source: "module m {}\n")
    assert main(["fmt", str(messy)]) == 2
    assert "internal error, left unchanged" in capsys.readouterr().err

    def broken(source: ast.SourceFile) -> str:
        raise RecursionError("too deep")

    monkeypatch.setattr(command, "format_source", broken)
    assert main(["fmt", str(messy)]) == 2
    err = capsys.readouterr().err
    assert "RecursionError" in err and "Traceback" not in err
    assert messy.read_text(encoding="utf-8") == MESSY


def test_cli_not_utf8_is_a_diagnostic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin = tmp_path / "latin.jrule"
    latin.write_bytes(b'contract c "\xe9" version "1" {}\n')
    assert main(["fmt", str(latin)]) == 1
    assert "not valid UTF-8" in capsys.readouterr().err
    assert latin.read_bytes() == b'contract c "\xe9" version "1" {}\n'


def test_cli_keeps_file_mode(tmp_path: Path) -> None:
    messy = tmp_path / "messy.jrule"
    messy.write_text(MESSY, encoding="utf-8")
    messy.chmod(0o640)
    assert main(["fmt", str(messy)]) == 0
    assert messy.stat().st_mode & 0o777 == 0o640


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_cli_stdin_writes_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(MESSY.encode("utf-8")))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == CANONICAL


def test_cli_stdin_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(MESSY.encode("utf-8")))
    assert main(["fmt", "--check", "-"]) == 1
    assert capsys.readouterr().out == "-\n"
    monkeypatch.setattr(sys, "stdin", _Stdin(CANONICAL.encode("utf-8")))
    assert main(["fmt", "--check", "-"]) == 0
    assert capsys.readouterr().out == ""


def test_cli_stdin_syntax_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(b"contract c"))
    assert main(["fmt", "-"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "<stdin>:1:" in captured.err


def test_cli_in_a_real_process_with_chinese_text() -> None:
    source = 'contract 案件 "执行" version "1" { role 申请人 "申请人" }'
    result = subprocess.run(
        [sys.executable, "-m", "rules_dsl.cli", "fmt", "-"],
        input=source.encode("utf-8"),
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C"},
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert result.stdout.decode("utf-8") == (
        'contract 案件 "执行" version "1" {\n  role 申请人 "申请人"\n}\n'
    )
    assert result.stderr == b""
