"""Signed HTTP delivery: the engine POSTs each action to a receiving system.

The request (the contract is ``docs/receiving-systems.md``):

- body: the canonical JSON object (sorted keys, no spaces, UTF-8, non-ASCII
  kept) ``{"action", "args", "attempt", "cite", "instance", "key", "parties",
  "rule", "sent_at"}``;
- ``Idempotency-Key``: the key, UTF-8 percent-encoded (``:`` and RFC 3986
  unreserved characters kept as they are);
- ``X-Jrule-Key-Id``: which engine key signed it;
- ``X-Jrule-Signature: ed25519=<base64 of the Ed25519 signature over the
  exact body bytes>``.

The reply decides what the dispatcher does: 2xx (a JSON object) is the
receipt; 409 with ``{"receipt": {...}}`` is "already processed" and counts as
success; 408, 429, 5xx, timeouts and connection errors are transient; any
other status is permanent.  Redirects are not followed (permanent).

:func:`verify_webhook` is the check a receiving system runs; it uses only the
standard library and ``cryptography`` so it can be copied as it is.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import http.client
import json
import ssl
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from engine.runtime.clock import Clock, SystemClock
from engine.runtime.handlers import Delivery, PermanentFailure, Receipt, TransientFailure

__all__ = [
    "MAX_REPLY_BYTES",
    "WebhookHandler",
    "canonical_body",
    "encode_key_header",
    "load_private_key",
    "load_public_key",
    "verify_webhook",
    "write_key_pair",
]

MAX_REPLY_BYTES = 1 << 20
_ERROR_TEXT = 1000  # characters of a reply kept in an error message
_SIGNATURE_PREFIX = "ed25519="


def canonical_body(payload: Mapping[str, Any]) -> bytes:
    """The one byte encoding of a request body: sorted keys, compact, UTF-8."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def encode_key_header(key: str) -> str:
    """The ``Idempotency-Key`` header value for ``key`` (percent-encoded UTF-8)."""
    return urllib.parse.quote(key, safe=":")


def _instant(t: dt.datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("the clock gave a naive datetime; use UTC instants")
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookHandler:
    """Delivers by a signed HTTP POST to one URL (``http`` or ``https``).

    ``timeout`` (seconds) bounds connecting and each read; ``clock`` gives
    ``sent_at`` (the runtime's clock, so rehearsals on a virtual clock send
    virtual instants).
    """

    def __init__(
        self,
        url: str,
        signing_key: Ed25519PrivateKey,
        key_id: str,
        timeout: float = 10.0,
        clock: Clock | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http(s)://host/...: {url!r}")
        if not key_id or not key_id.isascii() or any(c in key_id for c in "\r\n"):
            raise ValueError("key_id must be a non-empty ASCII header value")
        self.url = url
        self._parts = parts
        self._signing_key = signing_key
        self._key_id = key_id
        self._timeout = timeout
        self._clock: Clock = clock or SystemClock()
        self._ssl_context = ssl_context

    def request_for(self, delivery: Delivery) -> tuple[bytes, dict[str, str]]:
        """The exact body bytes and headers sent for ``delivery``."""
        body = canonical_body(
            {
                "key": delivery.key,
                "action": delivery.action,
                "args": dict(delivery.args),
                "instance": delivery.instance_id,
                "parties": dict(delivery.parties),
                "cite": delivery.cite,
                "rule": delivery.rule_span,
                "attempt": delivery.attempt,
                "sent_at": _instant(self._clock.now()),
            }
        )
        signature = base64.b64encode(self._signing_key.sign(body)).decode("ascii")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": encode_key_header(delivery.key),
            "X-Jrule-Key-Id": self._key_id,
            "X-Jrule-Signature": _SIGNATURE_PREFIX + signature,
            "User-Agent": "jrule-dispatcher/1",
        }
        return body, headers

    def deliver(self, delivery: Delivery) -> Receipt:
        body, headers = self.request_for(delivery)
        try:
            status, reason, reply_headers, data = self._post(body, headers)
        except TimeoutError as e:
            raise TransientFailure(f"timed out after {self._timeout:g} s: {e}") from e
        except (OSError, http.client.HTTPException) as e:
            raise TransientFailure(f"connection failed: {type(e).__name__}: {e}") from e
        return self._interpret(status, reason, reply_headers, data)

    def _post(
        self, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, http.client.HTTPMessage, bytes]:
        parts = self._parts
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self._timeout,
                context=self._ssl_context or ssl.create_default_context(),
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                              timeout=self._timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            conn.request("POST", path, body=body, headers=dict(headers))
            response = conn.getresponse()
            data = response.read(MAX_REPLY_BYTES + 1)
            return response.status, response.reason, response.headers, data
        finally:
            conn.close()

    def _interpret(
        self, status: int, reason: str, headers: http.client.HTTPMessage, data: bytes
    ) -> Receipt:
        text = data[:MAX_REPLY_BYTES].decode("utf-8", errors="replace")
        shown = text[:_ERROR_TEXT]
        if 200 <= status < 300:
            reply = _json_object(data)
            if reply is None:
                raise TransientFailure(f"HTTP {status} reply is not a JSON object: {shown!r}")
            return reply
        if status == 409:
            reply = _json_object(data)
            receipt = None if reply is None else reply.get("receipt")
            if isinstance(receipt, dict):
                return receipt
            raise PermanentFailure(f"HTTP 409 {reason} without a stored receipt: {shown}")
        if status in (408, 429) or status >= 500:
            raise TransientFailure(f"HTTP {status} {reason}: {shown}",
                                   retry_after=self._retry_after(headers))
        raise PermanentFailure(f"HTTP {status} {reason}: {shown}")

    def _retry_after(self, headers: http.client.HTTPMessage) -> float | None:
        value = headers.get("Retry-After")
        if value is None:
            return None
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, (when - self._clock.now()).total_seconds())


