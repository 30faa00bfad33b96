"""``MemoryLedger``: the ledger held in memory (tests, simulations, tools).

Same behaviour as ``SqlLedger`` (one shared test suite).  Writes are staged
and applied at commit: without a session, when the call returns; with a
SQLAlchemy session, when that session commits (they are dropped if it rolls
back), so the engine can run on a database while its ledger lives in memory
and still get atomic appends.  One session at a time may hold uncommitted
appends (the log has one order); another writer meanwhile gets ``busy``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ledger_adapter.errors import StoreError
from ledger_adapter.log import (
    CheckpointRow,
    EntryBatch,
    EntryRow,
    Head,
    KeyRow,
    ScannedEntry,
    TiledLog,
    _now,
)
from ledger_adapter.note import Ed25519Signer
from ledger_adapter.tile import StoredTile, TileKey

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

__all__ = ["MemoryLedger"]


@dataclass
class _Data:
    head: Head | None = None
    entries: list[EntryRow] = field(default_factory=list)
    tiles: dict[TileKey, StoredTile] = field(default_factory=dict)
    checkpoints: dict[int, CheckpointRow] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list)  # checkpoint sizes, ascending
    keys: dict[str, KeyRow] = field(default_factory=dict)


class _MemStore:
    """A transaction over :class:`_Data`: reads see the data plus this transaction's writes."""

    def __init__(self, data: _Data) -> None:
        self._data = data
        self._head: Head | None = None
        self._entries: list[EntryRow] = []
        self._tiles: dict[TileKey, StoredTile] = {}
        self._checkpoints: dict[int, CheckpointRow] = {}
        self._keys: dict[str, KeyRow] = {}

    def commit(self) -> None:
        d = self._data
        if self._head is not None:
            d.head = self._head
        d.entries.extend(self._entries)
        d.tiles.update(self._tiles)
        for size, row in sorted(self._checkpoints.items()):
            if size not in d.checkpoints:
                bisect.insort(d.sizes, size)
            d.checkpoints[size] = row
        d.keys.update(self._keys)

    # reads
    def lock_head(self) -> Head | None:
        return self.read_head()

    def read_head(self) -> Head | None:
        return self._head or self._data.head

    def read_tiles(self, keys: Sequence[TileKey]) -> Mapping[TileKey, StoredTile]:
        out: dict[TileKey, StoredTile] = {}
        for k in keys:
            t = self._tiles.get(k) or self._data.tiles.get(k)
            if t is not None:
                out[k] = t
        return out

    def read_entries(self, start: int, stop: int) -> list[EntryRow]:
        committed = self._data.entries
        if _dense(committed):
            rows = committed[max(0, start):max(0, stop)]
        else:  # a test removed or reordered rows: scan
            rows = sorted((r for r in committed if start <= r.idx < stop),
                          key=lambda r: r.idx)
        rows.extend(r for r in self._entries if start <= r.idx < stop)
        return rows

    def read_leaf_hashes(self, start: int, stop: int) -> bytes:
        out = []
        for i, row in enumerate(self.read_entries(start, stop), start):
            if row.idx != i:
                break
            out.append(row.leaf_hash)
        return b"".join(out)

    def scan_entries(self, start: int, stop: int) -> list[ScannedEntry]:
        return [r[:6] for r in self.read_entries(start, stop)]

    def read_checkpoint(self, size: int | None) -> CheckpointRow | None:
        if size is None:
            sizes = [*self._data.sizes[-1:], *self._checkpoints]
            if not sizes:
                return None
            size = max(sizes)
        return self._checkpoints.get(size) or self._data.checkpoints.get(size)

    def read_checkpoints(self, after: int, limit: int) -> list[CheckpointRow]:
        d = self._data
        i = bisect.bisect_right(d.sizes, after)
        sizes = set(d.sizes[i:i + limit]) | {s for s in self._checkpoints if s > after}
        out = [row for s in sorted(sizes)[:limit]
               if (row := self._checkpoints.get(s) or d.checkpoints.get(s)) is not None]
        return out

    def read_tile_range(self, level: int, start: int, limit: int
                        ) -> list[tuple[int, StoredTile]]:
        merged = {**{i: t for (lv, i), t in self._data.tiles.items() if lv == level},
                  **{i: t for (lv, i), t in self._tiles.items() if lv == level}}
        return [(i, merged[i]) for i in sorted(i for i in merged if i >= start)[:limit]]

    def tile_levels(self) -> list[int]:
        return sorted({lv for lv, _ in self._data.tiles} | {lv for lv, _ in self._tiles})

    def read_keys(self) -> list[KeyRow]:
        return list({**self._data.keys, **self._keys}.values())

    # writes
    def write_entries(self, batch: EntryBatch) -> None:
        self._entries.extend(batch.rows())

    def write_tiles(self, tiles: Mapping[TileKey, bytes]) -> None:
        self._tiles.update((k, StoredTile(h, b"")) for k, h in tiles.items())

    def write_checkpoint(self, row: CheckpointRow) -> None:
        if row.size in self._checkpoints or row.size in self._data.checkpoints:
            raise StoreError(f"a checkpoint of size {row.size} exists", code="conflict")
        self._checkpoints[row.size] = row

    def write_cosignatures(self, size: int, cosignatures: bytes) -> None:
        row = self.read_checkpoint(size)
        if row is None:
            raise StoreError(f"no checkpoint of size {size}", code="no_checkpoint")
        self._checkpoints[size] = replace(row, cosignatures=cosignatures)

    def write_head(self, head: Head, create: bool = False) -> None:
        self._head = head

    def write_key(self, row: KeyRow, create: bool = False) -> None:
        self._keys[row.key_id] = row


