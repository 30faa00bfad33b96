"""The engine's ledger records, built from its stored rows.

One function per record kind, each taking the rows as stored (dicts or
SQLAlchemy row mappings), so the writer (:class:`EngineService`, the
dispatcher) and the auditor (:mod:`engine.audit`) compute the very same
record:

``transition`` (one per input-log row)
    instance, seq, contract (the contract after the input), ``input`` = SHA-256
    of ``inputs.body`` exactly as stored, ``state`` = the new state hash,
    ``effects`` = SHA-256 of the canonical JSON ``{"kind": <input kind>,
    "actions": [<idempotency keys of the actions emitted>]}``, at.
``migration`` (after the transition of a ``migrate`` row)
    instance, seq, from, to, state, by, at (from the row's body).
    A ``recalendar`` row (a move to a newer calendar version) makes only its
    ``transition`` record: its ``input`` digest covers the body (from and to
    calendar versions, by, at) and ``effects`` its kind.
``action`` (one per ``outbox`` row, when the input that triggered it is logged)
    instance (``outbox.instance_id``), seq and at (of the input), key, action,
    ``args`` = SHA-256 of ``outbox.args`` as stored, outcome ``triggered``.
``approval`` / ``approval_decision`` (one per change of an ``approvals`` row)
    requested: ``approval`` with decision ``requested``, by ``engine``, at =
    ``requested_at``; timeout or lapsed: ``approval`` with that decision, by
    ``engine``, at = ``decided_at``; approved or rejected: ``approval_decision``
    with ``by`` = ``decided_by``, ``reason`` = SHA-256 of ``approvals.reason``
    (of the empty string when there is none), at = ``decided_at``.
``delivery`` (the outcome of delivering an ``outbox`` row)
    instance, key, action, attempt (``outbox.attempts``), outcome ``delivered`` or
    ``failed`` (``incident``), ``reply`` = SHA-256 of ``outbox.receipt`` (the
    receiver's canonical JSON reply), ``error`` = SHA-256 of ``outbox.last_error``
    (of the empty string when delivered), ``reference`` = the catalogue's
    ``returns`` fields of the reply (``case_number=...``; ``-`` when none), at =
    ``delivered_at`` (or when the incident was opened).
``deployment`` (one per stored contract version)
    contract, ruleset, name, version (``-`` when empty), by, at.
``admin`` with action ``test_report`` (one per gated deployment)
    subject = the rule set id, digest = the passing test report's hash,
    by = the reviewer who approved the deployment, at.
``admin`` with action ``retry_incident`` or ``resolve_incident`` (one per incident a
    person closed): subject = ``incident=<id> key=<outbox key>`` (a failed
    delivery) or ``incident=<id> instance=<instance>`` (a deadline fault),
    digest = SHA-256 of ``incidents.resolution`` as stored (``retried`` or
    ``resolved: <note>``), by = ``resolved_by``, at = ``resolved_at``.

An input's records follow each other in the log, in this order: its
transition, its migration (if any), one ``action`` per action it emitted and
one ``approval``/``approval_decision`` per approval it changed, both in the
order of its stored result; ``inputs.ledger_index`` is the first one's index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.runtime.results import canonical_json
from ledger_adapter.record import Record, make_record

__all__ = [
    "ENGINE",
    "MissingRow",
    "action_record",
    "approval_record",
    "delivery_record",
    "deployment_record",
    "effects_digest",
    "incident_record",
    "input_records",
    "migration_record",
    "reference_text",
    "result_keys",
    "test_report_record",
    "transition_record",
    "unit_records",
]

#: ``by`` of the records the engine makes on its own (requests, timeouts, lapses).
ENGINE = "engine"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def effects_digest(kind: str, result_text: str, result: Any = None) -> str:
    """SHA-256 of the input kind and the idempotency keys of the actions it emitted.

    ``result``: ``result_text`` already parsed, if the caller has it.
    """
    if result is None:
        result = json.loads(result_text)
    keys = [a["key"] for a in result.get("actions", ())]
    return _sha(canonical_json({"kind": kind, "actions": keys}))


def transition_record(row: Mapping[str, Any], result: Any = None) -> Record:
    """The ``transition`` record of one ``inputs`` row (``result``: its parsed result)."""
    if result is None:
        result = json.loads(row["result"])
    return make_record("transition", {
        "instance": row["instance_id"], "seq": int(row["seq"]),
        "contract": result["contract"], "input": _sha(row["body"]),
        "state": row["state_hash"], "effects": effects_digest(row["kind"], row["result"], result),
        "at": _utc(row["at"]),
    })


def migration_record(row: Mapping[str, Any]) -> Record:
    """The ``migration`` record of one ``inputs`` row of kind ``migrate``."""
    body = json.loads(row["body"])
    return make_record("migration", {
        "instance": row["instance_id"], "seq": int(row["seq"]), "from": body["from"],
        "to": body["to"], "state": row["state_hash"], "by": body["by"], "at": _utc(row["at"]),
    })


def deployment_record(row: Mapping[str, Any]) -> Record:
    """The ``deployment`` record of one ``contract_versions`` row."""
    return make_record("deployment", {
        "contract": row["id"], "ruleset": row["ruleset_id"], "name": row["name"],
        "version": row["version"] or "-", "by": row["deployed_by"],
        "at": _utc(row["deployed_at"]),
    })


def action_record(input_row: Mapping[str, Any], outbox_row: Mapping[str, Any]) -> Record:
    """The ``action`` record of an ``outbox`` row, triggered by ``input_row``."""
    return make_record("action", {
        "instance": outbox_row["instance_id"], "seq": int(input_row["seq"]),
        "key": outbox_row["key"], "action": outbox_row["action"],
        "args": _sha(outbox_row["args"]), "outcome": "triggered", "at": _utc(input_row["at"]),
    })


def approval_record(input_row: Mapping[str, Any], approval_row: Mapping[str, Any],
                    status: str) -> Record:
    """The record of ``input_row`` changing an ``approvals`` row to ``status``.

    ``requested`` is taken from the row's request columns; a decision
    (``approved``, ``rejected``, ``timeout``, ``lapsed``) from its decision
    columns, its status included (an approval is decided once).
    """
    instance = approval_row.get("instance_id") or input_row["instance_id"]
    seq = int(input_row["seq"])
    if status == "requested":
        return make_record("approval", {
            "instance": instance, "seq": seq, "approval": approval_row["id"],
            "decision": "requested", "by": ENGINE, "at": _utc(approval_row["requested_at"])})
    decided = approval_row["status"]
    at = approval_row["decided_at"]
    if at is None:
        raise ValueError(f"approval {approval_row['id']} is {decided} but has no decided_at")
    if decided in ("approved", "rejected"):
        return make_record("approval_decision", {
            "instance": instance, "seq": seq, "approval": approval_row["id"],
            "decision": decided, "by": approval_row["decided_by"] or "",
            "reason": _sha(approval_row["reason"] or ""), "at": _utc(at)})
    return make_record("approval", {
        "instance": instance, "seq": seq, "approval": approval_row["id"],
        "decision": decided, "by": ENGINE, "at": _utc(at)})


def _valid_text(text: str) -> bool:
    return (0 < len(text) <= 1000 and text == text.strip()
            and not any(unicodedata.category(c) == "Cc" for c in text))


def reference_text(action: str, reply: str | None) -> str:
    """What the receiver's reply says for the catalogue's ``returns`` of ``action``.

    ``name=value`` pairs in catalogue order, joined by ``"; "`` (e.g.
    ``case_number=(2025)京0105执1234号``); ``-`` when there are none or they
    would not make a valid record text (the ``reply`` digest still commits to
    the whole reply).
    """
    from contracts_lib.actions import ACTIONS

    spec = ACTIONS.get(action)
    if spec is None or not reply:
        return "-"
    try:
        data = json.loads(reply)
    except ValueError:
        return "-"
    if not isinstance(data, dict):
        return "-"
    parts = [f"{f.name}={data[f.name]}" for f in spec.returns
             if isinstance(data.get(f.name), str) and data[f.name]]
    text = "; ".join(parts)
    return text if parts and _valid_text(text) else "-"


def delivery_record(outbox_row: Mapping[str, Any], failed_at: dt.datetime | None = None
                    ) -> Record:
    """The ``delivery`` record of an ``outbox`` row that was delivered or is in incident.

    ``failed_at``: when the incident was opened (the outbox row has no column
    for it).
    """
    delivered = outbox_row["status"] == "delivered"
    if not delivered and outbox_row["status"] != "incident":
        raise ValueError(f"outbox row {outbox_row['key']} is {outbox_row['status']}: "
                         "neither delivered nor in incident")
    at = outbox_row["delivered_at"] if delivered else failed_at
    if at is None:
        raise ValueError(f"outbox row {outbox_row['key']} has no instant for its outcome")
    receipt = outbox_row["receipt"] or ""
    return make_record("delivery", {
        "instance": outbox_row["instance_id"], "key": outbox_row["key"],
        "action": outbox_row["action"], "attempt": int(outbox_row["attempts"]),
        "outcome": "delivered" if delivered else "failed", "reply": _sha(receipt),
        "error": _sha("" if delivered else outbox_row["last_error"] or ""),
        "reference": reference_text(outbox_row["action"], receipt) if delivered else "-",
        "at": _utc(at),
    })


@dataclass(frozen=True, slots=True)
class MissingRow:
    """A row an input's records are built from, which the store does not have."""

    table: str
    key: str

    @property
    def location(self) -> str:
        return f"{self.table}[{self.key}]"


