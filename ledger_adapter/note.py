"""C2SP signed-note (c2sp.org/signed-note) with Ed25519 signatures.

A note is UTF-8 text ending in a newline, a blank line, then one or more
signature lines ``— <key name> base64(key ID || signature)``.  Keys are
named; a key is identified by its name *and* its 4-byte key ID
``SHA-256(name || 0x0A || type || public key)[:4]``.

Encodings (all parsers refuse anything but the one canonical form: strict
base64 with zero padding bits, lowercase hex, no stray whitespace):

- verifier key (*vkey*, from the spec): ``<name>+<hex key ID>+base64(type || public key)``
- signer key (*skey*, Go's ``note`` convention, not in the spec):
  ``PRIVATE+KEY+<name>+<hex key ID>+base64(type || 32-byte Ed25519 seed)``

Verification follows the spec: signatures by unknown keys are ignored; a
signature by a known key that fails makes the whole note invalid
(``bad_signature``); a note with no signature by a known key is refused
(``unknown_key``) — two different failures, reported differently.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger_adapter.errors import FormatError, SignatureError

__all__ = [
    "ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Ed25519Signer",
    "Ed25519Verifier",
    "KeyedSigner",
    "KeyedVerifier",
    "NamedKey",
    "Note",
    "NoteSigner",
    "NoteVerifier",
    "Signature",
    "VerifierKey",
    "b64decode",
    "b64encode",
    "check_key_name",
    "check_signatures",
    "format_note",
    "generate_skey",
    "key_id",
    "open_note",
    "parse_note",
    "parse_skey",
    "parse_vkey",
    "sign_note",
]

#: Signature type byte for Ed25519 note signatures (signed-note "Signature types").
ED25519 = 0x01
#: Verifiers MUST accept at least 16 signatures; we accept up to 100 and 1 MB.
MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 1_000_000
_DASH = "\u2014 "  # em dash, space


def b64encode(data: bytes) -> str:
    """Standard base64 (RFC 4648 §4), padded."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, what: str = "base64", code: str = "malformed") -> bytes:
    """Strict standard base64: refuses anything that would not re-encode identically."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise FormatError(f"{what} is not valid base64", code=code) from e
    if base64.b64encode(data).decode("ascii") != text:
        raise FormatError(f"{what} is not canonical base64", code=code)
    return data


def check_key_name(name: str, *, code: str = "malformed_key") -> None:
    """Key names are non-empty, with no Unicode spaces and no ``+`` (signed-note "Format")."""
    if not name:
        raise FormatError("a key name must not be empty", code=code)
    for ch in name:
        if ch == "+" or ch.isspace() or unicodedata.category(ch) == "Zs" or ord(ch) < 0x20 \
                or ord(ch) == 0x7F:
            raise FormatError(f"key name {name!r} contains {ch!r}, which key names may not",
                              code=code)


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """``SHA-256(key name || 0x0A || signature type || public key)[:4]`` as a uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


