"""jrule test: scenarios, properties, counterexamples, exploration, the gate, history."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from runtime_support import store_url
from sqlalchemy import select

from contracts_lib.calendar import load_calendar
from engine.program import compile_contract
from engine.runtime.clock import VirtualClock
from engine.runtime.db import open_database
from engine.runtime.errors import DeployRefused
from engine.runtime.service import T_VERSIONS, EngineService
from engine.testing.gate import make_gate
from engine.testing.history import compare_history
from engine.testing.report import report_hash, to_junit
from engine.testing.runner import RunOptions, run_suite
from engine.testing.target import load_targets, targets_from_bytes
from engine.testing.timeline import run_timeline
from ledger_adapter import Ed25519Signer
from ledger_adapter.sql import SqlLedger
from rules_dsl.cli import main
from rules_dsl.compiler import compile_path

__all__ = ["store_url"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CAL = load_calendar("cn")
SMALL = RunOptions(seed=5, examples=15, max_lines=6)


def _suite(path: Path, options: RunOptions = SMALL) -> dict:
    targets, ir, files = load_targets(path)
    return run_suite(targets, ir.id, [Path(f).name for f in files], CAL, options)


@pytest.mark.parametrize("name", ["mediation_agreement", "credit_sanctions", "case_filing"])
def test_examples_pass_their_tests(name: str) -> None:
    report = _suite(EXAMPLES / f"{name}.jrule")
    assert report["passed"], json.dumps(report, ensure_ascii=False)[:2000]
    contract = report["contracts"][0]
    assert contract["scenarios"] and len(contract["properties"]) >= 3


def test_every_example_has_scenarios_and_three_properties() -> None:
    for rules in sorted(EXAMPLES.glob("*.jrule")):
        if rules.name.endswith(".test.jrule"):
            continue
        targets, _, files = load_targets(rules)
        assert len(files) == 2, f"{rules.name} has no .test.jrule"
        for t in targets.values():
            assert t.scenarios and len(t.properties) >= 3, rules.name


def test_buggy_example_fails_with_a_minimal_pasteable_counterexample() -> None:
    report = _suite(EXAMPLES / "buggy" / "mediation_buggy.jrule",
                    RunOptions(seed=13, examples=15, max_lines=6))
    assert not report["passed"]
    failed = [p for p in report["contracts"][0]["properties"] if not p["passed"]]
    assert [p["name"] for p in failed] == ["付清之后不再申请执行或起诉"]
    text = failed[0]["counterexample"]
    assert failed[0]["counterexample_lines"] <= 2
    # the printed scenario parses, checks and fails the same way when pasted
    rules = (EXAMPLES / "buggy" / "mediation_buggy.jrule").read_bytes()
    tests = ("tests for 调解协议履行 {\n" + text + "\n  property \"p\" after 已付 >= "
             "sum(履行计划.金额) never action file_enforcement_case, file_trial_case\n}\n")
    targets, _ = targets_from_bytes(rules, "mediation_buggy.jrule", tests.encode())
    target = targets["调解协议履行"]
    from engine.testing.monitor import check_run, compile_property
    from engine.testing.scenarios import scenario_timeline

    timeline = scenario_timeline(target.scenarios[0], target, CAL)
    run = run_timeline(target.program, CAL, timeline)
    assert check_run([compile_property(target.properties[0], target, CAL)],
                     run.observations, run.drained)


def test_a_wrong_expectation_fails_with_its_position() -> None:
    rules = (EXAMPLES / "mediation_agreement.jrule").read_bytes()
    tests = """tests for 调解协议履行 {
  scenario "wrong" {
    terms {
      协议生效日: 2025-09-01
      履行计划: [{到期日: 2025-09-30, 金额: ¥5000.00}]
    }
    start at 2025-09-01
    advance to 2025-10-02
    expect state 履行完毕
    expect action file_enforcement_case
  }
}
"""
    targets, ir = targets_from_bytes(rules, "m.jrule", tests.encode())
    report = run_suite(targets, ir.id, ["m.jrule"], CAL, SMALL)
    failures = report["contracts"][0]["scenarios"][0]["failures"]
    assert [f["span"].split(":")[1] for f in failures] == ["9", "10"]
    assert "已提起诉讼" in failures[0]["message"]


def test_same_seed_same_report_hash_and_junit() -> None:
    a = _suite(EXAMPLES / "loan_default.jrule")
    b = _suite(EXAMPLES / "loan_default.jrule")
    assert report_hash(a) == report_hash(b)
    assert "<testsuite" in to_junit(a)


def test_exploration_reports_the_space() -> None:
    report = _suite(EXAMPLES / "mediation_agreement.jrule",
                    RunOptions(seed=1, explore=True, depth=3))
    ex = report["contracts"][0]["exploration"]
    assert report["passed"] and ex["complete"] and ex["paths"] > 10 and ex["states"] > 10


def test_cli_json_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["test", str(EXAMPLES / "buggy" / "mediation_buggy.jrule"), "--seed", "13",
                 "--examples", "15", "--max-lines", "6", "--format", "json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out[0]["passed"] is False and len(out[0]["hash"]) == 64


def test_gate_refuses_failing_rules_and_records_passing_report(store_url: str) -> None:
    clock = VirtualClock(dt.datetime(2025, 9, 1, 4, tzinfo=dt.UTC))
    db = open_database(store_url)
    origin = "court.example/ledger"
    ledger = SqlLedger(db.engine, origin, Ed25519Signer.generate(origin))
    svc = EngineService(store_url, clock, mode="test", db=db, ledger=ledger,
                        deploy_gate=make_gate(examples=15, seed=15))
    try:
        buggy = EXAMPLES / "buggy" / "mediation_buggy.jrule"
        with pytest.raises(DeployRefused, match="付清之后不再申请执行或起诉"):
            svc.deploy(buggy.read_bytes(), buggy.name, "clerk", reviewer="judge",
                       tests=buggy.with_name("mediation_buggy.test.jrule").read_bytes())
        good = EXAMPLES / "loan_default.jrule"
        tests = good.with_name("loan_default.test.jrule").read_bytes()
        with pytest.raises(DeployRefused, match="reviewer"):
            svc.deploy(good.read_bytes(), good.name, "clerk", tests=tests)
        with pytest.raises(DeployRefused, match="no scenario tests"):
            svc.deploy(good.read_bytes(), good.name, "clerk", reviewer="judge")
        assert svc.versions() == [] and ledger.size() == 0
        ids = svc.deploy(good.read_bytes(), good.name, "clerk", reviewer="judge 李",
                         tests=tests)
        version = svc.latest("loan_default")
        assert version is not None and version.id == ids[0]
        with svc.db.read() as conn:
            row = conn.execute(select(T_VERSIONS).where(T_VERSIONS.c.id == ids[0])).one()
        report = json.loads(row.test_report)
        assert report["passed"] and report_hash(report) == row.report_hash == version.report_hash
        assert row.reviewed_by == version.reviewed_by == "judge 李"
        logged = ledger.entry(row.report_ledger_index).record.as_dict()
        assert logged["action"] == "test_report" and logged["digest"] == row.report_hash
        assert logged["by"] == "judge 李" and logged["subject"] == version.ruleset_id
    finally:
        svc.close()


def test_against_history_lists_changed_instances(tmp_path: Path) -> None:
    clock = VirtualClock(dt.datetime(2025, 9, 1, 4, tzinfo=dt.UTC))
    svc = EngineService(f"sqlite:///{tmp_path / 'h.sqlite3'}", clock=clock, mode="sandbox")
    try:
        rules = EXAMPLES / "mediation_agreement.jrule"
        svc.deploy(rules.read_bytes(), rules.name, "clerk")
        terms = {"协议生效日": "2025-09-01",
                 "履行计划": [{"到期日": "2025-09-30", "金额": "5000.00"},
                          {"到期日": "2025-10-31", "金额": "5000.00"}]}
        for iid in ("a", "b"):
            svc.create_instance("调解协议履行", iid, terms)
        clock.set(dt.datetime(2025, 9, 20, 4, tzinfo=dt.UTC))
        svc.submit_event("b", "付款", "权利人", {"金额": "2000.00", "付款日": "2025-09-20"})
        clock.set(dt.datetime(2025, 9, 27, 4, tzinfo=dt.UTC))
        svc.run_due()
        same = {c["name"]: compile_contract(c)
                for c in compile_path(rules).ir.to_data()["contracts"]}  # type: ignore[union-attr]
        assert compare_history(svc, same) == (2, [])
        changed_src = rules.read_text(encoding="utf-8").replace(
            "amount: 累计应付 - 已付)", "amount: 累计应付)")
        path = tmp_path / "v2.jrule"
        path.write_text(changed_src, encoding="utf-8")
        new = {c["name"]: compile_contract(c)
               for c in compile_path(path).ir.to_data()["contracts"]}  # type: ignore[union-attr]
        replayed, changes = compare_history(svc, new)
        assert replayed == 2 and [c.instance for c in changes] == ["b"]
        assert changes[0].added and changes[0].removed
    finally:
        svc.close()


@pytest.mark.parametrize("name", ["enforcement_steps", "mediation_agreement", "credit_sanctions"])
def test_printed_timelines_read_back_as_the_same_timeline(name: str) -> None:
    """Whatever timeline the generator makes, its printed scenario means that timeline."""
    from hypothesis import HealthCheck, given, settings

    from engine.testing.generate import timeline_strategy
    from engine.testing.scenarios import scenario_timeline
    from engine.testing.timeline import scenario_text

    targets, _, _ = load_targets(EXAMPLES / f"{name}.jrule")
    target = next(iter(targets.values()))
    rules = (EXAMPLES / f"{name}.jrule").read_bytes()

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(timeline_strategy(target.program, CAL, max_lines=6))
    def round_trip(timeline: object) -> None:
        text = scenario_text("s", timeline, target.program, CAL)  # type: ignore[arg-type]
        suite = f"tests for {target.name} {{\n{text}}}\n"
        back, _ = targets_from_bytes(rules, f"{name}.jrule", suite.encode())
        read = scenario_timeline(back[target.name].scenarios[0], back[target.name], CAL)
        assert read.terms == timeline.terms  # type: ignore[attr-defined]
        assert read.start == timeline.start  # type: ignore[attr-defined]
        *lines, last = read.lines
        assert tuple(lines) == timeline.lines  # type: ignore[attr-defined]
        assert last.kind == "advance" and last.at == timeline.horizon  # type: ignore[attr-defined]

    round_trip()


def test_cli_user_mistakes_give_messages_not_tracebacks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = ROOT / "tests" / "fixtures" / "check" / "bad" / "E502_bad_test_value.jrule"
    assert main(["test", str(bad), "--quiet"]) == 2
    assert "E502" in capsys.readouterr().err
    assert main(["test", str(tmp_path / "missing.jrule")]) == 2
    assert "no file" in capsys.readouterr().err
    rules = str(EXAMPLES / "loan_default.jrule")
    assert main(["test", "--against-history", f"sqlite:///{tmp_path / 'none.sqlite3'}",
                 rules]) == 2
    assert "cannot read the running instances" in capsys.readouterr().err
    assert main(["test", rules, "--examples", "0"]) == 2


def test_cli_junit_for_several_files_is_one_document(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    from xml.etree import ElementTree

    assert main(["test", str(EXAMPLES / "loan_default.jrule"),
                 str(EXAMPLES / "case_filing.jrule"), "--examples", "5", "--seed", "1",
                 "--format", "junit", "--quiet"]) == 0
    root = ElementTree.fromstring(capsys.readouterr().out.split("\n", 1)[1])
    assert [s.get("name") for s in root.iter("testsuite")] == ["loan_default", "case_filing"]


def test_an_approval_period_past_the_calendar_refuses_the_event() -> None:
    """An approval whose period runs past the calendar's last year: the event is refused
    with a clear runtime fault naming the approval and the calendar (it used to escape
    step() as a bare DateOutsideCalendar); the instance stays as it was."""
    from engine.testing.timeline import Line, Timeline, noon

    targets, _, _ = load_targets(EXAMPLES / "freeze_renewal.jrule")
    program = targets["freeze_renewal"].program
    start = noon(dt.date(2026, 12, 31), CAL)
    timeline = Timeline({"kind": "bank_deposit", "amount": "10.00", "renew_in_advance": False},
                        start, (Line("event", start, "freeze_ordered", "judge"),))
    run = run_timeline(program, CAL, timeline)
    assert run.fault is None
    (refused,) = [o.refused for o in run.observations if o.refused]
    assert refused.startswith("runtime_fault: the approval period of `freeze`")
    assert CAL.version in refused and "2027-01-01" in refused
    # a day earlier in the year the same event is accepted: the refusal is about the calendar
    inside = noon(dt.date(2026, 12, 1), CAL)
    ok = run_timeline(program, CAL, Timeline(timeline.terms, inside,
                                             (Line("event", inside, "freeze_ordered", "judge"),)))
    assert not [o.refused for o in ok.observations if o.refused]


def test_simulate_fires_deadlines_that_fell_due_before_creation() -> None:
    """(found while writing jrule test) a due date before the instance was created
    used to crash `jrule simulate` with an out-of-order tick."""
    from engine.simulate import simulate

    rules = compile_path(EXAMPLES / "mediation_agreement.jrule").ir
    assert rules is not None
    program = compile_contract(rules.to_data()["contracts"][0])
    terms = {"协议生效日": "2025-09-01", "履行计划": [{"到期日": "2025-09-30", "金额": "10.00"}]}
    records = simulate(program, "cn", terms, [], dt.datetime(2025, 11, 1, 4, tzinfo=dt.UTC),
                       dt.datetime(2025, 11, 2, 4, tzinfo=dt.UTC))
    assert records[-1]["final"]["state"] == "已提起诉讼"


def test_report_does_not_depend_on_which_modules_are_loaded() -> None:
    """The gate runs inside a service, `jrule test` alone: same seed, same report hash."""
    import subprocess
    import sys

    here = report_hash(_suite(EXAMPLES / "buggy" / "mediation_buggy.jrule",
                              RunOptions(seed=13, examples=15, max_lines=6)))
    out = subprocess.run(
        [sys.executable, "-m", "rules_dsl.cli", "test",
         str(EXAMPLES / "buggy" / "mediation_buggy.jrule"), "--seed", "13", "--examples",
         "15", "--max-lines", "6", "--format", "json", "--quiet"],
        capture_output=True, text=True, check=False, cwd=ROOT)
    assert json.loads(out.stdout)[0]["hash"] == here
