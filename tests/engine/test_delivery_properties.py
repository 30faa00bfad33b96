"""Property: whatever the handler does, each key takes effect at most once, the
dispatcher never re-delivers a key after a success, and every row ends
delivered or in an incident.

A hypothesis state machine writes outbox rows, each with a random script of
what its deliveries will meet (success, transient or permanent failure, the
dispatcher dying before or after the receiver acted, a lost reply), runs the
dispatcher, moves the virtual clock, and retries or resolves incidents as a
person would.  The receiver is a fake that deduplicates by key, like a real one.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from delivery_helpers import T0, add_action, clear, incidents, rows, store
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import Engine

from engine.runtime.clock import VirtualClock
from engine.runtime.dispatcher import Dispatcher
from engine.runtime.handlers import Delivery, PermanentFailure, Receipt, TransientFailure

MAX_ATTEMPTS = 4
OUTCOMES = ("ok", "transient", "permanent", "crash_before", "crash_after", "lost_reply")

__all__ = ["store"]  # the fixture, from delivery_helpers


class Crash(BaseException):
    """The dispatcher process dies here (nothing after this line runs)."""


class DedupingReceiver:
    """A receiving system that honours idempotency keys, driven by scripts."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[str]] = {}
        self.effects: dict[str, int] = {}  # times an effect took place (<= 1)
        self.replies: dict[str, Receipt] = {}
        self.calls: dict[str, int] = {}
        self.successes: dict[str, int] = {}  # success replies the dispatcher got
        self.after_success: list[str] = []  # keys delivered again after a success

    def _act(self, key: str) -> Receipt:
        if key not in self.replies:
            self.effects[key] = self.effects.get(key, 0) + 1
            self.replies[key] = {"case_number": f"(2026)京0105执{len(self.replies) + 1}号"}
        return dict(self.replies[key])

    def deliver(self, delivery: Delivery) -> Receipt:
        key = delivery.key
        self.calls[key] = self.calls.get(key, 0) + 1
        if self.successes.get(key):
            self.after_success.append(key)
        script = self.scripts.get(key, [])
        outcome = script.pop(0) if script else "ok"
        if outcome == "transient":
            raise TransientFailure("HTTP 503")
        if outcome == "permanent":
            raise PermanentFailure("HTTP 422")
        if outcome == "crash_before":
            raise Crash()
        reply = self._act(key)
        if outcome == "crash_after":
            raise Crash()
        if outcome == "lost_reply":
            raise TransientFailure("timed out")
        self.successes[key] = self.successes.get(key, 0) + 1
        return reply


class DeliveryMachine(RuleBasedStateMachine):
    store: Engine  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        clear(self.store)
        self.clock = VirtualClock(T0)
        self.receiver = DedupingReceiver()
        self.dispatcher = Dispatcher(self.store, self.receiver, self.clock,
                                     max_attempts=MAX_ATTEMPTS, batch=3)
        self.keys: list[str] = []
        self.handled_by_hand: set[str] = set()

    @rule(instance=st.sampled_from(["i1", "i2"]),
          script=st.lists(st.sampled_from(OUTCOMES), max_size=8))
    def write_action(self, instance: str, script: list[str]) -> None:
        key = f"{instance}:{len(self.keys) + 1}:0"
        self.receiver.scripts[key] = script
        add_action(self.store, key, at=self.clock.now())
        self.keys.append(key)

    @rule()
    def run_dispatcher(self) -> None:
        try:
            self.dispatcher.run_once()
        except Crash:
            pass

    @rule(seconds=st.sampled_from([1, 30, 120, 301, 3600]))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(dt.timedelta(seconds=seconds))

    @precondition(lambda self: self._open())
    @rule(data=st.data())
    def retry_incident(self, data: st.DataObject) -> None:
        incident = data.draw(st.sampled_from(self._open()))
        self.dispatcher.retry_incident(incident["id"], by="clerk")

    @precondition(lambda self: self._open())
    @rule(data=st.data())
    def resolve_incident(self, data: st.DataObject) -> None:
        incident = data.draw(st.sampled_from(self._open()))
        self.dispatcher.resolve_incident(incident["id"], by="judge", note="done by hand")
        self.handled_by_hand.add(self._key_of(incident["outbox_id"]))

    def _open(self) -> list[dict[str, Any]]:
        return [i for i in incidents(self.store) if i["status"] == "open"]

    def _key_of(self, outbox_id: int) -> str:
        return next(str(r["key"]) for r in rows(self.store) if r["id"] == outbox_id)

    @invariant()
    def each_key_takes_effect_at_most_once(self) -> None:
        assert all(n == 1 for n in self.receiver.effects.values())
        assert self.receiver.after_success == []
        assert all(n == 1 for n in self.receiver.successes.values())

    @invariant()
    def rows_and_incidents_agree(self) -> None:
        open_by_row: dict[int, int] = {}
        for incident in incidents(self.store):
            if incident["status"] == "open":
                open_by_row[incident["outbox_id"]] = open_by_row.get(incident["outbox_id"], 0) + 1
        for r in rows(self.store):
            assert r["status"] in ("pending", "delivering", "delivered", "incident")
            assert 0 <= r["attempts"] <= MAX_ATTEMPTS
            if r["status"] == "delivered":
                assert json.loads(r["receipt"]) == self.receiver.replies[r["key"]]
                assert self.receiver.successes.get(r["key"]) == 1
            else:
                assert not self.receiver.successes.get(r["key"])
            if r["status"] == "incident":
                assert open_by_row.get(r["id"], 0) == (0 if r["key"] in self.handled_by_hand
                                                      else 1)
            else:
                assert r["id"] not in open_by_row

    def teardown(self) -> None:
        """Let time run out: every row must settle, delivered or in an incident."""
        for _ in range(10 * MAX_ATTEMPTS * max(1, len(self.keys))):
            due = self.dispatcher.next_due()
            if due is None:
                break
            self.clock.set(max(due, self.clock.now()))
            self.run_dispatcher()
        final = rows(self.store)
        assert all(r["status"] in ("delivered", "incident") for r in final), final
        assert {r["key"] for r in final} == set(self.keys)
        self.each_key_takes_effect_at_most_once()
        self.rows_and_incidents_agree()


def test_every_key_settles_and_takes_effect_at_most_once(store: Engine) -> None:
    examples = 25 if store.dialect.name == "postgresql" else 60
    DeliveryMachine.store = store
    test_case = DeliveryMachine.TestCase
    test_case.settings = settings(
        max_examples=examples, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    test_case().runTest()
