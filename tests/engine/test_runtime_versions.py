"""Versions, migrations and deadline faults on every backend."""

from __future__ import annotations

import datetime as dt

import pytest
from runtime_support import (
    DATA,
    deploy,
    minimal_terms,
    mirror_ok,
    snapshot,
)

from engine.runtime.clock import VirtualClock
from engine.runtime.errors import EngineError, MigrationRefused, NotFound
from engine.runtime.service import EngineService

DAY = dt.timedelta(days=1)


def test_instances_keep_their_version_until_migrated(svc: EngineService,
                                                     vclock: VirtualClock) -> None:
    (v1,) = deploy(svc, DATA / "mediation_v1.jrule")
    svc.create_instance("调解协议", "old", minimal_terms(due="2025-10-31"))
    vclock.advance(DAY)
    svc.submit_event("old", "付款", "被申请人", {"数额": "100.00"}, "p1")
    (v2,) = deploy(svc, DATA / "mediation_v2.jrule")
    svc.create_instance("调解协议", "new", minimal_terms(due="2025-10-31"))
    assert svc.state("old")["contract"] == v1
    assert svc.state("new")["contract"] == v2
    before = {d["deadline"]: d for d in svc.pending_deadlines("old")}
    assert set(before) == {"提醒", "到期"}

    vclock.advance(DAY)
    report = svc.migrate("old", v2, by="张法官")
    how = {t["deadline"]: t for t in report["timers"]}
    assert how["到期"]["how"] == "kept" and how["到期"]["old_due"] == how["到期"]["new_due"]
    assert how["提醒"]["how"] == "re-armed"
    assert how["提醒"]["new_due"] < how["提醒"]["old_due"]  # 5 working days before, not 3
    assert how["督促"]["how"] == "armed"  # new in version 2 for the current state
    st = svc.state("old")
    assert st["contract"] == v2 and st["seq"] == 3
    assert st["document"]["vars"] == [["已付", "100.00"], ["提醒次数", 0]]
    (m,) = svc.migrations("old")
    assert m["from"] == v1 and m["to"] == v2 and m["by"] == "张法官" and m["active"]
    assert [t["deadline"] for t in m["timers"]] == [t["deadline"] for t in report["timers"]]
    timeline = svc.timeline("old")
    assert timeline[-1]["kind"] == "migrate" and timeline[-1]["input"]["by"] == "张法官"
    assert mirror_ok(svc, "old")
    now = {d["deadline"]: d for d in svc.pending_deadlines("old")}
    assert set(now) == {"提醒", "督促", "到期"}
    assert "5 working days" in (now["提醒"]["how_en"] or "")
    assert now["到期"]["how_en"] == before["到期"]["how_en"]  # computed once, kept
    # it runs version 2 from now on, and replays across the migration
    vclock.advance(DAY)
    assert svc.submit_event("old", "付款", "被申请人", {"数额": "50.00"}, "p2").accepted
    vclock.set(dt.datetime(2025, 11, 3, tzinfo=dt.UTC))
    assert svc.run_due() == 6  # 提醒, 督促, 到期 of both instances
    assert svc.state("old")["state"] == "已申请执行"
    assert svc.state("new")["state"] == "已申请执行"
    assert svc.replay("old")
    assert svc.replay("new")
    assert [o["action"] for o in svc.outbox("old")] == ["remind", "remind",
                                                            "file_enforcement_case"]


def test_impossible_migrations_are_refused_with_reasons(svc: EngineService) -> None:
    (v1,) = deploy(svc, DATA / "mediation_v1.jrule")
    (other,) = deploy(svc, DATA / "faulty.jrule")
    assert svc.create_instance("调解协议", "i", minimal_terms()).accepted
    (v3,) = deploy(svc, DATA / "mediation_v3.jrule")
    # new instances get the newest version (which needs one more term)
    assert svc.create_instance("调解协议", "x", minimal_terms()).code == "bad_terms"
    assert svc.state("i")["contract"] == v1
    before = snapshot(svc, "i")
    with pytest.raises(MigrationRefused, match="term `法院` is new"):
        svc.migrate("i", v3, by="x")
    with pytest.raises(MigrationRefused, match="not a version of"):
        svc.migrate("i", other, by="x")
    with pytest.raises(MigrationRefused, match="already runs"):
        svc.migrate("i", v1, by="x")
    with pytest.raises(NotFound):
        svc.migrate("nope", v3, by="x")
    with pytest.raises(NotFound):
        svc.migrate("i", "0" * 64, by="x")
    assert snapshot(svc, "i") == before
    assert svc.migrations("i") == []


def test_deadline_fault_holds_the_instance_until_resolved(svc: EngineService,
                                                          vclock: VirtualClock) -> None:
    (v1,) = deploy(svc, DATA / "faulty.jrule")
    svc.create_instance("故障", "bad", {"金额表": ["1.00"]})
    svc.create_instance("故障", "good", {"金额表": ["1.00", "2.00", "3.00", "4.00"]})
    vclock.advance(3 * DAY)
    assert svc.run_due() == 1  # "good" fired; "bad" faulted
    assert svc.state("good")["state"] == "完成"
    st = svc.state("bad")
    assert st["status"] == "faulted" and st["seq"] == 1  # nothing of the failed tick written
    (incident,) = svc.incidents(instance_id="bad")
    assert incident["kind"] == "deadline_fault" and incident["status"] == "open"
    assert "检查" in incident["message"] and "faulty.jrule" in incident["message"]
    assert incident["message"].count("faulty.jrule") == 1  # the rule's span, said once
    assert svc.next_due() is None  # held timers do not wake the engine
    assert svc.run_due() == 0
    refused = svc.submit_event("bad", "催告", "申请人", {}, "e1")
    assert not refused.accepted and refused.code == "faulted"
    # resolving without a fix: it faults again at the next run, and says so again
    svc.resolve_fault("bad", by="运维", note="retry")
    assert svc.state("bad")["status"] == "active"
    assert svc.run_due() == 0
    assert svc.state("bad")["status"] == "faulted"
    assert len(svc.incidents(instance_id="bad", status="open")) == 1
    # the fix: migrate to a version that reads the list safely, then resolve
    (v2,) = deploy(svc, DATA / "faulty_v2.jrule")
    report = svc.migrate("bad", v2, by="张法官")
    assert [t["how"] for t in report["timers"]] == ["kept"]
    assert svc.resolve_fault("bad", by="运维", note="migrated to v2")["incidents_resolved"] == 1
    assert svc.run_due() == 1
    st = svc.state("bad")
    assert st["state"] == "完成" and st["status"] == "ended"
    assert st["document"]["vars"] == [["取值", "1.00"]]
    assert all(i["status"] == "resolved" for i in svc.incidents(instance_id="bad"))
    late = next(r for r in svc.timers("bad") if r["status"] == "fired")
    assert late["late_seconds"] > 0
    assert svc.replay("bad") and mirror_ok(svc, "bad")
    with pytest.raises(EngineError, match="not faulted"):
        svc.resolve_fault("bad", by="x", note="y")
    assert v1 != v2
