"""Events signed by external organisations (non-repudiation).

An organisation (a mediation centre, a bank) registers an Ed25519 public key
(``jrule admin org-key``).  It may sign an event it submits; the signed
message is the UTF-8 text::

    jrule-event/1
    <canonical JSON of {"event", "idempotency_key", "instance", "payload", "role"}>

(canonical JSON: keys sorted, no spaces, UTF-8 as is; ``idempotency_key`` may be
null).  The API checks the signature against the organisation's registered,
unrevoked key before the event is applied, and the transaction that applies
it also writes an ``event_signatures`` row (the message and signature) and a
``signed_event`` ledger record (instance, seq, org, key id, SHA-256 of the
message, the signature, at): anyone holding the message can later prove, from
the ledger alone, that this organisation sent exactly this event.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, insert, select

from engine.api.errors import ApiError
from engine.runtime.db import Database
from engine.runtime.models import T_ORG_KEYS, T_SIGNATURES
from engine.runtime.results import Outcome, canonical_json
from engine.runtime.service import EngineService, EventSubmission
from ledger_adapter.record import Record, make_record

__all__ = [
    "SignedSubmission",
    "audit_signatures",
    "event_message",
    "message_is_logged_event",
    "record_signatures",
    "signature_verifies",
    "signed_event_record",
    "verify_event_signature",
]

FORMAT = "jrule-event/1"


def event_message(instance: str, event: str, role: str, payload: Mapping[str, Any],
                  idempotency_key: str | None) -> str:
    """The exact text an organisation signs for an event."""
    return FORMAT + "\n" + canonical_json({
        "event": event, "idempotency_key": idempotency_key, "instance": instance,
        "payload": payload, "role": role})


def signature_verifies(public_key: str | None, signature: str, message: str) -> bool:
    """Whether ``signature`` (base64) is the Ed25519 signature of ``message`` (UTF-8) by
    ``public_key`` (base64 of the raw 32 bytes; None: no such key)."""
    if public_key is None:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(base64.b64decode(signature, validate=True), message.encode("utf-8"))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def message_is_logged_event(message: str, instance: str, body: str | None) -> bool:
    """Whether the signed ``message`` is the event whose input-log ``body`` (canonical
    input JSON; None: no such row) the store holds for ``instance``: the same event,
    role, payload and idempotency key."""
    head, _, text = message.partition("\n")
    if head != FORMAT or body is None:
        return False
    try:
        signed, logged = json.loads(text), json.loads(body)
    except ValueError:
        return False
    if not (isinstance(signed, dict) and isinstance(logged, dict)
            and logged.get("input") == "event"):
        return False
    return [signed.get("instance"), signed.get("event"), signed.get("role"),
            canonical_json(signed.get("payload")), signed.get("idempotency_key") or ""] == [
        instance, logged.get("event"), logged.get("role"),
        canonical_json(logged.get("payload")), logged.get("key") or ""]


def signed_event_record(instance: str, seq: int, org: str, key_id: str, message: str,
                        signature: str, at: dt.datetime) -> Record:
    """The ``signed_event`` ledger record of a kept signature (the message by its SHA-256)."""
    return make_record("signed_event", {
        "instance": instance, "seq": seq, "org": org, "key": key_id,
        "message": hashlib.sha256(message.encode("utf-8")).hexdigest(),
        "signature": signature, "at": at})


@dataclass(frozen=True)
class SignedSubmission(EventSubmission):
    """An event with its organisation's verified signature."""

    org: str = ""
    key_id: str = ""
    message: str = ""
    signature: str = ""


def verify_event_signature(db: Database, org: str, key_id: str, signature_b64: str,
                           message: str) -> None:
    """Raise a 401/422 :class:`ApiError` unless ``org``'s key ``key_id`` signed ``message``."""
    with db.read() as conn:
        row = conn.execute(select(T_ORG_KEYS.c.public_key, T_ORG_KEYS.c.revoked_at)
                           .where(T_ORG_KEYS.c.key_id == key_id,
                                  T_ORG_KEYS.c.principal == org)).first()
    if row is None or row.revoked_at is not None:
        raise ApiError(422, "unknown_signing_key",
                       f"{org} has no registered, unrevoked signing key {key_id!r}")
    if not signature_verifies(row.public_key, signature_b64, message):
        raise ApiError(422, "bad_signature",
                       "the event's signature does not verify with the organisation's key "
                       "over the jrule-event/1 message", {"message": message})


def record_signatures(service: EngineService) -> Any:
    """The transaction hook that keeps signatures with their events (and on the ledger)."""

    def hook(conn: Connection, commands: Sequence[Any], outcomes: list[Outcome],
             rows: list[dict[str, Any]]) -> None:
        signed = [(c, o) for c, o in zip(commands, outcomes, strict=True)
                  if isinstance(c, SignedSubmission) and o.accepted and not o.duplicate]
        if not signed:
            return
        now = dt.datetime.now(dt.UTC)
        values = []
        records = []
        for c, o in signed:
            assert o.seq is not None
            values.append({"instance_id": c.instance_id, "seq": o.seq, "principal": c.org,
                           "key_id": c.key_id, "message": c.message,
                           "signature": c.signature, "ledger_index": None,
                           "created_at": now})
            records.append(signed_event_record(c.instance_id, o.seq, c.org, c.key_id,
                                               c.message, c.signature, now))
        if service.ledger is not None:
            for v, index in zip(values, service.append_to_ledger(conn, records), strict=True):
                v["ledger_index"] = index
        conn.execute(insert(T_SIGNATURES), values)

    return hook


def audit_signatures(db: Database, ledger: Any = None) -> list[str]:
    """Check every kept signature; each disagreement as ``location: what``.

    ``jrule admin check-signatures``: the audit's own check of ``event_signatures``
    rows (:func:`engine.audit_service.check_signature_rows`: the signature verifies
    with the organisation's registered key, the message is the event the input log
    holds at (instance, seq) and, with ``ledger``, the ``signed_event`` record at the
    row's ledger index is the one made from the row), on every row at once.
    """
    from engine.audit import StoreAudit
    from engine.audit_service import check_signature_rows

    out = StoreAudit()
    with db.read() as conn:
        rows = conn.execute(select(T_SIGNATURES).order_by(T_SIGNATURES.c.id)).mappings().all()
    check_signature_rows(out.add, out.diff, db.read, ledger, list(rows))
    return out.findings
