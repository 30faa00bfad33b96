"""Graceful shutdown under load, and ``jrule run`` handing its sandbox over to the API."""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import re
import threading
import time
from pathlib import Path

import httpx
from api_support import ROOT, Server, free_port, prepare_store
from runtime_support import MINIMAL
from sqlalchemy import func, select

from engine.runtime.db import open_database
from engine.runtime.unit import T_INPUTS


def test_sigterm_answers_every_accepted_request(tmp_path: Path) -> None:
    """Events keep coming while the server is told to stop: every request the server
    took is answered, and exactly the events answered 200 are in the store."""
    url = f"sqlite:///{tmp_path / 'jrule.sqlite3'}"
    store = prepare_store(url, tmp_path / "data")
    server = Server(store, virtual_clock="2025-09-01T02:00:00Z").start()
    with server.client("clerk") as c:
        assert c.post("/contracts/deploy", headers=store.headers("reviewer"), json={
            "source": MINIMAL.read_text(encoding="utf-8")}).status_code == 201
        for i in range(8):
            assert c.post("/instances", json={
                "contract": "调解协议", "instance": f"c{i}",
                "terms": {"金额": "99999.00", "履行期限": "2025-12-31", "司法确认": True}}
            ).status_code == 201
    answered = threading.Event()
    ok: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with server.client("clerk") as c:
            for k in range(400):
                try:
                    r = c.post(f"/instances/c{n}/events", json={
                        "event": "付款", "role": "被申请人", "payload": {"数额": "1.00"},
                        "idempotency_key": f"{n}-{k}"})
                except httpx.HTTPError:
                    return  # the server stopped taking requests
                assert r.status_code in (200, 503), r.text
                if r.status_code == 200:
                    with lock:
                        ok.append(f"{n}-{k}")
                        if len(ok) >= 100:
                            answered.set()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, n) for n in range(8)]
        assert answered.wait(60)
        server.proc.terminate()  # type: ignore[union-attr]
        for f in futures:
            f.result(120)
    server.proc.wait(60)  # type: ignore[union-attr]
    assert "stopped: queued events applied" in server.output()
    db = open_database(url, engine_lock=False)
    try:
        with db.read() as conn:
            applied = set(conn.scalars(select(T_INPUTS.c.idempotency_key)
                                       .where(T_INPUTS.c.kind == "event")))
            assert conn.scalar(select(func.count()).select_from(T_INPUTS)
                               .where(T_INPUTS.c.kind == "event")) == len(applied)
    finally:
        db.close()
    assert set(ok) <= applied and len(ok) >= 100
    # a request whose answer was cut off by the stop may be applied without a 200; every
    # 200 is applied, and nothing was applied twice (keys are unique per instance)
    assert len(applied - set(ok)) <= 8


def test_jrule_run_then_serves_the_sandbox(tmp_path: Path) -> None:
    from engine.demo import run

    port = free_port()
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(data=str(tmp_path / "data"), examples=str(ROOT / "examples"),
                              days=40, lang="en", serve=True, port=port, serve_seconds=8.0)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run(args, out, err)))
    thread.start()
    deadline = time.monotonic() + 120
    key = None
    while time.monotonic() < deadline and key is None:
        found = re.search(r"API key\s+(jrule_\S+)", out.getvalue())
        key = found.group(1) if found else None
        time.sleep(0.2)
    assert key, out.getvalue() + err.getvalue()
    assert "checked offline" in out.getvalue()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(100):
        try:
            if httpx.get(f"{base}/health").json()["mode"] == "sandbox":
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    timeline = httpx.get(f"{base}/instances/med-confirmed/timeline", headers=headers)
    assert timeline.status_code == 200 and len(timeline.json()) >= 5
    moved = httpx.post(f"{base}/sandbox/clock", json={"days": 30}, headers=headers)
    assert moved.status_code == 200 and moved.json()["now"].startswith("2025-11")
    assert httpx.get(f"{base}/ledger/checkpoint").status_code == 200
    thread.join(60)
    assert result == [0], err.getvalue()
