"""The dispatcher: delivers outbox rows to their handlers, exactly once in effect.

The engine writes an ``outbox`` row (status ``pending``) in the same
transaction as the transition that triggered the action.  The dispatcher:

1. takes back rows whose delivery lease expired (a dispatcher died or stalled
   while delivering): ``delivering`` -> ``pending``, or ``incident`` when the
   attempts are used up;
2. claims due rows (``pending`` and ``next_attempt_at <= now``): on
   PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` then ``UPDATE``; elsewhere
   one conditional ``UPDATE ... WHERE id = ? AND status = 'pending'`` per row,
   claimed only if it changed the row.  A claim sets ``status='delivering'``,
   counts the attempt and sets ``next_attempt_at`` to the lease's expiry;
3. delivers each claimed row outside any transaction;
4. records the outcome with an update fenced on the claim (same attempt
   count and lease), so a dispatcher whose lease was taken over cannot
   overwrite the newer outcome: ``delivered`` (receipt, ``delivered_at``);
   ``pending`` again after a transient failure (backoff); ``incident`` plus an
   ``incidents`` row after a permanent failure or the last attempt.

With a ledger (``ledger=``), the transaction that records an outcome
(``delivered`` or ``incident``) also appends its ``delivery`` record and keeps
the record's index in ``outbox.ledger_index``: no outcome is committed without
its entry (``engine/runtime/ledger.py``, ``docs/ledger.md``).

Delivery is at least once; the receiving system makes it exactly once in
effect by deduplicating on the idempotency key (``docs/receiving-systems.md``).

While a row is ``delivering`` its ``next_attempt_at`` holds the lease expiry
(the schema has no separate lease column; the ``(status, next_attempt_at)``
index serves both queries).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Connection, Engine, Table, func, insert, select, update
from sqlalchemy.orm import Session

from engine.runtime.clock import Clock, SystemClock
from engine.runtime.errors import EngineError, NotFound
from engine.runtime.handlers import (
    Delivery,
    Handler,
    PermanentFailure,
    TransientFailure,
    missing_returns,
)
from engine.runtime.models import Incident, Instance, Outbox

if TYPE_CHECKING:
    from ledger_adapter.protocol import Ledger

__all__ = [
    "ATTEMPTS",
    "Backoff",
    "Dispatcher",
    "IncidentError",
    "StoreFactory",
    "WriteTransactions",
]

log = logging.getLogger("jrule.dispatcher")

_OUTBOX = cast(Table, Outbox.__table__)
_INCIDENTS = cast(Table, Incident.__table__)
_INSTANCES = cast(Table, Instance.__table__)

#: Attempts per action before an incident, by runtime mode (``max_attempts``'s
#: default).  In production the default backoff spreads 15 attempts over about
#: 67 minutes (the last waits are 10 minutes each), so a receiving system may be
#: down for an hour without anyone being called; sandboxes and tests give up
#: after 8 (about 4 minutes).  See docs/receiving-systems.md.
ATTEMPTS: dict[str, int] = {"production": 15, "sandbox": 8, "test": 8}


class WriteTransactions(Protocol):
    """A store that hands out writer transactions (``engine.runtime.db.Database``)."""

    def write(self) -> AbstractContextManager[Connection]: ...


StoreFactory = WriteTransactions | Engine | Callable[[], Session]
"""Where the outbox lives: the runtime's ``Database`` (its ``write()``
transactions take SQLite's write lock up front), an SQLAlchemy engine, or a
session factory (``sessionmaker``)."""


class IncidentError(EngineError):
    """An incident cannot be retried or resolved (closed, or not a delivery).

    An unknown incident raises :class:`engine.runtime.errors.NotFound`.
    """

    code = "incident_refused"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: ``base * factor**(n-1)`` seconds after the n-th failure,
    at most ``maximum``, less a deterministic jitter of up to ``jitter`` of it.

    The jitter comes from the SHA-256 of the key and ``n``, so rows that failed
    together do not retry together, and a replay computes the same schedule.
    """

    base: float = 2.0
    factor: float = 2.0
    maximum: float = 600.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.maximum < self.base:
            raise ValueError("backoff needs base > 0, factor >= 1, maximum >= base")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter is a fraction in [0, 1)")

    def nominal(self, failures: int) -> float:
        """The delay in seconds after the ``failures``-th failure, before jitter."""
        if failures < 1:
            raise ValueError("failures counts from 1")
        return min(self.maximum, self.base * self.factor ** min(failures - 1, 64))

    def delay(self, key: str, failures: int) -> dt.timedelta:
        """How long to wait after the ``failures``-th failed attempt of ``key``."""
        digest = hashlib.sha256(f"{key}\n{failures}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        seconds = self.nominal(failures) * (1 - self.jitter * fraction)
        return dt.timedelta(milliseconds=round(seconds * 1000))


@dataclass(frozen=True, slots=True)
class _Claim:
    id: int
    key: str
    action: str
    args: str
    instance_id: str
    cite: str | None
    rule_span: str
    attempts: int  # including this attempt
    lease_until: dt.datetime
    parties: str = "{}"  # the instance's parties (canonical JSON)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


class Dispatcher:
    """Delivers due outbox rows through ``handler``; see the module docstring.

    ``store`` is an engine or a session factory; ``clock`` gives the instants
    written to the store (the runtime's real or virtual clock).  A row gets
    at most ``max_attempts`` tries (by default :data:`ATTEMPTS` of ``mode``:
    15 in production, 8 in a sandbox or test); ``lease`` is how long a claimed row may
    stay ``delivering`` before another dispatcher takes it back (keep it well
    above the handler's timeout).  Several dispatchers may share one
    PostgreSQL database.
    """

    def __init__(
        self,
        store: StoreFactory,
        handler: Handler,
        clock: Clock | None = None,
        *,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
        batch: int = 100,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        ledger: Ledger | None = None,
        mode: str = "production",
    ) -> None:
        if mode not in ATTEMPTS:
            raise ValueError(f"mode must be one of {', '.join(ATTEMPTS)}, not {mode!r}")
        if max_attempts is None:
            max_attempts = ATTEMPTS[mode]
        if max_attempts < 1 or batch < 1 or lease <= dt.timedelta(0):
            raise ValueError("max_attempts and batch must be >= 1 and lease positive")
        self._store = store
        self._handler = handler
        self._clock: Clock = clock or SystemClock()
        self.mode = mode
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.batch = batch
        self.lease = lease
        self._wake = threading.Event()
        #: the tamper-evident ledger outcomes are recorded in (a ``ledger_adapter`` Ledger)
        self.ledger = ledger

    # --- the loop --------------------------------------------------------------

    def run_once(self) -> int:
        """Recover expired leases, claim due rows, deliver them; return how many
        deliveries were attempted."""
        self._recover_expired_leases()
        claims = self._claim()
        attempted = 0
        for i, claim in enumerate(claims):
            if self._now() >= claim.lease_until - self.lease / 2:
                self._release(claims[i:])  # don't deliver on a lease nearly gone
                break
            self._deliver(claim)
            attempted += 1
        return attempted

    def run_forever(self, stop_event: threading.Event, interval: float = 1.0) -> None:
        """Run until ``stop_event`` is set: again at once while full batches
        come back, otherwise after ``interval`` seconds or on :meth:`wake`."""
        while not stop_event.is_set():
            self._wake.clear()
            try:
                attempted = self.run_once()
            except Exception:
                log.exception("dispatcher pass failed; trying again in %.1f s", interval)
                attempted = 0
            if attempted >= self.batch:
                continue
            self._sleep(stop_event, interval)

    def wake(self) -> None:
        """Ask :meth:`run_forever` to run now (call after writing outbox rows)."""
        self._wake.set()

    def _sleep(self, stop_event: threading.Event, interval: float) -> None:
        waited = 0.0
        while waited < interval and not stop_event.is_set():
            step = min(0.2, interval - waited)
            if self._wake.wait(step):
                return
            waited += step

    # --- claim, deliver, record ----------------------------------------------

    def _claim(self) -> list[_Claim]:
        now = self._now()
        lease_until = now + self.lease
        t = _OUTBOX
        due = (
            select(t.c.id, t.c.attempts)
            .where(t.c.status == "pending", t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, t.c.id)
            .limit(self.batch)
        )
        claimed_cols = (t.c.id, t.c.key, t.c.action, t.c.args, t.c.instance_id, t.c.cite,
                        t.c.rule_span, t.c.attempts)
        with self._transaction() as conn:
            if conn.dialect.name == "postgresql":
                ids = list(conn.execute(due.with_for_update(skip_locked=True)).scalars())
                if not ids:
                    return []
                rows = list(conn.execute(
                    update(t).where(t.c.id.in_(ids))
                    .values(status="delivering", attempts=t.c.attempts + 1,
                            next_attempt_at=lease_until)
                    .returning(*claimed_cols)
                ))
                order = {row_id: i for i, row_id in enumerate(ids)}
                rows.sort(key=lambda r: order[r.id])
            else:
                rows = []
                for row_id, attempts in conn.execute(due).all():
                    changed = conn.execute(
                        update(t)
                        .where(t.c.id == row_id, t.c.status == "pending",
                               t.c.attempts == attempts, t.c.next_attempt_at <= now)
                        .values(status="delivering", attempts=attempts + 1,
                                next_attempt_at=lease_until)
                    ).rowcount
                    if changed == 1:
                        rows.append(conn.execute(select(*claimed_cols)
                                                 .where(t.c.id == row_id)).one())
            parties = self._parties(conn, {r.instance_id for r in rows})
        return [_Claim(r.id, r.key, r.action, r.args, r.instance_id, r.cite, r.rule_span,
                       r.attempts, lease_until, parties.get(r.instance_id, "{}"))
                for r in rows]

    @staticmethod
    def _parties(conn: Connection, instance_ids: set[str]) -> dict[str, str]:
        """The parties of the claimed rows' instances (role -> party, JSON)."""
        if not instance_ids:
            return {}
        i = _INSTANCES
        return {r.id: r.parties for r in conn.execute(
            select(i.c.id, i.c.parties).where(i.c.id.in_(sorted(instance_ids))))}

    def _deliver(self, claim: _Claim) -> None:
        try:
            delivery = Delivery(claim.key, claim.action, json.loads(claim.args),
                                claim.instance_id, claim.cite, claim.rule_span, claim.attempts,
                                json.loads(claim.parties))
            receipt = self._handler.deliver(delivery)
            if not isinstance(receipt, dict):
                raise PermanentFailure(f"handler returned {type(receipt).__name__}, "
                                       "not a JSON object")
            stored = _canonical(receipt)
        except PermanentFailure as e:
            self._record_failure(claim, e.message, permanent=True)
        except TransientFailure as e:
            self._record_failure(claim, e.message, retry_after=e.retry_after)
        except Exception as e:
            log.warning("unexpected error delivering %s", claim.key, exc_info=True)
            self._record_failure(claim, f"unexpected {type(e).__name__}: {e}")
        else:
            problems = missing_returns(claim.action, receipt)
            if problems:
                self._record_failure(
                    claim, "the receiving system's reply lacks " + ", ".join(problems),
                    permanent=True, receipt=stored)
            else:
                self._record_success(claim, stored)

    def _fenced(self, claim: _Claim) -> Any:
        t = _OUTBOX
        return update(t).where(t.c.id == claim.id, t.c.status == "delivering",
                               t.c.attempts == claim.attempts,
                               t.c.next_attempt_at == claim.lease_until)

    def _record_success(self, claim: _Claim, receipt: str) -> None:
        now = self._now()
        with self._transaction() as conn:
            changed = conn.execute(self._fenced(claim).values(
                status="delivered", receipt=receipt, delivered_at=now)).rowcount
            if changed == 1:
                self._log_outcome(conn, claim.id)
        if changed != 1:
            log.warning("delivered %s but its lease had been taken over; the newer "
                        "outcome stands", claim.key)

    def _record_failure(
        self,
        claim: _Claim,
        error: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        receipt: str | None = None,
    ) -> None:
        now = self._now()
        with self._transaction() as conn:
            if permanent or claim.attempts >= self.max_attempts:
                if permanent:
                    message = (f"{claim.action} {claim.key}: refused on attempt "
                               f"{claim.attempts}: {error}")
                else:
                    message = (f"{claim.action} {claim.key}: not delivered after "
                               f"{claim.attempts} attempts; last error: {error}")
                values: dict[str, Any] = {"status": "incident", "last_error": error}
                if receipt is not None:
                    values["receipt"] = receipt
                if conn.execute(self._fenced(claim).values(**values)).rowcount == 1:
                    self._open_incident(conn, claim.id, claim.instance_id, message, now)
                    self._log_outcome(conn, claim.id, now)
                    log.error("incident: %s", message)
                    return
            else:
                delay = self.backoff.delay(claim.key, claim.attempts)
                if retry_after is not None:
                    asked = dt.timedelta(seconds=min(retry_after, self.backoff.maximum))
                    delay = max(delay, asked)
                if conn.execute(self._fenced(claim).values(
                        status="pending", next_attempt_at=now + delay,
                        last_error=error)).rowcount == 1:
                    log.info("retrying %s in %s: %s", claim.key, delay, error)
                    return
        log.warning("attempt %d of %s failed but its lease had been taken over",
                    claim.attempts, claim.key)

    def _release(self, claims: list[_Claim]) -> None:
        """Give back claimed rows that were not tried (the attempt is not counted)."""
        now = self._now()
        with self._transaction() as conn:
            for claim in claims:
                conn.execute(self._fenced(claim).values(
                    status="pending", attempts=claim.attempts - 1, next_attempt_at=now))

    def _recover_expired_leases(self) -> int:
        now = self._now()
        t = _OUTBOX
        stuck = (
            select(t.c.id, t.c.key, t.c.action, t.c.instance_id, t.c.attempts,
                   t.c.next_attempt_at)
            .where(t.c.status == "delivering", t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, t.c.id)
            .limit(self.batch)
        )
        recovered = 0
        with self._transaction() as conn:
            if conn.dialect.name == "postgresql":
                stuck = stuck.with_for_update(skip_locked=True)
            for row in conn.execute(stuck).all():
                error = (f"lease expired during attempt {row.attempts} (the dispatcher "
                         "stopped or stalled); the receiver may have it already")
                claim = _Claim(row.id, row.key, row.action, "", row.instance_id, None, "",
                               row.attempts, row.next_attempt_at)
                if row.attempts >= self.max_attempts:
                    if conn.execute(self._fenced(claim).values(
                            status="incident", last_error=error)).rowcount == 1:
                        self._open_incident(
                            conn, row.id, row.instance_id,
                            f"{row.action} {row.key}: not delivered after {row.attempts} "
                            f"attempts; last error: {error}", now)
                        self._log_outcome(conn, row.id, now)
                        recovered += 1
                elif conn.execute(self._fenced(claim).values(
                        status="pending", next_attempt_at=now, last_error=error)).rowcount:
                    log.warning("took back %s: %s", row.key, error)
                    recovered += 1
        return recovered

    def _log_outcome(self, conn: Connection, outbox_id: int,
                     failed_at: dt.datetime | None = None) -> None:
        """Record a row's delivery outcome on the ledger, in the outcome's transaction,
        and keep the record's index in ``outbox.ledger_index``."""
        if self.ledger is None:
            return
        from engine.runtime.ledger import delivery_record

        t = _OUTBOX
        row = dict(conn.execute(select(t).where(t.c.id == outbox_id)).mappings().one())
        with Session(bind=conn) as session:
            entries = self.ledger.append([delivery_record(row, failed_at)], session=session)
            session.flush()
        conn.execute(update(t).where(t.c.id == outbox_id)
                     .values(ledger_index=entries[0].index))

    @staticmethod
    def _open_incident(conn: Connection, outbox_id: int, instance_id: str, message: str,
                       now: dt.datetime) -> None:
        conn.execute(insert(_INCIDENTS).values(
            kind="delivery_failed", instance_id=instance_id, outbox_id=outbox_id,
            message=message, status="open", created_at=now))

    # --- incidents -------------------------------------------------------------

    def retry_incident(self, incident_id: int, by: str) -> str:
        """Deliver a failed row again (attempts start over); close the incident
        with resolution ``retried``.  Returns the row's idempotency key."""
        if not by:
            raise IncidentError("say who retries the incident")
        now = self._now()
        with self._transaction() as conn:
            incident = self._close(conn, incident_id, by, "retried", now)
            if incident.kind != "delivery_failed" or incident.outbox_id is None:
                raise IncidentError(f"incident {incident_id} is not a failed delivery")
            t = _OUTBOX
            changed = conn.execute(
                update(t).where(t.c.id == incident.outbox_id, t.c.status == "incident")
                .values(status="pending", attempts=0, next_attempt_at=now)
            ).rowcount
            if changed != 1:
                raise IncidentError(f"outbox row {incident.outbox_id} is not in incident")
            key: str = conn.execute(select(t.c.key).where(t.c.id == incident.outbox_id)
                                    ).scalar_one()
            self._log_resolution(conn, incident_id)
        self.wake()
        return key

    def resolve_incident(self, incident_id: int, by: str, note: str) -> None:
        """Close an incident that a person handled by hand; an outbox row stays
        ``incident`` (it is never delivered automatically again)."""
        if not by or not note.strip():
            raise IncidentError("say who resolves the incident and how")
        with self._transaction() as conn:
            self._close(conn, incident_id, by, f"resolved: {note.strip()}", self._now())
            self._log_resolution(conn, incident_id)

    def _log_resolution(self, conn: Connection, incident_id: int) -> None:
        """Record who closed an incident, and how, on the ledger, in the same transaction
        (an ``admin`` record: see ``engine/runtime/ledger.py``)."""
        if self.ledger is None:
            return
        from engine.runtime.ledger import incident_record

        i, t = _INCIDENTS, _OUTBOX
        row = conn.execute(select(i).where(i.c.id == incident_id)).mappings().one()
        key = (conn.scalar(select(t.c.key).where(t.c.id == row["outbox_id"]))
               if row["outbox_id"] is not None else None)
        with Session(bind=conn) as session:
            self.ledger.append([incident_record(dict(row), key)], session=session)
            session.flush()

    @staticmethod
    def _close(conn: Connection, incident_id: int, by: str, resolution: str,
               now: dt.datetime) -> Any:
        i = _INCIDENTS
        changed = conn.execute(
            update(i).where(i.c.id == incident_id, i.c.status == "open")
            .values(status="resolved", resolved_by=by, resolved_at=now, resolution=resolution)
        ).rowcount
        row = conn.execute(select(i.c.kind, i.c.outbox_id, i.c.status)
                           .where(i.c.id == incident_id)).one_or_none()
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        if changed != 1:
            raise IncidentError(f"incident {incident_id} is already {row.status}")
        return row

    # --- inspection -------------------------------------------------------------

    def next_due(self) -> dt.datetime | None:
        """The earliest instant at which a row is due or a lease expires."""
        t = _OUTBOX
        with self._transaction() as conn:
            due: dt.datetime | None = conn.execute(
                select(func.min(t.c.next_attempt_at))
                .where(t.c.status.in_(("pending", "delivering")))
            ).scalar_one()
        return due

    def status_counts(self) -> dict[str, int]:
        """How many outbox rows are in each status."""
        t = _OUTBOX
        with self._transaction() as conn:
            rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
        return {status: count for status, count in rows}

    # --- plumbing -------------------------------------------------------------

    def _now(self) -> dt.datetime:
        now = self._clock.now()
        if now.tzinfo is None:
            raise ValueError("the clock gave a naive datetime; use UTC instants")
        return now.astimezone(dt.UTC)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        store = self._store
        if isinstance(store, Engine):
            with store.begin() as conn:
                yield conn
        elif hasattr(store, "write"):
            with cast(WriteTransactions, store).write() as conn:
                yield conn
        else:
            with store() as session, session.begin():
                yield session.connection()
