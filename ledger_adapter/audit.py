"""The ledger audit: recheck the whole store from its rows, streaming.

What it checks (every disagreement becomes an :class:`AuditFinding` naming
the table, the row and the column):

- every entry: its record is canonical ``jrule-record/1``; its ``kind`` and
  ``instance_id`` columns agree with the record; its salt is 32 bytes; the leaf
  hash recomputed from record and salt equals the stored ``leaf_hash``;
  indexes run 0, 1, 2, ... with no gap and nothing beyond the head;
- the tree: every stored tile is recomputed from the entries (the recomputed
  leaf hashes, not the stored ones) and compared hash by hash; missing,
  too-wide and unexpected tiles are named (the partial level-0 tile is not
  stored: the entries hold its hashes; one stored by an older version is
  checked like any other, and may be narrower than the tree's, as the versions
  since do not update it); inner nodes stored by older versions are checked
  against their tile;
- every checkpoint: its root equals the root of the recomputed tree at its
  size; its note text says the same origin, size and root as its columns; it
  is signed by exactly the log key(s) valid at its size (both keys at a
  rotation boundary) and every signature verifies; its cosignature lines
  parse; consecutive checkpoints are consistent (the consistency proof the
  ledger would serve verifies between their stored roots);
- the keys: IDs match public keys and the origin; validity ranges start at 0
  and follow each other without gap; only the last is open; every rotation
  boundary is a logged ``key_rotation`` entry naming the old and new key;
- the head: its size, root and key agree with all of the above, and the
  checkpoint of its size is stored (the newest one the log issued).

A deleted checkpoint *below* the head's size leaves no trace in the store
(checkpoints are issued per batch and nothing counts them); receipts and
witnesses' cosigned copies of it stay verifiable evidence.

Memory does not grow with the log: entries are read ``chunk_size`` at a
time, tiles a few at a time per level, and the tree is carried as one
partial tile per level.  At most ``max_findings`` findings are kept (all are
counted).
"""

from __future__ import annotations

import hashlib
import time
from binascii import b2a_base64
from dataclasses import dataclass, field

from ledger_adapter.checkpoint import parse_checkpoint
from ledger_adapter.errors import FormatError, LedgerError, ProofError, SignatureError
from ledger_adapter.log import CheckpointRow, KeyRow, ScannedEntry, Store, _CachedTiles, _TileCache
from ledger_adapter.merkle import EMPTY_ROOT, HASH_SIZE, consistency_proof, verify_consistency
from ledger_adapter.note import Ed25519Verifier, b64encode, check_signatures, key_id, parse_note
from ledger_adapter.protocol import AuditFinding, AuditReport, Progress
from ledger_adapter.record import SALT_SIZE, check_record, record_instance
from ledger_adapter.tile import (
    TILE_WIDTH,
    StoredTile,
    TileHashReader,
    edge_root,
    tile_nodes,
    tile_root,
)

__all__ = ["run_audit"]

_FULL = TILE_WIDTH * HASH_SIZE
_sha256 = hashlib.sha256
_TILE_BATCH = 64


@dataclass
class _Findings:
    cap: int
    kept: list[AuditFinding] = field(default_factory=list)
    total: int = 0

    def add(self, code: str, location: str, message: str) -> None:
        self.total += 1
        if len(self.kept) < self.cap:
            self.kept.append(AuditFinding(code, location, message))


class _TileCursor:
    """Reads one level's stored tiles in index order, a few at a time."""

    def __init__(self, store: Store, level: int) -> None:
        self._store = store
        self._level = level
        self._buf: list[tuple[int, StoredTile]] = []
        self._next = 0
        self._done = False

    def _fill(self) -> None:
        if not self._buf and not self._done:
            self._buf = self._store.read_tile_range(self._level, self._next, _TILE_BATCH)
            self._buf.reverse()
            if not self._buf:
                self._done = True
            else:
                self._next = self._buf[0][0] + 1

    def take(self, index: int) -> tuple[StoredTile | None, list[int]]:
        """The stored tile ``index`` (or None), and indexes skipped before it."""
        skipped: list[int] = []
        while True:
            self._fill()
            if not self._buf:
                return None, skipped
            i, data = self._buf[-1]
            if i > index:
                return None, skipped
            self._buf.pop()
            if i == index:
                return data, skipped
            skipped.append(i)

    def rest(self) -> list[int]:
        out: list[int] = []
        while True:
            self._fill()
            if not self._buf:
                return out
            out.append(self._buf.pop()[0])


