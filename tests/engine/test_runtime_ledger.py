"""The engine with its tamper-evident ledger: records, atomicity, ``jrule audit``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_support import MINIMAL, deploy, minimal_terms, store_url, vclock
from sqlalchemy import func, select, text

from engine.runtime.clock import VirtualClock
from engine.runtime.db import open_database
from engine.runtime.service import EngineService
from engine.runtime.unit import T_INPUTS
from ledger_adapter import Ed25519Signer
from ledger_adapter.sql import SqlLedger
from rules_dsl.cli import main

__all__ = ["store_url", "vclock"]

ORIGIN = "court.example/ledger"
DAY = dt.timedelta(days=1)


def _service(url: str, clock: VirtualClock) -> tuple[EngineService, SqlLedger]:
    db = open_database(url)
    ledger = SqlLedger(db.engine, ORIGIN, Ed25519Signer.generate(ORIGIN))
    return EngineService(url, clock, mode="test", db=db, ledger=ledger), ledger


@pytest.fixture
def lsvc(store_url: str, vclock: VirtualClock) -> Iterator[tuple[EngineService, SqlLedger]]:
    service, ledger = _service(store_url, vclock)
    try:
        yield service, ledger
    finally:
        service.close()


def _story(svc: EngineService, clock: VirtualClock) -> None:
    deploy(svc, MINIMAL)
    assert svc.create_instance("调解协议", "c", minimal_terms()).accepted
    clock.advance(DAY)
    assert svc.submit_event("c", "付款", "被申请人", {"数额": "400.00"}, "pay-1").accepted
    assert svc.create_instance("调解协议", "d", minimal_terms(due="2025-09-05")).accepted
    clock.advance(10 * DAY)
    svc.run_due()


def _inputs(svc: EngineService) -> list[tuple[str, int, int | None]]:
    with svc.db.read() as conn:
        return [tuple(r) for r in conn.execute(
            select(T_INPUTS.c.instance_id, T_INPUTS.c.seq, T_INPUTS.c.ledger_index)
            .order_by(T_INPUTS.c.id))]


def test_every_input_is_logged(lsvc: tuple[EngineService, SqlLedger],
                               vclock: VirtualClock) -> None:
    svc, ledger = lsvc
    _story(svc, vclock)
    rows = _inputs(svc)
    assert len(rows) >= 4 and all(i is not None for _, _, i in rows)
    kinds = [e.kind for e in ledger.entries(0, ledger.size())]
    assert kinds[0] == "deployment" and kinds.count("transition") == len(rows)
    for iid, seq, index in rows:
        entry = ledger.entry(index)  # type: ignore[arg-type]
        assert entry.kind == "transition"
        assert entry.record.get("instance") == iid and entry.record.get("seq") == str(seq)
    assert ledger.receipt(rows[0][2])  # type: ignore[arg-type]
    assert ledger.audit().ok


def test_rolled_back_transition_leaves_no_ledger_entry(
        lsvc: tuple[EngineService, SqlLedger], vclock: VirtualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ledger = lsvc
    deploy(svc, MINIMAL)
    svc.create_instance("调解协议", "c", minimal_terms())
    rows, size = _inputs(svc), ledger.size()
    original = EngineService._record

    def record_then_fail(self: EngineService, conn: object, unit: object) -> None:
        original(self, conn, unit)  # type: ignore[arg-type]
        assert ledger.size() == size  # (another connection does not see it yet)
        raise RuntimeError("crash after the ledger append")

    monkeypatch.setattr(EngineService, "_record", record_then_fail)
    with pytest.raises(RuntimeError):
        svc.submit_event("c", "付款", "被申请人", {"数额": "400.00"}, "pay-1")
    assert _inputs(svc) == rows and ledger.size() == size
    with svc.db.read() as conn:
        assert conn.scalar(text("SELECT count(*) FROM ledger_entries")) == size
    monkeypatch.undo()
    # the log goes on where it was: the next input gets the index the failed one had
    ok = svc.submit_event("c", "付款", "被申请人", {"数额": "400.00"}, "pay-1")
    assert ok.accepted and _inputs(svc)[-1][2] == size and ledger.audit().ok


def test_without_ledger_nothing_is_logged(store_url: str, vclock: VirtualClock) -> None:
    svc = EngineService(store_url, vclock, mode="test")
    try:
        deploy(svc, MINIMAL)
        svc.create_instance("调解协议", "c", minimal_terms())
        assert [i for _, _, i in _inputs(svc)] == [None]
    finally:
        svc.close()


# --------------------------------------------------------------------------- jrule audit
@pytest.fixture
def store(tmp_path: Path, vclock: VirtualClock) -> str:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    svc, _ = _service(url, vclock)
    try:
        _story(svc, vclock)
    finally:
        svc.close()
    return url


def _audit(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["audit", "--db", url])
    return code, capsys.readouterr().out


def _sql(url: str, sql: str, **params: object) -> None:
    db = open_database(url, engine_lock=False)
    try:
        with db.write() as conn:
            assert conn.execute(text(sql), params).rowcount == 1
    finally:
        db.close()


def test_audit_clean_store(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _audit(store, capsys)
    assert code == 0, out
    assert "no disagreement found" in out


def test_audit_names_a_changed_event_payload(store: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _sql(store, "UPDATE inputs SET body = replace(body, '400.00', '900.00') "
                "WHERE kind = 'event'")
    code, out = _audit(store, capsys)
    assert code == 1
    db = open_database(store, engine_lock=False)
    with db.read() as conn:
        row_id = conn.scalar(text("SELECT id FROM inputs WHERE kind = 'event'"))
    db.close()
    assert f"inputs[id={row_id}].body" in out
    assert "instances[id=c].document" in out  # the replay no longer reaches it


def test_audit_names_a_changed_document(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    _sql(store, "UPDATE instances SET document = replace(document, '400.00', '900.00') "
                "WHERE id = 'c'")
    code, out = _audit(store, capsys)
    assert code == 1
    assert "instances[id=c].state_hash" in out and "instances[id=c].document" in out


def test_audit_names_a_changed_state(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    _sql(store, "UPDATE inputs SET state_hash = :h WHERE instance_id = 'c' AND seq = 2",
         h="0" * 64)
    code, out = _audit(store, capsys)
    assert code == 1
    assert ".state_hash: disagrees with ledger entry" in out
    assert "inputs[instance_id=c,seq=2].state_hash" in out


def test_audit_names_a_changed_ledger_record(store: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(store, engine_lock=False)
    with db.read() as conn:
        idx, record = conn.execute(text(
            "SELECT idx, record FROM ledger_entries WHERE kind = 'transition' "
            "ORDER BY idx LIMIT 1 OFFSET 1")).one()
    db.close()
    forged = bytes(record).replace(b"\nseq 2\n", b"\nseq 7\n")
    assert forged != bytes(record)
    _sql(store, "UPDATE ledger_entries SET record = :r WHERE idx = :i", r=forged, i=idx)
    code, out = _audit(store, capsys)
    assert code == 1
    assert f"ledger_entries[index={idx}]" in out
    assert f"disagrees with ledger entry {idx}" in out


def test_audit_names_a_changed_leaf_hash(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    _sql(store, "UPDATE ledger_entries SET leaf_hash = :h WHERE idx = 1", h=b"\x01" * 32)
    code, out = _audit(store, capsys)
    assert code == 1 and "ledger_entries[index=1].leaf_hash" in out


def test_audit_counts_rows(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(store, engine_lock=False)
    with db.read() as conn:
        n = conn.scalar(select(func.count()).select_from(T_INPUTS))
    db.close()
    code, out = _audit(store, capsys)
    assert code == 0 and f"checked {n} input rows and 2 instances" in out
