"""Data-driven checker tests: bad fixtures with their expected report beside them.

Each ``tests/fixtures/check/bad/CODE_description.jrule`` must produce a
diagnostic with CODE, and its full rendered report must equal
``CODE_description.expected``.  Set JRULE_UPDATE_FIXTURES=1 to rewrite the
expected files (then review the diff).  ``docs/error-codes.md`` is generated
from the same fixtures and checked here too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from rules_dsl.compiler import check_path, compile_path
from rules_dsl.diagnostics import has_errors, render_all
from rules_dsl.error_codes import ERROR_CODES

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "fixtures" / "check" / "bad"
GOOD = ROOT / "tests" / "fixtures" / "check" / "good"
DOC = ROOT / "docs" / "error-codes.md"
UPDATE = os.environ.get("JRULE_UPDATE_FIXTURES") == "1"

BAD_FILES = sorted(BAD.glob("*.jrule"))
GOOD_FILES = sorted(GOOD.glob("*.jrule"))


def _report(path: Path) -> tuple[str, list[str]]:
    result = check_path(path)
    return render_all(result.diagnostics, result.sources) + "\n", [
        d.code for d in result.diagnostics
    ]


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_bad_fixture_reports_expected(path: Path) -> None:
    report, codes = _report(path)
    expected_file = path.with_suffix(".expected")
    if UPDATE:
        expected_file.write_text(report, encoding="utf-8")
    assert expected_file.exists(), f"missing {expected_file.name}; run with JRULE_UPDATE_FIXTURES=1"
    assert report == expected_file.read_text(encoding="utf-8")
    match = re.match(r"([EW]\d{3})_", path.name)
    if match:
        assert match.group(1) in codes


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_bad_fixture_never_compiles_to_ir(path: Path) -> None:
    result = compile_path(path)
    if path.name.startswith("W") or path.name.startswith("E311"):
        return
    assert result.ir is None
    assert has_errors(result.check.diagnostics)


def test_every_code_has_a_fixture() -> None:
    covered = {p.name[:4] for p in BAD_FILES}
    assert set(ERROR_CODES) <= covered, sorted(set(ERROR_CODES) - covered)


def test_fixture_codes_are_registered() -> None:
    for p in BAD_FILES:
        match = re.match(r"([EW]\d{3})_", p.name)
        if match:
            assert match.group(1) in ERROR_CODES


def test_all_errors_in_one_run() -> None:
    _, codes = _report(BAD / "multi_all_errors_reported.jrule")
    assert {"E202", "E201", "E206", "E106", "E209"} <= set(codes)
    assert len(codes) >= 6


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda p: p.stem)
def test_good_fixture_compiles(path: Path) -> None:
    result = compile_path(path)
    errors = [d for d in result.check.diagnostics if d.severity == "error"]
    assert errors == []
    assert result.ir is not None
    assert len(result.ir.id) == 64


def render_error_docs() -> str:
    out = [
        "# Error codes",
        "",
        "Generated from `rules_dsl/error_codes.py` and `tests/fixtures/check/bad/` "
        "(the test `test_error_docs_up_to_date` keeps it current; regenerate with "
        "`JRULE_UPDATE_FIXTURES=1 pytest tests/rules_dsl/test_check_fixtures.py`).",
        "",
        "Codes are stable: a code never changes meaning. `E` codes are errors (the file "
        "does not compile); `W` codes are warnings.",
        "",
    ]
    for code, (title, text) in ERROR_CODES.items():
        out += [f"## {code}: {title}", "", text, ""]
        fixture = next((p for p in BAD_FILES if p.name.startswith(code + "_")), None)
        if fixture is None:
            continue
        data = fixture.read_bytes()
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError:
            source = data.decode("utf-8", errors="replace") + "\n# (the file holds invalid bytes)"
        out += ["```", source.rstrip("\n"), "```", "", "```text",
                fixture.with_suffix(".expected").read_text(encoding="utf-8").rstrip("\n"),
                "```", ""]
    return "\n".join(out)


def test_error_docs_up_to_date() -> None:
    text = render_error_docs()
    if UPDATE:
        DOC.write_text(text, encoding="utf-8")
    assert DOC.read_text(encoding="utf-8") == text
