"""Benchmark: a million pending deadlines — start-up, firing latency, memory.

Targets (issue 3, Benchmarks): 1,000,000 pending deadlines stored; engine
start-up < 2 s; deadlines fire within 1 s of their due instant at 1,000 due
per second; resident memory < 500 MB (state is not all held in memory).

    python bench/bench_scale.py [--pending 1000000] [--rate 1000] [--days 15]
        [--db PATH] [--reuse] [--strict]

1. **Store.**  A SQLite file (the embedded default) gets ``--pending``
   deadlines in the engine's own tables.  One real instance per due date is
   created through :class:`EngineService` (mediation_minimal: a reminder 3
   working days before the due date, and the due date itself: 2 deadlines per
   instance); the rest are clones of those rows (instance document, ``create``
   input-log row, timer rows) with the instance id changed, bulk-inserted in
   one transaction per 50,000 instances.  Clones are real instances: a sample
   of them replays to its stored state, and they fire like any other.
   Background: deadlines due through 2026 (they stay pending).  Hot: ``--rate``
   deadlines due at the end of each working day of September 2025.
2. **Start-up.**  A fresh process imports the engine, opens the store
   (including Alembic's schema check), starts the scheduler and reads the next
   due instant: the time until it is ready, with the million rows pending.
3. **Firing.**  The engine runs on a virtual clock at one legal day per real
   second (``VirtualClock(speed=86400)``) through ``--days`` days of
   September: each working day ends with ``--rate`` deadlines falling due at
   the same instant, so the engine must fire ``--rate`` deadlines per second
   (each a transition, a log row, timer rows and an outbox row, committed).
   Lateness of each firing = (``fired_at`` − ``due_at``) / 86,400 real seconds.
4. **Memory.**  Peak resident set of the engine process during 2 and 3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO / "tests" / "fixtures" / "check" / "good" / "mediation_minimal.jrule"
SPEED = 86_400.0
START = dt.datetime(2025, 9, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def working_days(first: dt.date, last: dt.date) -> list[dt.date]:
    from contracts_lib.calendar import load_calendar

    cal = load_calendar("cn")
    out, d = [], first
    while d <= last:
        if cal.is_working_day(d):
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def build(path: Path, pending: int, rate: int, days: int) -> dict[str, int]:
    """The store: real template instances, and clones of their rows."""
    from engine.runtime.clock import VirtualClock
    from engine.runtime.service import EngineService

    # hot: due dates in September 2025 whose reminders (3 working days earlier) and
    # due instants each bring rate/2 deadlines to the end of a working day
    # (a due date's reminder is due at the start of its day, i.e. at the same instant as the
    # due dates of the working day before: the dates run on past the window so that every
    # instant of the window has both)
    hot_dates = working_days(dt.date(2025, 9, 4),
                             dt.date(2025, 9, 1) + dt.timedelta(days=days + 7))
    per_hot = rate // 2
    hot = [(d, per_hot) for d in hot_dates]
    background_dates = working_days(dt.date(2026, 1, 12), dt.date(2026, 12, 18))
    left = (pending - 2 * per_hot * len(hot)) // 2
    per_bg, extra = divmod(left, len(background_dates))
    background = [(d, per_bg + (1 if i < extra else 0)) for i, d in enumerate(background_dates)]

    svc = EngineService(f"sqlite:///{path}", VirtualClock(START), mode="sandbox")
    svc.deploy(CONTRACT.read_bytes(), CONTRACT.name, "bench")
    templates = {}
    for d, _ in hot + background:
        tid = f"tmpl-{d.isoformat()}"
        o = svc.create_instance("调解协议", tid, {"金额": "1000.00", "履行期限": d.isoformat(),
                                                    "司法确认": True})
        assert o.accepted, o
        templates[d] = tid
    svc.close()

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    cols = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
            for t in ("instances", "inputs", "timers")}
    n_instances = n_timers = 0
    serial = 0
    for d, count in hot + background:
        tid = templates[d]
        inst = dict(zip(cols["instances"],
                        conn.execute("SELECT * FROM instances WHERE id=?", (tid,)).fetchone(),
                        strict=True))
        inp = dict(zip(cols["inputs"],
                       conn.execute("SELECT * FROM inputs WHERE instance_id=?", (tid,)).fetchone(),
                       strict=True))
        timers = [dict(zip(cols["timers"], r, strict=True)) for r in
                  conn.execute("SELECT * FROM timers WHERE instance_id=?", (tid,))]
        done = 0
        while done < count:
            chunk = min(50_000, count - done)
            inst_rows, input_rows, timer_rows = [], [], []
            for _ in range(chunk):
                serial += 1
                iid = f"s{serial:07d}"
                doc = inst["document"].replace(f'"{tid}"', f'"{iid}"')
                digest = hashlib.sha256(doc.encode("utf-8")).hexdigest()
                inst_rows.append((iid, inst["contract_name"], inst["contract_id"],
                                  inst["calendar_version"], inst["state"], inst["status"],
                                  inst["seq"], doc, digest, inst["court"], inst["parties"],
                                  inst["created_at"], inst["updated_at"]))
                input_rows.append((iid, 1, "create", inp["body"].replace(f'"{tid}"', f'"{iid}"'),
                                   None, inp["result"].replace(tid, iid), digest, inp["at"],
                                   inp["recorded_at"]))
                timer_rows += [(iid, t["kind"], t["name"], t["due_at"], "pending")
                               for t in timers]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO instances (id, contract_name, contract_id, calendar_version, state,"
                " status, seq, document, state_hash, court, parties, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", inst_rows)
            conn.executemany(
                "INSERT INTO inputs (instance_id, seq, kind, body, idempotency_key, result,"
                " state_hash, at, recorded_at) VALUES (?,?,?,?,?,?,?,?,?)", input_rows)
            conn.executemany("INSERT INTO timers (instance_id, kind, name, due_at, status)"
                             " VALUES (?,?,?,?,?)", timer_rows)
            conn.execute("COMMIT")
            done += chunk
            n_instances += chunk
            n_timers += len(timer_rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return {"instances": n_instances, "timers": n_timers}


STARTUP_CHILD = """
import time, resource, sys, json
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
from engine.runtime.clock import VirtualClock
from engine.runtime.scheduler import EngineScheduler
from engine.runtime.service import EngineService
import datetime as dt
t1 = time.perf_counter()
svc = EngineService({url!r}, VirtualClock(dt.datetime(2025, 8, 1, tzinfo=dt.UTC)), mode="sandbox")
t2 = time.perf_counter()
sched = EngineScheduler(svc, sweep_seconds=3600)
sched.start()
due = svc.next_due()
t3 = time.perf_counter()
sched.shutdown()
svc.close()
print(json.dumps({{"imports": t1 - t0, "open": t2 - t1, "ready": t3 - t1, "total": t3 - t0,
                  "next_due": due.isoformat(),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def startup(path: Path) -> dict[str, float]:
    code = STARTUP_CHILD.format(repo=str(REPO), url=f"sqlite:///{path}")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    wall = time.perf_counter() - start
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["process_wall"] = wall
    return result


def fire(path: Path, days: int) -> dict[str, object]:
    from sqlalchemy import event

    from engine.runtime.clock import VirtualClock
    from engine.runtime.scheduler import EngineScheduler
    from engine.runtime.service import EngineService

    clock = VirtualClock(START, speed=SPEED)
    svc = EngineService(f"sqlite:///{path}", clock, mode="sandbox")
    # a firing counts when its transaction has committed: remember every commit's instant
    # (fired_at is the instant its transaction started; the scheduler's one thread runs
    # the transactions one after another, so a firing's commit is the first one after it)
    commits: list[dt.datetime] = []
    event.listen(svc.db.engine, "commit", lambda _conn: commits.append(clock.now()))
    sched = EngineScheduler(svc, sweep_seconds=1.0)
    cpu0 = time.process_time()
    sched.start()
    end = START + dt.timedelta(days=days)
    while clock.now() < end:
        time.sleep(0.1)
    time.sleep(1.5)  # let the last instant's firings finish
    sched.shutdown()
    cpu = time.process_time() - cpu0
    now = clock.now()
    conn = sqlite3.connect(path)
    cutoff = now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = conn.execute("SELECT due_at, fired_at FROM timers WHERE status='fired'").fetchall()
    pending = conn.execute("SELECT count(*) FROM timers WHERE status='pending'").fetchone()[0]
    missed = conn.execute("SELECT count(*) FROM timers WHERE status='pending' AND due_at <= ?",
                          (cutoff,)).fetchone()[0]
    per_instant = conn.execute(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM timers WHERE status='fired'"
        " GROUP BY due_at)").fetchone()[0]
    conn.close()
    sample = [r[0] for r in sqlite3.connect(path).execute(
        "SELECT instance_id FROM timers WHERE status='fired' AND instance_id LIKE 's%'"
        " LIMIT 20").fetchall()]
    replays = all(svc.replay(i) for i in sample)
    svc.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    import bisect

    def parse(s: str) -> dt.datetime:
        return dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC)

    def committed(fired_at: str) -> dt.datetime:
        t = parse(fired_at)
        i = bisect.bisect_left(commits, t)
        return commits[i] if i < len(commits) else t

    late = sorted((committed(f) - parse(d)).total_seconds() / SPEED for d, f in rows)
    return {"fired": len(late), "missed": missed, "still_pending": pending,
            "max_per_instant": per_instant,
            "p50": statistics.median(late) if late else None,
            "p99": late[int(0.99 * (len(late) - 1))] if late else None,
            "max": late[-1] if late else None, "replays": replays, "runs": sched.runs,
            "rss_mb": rss, "cpu_ms_per_firing": 1000 * cpu / max(1, len(late))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pending", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=1_000, help="deadlines due per working day/s")
    ap.add_argument("--days", type=int, default=15, help="legal days (= real seconds) to run")
    ap.add_argument("--db", type=Path, help="where to build the store (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="reuse --db if it exists (no build)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--child-fire", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_fire:
        print(json.dumps(fire(args.child_fire, args.days)))
        return 0
    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "scale.sqlite3"
    else:
        path = args.db
    try:
        if not (args.reuse and path.exists()):
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            t = time.perf_counter()
            built = build(path, args.pending, args.rate, args.days)
            print(f"store: {built['timers']:,} pending deadlines of {built['instances']:,} "
                  f"instances built in {time.perf_counter() - t:,.0f} s; "
                  f"{path.stat().st_size / 2**20:,.0f} MB")
        print(f"load average {os.getloadavg()[0]:.1f} before start-up and firing")
        s = startup(path)
        print(f"start-up: {s['ready']:.2f} s to ready (open + schema check "
              f"{s['open']:.2f} s, scheduler + next_due), imports {s['imports']:.2f} s, "
              f"process wall {s['process_wall']:.2f} s; next due {s['next_due']}; "
              f"RSS {s['rss_mb']:.0f} MB")
        out = subprocess.run([sys.executable, __file__, "--child-fire", str(path), "--days",
                              str(args.days)], capture_output=True, text=True, check=True).stdout
        f = json.loads(out.strip().splitlines()[-1])
        rss = max(f["rss_mb"], s["rss_mb"])
        print(f"load average {os.getloadavg()[0]:.1f} after firing")
        print(f"firing: {f['fired']:,} deadlines fired ({f['max_per_instant']:,} at one instant"
              f" at most, one instant per real second), {f['missed']} missed, "
              f"{f['still_pending']:,} still pending (not yet due); lateness p50 "
              f"{f['p50']:.3f} s, p99 {f['p99']:.3f} s, max {f['max']:.3f} s; clones replay: "
              f"{f['replays']}; engine CPU {f['cpu_ms_per_firing']:.2f} ms per firing")
        print(f"memory: peak RSS of the engine process {f['rss_mb']:.0f} MB while firing "
              f"(start-up process {s['rss_mb']:.0f} MB)")
        checks = {"start-up < 2 s": s["ready"] < 2.0,
                  "fire within 1 s": (f["max"] or 0) <= 1.0 and f["missed"] == 0,
                  "RSS < 500 MB": rss < 500}
        for name, ok in checks.items():
            print(f"  {name}: {'PASS' if ok else 'FAIL'}")
        return 1 if args.strict and not all(checks.values()) else 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
