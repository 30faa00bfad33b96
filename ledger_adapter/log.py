"""The log itself, independent of storage: appends, proofs, receipts, keys, audit.

:class:`TiledLog` does everything a :class:`~ledger_adapter.protocol.Ledger`
does through a narrow storage interface, :class:`Store`: one object per
transaction, with row-level reads and writes.  ``MemoryLedger`` and
``SqlLedger`` only supply stores; this module holds the logic they share.

Appending a batch (one transaction):

1. lock the head row (size, root, current key) — the log's one serialisation point;
2. take the right edge of the tree (:class:`~ledger_adapter.tile.Edge`) from a
   cache checked against the head, or read it (the partial tiles of levels >= 1,
   the leaf hashes of the entries since the last full level-0 tile); check it
   hashes to the head's root;
3. salt and encode each record, hash the leaves, extend the tree (only the
   right edge is touched), sign one checkpoint for the new size;
4. write entries, the tiles that filled or grew (never the partial level-0
   tile: the entries hold its hashes), the checkpoint and the new head.

Proofs read tiles; a tile's inner nodes are computed from its hashes and kept
in memory with the recently used full tiles.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from itertools import repeat
from operator import attrgetter, methodcaller
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ledger_adapter.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from ledger_adapter.errors import FormatError, StoreError
from ledger_adapter.keys import LogKey
from ledger_adapter.merkle import EMPTY_ROOT, HASH_SIZE, consistency_proof, inclusion_proof
from ledger_adapter.note import Ed25519Signer, Ed25519Verifier, NoteSigner, parse_note
from ledger_adapter.proof import TlogProof, format_tlog_proof
from ledger_adapter.protocol import AuditReport, LedgerEntry, Progress
from ledger_adapter.record import SALT_SIZE, Record, decode_record, make_record
from ledger_adapter.tile import (
    TILE_WIDTH,
    Edge,
    StoredTile,
    TileHashReader,
    TileKey,
    edge_from_tiles,
    edge_keys,
    extend,
    extend_nodes,
    tile_nodes,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

__all__ = [
    "CheckpointRow",
    "EntryBatch",
    "EntryRow",
    "Head",
    "KeyRow",
    "ScannedEntry",
    "Store",
    "TiledLog",
]


@dataclass(frozen=True, slots=True)
class Head:
    """The log's current state: one row, locked by every append."""

    origin: str
    size: int
    root: bytes
    key_id: str  # hex ID of the log key that signs the next checkpoint


class EntryRow(NamedTuple):
    """A stored entry as it is in storage (``record`` without the salt line).

    The fields are in the ``ledger_entries`` column order, so a row is its own
    insert parameters.
    """

    idx: int
    kind: str
    instance_id: str | None
    record: bytes
    salt: bytes
    leaf_hash: bytes
    created_at: dt.datetime

    def leaf_data(self) -> bytes:
        return self.record + b"salt " + binascii.b2a_base64(self.salt)


@dataclass(frozen=True, slots=True)
class EntryBatch:
    """The entries of one append, column by column (how they are written in bulk).

    ``salt_block`` is the salts back to back (``salts[i]`` is its i-th 32 bytes);
    ``sources`` the records themselves, for stores that keep ``kind`` and
    ``instance_id`` per entry (computed only when asked for).
    """

    start: int
    sources: Sequence[Record]
    records: list[bytes]
    salt_block: bytes
    salts: list[bytes]
    leaf_hashes: list[bytes]
    created_at: dt.datetime

    def kinds(self) -> list[str]:
        return list(map(_KIND, self.sources))

    def instance_ids(self) -> list[str | None]:
        return [r.instance_id for r in self.sources]

    def columns(self, created_at: object) -> Iterator[tuple[object, ...]]:
        """Rows of insert parameters, ``created_at`` as the driver wants it."""
        return zip(range(self.start, self.start + len(self.records)), self.kinds(),
                   self.instance_ids(), self.records, self.salts, self.leaf_hashes,
                   repeat(created_at))

    def rows(self) -> list[EntryRow]:
        return list(map(EntryRow._make, self.columns(self.created_at)))


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    size: int
    root: bytes
    note: bytes  # the note as the log signed it
    cosignatures: bytes  # witness signature lines added later ("" if none)
    created_at: dt.datetime

    def full_note(self) -> bytes:
        return self.note + self.cosignatures


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: str
    name: str
    public_key: bytes
    valid_from: int
    valid_to: int | None
    retired: bool
    created_at: dt.datetime

    def log_key(self) -> LogKey:
        return LogKey(Ed25519Verifier(self.name, self.public_key), self.valid_from,
                      self.valid_to)


