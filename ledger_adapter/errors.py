"""The ledger's exception root and its stable error codes.

Every error raised by ``ledger_adapter`` is a :class:`LedgerError` with a
``code`` that never changes meaning (listed in ``docs/ledger.md``) and a
message written for the person reading it.  Parsers raise
:class:`FormatError`; proof checks :class:`ProofError`; signature checks
:class:`SignatureError`.  This module depends on nothing but the standard
library, so the offline verifier can use it.
"""

from __future__ import annotations

__all__ = [
    "FormatError",
    "LedgerError",
    "ProofError",
    "SignatureError",
    "StoreError",
]


class LedgerError(Exception):
    """Root of every ledger error: a stable ``code`` and a plain-words message."""

    code: str = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class FormatError(LedgerError):
    """Bytes that are not the one canonical encoding of a ledger format.

    ``code`` names the format: ``malformed_note``, ``malformed_checkpoint``,
    ``malformed_proof``, ``malformed_record``, ``malformed_key``,
    ``malformed_witness_request``.
    """

    code = "malformed"


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof that does not verify.

    Codes (why it failed, as RFC 9162 §2.1.3.2 / §2.1.4.2 would say it):

    ``index_out_of_range``   the leaf index is not below the tree size
    ``invalid_sizes``        the first tree is larger than the second, or empty
    ``invalid_subtree``      [start, end) is not a subtree (draft-ietf-plants-merkle-tree-certs)
    ``malformed_hash``       the leaf hash is not a 32-byte SHA-256 hash
    ``proof_too_long``       hashes remain after the path reached the root
    ``proof_too_short``      the path ended before reaching the root (or is empty)
    ``root_mismatch``        the recomputed root differs from the given root
    ``first_root_mismatch``  (consistency) the recomputed older root differs
    ``second_root_mismatch`` (consistency) the recomputed newer root differs
    """

    code = "proof_failed"


class SignatureError(LedgerError):
    """A signed note whose signatures do not establish what was asked.

    ``unknown_key``       no signature is by a key the verifier was given
    ``bad_signature``     a signature by a key the verifier knows does not verify
    ``key_not_valid``     a known key signed outside its validity range (tree sizes)
    ``origin_mismatch``   the checkpoint's origin is not the log key's name
    ``not_enough_witnesses``  fewer valid cosignatures than required
    """

    code = "bad_signature"


class StoreError(LedgerError):
    """The ledger's storage refused an operation (``busy``, ``wrong_key``, ...)."""

    code = "store_error"
