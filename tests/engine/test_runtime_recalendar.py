"""A deadline beyond the calendar's years, durably (issue 3): it faults when it falls
due (never fires on the unchecked nominal day), and the court moves the instance to
next year's calendar, resolves the fault, and the deadline fires on its extended day."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from runtime_support import store_url
from sqlalchemy import select

from contracts_lib.calendar import Calendar, calendar_from_mapping, load_calendar
from engine.audit import audit_store
from engine.runtime.clock import VirtualClock
from engine.runtime.db import open_database
from engine.runtime.errors import EngineError, MigrationRefused
from engine.runtime.service import EngineService
from engine.runtime.unit import T_INPUTS
from engine.testing.history import compare_history
from ledger_adapter import Ed25519Signer
from ledger_adapter.sql import SqlLedger

__all__ = ["store_url"]

ORIGIN = "court.example/ledger"
CN = load_calendar("cn")
SOURCE = """contract 答辩 "T" version "1.0.0" {
  role creditor
  role debtor
  state open initial
  state done terminal
  deadline answer in open: 30 days after entering cite "art. 1" {
    do notify(party: creditor, message: "no answer")
    goto done
  }
}
"""
#: 2026-12-10 09:00 Asia/Shanghai: 30 days end on Saturday 2027-01-09, beyond 2025-2026
START = dt.datetime(2026, 12, 10, 1, 0, tzinfo=dt.UTC)
NOMINAL_DUE = dt.datetime(2027, 1, 9, 16, 0, tzinfo=dt.UTC)  # 24:00 of 2027-01-09
EXTENDED_DUE = dt.datetime(2027, 1, 12, 16, 0, tzinfo=dt.UTC)  # 24:00 of 2027-01-12


def calendar(
    base: Calendar = CN,
    *,
    cal_id: str = "cn",
    years: int = 1,
    holidays: tuple[str, ...] = ("2027-01-11",),
) -> Calendar:
    """``base`` plus ``years`` more years and ``holidays`` (a small test holiday notice)."""
    data = json.loads(base.canonical_json())
    data["id"] = cal_id
    data["years"] = list(range(base.first_year, base.last_year + years + 1))
    data["holidays"] = [*data["holidays"], *({"date": d, "name": "test"} for d in holidays)]
    return calendar_from_mapping(data)


NEXT = calendar()  # cn with 2027: the 9th/10th are a weekend, the 11th a holiday


def _open(
    url: str, clock: VirtualClock, signer: Ed25519Signer, calendars: tuple[Calendar, ...] = ()
) -> tuple[EngineService, SqlLedger]:
    db = open_database(url)
    ledger = SqlLedger(db.engine, ORIGIN, signer)
    return EngineService(
        url, clock, CN, mode="test", calendars=calendars, db=db, ledger=ledger
    ), ledger


def test_fault_move_to_next_years_calendar_resolve_fire(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = VirtualClock(START)
    signer = Ed25519Signer.generate(ORIGIN)
    svc, _ = _open(store_url, clock, signer)
    try:
        svc.deploy(SOURCE.encode("utf-8"), "answer.jrule", "clerk")
        assert svc.create_instance("答辩", "i", {}).accepted
        (t,) = svc.state("i")["document"]["timers"]
        assert t["provisional"] is True
        (row,) = svc.timers("i")
        assert row["due_at"] == "2027-01-09T16:00:00Z" and row["status"] == "pending"
        # the nominal day passes: no firing on the guess, a fault and an incident
        clock.advance(NOMINAL_DUE + dt.timedelta(hours=2) - START)
        assert svc.run_due() == 0
        st = svc.state("i")
        assert st["status"] == "faulted" and st["state"] == "open" and st["seq"] == 1
        assert svc.outbox("i") == []
        (incident,) = svc.incidents(instance_id="i")
        assert incident["kind"] == "deadline_fault" and incident["status"] == "open"
        for part in (
            "`answer`",
            "2027-01-09",
            CN.version,
            "2025–2026",
            "calendar covering 2027",
            "recalendar",
        ):
            assert part in incident["message"], part
        # remedies that are refused change nothing
        with pytest.raises(EngineError, match="not loaded"):
            svc.recalendar("i", NEXT.version, by="张法官")
        with pytest.raises(MigrationRefused, match="already runs"):
            svc.recalendar("i", CN.version, by="张法官")
    finally:
        svc.close()

    # the court loads next year's holiday notice (and a few calendars it may not use)
    other = calendar(cal_id="court_x")
    rewrites = calendar(holidays=("2027-01-11", "2026-03-02"))
    svc, ledger = _open(store_url, clock, signer, (NEXT, other, rewrites))
    try:
        for bad, why in (
            (other.version, "not a version of calendar `cn`"),
            (rewrites.version, "changes days within 2025-2026"),
        ):
            with pytest.raises(MigrationRefused, match=why):
                svc.recalendar("i", bad, by="张法官")
        assert svc.state("i")["calendar"] == CN.version
        report = svc.recalendar("i", NEXT.version, by="张法官")
        assert report["from_calendar"] == CN.version and report["to_calendar"] == NEXT.version
        assert report["status"] == "faulted" and report["by"] == "张法官"
        (carry,) = report["timers"]
        assert carry["how"] == "recomputed" and carry["deadline"] == "answer"
        assert carry["old_due"] == "2027-01-09T16:00:00Z"
        assert carry["new_due"] == "2027-01-12T16:00:00Z"
        assert "2027-01-12" in carry["reason"] and carry["how_en"]
        st = svc.state("i")
        assert st["calendar"] == NEXT.version and st["status"] == "faulted"
        (t,) = st["document"]["timers"]
        assert t["provisional"] is False and t["last_day"] == "2027-01-12"
        assert sorted(r["status"] for r in svc.timers("i")) == ["cancelled", "held"]
        (m,) = svc.migrations("i")
        assert m["by"] == "张法官" and m["timers"] == report["timers"]
        assert m["from"] == m["to"] == st["contract"]
        assert svc.replay("i")
        # resolved: it fires once, late, on the extended day
        assert (
            svc.resolve_fault("i", by="运维", note="moved to " + NEXT.version)["incidents_resolved"]
            == 1
        )
        assert svc.run_due() == 0  # the extended last day has not run out yet
        assert svc.state("i")["status"] == "active"
        clock.advance(EXTENDED_DUE - clock.now() + dt.timedelta(days=2))  # engine was down
        assert svc.run_due() == 1
        assert svc.run_due() == 0
        st = svc.state("i")
        assert st["state"] == "done" and st["status"] == "ended"
        (action,) = svc.outbox("i")
        assert action["action"] == "notify"
        fired = [r for r in svc.timers("i") if r["status"] == "fired"]
        assert len(fired) == 1
        assert fired[0]["late_seconds"] == (clock.now() - EXTENDED_DUE).total_seconds()
        timeline = svc.timeline("i")
        assert [r["kind"] for r in timeline] == ["create", "recalendar", "tick"]
        tick = timeline[-1]
        (expl,) = tick["explanations"]
        assert expl["subject"] == "answer"
        # replay reproduces the stored state across the move; the audit agrees
        rep = svc.replay_report("i")
        assert rep["equal"] and rep["first_divergent_seq"] is None and rep["inputs"] == 3
        with svc.db.read() as conn:
            kinds = [
                r.kind
                for r in conn.execute(
                    select(T_INPUTS.c.kind, T_INPUTS.c.ledger_index)
                    .where(T_INPUTS.c.ledger_index.is_not(None))
                    .order_by(T_INPUTS.c.id)
                )
            ]
        assert kinds == ["create", "recalendar", "tick"]
        audit = audit_store(svc, ledger)
        assert audit.findings == [], audit.findings
        assert audit.instances == 1
    finally:
        svc.close()
    # `jrule audit` replays it too, given the calendars the engine runs with
    notice = tmp_path / "cn-2027.json"
    notice.write_text(json.dumps(json.loads(NEXT.canonical_json())), encoding="utf-8")
    code, out = _audit(store_url, capsys)
    assert code == 1 and "not loaded" in out
    code, out = _audit(store_url, capsys, "--calendar", str(notice))
    assert code == 0 and "no disagreement found" in out, out


def _audit(url: str, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str]:
    from rules_dsl.cli import main

    code = main(["audit", "--db", url, *more])
    return code, capsys.readouterr().out


def test_a_move_while_active_recomputes_before_it_falls_due(store_url: str) -> None:
    clock = VirtualClock(START)
    svc = EngineService(store_url, clock, CN, mode="test", calendars=(NEXT,))
    try:
        svc.deploy(SOURCE.encode("utf-8"), "answer.jrule", "clerk")
        assert svc.create_instance("答辩", "i", {}).accepted
        assert svc.create_instance("答辩", "j", {}).accepted
        report = svc.recalendar("i", NEXT.version, by="张法官")
        assert report["status"] == "active"
        assert [c["how"] for c in report["timers"]] == ["recomputed"]
        program = svc.program(svc.state("i")["contract"])
        assert compare_history(svc, {"答辩": program}) == (2, [])  # the move is re-applied
        (row,) = [r for r in svc.timers("i") if r["status"] == "pending"]
        assert row["due_at"] == "2027-01-12T16:00:00Z"
        clock.advance(NOMINAL_DUE + dt.timedelta(hours=1) - START)
        assert svc.run_due() == 0  # "i" is not due yet; "j" (not moved) faults
        assert svc.state("i")["status"] == "active"
        assert svc.state("j")["status"] == "faulted"
        clock.advance(EXTENDED_DUE - NOMINAL_DUE)
        assert svc.run_due() == 1
        assert svc.state("i")["state"] == "done"
        assert svc.replay("i") and svc.replay("j")
        # an ended instance cannot move
        with pytest.raises(MigrationRefused, match="has ended"):
            svc.recalendar("i", NEXT.version, by="张法官")
    finally:
        svc.close()