#: An entry as the audit scans it: (index, kind, instance_id, record, salt, leaf_hash).
ScannedEntry = tuple[int, str, "str | None", bytes, bytes, bytes]


class Store(Protocol):
    """One transaction's view of the ledger's storage."""

    def lock_head(self) -> Head | None:
        """Read the head row, locking it for this transaction (writers only)."""
        ...

    def read_head(self) -> Head | None: ...

    def read_tiles(self, keys: Sequence[TileKey]) -> Mapping[TileKey, StoredTile]:
        """The stored tiles among ``keys`` (their hashes; ``nodes`` may be ``b""``)."""
        ...

    def read_leaf_hashes(self, start: int, stop: int) -> bytes:
        """The leaf hashes of entries ``start, start + 1, ...`` below ``stop``, back to back,
        up to the first one missing (the stored ``leaf_hash`` column)."""
        ...

    def read_entries(self, start: int, stop: int) -> list[EntryRow]:
        """Entries with ``start <= index < stop``, in index order."""
        ...

    def scan_entries(self, start: int, stop: int) -> list[ScannedEntry]:
        """Like :meth:`read_entries` without ``created_at``, for the audit's full scan."""
        ...

    def read_checkpoint(self, size: int | None) -> CheckpointRow | None:
        """The checkpoint of exactly ``size`` leaves, or the latest (``None``)."""
        ...

    def read_checkpoints(self, after: int, limit: int) -> list[CheckpointRow]:
        """Up to ``limit`` checkpoints of size > ``after`` (-1 for all), by size."""
        ...

    def read_tile_range(self, level: int, start: int, limit: int
                        ) -> list[tuple[int, StoredTile]]:
        """Up to ``limit`` tiles of ``level`` with index >= ``start``, by index."""
        ...

    def tile_levels(self) -> list[int]: ...

    def read_keys(self) -> list[KeyRow]: ...

    def write_entries(self, batch: EntryBatch) -> None: ...

    def write_tiles(self, tiles: Mapping[TileKey, bytes]) -> None:
        """Insert or replace tiles (their hashes)."""
        ...

    def write_checkpoint(self, row: CheckpointRow) -> None: ...

    def write_cosignatures(self, size: int, cosignatures: bytes) -> None: ...

    def write_head(self, head: Head, create: bool = False) -> None: ...

    def write_key(self, row: KeyRow, create: bool = False) -> None: ...


