"""Shared helpers for the delivery tests (outbox, dispatcher, webhook, receiver).

``open_store(backend)`` gives a fresh store with the runtime schema: a SQLite
file (WAL) or, when ``JRULE_TEST_DATABASE_URL`` is set, a PostgreSQL schema of
its own (dropped afterwards), so these tests never touch other tests' tables.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, event, insert, select, text

from engine.runtime.models import Base, ContractVersion, Incident, Instance, Outbox

PG_URL = os.environ.get("JRULE_TEST_DATABASE_URL")
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(
        not PG_URL, reason="JRULE_TEST_DATABASE_URL not set")),
]
T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # 09:00 in Beijing
PG_SCHEMAS: dict[int, str] = {}  # id(engine) -> its PostgreSQL schema


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh store (:func:`open_store`) on each backend, for a test module that imports
    this fixture."""
    with open_store(request.param, tmp_path) as engine:
        yield engine


@contextmanager
def open_store(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine with the runtime's tables (and two instances, i1 and i2)."""
    if backend == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'jrule.db'}",
                               connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")
            dbapi_connection.execute("PRAGMA synchronous=OFF")  # tests need no fsync

        Base.metadata.create_all(engine)
        seed(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    assert PG_URL
    schema = f"delivery_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = pg_engine(schema)
    PG_SCHEMAS[id(engine)] = schema
    try:
        Base.metadata.create_all(engine)
        seed(engine)
        yield engine
    finally:
        engine.dispose()
        PG_SCHEMAS.pop(id(engine), None)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pg_engine(schema: str) -> Engine:
    """An engine on the test PostgreSQL whose tables live in ``schema``."""
    assert PG_URL
    return create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"},
                         pool_size=10, max_overflow=10)


def clear(engine: Engine) -> None:
    """Empty the outbox and incidents (between hypothesis examples)."""
    with engine.begin() as conn:
        conn.execute(delete(Incident))
        conn.execute(delete(Outbox))


def seed(engine: Engine, instances: tuple[str, ...] = ("i1", "i2")) -> None:
    with engine.begin() as conn:
        conn.execute(insert(ContractVersion).values(
            id="c" * 64, ruleset_id="r" * 64, name="mediation", version="1",
            title="test", ir="{}", ruleset_ir="{}", source="", deploy_seq=1,
            deployed_at=T0, deployed_by="test"))
        for instance in instances:
            add_instance(conn, instance)


def add_instance(conn: Any, instance: str) -> None:
    conn.execute(insert(Instance).values(
        id=instance, contract_name="mediation", contract_id="c" * 64,
        calendar_version="cn", state="s", status="active", seq=0, document="{}",
        state_hash="0" * 64, parties="{}", created_at=T0, updated_at=T0))


def add_action(engine: Engine, key: str, action: str = "file_enforcement_case",
               args: dict[str, Any] | None = None, *, at: dt.datetime = T0,
               instance: str | None = None) -> None:
    """Write an outbox row as the engine service does (pending, due at ``at``)."""
    if args is None:
        args = {"applicant": "张三", "respondent": "李四", "amount": "1234.50",
                "basis": "(2026)京0105民初1号调解书"}
    with engine.begin() as conn:
        conn.execute(insert(Outbox).values(
            key=key, instance_id=instance or key.split(":")[0], action=action,
            args=json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            cite="《民事诉讼法》第二百四十三条", rule_span="mediation.jrule:12:5",
            status="pending", attempts=0, next_attempt_at=at, created_at=at))


def row(engine: Engine, key: str) -> dict[str, Any]:
    with engine.begin() as conn:
        found = conn.execute(select(Outbox.__table__).where(Outbox.key == key)).one()
    return dict(found._mapping)


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        found = conn.execute(select(Outbox.__table__).order_by(Outbox.id)).all()
    return [dict(r._mapping) for r in found]


def incidents(engine: Engine) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        found = conn.execute(select(Incident.__table__).order_by(Incident.id)).all()
    return [dict(r._mapping) for r in found]
