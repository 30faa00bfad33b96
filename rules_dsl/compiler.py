"""The whole pipeline in one call: bytes -> AST -> checked AST -> IR."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rules_dsl.ast import Span
from rules_dsl.check import CheckedFile, check_file
from rules_dsl.diagnostics import Diagnostic, has_errors
from rules_dsl.syntax import parse_bytes

if TYPE_CHECKING:  # IR lowering is imported by compile only: `jrule check` never loads it
    from rules_dsl.to_ir import RuleSetIR

__all__ = ["CheckResult", "CompileResult", "check_bytes", "check_path", "compile_bytes",
           "compile_path"]


@dataclass(frozen=True)
class CheckResult:
    """What checking one file produced; ``checked`` is None on syntax errors."""

    path: str
    text: str
    checked: CheckedFile | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.checked is not None and not has_errors(self.diagnostics)

    @property
    def sources(self) -> dict[str, str]:
        if self.checked is not None:
            return dict(self.checked.sources)
        return {self.path: self.text}


def check_bytes(data: bytes, path: str) -> CheckResult:
    """Parse and check; never raises for any input."""
    with _no_cyclic_gc():
        return _check_bytes(data, path)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Parse trees and ASTs hold no reference cycles, so reference counting frees
    them; the cyclic collector only costs time here (about a fifth of a check)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_bytes(data: bytes, path: str) -> CheckResult:
    source, diagnostics, text = parse_bytes(data, path)
    if source is None:
        return CheckResult(path, text, None, diagnostics)
    # literal errors (E002) leave a usable AST: check it too, so one run reports all
    checked = check_file(source, text)
    return CheckResult(path, text, checked, tuple(diagnostics) + checked.diagnostics)


def check_path(path: str | Path) -> CheckResult:
    """Read and check a file.  The name used in spans is the file's base name,
    so the same source gives the same spans (and IR) wherever it lives."""
    p = Path(path)
    name = p.name
    try:
        data = p.read_bytes()
    except OSError as exc:
        span = Span(name, 1, 1, 1, 1)
        reason = exc.strerror or str(exc)
        return CheckResult(name, "", None, (Diagnostic("E004", f"cannot read {p}: {reason}",
                                                       span),))
    return check_bytes(data, name)


@dataclass(frozen=True)
class CompileResult:
    """The IR, or why there is none."""

    check: CheckResult
    ir: RuleSetIR | None


def _compile(result: CheckResult) -> CompileResult:
    if not result.ok or result.checked is None:
        return CompileResult(result, None)
    from rules_dsl.to_ir import from_checked

    with _no_cyclic_gc():
        return CompileResult(result, from_checked(result.checked))


def compile_bytes(data: bytes, path: str) -> CompileResult:
    """Check and lower; never raises for any input."""
    return _compile(check_bytes(data, path))


def compile_path(path: str | Path) -> CompileResult:
    return _compile(check_path(path))
