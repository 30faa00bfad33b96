"""Stages 1 and 2: source text -> AST, or positioned syntax diagnostics.

The LALR parser builds the AST directly in its reductions (the methods of
:mod:`rules_dsl.to_ast`, run inline): no parse tree is materialised, and spans
come from the tokens themselves, which is what makes a 5,000-line rule set
check in well under a second.  Comments are collected here for the formatter.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from rules_dsl.ast import Comment, SourceFile, Span
from rules_dsl.diagnostics import Diagnostic
from rules_dsl.lalr_driver import FastParser, NotParsed, Unsupported
from rules_dsl.to_ast import build_ast, inline_transformer

__all__ = ["MAX_SOURCE_BYTES", "ParsedText", "decode_source", "parse_text", "parse_text_fast",
           "parse_text_lark"]

#: Sources larger than this are refused (E004) rather than parsed.
MAX_SOURCE_BYTES = 16 * 1024 * 1024

_GRAMMAR = Path(__file__).with_name("jrule.lark")

#: How terminals are named in messages for people.
_TOKEN_WORDS: dict[str, str] = {
    "NAME": "a name",
    "STRING": 'a quoted text ("...")',
    "INT": "a whole number",
    "DECIMAL": "a decimal number",
    "MONEY": "an amount such as ¥100.00",
    "DATE": "a date such as 2025-01-31",
    "DATETIME": "a date and time",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COLON": "`:`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "DOT": "`.`",
    "COMP_OP": "a comparison (==, !=, <, <=, >, >=)",
    "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*` or `/`",
    "MINUS": "`-`",
    "DAY_UNIT": "`days`",
    "WORKING": "`working`",
    "MONTH_UNIT": "`months`",
    "YEAR_UNIT": "`years`",
    "ENTERING": "`entering`",
    "INITIAL": "`initial`",
    "TERMINAL": "`terminal`",
    "PERIOD_OP": "`suspend`, `resume` or `restart`",
    "TRUE": "`true`",
    "FALSE": "`false`",
    "$END": "the end of the file",
}

#: Keywords that start a member of a contract, for the "expected a member" message.
_MEMBER_KEYWORDS = (
    "import", "role", "enum", "record", "term", "var", "state", "event", "on", "deadline",
)


@dataclass(frozen=True, slots=True)
class ParsedText:
    source: SourceFile | None
    comments: tuple[Comment, ...]
    diagnostics: tuple[Diagnostic, ...]


_COMMENT_SINK: ContextVar[list[lark.Token] | None] = ContextVar("_COMMENT_SINK", default=None)


def _on_comment(token: lark.Token) -> lark.Token:
    sink = _COMMENT_SINK.get()
    if sink is not None:
        sink.append(token)
    return token


def _cache_path() -> str | bool:
    """Where Lark keeps the analysed grammar between runs (keyed by its hash).

    The grammar's own hash is in the file name, so a changed grammar never
    reuses a stale table.  Falls back to no cache if the directory is not
    writable.
    """
    import hashlib
    import os
    import tempfile

    digest = hashlib.sha256(_GRAMMAR.read_bytes()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir())
    folder = os.path.join(base, f"jrule-{os.getuid() if hasattr(os, 'getuid') else 0}")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.path.join(folder, f"grammar-{lark.__version__}-{digest}.cache")


@functools.cache
def _parser() -> lark.Lark:
    return lark.Lark(
        _GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,  # spans include keywords and braces
        maybe_placeholders=True,
        transformer=inline_transformer(),
        lexer_callbacks={"COMMENT": _on_comment},
        cache=_cache_path(),
    )


def decode_source(data: bytes, path: str) -> tuple[str | None, Diagnostic | None]:
    """Decode a file's bytes as UTF-8, or say where it is not UTF-8."""
    if len(data) > MAX_SOURCE_BYTES:
        span = Span(path, 1, 1, 1, 1)
        return None, Diagnostic(
            "E004",
            f"file is {len(data):,} bytes; the limit is {MAX_SOURCE_BYTES:,} bytes",
            span,
            hint="split the rule set into several files",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8", errors="replace")
        line = good.count("\n") + 1
        column = len(good) - (good.rfind("\n") + 1) + 1
        span = Span(path, line, column, line, column + 1, len(good), len(good) + 1)
        return None, Diagnostic(
            "E004",
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            span,
            hint="save the file as UTF-8",
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        offset = text.index("\x00")
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        span = Span(path, line, column, line, column + 1, offset, offset + 1)
        return None, Diagnostic("E004", "the file contains a NUL byte; is it a text file?", span)
    return text, None


def _describe_expected(expected: set[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(t, _keyword_word(t)) for t in expected})
    if len(words) > 8:
        words = [*words[:8], "..."]
    return ", ".join(words)


def _keyword_word(terminal: str) -> str:
    """Anonymous keyword terminals are named like ``CONTRACT`` or ``__ANON_0``."""
    if terminal.isalpha() and terminal.isupper():
        return f"`{terminal.lower()}`"
    return terminal


def _syntax_diagnostic(exc: UnexpectedInput, text: str, path: str) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        line, column = exc.line, exc.column
        pos = exc.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        span = Span(path, line, column, line, column + 1, pos, pos + 1)
        hint = None
        if char == "'":
            hint = 'texts use double quotes: "..."'
        elif char == "=":
            hint = "use `set NAME = value` to assign and `==` to compare"
        elif char == '"':
            hint = "a text must end on the same line it starts; use \\n for a line break"
        return Diagnostic("E001", f"unexpected character {char!r}", span, hint=hint)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            end = len(text)
            line = text.count("\n") + 1
            column = end - (text.rfind("\n") + 1) + 1
            span = Span(path, line, column, line, column, end, end)
            expected = _describe_expected(set(exc.expected))
            return Diagnostic(
                "E001",
                f"the file ended early; expected {expected}",
                span,
                hint="is a closing `}` missing?" if "RBRACE" in exc.expected else None,
            )
        span = Span(
            path,
            tok.line or 1,
            tok.column or 1,
            tok.end_line or tok.line or 1,
            tok.end_column or (tok.column or 1) + len(str(tok)),
            tok.start_pos or 0,
            tok.end_pos or 0,
        )
        expected_set = set(exc.expected)
        message = f"unexpected `{tok}`; expected {_describe_expected(expected_set)}"
        hint = None
        if str(tok) == "=" and "COMP_OP" in expected_set:
            hint = "compare with `==`; assign with `set NAME = value`"
        elif expected_set >= {"RBRACE"} and any(k.upper() in expected_set for k in ("STATE", "ON")):
            hint = "a contract holds: " + ", ".join(_MEMBER_KEYWORDS)
        elif tok.type == "DECIMAL" or tok.type == "INT":
            hint = "amounts of money are written with ¥, for example ¥100.00"
        return Diagnostic("E001", message, span, hint=hint)
    if isinstance(exc, UnexpectedEOF):
        end = len(text)
        line = text.count("\n") + 1
        span = Span(path, line, 1, line, 1, end, end)
        return Diagnostic("E001", "the file ended early", span)
    span = Span(path, 1, 1, 1, 1)
    return Diagnostic("E001", str(exc), span)


def _token_span(token: lark.Token, path: str) -> Span:
    return Span(
        path,
        token.line or 1,
        token.column or 1,
        token.end_line or 1,
        token.end_column or 1,
        token.start_pos or 0,
        token.end_pos or 0,
    )


def parse_text(text: str, path: str) -> ParsedText:
    """Parse source text into an AST; never raises for any input.

    The fast driver (:mod:`rules_dsl.lalr_driver`, on Lark's own tables) parses
    the text; if it stops on a syntax error, Lark's parser runs from the start,
    so syntax diagnostics are Lark's.
    """
    parsed = parse_text_fast(text, path)
    if parsed is not None:
        return parsed
    return parse_text_lark(text, path)


def parse_text_fast(text: str, path: str) -> ParsedText | None:
    """:func:`parse_text` on the fast driver alone; ``None`` where it stops
    (a syntax error, for which only Lark's parser gives the diagnostic)."""
    fast = _fast_parser()
    if fast is None:  # pragma: no cover - a grammar option the driver does not copy
        return None
    try:
        return _parse_with(fast.parse, text, path)
    except NotParsed:
        return None


def parse_text_lark(text: str, path: str) -> ParsedText:
    """:func:`parse_text` on Lark's parser alone (the reference for the fast driver)."""
    return _parse_with(_parser().parse, text, path)


@functools.cache
def _fast_parser() -> FastParser | None:
    parser = _parser()
    cache = _cache_path()
    try:
        return FastParser(parser, os.path.dirname(cache) if isinstance(cache, str) else None)
    except Unsupported:  # pragma: no cover - a grammar option the driver does not copy
        return None
    except Exception:  # pragma: no cover - Lark's parser still works: never fail a check
        # (test_lalr_driver.py fails when the fast driver is not in use)
        return None


def _parse_with(parse: Callable[[str], object], text: str, path: str) -> ParsedText:
    sink: list[lark.Token] = []
    reset = _COMMENT_SINK.set(sink)
    try:
        source, diagnostics = build_ast(lambda: parse(text), path)
    except UnexpectedInput as exc:
        return ParsedText(None, (), (_syntax_diagnostic(exc, text, path),))
    finally:
        _COMMENT_SINK.reset(reset)
    comments = tuple(Comment(str(t), _token_span(t, path)) for t in sink)
    return ParsedText(source, comments, diagnostics)
