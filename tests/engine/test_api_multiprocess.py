"""Three ``jrule serve`` processes on one PostgreSQL: every effect exactly once.

Cases are opened through different servers; every payment is sent to all
three at once with the same idempotency key; then every server's (virtual)
clock is moved past the due dates at the same time, so the three schedulers
race for the same deadlines.  Afterwards each deadline fired once, each
payment counted once, each action is in the outbox once, every input has one
ledger entry, the ledger audit is clean and every instance replays.
"""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from pathlib import Path

import pytest
from api_support import Server, prepare_store
from runtime_support import MINIMAL, PG_URL
from sqlalchemy import func, select

from engine.runtime.db import open_database
from engine.runtime.service import EngineService
from engine.runtime.unit import T_INPUTS, T_OUTBOX, T_TIMERS

pytestmark = pytest.mark.skipif(not PG_URL, reason="JRULE_TEST_DATABASE_URL not set")

CASES = 24
PAYMENTS = 3


@pytest.fixture
def pg_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    from runtime_support import make_url

    yield from make_url("postgresql", tmp_path)


def test_three_servers_share_one_database(pg_url: str, tmp_path: Path) -> None:
    store = prepare_store(pg_url, tmp_path / "data")
    servers = [Server(store, virtual_clock="2025-09-01T02:00:00Z") for _ in range(3)]
    servers[0].start()
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda s: s.start(), servers[1:]))
        clients = [s.client("all") for s in servers]
        src = {"source": MINIMAL.read_text(encoding="utf-8"), "filename": "m.jrule"}
        assert clients[1].post("/contracts/deploy", json=src).status_code == 201

        def open_case(n: int) -> None:
            r = clients[n % 3].post("/instances", json={
                "contract": "调解协议", "instance": f"case-{n}",
                "terms": {"金额": "1000.00", "履行期限": "2025-09-10", "司法确认": n % 2 == 0}})
            assert r.status_code == 201, r.text

        def pay(job: tuple[int, int, int]) -> tuple[str, int, bool]:
            n, k, via = job
            r = clients[via].post(f"/instances/case-{n}/events", json={
                "event": "付款", "role": "被申请人", "payload": {"数额": "10.00"},
                "idempotency_key": f"pay-{k}"})
            assert r.status_code == 200, r.text
            return f"case-{n}/{k}", r.json()["seq"], r.json()["duplicate"]

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            list(pool.map(open_case, range(CASES)))
            jobs = [(n, k, via) for n in range(CASES) for k in range(PAYMENTS)
                    for via in range(3)]
            results = list(pool.map(pay, jobs))
            # every server moves its clock past the due dates at once: schedulers race
            moved = list(pool.map(lambda c: c.post("/sandbox/clock", json={"days": 20}),
                                  clients))
        assert all(r.status_code == 200 for r in moved)
        applied = Counter(key for key, _, dup in results if not dup)
        assert len(applied) == CASES * PAYMENTS and set(applied.values()) == {1}
        seqs: dict[str, set[int]] = {}
        for key, seq, _ in results:
            seqs.setdefault(key, set()).add(seq)
        assert all(len(s) == 1 for s in seqs.values())  # duplicates got the first result
        for c in clients:
            c.close()
    finally:
        for s in servers:
            if s.proc is not None:
                s.stop()
    for s in servers:
        assert "Traceback" not in s.output(), s.output()[-3000:]

    db = open_database(pg_url, engine_lock=False)
    try:
        with db.read() as conn:
            fired = conn.execute(select(T_TIMERS.c.instance_id, T_TIMERS.c.name, func.count())
                                 .where(T_TIMERS.c.status == "fired")
                                 .group_by(T_TIMERS.c.instance_id, T_TIMERS.c.name)).all()
            outbox = conn.execute(select(T_OUTBOX.c.instance_id, func.count())
                                  .group_by(T_OUTBOX.c.instance_id)).all()
            inputs = conn.scalar(select(func.count()).select_from(T_INPUTS))
            logged = conn.scalar(select(func.count(func.distinct(T_INPUTS.c.ledger_index))))
    finally:
        db.close()
    assert len(fired) == CASES * 2 and {n for _, _, n in fired} == {1}  # 提醒 and 到期, once
    assert len(outbox) == CASES and {n for _, n in outbox} == {2}  # reminder + filing
    # per case: create, the payments, one tick for the reminder and one for the due date
    assert inputs == logged == CASES * (1 + PAYMENTS + 2)
    from ledger_adapter.note import Ed25519Signer
    from ledger_adapter.sql import SqlLedger

    signer = Ed25519Signer.from_skey((store.data_dir / "ledger.skey").read_text().strip())
    db = open_database(pg_url, engine_lock=False)
    service = EngineService(pg_url, db=db, mode="test",
                            ledger=SqlLedger(db.engine, signer.name, signer))
    try:
        assert service.ledger is not None and service.ledger.audit().ok
        for n in range(CASES):
            st = service.state(f"case-{n}")
            assert st["state"] == ("已申请执行" if n % 2 == 0 else "已起诉")
            assert st["document"]["vars"] == [["已付", f"{10 * PAYMENTS}.00"]]
            assert service.replay(f"case-{n}")
    finally:
        service.close()
