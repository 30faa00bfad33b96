"""The offline receipt verifier: what a party runs with a receipt and public keys.

Depends only on the standard library and ``cryptography`` (never on
SQLAlchemy or the engine), so a court can hand it to anyone.  The steps are
those of c2sp.org/tlog-proof, "Verifying a tlog proof":

1. recompute the leaf hash from the record and salt carried in ``extra``;
2. check the checkpoint is signed by a log key configured for its origin,
   valid at the checkpoint's tree size;
3. verify the cosignatures of the witnesses the verifier knows, and apply
   the k-of-n policy;
4. check the inclusion proof binds the leaf hash to the signed root.

:func:`verify_receipt` never raises for a bad receipt: it returns a
:class:`VerificationReport` saying in plain words what was proven, or exactly
what failed and why (a stable ``code``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from ledger_adapter.checkpoint import parse_checkpoint
from ledger_adapter.cosign import Cosignature, CosignatureVerifier
from ledger_adapter.errors import FormatError, LedgerError, ProofError, SignatureError
from ledger_adapter.keys import LogKey, parse_log_key
from ledger_adapter.merkle import leaf_hash, verify_inclusion
from ledger_adapter.note import (
    Signature,
    b64encode,
    check_signatures,
    describe_signers,
    parse_note,
)
from ledger_adapter.proof import parse_tlog_proof
from ledger_adapter.record import Record, decode_leaf

__all__ = ["VerificationReport", "verify_receipt"]


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The outcome of checking a receipt: what was proven, or what failed."""

    ok: bool
    code: str | None = None  # stable failure code (docs/ledger.md), None when ok
    failure: str | None = None  # the failure, in plain words
    record: Record | None = None
    leaf_index: int | None = None
    leaf_hash: bytes | None = None
    origin: str | None = None
    tree_size: int | None = None
    root: bytes | None = None
    log_signers: tuple[str, ...] = ()  # descriptions of the log keys whose signature verified
    cosigners: tuple[Cosignature, ...] = ()
    required_witnesses: int = 0
    steps: tuple[str, ...] = field(default=())  # what was established, in order

    def text(self) -> str:
        """The report for people."""
        out: list[str] = []
        if self.ok:
            out.append(f"VERIFIED: this record is entry {self.leaf_index} of the log "
                       f"{self.origin!r}.")
        else:
            out.append(f"NOT VERIFIED: {self.failure}")
            out.append(f"  (code: {self.code})")
        if self.record is not None:
            out.append("")
            out.append("Record")
            out.append(f"  kind        {self.record.kind}")
            for name, value in self.record.fields:
                out.append(f"  {name:<11} {value}")
        if self.steps:
            out.append("")
            out.append("Checked" if self.ok else "Checked before the failure")
            out.extend(f"  - {s}" for s in self.steps)
        if self.ok:
            out.append("")
            out.append(
                "In plain words: the log, as signed with its key"
                + (" and vouched for by the witnesses above" if self.cosigners else "")
                + f", contains exactly this record at position {self.leaf_index}. "
                "Changing or removing it would change the signed root hash, which "
                "anyone holding this receipt or a later checkpoint can detect.")
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "code": self.code,
            "failure": self.failure,
            "record": self.record.as_dict() if self.record else None,
            "leaf_index": self.leaf_index,
            "leaf_hash": b64encode(self.leaf_hash) if self.leaf_hash else None,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": b64encode(self.root) if self.root else None,
            "log_signers": list(self.log_signers),
            "cosigners": [{"name": c.name, "key_id": f"{c.key_id:08x}",
                           "timestamp": c.timestamp} for c in self.cosigners],
            "required_witnesses": self.required_witnesses,
            "checked": list(self.steps),
        }


@dataclass(slots=True)
class _Found:
    """What verification has established so far (becomes the report)."""

    required_witnesses: int
    record: Record | None = None
    leaf_index: int | None = None
    leaf_hash: bytes | None = None
    origin: str | None = None
    tree_size: int | None = None
    root: bytes | None = None
    log_signers: tuple[str, ...] = ()
    cosigners: tuple[Cosignature, ...] = ()
    steps: list[str] = field(default_factory=list)

    def report(self, ok: bool, code: str | None, failure: str | None) -> VerificationReport:
        return VerificationReport(
            ok, code, failure, self.record, self.leaf_index, self.leaf_hash, self.origin,
            self.tree_size, self.root, self.log_signers, self.cosigners,
            self.required_witnesses, tuple(self.steps))


