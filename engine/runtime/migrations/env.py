"""Alembic environment for the runtime store (no alembic.ini needed).

``engine.runtime.db.upgrade(url)`` / ``Database.upgrade()`` hand a connection
in through ``config.attributes["connection"]``; the ``alembic`` command line
works too, with ``-x url=...`` or ``sqlalchemy.url`` in a config file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from engine.runtime.db import normalize_url
from engine.runtime.models import Base
from ledger_adapter.sql import LedgerBase

#: the engine's tables and the ledger's (created by revision 0003)
target_metadata = [Base.metadata, LedgerBase.metadata]


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") \
        or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    return normalize_url(url).render_as_string(hide_password=False)


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = create_engine(_url())
    with engine.begin() as conn:
        _configure(conn)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