class _Tree:
    """The tree recomputed from the entries, one partial tile per level, checked as it grows.

    Each leaf is compared at once with three witnesses of it: the hash of the
    entry's record and salt, the entry's ``leaf_hash`` column and the stored
    level-0 tile.  When two agree, the third is the one that changed, and it
    alone is reported; the tree goes on with the agreed hash, so one altered
    row is one finding, not a cascade through every tile and checkpoint above
    it.  (A record changed together with its leaf hash and tile leaves only the
    signed checkpoints disagreeing: that is reported at the first of them.)
    """

    def __init__(self, store: Store, findings: _Findings, size: int) -> None:
        self._store = store
        self._f = findings
        # the level-0 tile that is partial in the tree of the head's size (not stored)
        self._partial0 = size // TILE_WIDTH if size % TILE_WIDTH else -1
        # entries of that tile whose record and salt do not hash to their leaf_hash column:
        # (index, computed, column), until a signed checkpoint tells which one the tree holds
        self._pending: list[tuple[int, bytes, bytes]] = []
        self._bufs: dict[int, bytearray] = {}
        self._counts: dict[int, int] = {}
        self._cursors: dict[int, _TileCursor] = {}
        self._leaf_tile: tuple[int, bytes | None] = (-1, None)  # stored level-0 tile in use
        self._leaf_tile_bad = False
        self.checked = 0
        self.bad_tiles = 0

    def push_leaf(self, index: int, computed: bytes, column: bytes) -> None:
        tile_index, p = divmod(index, TILE_WIDTH)
        if self._leaf_tile[0] != tile_index:
            got = self._take(0, tile_index)
            self._leaf_tile = (tile_index, None if got is None else got.hashes)
            self._leaf_tile_bad = False
            if got is None and tile_index != self._partial0:
                self._tile_finding("tile.missing", f"ledger_tiles[level=0,index={tile_index}]",
                                   "the tile is missing")
        stored = self._leaf_tile[1]
        t = stored[p * HASH_SIZE:(p + 1) * HASH_SIZE] if stored is not None else None
        if t is not None and len(t) < HASH_SIZE:
            t = None
        entry = f"ledger_entries[index={index}]"
        used = computed
        if computed == column == t or (t is None and computed == column):
            pass
        elif t is None and tile_index == self._partial0:
            # No stored tile: the next signed checkpoint tells which one changed (resolve).
            # Proofs read this tile from the leaf_hash column: they are known to be wrong.
            self._pending.append((index, computed, column))
            self.bad_tiles += 1
        elif t is None:
            self._f.add("entry.leaf_mismatch", entry,
                        "the record and salt do not hash to the leaf_hash column (the tile "
                        "that would tell which changed is missing)")
        elif column == t:
            self._f.add("entry.content_altered", entry,
                        "the record and salt no longer hash to the leaf hash that the tree "
                        "and the leaf_hash column hold: the record or the salt was changed")
            used = t
        elif computed == t:
            self._f.add("entry.leaf_hash_altered", f"{entry}.leaf_hash",
                        "the leaf_hash column differs from the hash of the record and salt, "
                        "which the tree holds")
        elif computed == column:
            if not self._leaf_tile_bad:
                self._leaf_tile_bad = True
                self._tile_finding("tile.hash_mismatch",
                                   f"ledger_tiles[level=0,index={tile_index}]",
                                   f"hash {p} (entry {index}'s leaf hash) differs from the "
                                   "entry's")
        else:
            self._f.add("entry.content_altered", entry,
                        "the record, salt, leaf_hash column and tile all disagree")
        self._append(0, used)

    def _append(self, level: int, h: bytes) -> None:
        buf = self._bufs.setdefault(level, bytearray())
        buf += h
        count = self._counts[level] = self._counts.get(level, 0) + 1
        if len(buf) == _FULL:
            data = bytes(buf)
            buf.clear()
            index = (count >> 8) - 1
            if level == 0:
                self._check_width(0, index, self._leaf_tile[1], TILE_WIDTH)
            else:
                self._compare(level, index, data)
            self._append(level + 1, tile_root(data))

    def resolve(self, size: int, signed: bytes | None) -> None:
        """Name what changed in the pending entries, from the root signed at ``size``
        (the tree's current size; ``None``: no checkpoint is left to tell)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if signed is not None and self.root(size) == signed:
            for index, _, _ in pending:
                self._f.add("entry.leaf_hash_altered", f"ledger_entries[index={index}].leaf_hash",
                            "the leaf_hash column differs from the hash of the record and salt, "
                            "which the signed checkpoint holds")
            return
        buf = self._bufs[0]
        first = size - len(buf) // HASH_SIZE  # the pending entries are in this buffer
        alt = bytearray(buf)
        for index, _, column in pending:
            alt[(index - first) * HASH_SIZE:(index - first + 1) * HASH_SIZE] = column
        if signed is not None and edge_root(size, {**{lv: bytes(b) for lv, b in self._bufs.items()
                                                      if b}, 0: bytes(alt)}) == signed:
            buf[:] = alt  # the tree holds the column's hashes: go on with them
            for index, _, _ in pending:
                self._f.add("entry.content_altered", f"ledger_entries[index={index}]",
                            "the record and salt no longer hash to the leaf hash that the "
                            "signed checkpoint and the leaf_hash column hold: the record or "
                            "the salt was changed")
            return
        for index, _, _ in pending:
            self._f.add("entry.leaf_mismatch", f"ledger_entries[index={index}]",
                        "the record and salt do not hash to the leaf_hash column, and no "
                        "signed checkpoint holds either")

    def root(self, size: int) -> bytes:
        return edge_root(size, {lv: bytes(b) for lv, b in self._bufs.items() if b})

    def _cursor(self, level: int) -> _TileCursor:
        if level not in self._cursors:
            self._cursors[level] = _TileCursor(self._store, level)
        return self._cursors[level]

    def _check_width(self, level: int, index: int, got: bytes | None, width: int) -> None:
        if got is not None and len(got) != width * HASH_SIZE:
            self._tile_finding("tile.width", f"ledger_tiles[level={level},index={index}]",
                               f"the tile has {len(got) / HASH_SIZE:g} hashes; the tree needs "
                               f"{width}")

    def _take(self, level: int, index: int) -> StoredTile | None:
        """The stored tile, with its inner nodes checked against its hashes."""
        self.checked += 1
        stored, skipped = self._cursor(level).take(index)
        for i in skipped:  # pragma: no cover - indexes are compared in order
            self._tile_finding("tile.unexpected", f"ledger_tiles[level={level},index={i}]",
                               "a tile the tree does not have")
        if stored is not None and stored.nodes and stored.nodes != tile_nodes(stored.hashes):
            self._tile_finding("tile.nodes_mismatch",
                               f"ledger_tiles[level={level},index={index}].nodes",
                               "the inner nodes (stored by an older version) are not those of "
                               "the tile's hashes")
        return stored

    def _compare(self, level: int, index: int, want: bytes) -> None:
        """Compare a level >= 1 tile with the one recomputed from the level below."""
        where = f"ledger_tiles[level={level},index={index}]"
        stored = self._take(level, index)
        got = None if stored is None else stored.hashes
        if got is None:
            self._tile_finding("tile.missing", where, "the tile is missing")
            return
        if got == want:
            return
        if len(got) != len(want):
            self._check_width(level, index, got, len(want) // HASH_SIZE)
            return
        for p in range(len(want) // HASH_SIZE):
            if got[p * HASH_SIZE:(p + 1) * HASH_SIZE] != want[p * HASH_SIZE:(p + 1) * HASH_SIZE]:
                first = (index * TILE_WIDTH + p) * TILE_WIDTH ** level
                self._tile_finding("tile.hash_mismatch", where,
                                   f"hash {p} (the hash of entries {first} to "
                                   f"{first + TILE_WIDTH ** level - 1}) differs from the one "
                                   "recomputed from the entries")
                return

    def _tile_finding(self, code: str, where: str, message: str) -> None:
        self.bad_tiles += 1
        self._f.add(code, where, message)

    def finish(self) -> None:
        for level in sorted(self._bufs):
            buf = self._bufs[level]
            if not buf:
                continue
            index = self._counts[level] >> 8
            if level == 0:
                got = self._leaf_tile[1]
                if got is not None and len(got) > len(buf):  # narrower: an older version's
                    self._check_width(0, index, got, len(buf) // HASH_SIZE)
            else:
                self._compare(level, index, bytes(buf))
        for level in sorted(set(self._store.tile_levels()) | set(self._cursors)):
            for i in self._cursor(level).rest():
                self._tile_finding("tile.unexpected", f"ledger_tiles[level={level},index={i}]",
                                   "a stored tile beyond the tree the entries make")


def _check_keys(keys: list[KeyRow], origin: str, f: _Findings) -> None:
    for k in keys:
        where = f"ledger_keys[key_id={k.key_id}]"
        if k.name != origin:
            f.add("key.name", where, f"the key is named {k.name!r}, not after the log "
                                     f"{origin!r}")
        if len(k.public_key) != 32 or f"{key_id(k.name, 0x01, k.public_key):08x}" != k.key_id:
            f.add("key.id_mismatch", where, "the key ID does not match the name and public key")
        if k.retired != (k.valid_to is not None):
            f.add("key.retired_flag", where, "'retired' disagrees with the validity range")
    for i, k in enumerate(keys):
        where = f"ledger_keys[key_id={k.key_id}]"
        if i == 0 and k.valid_from != 0:
            f.add("key.range", where, f"the first key is valid only from tree size "
                                      f"{k.valid_from}, not 0")
        if i + 1 < len(keys):
            nxt = keys[i + 1]
            if k.valid_to != nxt.valid_from:
                f.add("key.range", where, f"valid to tree size {k.valid_to}, but the next key "
                                          f"({nxt.key_id}) starts at {nxt.valid_from}")
        elif k.valid_to is not None:
            f.add("key.range", where, "the newest key is retired: no key signs new checkpoints")


class _Audit:
    def __init__(self, store: Store, origin: str, f: _Findings) -> None:
        self.store = store
        self.origin = origin
        self.f = f
        self.keys = sorted(store.read_keys(), key=lambda k: k.valid_from)
        self.verifiers: dict[str, Ed25519Verifier] = {}
        for k in self.keys:
            try:
                self.verifiers[k.key_id] = Ed25519Verifier(k.name, k.public_key)
            except FormatError:
                pass  # reported by _check_keys
        self.rotations: dict[int, tuple[str, str, int]] = {}  # boundary -> (old, new, index)
        self.diverged = False

    def keys_at(self, size: int) -> set[str]:
        return {k.key_id for k in self.keys
                if k.valid_from <= size and (k.valid_to is None or size <= k.valid_to)}

    def checkpoint(self, row: CheckpointRow, root: bytes | None) -> None:
        """Check a checkpoint row; ``root`` is the entries' root at its size (if known)."""
        where = f"ledger_checkpoints[size={row.size}]"
        f = self.f
        try:
            note = parse_note(row.note)
            cp = parse_checkpoint(note.text)
        except FormatError as e:
            f.add("checkpoint.note_malformed", f"{where}.note", e.message)
            self._diverges(where, row.root, root)
            return
        if cp.origin != self.origin or cp.size != row.size:
            f.add("checkpoint.note_mismatch", f"{where}.note",
                  f"the signed text is for log {cp.origin!r} at size {cp.size}")
        if cp.root != row.root:
            f.add("checkpoint.root_column", f"{where}.root",
                  f"the root column {b64encode(row.root)} differs from the signed root "
                  f"{b64encode(cp.root)}")
        self._diverges(where, cp.root, root)
        try:
            verified, unknown = check_signatures(note, self.verifiers.values())
        except SignatureError as e:
            f.add("checkpoint.bad_signature", f"{where}.note", e.message)
            return
        signed = {f"{v.key_id:08x}" for v, _ in verified}
        for s in unknown:
            f.add("checkpoint.unknown_signer", f"{where}.note",
                  f"signed by {s.name} ({s.key_id:08x}), which is not a key of this log")
        want = self.keys_at(row.size)
        for kid in sorted(want - signed):
            f.add("checkpoint.unsigned", f"{where}.note",
                  f"not signed by key {kid}, the log key at tree size {row.size}")
        for kid in sorted(signed - want):
            f.add("checkpoint.key_not_valid", f"{where}.note",
                  f"signed by key {kid}, which may not sign tree size {row.size}")
        if row.cosignatures:
            try:
                parse_note(note.text.encode() + b"\n" + row.cosignatures)
            except FormatError as e:
                f.add("checkpoint.cosignature_malformed", f"{where}.cosignatures", e.message)

    def _diverges(self, where: str, signed: bytes, root: bytes | None) -> None:
        """Report the first checkpoint whose signed root the entries do not give.

        Every later checkpoint then disagrees too; that is one finding, not many.
        """
        if root is None or signed == root:
            return
        if not self.diverged:
            self.f.add("checkpoint.root_mismatch", where,
                       f"the entries give the root {b64encode(root)}, not the signed root "
                       f"{b64encode(signed)}: the log's content was changed at or before this "
                       "size (later checkpoints disagree too)")
        self.diverged = True

    def entry(self, row: ScannedEntry) -> bytes:
        """Check one entry's row; return the leaf hash of its record and salt."""
        index, kind, instance_id, record, salt, _ = row
        leaf = _sha256(b"\x00" + record + b"salt " + b2a_base64(salt)).digest()
        if len(salt) != SALT_SIZE:
            self._entry_finding("entry.salt_malformed", index, ".salt",
                                f"the salt has {len(salt)} bytes, not {SALT_SIZE}")
        try:
            got_kind, values = check_record(record)
        except FormatError as e:
            self._entry_finding("entry.record_malformed", index, ".record", e.message)
            return leaf
        if got_kind != kind:
            self._entry_finding("entry.kind_mismatch", index, ".kind",
                                f"the column says {kind!r}, the record says {got_kind!r}")
        got_instance = record_instance(got_kind, values)
        if got_instance != instance_id:
            self._entry_finding("entry.instance_mismatch", index, ".instance_id",
                                f"the column says {instance_id!r}, the record says "
                                f"{got_instance!r}")
        if got_kind == "key_rotation":
            self.rotations[index + 1] = (values[0], values[1], index)
        return leaf

    def _entry_finding(self, code: str, index: int, column: str, message: str) -> None:
        self.f.add(code, f"ledger_entries[index={index}]{column}", message)

    def rotations_match_keys(self) -> None:
        by_from = {k.valid_from: k for k in self.keys}
        by_to = {k.valid_to: k for k in self.keys if k.valid_to is not None}
        for boundary, (old, new, index) in sorted(self.rotations.items()):
            where = f"ledger_entries[index={index}]"
            nk, ok = by_from.get(boundary), by_to.get(boundary)
            if nk is None or ok is None or nk.log_key().vkey != new or ok.log_key().vkey != old:
                self.f.add("key.rotation_mismatch", where,
                           f"the logged rotation at tree size {boundary} does not match the "
                           "keys table")
        for k in self.keys:
            if k.valid_to is not None and k.valid_to not in self.rotations:
                self.f.add("key.rotation_missing", f"ledger_keys[key_id={k.key_id}]",
                           f"the key was retired at tree size {k.valid_to} but no key_rotation "
                           "entry was logged there")


