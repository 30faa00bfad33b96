"""One write transaction's worth of rows, collected then written together.

The service applies inputs one after another in memory (each through the pure
core), and records what each changed here: the instance document, the input
log row, the timer rows (a diff against the rows pending before), the outbox
rows and the approval rows.  :meth:`Unit.flush` then writes everything with
one ``executemany`` per table, in foreign-key order, inside the caller's
transaction: a group of independent inputs commits together or not at all,
and each input's rows are exactly the rows it would have written alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, insert, or_, update
from sqlalchemy.exc import DBAPIError

from contracts_lib.calendar import Calendar
from engine.core import StepResult
from engine.program import Program
from engine.runtime.models import (
    T_APPROVALS,
    T_INCIDENTS,
    T_INPUTS,
    T_INSTANCES,
    T_MIGRATIONS,
    T_OUTBOX,
    T_TIMERS,
    UTCDateTime,
)
from engine.runtime.results import Outcome, canonical_json, compact_json, iso
from engine.state import (
    ActionEffect,
    ApprovalEffect,
    Input,
    InstanceState,
    canonical_input,
    canonical_state_text,
)
from engine.values import to_json

__all__ = ["InstanceWork", "StaleInstance", "TimerKey", "Unit", "executemany",
           "instance_status", "live_timer_keys", "run_sql"]


#: (kind, name, due_at): "deadline"/deadline name or "approval"/approval id
TimerKey = tuple[str, str, dt.datetime]

_LIVE = or_(T_TIMERS.c.status == "pending", T_TIMERS.c.status == "held")
_TIMER_VALUES: dict[str, Any] = {
    "status": bindparam("v_status"), "fired_at": bindparam("v_fired_at"),
    "late_seconds": bindparam("v_late_seconds")}
_TIMER_BY_ID = update(T_TIMERS).where(T_TIMERS.c.id == bindparam("b_id"), _LIVE) \
    .values(_TIMER_VALUES)
#: a live row found by its natural key (unique among an instance's live rows)
_TIMER_BY_KEY = update(T_TIMERS).where(
    T_TIMERS.c.instance_id == bindparam("b_instance"), T_TIMERS.c.kind == bindparam("b_kind"),
    T_TIMERS.c.name == bindparam("b_name"), T_TIMERS.c.due_at == bindparam("b_due"), _LIVE,
).values(_TIMER_VALUES)


_INSERT_INSTANCES = insert(T_INSTANCES)
_INSERT_INPUTS = insert(T_INPUTS)
_INSERT_TIMERS = insert(T_TIMERS)
_INSERT_OUTBOX = insert(T_OUTBOX)
_UPDATE_INSTANCES = update(T_INSTANCES).where(
    T_INSTANCES.c.id == bindparam("b_id"), T_INSTANCES.c.seq == bindparam("b_seq"),
).values({c: bindparam(f"v_{c}") for c in (
    "contract_id", "calendar_version", "state", "status", "seq", "document",
    "state_hash", "updated_at")})
#: the same for an instance that still runs the contract and calendar it was loaded
#: with (all but a migration): the columns not set keep their index entries (SQLite
#: rewrites the entries of every indexed column a statement sets, and checks its
#: foreign key, even to the same value)
_UPDATE_INSTANCES_SAME = update(T_INSTANCES).where(
    T_INSTANCES.c.id == bindparam("b_id"), T_INSTANCES.c.seq == bindparam("b_seq"),
).values({c: bindparam(f"v_{c}") for c in (
    "state", "status", "seq", "document", "state_hash", "updated_at")})

#: (id(statement), dialect name, row keys) -> (SQL text, [(bind name, processor)])
_PLANS: dict[tuple[int, str, tuple[str, ...]], tuple[str, list[tuple[str, Any]]] | None] = {}


def _bind_processor(type_: Any, dialect: Any) -> Any:
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return sqlite_instant
    return type_.dialect_impl(dialect).bind_processor(dialect)


@functools.lru_cache(maxsize=4096)
def sqlite_instant(value: dt.datetime | None) -> str | None:
    """What :class:`UTCDateTime` stores on SQLite for ``value`` (SQLAlchemy's own
    processors give the same text: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), cached:
    the rows of one transaction share a few instants (now, the due instant)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use UTC instants")
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def run_sql(conn: Connection, sql: str, params: Sequence[Any], *,
            many: bool = False) -> Any:
    """Run driver-level ``sql`` in ``conn``'s transaction; the cursor (rows, rowcount).

    On SQLite through the DBAPI cursor directly: SQLAlchemy's execution context
    costs about 12 µs a statement, which a group of 8 events pays five times.
    Driver errors are raised as SQLAlchemy raises them (``IntegrityError``,
    ``OperationalError``, ...: ``DBAPIError.instance``), so callers see what they
    would have seen.  Statements run this way bypass SQLAlchemy's events and
    ``echo``.  Other dialects: ``exec_driver_sql``.
    """
    if conn.dialect.name != "sqlite":
        return conn.exec_driver_sql(sql, list(params) if many else tuple(params))
    dbapi = conn.dialect.loaded_dbapi
    try:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        return cursor
    except dbapi.Error as err:
        raise DBAPIError.instance(sql, params, err, dbapi.Error,
                                  dialect=conn.dialect) from err


