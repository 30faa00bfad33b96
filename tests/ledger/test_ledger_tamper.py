"""Change a stored row directly (SQL UPDATE/DELETE, or the memory ledger's rows) and the
audit names it: the table, the row and, where it can tell, the column."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from ledger_support import Backend, seeded_signer, sql_edit_entry, sql_get_entry, transition

from ledger_adapter import merkle
from ledger_adapter.log import TiledLog
from ledger_adapter.memory import MemoryLedger
from ledger_adapter.note import sign_note
from ledger_adapter.sql import SqlLedger
from ledger_adapter.tile import StoredTile

# checkpoints at 300, 600, 700; tiles (0,0) (0,1) (1,0.p); entries 512-699 are the partial
# level-0 tile, which is not stored (their leaf_hash column holds its hashes)
SIZES = (300, 300, 100)


class Tamper:
    """Alter stored rows the same way on every backend."""

    def __init__(self, backend: Backend, ledger: TiledLog) -> None:
        self.b = backend
        self.ledger = ledger
        self.mem = ledger.data if isinstance(ledger, MemoryLedger) else None

    def entry(self, index: int, **cols: Any) -> None:
        if self.mem is not None:
            rows = self.mem.entries
            rows[index] = rows[index]._replace(**cols)
            return
        if set(cols) - {"record", "salt", "leaf_hash"}:
            pytest.skip("the SQL store keeps no kind or instance_id column (they are read "
                        "from the record)")
        sql_edit_entry(self.b.engine, index, **cols)

    def get_entry(self, index: int) -> Any:
        if self.mem is not None:
            row = self.mem.entries[index]
            return row.record, row.salt, row.leaf_hash
        return sql_get_entry(self.b.engine, index)

    def delete_entry(self, index: int) -> None:
        if self.mem is not None:
            del self.mem.entries[index]
            return
        sql_edit_entry(self.b.engine, index, delete=True)

    def run(self, index: int, change: Callable[[Any], dict[str, Any]]) -> None:
        """Change the SQL row holding a run of entries (``change(row) -> new columns``)."""
        if self.mem is not None:
            pytest.skip("the memory store keeps one row per entry, not runs")
        from sqlalchemy import text

        with self.b.engine.begin() as conn:
            row = conn.execute(text("SELECT idx, width, records, lengths FROM ledger_entries "
                                    "WHERE idx = :i"), {"i": index}).one()
            cols = change(row)
            sets = ", ".join(f"{k} = :{k}" for k in cols)
            conn.execute(text(f"UPDATE ledger_entries SET {sets} WHERE idx = :i"),
                         {"i": index, **cols})

    def tile(self, level: int, index: int, change: Callable[[bytes], bytes] | None,
             column: str = "hashes") -> None:
        if self.mem is not None:
            if change is None:
                del self.mem.tiles[(level, index)]
            else:
                t = self.mem.tiles[(level, index)]
                self.mem.tiles[(level, index)] = t._replace(
                    **{column: change(getattr(t, column))})
            return
        if change is None:
            self.b.execute("DELETE FROM ledger_tiles WHERE level = :l AND idx = :i",
                           l=level, i=index)
            return
        from sqlalchemy import text

        with self.b.engine.begin() as conn:
            data = conn.execute(text(f"SELECT {column} FROM ledger_tiles WHERE level = :l "
                                     "AND idx = :i"), {"l": level, "i": index}).scalar_one()
            conn.execute(text(f"UPDATE ledger_tiles SET {column} = :h WHERE level = :l AND "
                              "idx = :i"), {"h": change(bytes(data)), "l": level, "i": index})

    def checkpoint(self, size: int, **cols: Any) -> None:
        if self.mem is not None:
            row = self.mem.checkpoints[size]
            self.mem.checkpoints[size] = replace(row, **cols)
            return
        values = {k: (v.decode() if isinstance(v, bytes) and k in ("note", "cosignatures")
                      else v) for k, v in cols.items()}
        sets = ", ".join(f"{k} = :{k}" for k in values)
        self.b.execute(f"UPDATE ledger_checkpoints SET {sets} WHERE size = :s", s=size,
                       **values)

    def delete_checkpoint(self, size: int) -> None:
        if self.mem is not None:
            del self.mem.checkpoints[size]
            return
        self.b.execute("DELETE FROM ledger_checkpoints WHERE size = :s", s=size)

    def get_checkpoint_note(self, size: int) -> bytes:
        return self.ledger.checkpoint_at(size).note

    def head(self, **cols: Any) -> None:
        if self.mem is not None:
            assert self.mem.head is not None
            self.mem.head = replace(self.mem.head, **cols)
            return
        sets = ", ".join(f"{k} = :{k}" for k in cols)
        self.b.execute(f"UPDATE ledger_head SET {sets} WHERE id = 1", **cols)

    def key(self, key_id: str, **cols: Any) -> None:
        if self.mem is not None:
            self.mem.keys[key_id] = replace(self.mem.keys[key_id], **cols)
            return
        sets = ", ".join(f"{k} = :{k}" for k in cols)
        self.b.execute(f"UPDATE ledger_keys SET {sets} WHERE key_id = :k", k=key_id, **cols)


def flip_hash(data: bytes, position: int) -> bytes:
    i = position * 32
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]


def _ledger(backend: Backend) -> tuple[TiledLog, Tamper]:
    ledger = backend.make()
    i = 0
    for n in SIZES:
        ledger.append([transition(i + k) for k in range(n)])
        i += n
    assert ledger.audit().ok
    return ledger, Tamper(backend, ledger)


def _salt_line(salt: bytes) -> bytes:
    return b"salt " + base64.b64encode(salt) + b"\n"


def change_record(t: Tamper) -> None:
    row = t.get_entry(417)
    t.entry(417, record=bytes(row[0]).replace(b"seq 417", b"seq 418"))


def change_record_past_the_last_full_tile(t: Tamper) -> None:
    row = t.get_entry(650)
    t.entry(650, record=bytes(row[0]).replace(b"seq 650", b"seq 651"))


def change_record_noncanonically(t: Tamper) -> None:
    row = t.get_entry(417)
    t.entry(417, record=bytes(row[0]).replace(b"seq 417", b"seq 0417"))


def change_salt(t: Tamper) -> None:
    t.entry(12, salt=b"\x00" * 32)


def change_leaf_hash(t: Tamper) -> None:
    t.entry(450, leaf_hash=b"\x07" * 32)


def change_leaf_hash_past_the_last_full_tile(t: Tamper) -> None:
    """Entries 512-699 have no stored tile (their hashes are the leaf_hash column)."""
    t.entry(650, leaf_hash=b"\x07" * 32)


def as_an_older_version_stored(t: Tamper) -> None:
    """Tiles as versions before 2026-11-22 stored them: with their inner nodes, and the
    partial level-0 tile (here of 100 hashes, as if 88 entries had been appended since)."""
    from ledger_adapter.tile import tile_nodes

    leaves = b"".join(e.leaf_hash for e in t.ledger.entries(512, 612))
    if t.mem is not None:
        for key, stored in list(t.mem.tiles.items()):
            t.mem.tiles[key] = stored._replace(nodes=tile_nodes(stored.hashes))
        t.mem.tiles[(0, 2)] = StoredTile(leaves, tile_nodes(leaves))
        return
    from sqlalchemy import text

    with t.b.engine.begin() as conn:
        for level, idx, data in conn.execute(text("SELECT level, idx, hashes FROM ledger_tiles")
                                             ).all():
            conn.execute(text("UPDATE ledger_tiles SET nodes = :n WHERE level = :l AND "
                              "idx = :i"), {"n": tile_nodes(bytes(data)), "l": level, "i": idx})
        conn.execute(text("INSERT INTO ledger_tiles (level, idx, width, hashes, nodes) VALUES "
                          "(0, 2, 100, :h, :n)"), {"h": leaves, "n": tile_nodes(leaves)})


def older_version(change: Callable[[Tamper], None]) -> Callable[[Tamper], None]:
    def both(t: Tamper) -> None:
        as_an_older_version_stored(t)
        change(t)

    return both


def rewrite_entry_everywhere(t: Tamper) -> None:
    """Change a record and recompute its leaf hash and tile: only the signature stops it."""
    import hashlib

    row = t.get_entry(5)
    record = bytes(row[0]).replace(b"seq 5", b"seq 6")
    leaf = hashlib.sha256(b"\x00" + record + _salt_line(bytes(row[1]))).digest()
    t.entry(5, record=record, leaf_hash=leaf)
    t.tile(0, 0, lambda d: d[:5 * 32] + leaf + d[6 * 32:])
    from ledger_adapter.tile import tile_nodes  # keep the tile's inner nodes consistent too

    if t.mem is not None:
        stored = t.mem.tiles[(0, 0)]
        t.mem.tiles[(0, 0)] = stored._replace(nodes=tile_nodes(stored.hashes))
    else:
        from sqlalchemy import text

        with t.b.engine.begin() as conn:
            data = conn.execute(text("SELECT hashes FROM ledger_tiles WHERE level = 0 AND "
                                     "idx = 0")).scalar_one()
            conn.execute(text("UPDATE ledger_tiles SET nodes = :n WHERE level = 0 AND idx = 0"),
                         {"n": tile_nodes(bytes(data))})


CASES: list[tuple[str, Callable[[Tamper], None], str, str]] = [
    ("record", change_record, "entry.content_altered", "ledger_entries[index=417]"),
    ("record not canonical", change_record_noncanonically, "entry.record_malformed",
     "ledger_entries[index=417].record"),
    ("salt", change_salt, "entry.content_altered", "ledger_entries[index=12]"),
    ("leaf hash", change_leaf_hash, "entry.leaf_hash_altered",
     "ledger_entries[index=450].leaf_hash"),
    ("leaf hash past the last full tile", change_leaf_hash_past_the_last_full_tile,
     "entry.leaf_hash_altered", "ledger_entries[index=650].leaf_hash"),
    ("record past the last full tile", change_record_past_the_last_full_tile,
     "entry.content_altered", "ledger_entries[index=650]"),
    ("kind", lambda t: t.entry(3, kind="deployment"), "entry.kind_mismatch",
     "ledger_entries[index=3].kind"),
    ("instance", lambda t: t.entry(3, instance_id="case-other"), "entry.instance_mismatch",
     "ledger_entries[index=3].instance_id"),
    ("deleted entry", lambda t: t.delete_entry(250), "entry.missing",
     "ledger_entries[index=250]"),
    # runs of entries (SQL): appends of 300, 300, 100 make runs from 0, 256, 300, 512, 600
    ("run cut short", lambda t: t.run(256, lambda r: {"width": r.width - 4}),
     "entry.missing", "ledger_entries[index=296]"),
    ("run lengths", lambda t: t.run(300, lambda r: {"lengths": (
        int.from_bytes(bytes(r.lengths)[:2], "big") + 1).to_bytes(2, "big")
        + bytes(r.lengths)[2:]}),
     "entry.record_malformed", "ledger_entries[index=300].record"),
    ("level-0 tile", lambda t: t.tile(0, 1, lambda d: flip_hash(d, 7)), "tile.hash_mismatch",
     "ledger_tiles[level=0,index=1]"),
    ("partial tile (older version)",
     older_version(lambda t: t.tile(0, 2, lambda d: flip_hash(d, 0))), "tile.hash_mismatch",
     "ledger_tiles[level=0,index=2]"),
    ("partial tile too wide (older version)",
     older_version(lambda t: t.tile(0, 2, lambda d: d + d[:32 * 100])), "tile.width",
     "ledger_tiles[level=0,index=2]"),
    ("level-1 tile", lambda t: t.tile(1, 0, lambda d: flip_hash(d, 1)), "tile.hash_mismatch",
     "ledger_tiles[level=1,index=0]"),
    ("tile inner nodes (older version)",
     older_version(lambda t: t.tile(0, 1, lambda d: flip_hash(d, 3), "nodes")),
     "tile.nodes_mismatch", "ledger_tiles[level=0,index=1].nodes"),
    ("deleted tile", lambda t: t.tile(0, 0, None), "tile.missing",
     "ledger_tiles[level=0,index=0]"),
    ("truncated tile", lambda t: t.tile(0, 1, lambda d: d[:-32]), "tile.width",
     "ledger_tiles[level=0,index=1]"),
    ("rewritten entry", rewrite_entry_everywhere, "checkpoint.root_mismatch",
     "ledger_checkpoints[size=300]"),
    ("checkpoint root column", lambda t: t.checkpoint(600, root=b"\x01" * 32),
     "checkpoint.root_column", "ledger_checkpoints[size=600].root"),
    ("checkpoint note", lambda t: t.checkpoint(
        600, note=t.get_checkpoint_note(600).replace(b"\n600\n", b"\n601\n")),
     "checkpoint.bad_signature", "ledger_checkpoints[size=600].note"),
    ("checkpoint signed by another key", lambda t: t.checkpoint(
        300, note=sign_note(t.ledger.checkpoint_at(300).checkpoint.text(),
                            [seeded_signer(seed="thief")])),
     "checkpoint.unsigned", "ledger_checkpoints[size=300].note"),
    ("checkpoint cosignatures", lambda t: t.checkpoint(300, cosignatures=b"garbage\n"),
     "checkpoint.cosignature_malformed", "ledger_checkpoints[size=300].cosignatures"),
    ("deleted head checkpoint", lambda t: t.delete_checkpoint(700), "head.checkpoint",
     "ledger_checkpoints[size=700]"),
    ("head root", lambda t: t.head(root=b"\x02" * 32), "head.root", "ledger_head.root"),
    ("head size", lambda t: t.head(size=650), "head.size", "ledger_head.size"),
    ("key range", lambda t: t.key(f"{seeded_signer().key_id:08x}", valid_from=5),
     "key.range", f"ledger_keys[key_id={seeded_signer().key_id:08x}]"),
]


@pytest.mark.parametrize("name,tamper,code,location", CASES, ids=[c[0] for c in CASES])
def test_the_audit_names_the_changed_row(backend: Backend, name: str,
                                         tamper: Callable[[Tamper], None], code: str,
                                         location: str) -> None:
    _, t = _ledger(backend)
    tamper(t)
    report = t.ledger.audit(chunk_size=100)
    assert not report.ok
    found = [(f.code, f.location) for f in report.findings]
    assert (code, location) in found, report.text()
    assert report.findings[0].location.startswith(location.split("[")[0]), report.text()


def test_tiles_stored_by_an_older_version_pass_the_audit_and_serve_proofs(
        backend: Backend) -> None:
    """Inner nodes and a (stale) partial level-0 tile, as older versions stored them, are
    checked and do not change what is served; appends go on from them."""
    ledger, t = _ledger(backend)
    size = ledger.size()
    want = [ledger.inclusion_proof(i, size) for i in (0, 300, 511, 600, 699)]
    as_an_older_version_stored(t)
    # a new SqlLedger reads the tree's edge from storage (no cache)
    again = (SqlLedger(ledger.engine, ledger.origin, seeded_signer())
             if isinstance(ledger, SqlLedger) else ledger)
    assert again.audit().ok, again.audit().text()
    assert [again.inclusion_proof(i, size) for i in (0, 300, 511, 600, 699)] == want
    again.append([transition(700 + k) for k in range(100)])  # fills tile (0, 2)
    report = again.audit()
    assert report.ok, report.text()
    root = again.checkpoint().root
    for i in (600, 767, 799):
        merkle.verify_inclusion(again.entry(i).leaf_hash, i, 800,
                                again.inclusion_proof(i, 800), root)


@pytest.mark.parametrize("change", [change_record, change_record_past_the_last_full_tile])
def test_one_altered_record_is_one_finding_not_a_cascade(
        backend: Backend, change: Callable[[Tamper], None]) -> None:
    _, t = _ledger(backend)
    change(t)
    report = t.ledger.audit()
    assert [f.code for f in report.findings] == ["entry.content_altered"], report.text()


def test_findings_are_capped_but_counted(backend: Backend) -> None:
    ledger, t = _ledger(backend)
    for i in range(0, 40):
        t.entry(i, leaf_hash=bytes([i + 1]) * 32)
    from ledger_adapter.audit import run_audit

    with ledger._read() as store:
        report = run_audit(store, ledger.origin, max_findings=10)
    assert report.findings_total == 40 and len(report.findings) == 10
    assert "and 30 more" in report.text()
