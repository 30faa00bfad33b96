"""The dispatcher: claim, deliver, retry with backoff, incidents, lease recovery.

Every test runs on SQLite and, with ``JRULE_TEST_DATABASE_URL``, PostgreSQL;
time is a virtual clock so the retry schedule is checked to the millisecond.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from delivery_helpers import T0, add_action, incidents, row, rows, seed, store
from sqlalchemy import Engine, update
from sqlalchemy.orm import sessionmaker

from engine.runtime.clock import VirtualClock
from engine.runtime.db import Database
from engine.runtime.dispatcher import Backoff, Dispatcher, IncidentError
from engine.runtime.errors import NotFound
from engine.runtime.handlers import (
    Delivery,
    LocalHandler,
    PermanentFailure,
    Receipt,
    RoutingHandler,
    TransientFailure,
)
from engine.runtime.models import Base, Outbox

CASE = {"case_number": "(2026)京0105执1号"}

__all__ = ["store"]  # the fixture, from delivery_helpers


class Scripted:
    """A handler that plays a script of outcomes per key, then succeeds."""

    def __init__(self, script: dict[str, list[Any]] | None = None,
                 clock: VirtualClock | None = None) -> None:
        self.script = script or {}
        self.clock = clock
        self.calls: list[Delivery] = []
        self.at: list[dt.datetime] = []

    def deliver(self, delivery: Delivery) -> Receipt:
        self.calls.append(delivery)
        if self.clock is not None:
            self.at.append(self.clock.now())
        plan = self.script.get(delivery.key, [])
        outcome = plan.pop(0) if plan else CASE
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            receipt: Receipt = outcome(delivery)
            return receipt
        return dict(outcome)


def drain(dispatcher: Dispatcher, clock: VirtualClock, limit: int = 100) -> None:
    """Run until nothing is pending or delivering, jumping the clock to each due time."""
    for _ in range(limit):
        dispatcher.run_once()
        due = dispatcher.next_due()
        if due is None:
            return
        if due > clock.now():
            clock.set(due)
    raise AssertionError("the outbox did not settle")


# --- success -----------------------------------------------------------------------


def test_delivers_and_stores_the_receipt(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    handler = Scripted()
    dispatcher = Dispatcher(store, handler, clock)
    clock.advance(dt.timedelta(seconds=3))
    assert dispatcher.run_once() == 1
    (delivery,) = handler.calls
    assert delivery == Delivery(
        "i1:1:0", "file_enforcement_case",
        {"applicant": "张三", "respondent": "李四", "amount": "1234.50",
         "basis": "(2026)京0105民初1号调解书"},
        "i1", "《民事诉讼法》第二百四十三条", "mediation.jrule:12:5", 1)
    r = row(store, "i1:1:0")
    assert r["status"] == "delivered"
    assert json.loads(r["receipt"]) == CASE
    assert r["delivered_at"] == T0 + dt.timedelta(seconds=3)
    assert r["attempts"] == 1
    assert dispatcher.run_once() == 0  # delivered rows are never tried again
    assert len(handler.calls) == 1
    assert dispatcher.status_counts() == {"delivered": 1}
    assert dispatcher.next_due() is None


def test_rows_wait_until_due_and_go_in_due_order(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:2:0", at=T0 + dt.timedelta(minutes=1))
    add_action(store, "i1:1:0", at=T0 + dt.timedelta(seconds=30))
    add_action(store, "i2:1:0", at=T0 + dt.timedelta(hours=1))
    handler = Scripted()
    dispatcher = Dispatcher(store, handler, clock)
    assert dispatcher.run_once() == 0
    assert dispatcher.next_due() == T0 + dt.timedelta(seconds=30)
    clock.advance(dt.timedelta(minutes=2))
    assert dispatcher.run_once() == 2
    assert [d.key for d in handler.calls] == ["i1:1:0", "i1:2:0"]
    assert row(store, "i2:1:0")["status"] == "pending"


def test_batch_limits_one_pass(store: Engine) -> None:
    clock = VirtualClock(T0)
    for n in range(5):
        add_action(store, f"i1:{n}:0")
    dispatcher = Dispatcher(store, Scripted(), clock, batch=2)
    assert [dispatcher.run_once() for _ in range(4)] == [2, 2, 1, 0]


def test_accepts_a_session_factory(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    dispatcher = Dispatcher(sessionmaker(bind=store), Scripted(), clock)
    assert dispatcher.run_once() == 1
    assert row(store, "i1:1:0")["status"] == "delivered"


# --- retries -------------------------------------------------------------------------


def test_transient_failures_follow_the_backoff_schedule(store: Engine) -> None:
    clock = VirtualClock(T0)
    key = "i1:1:0"
    add_action(store, key)
    handler = Scripted({key: [TransientFailure(f"HTTP 503 ({n})") for n in range(1, 5)]}, clock)
    dispatcher = Dispatcher(store, handler, clock)
    backoff = dispatcher.backoff
    for failures in range(1, 5):
        assert dispatcher.run_once() == 1
        r = row(store, key)
        assert r["status"] == "pending"
        assert r["attempts"] == failures
        assert r["last_error"] == f"HTTP 503 ({failures})"
        wait = r["next_attempt_at"] - clock.now()
        assert wait == backoff.delay(key, failures)
        nominal = 2.0 * 2 ** (failures - 1)
        assert nominal * 0.75 <= wait.total_seconds() <= nominal
        clock.advance(wait - dt.timedelta(milliseconds=1))
        assert dispatcher.run_once() == 0  # not yet due
        clock.advance(dt.timedelta(milliseconds=1))
    assert dispatcher.run_once() == 1
    r = row(store, key)
    assert r["status"] == "delivered" and r["attempts"] == 5
    assert [d.attempt for d in handler.calls] == [1, 2, 3, 4, 5]
    assert incidents(store) == []


def test_retry_after_is_a_lower_bound_capped_by_the_maximum(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    add_action(store, "i1:2:0")
    handler = Scripted({"i1:1:0": [TransientFailure("429", retry_after=120)],
                        "i1:2:0": [TransientFailure("429", retry_after=86400)]})
    dispatcher = Dispatcher(store, handler, clock)
    dispatcher.run_once()
    assert row(store, "i1:1:0")["next_attempt_at"] == T0 + dt.timedelta(seconds=120)
    assert row(store, "i1:2:0")["next_attempt_at"] == T0 + dt.timedelta(minutes=10)


def test_unexpected_handler_errors_are_retried(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    dispatcher = Dispatcher(store, Scripted({"i1:1:0": [KeyError("boom")]}), clock)
    dispatcher.run_once()
    r = row(store, "i1:1:0")
    assert r["status"] == "pending" and r["last_error"] == "unexpected KeyError: 'boom'"


def test_backoff_is_deterministic_bounded_and_capped() -> None:
    b = Backoff()
    assert [b.nominal(n) for n in (1, 2, 3, 8, 9, 10, 500)] == [2, 4, 8, 256, 512, 600, 600]
    for key in ("i1:1:0", "案件-7:3:1", ""):
        for n in range(1, 40):
            d = b.delay(key, n).total_seconds()
            assert d == b.delay(key, n).total_seconds()
            assert b.nominal(n) * 0.75 <= d <= b.nominal(n)
    spread = {b.delay(f"i{n}:1:0", 1) for n in range(50)}
    assert len(spread) > 40  # rows failing together do not retry together
    assert Backoff(jitter=0).delay("k", 3) == dt.timedelta(seconds=8)
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
    with pytest.raises(ValueError):
        b.nominal(0)


# --- incidents -------------------------------------------------------------------------


def test_permanent_failure_raises_an_incident_at_once(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    handler = Scripted({"i1:1:0": [PermanentFailure("HTTP 401 Unauthorized: bad signature")]})
    dispatcher = Dispatcher(store, handler, clock)
    dispatcher.run_once()
    r = row(store, "i1:1:0")
    assert r["status"] == "incident" and r["attempts"] == 1
    assert r["last_error"] == "HTTP 401 Unauthorized: bad signature"
    (incident,) = incidents(store)
    assert incident["kind"] == "delivery_failed" and incident["status"] == "open"
    assert incident["outbox_id"] == r["id"] and incident["instance_id"] == "i1"
    assert "bad signature" in incident["message"] and "i1:1:0" in incident["message"]
    assert incident["created_at"] == T0
    clock.advance(dt.timedelta(days=1))
    assert dispatcher.run_once() == 0 and dispatcher.next_due() is None


def test_max_attempts_raise_an_incident_with_the_last_error(store: Engine) -> None:
    clock = VirtualClock(T0)
    key = "i1:1:0"
    add_action(store, key)
    handler = Scripted({key: [TransientFailure(f"timeout {n}") for n in range(1, 20)]}, clock)
    dispatcher = Dispatcher(store, handler, clock, max_attempts=8)
    drain(dispatcher, clock)
    assert len(handler.calls) == 8
    r = row(store, key)
    assert r["status"] == "incident" and r["attempts"] == 8
    (incident,) = incidents(store)
    assert "after 8 attempts" in incident["message"] and "timeout 8" in incident["message"]
    gaps = [(b - a).total_seconds() for a, b in zip(handler.at, handler.at[1:], strict=False)]
    assert gaps == [dispatcher.backoff.delay(key, n).total_seconds() for n in range(1, 8)]


def test_deliveries_carry_the_instances_parties(store: Engine) -> None:
    from engine.runtime.models import Instance

    clock = VirtualClock(T0)
    parties = {"申请人": "张三", "被申请人": "李四"}
    with store.begin() as conn:
        conn.execute(update(Instance).where(Instance.id == "i1").values(
            parties=json.dumps(parties, ensure_ascii=False)))
    add_action(store, "i1:1:0")
    add_action(store, "i2:1:0")
    handler = Scripted()
    assert Dispatcher(store, handler, clock).run_once() == 2
    by_key = {d.key: d for d in handler.calls}
    assert dict(by_key["i1:1:0"].parties) == parties
    assert dict(by_key["i2:1:0"].parties) == {}  # created without parties


@pytest.mark.parametrize(("mode", "attempts"), [("production", 15), ("sandbox", 8)])
def test_the_mode_sets_how_many_attempts_before_an_incident(store: Engine, mode: str,
                                                            attempts: int) -> None:
    clock = VirtualClock(T0)
    key = "i1:1:0"
    add_action(store, key)
    handler = Scripted({key: [TransientFailure(f"down {n}") for n in range(1, 30)]}, clock)
    dispatcher = Dispatcher(store, handler, clock, mode=mode)
    assert dispatcher.max_attempts == attempts
    drain(dispatcher, clock)
    assert len(handler.calls) == attempts and row(store, key)["status"] == "incident"
    (incident,) = incidents(store)
    assert f"after {attempts} attempts" in incident["message"]
    if mode == "production":  # about an hour of outage before a person is called
        span = (handler.at[-1] - handler.at[0]).total_seconds()
        assert 50 * 60 <= span <= 67 * 60 + 1


def test_an_unknown_mode_is_refused(store: Engine) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        Dispatcher(store, Scripted(), VirtualClock(T0), mode="staging")


def test_a_reply_missing_the_catalogue_returns_is_an_incident(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    add_action(store, "i1:2:0", "freeze",
               {"debtor": "李四", "kind": "bank_deposit", "amount": "10.00"})
    handler = Scripted({"i1:1:0": [{"receipt_id": "R1"}],
                        "i1:2:0": [{"freeze_id": "F1", "expires_on": "soon"}]})
    Dispatcher(store, handler, clock).run_once()
    first, second = incidents(store)
    assert "lacks case_number (Text)" in first["message"]
    assert "expires_on (Date, got 'soon')" in second["message"]
    assert json.loads(row(store, "i1:1:0")["receipt"]) == {"receipt_id": "R1"}


def test_retry_incident_delivers_again_from_scratch(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    handler = Scripted({"i1:1:0": [PermanentFailure("HTTP 404")]})
    dispatcher = Dispatcher(store, handler, clock)
    dispatcher.run_once()
    (incident,) = incidents(store)
    clock.advance(dt.timedelta(hours=2))
    assert dispatcher.retry_incident(incident["id"], by="clerk 王五") == "i1:1:0"
    r = row(store, "i1:1:0")
    assert (r["status"], r["attempts"], r["next_attempt_at"]) == ("pending", 0, clock.now())
    (closed,) = incidents(store)
    assert closed["status"] == "resolved" and closed["resolution"] == "retried"
    assert closed["resolved_by"] == "clerk 王五" and closed["resolved_at"] == clock.now()
    assert dispatcher.run_once() == 1
    r = row(store, "i1:1:0")
    assert r["status"] == "delivered" and r["attempts"] == 1
    with pytest.raises(IncidentError, match="already resolved"):
        dispatcher.retry_incident(incident["id"], by="clerk 王五")
    with pytest.raises(NotFound):
        dispatcher.retry_incident(999, by="clerk 王五")


def test_a_retried_incident_that_fails_again_opens_a_new_one(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    handler = Scripted({"i1:1:0": [PermanentFailure("no"), PermanentFailure("still no")]})
    dispatcher = Dispatcher(store, handler, clock)
    dispatcher.run_once()
    dispatcher.retry_incident(incidents(store)[0]["id"], by="clerk")
    dispatcher.run_once()
    first, second = incidents(store)
    assert first["status"] == "resolved" and second["status"] == "open"
    assert "still no" in second["message"]


def test_resolve_incident_leaves_the_row_undelivered(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    dispatcher = Dispatcher(store, Scripted({"i1:1:0": [PermanentFailure("HTTP 422")]}), clock)
    dispatcher.run_once()
    (incident,) = incidents(store)
    with pytest.raises(IncidentError):
        dispatcher.resolve_incident(incident["id"], by="judge 赵六", note="  ")
    dispatcher.resolve_incident(incident["id"], by="judge 赵六",
                                note="filed by hand as (2026)京0105执88号")
    (closed,) = incidents(store)
    assert closed["status"] == "resolved" and closed["resolved_by"] == "judge 赵六"
    assert closed["resolution"] == "resolved: filed by hand as (2026)京0105执88号"
    assert row(store, "i1:1:0")["status"] == "incident"
    clock.advance(dt.timedelta(days=30))
    assert dispatcher.run_once() == 0
    with pytest.raises(IncidentError):
        dispatcher.retry_incident(incident["id"], by="judge 赵六")


# --- leases -------------------------------------------------------------------------------


class Crash(BaseException):
    """Stands for the dispatcher process dying in the middle of a delivery."""


def test_a_row_left_delivering_is_taken_back_after_the_lease(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    crashing = Dispatcher(store, Scripted({"i1:1:0": [Crash()]}), clock)
    with pytest.raises(Crash):
        crashing.run_once()
    r = row(store, "i1:1:0")
    assert r["status"] == "delivering" and r["next_attempt_at"] == T0 + dt.timedelta(minutes=5)
    handler = Scripted()
    survivor = Dispatcher(store, handler, clock)
    clock.advance(dt.timedelta(minutes=4, seconds=59))
    assert survivor.run_once() == 0 and handler.calls == []
    clock.advance(dt.timedelta(seconds=1))
    assert survivor.run_once() == 1
    assert [d.attempt for d in handler.calls] == [2]
    r = row(store, "i1:1:0")
    assert r["status"] == "delivered" and "lease expired" in r["last_error"]


def test_lease_expiry_on_the_last_attempt_is_an_incident(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    dispatcher = Dispatcher(store, Scripted({"i1:1:0": [Crash()]}), clock, max_attempts=1)
    with pytest.raises(Crash):
        dispatcher.run_once()
    clock.advance(dt.timedelta(minutes=5))
    dispatcher.run_once()
    assert row(store, "i1:1:0")["status"] == "incident"
    (incident,) = incidents(store)
    assert "lease expired" in incident["message"]


def test_a_late_outcome_does_not_overwrite_the_lease_taker(store: Engine) -> None:
    """A stalls past its lease; B takes the row over and delivers; A's late
    failure must not undo B's success (the claim fences the update)."""
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    add_action(store, "i1:2:0")
    b_handler = Scripted()
    b = Dispatcher(store, b_handler, clock)

    def stall_then_fail(delivery: Delivery) -> Receipt:
        clock.advance(dt.timedelta(minutes=6))
        assert b.run_once() == 2  # takes back and delivers both rows of A's batch
        raise TransientFailure("A was too slow")

    a = Dispatcher(store, Scripted({"i1:1:0": [stall_then_fail]}), clock)
    assert a.run_once() == 1  # the second claimed row is given back, not tried late
    assert [d.key for d in b_handler.calls] == ["i1:1:0", "i1:2:0"]
    for key in ("i1:1:0", "i1:2:0"):
        r = row(store, key)
        assert r["status"] == "delivered" and r["attempts"] == 2, r


