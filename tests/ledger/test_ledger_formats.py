"""The canonical encodings: signed notes, keys, checkpoints, cosignatures, tlog-proofs,
records.  Each parser accepts exactly what its encoder produces."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import ORIGIN, seeded_signer, seeded_witness, transition

from ledger_adapter import note as notes
from ledger_adapter.checkpoint import Checkpoint, SignedCheckpoint, parse_checkpoint
from ledger_adapter.cosign import COSIGNATURE_V1, cosigned_message, verify_cosignatures
from ledger_adapter.errors import FormatError, SignatureError
from ledger_adapter.keys import LogKey, format_key_list, parse_key_list, parse_log_key
from ledger_adapter.merkle import EMPTY_ROOT
from ledger_adapter.proof import TlogProof, format_tlog_proof, parse_tlog_proof
from ledger_adapter.record import (
    KINDS,
    SCHEMA,
    FieldType,
    Record,
    decode_leaf,
    decode_record,
    encode_leaf,
    make_record,
)

# The example from c2sp.org/signed-note, "Verifier keys".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6T"
             "fXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n").encode()


# --- signed notes -----------------------------------------------------------------------


def test_the_spec_example_note_verifies() -> None:
    v = notes.Ed25519Verifier.from_vkey(SPEC_VKEY)
    note, verified = notes.open_note(SPEC_NOTE, [v])
    assert note.text == "This is an example message.\n"
    assert verified[0][0] is v and v.key_id == 0x530D903A
    assert v.vkey == SPEC_VKEY


def test_unknown_key_and_bad_signature_are_different_failures() -> None:
    v = notes.Ed25519Verifier.from_vkey(SPEC_VKEY)
    other = seeded_signer("example.com/foo", "other")  # same name, another key (and ID)
    with pytest.raises(SignatureError) as unknown:
        notes.open_note(SPEC_NOTE, [other.verifier()])
    assert unknown.value.code == "unknown_key"
    assert "example.com/foo (key ID 530d903a)" in unknown.value.message
    altered = SPEC_NOTE.replace(b"example message", b"exemplary message")
    with pytest.raises(SignatureError) as bad:
        notes.open_note(altered, [v])
    assert bad.value.code == "bad_signature"


def test_key_ids_follow_the_spec() -> None:
    s = seeded_signer()
    import hashlib

    want = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + s.public_key).digest()[:4]
    assert s.key_id == int.from_bytes(want, "big")
    w = seeded_witness("witness.example/w1")
    pub = w.verifier()._public
    want = hashlib.sha256(b"witness.example/w1\n\x04" + pub).digest()[:4]
    assert w.key_id == int.from_bytes(want, "big")


def test_signer_keys_round_trip() -> None:
    s = seeded_signer()
    again = notes.Ed25519Signer.from_skey(s.skey)
    assert again.vkey == s.vkey
    w = seeded_witness("witness.example/w1")
    assert w.skey.startswith("PRIVATE+KEY+witness.example/w1+")


@pytest.mark.parametrize("vkey", [
    SPEC_VKEY.replace("530d903a", "530D903A"),  # hex must be lowercase
    SPEC_VKEY.replace("530d903a", "530d903b"),  # ID does not match the key
    SPEC_VKEY.replace("example.com/foo", "example.com/bar"),  # name changes the ID
    SPEC_VKEY[:-1] + "l",  # non-canonical base64 (stray bits)
    SPEC_VKEY + " ",
    "example.com/foo+530d903a",
    "example com+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
])
def test_vkeys_are_parsed_strictly(vkey: str) -> None:
    with pytest.raises(FormatError):
        notes.Ed25519Verifier.from_vkey(vkey)


@pytest.mark.parametrize("mutate", [
    lambda b: b.replace(b"\n\n", b"\n"),  # no blank line before signatures
    lambda b: b.split(b"\n\n")[0] + b"\n\n",  # no signature lines
    lambda b: b.replace("—".encode(), b"-"),  # not an em dash
    lambda b: b.replace(b"foo U", b"foo  U"),  # two spaces
    lambda b: b[:-1],  # no final newline
    lambda b: b.replace(b"This", b"Th\x01s"),  # control character
    lambda b: b.replace(b"This", b"Th\xffs"),  # not UTF-8
    lambda b: b.replace(b"aQM=", b"aQN="),  # non-canonical base64
    lambda b: b.replace(b"example.com/foo U", b"example.com/f+o U"),  # '+' in a key name
])
def test_notes_are_parsed_strictly(mutate: object) -> None:
    with pytest.raises(FormatError):
        notes.parse_note(mutate(SPEC_NOTE))  # type: ignore[operator]


def test_a_note_may_carry_many_signatures_but_not_too_many() -> None:
    signers = [seeded_signer(f"k{i}.example") for i in range(16)]
    msg = notes.sign_note("text\n", signers)
    assert len(notes.parse_note(msg).signatures) == 16
    sig = notes.parse_note(msg).signatures[0]
    too_many = b"text\n\n" + sig.line().encode() * (notes.MAX_SIGNATURES + 1)
    with pytest.raises(FormatError):
        notes.parse_note(too_many)


# --- checkpoints --------------------------------------------------------------------------


SPEC_CHECKPOINT = ("example.com/behind-the-sofa\n20852163\n"
                   "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")


def test_the_spec_example_checkpoint_parses() -> None:
    cp = parse_checkpoint(SPEC_CHECKPOINT)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert cp.text() == SPEC_CHECKPOINT


@pytest.mark.parametrize("text", [
    SPEC_CHECKPOINT.replace("20852163", "020852163"),  # leading zero
    SPEC_CHECKPOINT.replace("20852163", "+20852163"),
    SPEC_CHECKPOINT.replace("20852163", "18446744073709551616"),  # 2**64
    SPEC_CHECKPOINT.replace("2I=", "2J="),  # non-canonical base64
    SPEC_CHECKPOINT.replace("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", "AAAA"),  # short
    SPEC_CHECKPOINT + "\n",  # an empty extension line
    SPEC_CHECKPOINT[:-1],  # no final newline
    "\n" + SPEC_CHECKPOINT.split("\n", 1)[1],  # empty origin
    "example.com/x\n5\n",  # no root
])
def test_checkpoints_are_parsed_strictly(text: str) -> None:
    with pytest.raises(FormatError):
        parse_checkpoint(text)


def test_checkpoint_extension_lines_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 7, EMPTY_ROOT, ("ext one", "ext two"))
    assert parse_checkpoint(cp.text()) == cp


# --- cosignatures -------------------------------------------------------------------------


def test_a_cosignature_signs_the_spec_message() -> None:
    w = seeded_witness("witness.example/w1", when=1679315147)
    text = SPEC_CHECKPOINT.encode()
    sig = w.sign(text)
    assert int.from_bytes(sig[:8], "big") == 1679315147 and len(sig) == 72
    assert cosigned_message(text, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + text)
    assert w.verifier().verify(text, sig)
    assert not w.verifier().verify(text + b"x", sig)
    assert notes.parse_vkey(w.vkey).sig_type == COSIGNATURE_V1


def test_k_of_n_cosignatures() -> None:
    log = seeded_signer()
    ws = [seeded_witness(f"witness.example/w{i}") for i in range(3)]
    text = Checkpoint(ORIGIN, 3, EMPTY_ROOT).text()
    note = notes.parse_note(notes.sign_note(text, [log, ws[0], ws[2]]))
    verifiers = [w.verifier() for w in ws]
    assert {c.name for c in verify_cosignatures(note, verifiers, 2)} == {
        "witness.example/w0", "witness.example/w2"}
    with pytest.raises(SignatureError) as e:
        verify_cosignatures(note, verifiers, 3)
    assert e.value.code == "not_enough_witnesses"
    # a witness listed twice, or signing twice, counts once
    doubled = notes.parse_note(notes.sign_note(text, [log, ws[0], ws[0]]))
    with pytest.raises(SignatureError):
        verify_cosignatures(doubled, verifiers, 2)


# --- tlog-proof ---------------------------------------------------------------------------


def _proof() -> TlogProof:
    cp = Checkpoint(ORIGIN, 5, EMPTY_ROOT)
    note = notes.sign_note(cp.text(), [seeded_signer()])
    return TlogProof(3, (b"\x01" * 32, b"\x02" * 32), SignedCheckpoint(cp, note), b"extra!")


def test_tlog_proofs_round_trip() -> None:
    p = _proof()
    data = format_tlog_proof(p)
    assert data.startswith(b"c2sp.org/tlog-proof@v1\nextra ZXh0cmEh\nindex 3\n")
    assert parse_tlog_proof(data) == p
    without = TlogProof(3, (), p.checkpoint, None)
    assert parse_tlog_proof(format_tlog_proof(without)) == without


@pytest.mark.parametrize("mutate", [
    lambda b: b.replace(b"@v1", b"@v2"),
    lambda b: b.replace(b"index 3", b"index 03"),
    lambda b: b.replace(b"index 3", b"index  3"),
    lambda b: b.replace(b"extra ZXh0cmEh\n", b"extra \n"),
    lambda b: b.replace(b"extra ZXh0cmEh\nindex 3\n", b"index 3\nextra ZXh0cmEh\n"),
    lambda b: b.replace(b"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
                        b"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=="),  # 31 bytes
    lambda b: b.replace(b"\n\n", b"\n", 1),
])
def test_tlog_proofs_are_parsed_strictly(mutate: object) -> None:
    with pytest.raises(FormatError):
        parse_tlog_proof(mutate(format_tlog_proof(_proof())))  # type: ignore[operator]


# --- key lists ----------------------------------------------------------------------------


def test_key_lists_round_trip() -> None:
    a, b = seeded_signer(seed="a"), seeded_signer(seed="b")
    keys = [LogKey(a.verifier(), 0, 1000), LogKey(b.verifier(), 1000, None)]
    text = format_key_list(keys)
    assert parse_key_list(text) == keys
    assert parse_log_key(a.vkey).valid_at(10**9)
    assert not keys[0].valid_at(1001) and keys[1].valid_at(1000) and keys[0].valid_at(1000)
    for bad in [f"{a.vkey} sizes=10-5", f"{a.vkey} sizes=01-5", f"{a.vkey} from=1"]:
        with pytest.raises(FormatError):
            parse_log_key(bad)


# --- records ------------------------------------------------------------------------------


_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
                max_size=40).map(str.strip).filter(bool)
_digest = st.binary(min_size=32, max_size=32).map(bytes.hex)
_instant = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                        timezones=st.just(dt.UTC))
_VKEYS = [seeded_signer(seed=str(i)).vkey for i in range(3)]


def _value(spec: object) -> st.SearchStrategy[object]:
    if isinstance(spec, tuple):
        return st.sampled_from(spec)
    return {
        FieldType.TEXT: _text, FieldType.UINT: st.integers(0, (1 << 63) - 1),
        FieldType.DIGEST: _digest, FieldType.INSTANT: _instant,
        FieldType.VKEY: st.sampled_from(_VKEYS),
    }[spec]  # type: ignore[index]


records = st.sampled_from(KINDS).flatmap(lambda kind: st.fixed_dictionaries(
    {name: _value(spec) for name, spec in SCHEMA[kind]}).map(lambda v: make_record(kind, v)))


@settings(max_examples=150, deadline=None)
@given(records, st.binary(min_size=32, max_size=32))
def test_records_round_trip(record: Record, salt: bytes) -> None:
    leaf = encode_leaf(record, salt)
    assert decode_leaf(leaf) == (record, salt)
    assert decode_record(record.encode()) == record
    assert Record(record.kind, record.fields) == record


@settings(max_examples=300, deadline=None)
@given(records, st.binary(min_size=32, max_size=32), st.integers(0, 10**6),
       st.integers(0, 255))
def test_records_have_one_encoding(record: Record, salt: bytes, where: int, byte: int) -> None:
    """Change one byte: either the parser refuses it, or it is another record (never the
    same record under other bytes)."""
    leaf = bytearray(encode_leaf(record, salt))
    leaf[where % len(leaf)] = byte
    try:
        again, again_salt = decode_leaf(bytes(leaf))
    except FormatError:
        return
    assert encode_leaf(again, again_salt) == bytes(leaf)


def test_a_leaf_looks_like_the_docs_say() -> None:
    r = transition(3, "case-2025-0042")
    leaf = encode_leaf(r, b"\x00" * 32).decode()
    lines = leaf.splitlines()
    assert lines[:4] == ["jrule-record/1", "kind transition", "instance case-2025-0042", "seq 3"]
    assert lines[-2] == "at 2025-09-01T02:03:00Z"
    assert lines[-1] == "salt " + base64.b64encode(b"\x00" * 32).decode()


@pytest.mark.parametrize("kind,values,message", [
    ("sentence", {}, "unknown record kind"),
    ("admin", {"action": "x"}, "missing field"),
    ("admin", {"action": "x", "subject": "y", "digest": "0" * 64, "by": "z",
               "at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "extra": 1}, "unknown field"),
    ("admin", {"action": " x", "subject": "y", "digest": "0" * 64, "by": "z",
               "at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}, "action"),
    ("admin", {"action": "x", "subject": "y", "digest": "0" * 63, "by": "z",
               "at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}, "digest"),
    ("admin", {"action": "x", "subject": "a\nb", "digest": "0" * 64, "by": "z",
               "at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}, "subject"),
    ("admin", {"action": "x", "subject": "y", "digest": "0" * 64, "by": "z",
               "at": dt.datetime(2025, 1, 1)}, "timezone-aware"),
    ("approval", {"instance": "i", "seq": 1, "approval": "a", "decision": "maybe", "by": "z",
                  "at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}, "decision"),
    ("transition", {"instance": "i", "seq": -1, "contract": "0" * 64, "input": "0" * 64,
                    "state": "0" * 64, "effects": "0" * 64,
                    "at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}, "seq"),
])
def test_make_record_names_the_bad_field(kind: str, values: dict[str, object],
                                         message: str) -> None:
    with pytest.raises(FormatError) as e:
        make_record(kind, values)
    assert message in e.value.message


@pytest.mark.parametrize("old,new", [
    (b"seq 3\n", b"seq 03\n"),
    (b"at 2025-09-01T02:03:00Z", b"at 2025-09-01T02:03:00.000000Z"),
    (b"at 2025-09-01T02:03:00Z", b"at 2025-09-01T02:03:00+00:00"),
    (b"at 2025-09-01T02:03:00Z", b"at 2025-02-30T02:03:00Z"),
    (b"instance case", b"instance  case"),
    (b"kind transition", b"kind Transition"),
    (b"jrule-record/1", b"jrule-record/2"),
    (b"\nseq 3", b"\r\nseq 3"),
])
def test_non_canonical_records_are_refused(old: bytes, new: bytes) -> None:
    leaf = encode_leaf(transition(3, "case-2025-0042"), b"\x01" * 32)
    assert old in leaf
    with pytest.raises(FormatError):
        decode_leaf(leaf.replace(old, new))
