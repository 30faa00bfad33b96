"""The engine's ledger records, built from its stored rows.

One function per record kind, each taking the row as stored (a dict or a
SQLAlchemy row mapping), so the writer (:class:`EngineService`) and the
auditor (:mod:`engine.audit`) compute the very same record:

``transition`` (one per input-log row)
    instance, seq, contract (the contract after the input), ``input`` = SHA-256
    of ``inputs.body`` exactly as stored, ``state`` = the new state hash,
    ``effects`` = SHA-256 of the canonical JSON ``{"kind": <input kind>,
    "actions": [<idempotency keys of the actions emitted>]}``, at.
``migration`` (after the transition of a ``migrate`` row)
    instance, seq, from, to, state, by, at (from the row's body).
``deployment`` (one per stored contract version)
    contract, ruleset, name, version (``-`` when empty), by, at.
``admin`` with action ``test_report`` (one per gated deployment)
    subject = the rule set id, digest = the passing test report's hash,
    by = the reviewer who approved the deployment, at.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from engine.runtime.results import canonical_json
from ledger_adapter.record import Record, make_record

__all__ = ["deployment_record", "effects_digest", "migration_record", "test_report_record",
           "transition_record"]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def effects_digest(kind: str, result_text: str) -> str:
    """SHA-256 of the input kind and the idempotency keys of the actions it emitted."""
    result = json.loads(result_text)
    keys = [a["key"] for a in result.get("actions", ())]
    return _sha(canonical_json({"kind": kind, "actions": keys}))


def transition_record(row: Mapping[str, Any]) -> Record:
    """The ``transition`` record of one ``inputs`` row."""
    result = json.loads(row["result"])
    return make_record("transition", {
        "instance": row["instance_id"], "seq": int(row["seq"]),
        "contract": result["contract"], "input": _sha(row["body"]),
        "state": row["state_hash"], "effects": effects_digest(row["kind"], row["result"]),
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


def test_report_record(ruleset_id: str, report_hash: str, reviewer: str,
                       at: dt.datetime) -> Record:
    """The record of a deployment's passing test report and who reviewed it."""
    return make_record("admin", {
        "action": "test_report", "subject": ruleset_id, "digest": report_hash,
        "by": reviewer, "at": _utc(at),
    })
