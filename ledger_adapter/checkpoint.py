"""C2SP tlog-checkpoint: the signed tree head, as a signed note.

The note text is exactly (c2sp.org/tlog-checkpoint, "Note text")::

    <origin>
    <tree size, decimal, no leading zeroes>
    <root hash, base64>
    [<extension line>...]

The log signs it with its Ed25519 key named after the origin; witnesses add
cosignatures (``ledger_adapter.cosign``).  :func:`parse_checkpoint` refuses
anything but this canonical text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ledger_adapter.errors import FormatError
from ledger_adapter.merkle import HASH_SIZE
from ledger_adapter.note import (
    Note,
    NoteSigner,
    NoteVerifier,
    Signature,
    b64decode,
    b64encode,
    open_note,
    parse_note,
    sign_note,
)

__all__ = [
    "Checkpoint",
    "SignedCheckpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "parse_decimal",
    "sign_checkpoint",
]

_CODE = "malformed_checkpoint"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_U64 = 1 << 64


def parse_decimal(text: str, what: str, code: str) -> int:
    """An ASCII decimal with no leading zeroes (unless it is ``0``), below 2**64."""
    if not _DECIMAL.fullmatch(text) or len(text) > 20:
        raise FormatError(f"{what} {text!r} is not a decimal number without leading zeroes",
                          code=code)
    value = int(text)
    if value >= _U64:
        raise FormatError(f"{what} {text} is too large", code=code)
    return value


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's origin, its size and root hash (RFC 6962 MTH)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "the origin")
        if not 0 <= self.size < _U64:
            raise FormatError(f"tree size {self.size} is out of range", code=_CODE)
        if len(self.root) != HASH_SIZE:
            raise FormatError("a root hash is 32 bytes", code=_CODE)
        for line in self.extensions:
            _check_line(line, "an extension line")

    def text(self) -> str:
        """The note text, ending in a newline."""
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"


_LINE_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _check_line(line: str, what: str) -> None:
    if not line:
        raise FormatError(f"{what} must not be empty", code=_CODE)
    if _LINE_CONTROL.search(line):
        raise FormatError(f"{what} contains a control character", code=_CODE)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (with its final newline), canonically."""
    if not text.endswith("\n"):
        raise FormatError("checkpoint text must end with a newline", code=_CODE)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError("a checkpoint has an origin, a size and a root hash line", code=_CODE)
    origin, size_text, root_text, *extensions = lines
    _check_line(origin, "the origin")
    size = parse_decimal(size_text, "tree size", _CODE)
    root_hash = b64decode(root_text, what="the root hash", code=_CODE)
    if len(root_hash) != HASH_SIZE:
        raise FormatError("the root hash is not 32 bytes", code=_CODE)
    for line in extensions:
        _check_line(line, "an extension line")
    return Checkpoint(origin, size, root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Iterable[NoteSigner]) -> bytes:
    """The checkpoint as a note signed by each signer (a log key; at rotation, two)."""
    return sign_note(checkpoint.text(), signers)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint as issued by the log: the parsed head and the signed note bytes.

    ``note`` carries the log's signature(s) and any witness cosignatures.
    """

    checkpoint: Checkpoint
    note: bytes

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @classmethod
    def from_note(cls, note: bytes) -> SignedCheckpoint:
        """Parse (not verify) a signed checkpoint note."""
        parsed = parse_note(note)
        return cls(parse_checkpoint(parsed.text), note)

    def signatures(self) -> tuple[Signature, ...]:
        return parse_note(self.note).signatures


def open_checkpoint(note: bytes, verifiers: Iterable[NoteVerifier]
                    ) -> tuple[Checkpoint, Note, list[tuple[NoteVerifier, Signature]]]:
    """Parse and verify a signed checkpoint (some listed key must have signed it)."""
    parsed, verified = open_note(note, verifiers)
    return parse_checkpoint(parsed.text), parsed, verified
