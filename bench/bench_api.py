"""Benchmark: events per second through the HTTP API, accepted and durably applied.

Target (issue 5): >= 1,000 events/s with p99 < 50 ms on SQLite on a 2-core
machine, 8 concurrent clients; PostgreSQL reported beside it.

    python bench/bench_api.py [--events 8000] [--clients 8] [--instances 1000]
        [--pg URL] [--no-pg] [--no-sqlite] [--strict]

What is measured.  ``jrule serve`` runs as its own process (uvicorn on
loopback, the embedded configuration: SQLite WAL, or PostgreSQL; ledger on;
access log off, ``cpu`` as configured by default: an embedded (SQLite) server
pins its threads to one CPU, a production (PostgreSQL) one leaves them to the
kernel, see docs/operations.md; ``--cpu off`` / ``--cpu auto`` force either).  A *separate*
load process runs ``--clients`` threads, each with one keep-alive HTTP/1.1
connection (``http.client``: the client must not be the bottleneck), each
sending ``POST /instances/{id}/events`` payments (``付款``, its own
idempotency key, a random instance of ``--instances``) one after another,
authenticated with a clerk's API key.  A request counts
when its ``200`` answer arrived: by then the event was applied and its
transaction (input log, state, ledger entry) committed — the server's group
writer commits the requests that arrive together in one transaction.  After
the run the input log is counted to check every event was applied exactly
once.  The server's CPU time per event (``/proc``) is printed too: on a busy
machine it shows what the server would do with a core of its own
(1000 / ms per event = events/s per core).

Reported per backend: events/s (events / wall time from the first request to
the last answer), p50/p99/max latency, the 1-minute load average at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO / "tests" / "fixtures" / "check" / "good" / "mediation_minimal.jrule"
TARGET_EPS = 1_000
TARGET_P99_MS = 50.0

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(url: str, data: Path, instances: int) -> str:
    """Deploy, open the cases and make a clerk's key (before the server starts)."""
    import datetime as dt

    from engine.api.admin import Administration
    from engine.runtime.clock import VirtualClock
    from engine.runtime.db import open_database
    from engine.runtime.service import EngineService, NewInstance
    from ledger_adapter.note import Ed25519Signer, generate_skey
    from ledger_adapter.sql import SqlLedger

    key_file = data / "ledger.skey"
    key_file.write_text(generate_skey("bench.local/ledger") + "\n", encoding="ascii")
    signer = Ed25519Signer.from_skey(key_file.read_text().strip())
    db = open_database(url, engine_lock=False)
    service = EngineService(url, VirtualClock(dt.datetime(2025, 9, 1, 2, tzinfo=dt.UTC)),
                            mode="test", db=db,
                            ledger=SqlLedger(db.engine, "bench.local/ledger", signer))
    try:
        service.deploy(CONTRACT.read_bytes(), CONTRACT.name, "bench")
        terms = {"金额": "100000000.00", "履行期限": "2025-12-31", "司法确认": True}
        service.create_instances([NewInstance("调解协议", f"case-{i}", terms, None, "c1")
                                  for i in range(instances)])
        admin = Administration(db, service.ledger)
        admin.create_court("c1", "bench court", "bench")
        admin.add_principal("clerk", "user", "c1", ["clerk"], "bench")
        key, _ = admin.issue_key("clerk", "bench")
    finally:
        service.close()
    return key