_ENCODED = attrgetter("_bytes")  # Record.encode(), without a call per record
_KIND = attrgetter("kind")
_DIGEST = methodcaller("digest")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TiledLog(ABC):
    """A :class:`~ledger_adapter.protocol.Ledger` over any :class:`Store`."""

    def __init__(self, origin: str, signers: Sequence[Ed25519Signer],
                 clock: Callable[[], dt.datetime] = _now, tile_cache: int = 1024) -> None:
        if not signers:
            raise StoreError("a ledger needs its signing key", code="no_key")
        for s in signers:
            if s.name != origin:
                raise StoreError(f"log key {s.vkey} is named {s.name!r}; a log key is named "
                                 f"after the log's origin {origin!r}", code="wrong_key")
        Checkpoint(origin, 0, EMPTY_ROOT)  # checks the origin line
        self._origin = origin
        self._signers: dict[str, Ed25519Signer] = {f"{s.key_id:08x}": s for s in signers}
        self._clock = clock
        self._edge_lock = threading.Lock()
        self._edge_cache: tuple[int, bytes, Edge] | None = None
        self._committed_size = 0  # a size this process has read as committed
        self._tiles = _TileCache(tile_cache)

    # --- what a backend supplies -----------------------------------------------------

    @abstractmethod
    def _write(self, session: Session | Connection | None) -> AbstractContextManager[Store]:
        """A store in a writing transaction (the caller's, if ``session`` is given: a
        SQLAlchemy ``Session``, or for SQL stores a ``Connection`` in a transaction)."""

    @abstractmethod
    def _read(self, snapshot: bool = False) -> AbstractContextManager[Store]:
        """A store for reading; with ``snapshot``, all reads see one consistent state.

        Proofs and receipts need no snapshot: what they read (entries, stored
        hashes at or below a checkpoint's size, checkpoints) never changes once
        written.  The audit does.
        """

    # --- the Ledger protocol -----------------------------------------------------------

    @property
    def origin(self) -> str:
        return self._origin

    def initialize(self, session: Session | Connection | None = None, at: dt.datetime | None = None
                   ) -> SignedCheckpoint:
        """Create the log if it does not exist: its key and a signed empty checkpoint.

        If it exists, check it is this log (origin) and that this process holds
        its current key.  Returns the latest checkpoint.
        """
        with self._write(session) as store:
            head = store.lock_head()
            if head is not None:
                self._check_head(head)
                row = store.read_checkpoint(None)
                if row is None:
                    raise StoreError("the ledger has a head but no checkpoint: run the audit",
                                     code="corrupt")
                return _signed(row)
            signer = next(iter(self._signers.values()))
            when = at or self._clock()
            key_id = f"{signer.key_id:08x}"
            store.write_key(KeyRow(key_id, self._origin, signer.public_key, 0, None, False,
                                   when), create=True)
            note = sign_checkpoint(Checkpoint(self._origin, 0, EMPTY_ROOT), [signer])
            store.write_checkpoint(CheckpointRow(0, EMPTY_ROOT, note, b"", when))
            store.write_head(Head(self._origin, 0, EMPTY_ROOT, key_id), create=True)
            return SignedCheckpoint(Checkpoint(self._origin, 0, EMPTY_ROOT), note)

    def append(self, records: Sequence[Record], session: Session | Connection | None = None
               ) -> Sequence[LedgerEntry]:
        if not records:
            return ()
        with self._write(session) as store:
            entries, _ = self._append(store, records, ())
            return entries

    def checkpoint(self) -> SignedCheckpoint:
        with self._read() as store:
            row = store.read_checkpoint(None)
        if row is None:
            raise StoreError("the ledger is not initialised", code="not_initialised")
        return _signed(row)

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        with self._read() as store:
            row = store.read_checkpoint(size)
        if row is None:
            raise StoreError(f"no checkpoint was issued at tree size {size}",
                             code="no_checkpoint")
        return _signed(row)

    def entry(self, index: int) -> LedgerEntry:
        with self._read() as store:
            rows = store.read_entries(index, index + 1)
        if not rows:
            raise StoreError(f"there is no entry {index}", code="no_entry")
        return _entry(rows[0])

    def entries(self, start: int, stop: int) -> list[LedgerEntry]:
        """Entries ``start <= index < stop`` (for replay and export)."""
        with self._read() as store:
            return [_entry(r) for r in store.read_entries(start, stop)]

    def size(self) -> int:
        with self._read() as store:
            head = store.read_head()
        return 0 if head is None else head.size

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self._read() as store:
            self._check_size(store, size)
            return inclusion_proof(index, size, TileHashReader(self._cached(store)))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self._read() as store:
            self._check_size(store, size2)
            return consistency_proof(size1, size2, TileHashReader(self._cached(store)))

    def receipt(self, entry_index: int, size: int | None = None) -> bytes:
        with self._read() as store:
            row = store.read_checkpoint(size)
            if row is None:
                raise StoreError("no such checkpoint" if size is not None else
                                 "the ledger is not initialised", code="no_checkpoint")
            if entry_index >= row.size:
                raise StoreError(f"entry {entry_index} is not in the checkpoint of tree size "
                                 f"{row.size}", code="no_entry")
            rows = store.read_entries(entry_index, entry_index + 1)
            if not rows:
                raise StoreError(f"there is no entry {entry_index}", code="no_entry")
            proof = inclusion_proof(entry_index, row.size, TileHashReader(self._cached(store)))
        return format_tlog_proof(TlogProof(entry_index, tuple(proof), _signed(row),
                                           rows[0].leaf_data()))

    def log_keys(self) -> list[LogKey]:
        with self._read() as store:
            return [k.log_key() for k in sorted(store.read_keys(), key=lambda k: k.valid_from)]

    def rotate_key(self, new_signer: Ed25519Signer, session: Session | Connection | None = None,
                   at: dt.datetime | None = None) -> LedgerEntry:
        if new_signer.name != self._origin:
            raise StoreError(f"the new key is named {new_signer.name!r}; log keys are named "
                             f"after the origin {self._origin!r}", code="wrong_key")
        new_id = f"{new_signer.key_id:08x}"
        when = at or self._clock()
        with self._write(session) as store:
            head = self._require_head(store.lock_head())
            keys = {k.key_id: k for k in store.read_keys()}
            if new_id in keys:
                raise StoreError(f"key {new_id} was already used by this log; rotate to a "
                                 "fresh key", code="key_reused")
            old = self._signer(head)
            record = make_record("key_rotation", {"old": old.vkey, "new": new_signer.vkey,
                                                  "at": when})
            entries, new_head = self._append(store, [record], (new_signer,), head=head,
                                             next_key_id=new_id)
            store.write_key(replace(keys[head.key_id], valid_to=new_head.size, retired=True))
            store.write_key(KeyRow(new_id, self._origin, new_signer.public_key, new_head.size,
                                   None, False, when), create=True)
        self._signers[new_id] = new_signer
        return entries[0]

    def add_cosignatures(self, size: int, signature_lines: bytes,
                         session: Session | Connection | None = None) -> None:
        with self._write(session) as store:
            row = store.read_checkpoint(size)
            if row is None:
                raise StoreError(f"no checkpoint was issued at tree size {size}",
                                 code="no_checkpoint")
            note = parse_note(row.note)
            try:
                extra = parse_note(note.text.encode() + b"\n" + signature_lines).signatures
            except FormatError as e:
                raise FormatError(f"not note signature lines: {e.message}",
                                  code="malformed_note") from e
            have = {(s.name, s.key_id) for s in parse_note(row.full_note()).signatures}
            new = [s for s in extra if (s.name, s.key_id) not in have]
            if new:
                store.write_cosignatures(size, row.cosignatures
                                         + "".join(s.line() for s in new).encode())

    def audit(self, progress: Progress | None = None, chunk_size: int = 10_000
              ) -> AuditReport:
        from ledger_adapter.audit import run_audit

        with self._read(snapshot=True) as store:
            return run_audit(store, self._origin, progress=progress, chunk_size=chunk_size)

    # --- internals -----------------------------------------------------------------------

    def _require_head(self, head: Head | None) -> Head:
        if head is None:
            raise StoreError("the ledger is not initialised: call initialize() first",
                             code="not_initialised")
        return head

    def _check_head(self, head: Head) -> None:
        if head.origin != self._origin:
            raise StoreError(f"this database holds the log {head.origin!r}, not "
                             f"{self._origin!r}", code="wrong_log")
        self._signer(head)

    def _signer(self, head: Head) -> Ed25519Signer:
        signer = self._signers.get(head.key_id)
        if signer is None:
            have = ", ".join(sorted(self._signers))
            raise StoreError(f"the log is now signed by key {head.key_id}; this process holds "
                             f"only {have} (was the key rotated?)", code="wrong_key")
        return signer

    def _cached(self, store: Store) -> _CachedTiles:
        return _CachedTiles(store, self._tiles)

    def _check_size(self, store: Store, size: int) -> None:
        # A log only grows: a size once seen committed stays valid (saves a query).
        if size <= self._committed_size:
            return
        head = self._require_head(store.read_head())
        self._committed_size = max(self._committed_size, head.size)
        if size > head.size:
            raise StoreError(f"the log has {head.size} entries, not {size}",
                             code="size_out_of_range")

    def _edge(self, store: Store, head: Head) -> Edge:
        with self._edge_lock:
            cached = self._edge_cache
        if cached is not None and cached[0] == head.size and cached[1] == head.root:
            return cached[2]
        keys = edge_keys(head.size)
        stored = store.read_tiles([k for k in keys if k[0] > 0])
        tiles = {lv: stored[(lv, i)].hashes if (lv, i) in stored else b"" for lv, i in keys}
        if keys and keys[0][0] == 0:  # the partial level-0 tile: the entries' leaf hashes
            tiles[0] = store.read_leaf_hashes(keys[0][1] * TILE_WIDTH, head.size)
        try:
            edge = edge_from_tiles(head.size, tiles)
            ok = edge.root() == head.root
        except StoreError:
            ok = False
        if not ok:
            raise StoreError("the stored tree's right edge does not hash to the head's root: "
                             "the store was altered; run the audit", code="corrupt")
        return edge

    def _append(self, store: Store, records: Sequence[Record],
                extra_signers: Sequence[NoteSigner], head: Head | None = None,
                next_key_id: str | None = None) -> tuple[Sequence[LedgerEntry], Head]:
        if head is None:
            head = self._require_head(store.lock_head())
        self._check_head(head)
        signer = self._signer(head)
        edge = self._edge(store, head)
        when = self._clock()
        n = len(records)
        raw = os.urandom(SALT_SIZE * n)
        salts = [raw[i:i + SALT_SIZE] for i in range(0, SALT_SIZE * n, SALT_SIZE)]
        bodies = list(map(_ENCODED, records))
        # leaf hash = SHA-256(0x00 || record || "salt " base64(salt) "\n") (b2a_base64 ends
        # in "\n"); built with map and join: no Python frame per record
        lines = map(binascii.b2a_base64, salts)
        leaves = map(b"".join, zip(repeat(b"\x00"), bodies, repeat(b"salt "), lines))
        hashes = list(map(_DIGEST, map(hashlib.sha256, leaves)))
        batch = EntryBatch(head.size, records, bodies, raw, salts, hashes, when)
        ext = extend(edge, hashes)
        checkpoint = Checkpoint(self._origin, ext.size, ext.root)
        note = sign_checkpoint(checkpoint, [signer, *extra_signers])
        store.write_entries(batch)
        store.write_tiles(ext.tiles)
        store.write_checkpoint(CheckpointRow(ext.size, ext.root, note, b"", when))
        new_head = Head(self._origin, ext.size, ext.root, next_key_id or head.key_id)
        store.write_head(new_head)
        with self._edge_lock:
            self._edge_cache = (ext.size, ext.root, ext.edge)
        return _Entries(head.size, records, salts, hashes, when), new_head


