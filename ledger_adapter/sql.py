"""``SqlLedger``: the ledger in the engine's SQL database (SQLite or PostgreSQL).

Tables (``TABLES``; in the engine's store created by its Alembic revision
0003, elsewhere by :func:`create_tables`):

``ledger_head``         one row (id = 1): origin, tree size, root, current key ID.
                        Every append locks it: the log's single order.
``ledger_entries``      one row per *run* of consecutive entries (:func:`pack_runs`: at
                        most 256, never crossing a multiple of 256): idx (the first leaf
                        index), width, records (canonical ``jrule-record/1`` bytes without
                        salt, back to back), lengths (uint16 big-endian each), salts (32
                        bytes each, never published), leaf_hashes, created_at.
``ledger_tiles``        level, idx, width, hashes, nodes: the Merkle tree as C2SP tlog-tiles
                        (``hashes``: 256 hashes of 32 bytes per full tile; the rightmost tile
                        of each level >= 1 grows in place; the rightmost level-0 tile is not
                        stored: its hashes are the entries' leaf hashes).  ``nodes`` is
                        written empty: proofs compute a tile's inner nodes and keep those of
                        recently used tiles in memory (rows written before 2026-11-22 have
                        them, and a stored partial level-0 tile; both stay valid).
``ledger_checkpoints``  size, root, note (the signed checkpoint note, UTF-8), cosignatures
                        (witness signature lines added later), created_at.  One per batch.
``ledger_keys``         key_id (8 hex), name, public_key, valid_from, valid_to (NULL while
                        current), retired, created_at.  Retired keys are kept.

Appends join the caller's SQLAlchemy session (its connection and transaction)
and write in bulk: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

On SQLite, writers should hold the write lock from their first statement
(``BEGIN IMMEDIATE``, as ``engine.runtime.db`` does for its writers); the
ledger's own transactions ask for it with the ``jrule_write`` execution
option, which engines made by :func:`sqlite_engine` (and the engine's
``Database``) honour.  On PostgreSQL, use READ COMMITTED for writers (the
default); reads run in REPEATABLE READ snapshots.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import sqlite3
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

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
from ledger_adapter.merkle import HASH_SIZE
from ledger_adapter.note import Ed25519Signer
from ledger_adapter.tile import TILE_WIDTH, StoredTile, TileKey

__all__ = [
    "RUN_WIDTH",
    "TABLES",
    "LedgerBase",
    "SqlLedger",
    "create_tables",
    "drop_tables",
    "pack_runs",
    "record_kind_instance",
    "sqlite_engine",
    "unpack_run",
]

#: The ledger's tables, in creation order.
TABLES = ("ledger_head", "ledger_entries", "ledger_tiles", "ledger_checkpoints", "ledger_keys")


class UTCInstant(TypeDecorator[dt.datetime]):
    """An aware UTC instant on every backend (stored like ``engine.runtime.models.UTCDateTime``)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect
                           ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use UTC instants")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect
                             ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


_ID = BigInteger().with_variant(Integer, "sqlite")  # rowid alias on SQLite


class LedgerBase(DeclarativeBase):
    """The ledger's own declarative base (its tables live beside the engine's)."""


class LedgerHead(LedgerBase):
    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    origin: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(8))


class LedgerEntryRow(LedgerBase):
    """A run of consecutive entries (see :func:`pack_runs`): one row per append and
    256-entry bundle, not one per entry, so a bulk append writes few rows."""

    __tablename__ = "ledger_entries"

    idx: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=False)
    width: Mapped[int] = mapped_column(SmallInteger)  # entries in the run, 1..256
    records: Mapped[bytes] = mapped_column(LargeBinary)  # the records, back to back
    lengths: Mapped[bytes] = mapped_column(LargeBinary)  # their lengths, uint16 big-endian
    salts: Mapped[bytes] = mapped_column(LargeBinary)  # 32 bytes each
    leaf_hashes: Mapped[bytes] = mapped_column(LargeBinary)  # 32 bytes each
    created_at: Mapped[dt.datetime] = mapped_column(UTCInstant())


class LedgerTile(LedgerBase):
    __tablename__ = "ledger_tiles"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    width: Mapped[int] = mapped_column(SmallInteger)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)  # the C2SP tile
    nodes: Mapped[bytes] = mapped_column(LargeBinary)  # b"" (older rows: tile.tile_nodes)


