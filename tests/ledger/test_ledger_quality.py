"""``mypy --strict`` on ``ledger_adapter``, and ruff on the ledger's files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_strict_on_the_ledger() -> None:
    pytest.importorskip("mypy")
    result = _run(sys.executable, "-m", "mypy", "--strict", "ledger_adapter")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is a dev dependency")
def test_ruff_on_the_ledger() -> None:
    result = _run("ruff", "check", "ledger_adapter", "tests/ledger", "bench/bench_ledger.py")
    assert result.returncode == 0, result.stdout + result.stderr
