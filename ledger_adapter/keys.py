"""Log keys with validity ranges, and the key list a court publishes.

Each log key signs the checkpoints of a range of tree sizes: from the size at
which it became the log's key to the size at which it was rotated out (the
*boundary* checkpoint, signed by both the old and the new key).  A retired key
stays listed: receipts issued under it still verify, but a checkpoint it
signed beyond its range is refused (``key_not_valid``), so a stolen retired
key cannot vouch for a rewritten log.

Key list format (one key per line; ``#`` starts a comment line)::

    <vkey> sizes=<from>-<to>     a key valid for checkpoints of sizes from..to
    <vkey> sizes=<from>-         the current key, valid from a size onwards
    <vkey>                       no range known: any size

This module is pure (standard library and ``cryptography``): the offline
verifier reads key lists with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledger_adapter.errors import FormatError
from ledger_adapter.note import Ed25519Verifier

__all__ = ["LogKey", "format_key_list", "parse_key_list", "parse_log_key"]

_RANGE = re.compile(r"sizes=(0|[1-9][0-9]*)-(0|[1-9][0-9]*)?")


@dataclass(frozen=True, slots=True)
class LogKey:
    """A log public key and the tree sizes it may sign (``valid_to`` None: open)."""

    verifier: Ed25519Verifier
    valid_from: int = 0
    valid_to: int | None = None

    def __post_init__(self) -> None:
        if self.valid_from < 0 or (self.valid_to is not None and self.valid_to < self.valid_from):
            raise FormatError(f"bad validity range {self.range_text()}", code="malformed_key")

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    def valid_at(self, size: int) -> bool:
        return self.valid_from <= size and (self.valid_to is None or size <= self.valid_to)

    def range_text(self) -> str:
        to = "" if self.valid_to is None else str(self.valid_to)
        return f"{self.valid_from}-{to}"

    def describe(self) -> str:
        if self.valid_to is None:
            span = (f"current key, valid from tree size {self.valid_from}"
                    if self.valid_from else "current key")
        else:
            span = (f"retired key, valid for tree sizes {self.valid_from} to "
                    f"{self.valid_to}")
        return f"{self.name}+{self.key_id:08x} ({span})"

    def line(self) -> str:
        return f"{self.vkey} sizes={self.range_text()}"


def parse_log_key(text: str) -> LogKey:
    """Parse one key list line: a vkey, optionally followed by ``sizes=FROM-[TO]``."""
    parts = text.split()
    if not parts or len(parts) > 2:
        raise FormatError(f"expected 'VKEY [sizes=FROM-TO]', got {text!r}",
                          code="malformed_key")
    verifier = Ed25519Verifier.from_vkey(parts[0])
    if len(parts) == 1:
        return LogKey(verifier)
    m = _RANGE.fullmatch(parts[1])
    if m is None:
        raise FormatError(f"expected sizes=FROM-TO or sizes=FROM-, got {parts[1]!r}",
                          code="malformed_key")
    return LogKey(verifier, int(m.group(1)), None if m.group(2) is None else int(m.group(2)))


def parse_key_list(text: str) -> list[LogKey]:
    """Parse a key list (blank lines and ``#`` comment lines ignored)."""
    out: list[LogKey] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(parse_log_key(line))
        except FormatError as e:
            raise FormatError(f"line {n}: {e.message}", code=e.code) from e
    return out


def format_key_list(keys: list[LogKey]) -> str:
    header = "# jrule log keys: vkey and the checkpoint tree sizes it may sign\n"
    return header + "".join(k.line() + "\n" for k in keys)
