"""Tamper-evident ledger: an RFC 9162 Merkle log of engine records, C2SP formats.

The engine depends only on :class:`Ledger` (``protocol.py``).  Records
(``record.py``, ``jrule-record/1``) are salted, appended in batches, and
covered by signed checkpoints (C2SP tlog-checkpoint, signed-note, Ed25519);
witnesses cosign them (tlog-cosignature, tlog-witness); any entry gets a
receipt (tlog-proof) that ``verify_receipt`` checks offline.  See
``docs/ledger.md``.

Importing this package, or ``ledger_adapter.verify``, does not import
SQLAlchemy: ``SqlLedger``, ``create_tables`` and ``TABLES`` load
``ledger_adapter.sql`` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger_adapter.checkpoint import Checkpoint, SignedCheckpoint
from ledger_adapter.cosign import Cosignature, CosignatureSigner, CosignatureVerifier
from ledger_adapter.errors import FormatError, LedgerError, ProofError, SignatureError, StoreError
from ledger_adapter.keys import LogKey
from ledger_adapter.memory import MemoryLedger
from ledger_adapter.note import Ed25519Signer, Ed25519Verifier
from ledger_adapter.protocol import AuditFinding, AuditReport, Ledger, LedgerEntry, Progress
from ledger_adapter.record import KINDS, Record, make_record
from ledger_adapter.verify import VerificationReport, verify_receipt

if TYPE_CHECKING:
    from ledger_adapter.sql import TABLES, SqlLedger, create_tables

__all__ = [
    "KINDS",
    "TABLES",
    "AuditFinding",
    "AuditReport",
    "Checkpoint",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "FormatError",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LogKey",
    "MemoryLedger",
    "Progress",
    "ProofError",
    "Record",
    "SignatureError",
    "SignedCheckpoint",
    "SqlLedger",
    "StoreError",
    "VerificationReport",
    "create_tables",
    "make_record",
    "verify_receipt",
]

_LAZY = {"SqlLedger", "create_tables", "TABLES"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ledger_adapter import sql

        return getattr(sql, name)
    raise AttributeError(f"module 'ledger_adapter' has no attribute {name!r}")
