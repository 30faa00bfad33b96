"""The witness: C2SP tlog-witness add-checkpoint semantics, its state, HTTP and command."""

from __future__ import annotations

import argparse
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_support import ORIGIN, seeded_signer, transition

from ledger_adapter.checkpoint import Checkpoint, sign_checkpoint
from ledger_adapter.commands import witness as witness_command
from ledger_adapter.memory import MemoryLedger
from ledger_adapter.merkle import EMPTY_ROOT
from ledger_adapter.note import parse_note
from ledger_adapter.verify import verify_receipt
from ledger_adapter.witness import (
    HttpWitness,
    Witness,
    WitnessError,
    format_add_checkpoint,
    parse_add_checkpoint,
    request_cosignature,
    serve,
)


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    w = Witness.create(tmp_path / "w1.json", "witness.example/w1")
    w.add_log(ORIGIN, [seeded_signer().vkey])
    return w


@pytest.fixture
def ledger() -> MemoryLedger:
    ledger = MemoryLedger(ORIGIN, seeded_signer())
    ledger.append([transition(i) for i in range(10)])
    return ledger


def _status(w: Witness, body: bytes) -> int:
    try:
        w.add_checkpoint(body)
    except WitnessError as e:
        return e.status
    return 200


def test_first_cosignature_and_growth(witness: Witness, ledger: MemoryLedger) -> None:
    cp = ledger.checkpoint()
    lines = witness.add_checkpoint(format_add_checkpoint(0, [], cp.note))
    assert lines.startswith("— witness.example/w1 ".encode()) and lines.endswith(b"\n")
    note = parse_note(cp.note + lines)
    assert witness.signer.verifier().verify(note.text.encode(), note.signatures[-1].data)
    ledger.append([transition(i) for i in range(10, 25)])
    new = ledger.checkpoint()
    proof = ledger.consistency_proof(10, 25)
    assert _status(witness, format_add_checkpoint(10, proof, new.note)) == 200
    assert witness.logs()[ORIGIN]["size"] == 25
    latest = witness.latest(ORIGIN)
    assert latest is not None and latest.startswith(new.note)


def test_the_spec_status_codes(witness: Witness, ledger: MemoryLedger) -> None:
    cp = ledger.checkpoint()
    assert _status(witness, b"garbage") == 400
    other = MemoryLedger("other.example/log", seeded_signer("other.example/log"))
    assert _status(witness, format_add_checkpoint(0, [], other.checkpoint().note)) == 404
    stranger = sign_checkpoint(cp.checkpoint, [seeded_signer(seed="thief")])
    assert _status(witness, format_add_checkpoint(0, [], stranger)) == 403  # unknown key
    forged = cp.note.replace(b"\n10\n", b"\n11\n")
    assert _status(witness, format_add_checkpoint(0, [], forged)) == 403  # bad signature
    assert _status(witness, format_add_checkpoint(11, [], cp.note)) == 400  # old > size
    assert _status(witness, format_add_checkpoint(0, [b"\x00" * 32], cp.note)) == 422
    assert _status(witness, format_add_checkpoint(0, [], cp.note)) == 200
    # now it has seen size 10
    with pytest.raises(WitnessError) as conflict:
        witness.add_checkpoint(format_add_checkpoint(0, [], cp.note))
    assert conflict.value.status == 409 and conflict.value.body == "10\n"
    assert _status(witness, format_add_checkpoint(10, [], cp.note)) == 200  # same again
    # a fork: same size, another root, validly signed
    fork_cp = Checkpoint(ORIGIN, 10, b"\x01" * 32)
    fork = sign_checkpoint(fork_cp, [seeded_signer()])
    assert _status(witness, format_add_checkpoint(10, [], fork)) == 422
    # a bigger tree that is not an extension of what it saw
    bigger = sign_checkpoint(Checkpoint(ORIGIN, 12, b"\x02" * 32), [seeded_signer()])
    ledger.append([transition(10), transition(11)])
    proof = ledger.consistency_proof(10, 12)
    assert _status(witness, format_add_checkpoint(10, proof, bigger)) == 422
    assert witness.logs()[ORIGIN]["size"] == 10  # nothing refused was recorded
    empty_bad = sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x03" * 32), [seeded_signer()])
    w2 = Witness.create(witness.path.with_name("w2.json"), "witness.example/w2")
    w2.add_log(ORIGIN, [seeded_signer().vkey])
    assert _status(w2, format_add_checkpoint(0, [], empty_bad)) == 422
    assert _status(w2, format_add_checkpoint(0, [], sign_checkpoint(
        Checkpoint(ORIGIN, 0, EMPTY_ROOT), [seeded_signer()]))) == 200


