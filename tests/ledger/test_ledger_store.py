"""The one test suite every Ledger passes: memory, SQLite, PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading

import pytest
from ledger_support import ORIGIN, Backend, app_rows, seeded_signer, transition
from sqlalchemy import insert

from ledger_adapter import merkle
from ledger_adapter.checkpoint import parse_checkpoint
from ledger_adapter.errors import SignatureError, StoreError
from ledger_adapter.note import check_signatures, open_note, parse_note
from ledger_adapter.proof import parse_tlog_proof
from ledger_adapter.record import KINDS, decode_leaf, make_record
from ledger_adapter.verify import verify_receipt
from ledger_adapter.witness import Witness, request_cosignature


def _batches(ledger: object, sizes: list[int], start: int = 0) -> list[int]:
    """Append batches of the given sizes; return the checkpoint size after each."""
    out = []
    i = start
    for n in sizes:
        ledger.append([transition(i + k) for k in range(n)])  # type: ignore[attr-defined]
        i += n
        out.append(i)
    return out


def test_a_new_ledger_has_a_signed_empty_checkpoint(backend: Backend) -> None:
    ledger = backend.make()
    cp = ledger.checkpoint()
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, 0, merkle.EMPTY_ROOT)
    check_signatures(parse_note(cp.note), [seeded_signer().verifier()])
    assert ledger.size() == 0 and not ledger.append([])


def test_appends_are_logged_in_order_with_one_checkpoint_per_batch(backend: Backend) -> None:
    ledger = backend.make()
    sizes = _batches(ledger, [1, 3, 256, 255, 2, 600])
    entries = ledger.entries(0, sizes[-1])
    assert [e.index for e in entries] == list(range(sizes[-1]))
    for e in entries:
        assert e.record == transition(e.index)
        assert e.leaf_hash == merkle.leaf_hash(e.leaf_data())
        assert decode_leaf(e.leaf_data()) == (e.record, e.salt)
    assert len({e.salt for e in entries}) == len(entries)  # a fresh salt per record
    cp = ledger.checkpoint()
    assert cp.size == sizes[-1]
    assert cp.root == merkle.root([e.leaf_hash for e in entries])
    for size in [0, *sizes]:
        assert ledger.checkpoint_at(size).size == size
    with pytest.raises(StoreError):
        ledger.checkpoint_at(5)  # no batch ended there


def test_append_returns_the_entries(backend: Backend) -> None:
    ledger = backend.make()
    _batches(ledger, [4])
    got = ledger.append([transition(4), transition(5)])
    assert [e.index for e in got] == [4, 5]
    assert got == ledger.entries(4, 6)
    assert got[1].kind == "transition" and got[1].instance_id == transition(5).instance_id


def test_every_proof_verifies(backend: Backend) -> None:
    ledger = backend.make()
    rng = random.Random(7)
    sizes = _batches(ledger, [rng.randint(1, 300) for _ in range(12)])
    roots = {s: ledger.checkpoint_at(s).root for s in sizes}
    leaves = [e.leaf_hash for e in ledger.entries(0, sizes[-1])]
    for _ in range(60):
        size = rng.choice(sizes)
        index = rng.randrange(size)
        proof = ledger.inclusion_proof(index, size)
        merkle.verify_inclusion(leaves[index], index, size, proof, roots[size])
        old = rng.choice([s for s in sizes if s <= size])
        merkle.verify_consistency(old, size, ledger.consistency_proof(old, size), roots[old],
                                  roots[size])
    with pytest.raises(StoreError):
        ledger.inclusion_proof(0, sizes[-1] + 1)


def test_proofs_between_appends_verify(backend: Backend) -> None:
    """Proofs at the latest size while the log grows: the partial tiles a proof read (and
    keeps in memory) serve later proofs only as far as they were read."""
    ledger = backend.make()
    rng = random.Random(11)
    sizes: list[int] = []
    for n in [1, 1, 3, 250, 1, 1, 260, 7, 65_536 - 524, 1, 300]:
        sizes.extend(_batches(ledger, [n], start=sizes[-1] if sizes else 0))
        size = sizes[-1]
        root = ledger.checkpoint().root
        for index in {0, size - 1, rng.randrange(size), size // 2}:
            merkle.verify_inclusion(ledger.entry(index).leaf_hash, index, size,
                                    ledger.inclusion_proof(index, size), root)
        if len(sizes) > 1:
            old = sizes[-2]
            merkle.verify_consistency(old, size, ledger.consistency_proof(old, size),
                                      ledger.checkpoint_at(old).root, root)
    assert ledger.audit().ok


def test_receipts_verify_offline(backend: Backend) -> None:
    ledger = backend.make()
    sizes = _batches(ledger, [10, 300, 5])
    keys = ledger.log_keys()
    for index in [0, 9, 10, 200, 314]:
        receipt = ledger.receipt(index)
        report = verify_receipt(receipt, keys)
        assert report.ok, report.text()
        assert report.leaf_index == index and report.tree_size == sizes[-1]
        assert report.record == transition(index)
    old = ledger.receipt(3, size=sizes[0])
    assert verify_receipt(old, keys).tree_size == sizes[0]
    with pytest.raises(StoreError):
        ledger.receipt(sizes[0], size=sizes[0])


def test_a_receipt_is_a_c2sp_tlog_proof(backend: Backend) -> None:
    ledger = backend.make()
    _batches(ledger, [5])
    receipt = ledger.receipt(2)
    assert receipt.startswith(b"c2sp.org/tlog-proof@v1\nextra ")
    p = parse_tlog_proof(receipt)
    assert p.extra == ledger.entry(2).leaf_data()
    assert parse_checkpoint(parse_note(p.checkpoint.note).text).size == 5


# --- atomicity: appends join the caller's transaction ------------------------------------


def test_a_committed_transaction_keeps_its_entries(backend: Backend) -> None:
    ledger = backend.make()
    with backend.session() as session:
        session.execute(insert(app_rows).values(id=1, note="transition 1"))
        entries = ledger.append([transition(0), transition(1)], session=session)
        session.commit()
    assert [e.index for e in entries] == [0, 1]
    assert backend.app_count() == 1 and ledger.size() == 2
    assert ledger.checkpoint().size == 2
    assert ledger.audit().ok


def test_a_rolled_back_transaction_leaves_no_entry(backend: Backend) -> None:
    ledger = backend.make()
    _batches(ledger, [3])
    with backend.session() as session:
        session.execute(insert(app_rows).values(id=1, note="transition 1"))
        ledger.append([transition(3)], session=session)
        ledger.append([transition(4)], session=session)  # two batches, one transaction
        session.rollback()
    assert backend.app_count() == 0
    assert ledger.size() == 3 and ledger.checkpoint().size == 3
    # the log carries on from where the committed state was
    entries = ledger.append([transition(99)])
    assert entries[0].index == 3 and ledger.entry(3).record == transition(99)
    assert ledger.audit().ok


def test_a_failure_after_the_append_rolls_both_back(backend: Backend) -> None:
    ledger = backend.make()
    with pytest.raises(RuntimeError), backend.session() as session:
        session.execute(insert(app_rows).values(id=1, note="x"))
        ledger.append([transition(0)], session=session)
        raise RuntimeError("the engine failed after logging")
    assert backend.app_count() == 0 and ledger.size() == 0
    with backend.session() as session:
        session.execute(insert(app_rows).values(id=2, note="y"))
        ledger.append([transition(1)], session=session)
        session.commit()
    assert backend.app_count() == 1 and ledger.entry(0).record == transition(1)
    assert ledger.audit().ok


def test_every_kind_of_record_can_be_logged(backend: Backend) -> None:
    ledger = backend.make()
    at = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)
    d = "ab" * 32
    values = {
        "deployment": {"contract": d, "ruleset": d, "name": "mediation", "version": "1.0.0",
                       "by": "clerk 7", "at": at},
        "transition": transition(1).as_dict() | {"at": at},
        "action": {"instance": "c1", "seq": 2, "key": "c1:2:0", "action": "file_enforcement",
                   "args": d, "outcome": "triggered", "at": at},
        "approval": {"instance": "c1", "seq": 3, "approval": "c1:3:0", "decision": "approved",
                     "by": "judge 2", "at": at},
        "approval_decision": {"instance": "c1", "seq": 3, "approval": "c1:3:0",
                              "decision": "rejected", "by": "judge 2", "reason": d, "at": at},
        "delivery": {"instance": "c1", "key": "c1:2:0", "action": "file_enforcement",
                     "attempt": 1, "outcome": "delivered", "reply": d, "error": d,
                     "reference": "case_number=(2025)京0105执1234号", "at": at},
        "migration": {"instance": "c1", "seq": 4, "from": d, "to": "cd" * 32, "state": d,
                      "by": "clerk 7", "at": at},
        "admin": {"action": "calendar", "subject": "calendar 2026", "digest": d, "by": "ops",
                  "at": at},
        "signed_event": {"instance": "c1", "seq": 5, "org": "mediation centre 3",
                         "key": "0f1e2d3c4b5a6978", "message": d, "signature": "QUJD" * 22,
                         "at": at},
    }
    records = [make_record(k, {n: v for n, v in values[k].items() if n != "kind"})
               for k in KINDS if k != "key_rotation"]
    entries = ledger.append(records)
    assert [e.kind for e in entries] == [k for k in KINDS if k != "key_rotation"]
    assert entries[0].instance_id is None and entries[2].instance_id == "c1"
    assert all(verify_receipt(ledger.receipt(e.index), ledger.log_keys()).ok for e in entries)


# --- keys -----------------------------------------------------------------------------


def test_key_rotation(backend: Backend) -> None:
    old, new = seeded_signer(seed="2024"), seeded_signer(seed="2025")
    ledger = backend.make(old)
    _batches(ledger, [5])
    early = ledger.receipt(2)  # signed by the old key only
    rotation = ledger.rotate_key(new)
    assert rotation.index == 5 and rotation.kind == "key_rotation"
    assert rotation.record.get("old") == old.vkey and rotation.record.get("new") == new.vkey
    boundary = ledger.checkpoint()
    assert boundary.size == 6
    signed = {s.key_id for s in parse_note(boundary.note).signatures}
    assert signed == {old.key_id, new.key_id}  # the boundary is signed by both keys
    _batches(ledger, [3], start=100)
    after = ledger.checkpoint()
    assert {s.key_id for s in parse_note(after.note).signatures} == {new.key_id}

    keys = ledger.log_keys()
    assert [(k.vkey, k.valid_from, k.valid_to) for k in keys] == [
        (old.vkey, 0, 6), (new.vkey, 6, None)]
    # an old receipt verifies with the retired key listed
    report = verify_receipt(early, keys)
    assert report.ok and "retired key" in report.log_signers[0]
    # and a new one with only the new key; with only the old key it is an unknown key
    late = ledger.receipt(7)
    assert verify_receipt(late, [keys[1]]).ok
    assert verify_receipt(late, [keys[0]]).code == "unknown_key"
    # the boundary receipt verifies with either key
    assert verify_receipt(ledger.receipt(5, size=6), [keys[0]]).ok
    assert verify_receipt(ledger.receipt(5, size=6), [keys[1]]).ok
    assert ledger.audit().ok
    with pytest.raises(StoreError) as reused:
        ledger.rotate_key(old)
    assert reused.value.code == "key_reused"


def test_a_process_with_a_rotated_out_key_cannot_append(backend: Backend) -> None:
    if not backend.is_sql:
        pytest.skip("a memory ledger is one process")
    old, new = seeded_signer(seed="2024"), seeded_signer(seed="2025")
    first = backend.make(old)
    _batches(first, [2])
    first.rotate_key(new)
    stale = backend.make(old, initialize=False)
    with pytest.raises(StoreError) as e:
        stale.append([transition(9)])
    assert e.value.code == "wrong_key"
    fresh = backend.make(new)
    assert fresh.append([transition(9)])[0].index == 3


def test_initialize_checks_it_is_the_same_log(backend: Backend) -> None:
    if not backend.is_sql:
        pytest.skip("a memory ledger is created initialised")
    ledger = backend.make()
    _batches(ledger, [2])
    assert ledger.initialize().size == 2  # idempotent
    from ledger_adapter.sql import SqlLedger

    other = SqlLedger(backend.engine, "other.example/log", seeded_signer("other.example/log"))
    with pytest.raises(StoreError) as e:
        other.initialize()
    assert e.value.code == "wrong_log"


def test_log_keys_must_be_named_after_the_origin(backend: Backend) -> None:
    with pytest.raises(StoreError):
        backend.make(seeded_signer("elsewhere.example/log"))


# --- witnesses --------------------------------------------------------------------------


def test_cosignatures_travel_with_receipts(backend: Backend, tmp_path: object) -> None:
    ledger = backend.make()
    w1 = Witness.create(f"{tmp_path}/w1.json", "witness.example/w1")
    w2 = Witness.create(f"{tmp_path}/w2.json", "witness.example/w2")
    for w in (w1, w2):
        w.add_log(ORIGIN, [seeded_signer().vkey])
    _batches(ledger, [4])
    request_cosignature(ledger, w1, w1.signer.verifier())
    _batches(ledger, [3], start=4)
    # w1 last saw size 4: it answers 409 and the ledger retries with a consistency proof
    request_cosignature(ledger, w1, w1.signer.verifier())
    request_cosignature(ledger, w2, w2.signer.verifier())
    request_cosignature(ledger, w2, w2.signer.verifier())  # same size again: fine
    witnesses = [w1.signer.verifier(), w2.signer.verifier()]
    report = verify_receipt(ledger.receipt(6), ledger.log_keys(), witnesses, 2)
    assert report.ok, report.text()
    assert {c.name for c in report.cosigners} == {"witness.example/w1", "witness.example/w2"}
    # the older checkpoint only has w1
    old = verify_receipt(ledger.receipt(1, size=4), ledger.log_keys(), witnesses, 2)
    assert old.code == "not_enough_witnesses"
    assert ledger.audit().ok


# --- concurrency and the audit ------------------------------------------------------------


def test_concurrent_writers_share_one_log(backend: Backend) -> None:
    """Two writers (two processes' ledgers on one database) never lose or fork entries."""
    if not backend.is_sql:
        pytest.skip("one in-memory ledger object is one writer")
    a, b = backend.make(), backend.make(initialize=False)
    errors: list[BaseException] = []

    def write(ledger: object, tag: int) -> None:
        try:
            for i in range(15):
                ledger.append([transition(tag * 1000 + i), transition(tag * 1000 + i + 500)])  # type: ignore[attr-defined]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(ledger, tag))
               for tag, ledger in enumerate([a, b, a, b])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert a.size() == 4 * 15 * 2
    assert sorted(e.record.get("seq") or "" for e in a.entries(0, 120)) == sorted(
        str(tag * 1000 + i + off) for tag in range(4) for i in range(15) for off in (0, 500))
    report = a.audit()
    assert report.ok, report.text()


def test_the_audit_streams_and_reports_progress(backend: Backend) -> None:
    ledger = backend.make()
    _batches(ledger, [700, 300, 1])
    seen: list[tuple[int, int]] = []
    report = ledger.audit(progress=lambda done, total: seen.append((done, total)),
                          chunk_size=128)
    assert report.ok, report.text()
    assert report.entries == 1001 and report.checkpoints == 4 and report.keys == 1
    assert seen[0] == (128, 1001) and seen[-1] == (1001, 1001)
    assert all(x[0] <= y[0] for x, y in itertools.pairwise(seen))
    assert "no disagreement" in report.text()


def test_a_checkpoint_is_refused_without_the_log_key(backend: Backend) -> None:
    ledger = backend.make()
    _batches(ledger, [2])
    with pytest.raises(SignatureError) as e:
        open_note(ledger.checkpoint().note, [seeded_signer(seed="someone else").verifier()])
    assert e.value.code == "unknown_key"