def _utc(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def verify_receipt(receipt: bytes, log_keys: Iterable[LogKey | str],
                   witness_keys: Iterable[CosignatureVerifier | str] = (),
                   require_witnesses: int = 0) -> VerificationReport:
    """Check a receipt (a C2SP tlog-proof issued by the ledger) offline.

    ``log_keys`` are the log's public keys (vkeys, optionally with validity
    ranges: :mod:`ledger_adapter.keys`); ``witness_keys`` the witnesses' vkeys
    (signature type 0x04); ``require_witnesses`` how many distinct witnesses
    must have cosigned the checkpoint.
    """
    got = _Found(required_witnesses=require_witnesses)
    steps = got.steps

    def fail(code: str, message: str) -> VerificationReport:
        return got.report(False, code, message)

    try:
        keys = [k if isinstance(k, LogKey) else parse_log_key(k) for k in log_keys]
        witnesses = [w if isinstance(w, CosignatureVerifier) else CosignatureVerifier.from_vkey(w)
                     for w in witness_keys]
    except FormatError as e:
        return fail(e.code, f"a key you gave is not valid: {e.message}")
    if not keys:
        return fail("no_log_key", "no log key was given: a receipt can only be checked "
                                  "against the log's public key")

    # Step 1: the record and its leaf hash.
    try:
        proof = parse_tlog_proof(receipt)
    except FormatError as e:
        return fail(e.code, f"the receipt is not a valid tlog-proof: {e.message}")
    got.leaf_index = proof.index
    if proof.extra is None:
        return fail("malformed_receipt", "the receipt does not carry the record (no 'extra' "
                                         "line), so there is nothing to check it against")
    try:
        record, _salt = decode_leaf(proof.extra)
    except FormatError as e:
        return fail(e.code, f"the record in the receipt is not a canonical "
                            f"jrule-record/1: {e.message}")
    leaf = leaf_hash(proof.extra)
    got.record, got.leaf_hash = record, leaf
    steps.append(f"the record is a canonical jrule-record/1 ({record.kind}); its salted "
                 f"leaf hash is {b64encode(leaf)}")

    # Step 2: the checkpoint and the log's signature.
    try:
        note = parse_note(proof.checkpoint.note)
        checkpoint = parse_checkpoint(note.text)
    except FormatError as e:
        return fail(e.code, f"the receipt's checkpoint is malformed: {e.message}")
    got.origin, got.tree_size, got.root = checkpoint.origin, checkpoint.size, checkpoint.root
    by_verifier: dict[int, LogKey] = {id(k.verifier): k for k in keys}
    try:
        verified, unknown = check_signatures(note, [k.verifier for k in keys])
    except SignatureError as e:
        return fail("bad_signature", f"the log's signature does not verify: {e.message}")
    if not verified:
        return fail("unknown_key",
                    "the checkpoint is not signed by any log key you gave; it is signed by "
                    f"{describe_signers(unknown)}. Check you have the court's current key "
                    "list (a retired key must stay listed to check old receipts).")
    signed = [by_verifier[id(v)] for v, _ in verified]
    for_origin = [k for k in signed if k.name == checkpoint.origin]
    if not for_origin:
        return fail("origin_mismatch",
                    f"the checkpoint names the log {checkpoint.origin!r}, but it is signed by "
                    f"{', '.join(k.describe() for k in signed)}, a key of another log")
    valid = [k for k in for_origin if k.valid_at(checkpoint.size)]
    if not valid:
        return fail("key_not_valid",
                    f"the checkpoint of tree size {checkpoint.size} is signed by "
                    f"{', '.join(k.describe() for k in for_origin)}, which may not sign "
                    "checkpoints of that size: the key had been retired (or was not yet in "
                    "use), so this signature cannot be trusted")
    got.log_signers = tuple(k.describe() for k in valid)
    steps.append(f"the checkpoint (log {checkpoint.origin!r}, tree size {checkpoint.size}, "
                 f"root {b64encode(checkpoint.root)}) is signed by "
                 f"{', '.join(k.describe() for k in valid)}")

    # Step 3: witness cosignatures, k of n.
    if witnesses or require_witnesses:
        try:
            cos_verified, _ = check_signatures(note, witnesses)
        except SignatureError as e:
            return fail("witness_bad_signature", f"a witness cosignature does not verify: "
                                                 f"{e.message}")
        cosigs = tuple(_cosignature(sig) for _, sig in cos_verified)
        got.cosigners = cosigs
        if len(cosigs) < require_witnesses:
            have = ", ".join(c.name for c in cosigs) or "none"
            return fail("not_enough_witnesses",
                        f"{require_witnesses} witness cosignature(s) are required but "
                        f"{len(cosigs)} of the {len(witnesses)} witnesses you listed "
                        f"cosigned this checkpoint ({have})")
        if cosigs:
            steps.append(f"{len(cosigs)} of {len(witnesses)} listed witnesses cosigned it "
                         f"(required: {require_witnesses}): "
                         + "; ".join(f"{c.name}+{c.key_id:08x} at {_utc(c.timestamp)}"
                                     for c in cosigs))
        else:
            steps.append(f"no listed witness cosigned it (required: {require_witnesses})")

    # Step 4: the inclusion proof binds the leaf to the signed root.
    try:
        verify_inclusion(leaf, proof.index, checkpoint.size, proof.proof, checkpoint.root)
    except ProofError as e:
        return fail(e.code, f"the record is not proven to be in the log: {e.message}")
    except LedgerError as e:  # pragma: no cover - verify_inclusion raises ProofError only
        return fail(e.code, e.message)
    steps.append(f"the inclusion proof ({len(proof.proof)} hashes) leads from the leaf at "
                 f"index {proof.index} to that signed root")
    return got.report(True, None, None)


def _cosignature(sig: Signature) -> Cosignature:
    return Cosignature(sig.name, sig.key_id, int.from_bytes(sig.data[:8], "big"))