def _json_object(data: bytes) -> dict[str, Any] | None:
    if len(data) > MAX_REPLY_BYTES:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- what a receiving system runs (copy it; docs/receiving-systems.md) --------


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    public_key: Ed25519PublicKey | Mapping[str, Ed25519PublicKey],
) -> bool:
    """Whether a request really comes from the engine, unaltered.

    ``body`` is the exact bytes received, ``headers`` the request headers
    (any case), ``public_key`` the engine's key or a map from
    ``X-Jrule-Key-Id`` to keys (for key rotation).  True only when the
    signature over the body verifies and the ``Idempotency-Key`` header names
    the same key as the signed body, so a signed body cannot be replayed
    under a fresh key.
    """
    h = {name.lower(): value for name, value in headers.items()}
    if isinstance(public_key, Ed25519PublicKey):
        key: Ed25519PublicKey | None = public_key
    else:
        key = public_key.get(h.get("x-jrule-key-id", ""))
    signature = h.get("x-jrule-signature", "")
    if key is None or not signature.startswith("ed25519="):
        return False
    try:
        key.verify(base64.b64decode(signature[len("ed25519="):], validate=True), body)
        payload = json.loads(body.decode("utf-8"))
        header_key = urllib.parse.unquote(h.get("idempotency-key", ""), errors="strict")
    except (InvalidSignature, ValueError):
        return False
    return isinstance(payload, dict) and payload.get("key") == header_key


# --- keys ----------------------------------------------------------------------


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an unencrypted PKCS#8 PEM Ed25519 private key."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read a SubjectPublicKeyInfo PEM Ed25519 public key."""
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


def write_key_pair(directory: str | Path, name: str = "webhook") -> tuple[Path, Path]:
    """Create ``NAME.key`` (private, mode 0600) and ``NAME.pub`` in ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    private_path.touch(mode=0o600, exist_ok=False)
    private_path.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    public_path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m engine.runtime.webhook keygen DIR``: make a signing key pair."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "keygen":
        print("usage: python -m engine.runtime.webhook keygen DIR", file=sys.stderr)
        return 2
    private_path, public_path = write_key_pair(args[1])
    print(f"private key: {private_path}\npublic key:  {public_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
