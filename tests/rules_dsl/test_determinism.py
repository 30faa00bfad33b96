"""The IR is a pure function of the source text.

Same program -> byte-identical canonical IR and id, in this process or in a
fresh one with another hash seed; the id is the SHA-256 of the canonical
bytes; the canonical bytes survive a JSON round trip; there are no floats;
the directory a file lives in does not leak into the IR.

Programs come from ``gen_programs`` (valid, realistic rule sets).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gen_programs import generate_ruleset, valid_programs
from hypothesis import HealthCheck, given, settings

from rules_dsl.compiler import compile_bytes, compile_path

REPO = Path(__file__).resolve().parents[2]

# Compiling a generated program takes 0.05-0.5 s: few examples, no deadline.
_SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _compile_ok(text: str, path: str = "generated.jrule") -> Any:
    result = compile_bytes(text.encode("utf-8"), path)
    errors = [d for d in result.check.diagnostics if d.severity == "error"]
    assert result.ir is not None, errors[:3]
    return result.ir


def _canonical(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@_SETTINGS
@given(valid_programs(max_contracts=2))
def test_compiling_twice_gives_identical_ir(text: str) -> None:
    first = _compile_ok(text)
    second = _compile_ok(text)
    assert first.canonical == second.canonical
    assert first.id == second.id


@_SETTINGS
@given(valid_programs(max_contracts=2))
def test_ir_id_is_sha256_of_canonical_bytes(text: str) -> None:
    ir = _compile_ok(text)
    assert ir.id == hashlib.sha256(ir.canonical).hexdigest()
    assert len(ir.id) == 64


@_SETTINGS
@given(valid_programs(max_contracts=2))
def test_canonical_bytes_survive_json_round_trip(text: str) -> None:
    ir = _compile_ok(text)
    data = json.loads(ir.canonical.decode("utf-8"))
    assert _canonical(data) == ir.canonical
    # and each contract's own id is the hash of its canonical form without "id"
    for contract in data["contracts"]:
        body = {k: v for k, v in contract.items() if k != "id"}
        assert contract["id"] == hashlib.sha256(_canonical(body)).hexdigest()


def _floats(value: object, where: str = "$") -> list[str]:
    """Paths of every float in a JSON value (bool is an int, not a float)."""
    found: list[str] = []
    todo: list[tuple[object, str]] = [(value, where)]
    while todo:
        node, path = todo.pop()
        if isinstance(node, float):
            found.append(path)
        elif isinstance(node, dict):
            todo += [(v, f"{path}.{k}") for k, v in node.items()]
        elif isinstance(node, list):
            todo += [(v, f"{path}[{i}]") for i, v in enumerate(node)]
    return found


@_SETTINGS
@given(valid_programs(max_contracts=2))
def test_ir_contains_no_floats(text: str) -> None:
    ir = _compile_ok(text)
    raw = ir.canonical.decode("utf-8")

    def no_float(token: str) -> float:
        raise AssertionError(f"float {token} in the canonical IR")

    data = json.loads(raw, parse_float=no_float, parse_constant=no_float)
    assert _floats(data) == []


def test_float_walker_finds_floats() -> None:
    assert _floats({"a": [1, {"b": 1.5}], "c": True}) == ["$.a[1].b"]


def test_generator_is_deterministic() -> None:
    for seed in (0, 1, 2**31):
        assert generate_ruleset(2, seed) == generate_ruleset(2, seed)
    assert generate_ruleset(2, 0) != generate_ruleset(2, 1)


_CHILD = """
import hashlib, sys
from gen_programs import generate_ruleset
from rules_dsl.compiler import compile_bytes
n, seed = int(sys.argv[1]), int(sys.argv[2])
text = generate_ruleset(n, seed)
result = compile_bytes(text.encode("utf-8"), "generated.jrule")
print(hashlib.sha256(text.encode("utf-8")).hexdigest(), result.ir.id)
"""


@pytest.mark.parametrize(("n", "seed"), [(1, 3), (2, 2024), (3, 77)])
def test_fresh_process_with_other_hash_seed_gives_same_id(n: int, seed: int) -> None:
    text = generate_ruleset(n, seed)
    here = _compile_ok(text).id
    text_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    env_path = os.pathsep.join([str(REPO), str(Path(__file__).resolve().parent)])
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": env_path}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(n), str(seed)],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=True,
        )
        child_text_hash, child_id = out.stdout.split()
        assert child_text_hash == text_hash, "the generator depends on the hash seed"
        assert child_id == here


@pytest.mark.parametrize("seed", [5, 6])
def test_directory_does_not_change_the_ir(tmp_path: Path, seed: int) -> None:
    text = generate_ruleset(2, seed)
    first = tmp_path / "a" / "rules.jrule"
    second = tmp_path / "somewhere" / "else" / "deeper" / "rules.jrule"
    for path in (first, second):
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
    one, two = compile_path(first), compile_path(second)
    assert one.ir is not None and two.ir is not None
    assert one.ir.canonical == two.ir.canonical
    assert one.ir.id == two.ir.id
    # spans and the source record name the file by its base name only
    raw = one.ir.canonical.decode("utf-8")
    assert str(tmp_path) not in raw
    assert json.loads(raw)["source"]["file"] == "rules.jrule"
    # and it is the same IR as compiling the bytes under the base name
    assert compile_bytes(text.encode("utf-8"), "rules.jrule").ir == one.ir


def test_renaming_the_file_changes_only_the_names() -> None:
    """The base name is part of the IR (spans, source.file, hence the contract
    ids); nothing else is."""
    text = generate_ruleset(1, 9)
    a = json.loads(_compile_ok(text, "a.jrule").canonical)
    b = json.loads(_compile_ok(text, "b.jrule").canonical)
    for data in (a, b):
        for contract in data["contracts"]:
            del contract["id"]
    a_text, b_text = _canonical(a).decode("utf-8"), _canonical(b).decode("utf-8")
    assert a_text != b_text
    assert a_text.replace('"a.jrule', '"b.jrule') == b_text