# --- keys ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A parsed vkey: name, key ID, signature type and public key material."""

    name: str
    key_id: int
    sig_type: int
    public_key: bytes

    def text(self) -> str:
        material = b64encode(bytes([self.sig_type]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{material}"


def _split_key(text: str, parts: int, what: str) -> list[str]:
    if any(ch.isspace() for ch in text):
        raise FormatError(f"{what} must not contain spaces", code="malformed_key")
    fields = text.split("+", parts - 1)  # the base64 part may itself contain '+'
    if len(fields) != parts:
        raise FormatError(f"{what} must have {parts} parts separated by '+'",
                          code="malformed_key")
    return fields


def _parse_hex_id(text: str) -> int:
    if len(text) != 8 or any(c not in "0123456789abcdef" for c in text):
        raise FormatError("a key ID is 8 lowercase hexadecimal digits", code="malformed_key")
    return int(text, 16)


def parse_vkey(text: str) -> VerifierKey:
    """Parse ``<name>+<hex id>+base64(type || key)``; the ID must match the key."""
    name, hex_id, material = _split_key(text, 3, "a verifier key")
    check_key_name(name)
    kid = _parse_hex_id(hex_id)
    raw = b64decode(material, what="the verifier key's public key", code="malformed_key")
    if len(raw) < 2:
        raise FormatError("the verifier key has no public key material", code="malformed_key")
    sig_type, public = raw[0], raw[1:]
    if sig_type in (ED25519, 0x04) and len(public) != 32:
        raise FormatError("an Ed25519 public key is 32 bytes", code="malformed_key")
    if key_id(name, sig_type, public) != kid:
        raise FormatError(f"the key ID {hex_id} does not match key {name}'s public key",
                          code="malformed_key")
    return VerifierKey(name, kid, sig_type, public)


def parse_skey(text: str) -> tuple[str, int, Ed25519PrivateKey]:
    """Parse ``PRIVATE+KEY+<name>+<hex id>+base64(type || seed)``: (name, type, key)."""
    fields = _split_key(text.strip(), 5, "a signer key")
    if fields[0] != "PRIVATE" or fields[1] != "KEY":
        raise FormatError("a signer key starts with PRIVATE+KEY+", code="malformed_key")
    name, hex_id, material = fields[2:]
    check_key_name(name)
    kid = _parse_hex_id(hex_id)
    raw = b64decode(material, what="the signer key", code="malformed_key")
    if len(raw) != 33:
        raise FormatError("an Ed25519 signer key is a type byte and a 32-byte seed",
                          code="malformed_key")
    sig_type = raw[0]
    private = Ed25519PrivateKey.from_private_bytes(raw[1:])
    public = _public_bytes(private.public_key())
    if key_id(name, sig_type, public) != kid:
        raise FormatError(f"the key ID {hex_id} does not match key {name}",
                          code="malformed_key")
    return name, sig_type, private


def generate_skey(name: str, sig_type: int = ED25519) -> str:
    """A new random Ed25519 signer key, as an skey string."""
    check_key_name(name)
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    kid = key_id(name, sig_type, _public_bytes(private.public_key()))
    return f"PRIVATE+KEY+{name}+{kid:08x}+{b64encode(bytes([sig_type]) + seed)}"


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


class NoteSigner(Protocol):
    """Something that signs note text (Go note's ``Signer``)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, text: bytes) -> bytes: ...


class NoteVerifier(Protocol):
    """Something that checks one key's signature on note text (Go note's ``Verifier``)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


class NamedKey:
    """One named Ed25519 key of one signature type (``sig_type``, set by each
    subclass): its name, raw public key, key ID and ``vkey`` text — what every
    signer and verifier here and in ``cosign.py`` shares."""

    sig_type: ClassVar[int]

    def __init__(self, name: str, public_key: bytes) -> None:
        check_key_name(name)
        self._name = name
        self._public = public_key
        self._id = key_id(name, self.sig_type, public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._id

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def vkey(self) -> str:
        return VerifierKey(self._name, self._id, self.sig_type, self._public).text()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"


class KeyedVerifier(NamedKey):
    """What every verifier of one named Ed25519 key shares: the key, reading it from
    a ``vkey``, equality and hashing.  Subclasses set ``sig_type`` and define
    ``verify``; ``vkey_type_error`` is the message for a vkey of another type."""

    vkey_type_error: ClassVar[str] = ("expected a key of signature type 0x{want:02x}, "
                                      "got 0x{got:02x}")

    def __init__(self, name: str, public_key: bytes) -> None:
        super().__init__(name, public_key)
        if len(public_key) != 32:
            raise FormatError("an Ed25519 public key is 32 bytes", code="malformed_key")
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_vkey(cls, text: str) -> Self:
        vk = parse_vkey(text)
        if vk.sig_type != cls.sig_type:
            raise FormatError(f"{vk.name}: " + cls.vkey_type_error.format(
                want=cls.sig_type, got=vk.sig_type), code="malformed_key")
        return cls(vk.name, vk.public_key)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, KeyedVerifier)
        return other._name == self._name and other._public == self._public

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._name, self._public))


class KeyedSigner(NamedKey):
    """What every signer with one named Ed25519 private key shares: the key, reading it
    from an ``skey`` and writing it as one.  Subclasses set ``sig_type`` and define
    ``sign``; ``skey_type_error`` is the message for an skey of another type."""

    skey_type_error: ClassVar[str] = "expected a signer key of type 0x{want:02x}"

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        super().__init__(name, _public_bytes(private_key.public_key()))
        self._key = private_key

    @classmethod
    def read_skey(cls, text: str) -> tuple[str, Ed25519PrivateKey]:
        """The name and private key of an skey of this class's signature type."""
        name, sig_type, private = parse_skey(text)
        if sig_type != cls.sig_type:
            raise FormatError(f"{name}: " + cls.skey_type_error.format(want=cls.sig_type),
                              code="malformed_key")
        return name, private

    @property
    def skey(self) -> str:
        seed = self._key.private_bytes_raw()
        return (f"PRIVATE+KEY+{self._name}+{self._id:08x}+"
                f"{b64encode(bytes([self.sig_type]) + seed)}")


class Ed25519Verifier(KeyedVerifier):
    """Checks Ed25519 note signatures (type 0x01) by one named key."""

    sig_type = ED25519

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


class Ed25519Signer(KeyedSigner):
    """Signs note text with an Ed25519 key (type 0x01): a log's checkpoint key."""

    sig_type = ED25519

    @classmethod
    def from_skey(cls, text: str) -> Self:
        return cls(*cls.read_skey(text))

    @classmethod
    def generate(cls, name: str) -> Self:
        return cls(name, Ed25519PrivateKey.generate())

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self._name, self._public)

    def sign(self, text: bytes) -> bytes:
        return self._key.sign(text)


