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
from rules_dsl.scope import ContractScope
from rules_dsl.syntax import parse_bytes

if TYPE_CHECKING:  # IR lowering is imported by compile only: `jrule check` never loads it
    from rules_dsl.to_ir import RuleSetIR

__all__ = ["TEST_SUFFIX", "CheckResult", "CompileResult", "check_bytes", "check_path",
           "compile_bytes", "compile_path", "rules_file_of", "tests_file_of"]


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


def check_bytes(data: bytes, path: str, base: tuple[ContractScope, ...] = ()) -> CheckResult:
    """Parse and check; never raises for any input.  ``base``: contracts that
    ``tests for NAME`` blocks may name besides the file's own."""
    with _no_cyclic_gc():
        return _check_bytes(data, path, base)


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


def _check_bytes(data: bytes, path: str, base: tuple[ContractScope, ...] = ()) -> CheckResult:
    source, diagnostics, text = parse_bytes(data, path)
    if source is None:
        return CheckResult(path, text, None, diagnostics)
    # literal errors (E002) leave a usable AST: check it too, so one run reports all
    checked = check_file(source, text, base=base)
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
    return check_bytes(data, name, _rules_beside(p))


#: ``NAME.test.jrule`` holds tests for the contracts of ``NAME.jrule`` beside it.
TEST_SUFFIX = ".test.jrule"


def rules_file_of(path: Path) -> Path | None:
    """The rules file a ``NAME.test.jrule`` file tests (None for other files)."""
    if not path.name.endswith(TEST_SUFFIX):
        return None
    return path.with_name(path.name[: -len(TEST_SUFFIX)] + ".jrule")


def tests_file_of(path: Path) -> Path | None:
    """The ``NAME.test.jrule`` beside a rules file ``NAME.jrule``, if there is one."""
    if path.name.endswith(TEST_SUFFIX) or not path.name.endswith(".jrule"):
        return None
    found = path.with_name(path.name[: -len(".jrule")] + TEST_SUFFIX)
    return found if found.is_file() else None


def _rules_beside(path: Path) -> tuple[ContractScope, ...]:
    rules = rules_file_of(path)
    if rules is None or not rules.is_file():
        return ()
    result = check_path(rules)
    return result.checked.contracts if result.checked is not None else ()


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
