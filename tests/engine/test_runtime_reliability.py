"""Reliability: SIGKILL at random moments, and several engines on one PostgreSQL.

Crash test
    A real engine process (``runtime_engine_proc.py serve``) takes a stream
    of creates and payments while its deadlines fall due (a virtual clock
    running at one legal day per ~1.5 s).  It is killed with SIGKILL at random
    moments, several times, and restarted on the same database; the driver
    resends whatever was not acknowledged, with the same idempotency keys.
    Afterwards: every acknowledged command is in the input log with the
    acknowledged result, no deadline is left unfired, each deadline firing is
    logged once and triggered its action once, and every instance's stored
    state equals its replay.  The engine also delivers its outbox to a reference
    receiving system (in the test process, so it outlives every kill) that
    honours idempotency keys: every action takes effect there exactly once
    (one docket record per key), however often a kill made it redeliver.

Multi-process test (PostgreSQL)
    Three engine processes run due deadlines at the same instant over
    thousands of timers: each fires exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from runtime_engine_proc import WEBHOOK_SEED, webhook_handler
from runtime_support import BACKENDS, MINIMAL, PG_URL, ROOT, T0, deploy, make_url, mirror_ok
from sqlalchemy import func, select

from engine.runtime.clock import VirtualClock
from engine.runtime.dispatcher import Dispatcher
from engine.runtime.receiver import ReferenceReceiver
from engine.runtime.service import EngineService, NewInstance
from engine.runtime.unit import T_INPUTS, T_OUTBOX, T_TIMERS

PROC = Path(__file__).resolve().parent / "runtime_engine_proc.py"
SPEED = 86400 / 1.5  # one legal day per 1.5 real seconds


class Engine:
    """One engine subprocess and its acknowledgements."""

    def __init__(self, url: str, origin: float, receiver_url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PROC), "serve", url, T0.isoformat(), str(SPEED), str(origin),
             receiver_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT)
        self.acks: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        first = self.acks.get(timeout=60)
        assert first == {"ready": True}, self.stderr()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.acks.put(json.loads(line))
        self.acks.put(None)

    def send(self, commands: list[dict[str, Any]]) -> bool:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("".join(json.dumps(c, ensure_ascii=False) + "\n"
                                          for c in commands))
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


def _commands(rng: random.Random, n_instances: int, n_payments: int) -> list[dict[str, Any]]:
    """Creates (due dates spread over the next legal week) then a stream of payments."""
    out: list[dict[str, Any]] = []
    for i in range(n_instances):
        due = (T0 + dt.timedelta(days=3 + i % 6)).date().isoformat()
        out.append({"op": "create", "contract": "调解协议", "id": f"c{i}", "key": f"create-c{i}",
                    "terms": {"金额": "1000.00", "履行期限": due, "司法确认": i % 2 == 0}})
    for n in range(n_payments):
        i = rng.randrange(n_instances)
        # a quarter of the obligors pay in full before long; the rest pay in small sums
        amount = rng.choice(["300.00", "400.00"]) if i % 4 == 0 else rng.choice(["1.00", "5.00"])
        out.append({"op": "event", "id": f"c{i}", "event": "付款", "role": "被申请人",
                    "payload": {"数额": amount}, "key": f"pay-{n}"})
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_at_random_moments_loses_nothing(backend: str, tmp_path: Path) -> None:
    urls = make_url(backend, tmp_path)
    public = Ed25519PrivateKey.from_private_bytes(WEBHOOK_SEED).public_key()
    try:
        with ReferenceReceiver(public) as receiver:
            _crash_test(next(urls), receiver)
    finally:
        for _ in urls:
            pass


def _crash_test(url: str, receiver: ReferenceReceiver) -> None:
    setup = EngineService(url, VirtualClock(T0), mode="test")
    deploy(setup, MINIMAL)
    setup.close()
    rng = random.Random(20251001)
    commands = _commands(rng, n_instances=60, n_payments=2000)
    origin = time.time()
    acked: dict[str, dict[str, Any]] = {}
    kills = resent = 0
    engine = Engine(url, origin, receiver.url)
    # three kills in the middle of the stream (a few ms after a burst went out, so the
    # engine is mid-transaction or mid-acknowledgement), one while only deadlines fall due.
    # A burst before a kill carries 200 commands instead of 25, so the stream may have
    # fewer bursts than len/25: pick kill points every stream reaches however many of a
    # killed burst were acknowledged (it used to pick one the stream sometimes ended before)
    reachable = (len(commands) - 3 * 200) // 25
    kill_after = set(rng.sample(range(3, reachable), 3))

    def collect(waiting: set[str], until_eof: bool) -> None:
        """Take acknowledgements until ``waiting`` is empty (or the process's output ends)."""
        while waiting or until_eof:
            ack = engine.acks.get(timeout=60)
            if ack is None:
                return
            waiting.discard(ack["key"])
            first = acked.setdefault(ack["key"], ack)
            assert (ack["accepted"], ack["seq"]) == (first["accepted"], first["seq"]), ack

    def kill_and_restart(waiting: set[str]) -> None:
        nonlocal engine, kills, resent
        engine.kill()  # SIGKILL, wherever it is
        kills += 1
        collect(waiting, until_eof=True)  # what it acknowledged before dying
        engine = Engine(url, origin, receiver.url)
        resent += len(waiting)

    pending = list(commands)
    burst_no = 0
    while pending:
        size = 200 if burst_no in kill_after else 25  # pipeline more before a kill
        burst, pending = pending[:size], pending[size:]
        engine.send(burst)
        waiting = {c["key"] for c in burst}
        if burst_no in kill_after:
            time.sleep(rng.uniform(0.0, 0.1))
            kill_and_restart(waiting)
            pending = [c for c in burst if c["key"] in waiting] + pending
        else:
            collect(waiting, until_eof=False)
        burst_no += 1
    time.sleep(rng.uniform(0.5, 3.0))  # deadlines keep falling due (one legal day / 1.5 s)
    kill_and_restart(set())
    assert kills == 4
    # let the legal clock pass every due date, and the engine fire everything
    clock = VirtualClock(T0, speed=SPEED, real_origin=origin)
    last_due = T0 + dt.timedelta(days=10)
    while clock.now() < last_due:
        time.sleep(0.2)
    reader = EngineService(url, clock, mode="test", engine_lock=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        due = reader.next_due()
        if due is None or due > clock.now():
            break
        time.sleep(0.2)
    assert engine.send([{"op": "stop"}])
    assert engine.proc.wait(timeout=60) == 0, engine.stderr()
    reader.close()

    check = EngineService(url, VirtualClock(clock.now()), mode="test")
    try:
        assert len(acked) == len(commands)  # every command was acknowledged, some twice
        with check.db.read() as conn:
            logged = {r.idempotency_key: r.seq for r in conn.execute(
                select(T_INPUTS.c.idempotency_key, T_INPUTS.c.seq)
                .where(T_INPUTS.c.idempotency_key.is_not(None)))}
            firings = conn.scalar(select(func.count()).select_from(T_TIMERS)
                                  .where(T_TIMERS.c.status == "fired"))
            actions = Counter(conn.execute(select(T_OUTBOX.c.instance_id, T_OUTBOX.c.action)))
        for key, ack in acked.items():
            if ack["accepted"]:
                assert logged[key] == ack["seq"], key  # no acknowledged command was lost
            else:
                assert key not in logged
        states = Counter(check.state(i)["state"] for i in check.instance_ids())
        print(f"crash test: {kills} kills, {resent} commands resent, "
              f"{sum(a['duplicate'] for a in acked.values())} recognised as duplicates, "
              f"{firings} deadline firings, final states {dict(states)}")
        assert firings >= 60 and states["已履行"] and states["已起诉"] and states["已申请执行"]
        assert check.run_due() == 0  # nothing was left for anyone to fire
        assert check.next_due() is None
        assert firings and all(n == 1 for n in actions.values()), actions  # nothing twice
        for iid in check.instance_ids():
            assert check.replay(iid), iid
            assert mirror_ok(check, iid)
            st = check.state(iid)
            assert st["status"] == "ended", st
            if st["state"] != "已履行":  # not paid in full: one filing, one reminder
                assert {a for (i, a) in actions if i == iid} == {
                    "remind", "file_enforcement_case" if int(iid[1:]) % 2 == 0
                    else "file_trial_case"}
        # deliver what the last engine left in the outbox, then: each action once
        drain = Dispatcher(check.db, webhook_handler(receiver.url), mode="test")
        give_up = time.monotonic() + 120
        while drain.status_counts() != {"delivered": sum(actions.values())}:
            assert time.monotonic() < give_up, drain.status_counts()
            if not drain.run_once():
                time.sleep(0.2)
        with check.db.read() as conn:
            keys = set(conn.scalars(select(T_OUTBOX.c.key)))
        records = receiver.docket.records()
        assert Counter(r["key"] for r in records) == Counter(keys)  # took effect once each
        numbers = [r["number"] for r in records if r["number"]]
        assert len(numbers) == len(set(numbers))
        arrivals = receiver.docket.deliveries()
        assert set(arrivals) == keys
        print(f"delivered {len(keys)} actions; {sum(arrivals.values()) - len(keys)} "
              "redeliveries recognised by their idempotency keys")
    finally:
        check.close()


@pytest.mark.skipif(not PG_URL, reason="JRULE_TEST_DATABASE_URL not set")
def test_three_engines_fire_each_deadline_once(tmp_path: Path) -> None:
    urls = make_url("postgresql", tmp_path)
    url = next(urls)
    try:
        setup = EngineService(url, VirtualClock(T0), mode="test")
        deploy(setup, MINIMAL)
        n = 1500
        for start in range(0, n, 500):
            outs = setup.create_instances(
                NewInstance("调解协议", f"m{i}", {"金额": "100.00", "履行期限": "2025-09-30",
                                                  "司法确认": True})
                for i in range(start, start + 500))
            assert all(o.accepted for o in outs)
        assert setup.counts()["pending_timers"] == 2 * n
        setup.close()
        now = dt.datetime(2025, 10, 2, tzinfo=dt.UTC)
        start_at = time.time() + 3.0
        procs = [subprocess.Popen([sys.executable, str(PROC), "fire", url, now.isoformat(),
                                   str(start_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=ROOT) for _ in range(3)]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        assert sum(r["fired"] for r in results) == 2 * n, results
        check = EngineService(url, VirtualClock(now), mode="test")
        try:
            with check.db.read() as conn:
                ticks = Counter(conn.scalars(select(T_INPUTS.c.instance_id)
                                             .where(T_INPUTS.c.kind == "tick")))
                fired = Counter(conn.execute(select(T_TIMERS.c.instance_id, T_TIMERS.c.name)
                                             .where(T_TIMERS.c.status == "fired")))
                outbox = Counter(conn.execute(select(T_OUTBOX.c.instance_id, T_OUTBOX.c.action)))
            assert len(ticks) == n and set(ticks.values()) == {1}
            assert len(fired) == 2 * n and set(fired.values()) == {1}
            assert len(outbox) == 2 * n and set(outbox.values()) == {1}
            assert check.counts()["pending_timers"] == 0
            for iid in (f"m{i}" for i in range(0, n, 97)):
                assert check.state(iid)["state"] == "已申请执行"
                assert check.replay(iid)
        finally:
            check.close()
        print("fired per engine:", [r["fired"] for r in results])
    finally:
        for _ in urls:
            pass

