"""Shared helpers and fixtures for the ledger tests: one suite, every backend.

``conftest.py`` re-exports the fixtures; test modules import helpers from
here (a unique module name, unlike ``conftest``).

``backend`` is parametrized over the in-memory ledger, SQLite (a WAL file in
the test's tmp dir) and PostgreSQL (when ``JRULE_TEST_DATABASE_URL`` is set;
each test gets its own schema through ``search_path``, dropped afterwards).
Every backend also has an SQL database holding an ``app_rows`` table that
stands for the engine's own rows, to test that appends share the caller's
transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from ledger_adapter.cosign import CosignatureSigner
from ledger_adapter.log import TiledLog
from ledger_adapter.memory import MemoryLedger
from ledger_adapter.note import Ed25519Signer
from ledger_adapter.record import Record, make_record
from ledger_adapter.sql import SqlLedger, create_tables, sqlite_engine

PG_URL = os.environ.get("JRULE_TEST_DATABASE_URL")
ORIGIN = "court.example/ledger"
T0 = dt.datetime(2025, 9, 1, 2, 0, tzinfo=dt.UTC)

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql",
                 marks=pytest.mark.skipif(not PG_URL, reason="JRULE_TEST_DATABASE_URL not set")),
]

app_metadata = MetaData()
app_rows = Table("app_rows", app_metadata, Column("id", Integer, primary_key=True),
                 Column("note", String(100)))


def seeded_signer(name: str = ORIGIN, seed: str = "log-1") -> Ed25519Signer:
    """A deterministic log key (tests are reproducible)."""
    raw = hashlib.sha256(f"{name}/{seed}".encode()).digest()
    return Ed25519Signer(name, Ed25519PrivateKey.from_private_bytes(raw))


def seeded_witness(name: str, when: int = 1_760_000_000) -> CosignatureSigner:
    raw = hashlib.sha256(f"witness/{name}".encode()).digest()
    return CosignatureSigner(name, Ed25519PrivateKey.from_private_bytes(raw), lambda: when)


def transition(i: int, instance: str | None = None) -> Record:
    """A realistic transition record (digests derived from ``i``)."""
    def h(tag: str) -> str:
        return hashlib.sha256(f"{tag}{i}".encode()).hexdigest()

    return make_record("transition", {
        "instance": instance or f"case-2025-{i % 13:04d}", "seq": i, "contract": h("c"),
        "input": h("i"), "state": h("s"), "effects": h("e"),
        "at": T0 + dt.timedelta(minutes=i),
    })


def pg_schema_url(schema: str) -> str:
    assert PG_URL
    base = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def pg_admin(sql: str) -> None:
    assert PG_URL
    engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@dataclass
class Backend:
    """A backend under test: how to make ledgers, sessions, and tamper with storage."""

    name: str
    engine: Engine  # the SQL database (for memory: an in-memory SQLite for app rows)
    ledgers: list[TiledLog] = field(default_factory=list)

    @property
    def is_sql(self) -> bool:
        return self.name != "memory"

    def make(self, *signers: Ed25519Signer, clock: Callable[[], dt.datetime] | None = None,
             initialize: bool = True) -> TiledLog:
        signers = signers or (seeded_signer(),)
        kwargs: dict[str, Any] = {"clock": clock} if clock else {}
        ledger: TiledLog
        if self.name == "memory":
            ledger = MemoryLedger(ORIGIN, *signers, **kwargs)
        else:
            ledger = SqlLedger(self.engine, ORIGIN, *signers, **kwargs)
            if initialize:
                ledger.initialize()
        self.ledgers.append(ledger)
        return ledger

    def session(self) -> Session:
        return Session(bind=self.engine.execution_options(jrule_write=True))

    def app_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM app_rows")).scalar_one())

    def execute(self, sql: str, **params: Any) -> None:
        """Run SQL directly against the database (to tamper with rows)."""
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)


def _engine_for(name: str, tmp_path: Path) -> Iterator[Engine]:
    if name == "memory":
        engine = create_engine("sqlite://", poolclass=StaticPool,
                               connect_args={"check_same_thread": False})
        yield engine
        engine.dispose()
        return
    if name == "sqlite":
        engine = sqlite_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
        yield engine
        engine.dispose()
        return
    schema = f"l_{uuid.uuid4().hex[:12]}"
    pg_admin(f"CREATE SCHEMA {schema}")
    engine = create_engine(pg_schema_url(schema), pool_size=10)
    try:
        yield engine
    finally:
        engine.dispose()
        pg_admin(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    for engine in _engine_for(request.param, tmp_path):
        app_metadata.create_all(engine)
        if request.param != "memory":
            create_tables(engine)
        yield Backend(request.param, engine)


@pytest.fixture(params=[p for p in BACKENDS if p.values[0] != "memory"])
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    for engine in _engine_for(request.param, tmp_path):
        app_metadata.create_all(engine)
        create_tables(engine)
        yield Backend(request.param, engine)


# --- editing stored entries directly (tamper tests) ---------------------------------------
# ``ledger_entries`` keeps runs of entries (ledger_adapter.sql.pack_runs): to change one
# entry, rewrite the run that holds it.

def _run_of(conn: Any, index: int) -> Any:
    return conn.execute(text(
        "SELECT idx, width, records, lengths, salts, leaf_hashes FROM ledger_entries "
        "WHERE idx <= :i ORDER BY idx DESC LIMIT 1"), {"i": index}).one()


def sql_get_entry(engine: Engine, index: int) -> tuple[bytes, bytes, bytes]:
    """(record, salt, leaf_hash) of a stored entry."""
    from ledger_adapter.sql import unpack_run

    with engine.connect() as conn:
        run = _run_of(conn, index)
    entries = {i: rest for i, *rest in unpack_run(*run)}
    record, salt, leaf = entries[index]
    return record, salt, leaf


def sql_edit_entry(engine: Engine, index: int, *, delete: bool = False,
                   **cols: bytes) -> None:
    """Change ``record``, ``salt`` and/or ``leaf_hash`` of one stored entry (or delete it:
    its run is split around it), bypassing the ledger."""
    from ledger_adapter.sql import unpack_run

    with engine.begin() as conn:
        run = _run_of(conn, index)
        created = conn.execute(text("SELECT created_at FROM ledger_entries WHERE idx = :i"),
                               {"i": run[0]}).scalar_one()
        entries = unpack_run(*run)
        conn.execute(text("DELETE FROM ledger_entries WHERE idx = :i"), {"i": run[0]})
        pieces: list[list[tuple[int, bytes, bytes, bytes]]] = [[]]
        for i, record, salt, leaf in entries:
            if i == index:
                if delete:
                    pieces.append([])
                    continue
                record = cols.get("record", record)
                salt = cols.get("salt", salt)
                leaf = cols.get("leaf_hash", leaf)
            pieces[-1].append((i, record, salt, leaf))
        for piece in pieces:
            if not piece:
                continue
            conn.execute(text(
                "INSERT INTO ledger_entries (idx, width, records, lengths, salts, leaf_hashes, "
                "created_at) VALUES (:idx, :w, :r, :l, :s, :h, :c)"), {
                "idx": piece[0][0], "w": len(piece), "r": b"".join(p[1] for p in piece),
                "l": b"".join(len(p[1]).to_bytes(2, "big") for p in piece),
                "s": b"".join(p[2] for p in piece), "h": b"".join(p[3] for p in piece),
                "c": created})


def sql_entry_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(sum(width), 0) FROM ledger_entries"))
                   .scalar_one())