# --- notes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: the key's name, its ID, and the signature bytes (after the ID)."""

    name: str
    key_id: int
    data: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {b64encode(self.key_id.to_bytes(4, 'big') + self.data)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed, not yet verified, note: its text (with final newline) and signatures."""

    text: str
    signatures: tuple[Signature, ...]

    def to_bytes(self) -> bytes:
        return format_note(self.text, self.signatures)


_TEXT_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")  # control characters but LF


def _check_text(text: str, code: str) -> None:
    if not text.endswith("\n"):
        raise FormatError("note text must end with a newline", code=code)
    bad = _TEXT_CONTROL.search(text)
    if bad is not None:
        raise FormatError(f"note text contains the control character U+{ord(bad.group()):04X}",
                          code=code)


def format_note(text: str, signatures: Sequence[Signature]) -> bytes:
    """``text`` (ending in newline), a blank line, then one line per signature."""
    _check_text(text, "malformed_note")
    if not signatures:
        raise FormatError("a signed note needs at least one signature", code="malformed_note")
    return (text + "\n" + "".join(s.line() for s in signatures)).encode("utf-8")


def parse_note(msg: bytes) -> Note:
    """Parse a signed note without checking signatures; refuse non-canonical bytes."""
    code = "malformed_note"
    if len(msg) > MAX_NOTE_SIZE:
        raise FormatError(f"a note may be at most {MAX_NOTE_SIZE} bytes", code=code)
    try:
        whole = msg.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError("a note must be valid UTF-8", code=code) from e
    _check_text(whole, code)
    split = whole.rfind("\n\n")
    if split < 0:
        raise FormatError("a note needs a blank line before its signatures", code=code)
    text, block = whole[:split + 1], whole[split + 2:]
    if not block:
        raise FormatError("a note needs at least one signature line", code=code)
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"a note may carry at most {MAX_SIGNATURES} signatures", code=code)
    sigs: list[Signature] = []
    for line in lines:
        if not line.startswith(_DASH):
            raise FormatError(f"signature line {line!r} does not start with an em dash and "
                              "a space", code=code)
        name, sep, b64 = line[len(_DASH):].partition(" ")
        if not sep:
            raise FormatError(f"signature line {line!r} has no signature", code=code)
        check_key_name(name, code=code)
        raw = b64decode(b64, what=f"the signature by {name}", code=code)
        if len(raw) < 5:
            raise FormatError(f"the signature by {name} is too short", code=code)
        sigs.append(Signature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return Note(text, tuple(sigs))


def sign_note(text: str, signers: Iterable[NoteSigner]) -> bytes:
    """Sign ``text`` with each signer, in order."""
    data = text.encode("utf-8")
    sigs = [Signature(s.name, s.key_id, s.sign(data)) for s in signers]
    return format_note(text, sigs)


def _index(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, int], NoteVerifier]:
    known: dict[tuple[str, int], NoteVerifier] = {}
    for v in verifiers:
        key = (v.name, v.key_id)
        if key in known and known[key] is not v:
            raise SignatureError(f"two keys named {v.name} share the key ID "
                                 f"{v.key_id:08x}", code="ambiguous_key")
        known[key] = v
    return known


def check_signatures(note: Note, verifiers: Iterable[NoteVerifier]
                     ) -> tuple[list[tuple[NoteVerifier, Signature]], list[Signature]]:
    """Verify every signature by a known key; return (verified, by unknown keys).

    A known key is matched by name *and* key ID; others are ignored (returned
    as unknown).  A known key's signature that fails raises ``bad_signature``.
    A key that signed twice counts once.
    """
    known = _index(verifiers)
    text = note.text.encode("utf-8")
    verified: list[tuple[NoteVerifier, Signature]] = []
    unknown: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        key = (sig.name, sig.key_id)
        v = known.get(key)
        if v is None:
            unknown.append(sig)
            continue
        if not v.verify(text, sig.data):
            raise SignatureError(f"the signature by {sig.name} (key ID {sig.key_id:08x}) does "
                                 "not verify: the signed text was altered or the signature "
                                 "is forged", code="bad_signature")
        if key not in seen:
            seen.add(key)
            verified.append((v, sig))
    return verified, unknown


def describe_signers(sigs: Iterable[Signature]) -> str:
    return ", ".join(f"{s.name} (key ID {s.key_id:08x})" for s in sigs) or "nobody"


def open_note(msg: bytes, verifiers: Iterable[NoteVerifier]
              ) -> tuple[Note, list[tuple[NoteVerifier, Signature]]]:
    """Parse and verify a note: at least one known key must have signed it."""
    note = parse_note(msg)
    verified, unknown = check_signatures(note, verifiers)
    if not verified:
        raise SignatureError("the note is signed only by keys you did not provide: "
                             f"{describe_signers(unknown)}", code="unknown_key")
    return note, verified