def _load(port: int, key: str, clients: int, per_client: int, instances: int,
          queue: Any) -> None:
    """The load process: ``clients`` threads with one keep-alive connection each."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_barrier = threading.Barrier(clients + 1)
    run = uuid.uuid4().hex[:8]

    def client(n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        mine: list[float] = []
        start_barrier.wait()
        for k in range(per_client):
            body = json.dumps({"event": "付款", "role": "被申请人",
                               "payload": {"数额": "1.00"},
                               "idempotency_key": f"{run}-{n}-{k}"}).encode()
            path = f"/instances/case-{rng.randrange(instances)}/events"
            t0 = time.perf_counter()
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            data = resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != 200:
                with lock:
                    errors.append(f"{resp.status} {data[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    start_barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    queue.put({"wall": wall, "latencies": latencies, "errors": errors[:5],
               "error_count": len(errors)})


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _main_thread_seconds(pid: int) -> float:
    """User + system CPU time of the process's main thread (the event loop) so far."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _switches(pid: int) -> int:
    """Context switches (voluntary + involuntary) of all the process's threads so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:  # the thread ended
            continue
        for line in text.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def _count_events(url: str) -> int:
    from sqlalchemy import func, select

    from engine.runtime.db import open_database
    from engine.runtime.unit import T_INPUTS

    db = open_database(url, engine_lock=False)
    try:
        with db.read() as conn:
            return int(conn.scalar(select(func.count()).select_from(T_INPUTS)
                                   .where(T_INPUTS.c.kind == "event")) or 0)
    finally:
        db.close()


def bench(label: str, url: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    key = _prepare(url, data, args.instances)
    port = _free_port()
    config = data / "serve.toml"
    config.write_text("\n".join([
        f'database_url = "{url}"', f'data_dir = "{data}"', f"port = {port}",
        'ledger_origin = "bench.local/ledger"', f'ledger_key = "{data / "ledger.skey"}"',
        "access_log = false", 'log_level = "WARNING"',
        'virtual_clock = "2025-09-01T02:00:00Z"', f'cpu = "{args.cpu}"']) + "\n",
        encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(data / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "rules_dsl.cli", "serve", "--config",
                               str(config)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"server did not start: {(data / 'server.log').read_text()}")
            time.sleep(0.2)
        # warm-up (connection set-up, caches), not counted
        _run_load(port, key, args.clients, 25, args.instances)
        before = _count_events(url) if label == "sqlite" else None
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--threads",
                                    "--format", "raw", "--rate", "500", "--nonblocking", "--gil",
                                    "--output", args.py_spy], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(1)
        (user0, sys0), switches0 = _cpu_seconds(server.pid), _switches(server.pid)
        loop0 = _main_thread_seconds(server.pid)
        result = _run_load(port, key, args.clients, args.events // args.clients,
                           args.instances)
        (user1, sys1), switches1 = _cpu_seconds(server.pid), _switches(server.pid)
        user, system = user1 - user0, sys1 - sys0
        loop = _main_thread_seconds(server.pid) - loop0
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
    finally:
        server.terminate()
        server.wait(60)
        log.close()
    total = args.clients * (args.events // args.clients)
    applied = _count_events(url) - (before or 0) if label == "sqlite" else \
        _count_events(url) - args.clients * 25
    lat = sorted(result["latencies"])
    return {
        "backend": label, "events": total, "applied": applied,
        "errors": result["error_count"], "wall": result["wall"],
        "eps": total / result["wall"],
        "p50": statistics.median(lat) * 1000, "p99": lat[int(len(lat) * 0.99) - 1] * 1000,
        "max": lat[-1] * 1000, "load": os.getloadavg()[0], "sample_errors": result["errors"],
        "cpu_ms": (user + system) * 1000 / total, "sys_ms": system * 1000 / total,
        "loop_ms": loop * 1000 / total,
        "switches": (switches1 - switches0) / total,
    }


def _run_load(port: int, key: str, clients: int, per_client: int,
              instances: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load, args=(port, key, clients, per_client, instances, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return dict(result)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=8000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--instances", type=int, default=1000)
    p.add_argument("--pg", default=os.environ.get("JRULE_TEST_DATABASE_URL"))
    p.add_argument("--no-pg", action="store_true")
    p.add_argument("--no-sqlite", action="store_true")
    p.add_argument("--cpu", default="",
                   help='the server\'s `cpu` setting: "" (default: the mode\'s default, pinned '
                        'on SQLite, not on PostgreSQL), "auto" (pinned to the CPU it starts '
                        'on), a CPU number, or "off" (left to the kernel)')
    p.add_argument("--py-spy", default=None, metavar="FILE",
                   help="sample the server with py-spy during the measured run (raw "
                        "collapsed stacks to FILE; slows the server down)")
    p.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="jrule-bench-api-") as tmp:
        if not args.no_sqlite:
            data = Path(tmp) / "sqlite"
            data.mkdir()
            rows.append(bench("sqlite", f"sqlite:///{data / 'jrule.sqlite3'}", data, args))
        if args.pg and not args.no_pg:
            sys.path.insert(0, str(REPO / "tests" / "engine"))
            from runtime_support import pg_admin, pg_schema_url

            schema = f"bench_{uuid.uuid4().hex[:10]}"
            os.environ["JRULE_TEST_DATABASE_URL"] = args.pg
            pg_admin(f"CREATE SCHEMA {schema}")
            try:
                data = Path(tmp) / "pg"
                data.mkdir()
                rows.append(bench("postgresql", pg_schema_url(schema), data, args))
            finally:
                pg_admin(f"DROP SCHEMA {schema} CASCADE")
    print(f"\nHTTP API, {args.clients} concurrent clients in a separate process, loopback; "
          f"target >= {TARGET_EPS} events/s, p99 < {TARGET_P99_MS:.0f} ms on SQLite; "
          f"server cpu = {args.cpu!r}")
    print(f"{'backend':<11} {'events':>7} {'applied':>8} {'errors':>6} {'events/s':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'load1':>6} {'srv CPU ms/ev':>13} "
          f"{'(sys)':>6} {'(loop)':>6} {'cs/ev':>5}")
    ok = True
    for r in rows:
        print(f"{r['backend']:<11} {r['events']:>7} {r['applied']:>8} {r['errors']:>6} "
              f"{r['eps']:>9.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} {r['max']:>7.1f} "
              f"{r['load']:>6.2f} {r['cpu_ms']:>13.3f} {r['sys_ms']:>6.3f} "
              f"{r['loop_ms']:>6.3f} {r['switches']:>5.1f}")
        if r["sample_errors"]:
            print("  errors:", r["sample_errors"])
        if r["applied"] != r["events"]:
            ok = False
            print(f"  MISMATCH: {r['applied']} events applied for {r['events']} accepted")
        if r["backend"] == "sqlite":
            met = r["eps"] >= TARGET_EPS and r["p99"] < TARGET_P99_MS
            ok = ok and met
            print(f"  SQLite target: {'PASS' if met else 'FAIL'} "
                  f"({r['eps'] / TARGET_EPS:.2f}x the events/s target)")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
