"""C2SP tlog-cosignature: timestamped Ed25519 witness cosignatures (type 0x04).

A cosignature is a note signature on a checkpoint by a *witness* (another
organisation: a mediation centre, another court) saying "as of time T, this
is the largest consistent tree I have seen for this log".  Per the spec
("Ed25519 signed message") the signed message is::

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint text, including its final newline>

and the signature bytes are ``uint64 timestamp || 64-byte Ed25519 signature``
(``timestamped_signature``, big-endian).  The key ID is
``SHA-256(name || 0x0A || 0x04 || public key)[:4]``.

:func:`verify_cosignatures` applies a k-of-n policy: it counts distinct
witnesses whose cosignatures verify and refuses if fewer than ``required``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from ledger_adapter.errors import SignatureError
from ledger_adapter.note import (
    KeyedSigner,
    KeyedVerifier,
    Note,
    NoteVerifier,
    check_signatures,
)

__all__ = [
    "COSIGNATURE_V1",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosigned_message",
    "verify_cosignatures",
]

#: Signature type byte for timestamped Ed25519 checkpoint cosignatures.
COSIGNATURE_V1 = 0x04
_MAX_TIMESTAMP = (1 << 63) - 1


def cosigned_message(checkpoint_text: bytes, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs (tlog-cosignature "Ed25519 signed message")."""
    return b"cosignature/v1\ntime " + str(timestamp).encode("ascii") + b"\n" + checkpoint_text


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified cosignature: which witness, and the time it vouched for."""

    name: str
    key_id: int
    timestamp: int


class CosignatureVerifier(KeyedVerifier):
    """Checks one witness's cosignature/v1 signatures."""

    sig_type = COSIGNATURE_V1
    vkey_type_error = "a witness key has signature type 0x04 (cosignature/v1), not 0x{got:02x}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 8 + 64:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return False
        try:
            self._key.verify(signature[8:], cosigned_message(text, timestamp))
        except InvalidSignature:
            return False
        return True


class CosignatureSigner(KeyedSigner):
    """A witness's signing key: cosigns checkpoint text with the current time."""

    sig_type = COSIGNATURE_V1
    skey_type_error = "a witness signer key has type 0x04"

    def __init__(self, name: str, private_key: Ed25519PrivateKey,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, private_key)
        self._clock = clock

    @classmethod
    def from_skey(cls, text: str, clock: Callable[[], float] = time.time) -> Self:
        name, private = cls.read_skey(text)
        return cls(name, private, clock)

    @classmethod
    def generate(cls, name: str, clock: Callable[[], float] = time.time) -> Self:
        return cls(name, Ed25519PrivateKey.generate(), clock)

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self._name, self._public)

    def sign(self, text: bytes) -> bytes:
        timestamp = int(self._clock())
        if not 0 < timestamp <= _MAX_TIMESTAMP:
            raise ValueError("the cosignature timestamp must be positive")
        return timestamp.to_bytes(8, "big") + self._key.sign(cosigned_message(text, timestamp))


def verify_cosignatures(note: Note, witnesses: Iterable[CosignatureVerifier],
                        required: int = 0) -> list[Cosignature]:
    """Verify the cosignatures on ``note`` by the given witnesses; require ``required``.

    Signatures by other keys (the log's, unknown witnesses') are ignored.  A
    cosignature by a listed witness that fails raises ``bad_signature``; fewer
    than ``required`` distinct valid witnesses raises ``not_enough_witnesses``.
    """
    listed: Sequence[NoteVerifier] = list(witnesses)
    if required > len(listed):
        raise SignatureError(f"{required} witnesses are required but only {len(listed)} "
                             "witness keys were given", code="not_enough_witnesses")
    verified, _ = check_signatures(note, listed)
    found = [Cosignature(sig.name, sig.key_id, int.from_bytes(sig.data[:8], "big"))
             for _, sig in verified]
    if len(found) < required:
        have = ", ".join(c.name for c in found) or "none"
        raise SignatureError(f"{required} witness cosignatures are required; "
                             f"{len(found)} verified ({have})", code="not_enough_witnesses")
    return found
