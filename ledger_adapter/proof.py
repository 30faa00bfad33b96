"""C2SP tlog-proof: an offline-verifiable proof that an entry is in a log.

Format (c2sp.org/tlog-proof, "Format"), lines separated by newlines::

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>          (optional)
    index <leaf index, decimal>
    <base64 inclusion proof hash>       (zero or more, leaf's sibling first)

    <the checkpoint note, verbatim, with its signatures and cosignatures>

jrule's receipts put the record's leaf data (``ledger_adapter.record``: the
canonical record and its salt) in ``extra``, so the verifier can recompute
the leaf hash itself.  :func:`parse_tlog_proof` refuses non-canonical input.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger_adapter.checkpoint import SignedCheckpoint, parse_decimal
from ledger_adapter.errors import FormatError
from ledger_adapter.merkle import HASH_SIZE
from ledger_adapter.note import b64decode, b64encode

__all__ = ["HEADER", "MAX_PROOF_HASHES", "TlogProof", "format_tlog_proof", "parse_tlog_proof"]

HEADER = "c2sp.org/tlog-proof@v1"
#: A tree of at most 2**64 leaves has inclusion proofs of at most 64 hashes.
MAX_PROOF_HASHES = 64
_CODE = "malformed_proof"


@dataclass(frozen=True, slots=True)
class TlogProof:
    """A parsed tlog-proof: leaf index, inclusion proof, checkpoint note, extra data."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint
    extra: bytes | None = None


def format_tlog_proof(p: TlogProof) -> bytes:
    """Encode a proof in the one canonical form."""
    lines = [HEADER]
    if p.extra is not None:
        if not p.extra:
            raise FormatError("extra data, when present, must not be empty", code=_CODE)
        lines.append(f"extra {b64encode(p.extra)}")
    lines.append(f"index {p.index}")
    for h in p.proof:
        if len(h) != HASH_SIZE:
            raise FormatError("an inclusion proof hash is 32 bytes", code=_CODE)
        lines.append(b64encode(h))
    return ("\n".join(lines) + "\n\n").encode("ascii") + p.checkpoint.note


def parse_tlog_proof(data: bytes) -> TlogProof:
    """Parse a tlog-proof; the checkpoint is parsed but its signatures are not checked."""
    head, sep, note = data.partition(b"\n\n")
    if not sep:
        raise FormatError("a tlog-proof needs an empty line before its checkpoint", code=_CODE)
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError as e:
        raise FormatError("the proof lines must be ASCII", code=_CODE) from e
    lines = text.split("\n")
    if lines[0] != HEADER:
        raise FormatError(f"the first line must be {HEADER}", code=_CODE)
    i = 1
    extra: bytes | None = None
    if i < len(lines) and lines[i].startswith("extra "):
        extra = b64decode(lines[i][len("extra "):], what="the extra data", code=_CODE)
        if not extra:
            raise FormatError("the extra line must not be empty", code=_CODE)
        i += 1
    if i >= len(lines) or not lines[i].startswith("index "):
        raise FormatError("expected the line 'index N'", code=_CODE)
    index = parse_decimal(lines[i][len("index "):], "the index", _CODE)
    hashes: list[bytes] = []
    for line in lines[i + 1:]:
        h = b64decode(line, what="an inclusion proof hash", code=_CODE)
        if len(h) != HASH_SIZE:
            raise FormatError("an inclusion proof hash is 32 bytes", code=_CODE)
        hashes.append(h)
    if len(hashes) > MAX_PROOF_HASHES:
        raise FormatError(f"an inclusion proof has at most {MAX_PROOF_HASHES} hashes",
                          code=_CODE)
    return TlogProof(index, tuple(hashes), SignedCheckpoint.from_note(note), extra)
