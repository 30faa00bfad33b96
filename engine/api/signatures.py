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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, insert, select

from engine.api.errors import ApiError
from engine.runtime.db import Database
from engine.runtime.models import T_INPUTS, T_ORG_KEYS, T_SIGNATURES
from engine.runtime.results import Outcome, canonical_json
from engine.runtime.service import EngineService, EventSubmission
from ledger_adapter.record import make_record

__all__ = [
    "SignedSubmission",
    "audit_signatures",
    "event_message",
    "record_signatures",
    "verify_event_signature",
]

FORMAT = "jrule-event/1"


def event_message(instance: str, event: str, role: str, payload: Mapping[str, Any],
                  idempotency_key: str | None) -> str:
    """The exact text an organisation signs for an event."""
    return FORMAT + "\n" + canonical_json({
        "event": event, "idempotency_key": idempotency_key, "instance": instance,
        "payload": payload, "role": role})


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
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(row.public_key))
        key.verify(signature, message.encode("utf-8"))
    except (binascii.Error, ValueError, InvalidSignature):
        raise ApiError(422, "bad_signature",
                       "the event's signature does not verify with the organisation's key "
                       "over the jrule-event/1 message", {"message": message}) from None


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
            records.append(make_record("signed_event", {
                "instance": c.instance_id, "seq": o.seq, "org": c.org, "key": c.key_id,
                "message": hashlib.sha256(c.message.encode("utf-8")).hexdigest(),
                "signature": c.signature, "at": now}))
        if service.ledger is not None:
            for v, index in zip(values, service.append_to_ledger(conn, records), strict=True):
                v["ledger_index"] = index
        conn.execute(insert(T_SIGNATURES), values)

    return hook


def audit_signatures(db: Database, ledger: Any = None) -> list[str]:
    """Check every kept signature; each disagreement as ``location: what``.

    For each ``event_signatures`` row: the signature verifies with the
    organisation's registered key over the stored message; the message is the
    event the input log holds at (instance, seq) (event, role, payload,
    idempotency key); and, with ``ledger``, the ``signed_event`` record at the
    row's ledger index is the one recomputed from the row.
    """
    import json

    findings: list[str] = []
    s, k, n = T_SIGNATURES.c, T_ORG_KEYS.c, T_INPUTS.c
    with db.read() as conn:
        rows = conn.execute(select(T_SIGNATURES).order_by(s.id)).all()
        keys = {(r.principal, r.key_id): r.public_key
                for r in conn.execute(select(k.principal, k.key_id, k.public_key))}
        bodies = {(r.instance_id, r.seq): r.body for r in conn.execute(
            select(n.instance_id, n.seq, n.body).where(
                n.instance_id.in_({r.instance_id for r in rows})))} if rows else {}
    for r in rows:
        where = f"event_signatures[id={r.id}]"
        public = keys.get((r.principal, r.key_id))
        try:
            if public is None:
                raise InvalidSignature
            Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(
                base64.b64decode(r.signature, validate=True), r.message.encode("utf-8"))
        except (InvalidSignature, binascii.Error, ValueError):
            findings.append(f"{where}.signature: does not verify with {r.principal}'s key "
                            f"{r.key_id}")
        body = bodies.get((r.instance_id, r.seq))
        head, _, text = r.message.partition("\n")
        try:
            signed = json.loads(text) if head == FORMAT else None
        except ValueError:
            signed = None
        logged = json.loads(body) if body is not None else None
        if signed is None or logged is None or logged.get("input") != "event" or [
                signed.get("instance"), signed.get("event"), signed.get("role"),
                canonical_json(signed.get("payload")), signed.get("idempotency_key") or ""] != [
                r.instance_id, logged.get("event"), logged.get("role"),
                canonical_json(logged.get("payload")), logged.get("key") or ""]:
            findings.append(f"{where}.message: is not the event logged at inputs"
                            f"[{r.instance_id}, seq {r.seq}]")
        if ledger is not None and r.ledger_index is not None:
            want = make_record("signed_event", {
                "instance": r.instance_id, "seq": r.seq, "org": r.principal, "key": r.key_id,
                "message": hashlib.sha256(r.message.encode("utf-8")).hexdigest(),
                "signature": r.signature, "at": r.created_at})
            try:
                got = ledger.entry(int(r.ledger_index)).record
            except Exception as exc:
                findings.append(f"{where}.ledger_index: no ledger entry ({exc})")
                continue
            if got != want:
                findings.append(f"{where}: disagrees with ledger entry {r.ledger_index}")
    return findings
