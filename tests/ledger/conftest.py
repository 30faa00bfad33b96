"""The ledger tests' fixtures (defined in ``ledger_support``)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from ledger_support import backend, sql_backend  # noqa: E402

__all__ = ["backend", "sql_backend"]