def test_rows_claimed_but_not_tried_in_time_are_given_back(store: Engine) -> None:
    clock = VirtualClock(T0)
    for n in range(3):
        add_action(store, f"i1:{n}:0")

    def slow(delivery: Delivery) -> Receipt:
        clock.advance(dt.timedelta(minutes=3))
        return CASE

    dispatcher = Dispatcher(store, Scripted({"i1:0:0": [slow]}), clock)
    assert dispatcher.run_once() == 1
    assert [(r["status"], r["attempts"]) for r in rows(store)] == [
        ("delivered", 1), ("pending", 0), ("pending", 0)]
    assert dispatcher.run_once() == 2


# --- running in the background -------------------------------------------------------------


def test_run_forever_is_woken_by_new_rows_and_stops(store: Engine) -> None:
    clock = VirtualClock(T0)
    delivered = threading.Event()

    def file_case(d: Delivery) -> Receipt:
        delivered.set()
        return CASE

    handler = LocalHandler(default=file_case)
    dispatcher = Dispatcher(store, handler, clock)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop, 60.0))
    thread.start()
    try:
        time.sleep(0.2)  # the first pass found nothing; now it sleeps for 60 s
        add_action(store, "i1:1:0")
        started = time.monotonic()
        dispatcher.wake()
        assert delivered.wait(5)
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert row(store, "i1:1:0")["status"] == "delivered"


