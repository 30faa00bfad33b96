"""The group commit's fast executemany writes what SQLAlchemy's own would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, select
from sqlalchemy.dialects import sqlite

from engine.runtime.models import Base, UTCDateTime
from engine.runtime.unit import (
    _INSERT_TIMERS,
    _TIMER_BY_KEY,
    T_INSTANCES,
    T_TIMERS,
    executemany,
    sqlite_instant,
)

ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=8)),
         dt.timezone(dt.timedelta(hours=-5, minutes=-30))]


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2999, 12, 30)),
       st.sampled_from(ZONES))
def test_sqlite_instant_is_sqlalchemys_text(naive: dt.datetime, zone: dt.tzinfo) -> None:
    value = naive.replace(tzinfo=zone)
    dialect = sqlite.dialect()
    theirs = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert theirs is not None
    assert sqlite_instant(value) == theirs(value)
    assert sqlite_instant(None) is None


def test_executemany_writes_the_rows_sqlalchemy_writes(tmp_path: Path) -> None:
    t0 = dt.datetime(2025, 9, 1, 16, 0, tzinfo=dt.UTC)
    rows = [{"instance_id": "i1", "kind": "deadline", "name": f"期限{n}",
             "due_at": t0 + dt.timedelta(days=n, microseconds=n),
             "status": "pending" if n % 2 else "fired",
             "fired_at": None if n % 2 else t0.astimezone(dt.timezone(dt.timedelta(hours=8))),
             "late_seconds": None if n % 2 else n} for n in range(7)]
    stored = []
    for fast in (False, True):
        engine = create_engine(f"sqlite:///{tmp_path / f'{fast}.db'}")
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(T_INSTANCES).values(
                id="i1", contract_name="c", contract_id="x", calendar_version="cn",
                state="s", status="active", seq=1, document="{}", state_hash="0" * 64,
                parties="{}", created_at=t0, updated_at=t0))
            if fast:
                assert executemany(conn, _INSERT_TIMERS, rows) == len(rows)
                changed = executemany(conn, _TIMER_BY_KEY, [
                    {"b_instance": "i1", "b_kind": "deadline", "b_name": "期限1",
                     "b_due": rows[1]["due_at"], "v_status": "cancelled", "v_fired_at": None,
                     "v_late_seconds": None}])
            else:
                conn.execute(insert(T_TIMERS), rows)
                changed = conn.execute(_TIMER_BY_KEY, [
                    {"b_instance": "i1", "b_kind": "deadline", "b_name": "期限1",
                     "b_due": rows[1]["due_at"], "v_status": "cancelled", "v_fired_at": None,
                     "v_late_seconds": None}]).rowcount
            assert changed == 1
            stored.append(conn.exec_driver_sql("SELECT * FROM timers ORDER BY id").all())
            first = conn.execute(select(T_TIMERS.c.due_at)
                                 .order_by(T_TIMERS.c.id)).scalars().first()
            assert first == rows[0]["due_at"]  # read back as the instant written
        engine.dispose()
    assert stored[0] == stored[1] and len(stored[0]) == len(rows)