def executemany(conn: Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> int:
    """``conn.execute(stmt, rows)`` for many rows; returns the rows changed.

    On SQLite (``qmark`` parameters) the statement is compiled once per shape
    and the rows go to the driver's ``executemany`` as tuples, each value
    through its column type's bind processor: the same SQL and the same stored
    values as SQLAlchemy's own executemany, without its per-row bookkeeping
    (half the cost of a group commit's writes).  Other dialects, and any
    statement whose parameters the rows do not all name, take the general path.
    ``stmt`` must be a module-level statement (its identity keys the cache).
    """
    dialect = conn.dialect
    keys = tuple(rows[0])
    plan_key = (id(stmt), dialect.name, keys)
    if plan_key not in _PLANS:
        plan = None
        if dialect.paramstyle == "qmark":
            compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
            names = list(compiled.positiontup or ())
            if names and all(n in keys for n in names):
                plan = (compiled.string, [(n, _bind_processor(compiled.binds[n].type, dialect))
                                          for n in names])
        _PLANS[plan_key] = plan
    plan = _PLANS[plan_key]
    if plan is None:
        return int(conn.execute(stmt, list(rows)).rowcount)
    sql, binds = plan
    params = [tuple([row[n] if p is None else p(row[n]) for n, p in binds]) for row in rows]
    return int(run_sql(conn, sql, params, many=True).rowcount)


class StaleInstance(Exception):
    """An instance row changed under us (its seq moved): the transaction is retried."""


def live_timer_keys(state: InstanceState) -> set[TimerKey]:
    """The timer rows an instance's state implies: its due timers and approvals."""
    keys: set[TimerKey] = {("deadline", t.deadline, t.due_at)
                           for t in state.timers if t.due_at is not None}
    keys.update(("approval", a.id, a.due_at) for a in state.approvals)
    return keys


def instance_status(program: Program, state: InstanceState) -> str:
    """``ended`` once the instance is in a terminal state with nothing left to fall due."""
    if state.state in program.terminal and not state.approvals \
            and all(t.due_at is None for t in state.timers):
        return "ended"
    return "active"


@dataclass(slots=True)
class InstanceWork:
    """One instance as the current transaction sees it (updated input by input)."""

    id: str
    contract_id: str
    contract_name: str
    calendar: Calendar
    program: Program
    status: str
    state: InstanceState | None
    state_hash: str
    orig_seq: int | None  # the stored seq when loaded; None when created in this unit
    #: pending (or, while faulted, held) timer rows: key -> None (a stored row, found by
    #: its key), its id (a stored row read from the table) or the row dict (inserted in
    #: this unit).  None until first needed: the rows mirror ``state`` (every write keeps
    #: them so, in the same transaction), so they are found by their keys, never read.
    pending: dict[TimerKey, int | dict[str, Any] | None] | None = None
    parties: str = "{}"
    court: str | None = None


@dataclass
class Unit:
    """The rows one transaction writes."""

    now: dt.datetime
    instance_inserts: dict[str, dict[str, Any]] = field(default_factory=dict)
    instance_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    timer_inserts: list[dict[str, Any]] = field(default_factory=list)
    timer_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    timer_key_updates: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    approval_inserts: dict[str, dict[str, Any]] = field(default_factory=dict)
    approval_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    faulted: list[str] = field(default_factory=list)
    migrations: list[dict[str, Any]] = field(default_factory=list)
    #: (instance id, seq, hash, state) to remember after commit
    states: list[tuple[str, int, str, InstanceState]] = field(default_factory=list)

    # --- recording one applied input --------------------------------------------
    def record(self, work: InstanceWork, inp: Input, kind: str, key: str | None,
               result: StepResult, *, decided_by: str | None = None,
               extra: dict[str, Any] | None = None) -> Outcome:
        """Record an applied input: log row, document, timers, outbox, approvals."""
        return self.record_logged(work, canonical_input(inp), inp.at, kind, key, result,
                                  decided_by=decided_by, extra=extra)

    def record_logged(self, work: InstanceWork, body: dict[str, Any] | str, at: dt.datetime,
                      kind: str, key: str | None, result: StepResult, *,
                      decided_by: str | None = None,
                      extra: dict[str, Any] | None = None) -> Outcome:
        """:meth:`record` for an input given as its log body (e.g. a migration); ``body``
        as data, or already as its canonical JSON text."""
        new = result.state
        doc = canonical_state_text(new)
        digest = hashlib.sha256(doc.encode("utf-8")).hexdigest()
        status = "faulted" if work.status == "faulted" else instance_status(work.program, new)
        effects = result.effects
        args = {id(e): e.args_json() for e in effects if isinstance(e, ActionEffect)}
        outcome = Outcome.applied(
            work.id, new.seq, new.state, status, iso(at), new.contract_id,
            tuple([e.to_data() for e in result.explanations]),
            tuple([{"key": e.key, "action": e.action, "args": args[id(e)]}
                   for e in effects if isinstance(e, ActionEffect)]) if effects else (),
            tuple([{"id": e.approval_id, "status": e.status, "action": e.action,
                    "role": e.role, "reason": e.reason}
                   for e in effects if isinstance(e, ApprovalEffect)]) if effects else (),
            extra or {},
        )
        self.inputs.append({
            "instance_id": work.id, "seq": new.seq, "kind": kind,
            "body": body if isinstance(body, str) else canonical_json(body),
            "idempotency_key": key, "result": compact_json(outcome.to_stored()),
            "state_hash": digest, "at": at, "recorded_at": self.now,
        })
        self._document(work, new, doc, digest, status)
        self.sync_timers(work, new, result)
        for effect in result.effects:
            if isinstance(effect, ActionEffect):
                self.outbox.append({
                    "key": effect.key, "instance_id": work.id, "action": effect.action,
                    "args": canonical_json(args[id(effect)]), "cite": effect.cite,
                    "rule_span": effect.span, "status": "pending", "attempts": 0,
                    "next_attempt_at": self.now, "created_at": self.now,
                })
            else:
                self._approval(work, new, effect, at, decided_by)
        work.state = new
        work.state_hash = digest
        work.status = status
        work.contract_id = new.contract_id
        self.states.append((work.id, new.seq, digest, new))
        return outcome

    def _document(self, work: InstanceWork, new: InstanceState, doc: str, digest: str,
                  status: str) -> None:
        if work.orig_seq is not None:
            old = work.state
            prev = self.instance_updates.get(work.id)
            if old is not None and old.contract_id == new.contract_id \
                    and old.calendar_version == new.calendar_version \
                    and (prev is None or "v_contract_id" not in prev):
                # contract and calendar as stored: leave those columns alone
                self.instance_updates[work.id] = {
                    "b_id": work.id, "b_seq": work.orig_seq, "v_state": new.state,
                    "v_status": status, "v_seq": new.seq, "v_document": doc,
                    "v_state_hash": digest, "v_updated_at": self.now}
                return
        values = {"contract_id": new.contract_id, "calendar_version": new.calendar_version,
                  "state": new.state, "status": status, "seq": new.seq, "document": doc,
                  "state_hash": digest, "updated_at": self.now}
        if work.orig_seq is None:
            row = self.instance_inserts.get(work.id)
            if row is None:
                row = {"id": work.id, "contract_name": work.contract_name,
                       "court": work.court, "parties": work.parties, "created_at": self.now}
                self.instance_inserts[work.id] = row
            row.update(values)
        else:
            self.instance_updates[work.id] = {
                "b_id": work.id, "b_seq": work.orig_seq,
                **{f"v_{k}": v for k, v in values.items()},
            }

    def sync_timers(self, work: InstanceWork, new: InstanceState,
                    result: StepResult | None) -> None:
        """Make the pending timer rows mirror ``new`` (its timers and approvals).

        Rows no longer wanted become ``fired`` (with how late) when this step
        fired them, else ``cancelled``; firings that had no row (an occurrence
        armed and fired in one step) are recorded as ``fired`` rows.
        """
        old = work.state
        fires = () if result is None else [
            e for e in result.explanations if e.kind == "deadline" or e.kind == "approval_timeout"]
        if not fires and result is not None and old is not None \
                and new.timers is old.timers and new.approvals is old.approvals:
            return  # the step kept the very timers and approvals: the rows still mirror them
        fired: Counter[TimerKey] = Counter()
        for e in fires:
            fired[("deadline" if e.kind == "deadline" else "approval", e.subject, e.at)] += 1
        pending = work.pending
        if pending is None:
            pending = work.pending = {} if old is None else dict.fromkeys(live_timer_keys(old))
        wanted = live_timer_keys(new)
        for k in [k for k in pending if k not in wanted]:
            ref = pending.pop(k)
            if fired[k] > 0:
                fired[k] -= 1
                params = self._fired(k[2])
            else:
                params = {"status": "cancelled", "fired_at": None, "late_seconds": None}
            values = {f"v_{n}": v for n, v in params.items()}
            if isinstance(ref, dict):
                ref.update(params)
            elif ref is None:
                self.timer_key_updates.append({"b_instance": work.id, "b_kind": k[0],
                                               "b_name": k[1], "b_due": k[2], **values})
            else:
                self.timer_updates[ref] = {"b_id": ref, **values}
        for k, count in fired.items():
            for _ in range(count):
                self.timer_inserts.append({"instance_id": work.id, "kind": k[0], "name": k[1],
                                           "due_at": k[2], **self._fired(k[2])})
        status = "held" if work.status == "faulted" else "pending"
        for k in wanted:
            if k not in pending:
                row = {"instance_id": work.id, "kind": k[0], "name": k[1], "due_at": k[2],
                       "status": status, "fired_at": None, "late_seconds": None}
                self.timer_inserts.append(row)
                pending[k] = row

    def _fired(self, due: dt.datetime) -> dict[str, Any]:
        late = max(0, int((self.now - due).total_seconds()))
        return {"status": "fired", "fired_at": self.now, "late_seconds": late}

    def _approval(self, work: InstanceWork, new: InstanceState, effect: ApprovalEffect,
                  at: dt.datetime, decided_by: str | None) -> None:
        if effect.status == "requested":
            pending = next((a for a in new.approvals if a.id == effect.approval_id), None)
            args = {} if pending is None else {k: to_json(v) for k, v in pending.args}
            self.approval_inserts[effect.approval_id] = {
                "id": effect.approval_id, "instance_id": work.id, "action": effect.action,
                "args": canonical_json(args), "role": effect.role, "status": "pending",
                "requested_at": at, "due_at": pending.due_at if pending else at,
                "decided_by": None, "decided_at": None, "reason": None,
            }
            return
        by = decided_by if effect.status in ("approved", "rejected") else None
        values = {"status": effect.status, "decided_by": by, "decided_at": at,
                  "reason": effect.reason or None}
        if effect.approval_id in self.approval_inserts:
            self.approval_inserts[effect.approval_id].update(values)
        else:
            self.approval_updates[effect.approval_id] = {
                "b_id": effect.approval_id, **{f"v_{k}": v for k, v in values.items()}}

    def fault(self, work: InstanceWork, message: str) -> None:
        """Open a ``deadline_fault`` incident and hold the instance until resolved."""
        self.incidents.append({"kind": "deadline_fault", "instance_id": work.id,
                               "outbox_id": None, "message": message, "status": "open",
                               "created_at": self.now})
        self.faulted.append(work.id)
        work.status = "faulted"

    # --- writing ---------------------------------------------------------------
    def flush(self, conn: Connection) -> None:
        """Write every collected row (one executemany per table, FK order)."""
        if self.instance_inserts:
            executemany(conn, _INSERT_INSTANCES, list(self.instance_inserts.values()))
        if self.instance_updates:
            full = [r for r in self.instance_updates.values() if "v_contract_id" in r]
            same = [r for r in self.instance_updates.values() if "v_contract_id" not in r]
            for stmt, rows in ((_UPDATE_INSTANCES, full), (_UPDATE_INSTANCES_SAME, same)):
                if not rows:
                    continue
                changed = executemany(conn, stmt, rows)
                if changed not in (-1, len(rows)):
                    raise StaleInstance(f"{len(rows) - changed} instance(s) changed "
                                        "under this transaction")
        if self.inputs:
            executemany(conn, _INSERT_INPUTS, self.inputs)
        if self.timer_updates:
            executemany(conn, _TIMER_BY_ID, list(self.timer_updates.values()))
        if self.timer_key_updates:
            executemany(conn, _TIMER_BY_KEY, self.timer_key_updates)
        if self.timer_inserts:
            executemany(conn, _INSERT_TIMERS, self.timer_inserts)
        if self.outbox:
            executemany(conn, _INSERT_OUTBOX, self.outbox)
        if self.approval_inserts:
            conn.execute(insert(T_APPROVALS), list(self.approval_inserts.values()))
        if self.approval_updates:
            stmt = update(T_APPROVALS).where(T_APPROVALS.c.id == bindparam("b_id")).values(
                status=bindparam("v_status"), decided_by=bindparam("v_decided_by"),
                decided_at=bindparam("v_decided_at"), reason=bindparam("v_reason"))
            conn.execute(stmt, list(self.approval_updates.values()))
        if self.migrations:
            conn.execute(insert(T_MIGRATIONS), self.migrations)
        if self.incidents:
            conn.execute(insert(T_INCIDENTS), self.incidents)
        if self.faulted:
            hold(conn, self.faulted, self.now)

    def earliest_new_due(self) -> dt.datetime | None:
        dues = [r["due_at"] for r in self.timer_inserts if r["status"] == "pending"]
        return min(dues) if dues else None


def hold(conn: Connection, instance_ids: Sequence[str], now: dt.datetime) -> None:
    """Mark instances faulted and hold their pending timers (skipped until resolved)."""
    conn.execute(update(T_INSTANCES).where(T_INSTANCES.c.id.in_(instance_ids))
                 .values(status="faulted", updated_at=now))
    conn.execute(update(T_TIMERS).where(T_TIMERS.c.instance_id.in_(instance_ids),
                                        T_TIMERS.c.status == "pending")
                 .values(status="held"))