class LedgerCheckpoint(LedgerBase):
    __tablename__ = "ledger_checkpoints"

    size: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    cosignatures: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCInstant())


class LedgerKey(LedgerBase):
    __tablename__ = "ledger_keys"

    key_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    valid_from: Mapped[int] = mapped_column(BigInteger)
    valid_to: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCInstant())


_head = cast(Table, LedgerHead.__table__)
_entries = cast(Table, LedgerEntryRow.__table__)
_tiles = cast(Table, LedgerTile.__table__)
_checkpoints = cast(Table, LedgerCheckpoint.__table__)
_keys = cast(Table, LedgerKey.__table__)


def create_tables(bind: Engine | Connection) -> None:
    """Create the ledger's tables if missing (the engine's store gets them from Alembic)."""
    LedgerBase.metadata.create_all(bind)


def drop_tables(bind: Engine | Connection) -> None:
    LedgerBase.metadata.drop_all(bind)


#: the most entries one ``ledger_entries`` row holds: runs never cross a multiple of it,
#: so the runs of entries [256k, 256k + 256) are that C2SP entry bundle's entries
RUN_WIDTH = TILE_WIDTH
_LENGTHS = struct.Struct(">H")
_RECORD_PREFIX = b"jrule-record/1\nkind "


def pack_runs(start: int, records: Sequence[bytes], salt_block: bytes,
              leaf_hashes: Sequence[bytes]) -> list[tuple[int, int, bytes, bytes, bytes, bytes]]:
    """Entries ``start``, ``start + 1``, ... as ``ledger_entries`` rows: (idx, width,
    records, lengths, salts, leaf_hashes), one per run of at most ``RUN_WIDTH`` entries
    that does not cross a multiple of ``RUN_WIDTH``."""
    out = []
    n = len(records)
    i = 0
    while i < n:
        j = min(n, i + RUN_WIDTH - (start + i) % RUN_WIDTH)
        part = records[i:j]
        try:
            lengths = struct.pack(f">{j - i}H", *map(len, part))
        except struct.error as e:
            raise StoreError("a record longer than 65,535 bytes", code="too_long") from e
        out.append((start + i, j - i, b"".join(part), lengths,
                    salt_block[i * HASH_SIZE:j * HASH_SIZE], b"".join(leaf_hashes[i:j])))
        i = j
    return out


