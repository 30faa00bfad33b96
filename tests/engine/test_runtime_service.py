"""The durable service on every backend: deploy, create, events, deadlines, approvals."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from runtime_support import (
    APPROVALS,
    MEDIATION,
    MINIMAL,
    T0,
    deploy,
    minimal_terms,
    mirror_ok,
    snapshot,
)
from sqlalchemy import Engine, event

from engine.runtime.clock import VirtualClock
from engine.runtime.errors import DeployRefused
from engine.runtime.scheduler import EngineScheduler
from engine.runtime.service import EngineService, EventSubmission, NewInstance

DAY = dt.timedelta(days=1)


def fired_in_log(svc: EngineService, iid: str) -> list[tuple[str, str]]:
    """Every deadline firing the input log explains, as (deadline, due instant)."""
    return sorted((e["subject"], e["at"]) for t in svc.timeline(iid)
                  for e in t["explanations"] if e["kind"] == "deadline")


def shanghai(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(
        tzinfo=dt.timezone(dt.timedelta(hours=8))).astimezone(dt.UTC)


# --------------------------------------------------------------------------- deploy
def test_deploy_is_idempotent_and_newest_wins(svc: EngineService) -> None:
    ids = deploy(svc, MINIMAL)
    assert len(ids) == 1 and len(ids[0]) == 64
    assert deploy(svc, MINIMAL) == ids
    assert [v.id for v in svc.versions()] == ids
    v = svc.latest("调解协议")
    assert v is not None and v.id == ids[0] and v.deploy_seq == 1 and v.deployed_by == "clerk"
    assert svc.latest("nothing") is None
    # another version of the same contract becomes the newest
    other = MINIMAL.read_bytes().replace(b'version "1.0.0"', b'version "1.1.0"')
    ids2 = svc.deploy(other, "mediation_minimal.jrule", "judge", report_hash="ab" * 32)
    assert ids2 != ids
    latest = svc.latest("调解协议")
    assert latest is not None and latest.id == ids2[0] and latest.deploy_seq == 2
    assert latest.report_hash == "ab" * 32
    assert [v.version for v in svc.versions("调解协议")] == ["1.0.0", "1.1.0"]


def test_deploy_refuses_a_rule_set_with_errors(svc: EngineService) -> None:
    with pytest.raises(DeployRefused) as info:
        svc.deploy(b"contract x {\n  state s initial\n  goto nowhere\n}\n", "bad.jrule", "c")
    assert info.value.diagnostics and info.value.diagnostics[0]["code"].startswith("E")
    assert "bad.jrule" in info.value.message
    assert svc.versions() == []


# --------------------------------------------------------------------------- create
def test_create_instance_and_idempotent_create(svc: EngineService) -> None:
    deploy(svc, MINIMAL)
    o = svc.create_instance("调解协议", "case-1", minimal_terms(),
                                parties={"申请人": "张三", "被申请人": "李四"}, court="京0105")
    assert o.accepted and o.seq == 1 and o.state == "履行中" and o.status == "active"
    assert not o.duplicate
    again = svc.create_instance("调解协议", "case-1", minimal_terms())
    assert again.accepted and again.duplicate and again.seq == 1
    assert again.explanations == o.explanations
    other = svc.create_instance("调解协议", "case-1", minimal_terms(amount="5.00"))
    assert not other.accepted and other.code == "exists"
    st = svc.state("case-1")
    assert st["parties"] == {"申请人": "张三", "被申请人": "李四"} and st["court"] == "京0105"
    assert st["document"]["state"] == "履行中"
    assert len(svc.timeline("case-1")) == 1
    assert mirror_ok(svc, "case-1")
    # with a key: same key -> first result; another key -> exists
    k = svc.create_instance("调解协议", "case-2", minimal_terms(), key="create-2")
    assert svc.create_instance("调解协议", "case-2", minimal_terms(), key="create-2").duplicate
    assert k.accepted
    assert svc.create_instance("调解协议", "case-2", minimal_terms(),
                                   key="other").code == "exists"


def test_create_refusals_write_nothing(svc: EngineService) -> None:
    deploy(svc, MINIMAL)
    before = svc.counts()
    bad = svc.create_instance("调解协议", "c", {"金额": "1000.00"})
    assert not bad.accepted and bad.code == "bad_terms" and "履行期限" in (bad.message or "")
    assert svc.create_instance("nope", "c", {}).code == "unknown_contract"
    assert svc.create_instance("调解协议", "c", minimal_terms(amount="1.234")).code \
        == "bad_terms"
    assert svc.counts() == before


# --------------------------------------------------------------------------- events
def test_events_accepted_and_refused(svc: EngineService, vclock: VirtualClock) -> None:
    deploy(svc, MINIMAL)
    svc.create_instance("调解协议", "c", minimal_terms())
    vclock.advance(DAY)
    ok = svc.submit_event("c", "付款", "被申请人", {"数额": "400.00"}, "pay-1")
    assert ok.accepted and ok.seq == 2 and ok.state == "履行中"
    assert ok.explanations[0]["changes"] == [["已付", "0.00", "400.00"]]
    assert "text_zh" in ok.explanations[0] and "text_en" in ok.explanations[0]
    before = snapshot(svc, "c")
    cases = [
        (("c", "付款", "旁观者", {"数额": "1.00"}), "role_not_allowed"),
        (("c", "付款", "被申请人", {"数额": 1}), "bad_payload"),
        (("c", "付款", "被申请人", {"数额": "1.00", "extra": 1}), "bad_payload"),
        (("c", "付款", "被申请人", "{not json"), "bad_payload"),
        (("c", "付款", "被申请人", {"数额": "0.00"}), "no_rule_applies"),
        (("c", "撤回", "被申请人", {}), "unknown_event"),
        (("nope", "付款", "被申请人", {"数额": "1.00"}), "no_instance"),
    ]
    for args, code in cases:
        r = svc.submit_event(*args, idempotency_key=f"bad-{code}")
        assert not r.accepted and r.code == code, (args, r)
        assert r.message
    assert snapshot(svc, "c") == before
    done = svc.submit_event("c", "付款", "申请人", {"数额": "600.00"}, "pay-2")
    assert done.accepted and done.state == "已履行" and done.status == "ended"
    after = snapshot(svc, "c")
    late = svc.submit_event("c", "付款", "被申请人", {"数额": "1.00"}, "pay-3")
    assert not late.accepted and late.code == "terminal"
    assert snapshot(svc, "c") == after
    assert svc.replay("c")


def test_the_log_stores_explanations_as_data_and_renders_them_on_read(
        svc: EngineService, vclock: VirtualClock) -> None:
    from sqlalchemy import select, update

    from engine.runtime.models import T_INPUTS

    deploy(svc, MINIMAL)
    created = svc.create_instance("调解协议", "c", minimal_terms())
    vclock.advance(DAY)
    ok = svc.submit_event("c", "付款", "被申请人", {"数额": "400.00"}, "pay-1")
    answered = [created.to_json(), ok.to_json()]
    with svc.db.read() as conn:
        stored = [json.loads(r) for r in conn.scalars(
            select(T_INPUTS.c.result).where(T_INPUTS.c.instance_id == "c")
            .order_by(T_INPUTS.c.seq))]
    # the words are not stored: the data they are rendered from is
    for result in stored:
        for e in result["explanations"]:
            assert "text_en" not in e and "text_zh" not in e and e["zone"]
    assert stored[0]["explanations"][0]["armed"][0]["how_zh"]  # the calendar's words are
    # every reader shows the texts the caller was answered with
    timeline = svc.timeline("c")
    assert [t["explanations"] for t in timeline] == [a["explanations"] for a in answered]
    assert "已付：0.00 → 400.00" in timeline[1]["explanations"][0]["text_zh"]
    again = svc.submit_event("c", "付款", "被申请人", {"数额": "400.00"}, "pay-1")
    assert again.duplicate and again.to_json() == ok.to_json()
    assert svc.pending_deadlines("c")[0]["how_en"]
    # a row written before (its explanations with their texts) reads exactly as it did
    with svc.db.write() as conn:
        conn.execute(update(T_INPUTS).where(T_INPUTS.c.instance_id == "c", T_INPUTS.c.seq == 2)
                     .values(result=json.dumps(answered[1], ensure_ascii=False)))
    assert svc.timeline("c") == timeline
    old = svc.submit_event("c", "付款", "被申请人", {"数额": "400.00"}, "pay-1")
    assert old.duplicate and old.to_json() == ok.to_json()
    assert svc.replay("c")


def test_same_key_twice_is_applied_once(svc: EngineService, vclock: VirtualClock) -> None:
    deploy(svc, MINIMAL)
    svc.create_instance("调解协议", "c", minimal_terms())
    first = svc.submit_event("c", "付款", "被申请人", {"数额": "100.00"}, "k")
    vclock.advance(dt.timedelta(hours=1))
    second = svc.submit_event("c", "付款", "被申请人", {"数额": "100.00"}, "k")
    # a different body under the same key still gets the first result
    third = svc.submit_event("c", "付款", "被申请人", {"数额": "999.00"}, "k")
    assert second.duplicate and third.duplicate and not first.duplicate
    for r in (second, third):
        assert r.to_json() == first.to_json()
    assert svc.state("c")["document"]["vars"] == [["已付", "100.00"]]
    assert [t["seq"] for t in svc.timeline("c")] == [1, 2]
    # a batch with the same key twice, and an already-used key
    outs = svc.submit_events([
        EventSubmission("c", "付款", "被申请人", {"数额": "1.00"}, "b1"),
        EventSubmission("c", "付款", "被申请人", {"数额": "1.00"}, "b1"),
        EventSubmission("c", "付款", "被申请人", {"数额": "1.00"}, "k"),
    ])
    assert [o.accepted for o in outs] == [True, True, True]
    assert [o.duplicate for o in outs] == [False, True, True]
    assert outs[1].seq == outs[0].seq == 3 and outs[2].seq == 2
    assert svc.state("c")["document"]["vars"] == [["已付", "101.00"]]


def test_group_commit_applies_each_event_as_if_alone(svc: EngineService) -> None:
    deploy(svc, MINIMAL)
    outs = svc.create_instances(
        NewInstance("调解协议", f"g{i}", minimal_terms()) for i in range(20))
    assert all(o.accepted for o in outs)
    batch = [EventSubmission(f"g{i % 20}", "付款", "被申请人", {"数额": "10.00"}, f"e{i}")
             for i in range(100)]
    batch.insert(50, EventSubmission("g3", "付款", "路人", {"数额": "10.00"}, "bad"))
    outs2 = svc.submit_events(batch)
    assert [o.accepted for o in outs2].count(False) == 1 and outs2[50].code == "role_not_allowed"
    for i in range(20):
        st = svc.state(f"g{i}")
        assert st["seq"] == 6 and st["document"]["vars"] == [["已付", "50.00"]]
        assert svc.replay(f"g{i}")
    # the same batch again: every event is a duplicate, nothing applied
    again = svc.submit_events(batch)
    assert all(o.duplicate for o in again if o.accepted)
    assert svc.state("g0")["seq"] == 6


# --------------------------------------------------------------------------- deadlines
def test_deadlines_fire_across_months(svc: EngineService, vclock: VirtualClock) -> None:
    """The mediation example with three instalments, lived through month by month."""
    deploy(svc, MEDIATION)
    plan = [{"到期日": "2025-10-31", "金额": "1000.00"},
            {"到期日": "2025-11-30", "金额": "1000.00"},
            {"到期日": "2025-12-31", "金额": "1000.00"}]
    terms = {"协议生效日": "2025-09-01", "履行计划": plan}
    assert svc.create_instance("调解协议履行", "paid", terms).accepted
    assert svc.create_instance("调解协议履行", "unpaid", terms).accepted
    names = {d["deadline"]: d for d in svc.pending_deadlines("paid")}
    assert set(names) == {"到期提醒", "本期届满", "司法确认申请期限"}
    assert "2025-10-09" in names["司法确认申请期限"]["how_en"]  # after the National Day holiday
    assert names["司法确认申请期限"]["how_zh"].startswith("期限「司法确认申请期限」")
    assert svc.next_due() == shanghai("2025-10-10 00:00")  # 24:00 on 2025-10-09
    # month by month: "paid" pays each instalment, "unpaid" pays only the first
    payday = {"2025-10": "2025-10-20", "2025-11": "2025-11-20"}
    fired = 0
    for month in ("2025-10", "2025-11"):
        vclock.set(shanghai(f"{payday[month]} 09:00"))
        fired += svc.run_due()
        svc.submit_event("paid", "付款", "权利人", {"金额": "1000.00",
                                                         "付款日": payday[month]}, f"p{month}")
        if month == "2025-10":
            svc.submit_event("unpaid", "付款", "权利人", {"金额": "1000.00",
                                                               "付款日": payday[month]}, "u1")
    vclock.set(shanghai("2025-12-02 09:00"))
    fired += svc.run_due()
    assert fired >= 6
    assert svc.state("unpaid")["state"] == "已提起诉讼"
    assert svc.state("unpaid")["status"] == "ended"
    filing = [o for o in svc.outbox("unpaid") if o["action"] == "file_trial_case"]
    assert len(filing) == 1 and filing[0]["args"]["claim_amount"] == "2000.00"
    assert svc.state("paid")["state"] == "履行中"
    assert svc.state("paid")["document"]["vars"][1] == ["本期", 2]
    reminders = [o for o in svc.outbox("unpaid") if o["action"] == "remind"]
    assert len(reminders) == 1  # the first instalment's reminder, not paid yet then
    vclock.set(shanghai("2026-01-05 09:00"))
    svc.run_due()
    assert svc.state("paid")["state"] == "已提起诉讼"  # the last instalment went unpaid
    filing = [o for o in svc.outbox("paid") if o["action"] == "file_trial_case"]
    assert len(filing) == 1 and filing[0]["args"]["claim_amount"] == "1000.00"
    for iid in ("paid", "unpaid"):
        assert svc.replay(iid)
        assert mirror_ok(svc, iid)
        rows = svc.timers(iid)
        assert all(r["status"] in ("fired", "cancelled", "pending") for r in rows)
        fired_rows = sorted((r["name"], r["due_at"]) for r in rows if r["status"] == "fired")
        assert fired_rows == fired_in_log(svc, iid)


def test_on_time_firing_is_marked_with_its_lateness(svc: EngineService,
                                                    vclock: VirtualClock) -> None:
    deploy(svc, MINIMAL)
    svc.create_instance("调解协议", "c", minimal_terms(due="2025-09-30"))
    due = svc.next_due()
    assert due == shanghai("2025-09-26 00:00")  # the reminder, 3 working days before
    vclock.set(due - dt.timedelta(seconds=1))
    assert svc.run_due() == 0
    vclock.set(due + dt.timedelta(seconds=30))
    assert svc.run_due() == 1
    row = next(r for r in svc.timers("c") if r["name"] == "提醒")
    assert row["status"] == "fired" and row["late_seconds"] == 30
    assert svc.next_due() == shanghai("2025-10-01 00:00")
    ticks = [t for t in svc.timeline("c") if t["kind"] == "tick"]
    assert len(ticks) == 1 and ticks[0]["explanations"][0]["kind"] == "deadline"
    assert svc.run_due() == 0  # nothing more due; nothing logged
    assert len(svc.timeline("c")) == 2


def test_deadlines_missed_while_down_fire_late_after_restart(store_url: str) -> None:
    clock = VirtualClock(T0)
    first = EngineService(store_url, clock, mode="test")
    deploy(first, MINIMAL)
    for i in range(5):
        first.create_instance("调解协议", f"c{i}", minimal_terms(confirmed=i % 2 == 0))
    first.close()  # the engine stops; time goes on
    clock.set(shanghai("2025-10-11 10:00"))
    second = EngineService(store_url, clock, mode="test")
    try:
        assert second.next_due() == shanghai("2025-09-26 00:00")
        assert second.run_due() == 10
        for i in range(5):
            st = second.state(f"c{i}")
            assert st["state"] == ("已申请执行" if i % 2 == 0 else "已起诉")
            rows = second.timers(f"c{i}")
            due = {r["name"]: r for r in rows}
            assert due["到期"]["status"] == "fired"
            assert due["到期"]["late_seconds"] == 10 * 86400 + 10 * 3600
            tick = next(t for t in second.timeline(f"c{i}") if t["kind"] == "tick")
            texts = [e["text_en"] for e in tick["explanations"]]
            assert any("late" in t for t in texts), texts
            assert tick["explanations"][1]["late_seconds"] == 10 * 86400 + 10 * 3600
            assert second.replay(f"c{i}")
        assert second.next_due() is None
        assert second.counts()["outbox"] == 10
    finally:
        second.close()


# --------------------------------------------------------------------------- approvals
def _freeze(svc: EngineService, iid: str) -> str:
    svc.create_instance("freeze_flow", iid, {"owed": "5000.00", "rate": "0.01"})
    r = svc.submit_event(iid, "property_found", "officer",
                             {"amount": "8000.00", "kind": "bank_deposit"}, f"{iid}-found")
    assert r.accepted and r.approvals[0]["status"] == "requested", r
    return str(r.approvals[0]["id"])


def test_approvals_confirm_reject_and_timeout(svc: EngineService,
                                              vclock: VirtualClock) -> None:
    deploy(svc, APPROVALS)
    a1, a2, a3 = (_freeze(svc, f"f{i}") for i in (1, 2, 3))
    pending = svc.pending_approvals(role="judge")
    assert [p["id"] for p in pending] == [a1, a2, a3]
    assert pending[0]["action"] == "freeze" and pending[0]["args"]["amount"] == "5000.00"
    assert svc.pending_approvals(role="officer") == []
    # the wrong role is refused and nothing changes
    before = snapshot(svc, "f1")
    wrong = svc.decide(a1, "officer", True, "me")
    assert not wrong.accepted and wrong.code == "role_not_allowed"
    assert snapshot(svc, "f1") == before
    assert svc.decide("no-such", "judge", True).code == "unknown_approval"
    # confirmed: the action leaves through the outbox, on_approved runs
    vclock.advance(dt.timedelta(hours=2))
    ok = svc.decide(a1, "judge", True, "查明属实", key="d1", by="王法官")
    assert ok.accepted and ok.state == "frozen_state"
    assert [a["action"] for a in ok.actions] == ["freeze"]
    assert svc.decide(a1, "judge", True, "again", key="d1").duplicate
    assert svc.decide(a1, "judge", True, "again", key="d9").code == "unknown_approval"
    rows = svc.approvals("f1")
    assert rows[0]["status"] == "approved" and rows[0]["decided_by"] == "王法官"
    assert rows[0]["reason"] == "查明属实"
    assert [o["action"] for o in svc.outbox("f1")] == ["freeze"]
    # rejected: no action, the instance stays where it waited
    no = svc.decide(a2, "judge", False, "账户已被他案冻结")
    assert no.accepted and no.actions == ()
    assert svc.approvals("f2")[0]["status"] == "rejected"
    assert svc.outbox("f2") == []
    # nobody decides f3: its timeout fires like any deadline
    due = dt.datetime.fromisoformat(svc.approvals("f3")[0]["due_at"].replace("Z", "+00:00"))
    vclock.set(due + dt.timedelta(minutes=5))
    assert svc.run_due() >= 1
    assert svc.approvals("f3")[0]["status"] == "timeout"
    assert svc.state("f3")["state"] == "lapsed"
    assert [o["action"] for o in svc.outbox("f3")] == ["notify"]
    t = next(r for r in svc.timers("f3") if r["kind"] == "approval")
    assert t["status"] == "fired" and t["late_seconds"] == 300
    assert svc.pending_approvals() == []
    for iid in ("f1", "f2", "f3"):
        assert svc.replay(iid) and mirror_ok(svc, iid)


# --------------------------------------------------------------------------- start-up
def _statements_during(fn: Any) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return seen


def test_startup_does_not_read_pending_deadlines(store_url: str) -> None:
    clock = VirtualClock(T0)
    svc = EngineService(store_url, clock, mode="test")
    deploy(svc, MINIMAL)
    svc.close()

    def start() -> None:
        s = EngineService(store_url, clock, mode="test")
        sched = EngineScheduler(s, sweep_seconds=3600)
        sched.start()
        time.sleep(0.2)  # the first wake-up: run_due finds nothing due
        sched.shutdown()
        s.close()

    runs = []
    for n in (2, 300):
        svc = EngineService(store_url, clock, mode="test")
        svc.create_instances(NewInstance("调解协议", f"n{n}-{i}", minimal_terms())
                             for i in range(n))
        pending = svc.counts()["pending_timers"]
        svc.close()
        runs.append((pending, _statements_during(start)))
    (small, first), (large, second) = runs
    assert large > 100 * small / 2
    assert first == second  # the same statements whatever the number of pending deadlines
    timers_reads = [s for s in first if "FROM timers" in s]
    assert timers_reads and all("min(timers.due_at)" in s or "LIMIT" in s for s in timers_reads)


# --------------------------------------------------------------------------- scheduler
def test_scheduler_wakes_the_engine(svc: EngineService, vclock: VirtualClock) -> None:
    deploy(svc, MINIMAL)
    sched = EngineScheduler(svc, sweep_seconds=3600)
    sched.start()
    try:
        svc.create_instance("调解协议", "c", minimal_terms())
        vclock.set(shanghai("2025-10-02 09:00"))  # advancing a virtual clock wakes it
        deadline = time.monotonic() + 20
        while svc.state("c")["state"] == "履行中" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.state("c")["state"] == "已申请执行"
        assert sched.fired == 2 and sched.last_error is None
    finally:
        sched.shutdown()


def test_scheduler_wakes_at_the_due_instant_of_a_running_clock(store_url: str) -> None:
    due = shanghai("2025-09-26 00:00")
    # one real second = one virtual hour, starting 2 virtual hours before the reminder
    clock = VirtualClock(due - dt.timedelta(hours=2), speed=3600.0)
    svc = EngineService(store_url, clock, mode="sandbox")
    deploy(svc, MINIMAL)
    svc.create_instance("调解协议", "c", minimal_terms())
    sched = EngineScheduler(svc, sweep_seconds=3600)
    sched.start()
    try:
        deadline = time.monotonic() + 20
        while sched.fired == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        row = next(r for r in svc.timers("c") if r["name"] == "提醒")
        assert row["status"] == "fired"
        assert row["late_seconds"] is not None and row["late_seconds"] < 1800  # < 0.5 s real
    finally:
        sched.shutdown()
        svc.close()


# --------------------------------------------------------------------------- reading
def test_timeline_is_bilingual_and_outcomes_are_json(svc: EngineService,
                                                     vclock: VirtualClock) -> None:
    deploy(svc, MINIMAL)
    svc.create_instance("调解协议", "c", minimal_terms(confirmed=False))
    vclock.set(shanghai("2025-10-09 09:00"))
    svc.run_due()
    timeline = svc.timeline("c")
    assert [t["kind"] for t in timeline] == ["create", "tick"]
    last = timeline[-1]["explanations"][-1]
    assert "已起诉" in last["text_zh"] and "State:" in last["text_en"]
    assert json.loads(json.dumps(timeline, ensure_ascii=False)) == timeline
    assert svc.pending_deadlines("c") == []
    assert svc.outbox("c")[-1]["action"] == "file_trial_case"


def test_stored_results_are_compact_json_any_reader_reads() -> None:
    from engine.runtime.results import compact_json

    value = {"a": 'x\u2028\x01\x7f"\\中', "b": [1, True, None, {"c": "中"}], "big": 2**70}
    text = compact_json(value)  # the integer beyond 64 bits takes the standard encoder
    assert json.loads(text) == value and " " not in text
    small = {"k": ["中", 1], "z": "\n"}
    assert compact_json(small) == '{"k":["中",1],"z":"\\n"}'


def test_the_fast_constructor_of_an_applied_outcome_builds_the_same_outcome() -> None:
    import dataclasses

    from engine.runtime.results import Outcome

    args = dict(instance_id="i", seq=2, state="s", status="active", at="2025-01-01T00:00:00Z",
                contract="c", explained=({"kind": "event"},), actions=(), approvals=(),
                extra={"x": 1})
    fast, slow = Outcome.applied(**args), Outcome(accepted=True, **args)  # type: ignore[arg-type]
    assert fast == slow and repr(fast) == repr(slow)
    # every field set (a field added to Outcome must be added to Outcome.applied)
    assert set(vars(fast)) == {f.name for f in dataclasses.fields(Outcome)}
    assert dataclasses.replace(fast, duplicate=True).duplicate
    try:
        fast.seq = 3  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("an applied outcome must stay frozen")


def test_driver_level_statements_raise_sqlalchemy_errors(svc: EngineService) -> None:
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from engine.runtime.unit import run_sql

    deploy(svc, MINIMAL)
    svc.create_instance("调解协议", "c", minimal_terms())
    row = ("c", 1, "event", "{}", None, "{}", "0" * 64, "2025-01-01 00:00:00.000000",
           "2025-01-01 00:00:00.000000")
    sql = ("INSERT INTO inputs (instance_id, seq, kind, body, idempotency_key, result, "
           "state_hash, at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    if svc.db.is_postgres:
        sql = sql.replace("?", "%s")
    # seq 1 exists: the group's retry logic must see SQLAlchemy's IntegrityError
    with pytest.raises(IntegrityError), svc.db.write() as conn:
        run_sql(conn, sql, [row], many=True)
    with pytest.raises(DBAPIError), svc.db.write() as conn:
        run_sql(conn, "SELECT nothing FROM nowhere", ())
    assert len(svc.timeline("c")) == 1
