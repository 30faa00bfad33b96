"""Positioned diagnostics and the one renderer that prints them.

Every problem the compiler finds is a :class:`Diagnostic` with a stable code
(listed in ``docs/language.md``), a message, a primary span, optional extra
labelled spans ("first defined here") and an optional hint.  Passes collect
diagnostics; only the public entry points decide whether to raise
:class:`CompileError`.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rules_dsl.ast import Span

__all__ = [
    "CompileError",
    "Diagnostic",
    "JruleError",
    "Label",
    "Severity",
    "diagnostics_to_json",
    "has_errors",
    "render",
    "render_all",
]

Severity = Literal["error", "warning"]


class JruleError(Exception):
    """Root of every error the rules_dsl package raises on purpose."""


@dataclass(frozen=True, slots=True)
class Label:
    """A secondary position shown with a diagnostic ("first defined here")."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    severity: Severity = "error"
    hint: str | None = None
    labels: tuple[Label, ...] = field(default=())

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.file, self.span.line, self.span.column, self.code)

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "hint": self.hint,
            "labels": [
                {
                    "message": lb.message,
                    "file": lb.span.file,
                    "line": lb.span.line,
                    "column": lb.span.column,
                }
                for lb in self.labels
            ],
        }


class CompileError(JruleError):
    """Raised by the public entry points when a source has errors."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        summary = f"{first.span}: {first.code} {first.message}" if first else "compile error"
        super().__init__(f"{len(self.diagnostics)} error(s); first: {summary}")


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


def _display_width(text: str) -> int:
    """Columns a terminal uses for text (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _snippet(span: Span, source: str | list[str] | None, mark: str) -> list[str]:
    if source is None:
        return []
    lines = source.split("\n") if isinstance(source, str) else source
    if not 1 <= span.line <= len(lines):
        return []
    text = lines[span.line - 1].rstrip("\r").expandtabs(1)
    gutter = str(span.line)
    pad = " " * len(gutter)
    start_col = max(span.column, 1)
    if span.end_line == span.line and span.end_column > start_col:
        end_col = span.end_column
    else:
        end_col = len(text) + 1
    before = _display_width(text[: start_col - 1])
    width = max(1, _display_width(text[start_col - 1 : end_col - 1]))
    return [
        f"{pad} |",
        f"{gutter} | {text}",
        f"{pad} | {' ' * before}{mark * width}",
    ]


def render(diagnostic: Diagnostic, sources: Mapping[str, str | list[str]]) -> str:
    """One diagnostic, with the source line(s) and carets under the span."""
    d = diagnostic
    out = [f"{d.severity}[{d.code}]: {d.message}", f"  --> {d.span}"]
    out += _snippet(d.span, sources.get(d.span.file), "^")
    for label in d.labels:
        out.append(f"  note: {label.message} at {label.span}")
        out += _snippet(label.span, sources.get(label.span.file), "-")
    if d.hint:
        out.append(f"  = hint: {d.hint}")
    return "\n".join(out)


def render_all(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str]) -> str:
    items = sorted(diagnostics, key=Diagnostic.sort_key)
    split: dict[str, str | list[str]] = {name: text.split("\n") for name, text in sources.items()}
    parts = [render(d, split) for d in items]
    errors = sum(1 for d in items if d.severity == "error")
    warnings = len(items) - errors
    parts.append(f"{errors} error(s), {warnings} warning(s)")
    return "\n\n".join(parts)


def diagnostics_to_json(diagnostics: Iterable[Diagnostic]) -> str:
    items = sorted(diagnostics, key=Diagnostic.sort_key)
    return json.dumps([d.to_json() for d in items], ensure_ascii=False, indent=2)
