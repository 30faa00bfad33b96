"""Courts, principals, roles and keys: the service's administration, recorded on the ledger.

Every change is one transaction that also appends an ``admin`` record
(``action``, ``subject``, ``digest`` = SHA-256 of the change's canonical JSON,
``by``, ``at``) to the ledger (``jrule audit`` recomputes each digest from the
rows, ``engine/audit_service.py``), so who was given which power, and when, is as
tamper-evident as what the engine did.  Secrets never reach the ledger or the
database: an API key's secret is shown once, to the caller.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.api.auth import new_api_key
from engine.api.policy import ROLES
from engine.runtime.db import Database
from engine.runtime.errors import EngineError, NotFound
from engine.runtime.models import T_COURTS, T_KEYS, T_ORG_KEYS, T_PRINCIPALS, T_ROLES
from engine.runtime.results import canonical_json
from ledger_adapter.record import make_record

__all__ = ["AdminError", "Administration"]

KINDS = ("user", "org")


class AdminError(EngineError):
    code = "admin_refused"


class Administration:
    """Administrative writes on ``db``, each recorded on ``ledger`` (when there is one)."""

    def __init__(self, db: Database, ledger: Any = None) -> None:
        self.db = db
        self.ledger = ledger

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def _record(self, conn: Connection, action: str, subject: str, change: dict[str, Any],
                by: str) -> int | None:
        if self.ledger is None:
            return None
        digest = hashlib.sha256(canonical_json(change).encode("utf-8")).hexdigest()
        record = make_record("admin", {"action": action, "subject": subject[:1000],
                                       "digest": digest, "by": by, "at": self._now()})
        with Session(bind=conn) as session:
            entries = self.ledger.append([record], session=session)
            session.flush()
        return int(entries[0].index)

    def _write(self, action: str, subject: str, change: dict[str, Any], by: str,
               statements: Sequence[Any]) -> dict[str, Any]:
        try:
            with self.db.write() as conn:
                for stmt in statements:
                    conn.execute(stmt)
                index = self._record(conn, action, subject, change, by)
        except IntegrityError as exc:
            raise AdminError(f"{action} {subject}: refused by the store "
                             f"(already exists, or refers to something missing): "
                             f"{exc.orig}") from None
        return {"action": action, "subject": subject, **change, "ledger_index": index}

    # --- courts and principals ------------------------------------------------------
    def create_court(self, code: str, name: str, by: str) -> dict[str, Any]:
        _check_name("court code", code)
        return self._write("create_court", code, {"name": name}, by, [
            insert(T_COURTS).values(code=code, name=name, created_at=self._now())])

    def add_principal(self, name: str, kind: str, court: str | None, roles: Sequence[str],
                      by: str, party_id: str | None = None) -> dict[str, Any]:
        _check_name("principal name", name)
        if kind not in KINDS:
            raise AdminError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        _check_roles(roles)
        if court is not None:
            self._require_court(court)
        now = self._now()
        stmts: list[Any] = [insert(T_PRINCIPALS).values(
            name=name, kind=kind, court=court, party_id=party_id, active=True, created_at=now)]
        stmts += [insert(T_ROLES).values(principal=name, role=r, granted_at=now, granted_by=by)
                  for r in sorted(set(roles))]
        return self._write("add_principal", name, {"kind": kind, "court": court,
                                                   "party_id": party_id,
                                                   "roles": sorted(set(roles))}, by, stmts)

    def grant(self, name: str, role: str, by: str) -> dict[str, Any]:
        _check_roles([role])
        self._require_principal(name)
        return self._write("grant_role", name, {"role": role}, by, [
            insert(T_ROLES).values(principal=name, role=role, granted_at=self._now(),
                                   granted_by=by)])

    def revoke(self, name: str, role: str, by: str) -> dict[str, Any]:
        _check_roles([role])
        self._require_principal(name)
        return self._write("revoke_role", name, {"role": role}, by, [
            delete(T_ROLES).where(T_ROLES.c.principal == name, T_ROLES.c.role == role)])

    def deactivate(self, name: str, by: str) -> dict[str, Any]:
        self._require_principal(name)
        return self._write("deactivate_principal", name, {}, by, [
            update(T_PRINCIPALS).where(T_PRINCIPALS.c.name == name).values(active=False)])

    # --- keys ----------------------------------------------------------------------
    def issue_key(self, name: str, by: str) -> tuple[str, dict[str, Any]]:
        """A new API key for ``name``: (the key, shown once; the record of it)."""
        self._require_principal(name)
        key_id, token, digest = new_api_key()
        # the record's digest covers the secret's hash too: a hash swapped in the store
        # (to a secret someone else knows) no longer matches it (jrule audit)
        done = self._write("issue_key", name, {"key_id": key_id, "secret_hash": digest}, by, [
            insert(T_KEYS).values(key_id=key_id, principal=name, secret_hash=digest,
                                  created_at=self._now(), revoked_at=None)])
        done.pop("secret_hash")
        return token, done

    def revoke_key(self, key_id: str, by: str) -> dict[str, Any]:
        with self.db.read() as conn:
            owner = conn.scalar(select(T_KEYS.c.principal).where(T_KEYS.c.key_id == key_id))
        if owner is None:
            raise NotFound(f"no API key {key_id}")
        return self._write("revoke_key", owner, {"key_id": key_id}, by, [
            update(T_KEYS).where(T_KEYS.c.key_id == key_id).values(revoked_at=self._now())])

    def register_org_key(self, name: str, public_key_b64: str, by: str) -> dict[str, Any]:
        """Register an organisation's Ed25519 public key (32 bytes, base64)."""
        self._require_principal(name)
        try:
            raw = base64.b64decode(public_key_b64, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise AdminError("an Ed25519 public key is 32 bytes, given as base64")
        key_id = hashlib.sha256(raw).hexdigest()[:16]
        return self._write("register_org_key", name, {"key_id": key_id,
                                                      "public_key": public_key_b64}, by, [
            insert(T_ORG_KEYS).values(key_id=key_id, principal=name, public_key=public_key_b64,
                                      created_at=self._now(), revoked_at=None)])

    def revoke_org_key(self, key_id: str, by: str) -> dict[str, Any]:
        with self.db.read() as conn:
            owner = conn.scalar(select(T_ORG_KEYS.c.principal)
                                .where(T_ORG_KEYS.c.key_id == key_id))
        if owner is None:
            raise NotFound(f"no organisation key {key_id}")
        return self._write("revoke_org_key", owner, {"key_id": key_id}, by, [
            update(T_ORG_KEYS).where(T_ORG_KEYS.c.key_id == key_id)
            .values(revoked_at=self._now())])

    # --- reading -------------------------------------------------------------------
    def listing(self) -> dict[str, Any]:
        with self.db.read() as conn:
            courts = [dict(r._mapping) for r in conn.execute(
                select(T_COURTS.c.code, T_COURTS.c.name).order_by(T_COURTS.c.code))]
            principals = []
            for p in conn.execute(select(T_PRINCIPALS).order_by(T_PRINCIPALS.c.name)):
                roles = sorted(conn.scalars(select(T_ROLES.c.role)
                                            .where(T_ROLES.c.principal == p.name)))
                keys = [{"key_id": k.key_id, "revoked": k.revoked_at is not None}
                        for k in conn.execute(select(T_KEYS.c.key_id, T_KEYS.c.revoked_at)
                                              .where(T_KEYS.c.principal == p.name))]
                principals.append({"name": p.name, "kind": p.kind, "court": p.court,
                                   "party_id": p.party_id, "active": p.active,
                                   "roles": roles, "keys": keys})
        return {"courts": courts, "principals": principals}

    def has_principals(self) -> bool:
        with self.db.read() as conn:
            return conn.scalar(select(T_PRINCIPALS.c.name).limit(1)) is not None

    def _require_court(self, code: str) -> None:
        with self.db.read() as conn:
            if conn.scalar(select(T_COURTS.c.code).where(T_COURTS.c.code == code)) is None:
                raise NotFound(f"no court {code!r} (create it first: jrule admin court "
                               f"{code} NAME)")

    def _require_principal(self, name: str) -> None:
        with self.db.read() as conn:
            if conn.scalar(select(T_PRINCIPALS.c.name).where(T_PRINCIPALS.c.name == name)) \
                    is None:
                raise NotFound(f"no principal {name!r}")


def _check_name(what: str, value: str) -> None:
    if not value or len(value) > 200 or value != value.strip() \
            or any(ord(c) < 32 for c in value):
        raise AdminError(f"{what} must be 1-200 characters without control characters or "
                         f"surrounding spaces: {value!r}")


def _check_roles(roles: Sequence[str]) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise AdminError(f"unknown role(s) {', '.join(unknown)}; roles are "
                         f"{', '.join(ROLES)}")
