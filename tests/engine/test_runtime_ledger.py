"""The engine with its tamper-evident ledger: records, atomicity, ``jrule audit``."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import (
    APPROVALS,
    MINIMAL,
    ROOT,
    audit_cli,
    deploy,
    minimal_terms,
    store_url,
    vclock,
)
from sqlalchemy import func, select, text

from engine.runtime.clock import VirtualClock
from engine.runtime.db import open_database
from engine.runtime.dispatcher import Dispatcher
from engine.runtime.handlers import Delivery, LocalHandler, PermanentFailure
from engine.runtime.service import EngineService
from engine.runtime.unit import T_APPROVALS, T_INPUTS, T_OUTBOX
from ledger_adapter import Ed25519Signer
from ledger_adapter.sql import SqlLedger
from ledger_adapter.verify import verify_receipt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from ledger_support import sql_edit_entry, sql_entry_count, sql_get_entry

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
    assert sql_entry_count(svc.db.engine) == size
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


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rows(svc: EngineService, table: Any) -> list[Any]:
    with svc.db.read() as conn:
        return list(conn.execute(select(table)).mappings())


def _by_kind(ledger: SqlLedger, kind: str) -> list[Any]:
    return [e for e in ledger.entries(0, ledger.size()) if e.kind == kind]


def test_every_triggered_action_is_logged_after_its_transition(
        lsvc: tuple[EngineService, SqlLedger], vclock: VirtualClock) -> None:
    svc, ledger = lsvc
    _story(svc, vclock)
    outbox = {r["key"]: r for r in _rows(svc, T_OUTBOX)}
    assert {r["action"] for r in outbox.values()} >= {"file_enforcement_case", "remind"}
    actions = _by_kind(ledger, "action")
    assert sorted(e.record.get("key") for e in actions) == sorted(outbox)
    inputs = {(r["instance_id"], r["seq"]): r for r in _rows(svc, T_INPUTS)}
    for e in actions:
        row = outbox[e.record.get("key")]
        assert e.record.get("args") == _sha(row["args"])
        assert e.record.get("action") == row["action"]
        assert e.record.get("outcome") == "triggered"
        trigger = inputs[(row["instance_id"], int(e.record.get("seq")))]
        # the action follows its transition in the same batch
        first = trigger["ledger_index"]
        assert ledger.entry(first).kind == "transition" and first < e.index <= first + 3
    assert ledger.audit().ok


def _approval_story(svc: EngineService, clock: VirtualClock) -> list[str]:
    deploy(svc, APPROVALS)
    ids = []
    for iid in ("f1", "f2", "f3"):
        svc.create_instance("freeze_flow", iid, {"owed": "5000.00", "rate": "0.01"})
        r = svc.submit_event(iid, "property_found", "officer",
                             {"amount": "8000.00", "kind": "bank_deposit"}, f"{iid}-found")
        ids.append(str(r.approvals[0]["id"]))
    clock.advance(dt.timedelta(hours=2))
    assert svc.decide(ids[0], "judge", True, "查明属实", key="d1", by="王法官").accepted
    assert svc.decide(ids[1], "judge", False, "账户已被他案冻结").accepted
    clock.advance(10 * DAY)
    svc.run_due()
    return ids


def test_approvals_are_logged_requested_decided_and_timed_out(
        lsvc: tuple[EngineService, SqlLedger], vclock: VirtualClock) -> None:
    svc, ledger = lsvc
    a1, a2, a3 = _approval_story(svc, vclock)
    requested = {e.record.get("approval"): e for e in _by_kind(ledger, "approval")
                 if e.record.get("decision") == "requested"}
    assert set(requested) == {a1, a2, a3}
    decisions = {e.record.get("approval"): e.record for e in _by_kind(ledger,
                                                                     "approval_decision")}
    assert decisions[a1].get("decision") == "approved" and decisions[a1].get("by") == "王法官"
    assert decisions[a1].get("reason") == _sha("查明属实")
    assert decisions[a2].get("decision") == "rejected" and decisions[a2].get("by") == "judge"
    assert decisions[a2].get("reason") == _sha("账户已被他案冻结")
    timeouts = [e.record for e in _by_kind(ledger, "approval")
                if e.record.get("decision") == "timeout"]
    assert [r.get("approval") for r in timeouts] == [a3] and timeouts[0].get("by") == "engine"
    # the approved freeze left through the outbox, and its action record says so
    assert [e.record.get("action") for e in _by_kind(ledger, "action")
            if e.record.get("instance") == "f1"] == ["freeze"]
    rows = {r["id"]: r for r in _rows(svc, T_APPROVALS)}
    assert decisions[a1].get("at") == rows[a1]["decided_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    # a party holding the decision can check it offline
    entry = next(e for e in _by_kind(ledger, "approval_decision")
                 if e.record.get("approval") == a1)
    report = verify_receipt(ledger.receipt(entry.index), ledger.log_keys())
    assert report.ok and report.record is not None
    assert report.record.get("by") == "王法官"
    assert ledger.audit().ok


def test_a_lapsed_approval_is_logged(lsvc: tuple[EngineService, SqlLedger]) -> None:
    svc, ledger = lsvc
    deploy(svc, APPROVALS)
    svc.create_instance("freeze_flow", "f1", {"owed": "5000.00", "rate": "0.01"})
    r = svc.submit_event("f1", "property_found", "officer",
                         {"amount": "8000.00", "kind": "bank_deposit"}, "f1-found")
    approval = str(r.approvals[0]["id"])
    left = svc.submit_event("f1", "nothing_found", "officer", {}, "f1-nothing")
    assert [a["status"] for a in left.approvals] == ["lapsed"]
    lapsed = [e for e in _by_kind(ledger, "approval") if e.record.get("decision") == "lapsed"]
    assert [e.record.get("approval") for e in lapsed] == [approval]
    assert lapsed[0].record.get("by") == "engine"
    assert _rows(svc, T_APPROVALS)[0]["status"] == "lapsed"
    assert ledger.audit().ok


def _reply(d: Delivery) -> dict[str, str]:
    if d.action == "file_enforcement_case":
        return {"case_number": "(2025)京0105执1234号"}
    if d.action == "freeze":
        return {"freeze_id": f"F-{d.key}", "expires_on": "2026-03-01"}
    return {"receipt_id": f"r-{d.key}"}


def test_delivery_outcomes_are_logged_with_the_receivers_reply(
        lsvc: tuple[EngineService, SqlLedger], vclock: VirtualClock) -> None:
    svc, ledger = lsvc
    _story(svc, vclock)
    dispatcher = Dispatcher(svc.db, LocalHandler(default=_reply), vclock, ledger=ledger)
    assert dispatcher.run_once() == len(_rows(svc, T_OUTBOX))
    rows = {r["key"]: r for r in _rows(svc, T_OUTBOX)}
    assert all(r["status"] == "delivered" for r in rows.values())
    filed = next(r for r in rows.values() if r["action"] == "file_enforcement_case")
    entry = ledger.entry(filed["ledger_index"])
    assert entry.kind == "delivery"
    assert entry.record.get("key") == filed["key"] and entry.record.get("outcome") == "delivered"
    assert entry.record.get("reference") == "case_number=(2025)京0105执1234号"
    assert entry.record.get("reply") == _sha(filed["receipt"])
    # the party holding "notice that enforcement was filed automatically" can verify it
    report = verify_receipt(ledger.receipt(entry.index), ledger.log_keys())
    assert report.ok and report.record is not None
    assert report.record.get("reference") == "case_number=(2025)京0105执1234号"
    assert all(ledger.entry(r["ledger_index"]).record.get("key") == k for k, r in rows.items())
    assert ledger.audit().ok


def test_a_failed_delivery_is_logged_as_failed(
        lsvc: tuple[EngineService, SqlLedger], vclock: VirtualClock) -> None:
    svc, ledger = lsvc
    _story(svc, vclock)

    def refuse(d: Delivery) -> dict[str, str]:
        raise PermanentFailure("the case management system refused: no basis document")

    dispatcher = Dispatcher(svc.db, LocalHandler(default=refuse), vclock, ledger=ledger)
    dispatcher.run_once()
    for row in _rows(svc, T_OUTBOX):
        assert row["status"] == "incident"
        record = ledger.entry(row["ledger_index"]).record
        assert record.get("outcome") == "failed" and record.get("reference") == "-"
        assert record.get("error") == _sha(row["last_error"])
    assert ledger.audit().ok


def test_a_rolled_back_delivery_outcome_leaves_no_entry(
        lsvc: tuple[EngineService, SqlLedger], vclock: VirtualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ledger = lsvc
    _story(svc, vclock)
    size = ledger.size()
    original = Dispatcher._log_outcome

    def log_then_fail(self: Dispatcher, *args: Any) -> None:
        original(self, *args)
        raise RuntimeError("crash after the ledger append")

    monkeypatch.setattr(Dispatcher, "_log_outcome", log_then_fail)
    dispatcher = Dispatcher(svc.db, LocalHandler(default=_reply), vclock, ledger=ledger)
    with pytest.raises(RuntimeError):
        dispatcher.run_once()
    assert ledger.size() == size
    assert all(r["status"] in ("pending", "delivering") and r["ledger_index"] is None
               for r in _rows(svc, T_OUTBOX))
    monkeypatch.undo()
    vclock.advance(dt.timedelta(hours=1))  # the lease runs out; the row is delivered again
    dispatcher.run_once()
    dispatcher.run_once()
    assert all(r["status"] == "delivered" for r in _rows(svc, T_OUTBOX))
    assert ledger.audit().ok


def test_a_rolled_back_decision_leaves_neither_row_nor_entry(
        lsvc: tuple[EngineService, SqlLedger], vclock: VirtualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc, ledger = lsvc
    deploy(svc, APPROVALS)
    svc.create_instance("freeze_flow", "f1", {"owed": "5000.00", "rate": "0.01"})
    r = svc.submit_event("f1", "property_found", "officer",
                         {"amount": "8000.00", "kind": "bank_deposit"}, "f1-found")
    approval = str(r.approvals[0]["id"])
    size, before = ledger.size(), _rows(svc, T_APPROVALS)
    original = SqlLedger.append

    def append_then_fail(self: SqlLedger, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)
        raise RuntimeError("crash after the ledger append")

    monkeypatch.setattr(SqlLedger, "append", append_then_fail)
    with pytest.raises(RuntimeError):
        svc.decide(approval, "judge", True, "查明属实", by="王法官")
    assert ledger.size() == size and _rows(svc, T_APPROVALS) == before
    assert _rows(svc, T_OUTBOX) == []
    monkeypatch.undo()
    assert svc.decide(approval, "judge", True, "查明属实", by="王法官").accepted
    kinds = [e.kind for e in ledger.entries(size, ledger.size())]
    assert kinds == ["transition", "action", "approval_decision"]
    assert ledger.audit().ok


# --------------------------------------------------------------------------- jrule audit
@pytest.fixture
def store(store_url: str, vclock: VirtualClock) -> str:
    """A store (each backend) with two mediation cases: one paid in part, one overdue."""
    svc, _ = _service(store_url, vclock)
    try:
        _story(svc, vclock)
    finally:
        svc.close()
    return store_url



def _sql(url: str, sql: str, **params: object) -> None:
    db = open_database(url, engine_lock=False)
    try:
        with db.write() as conn:
            assert conn.execute(text(sql), params).rowcount == 1
    finally:
        db.close()


def test_audit_clean_store(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = audit_cli(store, capsys)
    assert code == 0, out
    assert "no disagreement found" in out


def test_audit_names_a_changed_event_payload(store: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _sql(store, "UPDATE inputs SET body = replace(body, '400.00', '900.00') "
                "WHERE kind = 'event'")
    code, out = audit_cli(store, capsys)
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
    code, out = audit_cli(store, capsys)
    assert code == 1
    assert "instances[id=c].state_hash" in out and "instances[id=c].document" in out


def test_audit_names_a_changed_state(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    _sql(store, "UPDATE inputs SET state_hash = :h WHERE instance_id = 'c' AND seq = 2",
         h="0" * 64)
    code, out = audit_cli(store, capsys)
    assert code == 1
    assert ".state_hash: disagrees with ledger entry" in out
    assert "inputs[instance_id=c,seq=2].state_hash" in out


def test_audit_names_a_changed_ledger_record(store: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(store, engine_lock=False)
    ledger = SqlLedger(db.engine, ORIGIN, Ed25519Signer.generate(ORIGIN))
    idx = [e.index for e in ledger.entries(0, ledger.size()) if e.kind == "transition"][1]
    record = sql_get_entry(db.engine, idx)[0]
    forged = bytes(record).replace(b"\nseq 2\n", b"\nseq 7\n")
    assert forged != bytes(record)
    sql_edit_entry(db.engine, idx, record=forged)
    db.close()
    code, out = audit_cli(store, capsys)
    assert code == 1
    assert f"ledger_entries[index={idx}]" in out
    assert f"disagrees with ledger entry {idx}" in out


def test_audit_names_a_changed_leaf_hash(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(store, engine_lock=False)
    sql_edit_entry(db.engine, 1, leaf_hash=b"\x01" * 32)
    db.close()
    code, out = audit_cli(store, capsys)
    assert code == 1 and "ledger_entries[index=1].leaf_hash" in out


def test_audit_counts_rows(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(store, engine_lock=False)
    with db.read() as conn:
        n = conn.scalar(select(func.count()).select_from(T_INPUTS))
    db.close()
    code, out = audit_cli(store, capsys)
    assert code == 0 and f"checked {n} input rows and 2 instances" in out


# ------------------------------------------------- jrule audit: off-chain rows and versions
@pytest.fixture
def full_store(store_url: str, vclock: VirtualClock) -> str:
    """A store (each backend) with transitions, actions, approvals and delivery outcomes
    (one failed)."""
    url = store_url
    svc, ledger = _service(url, vclock)
    try:
        _story(svc, vclock)
        _approval_story(svc, vclock)

        def reply(d: Delivery) -> dict[str, str]:
            if d.action == "remind":
                raise PermanentFailure("no address for the respondent")
            return _reply(d)

        Dispatcher(svc.db, LocalHandler(default=reply), vclock, ledger=ledger).run_once()
        statuses = {r["status"] for r in _rows(svc, T_OUTBOX)}
        assert statuses == {"delivered", "incident"}
    finally:
        svc.close()
    return url


def _one(url: str, sql: str, **params: object) -> Any:
    db = open_database(url, engine_lock=False)
    try:
        with db.read() as conn:
            return conn.execute(text(sql), params).one()
    finally:
        db.close()


def _findings(url: str, capsys: pytest.CaptureFixture[str]) -> str:
    code, out = audit_cli(url, capsys)
    assert code == 1, out
    print(out)
    return out


def test_audit_full_store_is_clean(full_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = audit_cli(full_store, capsys)
    assert code == 0, out
    assert "delivery outcomes" in out and "no disagreement found" in out


_FREEZE = "SELECT key FROM outbox WHERE action = 'freeze'"
_FILING = "SELECT key FROM outbox WHERE action = 'file_enforcement_case'"
_FREEZE_FLOW = "SELECT id FROM contract_versions WHERE name = 'freeze_flow'"

#: (what, the rows' keys {a}, {b} (a query each), the changes, what the audit names)
FULL_STORE_CASES: list[tuple[str, list[str], list[str], list[str]]] = [
    ("deleted input row",
     ["SELECT ledger_index FROM inputs WHERE instance_id = 'c' AND seq = 2"],
     ["DELETE FROM inputs WHERE instance_id = 'c' AND seq = 2"],
     ["inputs[instance_id=c,seq=2]: missing, but ledger entry {a} records it"]),
    ("renumbered input rows (c's two swapped)", [],
     ["UPDATE inputs SET seq = 99 WHERE instance_id = 'c' AND seq = 1",
      "UPDATE inputs SET seq = 1 WHERE instance_id = 'c' AND seq = 2",
      "UPDATE inputs SET seq = 2 WHERE instance_id = 'c' AND seq = 99"],
     ["inputs[instance_id=c,seq=1].ledger_index", "inputs[instance_id=c,seq=2].ledger_index"]),
    ("deleted outbox row", [_FREEZE],
     ["DELETE FROM outbox WHERE key = :a"],
     ["outbox[key={a}]: missing, but ledger entry"]),
    ("outbox keys swapped", [_FREEZE, _FILING],
     ["UPDATE outbox SET key = 'swap' WHERE key = :a",
      "UPDATE outbox SET key = :a WHERE key = :b",
      "UPDATE outbox SET key = :b WHERE key = 'swap'"],
     ["outbox[key={a}].action: disagrees with ledger entry", "outbox[key={a}].instance_id",
      "outbox[key={b}].action: disagrees with ledger entry", "outbox[key={b}].instance_id"]),
    ("approval ids swapped",
     ["SELECT id FROM approvals WHERE status = 'approved'",
      "SELECT id FROM approvals WHERE status = 'rejected'"],
     ["UPDATE approvals SET id = 'swap' WHERE id = :a",
      "UPDATE approvals SET id = :a WHERE id = :b",
      "UPDATE approvals SET id = :b WHERE id = 'swap'"],
     ["approvals[id={a}].status: disagrees with ledger entry",
      "approvals[id={b}].status: disagrees with ledger entry"]),
    ("action arguments changed", [_FREEZE],
     ["UPDATE outbox SET args = replace(args, '5000.00', '50000.00') WHERE key = :a"],
     ["outbox[key={a}].args: disagrees with ledger entry"]),
    ("deleted approval row", ["SELECT id FROM approvals WHERE status = 'rejected'"],
     ["DELETE FROM approvals WHERE id = :a"],
     ["approvals[id={a}]: missing, but ledger entry"]),
    ("approval decision changed", ["SELECT id FROM approvals WHERE status = 'approved'"],
     ["UPDATE approvals SET reason = '未查明', decided_by = '李法官' WHERE id = :a"],
     ["approvals[id={a}].reason: disagrees with ledger entry",
      "approvals[id={a}].decided_by: disagrees with ledger entry"]),
    ("delivery reply changed", [_FILING],
     ["UPDATE outbox SET receipt = replace(receipt, '1234', '9999') WHERE key = :a"],
     ["outbox[key={a}].receipt: disagrees with ledger entry"]),
    ("failed delivery turned delivered",
     ["SELECT key FROM outbox WHERE status = 'incident' LIMIT 1"],
     ["UPDATE outbox SET status = 'delivered', delivered_at = created_at WHERE key = :a"],
     ["outbox[key={a}].status: disagrees with ledger entry"]),
    ("delivery outcome link moved to entry 0",
     ["SELECT key FROM outbox WHERE status = 'delivered' LIMIT 1"],
     ["UPDATE outbox SET ledger_index = 0 WHERE key = :a"],
     ["outbox[key={a}].ledger_index: ledger entry 0 is a deployment record"]),
    ("contract IR changed", [_FREEZE_FLOW],
     ["UPDATE contract_versions SET ir = replace(ir, '\"months\"', '\"years\"') WHERE id = :a"],
     ["contract_versions[id={a}].ir: hashes to"]),
    ("deployment row changed", [_FREEZE_FLOW],
     ["UPDATE contract_versions SET deployed_by = 'someone else' WHERE id = :a"],
     ["contract_versions[id={a}].deployed_by: disagrees with ledger entry"]),
]


@pytest.mark.parametrize(("keys", "changes", "named"), [c[1:] for c in FULL_STORE_CASES],
                         ids=[c[0] for c in FULL_STORE_CASES])
def test_audit_names_the_changed_row(full_store: str, capsys: pytest.CaptureFixture[str],
                                     keys: list[str], changes: list[str],
                                     named: list[str]) -> None:
    values = {"ab"[i]: _one(full_store, query)[0] for i, query in enumerate(keys)}
    for sql in changes:
        _sql(full_store, sql, **{k: v for k, v in values.items() if f":{k}" in sql})
    out = _findings(full_store, capsys)
    for part in named:
        assert part.format(**values) in out, (part, out)


def test_audit_names_a_deleted_contract_version(store_url: str, vclock: VirtualClock,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    url = store_url
    svc, ledger = _service(url, vclock)
    try:
        deploy(svc, MINIMAL)
        (cid,) = deploy(svc, APPROVALS)  # no instance uses it
        index = _by_kind(ledger, "deployment")[-1].index
    finally:
        svc.close()
    _sql(url, "DELETE FROM contract_versions WHERE id = :c", c=cid)
    out = _findings(url, capsys)
    assert (f"contract_versions[id={cid}]: missing, but ledger entry {index} records its "
            "deployment") in out


def test_audit_names_a_version_the_ledger_does_not_know(
        full_store: str, vclock: VirtualClock, capsys: pytest.CaptureFixture[str]) -> None:
    plain = EngineService(full_store, vclock, mode="test")  # an engine without the ledger
    try:
        (cid,) = deploy(plain, ROOT / "examples/mediation_agreement.jrule")
    finally:
        plain.close()
    out = _findings(full_store, capsys)
    assert f"contract_versions[id={cid}]: has no deployment record in the ledger" in out
