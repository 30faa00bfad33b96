"""Every RFC 6962 test vector in ../shared/testdata/rfc6962-merkle, and why each fails.

The vectors (inclusion, consistency, subtree inclusion, subtree consistency)
come with ``wantErr``.  Beyond pass/fail, each broken vector must fail for
the right reason: the reason is predicted here from the vector's name and
parameters, independently of the code under test, and compared with the
``ProofError`` code.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ledger_adapter import merkle
from ledger_adapter.errors import ProofError

ROOT = Path(__file__).resolve().parents[2]
VECTORS = (ROOT.parent / "shared" / "testdata" / "rfc6962-merkle" / "testdata")
FILES = sorted(VECTORS.glob("**/*.json"))
U64 = 1 << 64



def test_vectors_are_present() -> None:
    """CI runs with ../shared beside the clone: the vectors must not silently vanish."""
    assert FILES, f"RFC 6962 vectors not found under {VECTORS}"

MISMATCH = {"root_mismatch", "first_root_mismatch", "second_root_mismatch"}
TOO_LONG = {"proof_too_long"}
TOO_SHORT = {"proof_too_short"}
#: the proof was made for other parameters: it may be too long, too short or lead elsewhere
WRONG_PROOF = MISMATCH | TOO_LONG | TOO_SHORT

#: vector name (without "-subtree") -> the reasons a broken vector may fail for
BY_NAME: list[tuple[str, set[str]]] = [
    (r"modified-proof.*|swapped-roots|random-root|empty-root|wrong-root\d?", MISMATCH),
    (r"wrong-leaf|empty-leaf|empty-root-and-leaf|random-leaf|empty-root-and-random-leaf",
     MISMATCH | {"malformed_hash"}),
    (r"inserted-component|preceding-.*|trailing-.*", TOO_LONG),
    (r"removed-component|truncated-proof|empty-proof", TOO_SHORT),
    (r"leafIdx-.*|treeSize-.*|size1-.*|size2-.*", WRONG_PROOF),
    (r"sizes-(do-not-watch|do-not-match)-and-proof-is-empty", TOO_SHORT),
    (r"sizes-match-but-proof-is-not-empty.*|.*-but-proof-is-not-empty", TOO_LONG),
    (r"sizes-are-equal-.*-but-roots-are-not|roots-do-not.*|.*roots-match-but-not-valid",
     MISMATCH),
    (r"consistency-check-on-empty-tree.*", TOO_LONG),
    # an empty subtree whose given hash is not the empty tree's
    (r"sizes-are-equal-zero-and-proof-is-empty|size1-is-zero-and-does-not-equal-size2",
     MISMATCH),
    (r"invalid.*|oob-.*|start-.*|everything-zero", {"invalid_subtree"}),
]


def b64(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def kind_of(path: Path) -> str:
    return path.relative_to(VECTORS).parts[0]


def check(kind: str, v: dict[str, Any]) -> None:
    proof = [b64(p) for p in v.get("proof") or []]
    if kind == "inclusion":
        merkle.verify_inclusion(b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof,
                                b64(v["root"]))
    elif kind == "consistency":
        merkle.verify_consistency(v["size1"], v["size2"], proof, b64(v["root1"]),
                                  b64(v["root2"]))
    elif kind == "subtreeinclusion":
        merkle.verify_subtree_inclusion(b64(v["leafHash"]), v["leafIdx"], v["start"],
                                        v["end"], proof, b64(v["root"]))
    else:
        merkle.verify_subtree_consistency(v["start"], v["end"], v["size"], proof,
                                          b64(v["root1"]), b64(v["root2"]))


def precondition(kind: str, v: dict[str, Any]) -> str | None:
    """The reason the parameters alone (no hashing) make the check fail, if any."""
    if kind == "inclusion":
        if not (0 <= v["leafIdx"] < v["treeSize"] < U64):
            return "index_out_of_range"
    elif kind == "consistency":
        if v["size1"] > v["size2"] or v["size1"] == 0:
            return "invalid_sizes"
    elif kind == "subtreeinclusion":
        start, end = v["start"], v["end"]
        if not (start < end and (start == 0 or end - start <= (start & -start))):
            return "invalid_subtree"
        if not start <= v["leafIdx"] < end:
            return "index_out_of_range"
    else:
        start, end, size = v["start"], v["end"], v["size"]
        empty = start == end and start <= size
        valid = start < end and (start == 0 or end - start <= (start & -start))
        if not empty and not (valid and end <= size):
            return "invalid_subtree"
    return None


def expected_reasons(path: Path, kind: str, v: dict[str, Any]) -> set[str]:
    pre = precondition(kind, v)
    if pre is not None:
        return {pre}
    name = path.stem.removesuffix("-subtree")
    if kind == "inclusion" or kind == "subtreeinclusion":
        if len(b64(v["leafHash"])) != merkle.HASH_SIZE:
            return {"malformed_hash"}
    for pattern, reasons in BY_NAME:
        if re.fullmatch(pattern, name):
            return reasons
    raise AssertionError(f"no expected reason for {path.relative_to(VECTORS)}")


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(VECTORS)) for p in FILES])
def test_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    kind = kind_of(path)
    if not v["wantErr"]:
        check(kind, v)
        return
    with pytest.raises(ProofError) as err:
        check(kind, v)
    assert err.value.code in expected_reasons(path, kind, v), err.value.message


def test_every_directory_is_covered() -> None:
    kinds = {kind_of(p) for p in FILES}
    assert kinds == {"inclusion", "consistency", "subtreeinclusion", "subtreeconsistency"}
    assert len(FILES) >= 500
    assert sum(not json.loads(p.read_text())["wantErr"] for p in FILES) >= 20