def input_records(row: Mapping[str, Any], outbox: Mapping[str, Mapping[str, Any]],
                  approvals: Mapping[str, Mapping[str, Any]]) -> list[Record | MissingRow]:
    """Every record of one ``inputs`` row, in log order (see the module docstring).

    ``outbox``: the outbox rows by key and ``approvals``: the approval rows by
    id, of (at least) the actions and approvals this input's result lists.  A
    row that is not there gives a :class:`MissingRow` in its record's place.
    """
    result = json.loads(row["result"])
    out: list[Record | MissingRow] = [transition_record(row, result)]
    if row["kind"] == "migrate":
        out.append(migration_record(row))
    for action in result.get("actions", ()):
        o = outbox.get(action["key"])
        out.append(MissingRow("outbox", f"key={action['key']}") if o is None
                   else action_record(row, o))
    for approval in result.get("approvals", ()):
        a = approvals.get(approval["id"])
        out.append(MissingRow("approvals", f"id={approval['id']}") if a is None
                   else approval_record(row, a, approval["status"]))
    return out


def result_keys(result_text: str) -> tuple[list[str], list[str]]:
    """The outbox keys and approval ids an input's stored result lists."""
    result = json.loads(result_text)
    return ([a["key"] for a in result.get("actions", ())],
            [a["id"] for a in result.get("approvals", ())])


