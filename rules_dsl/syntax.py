"""Text -> AST in one call: :func:`parse_source` (stages 1 and 2)."""

from __future__ import annotations

from rules_dsl.ast import SourceFile
from rules_dsl.diagnostics import Diagnostic
from rules_dsl.parse import decode_source, parse_text

__all__ = ["parse_bytes", "parse_source"]


def parse_source(text: str, path: str) -> tuple[SourceFile | None, tuple[Diagnostic, ...]]:
    """Parse text into an AST with its comments; never raises for bad input.

    Returns the AST (``None`` when the text has a syntax error) and the
    diagnostics found so far.  Literal errors (E002) come with a usable AST.
    """
    parsed = parse_text(text, path)
    source = parsed.source
    if source is None:
        return None, parsed.diagnostics
    return (
        SourceFile(source.path, source.items, parsed.comments, source.span),
        parsed.diagnostics,
    )


def parse_bytes(data: bytes, path: str) -> tuple[SourceFile | None, tuple[Diagnostic, ...], str]:
    """Decode (UTF-8) and parse; returns the AST, diagnostics and the text."""
    text, problem = decode_source(data, path)
    if text is None:
        assert problem is not None
        return None, (problem,), ""
    source, diagnostics = parse_source(text, path)
    return source, diagnostics, text