def _dense(entries: list[EntryRow]) -> bool:
    """Whether entry i is at position i (true unless a test removed or reordered rows)."""
    return not entries or (entries[0].idx == 0 and entries[-1].idx == len(entries) - 1)


class MemoryLedger(TiledLog):
    """A :class:`~ledger_adapter.protocol.Ledger` in memory; created initialised."""

    def __init__(self, origin: str, signer: Ed25519Signer, *more_signers: Ed25519Signer,
                 clock: Callable[[], dt.datetime] = _now) -> None:
        super().__init__(origin, [signer, *more_signers], clock)
        self._data = _Data()
        self._lock = threading.RLock()
        self._pending: tuple[Any, _MemStore] | None = None  # (session, staged writes)
        self._followed: weakref.WeakSet[Any] = weakref.WeakSet()
        self.initialize()

    @property
    def data(self) -> _Data:
        """The stored rows (tests tamper with them to exercise the audit)."""
        return self._data

    @contextmanager
    def _read(self, snapshot: bool = False) -> Iterator[_MemStore]:
        with self._lock:
            yield _MemStore(self._data)

    @contextmanager
    def _write(self, session: Session | Connection | None) -> Iterator[_MemStore]:
        if session is not None:
            from sqlalchemy import Connection as _Connection

            if isinstance(session, _Connection):
                raise StoreError("a memory ledger joins a Session's transaction, not a "
                                 "Connection's", code="wrong_database")
        with self._lock:
            if session is None:
                if self._pending is not None:
                    raise StoreError("another transaction holds uncommitted appends",
                                     code="busy")
                store = _MemStore(self._data)
                yield store
                store.commit()
                return
            if self._pending is not None and self._pending[0] is not session:
                raise StoreError("another transaction holds uncommitted appends", code="busy")
            if self._pending is None:
                self._pending = (session, _MemStore(self._data))
                self._follow(session)
            yield self._pending[1]

    def _follow(self, session: Session) -> None:
        """Apply the staged writes when ``session`` commits; drop them when it does not."""
        from sqlalchemy import event

        if not session.in_transaction():
            session.begin()
        if session in self._followed:
            return
        self._followed.add(session)

        def committed(sess: Session) -> None:
            with self._lock:
                if self._pending is not None and self._pending[0] is sess:
                    self._pending[1].commit()
                    self._pending = None

        def ended(sess: Session, transaction: Any) -> None:
            if transaction.parent is None:
                with self._lock:
                    if self._pending is not None and self._pending[0] is sess:
                        self._pending = None  # rolled back or closed: drop the staged writes

        event.listen(session, "after_commit", committed)
        event.listen(session, "after_transaction_end", ended)


if TYPE_CHECKING:
    from ledger_adapter.protocol import Ledger

    def _is_a_ledger(ledger: MemoryLedger) -> Ledger:  # mypy checks the protocol is met
        return ledger