def run_audit(store: Store, origin: str, progress: Progress | None = None,
              chunk_size: int = 10_000, max_findings: int = 1000,
              check_proofs: bool = True) -> AuditReport:
    """Audit the ledger in ``store`` (see the module docstring for what is checked)."""
    started = time.perf_counter()
    f = _Findings(max_findings)
    head = store.read_head()
    if head is None:
        f.add("head.missing", "ledger_head", "the ledger has no head row: not initialised?")
        return AuditReport(0, 0, 0, 0, tuple(f.kept), f.total, time.perf_counter() - started)
    if head.origin != origin:
        f.add("head.origin", "ledger_head.origin", f"the head names the log {head.origin!r}, "
                                                    f"not {origin!r}")
    if store.scan_entries(head.size, head.size + 1):
        f.add("head.size", "ledger_head.size",
              f"the head says the log has {head.size} entries, but entry {head.size} exists")
    a = _Audit(store, origin, f)
    _check_keys(a.keys, origin, f)
    if a.keys and head.key_id != a.keys[-1].key_id:
        f.add("head.key", "ledger_head.key_id",
              f"the head's key {head.key_id} is not the newest key {a.keys[-1].key_id}")
    tree = _Tree(store, f, head.size)
    size = head.size

    checkpoints = 0
    cp_after = -1
    cp_batch: list[CheckpointRow] = []

    def next_checkpoint() -> CheckpointRow | None:
        nonlocal cp_after, cp_batch
        if not cp_batch:
            cp_batch = store.read_checkpoints(cp_after, max(16, chunk_size // 100))
            cp_batch.reverse()
        if not cp_batch:
            return None
        row = cp_batch.pop()
        cp_after = row.size
        return row

    cp = next_checkpoint()
    while cp is not None and cp.size == 0:
        a.checkpoint(cp, EMPTY_ROOT)
        checkpoints += 1
        cp = next_checkpoint()

    count = 0
    broken = False  # a gap in the entries: later roots cannot be recomputed
    start = 0
    while start < size:
        rows = store.scan_entries(start, min(size, start + chunk_size))
        if not rows:
            break
        start = rows[-1][0] + 1
        for row in rows:
            index = row[0]
            if index != count and not broken:
                gap = (f"entry {count} is" if index == count + 1
                       else f"entries {count} to {index - 1} are")
                f.add("entry.missing", f"ledger_entries[index={count}]",
                      f"{gap} missing; the tree cannot be recomputed past the gap")
                broken = True
            leaf = a.entry(row)
            count += 1
            if broken:
                if leaf != row[5]:
                    f.add("entry.leaf_mismatch", f"ledger_entries[index={index}]",
                          "the record and salt do not hash to the stored leaf hash")
                continue
            tree.push_leaf(index, leaf, row[5])
            if cp is not None and cp.size == count:
                tree.resolve(count, _signed_root(cp))
            while cp is not None and cp.size <= count:
                a.checkpoint(cp, tree.root(count) if cp.size == count else None)
                checkpoints += 1
                cp = next_checkpoint()
        if progress is not None:
            progress(count, size)
    if count < size and not broken:
        f.add("entry.missing", f"ledger_entries[index={count}]",
              f"the head says {size} entries but only {count} are stored")
        broken = True
    while cp is not None:
        where = f"ledger_checkpoints[size={cp.size}]"
        if cp.size > size:
            f.add("checkpoint.beyond_head", where, f"a checkpoint beyond the head's size {size}")
        a.checkpoint(cp, None)
        checkpoints += 1
        cp = next_checkpoint()
    if cp_after < size:
        # every append issues the checkpoint of its new size: without the head's, the log
        # serves an older checkpoint than the one it signed last (a rollback of its view)
        newest = f"the newest is of size {cp_after}" if cp_after >= 0 else "none is stored"
        f.add("head.checkpoint", f"ledger_checkpoints[size={size}]",
              f"the head is at size {size} but no checkpoint of that size is stored "
              f"({newest}): the log would serve an older checkpoint than it issued")
    if not broken:
        tree.resolve(count, None)
        tree.finish()
        if tree.root(size) != head.root and not a.diverged:
            f.add("head.root", "ledger_head.root",
                  "the head's root is not the root of the tree the entries make")
    a.rotations_match_keys()
    if check_proofs and not broken and not tree.bad_tiles:
        # (With a bad tile the served proofs are known to be wrong: the tile is named.)
        checkpoints_consistent(store, f, chunk_size)
    if progress is not None:
        progress(count, size)
    return AuditReport(count, tree.checked, checkpoints, len(a.keys), tuple(f.kept), f.total,
                       time.perf_counter() - started)


def _signed_root(row: CheckpointRow) -> bytes:
    try:
        return parse_checkpoint(parse_note(row.note).text).root
    except FormatError:
        return row.root


def checkpoints_consistent(store: Store, f: _Findings, chunk_size: int) -> None:
    """Verify the consistency proof the ledger serves between consecutive checkpoints,
    against their signed roots."""
    # Tiles and their inner nodes are kept while the checkpoints are walked in order of
    # size (a cache of the audit's own: it reads its snapshot, not the ledger's cache):
    # consecutive proofs read the same tiles, and a partial tile's nodes are extended.
    reader = TileHashReader(_CachedTiles(store, _TileCache(256)))
    prev: CheckpointRow | None = None
    after = -1
    while True:
        batch = store.read_checkpoints(after, max(16, chunk_size // 100))
        if not batch:
            return
        for row in batch:
            if prev is not None and prev.size > 0:
                where = f"ledger_checkpoints[size={row.size}]"
                try:
                    proof = consistency_proof(prev.size, row.size, reader)
                    verify_consistency(prev.size, row.size, proof, _signed_root(prev),
                                       _signed_root(row))
                except ProofError as e:
                    f.add("checkpoint.inconsistent", where,
                          f"not consistent with the checkpoint of size {prev.size}: {e.message}")
                except LedgerError as e:
                    f.add("checkpoint.inconsistent", where,
                          f"no consistency proof from size {prev.size}: {e.message}")
            prev = row
        after = batch[-1].size
