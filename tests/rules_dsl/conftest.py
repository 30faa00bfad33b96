"""Make the helpers beside these tests (``strategies``) importable by name.

``tests`` and ``tests/rules_dsl`` are deliberately not packages.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
