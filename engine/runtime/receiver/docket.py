"""The stand-in court systems' records: dockets, freezes and receipts.

One :class:`Docket` plays every receiving system of the action catalogue
(case management, service, inquiry-and-control, credit, case money...).  It
is deliberately simple; a real system decides numbers and expiries by its own
rules.  It keeps, in SQLite (a file, or memory):

- every request it accepted, by idempotency key, with its reply: the same
  key again gets the same reply and changes nothing;
- number series per court, year and series (``执``, ``民初``, receipts...):
  case numbers read ``(2026)京0105执1234号``;
- the freezes it placed, so a renewal extends the right one.

Records are dated by the request's ``sent_at`` in the court's time zone
(Asia/Shanghai), so a rehearsal on a virtual clock files cases in the
rehearsed year.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import sqlite3
import threading
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts_lib.actions import ACTIONS

__all__ = ["Docket", "Outcome", "Refused"]

COURT_ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")

# Case-type codes (案件类型代字) of the case numbers this stand-in assigns.
CASE_SERIES = {
    "file_enforcement_case": "执",
    "file_trial_case": "民初",
    "docket_filing": "民初",
}
# Longest freeze per kind of property, in months, and the longest renewal (half).
FREEZE_MONTHS = {"bank_deposit": 6, "movable": 12, "real_estate": 24, "other_right": 24}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    action TEXT NOT NULL,
    instance TEXT NOT NULL,
    reply TEXT NOT NULL,
    received_at TEXT NOT NULL,
    deliveries INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    court TEXT NOT NULL, year INTEGER NOT NULL, name TEXT NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (court, year, name)
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    action TEXT NOT NULL,
    instance TEXT NOT NULL,
    number TEXT NOT NULL,
    on_date TEXT NOT NULL,
    args TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS freezes (
    freeze_id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    debtor TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount TEXT,
    expires_on TEXT NOT NULL,
    status TEXT NOT NULL
);
"""


