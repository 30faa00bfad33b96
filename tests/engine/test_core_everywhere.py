"""Byte-identical states and effects *everywhere*, not only twice in one process.

The in-process determinism properties (``test_core_properties``) cannot see an
iteration over a set of strings (its order changes with ``PYTHONHASHSEED``) or
a dependence on the machine's time zone or locale.  This runs the shipped
example timeline through ``jrule simulate --format json`` (states, effects,
explanations, the final ``jrule-state/1`` document) in fresh processes with
other hash seeds, time zones and locales, and wants the same bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["simulate", str(ROOT / "examples" / "mediation_agreement.jrule"),
        "--terms", str(ROOT / "examples" / "timelines" / "mediation_terms.json"),
        "--events", str(ROOT / "examples" / "timelines" / "mediation_events.json"),
        "--format", "json"]


def _simulate(**env: str) -> bytes:
    done = subprocess.run([sys.executable, "-m", "rules_dsl.cli", *ARGS], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_same_bytes_under_other_hash_seeds_time_zones_and_locales(
        capsys: pytest.CaptureFixture[str]) -> None:
    from rules_dsl.cli import main

    assert main(ARGS) == 0
    here = capsys.readouterr().out.encode("utf-8")
    assert b'"effects"' in here and b'"final"' in here
    assert _simulate(PYTHONHASHSEED="0", TZ="UTC", LC_ALL="C.UTF-8") == here
    assert _simulate(PYTHONHASHSEED="4242", TZ="America/New_York", LC_ALL="C.UTF-8") == here
