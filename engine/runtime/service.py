"""The durable engine: the one place transactions happen.

Every write is one transaction that contains everything the input changed:
the input log row, the instance document and its hash, the timer rows (a
diff), the outbox rows (one per action) and the approval rows.  Inputs of
one instance are serialised by a lock on its row (``SELECT ... FOR UPDATE``
on PostgreSQL; ``BEGIN IMMEDIATE`` and one engine per file on SQLite), and
the instance document is read *after* taking the lock, so every input is
applied to the latest state exactly once.  Due timers are claimed by locking
their instances with ``FOR UPDATE SKIP LOCKED``: several engine processes
sharing one PostgreSQL never fire the same deadline twice, and never wait on
each other.  See ``docs/runtime.md`` for the argument in full.

All methods return plain values (:class:`~engine.runtime.results.Outcome`,
dicts, lists) ready for an HTTP API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError

from contracts_lib.calendar import Calendar, load_calendar
from engine.core import Fault, Rejected, StepResult, step
from engine.explain import render
from engine.program import Program, compile_contract
from engine.runtime.carry import carry_over, recalendar
from engine.runtime.clock import Clock, SystemClock, check_clock
from engine.runtime.db import Database, open_database
from engine.runtime.errors import DeployRefused, EngineError, MigrationRefused, NotFound
from engine.runtime.models import (
    T_APPROVALS,
    T_INCIDENTS,
    T_INPUTS,
    T_INSTANCES,
    T_MIGRATIONS,
    T_OUTBOX,
    T_TIMERS,
    T_VERSIONS,
    Instance,
)
from engine.runtime.results import Outcome, VersionInfo, canonical_json, iso
from engine.runtime.unit import InstanceWork, StaleInstance, Unit, run_sql
from engine.state import (
    Create,
    Decision,
    Event,
    Input,
    InstanceState,
    Tick,
    canonical_state,
    input_from_json,
    state_from_json,
)

if TYPE_CHECKING:
    from engine.testing.gate import DeployGate
    from ledger_adapter.protocol import Ledger

__all__ = ["EngineService", "EventSubmission", "NewInstance", "TransactionHook"]

log = logging.getLogger("jrule.runtime")

MAX_KEY = 200
_RETRIES = 4
_PROBES = 250  # (instance, key) pairs looked up per statement
# The hot path's statements, built once (SQLAlchemy caches their compiled form).
_I, _T, _N = T_INSTANCES, T_TIMERS, T_INPUTS
_Q_OWNERS = select(T_APPROVALS.c.id, T_APPROVALS.c.instance_id).where(
    T_APPROVALS.c.id.in_(bindparam("ids", expanding=True)))
#: the instances a transaction works on (``_load``: ids appended, then ``)``)
_SQL_INSTANCES = (f"SELECT id, contract_id, contract_name, calendar_version, seq, state_hash, "
                  f"status FROM {T_INSTANCES.name} WHERE id IN (")
_LOAD_CHUNK = 500
_Q_DOCUMENTS = select(_I.c.id, _I.c.document).where(_I.c.id.in_(bindparam("ids", expanding=True)))
_Q_PENDING = select(_T.c.id, _T.c.instance_id, _T.c.kind, _T.c.name, _T.c.due_at).where(
    _T.c.instance_id.in_(bindparam("ids", expanding=True)),
    or_(_T.c.status == "pending", _T.c.status == "held"))
_Q_NEXT_DUE = select(func.min(_T.c.due_at)).where(_T.c.status == "pending")


@dataclass(frozen=True)
class EventSubmission:
    """One event for :meth:`EngineService.submit_events`."""

    instance_id: str
    event: str
    role: str
    payload: Mapping[str, Any] | str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class NewInstance:
    """One instance for :meth:`EngineService.create_instances`."""

    contract_name: str
    instance_id: str
    terms: Mapping[str, Any]
    parties: Mapping[str, str] | None = None
    court: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class _DecisionCmd:
    approval_id: str
    role: str
    approve: bool
    reason: str
    key: str | None
    by: str | None


@dataclass(frozen=True)
class _TickCmd:
    instance_id: str


_Command = NewInstance | EventSubmission | _DecisionCmd | _TickCmd
#: ``hook(conn, commands, outcomes, input_rows)``: see :meth:`EngineService.on_transaction`
TransactionHook = Callable[[Connection, Sequence[Any], list[Outcome], list[dict[str, Any]]],
                           None]


class EngineService:
    """The durable runtime around the pure core.

    ``url``: ``sqlite:///path.sqlite3`` (the embedded default; one engine per
    file) or ``postgresql://...`` (several engines may share it).  ``clock``:
    where instants come from (a :class:`VirtualClock` is refused in production
    mode).  ``calendar``: the calendar new instances run with; ``calendars``:
    further versions that running instances may have been pinned to.
    """

    def __init__(self, url: str | URL, clock: Clock | None = None,
                 calendar: Calendar | None = None, mode: str = "production", *,
                 calendars: Iterable[Calendar] = (), migrate: bool = True,
                 engine_lock: bool = True, cache_size: int = 10_000,
                 db: Database | None = None, ledger: Ledger | None = None,
                 deploy_gate: DeployGate | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        #: runs a rule set's tests and properties before it is deployed (see
        #: engine.testing.gate); refuses the deployment by raising DeployRefused
        self.deploy_gate = deploy_gate
        check_clock(self.clock, mode)
        self.mode = mode
        self.calendar = calendar or load_calendar("cn")
        self._calendars = {c.version: c for c in (self.calendar, *calendars)}
        self.db = db or open_database(url, engine_lock=engine_lock, migrate=migrate)
        self._programs: dict[str, Program] = {}
        self._names: dict[str, str] = {}
        self._cache: OrderedDict[str, tuple[int, str, InstanceState]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._listeners: list[Callable[[dt.datetime | None], None]] = []
        self._hooks: list[TransactionHook] = []
        #: the tamper-evident ledger every applied input is recorded in (optional)
        self.ledger = ledger
        if ledger is not None:
            # The ledger's tables come with the schema (Alembic revision 0003).
            from sqlalchemy import inspect

            if not inspect(self.db.engine).has_table("ledger_head"):
                raise EngineError("the store has no ledger tables: bring its schema up to "
                                  "date (open it with migrate=True, or engine.runtime.db."
                                  "upgrade(url)) before starting the engine with a ledger")
            ledger.initialize()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> EngineService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, listener: Callable[[dt.datetime | None], None]) -> None:
        """Call ``listener(earliest newly armed due instant)`` after each commit that arms one."""
        self._listeners.append(listener)

    def on_transaction(self, hook: TransactionHook) -> None:
        """Run ``hook(conn, commands, outcomes, input_rows)`` inside every input transaction.

        It runs last, after the ledger records were appended (each input-log row
        dict then carries its ``ledger_index``), so whatever it writes commits or
        rolls back with the inputs (e.g. the HTTP service's event signatures).
        """
        self._hooks.append(hook)

    def append_to_ledger(self, conn: Connection, records: Sequence[Any]) -> list[int]:
        """Append ``records`` to the ledger in ``conn``'s (writer) transaction; their indexes."""
        if self.ledger is None:
            raise EngineError("this engine runs without a ledger")
        return self._append(conn, records)

    # ================================================================== versions
    def deploy(self, source_bytes: bytes, filename: str, deployed_by: str,
               report_hash: str | None = None, *, tests: bytes | None = None,
               reviewer: str | None = None) -> list[str]:
        """Compile and store every contract of a rule set; returns their contract ids.

        Refused with the compiler's diagnostics when the source has errors.
        With a ``deploy_gate``, the rule set's tests (``tests``: its
        ``.test.jrule`` text) and properties run first; a failure refuses the
        deployment, a pass stores the report, its hash and ``reviewer`` with
        the version and logs them on the ledger.  Deploying an IR that is
        already stored changes nothing (idempotent).
        """
        passed = None
        if self.deploy_gate is not None:
            passed = self.deploy_gate(source_bytes, filename, tests, reviewer)
            report_hash = passed.report_hash
        from rules_dsl.compiler import compile_bytes
        from rules_dsl.diagnostics import diagnostics_to_json, render_all

        result = compile_bytes(source_bytes, filename)
        if result.ir is None:
            diagnostics = result.check.diagnostics
            raise DeployRefused(
                f"{filename} does not compile:\n" + render_all(diagnostics, result.check.sources),
                json.loads(diagnostics_to_json(diagnostics)))
        ir = result.ir
        contracts = ir.to_data()["contracts"]
        ruleset = ir.canonical.decode("utf-8")
        for attempt in range(_RETRIES):
            try:
                with self.db.write() as conn:
                    if self.db.is_postgres:
                        conn.execute(text("LOCK TABLE contract_versions IN EXCLUSIVE MODE"))
                    ids = [c["id"] for c in contracts]
                    have = set(conn.scalars(select(T_VERSIONS.c.id)
                                            .where(T_VERSIONS.c.id.in_(ids))))
                    seq = int(conn.scalar(select(func.coalesce(
                        func.max(T_VERSIONS.c.deploy_seq), 0))) or 0)
                    now = self.clock.now()
                    rows = []
                    for c in contracts:
                        if c["id"] in have:
                            continue
                        seq += 1
                        rows.append({
                            "id": c["id"], "ruleset_id": ir.id, "name": c["name"],
                            "version": c.get("version") or "", "title": c.get("title") or "",
                            "ir": canonical_json(c), "ruleset_ir": ruleset,
                            "source": result.check.text, "deploy_seq": seq,
                            "deployed_at": now, "deployed_by": deployed_by,
                            "report_hash": report_hash,
                            "test_report": passed.report_json if passed else None,
                            "reviewed_by": reviewer,
                        })
                    if rows:
                        conn.execute(insert(T_VERSIONS), rows)
                        if self.ledger is not None:
                            from engine.runtime.ledger import deployment_record

                            self._append(conn, [deployment_record(r) for r in rows])
                            if passed is not None:
                                self._record_report(conn, rows, passed.record(ir.id, now))
                self._names.clear()
                return ids
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _record_report(self, conn: Connection, rows: list[dict[str, Any]], record: Any) -> None:
        """Log the passing test report (hash + reviewer) and note where, per version."""
        index = self._append(conn, [record])[0]
        conn.execute(update(T_VERSIONS).where(T_VERSIONS.c.id.in_([r["id"] for r in rows]))
                     .values(report_ledger_index=index))

    def versions(self, name: str | None = None) -> list[VersionInfo]:
        """Deployed versions (of one contract name), oldest first."""
        q = select(T_VERSIONS.c.id, T_VERSIONS.c.name, T_VERSIONS.c.version, T_VERSIONS.c.title,
                   T_VERSIONS.c.ruleset_id, T_VERSIONS.c.deploy_seq, T_VERSIONS.c.deployed_at,
                   T_VERSIONS.c.deployed_by, T_VERSIONS.c.report_hash,
                   T_VERSIONS.c.reviewed_by)
        if name is not None:
            q = q.where(T_VERSIONS.c.name == name)
        with self.db.read() as conn:
            rows = conn.execute(q.order_by(T_VERSIONS.c.deploy_seq)).all()
        return [VersionInfo(r.id, r.name, r.version, r.title, r.ruleset_id, r.deploy_seq,
                            iso(r.deployed_at) or "", r.deployed_by, r.report_hash,
                            r.reviewed_by) for r in rows]

    def latest(self, name: str) -> VersionInfo | None:
        """The version new instances of ``name`` get (the most recently deployed)."""
        found = self.versions(name)
        return found[-1] if found else None

    def program(self, contract_id: str, conn: Connection | None = None) -> Program:
        """The compiled program of a deployed contract (built once, cached)."""
        program = self._programs.get(contract_id)
        if program is not None:
            return program
        q = select(T_VERSIONS.c.ir).where(T_VERSIONS.c.id == contract_id)
        if conn is None:
            with self.db.read() as c:
                ir = c.scalar(q)
        else:
            ir = conn.scalar(q)
        if ir is None:
            raise NotFound(f"no deployed contract {contract_id}")
        program = compile_contract(json.loads(ir))
        self._programs[contract_id] = program
        return program

    def calendar_for(self, version: str) -> Calendar:
        cal = self._calendars.get(version)
        if cal is None:
            raise EngineError(f"calendar {version} is not loaded in this engine (loaded: "
                              f"{', '.join(sorted(self._calendars))}); start it with that "
                              "calendar version")
        return cal

    # ================================================================== inputs
    def create_instance(self, contract_name: str, instance_id: str,
                        terms_json: Mapping[str, Any], parties: Mapping[str, str] | None = None,
                        court: str | None = None, key: str | None = None) -> Outcome:
        """Create an instance of the newest deployed version of ``contract_name``.

        Idempotent: the same instance id (with the same key, or the same terms
        when no key is given) returns the first result.
        """
        return self._execute([NewInstance(contract_name, instance_id, terms_json, parties,
                                          court, key)])[0]

    def create_instances(self, batch: Iterable[NewInstance]) -> list[Outcome]:
        """Create many instances in one transaction (each as :meth:`create_instance`)."""
        return self._execute(list(batch))

    def submit_event(self, instance_id: str, event: str, role: str,
                     payload_json: Mapping[str, Any] | str,
                     idempotency_key: str | None = None) -> Outcome:
        """Apply an event now.  The same key twice: applied once, first result returned."""
        return self._execute([EventSubmission(instance_id, event, role, payload_json,
                                              idempotency_key)])[0]

    def submit_events(self, batch: Iterable[EventSubmission]) -> list[Outcome]:
        """Apply many independent events in one transaction (group commit).

        Each event is applied, refused or recognised as a duplicate exactly as
        :meth:`submit_event` would; the transaction commits them together.  If
        the group cannot commit (a conflict with another engine), each event is
        retried in its own transaction.
        """
        return self._execute(list(batch))

    def decide(self, approval_id: str, role: str, approve: bool, reason: str = "",
               key: str | None = None, by: str | None = None) -> Outcome:
        """Confirm or reject a pending approval as ``role`` (``by``: the officer's name)."""
        return self._execute([_DecisionCmd(approval_id, role, approve, reason, key, by)])[0]

    # --- the transaction ---------------------------------------------------------
    def _execute(self, commands: Sequence[_Command]) -> list[Outcome]:
        if not commands:
            return []
        for attempt in range(_RETRIES):
            try:
                unit = Unit(self.clock.now())
                with self.db.write() as conn:
                    outcomes = self._apply_all(conn, unit, commands)
                    self._record(conn, unit)
                    unit.flush(conn)
                    for hook in self._hooks:
                        hook(conn, commands, outcomes, unit.inputs)
                self._committed(unit)
                return outcomes
            except (IntegrityError, StaleInstance, DBAPIError) as exc:
                if isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError) \
                        and not _retryable(exc):
                    raise
                if len(commands) > 1:
                    return [o for c in commands for o in self._execute([c])]
                if attempt == _RETRIES - 1:
                    raise
                log.info("retrying after a conflict: %s", exc)
        raise AssertionError("unreachable")

    # --- the ledger --------------------------------------------------------------
    def _append(self, conn: Connection, records: Sequence[Any]) -> list[int]:
        """Append ``records`` to the ledger inside ``conn``'s transaction; their indexes."""
        assert self.ledger is not None
        # The ledger joins the connection's transaction directly (a Session around it
        # cost more than the ledger's own statements).
        entries = self.ledger.append(records, session=conn)
        return [e.index for e in entries]

    def _record(self, conn: Connection, unit: Unit) -> None:
        """Log the unit's inputs in the ledger, before its rows are written.

        Each input-log row gets its records, in log order (``transition``,
        ``migration``, one ``action`` per outbox row it wrote, one
        ``approval``/``approval_decision`` per approval it changed: see
        ``engine/runtime/ledger.py``), made from the rows the unit is about to
        write; the first one's index goes into the row's ``ledger_index``, so
        the row is inserted with it (no second write of each input row).  Runs
        inside the writer transaction: a rollback removes both the rows and the
        ledger entries.
        """
        if self.ledger is None or not unit.inputs:
            return
        from engine.runtime.ledger import unit_records

        records, positions = unit_records(unit)
        indexes = self._append(conn, records)
        for row, i in zip(unit.inputs, positions, strict=True):
            row["ledger_index"] = indexes[i]

    def _committed(self, unit: Unit) -> None:
        with self._cache_lock:
            for iid, seq, digest, state in unit.states:
                self._cache[iid] = (seq, digest, state)
                self._cache.move_to_end(iid)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        due = unit.earliest_new_due()
        if due is not None:
            for listener in list(self._listeners):
                listener(due)

    def _apply_all(self, conn: Connection, unit: Unit,
                   commands: Sequence[_Command]) -> list[Outcome]:
        approvals = self._approval_owners(conn, [c.approval_id for c in commands
                                                 if isinstance(c, _DecisionCmd)])
        ids: list[str] = []
        for c in commands:
            if isinstance(c, _DecisionCmd):
                if c.approval_id in approvals:
                    ids.append(approvals[c.approval_id])
            else:
                ids.append(c.instance_id)
        works = self._load(conn, ids, lock=self.db.is_postgres)
        keys = self._stored_keys(conn, [(c.instance_id, c.idempotency_key) for c in commands
                                        if isinstance(c, EventSubmission) and c.idempotency_key]
                                 + [(approvals[c.approval_id], c.key) for c in commands
                                    if isinstance(c, _DecisionCmd) and c.key
                                    and c.approval_id in approvals])
        seen: dict[tuple[str, str], Outcome] = {}
        outcomes: list[Outcome] = []
        for c in commands:
            if isinstance(c, NewInstance):
                outcomes.append(self._create(conn, unit, works, c))
            elif isinstance(c, EventSubmission):
                outcomes.append(self._event(unit, works, keys, seen, c))
            elif isinstance(c, _DecisionCmd):
                outcomes.append(self._decision(unit, works, approvals, keys, seen, c))
            else:
                work = works.get(c.instance_id)
                outcomes.append(self._tick(conn, unit, work) if work else
                                Outcome.refused(c.instance_id, "no_instance", "no such instance"))
        return outcomes

    def _approval_owners(self, conn: Connection, approval_ids: list[str]) -> dict[str, str]:
        if not approval_ids:
            return {}
        rows = conn.execute(_Q_OWNERS, {"ids": approval_ids}).all()
        return {r.id: r.instance_id for r in rows}

    def _stored_keys(self, conn: Connection,
                     pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The stored results of the (instance, idempotency key) pairs already applied.

        One probe of the unique index ``(instance_id, idempotency_key)`` per pair
        (``(a = ? AND b = ?) OR ...``: both SQLite and PostgreSQL answer each term
        from the index), so the cost follows the batch, not the instances' history.
        """
        if not pairs:
            return {}
        wanted = sorted(set(pairs))
        mark = "?" if self.db.engine.dialect.paramstyle == "qmark" else "%s"
        term = f"(instance_id = {mark} AND idempotency_key = {mark})"
        found: dict[tuple[str, str], str] = {}
        for start in range(0, len(wanted), _PROBES):
            chunk = wanted[start:start + _PROBES]
            sql = ("SELECT instance_id, idempotency_key, result FROM inputs WHERE "
                   + " OR ".join([term] * len(chunk)))
            params = tuple(v for pair in chunk for v in pair)
            for iid, key, result in run_sql(conn, sql, params).fetchall():
                found[(iid, key)] = result
        return found

    def _load(self, conn: Connection, ids: Sequence[str], *,
              lock: bool) -> dict[str, InstanceWork]:
        """Read (and on PostgreSQL lock, in id order) the instances ``ids``.

        One statement per 500 ids, written directly (``id IN (?, ...)``; SQLAlchemy
        would compile the expanded statement anew for each group), rows read as
        plain tuples.
        """
        unique = sorted(set(ids))
        if not unique:
            return {}
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        rows: list[Any] = []
        for start in range(0, len(unique), _LOAD_CHUNK):
            chunk = unique[start:start + _LOAD_CHUNK]
            sql = _SQL_INSTANCES + ",".join([mark] * len(chunk)) + ")"
            if lock:
                sql += " ORDER BY id FOR UPDATE"
            rows.extend(run_sql(conn, sql, chunk).fetchall())
        states: dict[str, InstanceState] = {}
        missing: list[str] = []
        with self._cache_lock:
            get = self._cache.get
            for iid, _c, _n, _v, seq, digest, _s in rows:
                hit = get(iid)
                if hit is not None and hit[0] == seq and hit[1] == digest:
                    states[iid] = hit[2]
                else:
                    missing.append(iid)
        if missing:
            contracts = {r[0]: r[1] for r in rows}
            for iid, doc in conn.execute(_Q_DOCUMENTS, {"ids": missing}):
                program = self.program(contracts[iid], conn)
                states[iid] = state_from_json(json.loads(doc), program)
        works: dict[str, InstanceWork] = {}
        programs: dict[str, Program] = {}
        for iid, contract_id, name, calendar, seq, digest, status in rows:
            known = programs.get(contract_id)
            if known is None:
                known = programs[contract_id] = self.program(contract_id, conn)
            program = known
            works[iid] = InstanceWork(
                id=iid, contract_id=contract_id, contract_name=name,
                calendar=self.calendar_for(calendar), program=program, status=status,
                state=states[iid], state_hash=digest, orig_seq=seq)
        return works

    # --- one input ---------------------------------------------------------------
    def _at(self, unit: Unit, work: InstanceWork) -> dt.datetime:
        assert work.state is not None
        return max(unit.now, work.state.clock)

    def _step(self, unit: Unit, work: InstanceWork, inp: Input) -> StepResult | Outcome:
        """Run the core; a refusal or a fault becomes a refused :class:`Outcome`."""
        try:
            return step(work.program, work.calendar, work.state, inp)
        except Rejected as r:
            log.info("refused %s for %s: %s", type(inp).__name__, work.id, r)
            return Outcome.refused(work.id, r.code, r.message)
        except Fault as f:
            message = f.describe()
            unit.fault(work, message)
            log.warning("instance %s faulted: %s", work.id, message)
            return Outcome.refused(work.id, "deadline_fault",
                                   "a deadline that fell due cannot be evaluated; the instance "
                                   f"waits for a person (incident opened): {message}")

    def _create(self, conn: Connection, unit: Unit, works: dict[str, InstanceWork],
                c: NewInstance) -> Outcome:
        if c.key is not None and len(c.key) > MAX_KEY:
            return Outcome.refused(c.instance_id, "bad_key", f"keys are at most {MAX_KEY} chars")
        existing = works.get(c.instance_id)
        if existing is not None:
            return self._existing_create(conn, unit, existing, c)
        contract_id = self._latest_id(conn, c.contract_name)
        if contract_id is None:
            return Outcome.refused(c.instance_id, "unknown_contract",
                                   f"no deployed contract named `{c.contract_name}`")
        program = self.program(contract_id, conn)
        inp = Create(c.instance_id, dict(c.terms) if isinstance(c.terms, Mapping) else c.terms,
                     unit.now)
        try:
            result = step(program, self.calendar, None, inp)
        except Rejected as r:
            return Outcome.refused(c.instance_id, r.code, r.message)
        work = InstanceWork(
            id=c.instance_id, contract_id=contract_id, contract_name=c.contract_name,
            calendar=self.calendar, program=program, status="active", state=None,
            state_hash="", orig_seq=None, parties=canonical_json(dict(c.parties or {})),
            court=c.court)
        works[c.instance_id] = work
        return unit.record(work, inp, "create", c.key, result)

    def _existing_create(self, conn: Connection, unit: Unit, work: InstanceWork,
                         c: NewInstance) -> Outcome:
        if work.orig_seq is None:  # created earlier in this same unit
            first = unit.inputs[next(n for n, r in enumerate(unit.inputs)
                                     if r["instance_id"] == c.instance_id and r["seq"] == 1)]
            body, key, result = first["body"], first["idempotency_key"], first["result"]
        else:
            row = conn.execute(select(T_INPUTS.c.body, T_INPUTS.c.idempotency_key,
                                      T_INPUTS.c.result)
                               .where(T_INPUTS.c.instance_id == c.instance_id,
                                      T_INPUTS.c.seq == 1)).one()
            body, key, result = row.body, row.idempotency_key, row.result
        same = (key == c.key) if c.key is not None else \
            json.loads(body)["terms"] == json.loads(canonical_json(dict(c.terms)))
        if same and work.contract_name == c.contract_name:
            return Outcome.from_json(json.loads(result), duplicate=True)
        return Outcome.refused(c.instance_id, "exists",
                               f"instance `{c.instance_id}` already exists")

    def _latest_id(self, conn: Connection, name: str) -> str | None:
        return conn.scalar(select(T_VERSIONS.c.id).where(T_VERSIONS.c.name == name)
                           .order_by(T_VERSIONS.c.deploy_seq.desc()).limit(1))

    def _usable(self, work: InstanceWork | None, instance_id: str) -> Outcome | None:
        if work is None:
            return Outcome.refused(instance_id, "no_instance", f"no instance `{instance_id}`")
        if work.status == "faulted":
            return Outcome.refused(instance_id, "faulted",
                                   "the instance is held after a deadline fault; a person "
                                   "must resolve the incident first")
        return None

    def _event(self, unit: Unit, works: dict[str, InstanceWork],
               keys: dict[tuple[str, str], str], seen: dict[tuple[str, str], Outcome],
               c: EventSubmission) -> Outcome:
        key = c.idempotency_key
        if key is not None:
            if len(key) > MAX_KEY:
                return Outcome.refused(c.instance_id, "bad_key",
                                       f"idempotency keys are at most {MAX_KEY} characters")
            done = seen.get((c.instance_id, key))
            if done is not None:
                return replace(done, duplicate=True)
            stored = keys.get((c.instance_id, key))
            if stored is not None:
                return Outcome.from_json(json.loads(stored), duplicate=True)
        work = works.get(c.instance_id)
        refused = self._usable(work, c.instance_id)
        if refused is not None:
            return refused
        assert work is not None
        payload = c.payload
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError as exc:
                return Outcome.refused(c.instance_id, "bad_payload", f"payload is not JSON: {exc}")
        inp = Event(c.event, c.role, payload, self._at(unit, work), key or "")
        result = self._step(unit, work, inp)
        if isinstance(result, Outcome):
            return result
        outcome = unit.record(work, inp, "event", key, result)
        if key is not None:
            seen[(c.instance_id, key)] = outcome
        return outcome

    def _decision(self, unit: Unit, works: dict[str, InstanceWork], owners: dict[str, str],
                  keys: dict[tuple[str, str], str], seen: dict[tuple[str, str], Outcome],
                  c: _DecisionCmd) -> Outcome:
        instance_id = owners.get(c.approval_id)
        if instance_id is None:
            return Outcome.refused("", "unknown_approval", f"no approval `{c.approval_id}`")
        if c.key is not None:
            done = seen.get((instance_id, c.key))
            if done is not None:
                return replace(done, duplicate=True)
            stored = keys.get((instance_id, c.key))
            if stored is not None:
                return Outcome.from_json(json.loads(stored), duplicate=True)
        work = works.get(instance_id)
        refused = self._usable(work, instance_id)
        if refused is not None:
            return refused
        assert work is not None
        inp = Decision(c.approval_id, c.role, c.approve, c.reason, self._at(unit, work))
        result = self._step(unit, work, inp)
        if isinstance(result, Outcome):
            return result
        outcome = unit.record(work, inp, "decision", c.key, result, decided_by=c.by or c.role)
        if c.key is not None:
            seen[(instance_id, c.key)] = outcome
        return outcome

    def _tick(self, conn: Connection, unit: Unit, work: InstanceWork) -> Outcome:
        if work.status != "active" or work.state is None:
            return Outcome.refused(work.id, work.status, f"instance is {work.status}")
        inp = Tick(self._at(unit, work))
        result = self._step(unit, work, inp)
        if isinstance(result, Outcome):
            if result.code == "nothing_due":
                # claimed for a row the state does not have: repair the mirror, so a
                # stale row can never keep waking the engine
                rows = conn.execute(_Q_PENDING, {"ids": [work.id]}).all()
                work.pending = {(r.kind, r.name, r.due_at): r.id for r in rows}
                unit.sync_timers(work, work.state, None)
            return result
        return unit.record(work, inp, "tick", None, result)

    # ================================================================== deadlines
    def next_due(self) -> dt.datetime | None:
        """The earliest pending due instant (one indexed ``min``; nothing else is read)."""
        with self.db.read() as conn:
            due: dt.datetime | None = conn.scalar(_Q_NEXT_DUE)
        return due

    def run_due(self, limit: int = 1000, batch: int = 200) -> int:
        """Fire everything due now; returns how many deadlines/timeouts fired.

        Claims instances with due timers (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL), applies one ``Tick(now)`` to each (the core fires all that
        is due, in legal order), and commits each batch as one transaction.
        """
        due = self.next_due()  # a read: no write transaction when nothing is due
        if due is None or due > self.clock.now():
            return 0
        fired = 0
        claimed = 0
        while claimed < limit:
            n_claimed, n_fired = self._run_due_batch(min(batch, limit - claimed))
            claimed += n_claimed
            fired += n_fired
            if n_claimed == 0:
                break
        return fired

    def _claim(self, conn: Connection, now: dt.datetime, n: int) -> list[str]:
        t, i = T_TIMERS, T_INSTANCES
        q = (select(t.c.instance_id).join(i, i.c.id == t.c.instance_id)
             .where(t.c.status == "pending", t.c.due_at <= now, i.c.status == "active")
             .order_by(t.c.due_at).limit(n))
        if self.db.is_postgres:
            q = q.with_for_update(of=i, skip_locked=True)
        return list(dict.fromkeys(conn.scalars(q)))

    def _run_due_batch(self, n: int) -> tuple[int, int]:
        for attempt in range(_RETRIES):
            try:
                unit = Unit(self.clock.now())
                with self.db.write() as conn:
                    ids = self._claim(conn, unit.now, n)
                    if not ids:
                        return 0, 0
                    works = self._load(conn, ids, lock=False)
                    fired = 0
                    for iid in ids:
                        outcome = self._tick(conn, unit, works[iid])
                        fired += sum(1 for e in outcome.explained
                                     if e["kind"] in ("deadline", "approval_timeout"))
                    self._record(conn, unit)
                    unit.flush(conn)
                self._committed(unit)
                return len(ids), fired
            except (IntegrityError, StaleInstance, DBAPIError) as exc:
                if isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError) \
                        and not _retryable(exc):
                    raise
                if attempt == _RETRIES - 1:
                    raise
                log.info("retrying due batch after a conflict: %s", exc)
        raise AssertionError("unreachable")

    def resolve_fault(self, instance_id: str, by: str, note: str) -> dict[str, Any]:
        """A person resolved a deadline fault: re-activate the instance and its timers."""
        now = self.clock.now()
        with self.db.write() as conn:
            status = conn.scalar(select(T_INSTANCES.c.status)
                                 .where(T_INSTANCES.c.id == instance_id)
                                 .with_for_update(of=T_INSTANCES))
            if status is None:
                raise NotFound(f"no instance `{instance_id}`")
            if status != "faulted":
                raise EngineError(f"instance `{instance_id}` is {status}, not faulted")
            conn.execute(update(T_INSTANCES).where(T_INSTANCES.c.id == instance_id)
                         .values(status="active", updated_at=now))
            conn.execute(update(T_TIMERS).where(T_TIMERS.c.instance_id == instance_id,
                                                T_TIMERS.c.status == "held")
                         .values(status="pending"))
            open_faults = (T_INCIDENTS.c.instance_id == instance_id,
                           T_INCIDENTS.c.status == "open",
                           T_INCIDENTS.c.kind == "deadline_fault")
            ids = list(conn.scalars(select(T_INCIDENTS.c.id).where(*open_faults)))
            n = conn.execute(update(T_INCIDENTS).where(*open_faults).values(
                status="resolved", resolved_by=by, resolved_at=now,
                resolution=f"resolved: {note}")).rowcount
            if self.ledger is not None and ids:  # who resolved them, on the ledger
                from engine.runtime.ledger import incident_record

                rows = conn.execute(select(T_INCIDENTS).where(T_INCIDENTS.c.id.in_(ids))
                                    .order_by(T_INCIDENTS.c.id)).mappings().all()
                self._append(conn, [incident_record(dict(r), None) for r in rows])
        for listener in list(self._listeners):
            listener(now)
        return {"instance": instance_id, "status": "active", "incidents_resolved": n}

    # ================================================================== reading
    def _doc_row(self, conn: Connection, instance_id: str) -> Any:
        row = conn.execute(select(T_INSTANCES).where(T_INSTANCES.c.id == instance_id)).first()
        if row is None:
            raise NotFound(f"no instance `{instance_id}`")
        return row

    def state(self, instance_id: str) -> dict[str, Any]:
        """The stored instance: its state document and where it stands."""
        with self.db.read() as conn:
            r = self._doc_row(conn, instance_id)
        return {
            "instance": r.id, "contract": r.contract_id, "contract_name": r.contract_name,
            "calendar": r.calendar_version, "state": r.state, "status": r.status, "seq": r.seq,
            "state_hash": r.state_hash, "document": json.loads(r.document),
            "parties": json.loads(r.parties), "court": r.court,
            "created_at": iso(r.created_at), "updated_at": iso(r.updated_at),
        }

    def timeline(self, instance_id: str) -> list[dict[str, Any]]:
        """The input log with each input's explanations (Chinese and English)."""
        with self.db.read() as conn:
            self._doc_row(conn, instance_id)
            rows = conn.execute(select(T_INPUTS).where(T_INPUTS.c.instance_id == instance_id)
                                .order_by(T_INPUTS.c.seq)).all()
        out = []
        for r in rows:
            result = json.loads(r.result)
            out.append({
                "seq": r.seq, "kind": r.kind, "at": iso(r.at), "recorded_at": iso(r.recorded_at),
                "input": json.loads(r.body), "idempotency_key": r.idempotency_key,
                "state_hash": r.state_hash, "state": result.get("state"),
                "explanations": [render(e) for e in result.get("explanations", ())],
                "actions": result.get("actions", []), "approvals": result.get("approvals", []),
                "extra": result.get("extra", {}),
            })
        return out

    def pending_deadlines(self, instance_id: str) -> list[dict[str, Any]]:
        """Running deadlines (and suspended ones), each with how it was computed."""
        with self.db.read() as conn:
            r = self._doc_row(conn, instance_id)
            doc = json.loads(r.document)
            timers = doc["timers"]
            names = {t["deadline"] for t in timers}
            notes: dict[str, dict[str, Any]] = {}
            rows = conn.execute(select(T_INPUTS.c.seq, T_INPUTS.c.result)
                                .where(T_INPUTS.c.instance_id == instance_id)
                                .order_by(T_INPUTS.c.seq.desc()))
            for seq, result_text in rows:
                if names <= notes.keys():
                    break
                result = json.loads(result_text)
                for carried in result.get("extra", {}).get("timers", []):
                    if carried.get("how_en") and carried["deadline"] not in notes:
                        notes[carried["deadline"]] = {"how_en": carried["how_en"],
                                                      "how_zh": carried["how_zh"], "seq": seq}
                for e in reversed(result.get("explanations", [])):
                    for a in e.get("armed", []):
                        if a["deadline"] not in notes:
                            notes[a["deadline"]] = {**a, "seq": seq}
        program = self.program(r.contract_id)
        out = []
        for t in timers:
            note = notes.get(t["deadline"], {})
            d = program.deadline_by_name.get(t["deadline"])
            out.append({
                "deadline": t["deadline"], "title": d.title if d else None,
                "due_at": t["due_at"], "last_day": t["last_day"],
                "nominal_last_day": t["nominal_last_day"], "occurrence": t["occurrence"],
                "suspended_on": t["suspended_on"], "remaining": t["remaining"],
                "provisional": t["provisional"],
                "waiting_for": d.anchor_event if d and t["due_at"] is None
                and t["suspended_on"] is None else None,
                "how_en": note.get("how_en"), "how_zh": note.get("how_zh"),
                "armed_at_seq": note.get("seq"),
            })
        return out

    def pending_approvals(self, role: str | None = None) -> list[dict[str, Any]]:
        a = T_APPROVALS
        q = select(a).where(a.c.status == "pending")
        if role is not None:
            q = q.where(a.c.role == role)
        with self.db.read() as conn:
            rows = conn.execute(q.order_by(a.c.due_at, a.c.id)).all()
        return [{"id": r.id, "instance": r.instance_id, "action": r.action,
                 "args": json.loads(r.args), "role": r.role, "status": r.status,
                 "requested_at": iso(r.requested_at), "due_at": iso(r.due_at)} for r in rows]

    def approvals(self, instance_id: str) -> list[dict[str, Any]]:
        a = T_APPROVALS
        with self.db.read() as conn:
            rows = conn.execute(select(a).where(a.c.instance_id == instance_id)
                                .order_by(a.c.requested_at, a.c.id)).all()
        return [{"id": r.id, "action": r.action, "args": json.loads(r.args), "role": r.role,
                 "status": r.status, "requested_at": iso(r.requested_at),
                 "due_at": iso(r.due_at), "decided_by": r.decided_by,
                 "decided_at": iso(r.decided_at), "reason": r.reason} for r in rows]

    def outbox(self, instance_id: str | None = None, status: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        o = T_OUTBOX
        q = select(o)
        if instance_id is not None:
            q = q.where(o.c.instance_id == instance_id)
        if status is not None:
            q = q.where(o.c.status == status)
        with self.db.read() as conn:
            rows = conn.execute(q.order_by(o.c.id).limit(limit)).all()
        return [{"id": r.id, "key": r.key, "instance": r.instance_id, "action": r.action,
                 "args": json.loads(r.args), "cite": r.cite, "rule": r.rule_span,
                 "status": r.status, "attempts": r.attempts,
                 "next_attempt_at": iso(r.next_attempt_at), "last_error": r.last_error,
                 "receipt": r.receipt, "created_at": iso(r.created_at),
                 "delivered_at": iso(r.delivered_at)} for r in rows]

    def incidents(self, status: str | None = None, instance_id: str | None = None,
                  kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        n = T_INCIDENTS
        q = select(n)
        for col, value in ((n.c.status, status), (n.c.instance_id, instance_id),
                           (n.c.kind, kind)):
            if value is not None:
                q = q.where(col == value)
        with self.db.read() as conn:
            rows = conn.execute(q.order_by(n.c.id).limit(limit)).all()
        return [{"id": r.id, "kind": r.kind, "instance": r.instance_id, "outbox_id": r.outbox_id,
                 "message": r.message, "status": r.status, "created_at": iso(r.created_at),
                 "resolved_by": r.resolved_by, "resolved_at": iso(r.resolved_at),
                 "resolution": r.resolution} for r in rows]

    def timers(self, instance_id: str) -> list[dict[str, Any]]:
        """Every timer row of an instance (pending, fired with lateness, cancelled)."""
        t = T_TIMERS
        with self.db.read() as conn:
            rows = conn.execute(select(t).where(t.c.instance_id == instance_id)
                                .order_by(t.c.id)).all()
        return [{"id": r.id, "kind": r.kind, "name": r.name, "due_at": iso(r.due_at),
                 "status": r.status, "fired_at": iso(r.fired_at),
                 "late_seconds": r.late_seconds} for r in rows]

    # ================================================================== replay
    def replay(self, instance_id: str) -> bool:
        """Rebuild the state from the input log alone; True when it equals the stored one."""
        return self.replay_report(instance_id)["equal"]  # type: ignore[no-any-return]

    def replay_report(self, instance_id: str) -> dict[str, Any]:
        """Like :meth:`replay`, naming the first input whose replayed hash differs."""
        with self.db.read() as conn:
            row = self._doc_row(conn, instance_id)
            inputs = conn.execute(select(T_INPUTS.c.seq, T_INPUTS.c.kind, T_INPUTS.c.body,
                                         T_INPUTS.c.result, T_INPUTS.c.state_hash)
                                  .where(T_INPUTS.c.instance_id == instance_id)
                                  .order_by(T_INPUTS.c.seq)).all()
        # the calendar it was created with: the one its first calendar move left
        first_move = next((json.loads(b)["from"] for _, k, b, _, _ in inputs
                           if k == "recalendar"), None)
        calendar = self.calendar_for(first_move or row.calendar_version)
        state: InstanceState | None = None
        first_diff: int | None = None
        for seq, kind, body_text, result_text, stored_hash in inputs:
            body = json.loads(body_text)
            if kind == "recalendar":
                assert state is not None
                new_calendar = self.calendar_for(body["to"])
                state, _ = recalendar(state, self.program(state.contract_id), calendar,
                                      new_calendar, _instant(body["at"]))
                calendar = new_calendar
            elif kind == "migrate":
                assert state is not None
                old = self.program(body["from"])
                new = self.program(body["to"])
                state, _ = carry_over(state, old, new, calendar, _instant(body["at"]))
            else:
                if state is None:
                    program = self.program(json.loads(result_text)["contract"])
                else:
                    program = self.program(state.contract_id)
                state = step(program, calendar, state, input_from_json(body)).state
            digest = hashlib.sha256(canonical_state(state)).hexdigest()
            if first_diff is None and digest != stored_hash:
                first_diff = seq
        replayed = b"" if state is None else canonical_state(state)
        equal = replayed == row.document.encode("utf-8")
        return {"instance": instance_id, "equal": equal, "inputs": len(inputs),
                "first_divergent_seq": first_diff,
                "replayed_hash": hashlib.sha256(replayed).hexdigest() if state else None,
                "stored_hash": row.state_hash}

    # ================================================================== migration
    def migrate(self, instance_id: str, to_contract_id: str, by: str) -> dict[str, Any]:
        """Move a running instance to another deployed version of its contract.

        Deadlines that already fell due fire first under the version they fell
        due in; then the state is carried over (see :mod:`engine.runtime.carry`)
        and the move is recorded: a ``migrate`` input-log row and a Migration
        row saying who, when and how each running timer was carried over.
        Raises :class:`MigrationRefused` with the reasons when it cannot.
        """
        new_program = self.program(to_contract_id)

        def move(conn: Connection, unit: Unit, work: InstanceWork) -> dict[str, Any]:
            if work.contract_id == to_contract_id:
                raise MigrationRefused(f"instance `{instance_id}` already runs "
                                       f"{to_contract_id}")
            if work.status == "active":
                ticked = self._tick(conn, unit, work)
                if not ticked.accepted and ticked.code != "nothing_due":
                    raise MigrationRefused(f"deadlines due before the migration could "
                                           f"not fire: {ticked.message}")
            return self._migrate(unit, work, new_program, by)

        def after(conn: Connection) -> None:
            conn.execute(update(T_MIGRATIONS).where(
                T_MIGRATIONS.c.instance_id == instance_id,
                T_MIGRATIONS.c.to_contract != to_contract_id,
            ).values(active=False))

        return self._move(instance_id, move, after)

    def _move(self, instance_id: str,
              move: Callable[[Connection, Unit, InstanceWork], dict[str, Any]],
              after: Callable[[Connection], None] | None = None) -> dict[str, Any]:
        """One transaction that moves a not-ended instance (``migrate``, ``recalendar``):
        load it locked, ``move`` it (which refuses by raising), append its ledger records,
        write its rows, then ``after``; retried like any write on a lost race."""
        for attempt in range(_RETRIES):
            try:
                unit = Unit(self.clock.now())
                with self.db.write() as conn:
                    works = self._load(conn, [instance_id], lock=self.db.is_postgres)
                    work = works.get(instance_id)
                    if work is None:
                        raise NotFound(f"no instance `{instance_id}`")
                    if work.status == "ended":
                        raise MigrationRefused(f"instance `{instance_id}` has ended")
                    report = move(conn, unit, work)
                    self._record(conn, unit)  # before the rows: they carry its indexes
                    unit.flush(conn)
                    if after is not None:
                        after(conn)
                self._committed(unit)
                return report
            except (IntegrityError, StaleInstance):
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _migrate(self, unit: Unit, work: InstanceWork, new_program: Program,
                 by: str) -> dict[str, Any]:
        assert work.state is not None
        old_program = work.program
        at = self._at(unit, work)
        new_state, carried = carry_over(work.state, old_program, new_program, work.calendar, at)
        timers = [c.to_json() for c in carried]
        body = {"input": "migrate", "from": old_program.contract_id,
                "to": new_program.contract_id, "by": by, "at": iso(at)}
        work.program = new_program
        outcome = self._log_move(unit, work, body, at, new_state, timers,
                                 {"from": old_program.contract_id, "to": new_program.contract_id},
                                 old_program.contract_id, new_program.contract_id)
        return {"instance": work.id, "from": old_program.contract_id,
                "to": new_program.contract_id, "by": by, "at": iso(at), "seq": outcome.seq,
                "state": outcome.state, "timers": timers}

    @staticmethod
    def _log_move(unit: Unit, work: InstanceWork, body: dict[str, Any], at: dt.datetime,
                  new_state: InstanceState, timers: list[dict[str, Any]],
                  extra: dict[str, Any], from_contract: str, to_contract: str) -> Outcome:
        """Log a move (``body["input"]`` is its kind) as an input with no effects, and its
        Migration row saying who, when and how each timer was carried over."""
        outcome = unit.record_logged(work, body, at, body["input"], None,
                                     StepResult(new_state, (), ()),
                                     extra={"timers": timers, "by": body["by"], **extra})
        unit.migrations.append({"instance_id": work.id, "from_contract": from_contract,
                                "to_contract": to_contract, "by": body["by"], "at": at,
                                "timers": canonical_json(timers), "active": True})
        return outcome

    def recalendar(self, instance_id: str, calendar_version: str, by: str) -> dict[str, Any]:
        """Move a running (active or faulted) instance to a newer version of its calendar.

        The remedy for a deadline armed provisionally (its last day lay beyond the
        years the instance's calendar covers; it faults rather than fire on that
        guess): load the calendar that covers the year (start the engine with it
        in ``calendars``), then move the instance to it.  Only a newer version of
        the same calendar that adds years and agrees on every day the old one
        covers is allowed (:func:`engine.runtime.carry.check_calendar_move`).
        Deadlines that fell due before the move fire first (an active instance);
        a provisional one among them faults the instance, and the move goes ahead
        (resolve the fault afterwards).  Each provisional timer is recomputed
        under the new calendar, every other timer is kept.  Recorded as a
        ``recalendar`` input-log row (replayed exactly) and a Migration row (from
        and to the same contract) saying who, when and how each timer was carried.
        Raises :class:`MigrationRefused` with the reasons when it cannot.
        """
        new_calendar = self.calendar_for(calendar_version)

        def move(conn: Connection, unit: Unit, work: InstanceWork) -> dict[str, Any]:
            if work.status == "active":
                self._tick(conn, unit, work)  # a fault here is recorded, not refused
            return self._recalendar(unit, work, new_calendar, by)

        return self._move(instance_id, move)

    def _recalendar(self, unit: Unit, work: InstanceWork, new_calendar: Calendar,
                    by: str) -> dict[str, Any]:
        assert work.state is not None
        old_calendar = work.calendar
        at = self._at(unit, work)
        new_state, carried = recalendar(work.state, work.program, old_calendar, new_calendar, at)
        timers = [c.to_json() for c in carried]
        body = {"input": "recalendar", "from": old_calendar.version, "to": new_calendar.version,
                "by": by, "at": iso(at)}
        work.calendar = new_calendar
        outcome = self._log_move(unit, work, body, at, new_state, timers,
                                 {"from_calendar": old_calendar.version,
                                  "to_calendar": new_calendar.version},
                                 work.contract_id, work.contract_id)
        return {"instance": work.id, "from_calendar": old_calendar.version,
                "to_calendar": new_calendar.version, "by": by, "at": iso(at),
                "seq": outcome.seq, "state": outcome.state, "status": outcome.status,
                "timers": timers}

    def migrations(self, instance_id: str) -> list[dict[str, Any]]:
        m = T_MIGRATIONS
        with self.db.read() as conn:
            rows = conn.execute(select(m).where(m.c.instance_id == instance_id)
                                .order_by(m.c.id)).all()
        return [{"id": r.id, "from": r.from_contract, "to": r.to_contract, "by": r.by,
                 "at": iso(r.at), "timers": json.loads(r.timers), "active": r.active}
                for r in rows]

    # ================================================================== housekeeping
    def instance_ids(self, status: str | None = None) -> list[str]:
        q = select(T_INSTANCES.c.id)
        if status is not None:
            q = q.where(T_INSTANCES.c.status == status)
        with self.db.read() as conn:
            return list(conn.scalars(q.order_by(T_INSTANCES.c.id)))

    def counts(self) -> dict[str, int]:
        """Row counts per table and pending timers (for status pages and tests)."""
        with self.db.read() as conn:
            out = {name: conn.scalar(select(func.count()).select_from(t)) or 0
                   for name, t in (("instances", T_INSTANCES), ("inputs", T_INPUTS),
                                   ("timers", T_TIMERS), ("outbox", T_OUTBOX),
                                   ("approvals", T_APPROVALS), ("incidents", T_INCIDENTS))}
            out["pending_timers"] = conn.scalar(
                select(func.count()).select_from(T_TIMERS).where(
                    and_(T_TIMERS.c.status == "pending"))) or 0
        return out


def _instant(text_: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text_.replace("Z", "+00:00")).astimezone(dt.UTC)


def _retryable(exc: DBAPIError) -> bool:
    """Deadlocks, serialisation failures and SQLite's busy errors are worth retrying."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None)
    if code in ("40001", "40P01", "55P03"):
        return True
    message = str(orig).lower()
    return "database is locked" in message or "busy" in message


_ = Instance  # the ORM class documents the table; the service uses its Core table
