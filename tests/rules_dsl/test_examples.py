"""The shipped rule sets: every example and standard module checks cleanly,
compiles, is in the canonical layout, and covers the workflows of the brief."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules_dsl.compiler import check_path, compile_path
from rules_dsl.fmt import format_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.jrule"))
MODULES = sorted((ROOT / "contracts_lib" / "modules").glob("*.jrule"))

#: one rule set per workflow of docs/domain.md
WORKFLOWS = {
    "case_filing", "mediation_agreement", "judgment_performance", "enforcement_steps",
    "enforcement_resumption", "enforcement_settlement", "credit_sanctions", "loan_default",
    "freeze_renewal",
}


def test_every_workflow_has_an_example() -> None:
    assert WORKFLOWS <= {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_compiles_without_errors_or_warnings(path: Path) -> None:
    result = compile_path(path)
    assert [d.code for d in result.check.diagnostics] == []
    assert result.ir is not None
    for contract in result.ir.to_data()["contracts"]:
        rules = contract["transitions"] + contract["deadlines"]
        assert rules
        acting = [r for r in rules if _procedural_actions(r["body"])]
        uncited = [r["span"] for r in acting if not r["cite"]]
        assert uncited == [], "every rule that triggers a procedure cites its legal basis"


#: courtesy messages need no legal basis; every other action is a procedure
_COURTESY = {"notify", "remind", "record_service"}


def _procedural_actions(value: object) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("stmt") == "do" and value["action"] not in _COURTESY:
            found.append(value["action"])
        for v in value.values():
            found += _procedural_actions(v)
    elif isinstance(value, list):
        for v in value:
            found += _procedural_actions(v)
    return found


@pytest.mark.parametrize("path", EXAMPLES + MODULES, ids=lambda p: p.stem)
def test_shipped_files_are_in_canonical_layout(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    formatted, diagnostics = format_text(text, path.name)
    assert diagnostics == ()
    assert formatted == text, f"run: jrule fmt {path.relative_to(ROOT)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_std_module_parses_and_checks(path: Path) -> None:
    result = check_path(path)
    assert not [d for d in result.diagnostics if d.severity == "error"]