def unit_records(unit: Any) -> tuple[list[Record], list[int]]:
    """The records of a transaction's inputs (an ``engine.runtime.unit.Unit``), in log
    order, and the position of each input's first record."""
    outbox = {row["key"]: row for row in unit.outbox}
    approvals: dict[str, Mapping[str, Any]] = dict(unit.approval_inserts)
    for approval_id, update in unit.approval_updates.items():
        approvals[approval_id] = {"id": approval_id,
                                  **{k[2:]: v for k, v in update.items() if k.startswith("v_")}}
    records: list[Record] = []
    positions: list[int] = []
    for row in unit.inputs:
        positions.append(len(records))
        for rec in input_records(row, outbox, approvals):
            if isinstance(rec, MissingRow):
                raise AssertionError(f"{rec.location} was not written with its input")
            records.append(rec)
    return records, positions


def test_report_record(ruleset_id: str, report_hash: str, reviewer: str,
                       at: dt.datetime) -> Record:
    """The record of a deployment's passing test report and who reviewed it."""
    return make_record("admin", {
        "action": "test_report", "subject": ruleset_id, "digest": report_hash,
        "by": reviewer, "at": _utc(at),
    })


def incident_record(row: Mapping[str, Any], key: str | None) -> Record:
    """The record of a person closing an ``incidents`` row (``key``: its outbox row's key).

    Made from the row after the change: ``resolution`` ``retried`` gives a
    ``retry_incident`` record, anything else a ``resolve_incident`` one.
    """
    resolution = row["resolution"] or ""
    if row["resolved_at"] is None:
        raise ValueError(f"incident {row['id']} has no resolved_at")
    target = (f" key={key}" if key else
              f" instance={row['instance_id']}" if row["instance_id"] else "")
    return make_record("admin", {
        "action": "retry_incident" if resolution == "retried" else "resolve_incident",
        "subject": f"incident={int(row['id'])}{target}", "digest": _sha(resolution),
        "by": row["resolved_by"] or "", "at": _utc(row["resolved_at"]),
    })
