"""Random histories through the durable service: replay always equals the stored state.

A Hypothesis state machine creates instances, submits events (right and wrong
roles, good and bad payloads, fresh and reused idempotency keys), decides
approvals, moves the clock and runs due deadlines.  After every step, every
instance it made replays from its input log to exactly the stored document,
its pending timer rows mirror its state, and every refused input changed
nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from runtime_support import APPROVALS, MINIMAL, T0, deploy, mirror_ok

from engine.runtime.service import EngineService


class ResettableClock:
    """A test clock each example starts again from :data:`T0` (instances never go back:
    each input's instant is at least its instance's last one)."""

    def __init__(self) -> None:
        self.t = T0

    def now(self) -> dt.datetime:
        return self.t


def _fingerprint(svc: EngineService, iid: str) -> tuple[Any, ...]:
    st_ = svc.state(iid)
    return st_["state_hash"], st_["seq"], svc.timers(iid), svc.outbox(iid), svc.approvals(iid)


class Histories(RuleBasedStateMachine):
    svc: EngineService
    clock: ResettableClock
    seen: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        self.clock.t = T0
        self.prefix = uuid.uuid4().hex[:8]
        self.mediation: list[str] = []
        self.freezes: list[str] = []
        self.keys: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.counter = 0

    def _id(self) -> str:
        self.counter += 1
        return f"{self.prefix}-{self.counter}"

    # --- rules --------------------------------------------------------------------
    @rule(days=st.integers(3, 50), amount=st.integers(1, 20), confirmed=st.booleans())
    def create_mediation(self, days: int, amount: int, confirmed: bool) -> None:
        iid = self._id()
        due = (self.clock.t + dt.timedelta(days=days)).date().isoformat()
        o = self.svc.create_instance("调解协议", iid, {"金额": f"{amount * 100}.00",
                                                        "履行期限": due, "司法确认": confirmed})
        assert o.accepted, o
        self.mediation.append(iid)
        self.keys[iid] = []

    @rule(owed=st.integers(1, 90), found=st.integers(0, 9000))
    def create_freeze(self, owed: int, found: int) -> None:
        iid = self._id()
        o = self.svc.create_instance("freeze_flow", iid, {"owed": f"{owed * 100}.00",
                                                          "rate": "0.015"})
        assert o.accepted, o
        self.freezes.append(iid)
        self.keys[iid] = []
        if found:  # a deposit turns up at once: a freeze waits for the judge
            o = self.svc.submit_event(iid, "property_found", "officer",
                                      {"amount": f"{found}.00", "kind": "bank_deposit"}, "k0")
            assert o.accepted and o.approvals, o
            self.keys[iid].append(("k0", o.to_json()))

    @precondition(lambda self: self.mediation)
    @rule(data=st.data(), cents=st.integers(-100, 150_000),
          role=st.sampled_from(["被申请人", "申请人", "路人"]), reuse=st.booleans())
    def pay(self, data: st.DataObject, cents: int, role: str, reuse: bool) -> None:
        iid = data.draw(st.sampled_from(self.mediation))
        amount = f"{cents // 100}.{cents % 100:02d}" if cents >= 0 else "-1.00"
        self._submit(iid, "付款", role, {"数额": amount}, data, reuse)

    @precondition(lambda self: self.freezes)
    @rule(data=st.data(), amount=st.integers(1, 9000), found=st.booleans(),
          kind=st.sampled_from(["bank_deposit", "real_estate"]),
          role=st.sampled_from(["officer", "officer", "officer", "creditor"]),
          reuse=st.booleans())
    def officer_reports(self, data: st.DataObject, amount: int, found: bool, kind: str,
                        role: str, reuse: bool) -> None:
        iid = data.draw(st.sampled_from(self.freezes))
        if found:
            self._submit(iid, "property_found", role,
                         {"amount": f"{amount}.00", "kind": kind}, data, reuse)
        else:
            self._submit(iid, "nothing_found", role, {}, data, reuse)

    def _submit(self, iid: str, event_name: str, role: str, payload: dict[str, Any],
                data: st.DataObject, reuse: bool) -> None:
        used = self.keys[iid]
        if reuse and used:
            key, first = data.draw(st.sampled_from(used))
            before = _fingerprint(self.svc, iid)
            again = self.svc.submit_event(iid, event_name, role, payload, key)
            self.seen.update(["duplicate key"])
            assert again.duplicate and again.to_json() == first
            assert _fingerprint(self.svc, iid) == before
            return
        key = f"k{len(used)}"
        before = _fingerprint(self.svc, iid)
        o = self.svc.submit_event(iid, event_name, role, payload, key)
        self.seen.update([f"{event_name}: {'applied' if o.accepted else o.code}"])
        if o.accepted:
            used.append((key, o.to_json()))
        else:
            assert o.code and o.message
            assert _fingerprint(self.svc, iid) == before, o

    @rule(hours=st.integers(1, 24 * 40), fire=st.booleans())
    def time_passes(self, hours: int, fire: bool) -> None:
        self.clock.t += dt.timedelta(hours=hours)
        if fire:
            self.deadlines_fire()

    @rule()
    def deadlines_fire(self) -> None:
        fired = self.svc.run_due()
        self.seen.update([f"run_due fired {'some' if fired else 'none'}"])

    @precondition(lambda self: self.freezes)
    @rule(data=st.data(), approve=st.booleans(),
          right_role=st.sampled_from([True, True, True, False]))
    def judge_decides(self, data: st.DataObject, approve: bool, right_role: bool) -> None:
        pending = [a for a in self.svc.pending_approvals() if a["instance"] in self.freezes]
        if not pending:
            return
        a = data.draw(st.sampled_from(pending))
        before = _fingerprint(self.svc, a["instance"])
        o = self.svc.decide(a["id"], "judge" if right_role else "officer", approve, "理由")
        self.seen.update([f"decision {'approved' if approve else 'rejected'}: "
                          f"{'applied' if o.accepted else o.code}"])
        if not o.accepted:
            assert _fingerprint(self.svc, a["instance"]) == before

    # --- invariants ---------------------------------------------------------------
    @invariant()
    def replay_equals_stored_state(self) -> None:
        for iid in self.mediation + self.freezes:
            report = self.svc.replay_report(iid)
            assert report["equal"] and report["first_divergent_seq"] is None, report
            assert mirror_ok(self.svc, iid)


def test_replay_equals_state_after_random_histories(svc: EngineService) -> None:
    deploy(svc, MINIMAL)
    deploy(svc, APPROVALS)
    clock = ResettableClock()
    svc.clock = clock
    seen: Counter[str] = Counter()
    machine = type("BoundHistories", (Histories,), {"svc": svc, "clock": clock, "seen": seen})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=15, stateful_step_count=20, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
    # the histories did reach what they are meant to exercise
    assert seen["run_due fired some"] and seen["duplicate key"] and seen["付款: applied"]
    assert any(k.startswith("decision") and k.endswith("applied") for k in seen)
    assert any(k.endswith("role_not_allowed") for k in seen)