def test_requests_are_parsed_strictly() -> None:
    note = b"x\n\n- y\n"
    assert parse_add_checkpoint(format_add_checkpoint(7, [b"\x01" * 32], note)) == (
        7, [b"\x01" * 32], note)
    for bad in [b"old 07\n\n" + note, b"old 7\nAAAA\n\n" + note, b"size 7\n\n" + note,
                b"old 7\n" + note]:
        with pytest.raises(Exception):  # noqa: B017 - FormatError, any code
            parse_add_checkpoint(bad)


def test_state_survives_reopening(witness: Witness, ledger: MemoryLedger) -> None:
    witness.add_checkpoint(format_add_checkpoint(0, [], ledger.checkpoint().note))
    again = Witness.open(witness.path)
    assert again.vkey == witness.vkey and again.logs()[ORIGIN]["size"] == 10
    key_file = witness.path.with_name(witness.path.name + ".key")
    assert key_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(WitnessError):
        Witness.create(witness.path, "witness.example/w1")


def test_a_rotated_log_key_must_be_added(witness: Witness, ledger: MemoryLedger) -> None:
    new = seeded_signer(seed="2025")
    request_cosignature(ledger, witness)
    ledger.rotate_key(new)
    request_cosignature(ledger, witness)  # the boundary is signed by the old key too
    ledger.append([transition(99)])
    with pytest.raises(WitnessError) as e:
        request_cosignature(ledger, witness)
    assert e.value.status == 403
    witness.add_log(ORIGIN, [new.vkey])
    request_cosignature(ledger, witness, witness.signer.verifier())
    report = verify_receipt(ledger.receipt(11), ledger.log_keys(),
                            [witness.signer.verifier()], 1)
    assert report.ok, report.text()


@pytest.fixture
def http_witness(witness: Witness) -> Iterator[str]:
    server = serve(witness, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_over_http(http_witness: str, witness: Witness, ledger: MemoryLedger) -> None:
    client = HttpWitness(http_witness)
    request_cosignature(ledger, client, witness.signer.verifier())
    ledger.append([transition(i) for i in range(10, 13)])
    request_cosignature(ledger, client, witness.signer.verifier())  # 409, then with a proof
    with pytest.raises(WitnessError) as e:
        client.add_checkpoint(format_add_checkpoint(0, [], ledger.checkpoint().note))
    assert e.value.status == 409 and e.value.body == "13\n"
    import hashlib

    origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
    with urllib.request.urlopen(f"{http_witness}/{origin_hash}/checkpoint") as resp:
        assert resp.read().startswith(ledger.checkpoint().note)
    assert verify_receipt(ledger.receipt(12), ledger.log_keys(), [witness.signer.verifier()],
                          1).ok


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    witness_command.add_arguments(parser)
    return witness_command.run(parser.parse_args(argv))


def test_jrule_witness(tmp_path: Path, ledger: MemoryLedger,
                       capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "mediation-centre.json")
    assert _cli(["init", state, "--name", "mediation.example/witness"]) == 0
    vkey = capsys.readouterr().out.strip()
    assert vkey.startswith("mediation.example/witness+")
    assert _cli(["add-log", state, ORIGIN, seeded_signer().vkey]) == 0
    request = tmp_path / "request.txt"
    request.write_bytes(format_add_checkpoint(0, [], ledger.checkpoint().note))
    assert _cli(["cosign", state, str(request)]) == 0
    lines = capsys.readouterr().out.encode()
    ledger.add_cosignatures(10, lines)
    from ledger_adapter.cosign import CosignatureVerifier

    assert verify_receipt(ledger.receipt(3), ledger.log_keys(),
                          [CosignatureVerifier.from_vkey(vkey)], 1).ok
    assert _cli(["cosign", state, str(request)]) == 1  # 409 now
    assert "refused (409)" in capsys.readouterr().err
    assert _cli(["show", state]) == 0
    assert f"log {ORIGIN}: cosigned up to size 10" in capsys.readouterr().out
    assert _cli(["add-log", state, "elsewhere.example", seeded_signer().vkey]) == 1


def test_jrule_witness_bad_state_files(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The witness's own files are usage errors (exit 2) naming the file, not refusals."""
    binary, empty, other = tmp_path / "w.bin", tmp_path / "w.json", tmp_path / "o.json"
    binary.write_bytes(bytes(range(128, 256)))
    empty.write_text("")
    other.write_text("{}")
    for path, says in [(tmp_path / "none.json", "cannot read the witness state"),
                       (binary, "is not a jrule-witness/1 state file"),
                       (empty, "is not a jrule-witness/1 state file"),
                       (other, "is not a jrule-witness/1 state file")]:
        assert _cli(["show", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("jrule witness: error: ") and str(path) in err and says in err
    state = str(tmp_path / "w1.json")
    assert _cli(["init", state, "--name", "w.example/w1"]) == 0
    assert _cli(["init", state, "--name", "w.example/w1"]) == 2  # never overwrites a key
    assert "already exists" in capsys.readouterr().err