def unpack_run(idx: int, width: int, records: bytes, lengths: bytes, salts: bytes,
               leaf_hashes: bytes) -> list[tuple[int, bytes, bytes, bytes]]:
    """A ``ledger_entries`` row's entries: (index, record, salt, leaf hash).

    A row whose parts disagree in length is read as far as they go (the audit
    then names the entries that are missing or altered)."""
    records, lengths, salts, leaf_hashes = (bytes(records), bytes(lengths), bytes(salts),
                                            bytes(leaf_hashes))
    out = []
    at = 0
    for i, (length,) in enumerate(_LENGTHS.iter_unpack(lengths[:2 * (len(lengths) // 2)])):
        if i >= width:
            break
        out.append((idx + i, records[at:at + length], salts[i * 32:(i + 1) * 32],
                    leaf_hashes[i * 32:(i + 1) * 32]))
        at += length
    return out


def record_kind_instance(record: bytes) -> tuple[str, str | None]:
    """The kind and instance a stored record names (read from its first lines)."""
    if not record.startswith(_RECORD_PREFIX):
        return "", None
    end = record.find(b"\n", len(_RECORD_PREFIX))
    kind = record[len(_RECORD_PREFIX):end].decode("utf-8", "replace")
    if record.startswith(b"instance ", end + 1):
        stop = record.find(b"\n", end + 10)
        return kind, record[end + 10:stop].decode("utf-8", "replace")
    return kind, None


_UTC_INSTANT = UTCInstant()
_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)


@functools.cache
def _bind_processor(dialect: Dialect) -> Callable[[Any], Any] | None:
    impl = _UTC_INSTANT.impl_instance.dialect_impl(dialect)
    return cast("Callable[[Any], Any] | None", impl.bind_processor(dialect))


def _instant(value: Any, dialect: Dialect) -> dt.datetime:
    """A ``UTCInstant`` column value read through the driver."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    result = UTCInstant().process_result_value(value, dialect)
    assert result is not None
    return result


def sqlite_engine(url: str | URL, **kwargs: Any) -> Engine:
    """A SQLite engine configured as the jrule engine's: WAL, explicit BEGIN / BEGIN IMMEDIATE."""
    u = make_url(url)
    engine = create_engine(u, connect_args={"check_same_thread": False}, **kwargs)
    memory = u.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("jrule_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


# --- the store ------------------------------------------------------------------------


class _SqlStore:
    """One transaction on one connection."""

    def __init__(self, conn: Connection, raw_reads: bool = False) -> None:
        self._conn = conn
        self._raw = raw_reads
        self._dialect = conn.dialect
        self._pg = conn.dialect.name == "postgresql"
        self._ph = "%s" if self._pg else "?"
        self._last_ts: tuple[dt.datetime, Any] | None = None

    def _ts(self, value: dt.datetime) -> Any:
        """``value`` as the driver receives it for a ``UTCInstant`` column."""
        last = self._last_ts
        if last is not None and last[0] is value:  # an append's entries and checkpoint
            return last[1]
        bound = _UTC_INSTANT.process_bind_param(value, self._dialect)
        proc = _bind_processor(self._dialect)
        out = proc(bound) if proc is not None else bound
        self._last_ts = (value, out)
        return out

    # The statements of an append and the reads of a proof go straight to the driver:
    # each is one small statement, and SQLAlchemy's statement machinery would cost
    # more than the statement does (an engine step appends a few records per
    # transaction).  Inside a transaction the driver runs in it.

    def _driver(self) -> Any:
        driver = self._conn.connection.driver_connection
        assert driver is not None
        return driver

    def _exec(self, sql: str, params: Any = (), many: bool = False) -> None:
        if not self._conn.in_transaction():
            if many:
                self._conn.exec_driver_sql(sql, list(params))
            else:
                self._conn.exec_driver_sql(sql, params)
            return
        with contextlib.closing(self._driver().cursor()) as cur:
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)

    # reads
    def lock_head(self) -> Head | None:
        # An UPDATE takes the row lock (PostgreSQL) / the write lock (SQLite) at once; with
        # RETURNING (SQLite >= 3.35) it reads the row too.
        if self._pg or _SQLITE_RETURNING:
            rows = self._query("UPDATE ledger_head SET size = size WHERE id = 1 "
                               "RETURNING origin, size, root, key_id")
            return None if not rows else Head(rows[0][0], rows[0][1], bytes(rows[0][2]),
                                              rows[0][3])
        self._exec("UPDATE ledger_head SET size = size WHERE id = 1")
        return self.read_head()

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self._raw or self._conn.in_transaction():
            # Without a transaction (proofs on SQLite): one statement, read committed
            # (proofs read only immutable rows).
            with contextlib.closing(self._driver().cursor()) as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        return list(self._conn.exec_driver_sql(sql, params).fetchall())

    def read_head(self) -> Head | None:
        rows = self._query("SELECT origin, size, root, key_id FROM ledger_head WHERE id = 1")
        return None if not rows else Head(rows[0][0], rows[0][1], bytes(rows[0][2]),
                                          rows[0][3])

    def read_tiles(self, keys: Sequence[TileKey]) -> Mapping[TileKey, StoredTile]:
        if not keys:
            return {}
        ph = self._ph
        where = " OR ".join([f"(level = {ph} AND idx = {ph})"] * len(keys))
        params = tuple(x for key in keys for x in key)
        rows = self._query(f"SELECT level, idx, hashes FROM ledger_tiles WHERE {where}", params)
        return {(r[0], r[1]): StoredTile(bytes(r[2]), b"") for r in rows}

    def read_leaf_hashes(self, start: int, stop: int) -> bytes:
        ph = self._ph
        rows = self._query(f"SELECT idx, width, leaf_hashes FROM ledger_entries WHERE idx > {ph} "
                           f"AND idx < {ph} ORDER BY idx", (start - RUN_WIDTH, stop))
        out = []
        at = start
        for idx, width, hashes in rows:
            end = min(stop, idx + width)
            if end <= at:
                continue  # a run before ``start``
            if idx > at:
                break  # a gap
            part = bytes(hashes)[(at - idx) * HASH_SIZE:(end - idx) * HASH_SIZE]
            out.append(part[:len(part) - len(part) % HASH_SIZE])
            if len(part) != (end - at) * HASH_SIZE:
                break  # a short column: as far as it goes
            at = end
        return b"".join(out)

    def _runs(self, start: int, stop: int, created: bool) -> list[Any]:
        # A run holds at most RUN_WIDTH entries, so the runs that overlap [start, stop)
        # start after start - RUN_WIDTH: an index range scan.
        ph = self._ph
        cols = "idx, width, records, lengths, salts, leaf_hashes" + (
            ", created_at" if created else "")
        return self._query(f"SELECT {cols} FROM ledger_entries WHERE idx > {ph} AND "
                           f"idx < {ph} ORDER BY idx", (start - RUN_WIDTH, stop))

    def read_entries(self, start: int, stop: int) -> list[EntryRow]:
        out: list[EntryRow] = []
        for r in self._runs(start, stop, created=True):
            created = _instant(r[6], self._dialect)
            for idx, record, salt, leaf in unpack_run(r[0], r[1], r[2], r[3], r[4], r[5]):
                if start <= idx < stop:
                    kind, instance = record_kind_instance(record)
                    out.append(EntryRow(idx, kind, instance, record, salt, leaf, created))
        return out

    def scan_entries(self, start: int, stop: int) -> list[ScannedEntry]:
        out: list[ScannedEntry] = []
        for r in self._runs(start, stop, created=False):
            for idx, record, salt, leaf in unpack_run(r[0], r[1], r[2], r[3], r[4], r[5]):
                if start <= idx < stop:
                    kind, instance = record_kind_instance(record)
                    out.append((idx, kind, instance, record, salt, leaf))
        return out

    def _checkpoint_rows(self, stmt: Any) -> list[CheckpointRow]:
        return [CheckpointRow(r[0], bytes(r[1]), r[2].encode("utf-8"), r[3].encode("utf-8"),
                              r[4]) for r in self._conn.execute(stmt)]

    def _cp_select(self) -> Any:
        c = _checkpoints.c
        return select(c.size, c.root, c.note, c.cosignatures, c.created_at)

    def read_checkpoint(self, size: int | None) -> CheckpointRow | None:
        c = _checkpoints.c
        stmt = self._cp_select()
        stmt = (stmt.order_by(c.size.desc()).limit(1) if size is None
                else stmt.where(c.size == size))
        rows = self._checkpoint_rows(stmt)
        return rows[0] if rows else None

    def read_checkpoints(self, after: int, limit: int) -> list[CheckpointRow]:
        c = _checkpoints.c
        return self._checkpoint_rows(self._cp_select().where(c.size > after)
                                     .order_by(c.size).limit(limit))

    def read_tile_range(self, level: int, start: int, limit: int
                        ) -> list[tuple[int, StoredTile]]:
        rows = self._conn.execute(
            select(_tiles.c.idx, _tiles.c.hashes, _tiles.c.nodes)
            .where(_tiles.c.level == level, _tiles.c.idx >= start)
            .order_by(_tiles.c.idx).limit(limit))
        return [(r[0], StoredTile(bytes(r[1]), bytes(r[2]))) for r in rows]

    def tile_levels(self) -> list[int]:
        return [r[0] for r in self._conn.execute(
            select(_tiles.c.level).distinct().order_by(_tiles.c.level))]

    def read_keys(self) -> list[KeyRow]:
        k = _keys.c
        rows = self._conn.execute(select(k.key_id, k.name, k.public_key, k.valid_from,
                                         k.valid_to, k.retired, k.created_at))
        return [KeyRow(r[0], r[1], bytes(r[2]), r[3], r[4], bool(r[5]), r[6]) for r in rows]

    # writes
    def write_entries(self, batch: EntryBatch) -> None:
        if not batch.records:
            return
        runs = pack_runs(batch.start, batch.records, batch.salt_block, batch.leaf_hashes)
        created = self._ts(batch.created_at)
        cols = "idx, width, records, lengths, salts, leaf_hashes, created_at"
        driver = self._conn.connection.driver_connection
        assert driver is not None
        if self._pg:
            with driver.cursor() as cur, cur.copy(
                    f"COPY ledger_entries ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["bigint", "smallint", "bytea", "bytea", "bytea", "bytea",
                                "timestamptz"])
                for run in runs:
                    copy.write_row((*run, created))
        else:
            driver.executemany(f"INSERT INTO ledger_entries ({cols}) VALUES "
                               f"({', '.join(['?'] * 7)})", [(*run, created) for run in runs])

    def write_tiles(self, tiles: Mapping[TileKey, bytes]) -> None:
        if not tiles:
            return
        # ``nodes`` is written empty (the inner nodes are computed when proofs need them);
        # a row written by an older version (with nodes) is replaced whole.
        ph = ", ".join([self._ph] * 5)
        self._exec(
            f"INSERT INTO ledger_tiles (level, idx, width, hashes, nodes) VALUES ({ph}) "
            "ON CONFLICT (level, idx) DO UPDATE SET width = excluded.width, "
            "hashes = excluded.hashes, nodes = excluded.nodes",
            [(lv, i, len(h) // HASH_SIZE, h, b"") for (lv, i), h in sorted(tiles.items())],
            many=True)

    def write_checkpoint(self, row: CheckpointRow) -> None:
        ph = ", ".join([self._ph] * 5)
        self._exec(
            "INSERT INTO ledger_checkpoints (size, root, note, cosignatures, created_at) "
            f"VALUES ({ph})", (row.size, row.root, row.note.decode("utf-8"),
                               row.cosignatures.decode("utf-8"), self._ts(row.created_at)))

    def write_cosignatures(self, size: int, cosignatures: bytes) -> None:
        self._conn.execute(update(_checkpoints).where(_checkpoints.c.size == size)
                           .values(cosignatures=cosignatures.decode("utf-8")))

    def write_head(self, head: Head, create: bool = False) -> None:
        values = {"origin": head.origin, "size": head.size, "root": head.root,
                  "key_id": head.key_id}
        if create:
            self._conn.execute(_head.insert().values(id=1, **values))
        else:
            ph = self._ph
            self._exec(
                f"UPDATE ledger_head SET origin = {ph}, size = {ph}, root = {ph}, "
                f"key_id = {ph} WHERE id = 1", (head.origin, head.size, head.root, head.key_id))

    def write_key(self, row: KeyRow, create: bool = False) -> None:
        values = {"name": row.name, "public_key": row.public_key, "valid_from": row.valid_from,
                  "valid_to": row.valid_to, "retired": row.retired,
                  "created_at": row.created_at}
        if create:
            self._conn.execute(_keys.insert().values(key_id=row.key_id, **values))
        else:
            self._conn.execute(update(_keys).where(_keys.c.key_id == row.key_id).values(**values))


class SqlLedger(TiledLog):
    """A :class:`~ledger_adapter.protocol.Ledger` stored in the engine's database.

    ``bind`` is the engine's SQLAlchemy ``Engine``; the tables must exist
    (:func:`create_tables`) and the log must be initialised once
    (:meth:`initialize`, idempotent: call it at start-up).  Proofs keep up to
    ``tile_cache`` full tiles (16 KB each, immutable) in memory.
    """

    def __init__(self, bind: Engine, origin: str, signer: Ed25519Signer,
                 *more_signers: Ed25519Signer,
                 clock: Callable[[], dt.datetime] = _now, tile_cache: int = 1024) -> None:
        super().__init__(origin, [signer, *more_signers], clock, tile_cache)
        self._engine = bind
        self._writer = bind.execution_options(jrule_write=True)  # made once: not cheap
        self._pg = bind.dialect.name == "postgresql"

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _write(self, session: Session | Connection | None) -> Iterator[_SqlStore]:
        if session is not None:
            # A Connection is joined as it is (cheaper than a Session around it: an engine
            # step appends inside its own transaction).
            conn = session if isinstance(session, Connection) else session.connection()
            if conn.engine.url != self._engine.url:
                raise StoreError("the session is bound to another database than the "
                                 "ledger's", code="wrong_database")
            yield _SqlStore(conn)
            return
        with self._writer.begin() as conn:
            yield _SqlStore(conn)

    @contextmanager
    def _read(self, snapshot: bool = False) -> Iterator[_SqlStore]:
        if not snapshot:
            with self._engine.connect() as conn:
                yield _SqlStore(conn, raw_reads=not self._pg)
            return
        # A snapshot: one transaction (REPEATABLE READ on PostgreSQL; on SQLite a read
        # transaction in WAL mode is one).
        engine = (self._engine.execution_options(isolation_level="REPEATABLE READ")
                  if self._pg else self._engine)
        with engine.connect() as conn, conn.begin():
            yield _SqlStore(conn)


if TYPE_CHECKING:
    from ledger_adapter.protocol import Ledger

    def _is_a_ledger(ledger: SqlLedger) -> Ledger:  # mypy checks the protocol is met
        return ledger
