"""Revision 0003: the ledger's tables come from Alembic, also for stores made before it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from runtime_support import BACKENDS, MINIMAL, deploy, make_url
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
    text,
)
from test_runtime_schema import describe

from engine.runtime.clock import VirtualClock
from engine.runtime.db import HEAD_REVISION, Database, _alembic_config, normalize_url, upgrade
from engine.runtime.errors import EngineError
from engine.runtime.models import Base
from engine.runtime.service import EngineService
from ledger_adapter import Ed25519Signer, make_record
from ledger_adapter.sql import TABLES, LedgerBase, SqlLedger, create_tables

ORIGIN = "court.example/ledger"
T0 = dt.datetime(2025, 9, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_url(request.param, tmp_path)


def _at(url: str, revision: str) -> None:
    db = Database(url, engine_lock=False)
    try:
        with db.write() as conn:
            command.upgrade(_alembic_config(conn), revision)
    finally:
        db.close()


def _revision(url: str) -> str | None:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def _head_schema(url: str, tmp_path: Path) -> None:
    """The upgraded store has exactly the schema the models describe."""
    ref = create_engine(f"sqlite:///{tmp_path / 'reference.sqlite3'}") \
        if url.startswith("sqlite") else None
    engine = create_engine(normalize_url(url))
    try:
        have = describe(engine)
        assert set(have) == set(Base.metadata.tables) | set(TABLES)
        assert "ledger_index" in [c[0] for c in have["outbox"]["columns"]]
        if ref is not None:
            Base.metadata.create_all(ref)
            LedgerBase.metadata.create_all(ref)
            assert have == describe(ref)
    finally:
        engine.dispose()
        if ref is not None:
            ref.dispose()


def test_upgrade_from_0002_creates_the_ledger_tables(url: str, tmp_path: Path) -> None:
    _at(url, "0002")
    engine = create_engine(normalize_url(url))
    assert not inspect(engine).has_table("ledger_entries")
    engine.dispose()
    upgrade(url)
    assert _revision(url) == HEAD_REVISION
    _head_schema(url, tmp_path)


def _old_entries_table() -> Table:
    """``ledger_entries`` as the start-up path created it before revision 0003."""
    from ledger_adapter.sql import UTCInstant

    return Table("ledger_entries", MetaData(),
                 Column("idx", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                        autoincrement=False),
                 Column("kind", String(20), nullable=False),
                 Column("instance_id", String(200), nullable=True),
                 Column("record", LargeBinary(), nullable=False),
                 Column("salt", LargeBinary(32), nullable=False),
                 Column("leaf_hash", LargeBinary(32), nullable=False),
                 Column("created_at", UTCInstant(), nullable=False))


@pytest.mark.parametrize("layout", ["runs", "one row per entry"])
def test_upgrade_from_0002_keeps_a_log_made_by_the_old_start_up_path(
        url: str, tmp_path: Path, layout: str) -> None:
    _at(url, "0002")
    engine = create_engine(normalize_url(url))
    create_tables(engine)  # what EngineService did at start-up before revision 0003
    signer = Ed25519Signer.generate(ORIGIN)
    ledger = SqlLedger(engine, ORIGIN, signer)
    ledger.initialize()
    n = 0
    for batch in (300, 250, 1, 49):  # runs split at 256 and 512, and by append
        ledger.append([make_record("admin", {"action": "test", "subject": f"s{n + i}",
                                             "digest": "ab" * 32, "by": "ops", "at": T0})
                       for i in range(batch)])
        n += batch
    before = ledger.entries(0, n)
    root = ledger.checkpoint().root
    if layout == "one row per entry":  # as the start-up path stored entries before 0003
        old = _old_entries_table()
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE ledger_entries"))
            old.create(conn)
            conn.execute(old.insert(), [
                {"idx": e.index, "kind": e.kind, "instance_id": e.instance_id,
                 "record": e.record.encode(), "salt": e.salt, "leaf_hash": e.leaf_hash,
                 "created_at": e.created_at} for e in before])
    engine.dispose()
    upgrade(url)
    assert _revision(url) == HEAD_REVISION
    _head_schema(url, tmp_path)
    engine = create_engine(normalize_url(url))
    try:
        again = SqlLedger(engine, ORIGIN, signer)
        again.initialize()
        assert again.size() == n and again.checkpoint().root == root
        assert again.entries(0, n) == before
        report = again.audit()
        assert report.ok, report.text()
        with engine.connect() as conn:
            starts = [r[0] for r in conn.execute(text("SELECT idx FROM ledger_entries "
                                                      "ORDER BY idx"))]
        assert starts == [0, 256, 300, 512, 550, 551]
    finally:
        engine.dispose()


def test_downgrade_to_0002_and_back(url: str) -> None:
    upgrade(url)
    db = Database(url, engine_lock=False)
    try:
        with db.write() as conn:
            command.downgrade(_alembic_config(conn), "0002")
    finally:
        db.close()
    engine = create_engine(normalize_url(url))
    assert not any(inspect(engine).has_table(t) for t in TABLES)
    engine.dispose()
    upgrade(url)
    assert _revision(url) == HEAD_REVISION


def test_the_engine_no_longer_creates_ledger_tables(url: str) -> None:
    """Without the migration the engine refuses to start with a ledger (clear error)."""
    _at(url, "0002")
    clock = VirtualClock(T0)
    ledger_engine = create_engine(normalize_url(url))
    ledger = SqlLedger(ledger_engine, ORIGIN, Ed25519Signer.generate(ORIGIN))
    with pytest.raises(EngineError, match="no ledger tables"):
        EngineService(url, clock, mode="test", migrate=False, engine_lock=False, ledger=ledger)
    ledger_engine.dispose()
    # with the migration (the default) it starts and logs
    svc = EngineService(url, clock, mode="test", engine_lock=False, ledger=ledger)
    try:
        deploy(svc, MINIMAL)
        assert ledger.size() == 1
    finally:
        svc.close()


def test_audit_refuses_a_store_at_an_old_revision(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from rules_dsl.cli import main

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    _at(url, "0002")
    assert main(["audit", "--db", url]) == 2
    err = capsys.readouterr().err
    assert f"is at schema revision 0002, not {HEAD_REVISION}" in err