class _Entries(Sequence[LedgerEntry]):
    """The entries an append made, built when looked at (a bulk append need not)."""

    def __init__(self, start: int, records: Sequence[Record], salts: list[bytes],
                 hashes: list[bytes], when: dt.datetime) -> None:
        self._start, self._records, self._salts, self._hashes, self._when = (
            start, records, salts, hashes, when)

    def __len__(self) -> int:
        return len(self._hashes)

    def _make(self, i: int) -> LedgerEntry:
        return LedgerEntry(self._start + i, self._records[i], self._salts[i], self._hashes[i],
                           self._when)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self._make(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._make(i)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"<{len(self)} ledger entries from {self._start}>"


class _TileCache:
    """Tiles with their inner nodes, for proofs (never used by the audit: it reads storage).

    Full tiles never change: the ``capacity`` most recently used are kept.  A
    partial tile only grows: the latest one read of each level is kept, so the
    inner nodes of the next, wider read are extended, not recomputed.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._tiles: OrderedDict[TileKey, StoredTile] = OrderedDict()
        self._partial: dict[int, tuple[int, StoredTile]] = {}
        self._lock = threading.Lock()

    def get(self, key: TileKey, width: int = TILE_WIDTH) -> StoredTile | None:
        """The cached tile ``key`` if it has at least ``width`` hashes."""
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
                return tile
            got = self._partial.get(key[0])
        if got is not None and got[0] == key[1] and len(got[1].hashes) >= width * HASH_SIZE:
            return got[1]
        return None

    def add(self, key: TileKey, hashes: bytes) -> StoredTile:
        """``hashes`` (as read) with their inner nodes; cached."""
        if len(hashes) == _FULL:
            tile = StoredTile(hashes, tile_nodes(hashes))
            if self._capacity > 0:
                with self._lock:
                    self._tiles[key] = tile
                    self._tiles.move_to_end(key)
                    while len(self._tiles) > self._capacity:
                        self._tiles.popitem(last=False)
            return tile
        with self._lock:
            got = self._partial.get(key[0])
        if got is not None and got[0] == key[1] and hashes.startswith(got[1].hashes):
            old = got[1]
            if len(old.hashes) == len(hashes):
                return old
            tile = StoredTile(hashes, extend_nodes(hashes, len(old.hashes) // HASH_SIZE,
                                                   old.nodes))
        else:
            tile = StoredTile(hashes, tile_nodes(hashes))
        with self._lock:
            self._partial[key[0]] = (key[1], tile)
        return tile


_FULL = TILE_WIDTH * HASH_SIZE


class _CachedTiles:
    """A tile reader for proofs: full tiles from the cache, the rest from the store.

    The partial level-0 tile (not stored) is read from the entries' leaf hashes.
    """

    def __init__(self, store: Store, cache: _TileCache) -> None:
        self._store = store
        self._cache = cache

    def read_tiles(self, keys: Sequence[TileKey]) -> Mapping[TileKey, StoredTile]:
        return self.read_tiles_covering(dict.fromkeys(keys, TILE_WIDTH))

    def read_tiles_covering(self, need: Mapping[TileKey, int]) -> Mapping[TileKey, StoredTile]:
        """Tiles ``need`` with at least ``need[key]`` hashes each (if stored).

        A partial tile read before serves any proof that needs no more of it
        than was read: stored hashes never change.
        """
        out: dict[TileKey, StoredTile] = {}
        missing: list[TileKey] = []
        get = self._cache.get
        for key, width in need.items():
            tile = get(key, width)
            if tile is None:
                missing.append(key)
            else:
                out[key] = tile
        if missing:
            for key, hashes in read_tile_hashes(self._store, missing).items():
                out[key] = self._cache.add(key, hashes)
        return out


def read_tile_hashes(store: Store, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
    """The hashes of tiles ``keys``: stored tiles, and a level-0 tile that is not stored
    full (the partial one) from the entries' leaf hashes."""
    out = {key: t.hashes for key, t in store.read_tiles(keys).items()}
    for key in keys:
        if key[0] == 0 and len(out.get(key, b"")) < _FULL:
            leaves = store.read_leaf_hashes(key[1] * TILE_WIDTH, (key[1] + 1) * TILE_WIDTH)
            if len(leaves) > len(out.get(key, b"")):
                out[key] = leaves
    return out


def _signed(row: CheckpointRow) -> SignedCheckpoint:
    return SignedCheckpoint.from_note(row.full_note())


def _entry(row: EntryRow) -> LedgerEntry:
    return LedgerEntry(row.idx, decode_record(row.record), row.salt, row.leaf_hash,
                       row.created_at)
