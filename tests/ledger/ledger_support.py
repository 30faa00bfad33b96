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
