"""The ``Ledger`` protocol: all the engine may depend on.

Two implementations pass one shared test suite (``tests/ledger``):
:class:`~ledger_adapter.memory.MemoryLedger` and
:class:`~ledger_adapter.sql.SqlLedger` (SQLite or PostgreSQL, in the engine's
own database).  Importing this module does not import SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ledger_adapter.checkpoint import SignedCheckpoint
from ledger_adapter.keys import LogKey
from ledger_adapter.note import Ed25519Signer
from ledger_adapter.record import Record, encode_leaf

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

__all__ = [
    "AuditFinding",
    "AuditReport",
    "Ledger",
    "LedgerEntry",
    "Progress",
]

#: ``progress(entries_checked, entries_total)``, called as an audit advances.
Progress = Callable[[int, int], None]


class LedgerEntry(NamedTuple):
    """One logged record: its position, the record, its salt and leaf hash.

    (A named tuple: immutable, and cheap to make by the hundred thousand.)
    """

    index: int  # type: ignore[assignment]  # (shadows tuple.index, which nobody needs)
    record: Record
    salt: bytes
    leaf_hash: bytes
    created_at: dt.datetime

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def instance_id(self) -> str | None:
        return self.record.instance_id

    def leaf_data(self) -> bytes:
        """The bytes hashed into the log (the record and its salt line)."""
        return encode_leaf(self.record, self.salt)


@dataclass(frozen=True, slots=True)
class AuditFinding:
    """One disagreement the audit found: a stable code, where, and what."""

    code: str
    location: str  # e.g. "ledger_entries[index=41].record", "ledger_tiles[level=0,index=3]"
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message} [{self.code}]"


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What the audit checked and every disagreement it found (up to a cap)."""

    entries: int
    tiles: int
    checkpoints: int
    keys: int
    findings: tuple[AuditFinding, ...]
    findings_total: int  # all findings, including those beyond the cap
    seconds: float

    @property
    def ok(self) -> bool:
        return self.findings_total == 0

    def text(self) -> str:
        head = (f"checked {self.entries} entries, {self.tiles} tiles, {self.checkpoints} "
                f"checkpoints and {self.keys} keys in {self.seconds:.1f} s: ")
        if self.ok:
            return head + "no disagreement found\n"
        lines = [head + f"{self.findings_total} disagreement(s)"]
        lines.extend(f"  {f}" for f in self.findings)
        if self.findings_total > len(self.findings):
            lines.append(f"  ... and {self.findings_total - len(self.findings)} more")
        return "\n".join(lines) + "\n"


class Ledger(Protocol):
    """A tamper-evident, append-only log of engine records (RFC 9162 Merkle tree).

    Every method that changes the log accepts the caller's SQLAlchemy
    ``session``: the change joins that session's transaction, so it commits
    or rolls back with the caller's own writes (a transition is never
    committed without its entry, and no entry survives a rolled-back
    transition).  Without a session the ledger commits on its own.  A SQL
    ledger also accepts a ``Connection`` in a transaction (what the engine's
    writer holds: no Session to build per step).
    """

    @property
    def origin(self) -> str:
        """The log's name: the checkpoint origin line and its key name."""
        ...

    def initialize(self, session: Session | Connection | None = None,
                   at: dt.datetime | None = None) -> SignedCheckpoint:
        """Create the log if it does not exist (its key, a signed empty checkpoint); if it
        exists, check it is this log and that this process holds its current key."""
        ...

    def size(self) -> int:
        """The number of entries (the latest checkpoint's tree size)."""
        ...

    def append(self, records: Sequence[Record], session: Session | Connection | None = None
               ) -> Sequence[LedgerEntry]:
        """Log ``records`` in order, as one batch with one signed checkpoint.

        Returns the new entries (their ``index`` is what the engine keeps).
        """
        ...

    def checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint (with any witness cosignatures)."""
        ...

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        """The stored checkpoint of exactly ``size`` leaves."""
        ...

    def entry(self, index: int) -> LedgerEntry:
        """The entry at ``index``."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof between the trees of ``size1`` and ``size2`` leaves."""
        ...

    def receipt(self, entry_index: int, size: int | None = None) -> bytes:
        """A C2SP tlog-proof for the entry: record and salt, inclusion proof, checkpoint.

        Against the stored checkpoint of ``size`` leaves (default: the latest).
        """
        ...

    def log_keys(self) -> list[LogKey]:
        """Every log key ever used, with its validity range (publish these)."""
        ...

    def rotate_key(self, new_signer: Ed25519Signer, session: Session | Connection | None = None,
                   at: dt.datetime | None = None) -> LedgerEntry:
        """Log a key rotation; its checkpoint is signed by the old and the new key."""
        ...

    def add_cosignatures(self, size: int, signature_lines: bytes,
                         session: Session | Connection | None = None) -> None:
        """Store witness cosignature lines for the checkpoint of ``size`` leaves."""
        ...

    def audit(self, progress: Progress | None = None, chunk_size: int = 10_000
              ) -> AuditReport:
        """Recheck the whole store, streaming (memory does not grow with the log)."""
        ...
