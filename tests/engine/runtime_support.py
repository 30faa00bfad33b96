"""Shared fixtures for the durable-runtime tests: one suite, every backend.

``backend_url`` is parametrized over SQLite (a file in the test's tmp dir)
and PostgreSQL (when ``JRULE_TEST_DATABASE_URL`` is set; each test gets its
own schema through ``search_path``, dropped afterwards).  Test modules import
helpers from here; ``conftest.py`` registers the fixtures.  :func:`clone_store`
copies a store made once into a fresh one of the same backend, for tests that
each change a copy (the tamper tests).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from engine.runtime.clock import VirtualClock
from engine.runtime.db import normalize_url, upgrade
from engine.runtime.service import EngineService

PG_URL = os.environ.get("JRULE_TEST_DATABASE_URL")
ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "runtime_data"
MINIMAL = ROOT / "tests/fixtures/check/good/mediation_minimal.jrule"
APPROVALS = ROOT / "tests/fixtures/check/good/modules_and_approvals.jrule"
MEDIATION = ROOT / "examples/mediation_agreement.jrule"

#: 2025-09-01 10:00 Asia/Shanghai
T0 = dt.datetime(2025, 9, 1, 2, 0, tzinfo=dt.UTC)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql",
                 marks=pytest.mark.skipif(not PG_URL, reason="JRULE_TEST_DATABASE_URL not set")),
]


def pg_schema_url(schema: str) -> str:
    """The test database URL with ``search_path`` set to ``schema``."""
    assert PG_URL
    base = normalize_url(PG_URL).render_as_string(hide_password=False)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def pg_admin(sql: str) -> None:
    assert PG_URL
    engine = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def make_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'jrule.sqlite3'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    pg_admin(f"CREATE SCHEMA {schema}")
    try:
        yield pg_schema_url(schema)
    finally:
        pg_admin(f"DROP SCHEMA {schema} CASCADE")


def clone_store(source: str, target: str) -> None:
    """Fill the fresh store at ``target`` (from :func:`make_url`, same backend as
    ``source``) with a copy of every row of ``source``.

    SQLite: the file, through SQLite's backup API (WAL pages included).
    PostgreSQL: the schema is created by the migrations, then each table's rows
    are copied from the source schema with foreign-key triggers off (any table
    order), and each sequence continues where the source's stands.
    """
    if source.startswith("sqlite"):
        src = sqlite3.connect(normalize_url(source).database or "")
        dst = sqlite3.connect(normalize_url(target).database or "")
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        return
    upgrade(target)
    engine = create_engine(normalize_url(source))
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    engine.dispose()
    engine = create_engine(normalize_url(target))
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s "
                                       "AND tablename <> 'alembic_version'"),
                                  {"s": schema}).scalars().all()
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))
                conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{schema}"."{table}"'))
            for name, value in conn.execute(text(
                    "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = :s "
                    "AND last_value IS NOT NULL"), {"s": schema}):
                conn.execute(text("SELECT setval(CAST(:n AS regclass), :v)"),
                             {"n": f'"{name}"', "v": value})
    finally:
        engine.dispose()


def audit_cli(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``jrule audit --db URL``: its exit status and what it printed."""
    from rules_dsl.cli import main

    code = main(["audit", "--db", url])
    return code, capsys.readouterr().out


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    yield from make_url(request.param, tmp_path)


@pytest.fixture
def vclock() -> VirtualClock:
    """A virtual clock standing at :data:`T0`."""
    return VirtualClock(T0)


@pytest.fixture
def svc(store_url: str, vclock: VirtualClock) -> Iterator[EngineService]:
    """An engine (test mode, virtual clock) on a fresh database of each backend."""
    service = EngineService(store_url, vclock, mode="test")
    try:
        yield service
    finally:
        service.close()


def deploy(svc: EngineService, path: Path, by: str = "clerk") -> list[str]:
    return svc.deploy(path.read_bytes(), path.name, by)


def minimal_terms(due: str = "2025-09-30", amount: str = "1000.00",
                  confirmed: bool = True) -> dict[str, Any]:
    return {"金额": amount, "履行期限": due, "司法确认": confirmed}


def snapshot(svc: EngineService, instance_id: str) -> tuple[Any, ...]:
    """Everything an input could change, to assert a refusal changed nothing."""
    st = svc.state(instance_id)
    return (st["state_hash"], st["seq"], st["status"], svc.counts(),
            svc.timers(instance_id), svc.outbox(instance_id), svc.approvals(instance_id))


def mirror_ok(svc: EngineService, instance_id: str) -> bool:
    """The pending timer rows are exactly the state's due timers and approvals."""
    doc = svc.state(instance_id)["document"]
    want = sorted([("deadline", t["deadline"], t["due_at"]) for t in doc["timers"]
                   if t["due_at"] is not None]
                  + [("approval", a["id"], a["due_at"]) for a in doc["approvals"]])
    have = sorted((r["kind"], r["name"], r["due_at"]) for r in svc.timers(instance_id)
                  if r["status"] == "pending")
    return want == have
