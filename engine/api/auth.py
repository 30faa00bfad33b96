"""Who is calling, and may they: API keys, principals, object-level checks.

API keys
    ``jrule_<key id>_<secret>``: a public key id (12 hex digits, what logs and
    the ledger name) and a 256-bit random secret (base64url).  The store keeps
    only ``SHA-256(secret)`` (hex) beside the key id; a key is checked by
    recomputing that hash and comparing in constant time.  A fast hash is
    enough because the secret has full entropy (nothing to brute-force, unlike
    a password).  Send it as ``Authorization: Bearer <key>`` (or
    ``X-API-Key: <key>``).  Revoking a key takes effect within
    ``auth_cache_seconds`` (default 5 s) on every server.

Principals
    A user or an organisation: its roles, its court (``None``: every court),
    and for parties and organisations the party id instances name in their
    ``parties``.

Every refusal (no key, bad key, wrong role, wrong court, not one's own case)
is logged as a JSON line on ``jrule.access`` with who, what and why.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select

from engine.api.errors import ApiError
from engine.api.policy import COURT_STAFF, POLICY, PUBLIC, allowed
from engine.runtime.db import Database
from engine.runtime.models import T_INSTANCES, T_KEYS, T_PRINCIPALS, T_ROLES

__all__ = [
    "AccessDenied",
    "Authenticator",
    "Caller",
    "InstanceMeta",
    "guard",
    "hash_secret",
    "new_api_key",
    "parse_api_key",
]

log = logging.getLogger("jrule.access")


_PREFIX = "jrule_"


@dataclass(frozen=True)
class Caller:
    """An authenticated principal."""

    name: str
    kind: str
    court: str | None
    party_id: str | None
    roles: frozenset[str]
    key_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "court": self.court,
                "party_id": self.party_id, "roles": sorted(self.roles), "key_id": self.key_id}


@dataclass(frozen=True)
class InstanceMeta:
    """What access decisions need to know about an instance (never changes once created)."""

    id: str
    court: str | None
    contract_name: str
    parties: Mapping[str, str] = field(default_factory=dict)


class AccessDenied(ApiError):
    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(403, "forbidden", message, details)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (key id, the key to hand out, the hash to store)."""
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return key_id, f"{_PREFIX}{key_id}_{secret}", hash_secret(secret)


def parse_api_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    if not token.startswith(_PREFIX):
        return None
    key_id, sep, secret = token[len(_PREFIX):].partition("_")
    if not sep or len(key_id) != 12 or not secret or len(secret) > 100:
        return None
    return key_id, secret


def refusal(request: Request | None, who: str, operation: str, reason: str,
            status: int = 403) -> None:
    """Log one refused authorisation decision (JSON on ``jrule.access``)."""
    log.warning(json.dumps({
        "event": "access_refused", "status": status, "principal": who,
        "operation": operation, "reason": reason,
        "method": request.method if request is not None else None,
        "path": request.url.path if request is not None else None,
    }, ensure_ascii=False))