class Refused(Exception):
    """The request is well formed but the stand-in will not carry it out."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Outcome:
    """The reply to one request; ``replayed`` when the key was seen before."""

    status: int
    reply: dict[str, Any]
    replayed: bool = False


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(request: Mapping[str, Any]) -> str:
    """What must be equal for two requests with one key to be the same request."""
    same = {k: request.get(k) for k in ("key", "action", "args", "instance", "cite", "rule")}
    return hashlib.sha256(_canonical(same).encode("utf-8")).hexdigest()


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months``, clamped to the end of the month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class Docket:
    """The stand-in's records (thread-safe).  ``path=None`` keeps them in memory."""

    def __init__(self, path: str | None = None, court: str = "京0105") -> None:
        self.court = court
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False,
                                   isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            if path:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- requests -----------------------------------------------------------------

    def process(self, request: Mapping[str, Any]) -> Outcome:
        """Carry out one verified request once; replay the reply for a known key."""
        key = request["key"]
        mark = fingerprint(request)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                outcome = self._process(key, mark, request)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return outcome

    def _process(self, key: str, mark: str, request: Mapping[str, Any]) -> Outcome:
        seen = self._db.execute(
            "SELECT fingerprint, reply FROM requests WHERE key = ?", (key,)).fetchone()
        if seen is not None:
            if seen[0] != mark:
                raise Refused(422, f"idempotency key {key!r} was used for a different request")
            self._db.execute(
                "UPDATE requests SET deliveries = deliveries + 1 WHERE key = ?", (key,))
            return Outcome(200, json.loads(seen[1]), replayed=True)
        action = request["action"]
        if action not in ACTIONS:
            raise Refused(422, f"unknown action {action!r}")
        on = _court_date(request["sent_at"])
        reply = self._carry_out(action, request, on)
        reply["recorded_on"] = on.isoformat()
        self._db.execute(
            "INSERT INTO requests (key, fingerprint, action, instance, reply, received_at,"
            " deliveries) VALUES (?, ?, ?, ?, ?, ?, 1)",
            (key, mark, action, request["instance"], _canonical(reply), request["sent_at"]))
        return Outcome(200, reply)

    def _carry_out(self, action: str, request: Mapping[str, Any], on: dt.date) -> dict[str, Any]:
        args = request["args"]
        if action in CASE_SERIES:
            series = CASE_SERIES[action]
            n = self._next(on.year, series)
            number = f"({on.year}){self.court}{series}{n}号"
            self._record(request, number, on)
            return {"case_number": number}
        if action == "freeze":
            months = _freeze_months(args)
            freeze_id = f"FRZ-{on.year}-{self._next(on.year, 'FRZ'):06d}"
            expires = add_months(on, months)
            self._db.execute(
                "INSERT INTO freezes VALUES (?, ?, ?, ?, ?, ?, 'active')",
                (freeze_id, request["instance"], str(args.get("debtor")), args["kind"],
                 str(args.get("amount")), expires.isoformat()))
            self._record(request, freeze_id, on)
            return {"freeze_id": freeze_id, "expires_on": expires.isoformat()}
        if action == "renew_freeze":
            return self._renew(request, on)
        if action == "unfreeze":
            self._db.execute(
                "UPDATE freezes SET status = 'lifted' WHERE instance = ? AND debtor = ?"
                " AND kind = ? AND status = 'active'",
                (request["instance"], str(args.get("debtor")), args.get("kind")))
            # and acknowledged with a receipt below, like the other actions
        if action == "query_property":
            report = f"RPT-{on.year}-{self._next(on.year, 'RPT'):06d}"
            self._record(request, report, on)
            return {"report_id": report}
        receipt = f"RCPT-{on.year}-{self._next(on.year, 'RCPT'):06d}"
        self._record(request, receipt, on)
        return {"receipt_id": receipt}

    def _renew(self, request: Mapping[str, Any], on: dt.date) -> dict[str, Any]:
        args = request["args"]
        months = _freeze_months(args) // 2
        row = self._db.execute(
            "SELECT freeze_id, expires_on FROM freezes WHERE instance = ? AND debtor = ?"
            " AND kind = ? AND status = 'active' ORDER BY expires_on DESC LIMIT 1",
            (request["instance"], str(args.get("debtor")), args["kind"])).fetchone()
        if row is None:
            raise Refused(422, "no active freeze of this debtor's property to renew")
        freeze_id, expires_on = row[0], dt.date.fromisoformat(row[1])
        if on > expires_on:
            raise Refused(422, f"freeze {freeze_id} expired on {expires_on}; "
                               "a renewal must be made before expiry")
        expires = add_months(expires_on, months)
        self._db.execute("UPDATE freezes SET expires_on = ? WHERE freeze_id = ?",
                         (expires.isoformat(), freeze_id))
        self._record(request, freeze_id, on)
        return {"freeze_id": freeze_id, "expires_on": expires.isoformat()}

    def _next(self, year: int, series: str) -> int:
        self._db.execute(
            "INSERT INTO series (court, year, name, last) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (court, year, name) DO UPDATE SET last = last + 1",
            (self.court, year, series))
        row = self._db.execute("SELECT last FROM series WHERE court = ? AND year = ?"
                               " AND name = ?", (self.court, year, series)).fetchone()
        return int(row[0])

    def _record(self, request: Mapping[str, Any], number: str, on: dt.date) -> None:
        self._db.execute(
            "INSERT INTO records (key, action, instance, number, on_date, args)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (request["key"], request["action"], request["instance"], number, on.isoformat(),
             _canonical(request["args"])))

    # --- inspection -----------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """Everything carried out, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, action, instance, number, on_date, args FROM records"
                " ORDER BY id").fetchall()
        return [{"key": k, "action": a, "instance": i, "number": n, "on": d,
                 "args": json.loads(g)} for k, a, i, n, d, g in rows]

    def deliveries(self) -> dict[str, int]:
        """How many times each accepted key arrived (1 = no redelivery)."""
        with self._lock:
            rows = self._db.execute("SELECT key, deliveries FROM requests").fetchall()
        return {key: int(n) for key, n in rows}

    def reply(self, key: str) -> dict[str, Any] | None:
        """The stored reply for ``key``, if it was accepted."""
        with self._lock:
            row = self._db.execute("SELECT reply FROM requests WHERE key = ?",
                                   (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))


def _court_date(sent_at: str) -> dt.date:
    try:
        instant = dt.datetime.fromisoformat(sent_at.replace("Z", "+00:00"))
    except ValueError as e:
        raise Refused(400, f"sent_at is not an ISO 8601 instant: {sent_at!r}") from e
    if instant.tzinfo is None:
        raise Refused(400, "sent_at must carry its offset (UTC, 'Z')")
    return instant.astimezone(COURT_ZONE).date()


def _freeze_months(args: Mapping[str, Any]) -> int:
    kind = args.get("kind")
    if kind not in FREEZE_MONTHS:
        raise Refused(422, f"unknown kind of property {kind!r}")
    return FREEZE_MONTHS[str(kind)]