def test_run_forever_survives_a_failing_pass(store: Engine) -> None:
    clock = VirtualClock(T0)
    passes: list[int] = []

    class Flaky(Dispatcher):
        def run_once(self) -> int:
            passes.append(1)
            if len(passes) == 1:
                raise RuntimeError("database went away")
            return super().run_once()

    add_action(store, "i1:1:0")
    dispatcher = Flaky(store, Scripted(), clock)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop, 0.05))
    thread.start()
    deadline = time.monotonic() + 5
    while row(store, "i1:1:0")["status"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert row(store, "i1:1:0")["status"] == "delivered" and len(passes) >= 2


# --- local and routing handlers --------------------------------------------------------------


def test_local_handler_honours_idempotency_keys() -> None:
    calls: list[str] = []

    def file_case(d: Delivery) -> Receipt:
        calls.append(d.key)
        return {"case_number": f"(2026)京0105执{len(calls)}号"}

    handler = LocalHandler({"file_enforcement_case": file_case})
    d = Delivery("i1:1:0", "file_enforcement_case", {}, "i1", None, "r:1:1", 1)
    first = handler.deliver(d)
    again = handler.deliver(Delivery("i1:1:0", "file_enforcement_case", {}, "i1", None,
                                     "r:1:1", 2))
    other = handler.deliver(Delivery("i1:2:0", "file_enforcement_case", {}, "i1", None,
                                     "r:1:1", 1))
    assert first == again == {"case_number": "(2026)京0105执1号"}
    assert other == {"case_number": "(2026)京0105执2号"}
    assert calls == ["i1:1:0", "i1:2:0"] and handler.calls == {"i1:1:0": 1, "i1:2:0": 1}
    assert handler.receipt("i1:1:0") == first
    with pytest.raises(PermanentFailure, match="no local handler"):
        handler.deliver(Delivery("i1:3:0", "notify", {}, "i1", None, "r:1:1", 1))


def test_local_handler_stores_nothing_when_the_function_fails() -> None:
    busy = iter([True, False])

    def notify(d: Delivery) -> Receipt:
        if next(busy):
            raise TransientFailure("busy")
        return {"receipt_id": "R-1"}

    handler = LocalHandler(default=notify)
    d = Delivery("i1:1:0", "notify", {}, "i1", None, "r:1:1", 1)
    with pytest.raises(TransientFailure):
        handler.deliver(d)
    assert handler.receipt("i1:1:0") is None
    assert handler.deliver(d) == {"receipt_id": "R-1"}


def test_routing_by_action_then_receiving_system_then_default() -> None:
    def answering(name: str) -> LocalHandler:
        return LocalHandler(default=lambda d: {"by": name})

    cms, credit, fallback = answering("cms"), answering("credit"), answering("default")
    router = RoutingHandler({"file_trial_case": cms, "credit system": credit}, fallback)

    def via(action: str) -> Any:
        return router.deliver(Delivery(f"i1:{action}:0", action, {}, "i1", None, "r", 1))["by"]

    assert via("file_trial_case") == "cms"
    assert via("list_dishonest_debtor") == "credit"  # the catalogue's receiving system
    assert via("file_enforcement_case") == "default"
    with pytest.raises(PermanentFailure, match="no route"):
        RoutingHandler({}).deliver(Delivery("k", "notify", {}, "i1", None, "r", 1))


def test_routing_from_configuration_shares_equal_targets() -> None:
    made: list[dict[str, Any]] = []

    def make(target: Any) -> LocalHandler:
        made.append(dict(target))
        return LocalHandler(default=lambda d: {"url": target["url"]})

    router = RoutingHandler.from_config({
        "default": {"url": "http://cms.court/actions"},
        "routes": {"credit system": {"url": "http://credit.court/actions"},
                   "freeze": {"url": "http://credit.court/actions"}},
    }, make)
    assert len(made) == 2
    assert router.route("freeze") is router.route("delist_dishonest_debtor")
    assert router.route("docket_filing") is not router.route("freeze")
    with pytest.raises(ValueError, match="neither an action"):
        RoutingHandler.from_config({"routes": {"fax machine": {"url": "x"}}}, make)
    with pytest.raises(ValueError, match="unknown delivery configuration"):
        RoutingHandler.from_config({"defaults": {}}, make)


def test_store_requires_aware_instants(store: Engine) -> None:
    class Naive:
        def now(self) -> dt.datetime:
            return dt.datetime(2026, 1, 1)

    with pytest.raises(ValueError, match="naive"):
        Dispatcher(store, Scripted(), Naive()).run_once()


def test_rows_in_other_states_are_left_alone(store: Engine) -> None:
    clock = VirtualClock(T0)
    add_action(store, "i1:1:0")
    with store.begin() as conn:
        conn.execute(update(Outbox).values(status="delivered"))
    assert Dispatcher(store, Scripted(), clock).run_once() == 0



def test_runs_on_the_runtimes_database_object(tmp_path: Path) -> None:
    """With ``engine.runtime.db.Database`` the dispatcher writes through its
    ``write()`` transactions (BEGIN IMMEDIATE on SQLite)."""
    with Database(f"sqlite:///{tmp_path / 'engine.db'}") as db:
        Base.metadata.create_all(db.engine)
        seed(db.engine)
        add_action(db.engine, "i1:1:0")
        add_action(db.engine, "i1:2:0")
        clock = VirtualClock(T0)
        dispatcher = Dispatcher(db, Scripted({"i1:2:0": [PermanentFailure("HTTP 400")]}), clock)
        assert dispatcher.run_once() == 2
        assert dispatcher.status_counts() == {"delivered": 1, "incident": 1}
        dispatcher.retry_incident(incidents(db.engine)[0]["id"], by="clerk")
        assert dispatcher.run_once() == 1
        assert dispatcher.status_counts() == {"delivered": 2}
