"""Several dispatchers on one store never deliver a row twice at once, and
every row reaches a deduplicating receiver exactly once.

Threads share one SQLite file or PostgreSQL schema; on PostgreSQL, separate
processes deliver over HTTP to the reference receiving system.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from delivery_helpers import (
    PG_SCHEMAS,
    PG_URL,
    add_instance,
    open_store,
    pg_engine,
    store,
)
from sqlalchemy import Engine, insert

from engine.runtime.clock import SystemClock
from engine.runtime.dispatcher import Dispatcher
from engine.runtime.handlers import Delivery, Receipt
from engine.runtime.models import Outbox
from engine.runtime.receiver import ReferenceReceiver
from engine.runtime.webhook import WebhookHandler

SIGNING_SEED = bytes(range(32, 64))

__all__ = ["store"]  # the fixture, from delivery_helpers


def fill(store: Engine, instances: int, per_instance: int) -> list[str]:
    """Write ``instances * per_instance`` due notify actions; return their keys."""
    keys: list[str] = []
    past = SystemClock().now().replace(microsecond=0)
    with store.begin() as conn:
        for i in range(instances):
            if i >= 2:
                add_instance(conn, f"i{i + 1}")
        values = []
        for seq in range(per_instance):
            for i in range(instances):
                key = f"i{i + 1}:{seq + 1}:0"
                keys.append(key)
                values.append(dict(
                    key=key, instance_id=f"i{i + 1}", action="notify",
                    args='{"message":"请于七日内履行","party":"李四"}', cite=None,
                    rule_span="t.jrule:1:1", status="pending", attempts=0,
                    next_attempt_at=past, created_at=past))
        conn.execute(insert(Outbox), values)
    return keys


class WatchfulReceiver:
    """Deduplicates by key, and notices a key arriving while it is in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()
        self.overlaps: list[str] = []
        self.arrivals: dict[str, int] = {}
        self.by_thread: dict[str, int] = {}
        self.replies: dict[str, Receipt] = {}

    def deliver(self, delivery: Delivery) -> Receipt:
        with self.lock:
            if delivery.key in self.in_flight:
                self.overlaps.append(delivery.key)
            self.in_flight.add(delivery.key)
            self.arrivals[delivery.key] = self.arrivals.get(delivery.key, 0) + 1
            name = threading.current_thread().name
            self.by_thread[name] = self.by_thread.get(name, 0) + 1
        time.sleep(random.random() / 2000)  # widen the window for a race
        with self.lock:
            self.in_flight.discard(delivery.key)
            reply = self.replies.setdefault(delivery.key,
                                            {"receipt_id": f"R-{len(self.replies) + 1}"})
        return dict(reply)


def settle(dispatcher: Dispatcher, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dispatcher.run_once():
            continue
        counts = dispatcher.status_counts()
        if not counts.get("pending") and not counts.get("delivering"):
            return
        time.sleep(0.01)
    raise AssertionError("dispatcher did not settle")


def test_dispatcher_threads_share_the_outbox(store: Engine) -> None:
    keys = fill(store, instances=20, per_instance=20)
    receiver = WatchfulReceiver()
    dispatchers = [Dispatcher(store, receiver, batch=7) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(dispatchers))

    def work(d: Dispatcher) -> None:
        try:
            start.wait()
            settle(d)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(d,), name=f"dispatcher-{n}")
               for n, d in enumerate(dispatchers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert errors == []
    assert receiver.overlaps == []
    assert receiver.arrivals == {key: 1 for key in keys}
    assert dispatchers[0].status_counts() == {"delivered": len(keys)}
    assert len(receiver.by_thread) > 1  # the work really was shared


def _dispatch_in_process(schema: str, url: str, go: Any, done: Any) -> None:
    engine = pg_engine(schema)
    handler = WebhookHandler(url, Ed25519PrivateKey.from_private_bytes(SIGNING_SEED),
                             "engine-test", timeout=30)
    dispatcher = Dispatcher(engine, handler, batch=10)
    go.wait()
    try:
        settle(dispatcher)
        done.put(("ok", None))
    except BaseException as e:
        done.put(("error", repr(e)))
    finally:
        engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="JRULE_TEST_DATABASE_URL not set")
def test_dispatcher_processes_deliver_each_row_once_over_http(tmp_path: Path) -> None:
    with open_store("postgresql", tmp_path) as store:
        keys = fill(store, instances=30, per_instance=10)
        public = Ed25519PrivateKey.from_private_bytes(SIGNING_SEED).public_key()
        with ReferenceReceiver(public) as receiver:
            context = multiprocessing.get_context("spawn")
            go, done = context.Event(), context.Queue()
            processes = [context.Process(target=_dispatch_in_process,
                                         args=(PG_SCHEMAS[id(store)], receiver.url, go, done))
                         for _ in range(3)]
            for p in processes:
                p.start()
            go.set()
            results = [done.get(timeout=240) for _ in processes]
            for p in processes:
                p.join(30)
            assert results == [("ok", None)] * 3
            assert receiver.overlapping == 0
            assert receiver.docket.deliveries() == {key: 1 for key in keys}
            assert receiver.requests == len(keys)
            numbers = [r["number"] for r in receiver.docket.records()]
            assert len(set(numbers)) == len(keys)
        counts = Dispatcher(store, WatchfulReceiver()).status_counts()
        assert counts == {"delivered": len(keys)}
