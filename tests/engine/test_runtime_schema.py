"""The store: Alembic builds exactly the models' schema; SQLite settings; one engine per file."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from runtime_support import BACKENDS, PG_URL, ROOT, make_url, pg_admin, pg_schema_url
from sqlalchemy import Engine, create_engine, inspect, text

from engine.runtime.clock import SystemClock, VirtualClock, check_clock
from engine.runtime.db import HEAD_REVISION, Database, normalize_url, open_database, upgrade
from engine.runtime.errors import ClockNotAllowed, EngineLocked
from engine.runtime.models import Base
from engine.runtime.service import EngineService
from ledger_adapter.sql import TABLES, LedgerBase


@pytest.fixture(params=BACKENDS)
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    gen_a, gen_b = make_url(request.param, a), make_url(request.param, b)
    url_a, url_b = next(gen_a), next(gen_b)
    yield url_a, url_b
    for gen in (gen_a, gen_b):
        for _ in gen:
            pass


def describe(engine: Engine) -> dict[str, Any]:
    """Tables, columns (type, nullability), keys, indexes and constraints, comparably."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        if table == "alembic_version":
            continue
        out[table] = {
            "columns": [(c["name"], str(c["type"].compile(engine.dialect)), c["nullable"])
                        for c in insp.get_columns(table)],
            "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                           tuple(f["referred_columns"])) for f in insp.get_foreign_keys(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(table)),
            "uniques": sorted((tuple(u["column_names"]),)
                              for u in insp.get_unique_constraints(table)),
        }
    return out


def test_alembic_head_is_the_models_schema(two_urls: tuple[str, str]) -> None:
    migrated_url, created_url = two_urls
    upgrade(migrated_url)
    created = create_engine(normalize_url(created_url))
    Base.metadata.create_all(created)
    LedgerBase.metadata.create_all(created)
    migrated = create_engine(normalize_url(migrated_url))
    try:
        assert describe(migrated) == describe(created)
        assert set(describe(migrated)) == set(Base.metadata.tables) | set(TABLES)
        with migrated.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn),
                                     [Base.metadata, LedgerBase.metadata])  # type: ignore[arg-type]
        assert diffs == []
        upgrade(migrated_url)  # idempotent: already at head
        with migrated.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == HEAD_REVISION
    finally:
        migrated.dispose()
        created.dispose()


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    from engine.runtime.db import HEAD_REVISION, MIGRATIONS

    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD_REVISION


def test_sqlite_settings(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        db.close()


def test_sqlite_writers_begin_immediate(tmp_path: Path) -> None:
    """A writer holds the write lock from BEGIN: a second connection cannot start writing."""
    import sqlite3

    path = tmp_path / "x.sqlite3"
    db = open_database(f"sqlite:///{path}")
    try:
        with db.write():
            other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
        with db.read():  # readers do not take the write lock
            other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            other.close()
    finally:
        db.close()


def test_second_engine_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "court.sqlite3"
    first = Database(f"sqlite:///{path}")
    try:
        with pytest.raises(EngineLocked) as info:
            Database(f"sqlite:///{path}")
        assert info.value.message == (
            f"another jrule engine (pid {__import__('os').getpid()}) is using {path}; "
            "stop it or use PostgreSQL for several engines")
        # another process is refused the same way
        script = textwrap.dedent(f"""
            from engine.runtime.db import Database
            from engine.runtime.errors import EngineLocked
            try:
                Database({f'sqlite:///{path}'!r})
            except EngineLocked as exc:
                print(exc.message)
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             cwd=ROOT, timeout=60, check=True).stdout
        assert "another jrule engine (pid" in out and "use PostgreSQL" in out
        # a reader may open the file without claiming it
        Database(f"sqlite:///{path}", engine_lock=False).close()
    finally:
        first.close()
    Database(f"sqlite:///{path}").close()  # released on close


def test_lock_is_released_when_the_engine_process_dies(tmp_path: Path) -> None:
    path = tmp_path / "court.sqlite3"
    script = ("import os, signal; from engine.runtime.db import Database; "
              f"Database({f'sqlite:///{path}'!r}); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60, check=False)
    Database(f"sqlite:///{path}").close()


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x").drivername == "sqlite"


def test_virtual_clock() -> None:
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    clock = VirtualClock(t0)
    assert clock.now() == t0
    seen: list[dt.datetime] = []
    clock.subscribe(seen.append)
    assert clock.advance(dt.timedelta(days=31)) == dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    clock.set(dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    assert len(seen) == 2
    with pytest.raises(ValueError, match="backwards"):
        clock.set(t0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(dt.timedelta(seconds=-1))
    with pytest.raises(ValueError):
        VirtualClock(dt.datetime(2025, 1, 1))  # naive
    import time

    running = VirtualClock(t0, speed=1000.0, real_origin=time.time() - 3600)
    assert running.now() > t0 + dt.timedelta(days=41)
    assert running.real_seconds_until(running.now() + dt.timedelta(seconds=1000)) <= 1.0
    assert clock.real_seconds_until(clock.now() + dt.timedelta(seconds=1)) is None
    assert SystemClock().now().tzinfo is not None


def test_virtual_clock_is_refused_in_production(tmp_path: Path) -> None:
    clock = VirtualClock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(ClockNotAllowed):
        check_clock(clock, "production")
    check_clock(clock, "sandbox")
    check_clock(SystemClock(), "production")
    with pytest.raises(ClockNotAllowed):
        EngineService(f"sqlite:///{tmp_path / 'x.sqlite3'}", clock, mode="production")
    with pytest.raises(ValueError):
        check_clock(clock, "staging")


@pytest.mark.skipif(not PG_URL, reason="JRULE_TEST_DATABASE_URL not set")
def test_postgres_schema_isolation() -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    pg_admin(f"CREATE SCHEMA {schema}")
    try:
        upgrade(pg_schema_url(schema))
        engine = create_engine(normalize_url(pg_schema_url(schema)))
        assert "timers" in inspect(engine).get_table_names()
        engine.dispose()
    finally:
        pg_admin(f"DROP SCHEMA {schema} CASCADE")
