"""A witness (c2sp.org/tlog-witness) and the log's side of asking one to cosign.

A witness is run by a second organisation (a mediation centre, another
court).  For each log it trusts (origin + log public keys) it remembers the
latest checkpoint it cosigned; it cosigns a new checkpoint only with a valid
log signature and a consistency proof from that one, so it vouches that the
log only grew.  Its answer is a cosignature (``ledger_adapter.cosign``).

Requests and answers are exactly the tlog-witness ``add-checkpoint`` ones::

    old <size the client believes the witness saw>
    <consistency proof hash, base64>   (zero to 63 lines)

    <the checkpoint note>

answered by cosignature lines, or by an error carrying the HTTP status the
spec prescribes (400, 403, 404, 409 with the witness's size, 422).

State is a small JSON file (``jrule-witness/1``) updated atomically under an
exclusive lock (checking the old size and saving the new checkpoint happen
together, as the spec requires); the private key is a separate skey file.
:func:`serve` exposes ``POST /add-checkpoint`` and ``GET /<origin
hash>/checkpoint`` over HTTP with the standard library, for witnesses that
want an endpoint; ``jrule witness cosign`` does the same from files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from ledger_adapter.checkpoint import SignedCheckpoint, parse_checkpoint, parse_decimal
from ledger_adapter.cosign import CosignatureSigner, CosignatureVerifier
from ledger_adapter.errors import FormatError, LedgerError, ProofError, SignatureError
from ledger_adapter.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from ledger_adapter.note import (
    Ed25519Verifier,
    Signature,
    b64decode,
    b64encode,
    check_signatures,
    describe_signers,
    parse_note,
)

__all__ = [
    "STATE_FORMAT",
    "HttpWitness",
    "Witness",
    "WitnessClient",
    "WitnessError",
    "format_add_checkpoint",
    "parse_add_checkpoint",
    "request_cosignature",
    "serve",
]

STATE_FORMAT = "jrule-witness/1"
MAX_PROOF_LINES = 63
_CODE = "malformed_witness_request"


class WitnessError(LedgerError):
    """A refused add-checkpoint request, with the HTTP status tlog-witness prescribes."""

    code = "witness_refused"

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 body: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.body = body if body is not None else message + "\n"


class WitnessClient(Protocol):
    """A witness the log can ask: local (:class:`Witness`) or remote (:class:`HttpWitness`)."""

    def add_checkpoint(self, body: bytes) -> bytes: ...


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    """An add-checkpoint request body."""
    lines = [f"old {old_size}", *(b64encode(h) for h in proof)]
    return ("\n".join(lines) + "\n\n").encode("ascii") + note


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], bytes]:
    """(old size, consistency proof, checkpoint note) from a request body; strict."""
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise FormatError("the request needs an empty line before the checkpoint", code=_CODE)
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError as e:
        raise FormatError("the request lines must be ASCII", code=_CODE) from e
    if not lines[0].startswith("old "):
        raise FormatError("the request starts with 'old SIZE'", code=_CODE)
    old = parse_decimal(lines[0][4:], "the old size", _CODE)
    proof = [b64decode(line, what="a consistency proof line", code=_CODE) for line in lines[1:]]
    if len(proof) > MAX_PROOF_LINES:
        raise FormatError(f"at most {MAX_PROOF_LINES} proof lines", code=_CODE)
    if any(len(h) != HASH_SIZE for h in proof):
        raise FormatError("a consistency proof hash is 32 bytes", code=_CODE)
    return old, proof, note


@dataclass
class _Log:
    keys: list[str]  # trusted log vkeys
    size: int = 0
    root: str = b64encode(EMPTY_ROOT)
    checkpoint: str = ""  # the latest cosigned checkpoint, with our cosignature

    def to_json(self) -> dict[str, Any]:
        return {"keys": self.keys, "size": self.size, "root": self.root,
                "checkpoint": self.checkpoint}


class Witness:
    """A witness backed by a JSON state file and an skey file (type 0x04)."""

    def __init__(self, state_path: str | Path, signer: CosignatureSigner) -> None:
        self.path = Path(state_path)
        self.signer = signer
        self._lock = threading.Lock()
        state = self._load()
        if state["name"] != signer.name or state["vkey"] != signer.vkey:
            raise WitnessError(500, f"the key {signer.vkey} is not this witness's "
                                    f"({state['vkey']})", code="wrong_key")

    @classmethod
    def create(cls, state_path: str | Path, name: str, key_path: str | Path | None = None
               ) -> Witness:
        """A new witness: writes its state and a fresh private key (mode 0600)."""
        path = Path(state_path)
        key_file = Path(key_path) if key_path else path.with_name(path.name + ".key")
        if path.exists() or key_file.exists():
            raise WitnessError(500, f"{path} or {key_file} already exists", code="exists")
        signer = CosignatureSigner.generate(name)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(signer.skey + "\n")
        _write_json(path, {"format": STATE_FORMAT, "name": name, "vkey": signer.vkey,
                           "key_file": str(key_file), "logs": {}})
        return cls(path, signer)

    @classmethod
    def open(cls, state_path: str | Path, key_path: str | Path | None = None) -> Witness:
        path = Path(state_path)
        state = _read_json(path)
        key_file = Path(key_path or state["key_file"])
        return cls(path, CosignatureSigner.from_skey(key_file.read_text().strip()))

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def _load(self) -> dict[str, Any]:
        return _read_json(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The state, under an exclusive lock; saved atomically if the block succeeds."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._load()
                before = json.dumps(state, sort_keys=True)
                yield state
                if json.dumps(state, sort_keys=True) != before:
                    _write_json(self.path, state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def add_log(self, origin: str, vkeys: Sequence[str]) -> None:
        """Trust ``vkeys`` (Ed25519 log keys) for the log ``origin`` (keys accumulate)."""
        for vk in vkeys:
            v = Ed25519Verifier.from_vkey(vk)
            if v.name != origin:
                raise WitnessError(400, f"key {vk} is named {v.name!r}, not {origin!r}",
                                   code="wrong_key")
        with self._locked() as state:
            logs = state["logs"]
            entry = logs.setdefault(origin, _Log([]).to_json())
            for vk in vkeys:
                if vk not in entry["keys"]:
                    entry["keys"].append(vk)

    def logs(self) -> dict[str, dict[str, Any]]:
        return dict(self._load()["logs"])

    def latest(self, origin: str) -> bytes | None:
        """The latest checkpoint cosigned for ``origin`` (with the cosignature), if any."""
        log = self._load()["logs"].get(origin)
        return log["checkpoint"].encode() if log and log["checkpoint"] else None

    def add_checkpoint(self, body: bytes) -> bytes:
        """Handle an add-checkpoint request; return the cosignature line(s)."""
        try:
            old, proof, note_bytes = parse_add_checkpoint(body)
            note = parse_note(note_bytes)
            checkpoint = parse_checkpoint(note.text)
        except FormatError as e:
            raise WitnessError(400, e.message, code=e.code) from e
        with self._locked() as state:
            log = state["logs"].get(checkpoint.origin)
            if log is None:
                raise WitnessError(404, f"unknown log {checkpoint.origin!r}", code="unknown_log")
            verifiers = [Ed25519Verifier.from_vkey(k) for k in log["keys"]]
            try:
                verified, unknown = check_signatures(note, verifiers)
            except SignatureError as e:
                raise WitnessError(403, e.message, code="bad_signature") from e
            if not verified:
                raise WitnessError(403, "the checkpoint is not signed by a key trusted for "
                                        f"this log; signed by {describe_signers(unknown)}",
                                   code="unknown_key")
            if old > checkpoint.size:
                raise WitnessError(400, f"old size {old} is larger than the checkpoint's "
                                        f"size {checkpoint.size}", code="bad_request")
            if old != log["size"]:
                raise WitnessError(409, f"this witness last cosigned size {log['size']}",
                                   code="conflict", body=f"{log['size']}\n")
            if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
                raise WitnessError(422, "a checkpoint of size 0 must have the empty root",
                                   code="inconsistent")
            stored_root = b64decode(log["root"])
            try:
                if old == 0:
                    if proof:
                        raise WitnessError(422, "the proof from size 0 must be empty",
                                           code="inconsistent")
                elif old == checkpoint.size:
                    if proof or checkpoint.root != stored_root:
                        raise WitnessError(422, "same size as before but a different root: "
                                                "the log forked", code="inconsistent")
                else:
                    verify_consistency(old, checkpoint.size, proof, stored_root,
                                       checkpoint.root)
            except ProofError as e:
                raise WitnessError(422, f"the checkpoint is not consistent with the one "
                                        f"of size {old} this witness cosigned: {e.message}",
                                   code="inconsistent") from e
            sig = Signature(self.signer.name, self.signer.key_id,
                            self.signer.sign(note.text.encode()))
            line = sig.line().encode()
            log.update(size=checkpoint.size, root=b64encode(checkpoint.root),
                       checkpoint=(note_bytes + line).decode())
            return line


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise WitnessError(500, f"cannot read the witness state {path}: {e.strerror or e}",
                           code="bad_state") from None
    except ValueError:  # not UTF-8, or not JSON
        data = None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise WitnessError(500, f"{path} is not a {STATE_FORMAT} state file", code="bad_state")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- HTTP ------------------------------------------------------------------------------


class HttpWitness:
    """A remote witness at ``url`` (its submission prefix)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def add_checkpoint(self, body: bytes) -> bytes:
        req = urllib.request.Request(f"{self.url}/add-checkpoint", data=body, method="POST",
                                     headers={"Content-Type": "text/plain; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            raise WitnessError(e.code, text.strip() or str(e), body=text) from e


def serve(witness: Witness, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``witness`` (not started: call ``serve_forever``)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "jrule-witness/1"

        def _reply(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8"
                   ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/add-checkpoint":
                self._reply(404, b"not found\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1_000_000:
                self._reply(413, b"request too large\n")
                return
            try:
                lines = witness.add_checkpoint(self.rfile.read(length))
            except WitnessError as e:
                ctype = "text/x.tlog.size" if e.status == 409 else "text/plain; charset=utf-8"
                self._reply(e.status, e.body.encode(), ctype)
                return
            self._reply(200, lines)

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) == 2 and parts[1] == "checkpoint":
                for origin in witness.logs():
                    if hashlib.sha256(origin.encode()).hexdigest() == parts[0]:
                        latest = witness.latest(origin)
                        if latest:
                            self._reply(200, latest)
                            return
            self._reply(404, b"not found\n")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer((host, port), Handler)


# --- the log's side ---------------------------------------------------------------------


class _CosignableLedger(Protocol):
    def checkpoint(self) -> SignedCheckpoint: ...

    def checkpoint_at(self, size: int) -> SignedCheckpoint: ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...

    def add_cosignatures(self, size: int, signature_lines: bytes) -> None: ...


def request_cosignature(ledger: _CosignableLedger, witness: WitnessClient,
                        verifier: CosignatureVerifier | None = None,
                        size: int | None = None) -> bytes:
    """Ask ``witness`` to cosign the ledger's checkpoint (latest, or of ``size``) and store
    the cosignature with it.

    Starts from old size 0 and, when the witness answers 409 with the size it
    last cosigned, retries once with the consistency proof from that size.
    With ``verifier``, the returned cosignature is checked before it is stored.
    """
    cp = ledger.checkpoint() if size is None else ledger.checkpoint_at(size)
    old, proof = 0, list[bytes]()
    for attempt in range(2):
        body = format_add_checkpoint(old, proof, cp.note)
        try:
            lines = witness.add_checkpoint(body)
            break
        except WitnessError as e:
            if e.status != 409 or attempt:
                raise
            old = parse_decimal(e.body.strip(), "the witness's size", _CODE)
            if old > cp.size:
                raise WitnessError(409, f"the witness has already cosigned size {old}, beyond "
                                        f"this checkpoint ({cp.size})", code="conflict") from e
            proof = ledger.consistency_proof(old, cp.size) if 0 < old < cp.size else []
    if verifier is not None:
        note = parse_note(cp.note)
        check = parse_note(note.text.encode() + b"\n" + lines)
        verified, _ = check_signatures(check, [verifier])
        if not verified:
            raise SignatureError(f"the witness answered without a cosignature by "
                                 f"{verifier.vkey}", code="unknown_key")
    ledger.add_cosignatures(cp.size, lines)
    return lines
