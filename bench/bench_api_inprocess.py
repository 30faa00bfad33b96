"""The HTTP API's CPU per event without sockets: the ASGI app driven in-process.

    python bench/bench_api_inprocess.py [--rounds 300]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/api.cg \\
        python bench/bench_api_inprocess.py --callgrind      # instructions per event

The application of ``jrule serve`` (``create_app`` over ``open_runtime``: the
fast path, FastAPI, the group writer, the engine with its ledger, SQLite) gets
rounds of 8 concurrent ``POST /instances/{id}/events`` (a clerk's key, the
payments of ``bench_api.py``, random instances of 1,000), called as ASGI
applications on a uvloop loop: what uvicorn and the sockets cost is left out,
everything else is in, except the look-up of an instance's court on its first
event in the process (done for all 1,000 before measuring).  The writer's
linger is long and its first group expected at 8, so every group has 8
events whatever the machine's load, which makes the figures comparable
between trees (``bench_api.py``'s are not on a busy machine).  Printed: CPU
ms per event (``time.process_time``).  With ``--callgrind`` (run under
callgrind) the counters are zeroed before the measured rounds and dumped
after them, so the dump's total is the measured rounds' instructions: divide
by the events printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _callgrind(option: str) -> None:
    """``callgrind_control`` this process (it answers only while running code)."""
    proc = subprocess.Popen(["callgrind_control", option, str(os.getpid())],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        time.sleep(0.005)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=300, help="measured rounds of 8 events")
    p.add_argument("--callgrind", action="store_true",
                   help="zero callgrind's counters before the measured rounds, dump after")
    args = p.parse_args()

    import uvloop
    from bench_api import _prepare

    from engine.api.app import create_app
    from engine.api.config import load_config
    from engine.api.runtime import open_runtime

    tmp = Path(tempfile.mkdtemp(prefix="jrule-bench-inproc-"))
    url = f"sqlite:///{tmp / 'jrule.sqlite3'}"
    key = _prepare(url, tmp, 1000)
    config = load_config(env={}, database_url=url, data_dir=str(tmp), access_log=False,
                         ledger_origin="bench.local/ledger",
                         ledger_key=str(tmp / "ledger.skey"),
                         virtual_clock="2025-09-01T02:00:00Z", log_level="WARNING")
    runtime = open_runtime(config, scheduler=False)
    app = create_app(runtime, manage=False)
    runtime.start()
    runtime.writer.linger = 10.0  # groups of exactly 8: comparable whatever the load
    runtime.writer._expect = 8
    rng = random.Random(1)
    statuses: dict[int, int] = {}
    base_headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {key}".encode()),
                    (b"content-type", b"application/json")]

    async def one(n: int, k: int) -> None:
        body = json.dumps({"event": "付款", "role": "被申请人", "payload": {"数额": "1.00"},
                           "idempotency_key": f"r-{n}-{k}"}).encode()
        path = f"/instances/case-{rng.randrange(1000)}/events"
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "server": ("127.0.0.1", 8640),
            "client": ("127.0.0.1", 50000), "scheme": "http", "method": "POST",
            "root_path": "", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": [*base_headers, (b"content-length", str(len(body)).encode())]}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        status = 0

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        statuses[status] = statuses.get(status, 0) + 1

    round_no = 0

    async def rounds(count: int) -> None:
        nonlocal round_no
        for _ in range(count):
            round_no += 1
            await asyncio.gather(*(one(n, round_no) for n in range(8)))

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(rounds(25))  # warm-up
    for n in range(1000):  # every instance's court known: no first-sight look-ups measured
        runtime.authenticator.instance(f"case-{n}")
    statuses.clear()
    gc.collect()
    gc.freeze()
    if args.callgrind:
        _callgrind("-z")
    cpu = time.process_time()
    loop.run_until_complete(rounds(args.rounds))
    cpu = time.process_time() - cpu
    if args.callgrind:
        _callgrind("-d")
    events = args.rounds * 8
    print(f"{events} events in groups of 8, answers {statuses}: "
          f"{cpu * 1000 / events:.3f} CPU ms per event")
    shutil.rmtree(tmp, ignore_errors=True)
    os._exit(0)  # without waiting for the writer thread (it lingers 10 s)


if __name__ == "__main__":
    raise SystemExit(main())