class Authenticator:
    """Looks API keys up (hashed), with a short cache so the hot path does not read the DB."""

    def __init__(self, db: Database, cache_seconds: float = 5.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str, Caller | None]] = {}
        self._instances: OrderedDict[str, InstanceMeta] = OrderedDict()
        self._lock = threading.Lock()

    def caller(self, token: str) -> Caller | None:
        parsed = parse_api_key(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        digest = hash_secret(secret)
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is None or now - hit[0] > self.cache_seconds:
            stored, caller = self._load(key_id)
            hit = (now, stored, caller)
            self._cache[key_id] = hit
        _, stored, caller = hit
        if caller is None or not hmac.compare_digest(stored, digest):
            return None
        return caller

    def _load(self, key_id: str) -> tuple[str, Caller | None]:
        k, p, r = T_KEYS.c, T_PRINCIPALS.c, T_ROLES.c
        with self.db.read() as conn:
            row = conn.execute(
                select(k.secret_hash, k.revoked_at, p.name, p.kind, p.court, p.party_id,
                       p.active).join(T_PRINCIPALS, p.name == k.principal)
                .where(k.key_id == key_id)).first()
            if row is None or row.revoked_at is not None or not row.active:
                return "", None
            roles = frozenset(conn.scalars(select(r.role).where(r.principal == row.name)))
        return row.secret_hash, Caller(row.name, row.kind, row.court, row.party_id, roles,
                                       key_id)

    def forget(self) -> None:
        """Drop cached keys (after an admin change in this process)."""
        self._cache.clear()

    # --- instances -----------------------------------------------------------------
    def cached_instance(self, instance_id: str) -> InstanceMeta | None:
        """The instance's access facts if this process already knows them (no I/O)."""
        with self._lock:
            return self._instances.get(instance_id)

    def instance(self, instance_id: str) -> InstanceMeta | None:
        with self._lock:
            meta = self._instances.get(instance_id)
        if meta is not None:
            return meta
        with self.db.read() as conn:
            row = conn.execute(_INSTANCE_META, {"id": instance_id}).first()
        if row is None:
            return None
        parties = json.loads(row.parties) if row.parties else {}
        meta = InstanceMeta(instance_id, row.court, row.contract_name,
                            {str(k): str(v) for k, v in parties.items()})
        with self._lock:
            self._instances[instance_id] = meta
            while len(self._instances) > 100_000:
                self._instances.popitem(last=False)
        return meta


#: built once: building the statement cost half of a lookup
_INSTANCE_META = select(T_INSTANCES.c.court, T_INSTANCES.c.contract_name,
                        T_INSTANCES.c.parties).where(T_INSTANCES.c.id == bindparam("id"))

_bearer = HTTPBearer(auto_error=False, description="an API key: `jrule_<key id>_<secret>`")


def guard(operation: str) -> Callable[..., Awaitable[Caller | None]]:
    """A FastAPI dependency: authenticate, then check :data:`POLICY` for ``operation``."""
    if operation not in POLICY:
        raise KeyError(f"operation {operation!r} is not in the access policy")

    async def check(request: Request,
                    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
                    ) -> Caller | None:
        if POLICY[operation] is PUBLIC:
            return None
        token = credentials.credentials if credentials is not None else \
            request.headers.get("x-api-key")
        if not token:
            refusal(request, "-", operation, "no API key", 401)
            raise ApiError(401, "unauthenticated",
                           "this call needs an API key: Authorization: Bearer <key>")
        authenticator: Authenticator = request.app.state.runtime.authenticator
        caller = authenticator.caller(token)
        if caller is None:
            refusal(request, "-", operation, "unknown, revoked or malformed API key", 401)
            raise ApiError(401, "unauthenticated", "the API key is unknown or revoked")
        request.state.principal = caller.name
        if not allowed(operation, caller.roles):
            reason = f"roles {sorted(caller.roles)} may not call {operation}"
            refusal(request, caller.name, operation, reason)
            raise AccessDenied(reason, {"operation": operation,
                                        "allowed_roles": sorted(POLICY[operation])})
        return caller

    return check


def _is_party(caller: Caller, meta: InstanceMeta) -> bool:
    ident = caller.party_id or caller.name
    return ident in meta.parties.values()


def check_instance(request: Request, caller: Caller, meta: InstanceMeta | None,
                   operation: str, instance_id: str, *,
                   mediation_contracts: frozenset[str] = frozenset()) -> InstanceMeta:
    """Object-level check: may ``caller`` do ``operation`` on this instance?

    Unknown instances are 404 for court staff, but 403 for parties and
    organisations (who must not learn which case ids exist).
    """
    roles = caller.roles
    staff = bool(roles & (COURT_STAFF | {"admin"}))
    if meta is None:
        if staff:
            raise ApiError(404, "not_found", f"no instance `{instance_id}`")
        refusal(request, caller.name, operation, f"instance {instance_id} is not its own")
        raise AccessDenied("not one of your cases")
    if staff and (caller.court is None or caller.court == meta.court):
        return meta
    if "party" in roles and _is_party(caller, meta) and not operation.startswith("submit"):
        return meta
    if "mediation_centre" in roles and _is_party(caller, meta) \
            and meta.contract_name in mediation_contracts:
        return meta
    if "bank" in roles and operation == "submit_event" \
            and (caller.court is None or caller.court == meta.court):
        return meta
    reason = (f"instance {instance_id} belongs to court {meta.court}" if staff
              else f"instance {instance_id} is not one of {caller.name}'s cases")
    refusal(request, caller.name, operation, reason)
    raise AccessDenied(reason)


def court_of(caller: Caller, wanted: str | None) -> str | None:
    """The court a new instance is created in: the caller's own (or, for a principal of
    every court, the one asked for)."""
    if caller.court is None:
        return wanted
    if wanted is not None and wanted != caller.court:
        raise AccessDenied(f"{caller.name} may create instances only in court {caller.court}")
    return caller.court


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
