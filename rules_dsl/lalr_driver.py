"""A fast LALR(1) driver for the tables Lark builds (stage 1's hot loop).

Lark stays the grammar's authority: the parse table, the contextual lexer's
per-state terminal sets and regular expressions, the keyword rules and the
reduction callbacks (which build the AST, :mod:`rules_dsl.to_ast`) are all
taken from the :class:`lark.Lark` object at load time, never written down
here, so a change to ``jrule.lark`` needs no change to this module.

What this module replaces is only Lark's per-token machinery (``LexerThread``,
``ParserState.feed_token``, ``Token.__new__``, line counting objects): one
loop that lexes a token with the lexer of the current state, then shifts it
after any reductions, exactly as Lark's ``ContextualLexer`` and
``ParserState`` do, in the same order, with the same callbacks, tokens and
positions.

It has no error reporting of its own: on any input it cannot parse it raises
:class:`NotParsed` at once, and the caller runs Lark's own parser, whose
messages, expected-token sets and positions are the diagnostics users see.
A differential test (``tests/rules_dsl/test_lalr_driver.py``) holds the two
paths to equal ASTs, spans and comments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import lark
from lark.lexer import BasicLexer, ContextualLexer, PatternStr, UnlessCallback
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

__all__ = ["FastParser", "NotParsed"]

_Token = lark.Token
_new_str = str.__new__


class NotParsed(Exception):
    """The fast path cannot parse this text: run Lark's parser for the diagnostics."""


class Unsupported(Exception):
    """The Lark configuration uses a feature this driver does not reproduce."""


class _LexSpec:
    """How one of the contextual lexer's per-state lexers tokenizes.

    ``match`` is the lexer's own compiled alternation (``Scanner._mres``);
    ``special`` holds the terminal types that need more than "make a token":
    ignored ones, ones that may contain a newline, keyword look-ups (Lark's
    ``UnlessCallback``) and user callbacks.
    """

    __slots__ = ("callbacks", "ignore", "keywords", "match", "newline", "special")

    def __init__(self, lexer: BasicLexer) -> None:
        scanner = lexer.scanner  # builds Lark's regexps and callbacks (once, lazily)
        mres = scanner._mres
        if len(mres) == 1:
            self.match: Callable[..., Any] = mres[0].match
        else:  # more terminals than one regexp may hold groups for: Scanner.match's order
            self.match = _ChainedMatch(mres)
        self.ignore = frozenset(lexer.ignore_types)
        self.newline = frozenset(lexer.newline_types)
        self.keywords: dict[str, dict[str, str]] = {}
        self.callbacks: dict[str, Callable[[Any], Any]] = {}
        for type_, callback in lexer.callback.items():
            table = _keyword_table(callback, lexer.g_regex_flags)
            if table is not None:
                self.keywords[type_] = table
            else:
                self.callbacks[type_] = callback
        self.special = self.ignore | self.newline | set(self.keywords) | set(self.callbacks)


class _ChainedMatch:
    """``Scanner.match`` over several regexps: the first that matches wins."""

    __slots__ = ("mres",)

    def __init__(self, mres: list[Any]) -> None:
        self.mres = mres

    def __call__(self, text: str, pos: int) -> Any:
        for mre in self.mres:
            m = mre.match(text, pos)
            if m:
                return m
        return None


def _keyword_table(callback: object, flags: int) -> dict[str, str] | None:
    """An ``UnlessCallback`` over plain strings as a dict (value -> terminal).

    Lark's callback full-matches the token against the strings in order and
    renames the token to the first that matches; for plain strings without
    flags that is a dict look-up where the first string of each value wins.
    Anything else (flags, patterns, chained user callbacks) is run as Lark's
    callable instead.
    """
    if type(callback) is not UnlessCallback or flags:
        return None
    table: dict[str, str] = {}
    for terminal in callback.scanner.terminals:
        pattern = terminal.pattern
        if not isinstance(pattern, PatternStr) or pattern.flags:
            return None
        table.setdefault(pattern.value, terminal.name)
    return table


class _Specs(dict[int, _LexSpec]):
    """State -> lexing spec, built on first use (as Lark builds its scanners)."""

    def __init__(self, lexer: ContextualLexer) -> None:
        super().__init__()
        self._lexers = lexer.lexers
        self._by_lexer: dict[int, _LexSpec] = {}

    def __missing__(self, state: int) -> _LexSpec:
        basic = self._lexers[state]
        spec = self._by_lexer.get(id(basic))
        if spec is None:
            spec = self._by_lexer[id(basic)] = _LexSpec(cast(BasicLexer, basic))
        self[state] = spec
        return spec


class FastParser:
    """Parses with a :class:`lark.Lark` object's own LALR table, lexers and callbacks."""

    def __init__(self, parser: lark.Lark) -> None:
        frontend = parser.parser
        options = parser.options
        if options.parser != "lalr" or options.lexer != "contextual" or options.postlex:
            raise Unsupported("only lalr with the contextual lexer and no postlexer")
        lexer = frontend.lexer
        if type(lexer) is not ContextualLexer or any(
            type(basic) is not BasicLexer for basic in lexer.lexers.values()
        ):
            raise Unsupported("a custom lexer class")
        if options.g_regex_flags or options.use_bytes or options.regex:
            raise Unsupported("regex flags, bytes input or the regex module")
        starts = frontend.parser_conf.start
        if len(starts) != 1:
            raise Unsupported("more than one start rule")
        lalr = frontend.parser.parser
        table = lalr.parse_table
        callbacks = lalr.callbacks
        if any(isinstance(k, str) for k in callbacks):
            raise Unsupported("callbacks on shifted tokens")
        self.start_state: int = table.start_states[starts[0]]
        self.end_state: int = table.end_states[starts[0]]

        # action tables: terminal -> next state (shift) or a reduction tuple
        terminals = {t.name for t in parser.terminals} | {"$END"}
        reductions: dict[Any, tuple[int, str, Callable[[list[Any]], Any] | None]] = {}
        actions: dict[int, dict[str, Any]] = {}
        gotos: dict[int, dict[str, int]] = {}
        for state, row in table.states.items():
            acts: dict[str, Any] = {}
            go: dict[str, int] = {}
            for symbol, (action, arg) in row.items():
                if action is not Shift:
                    reduction = reductions.get(arg)
                    if reduction is None:
                        callback = callbacks[arg]
                        size = len(arg.expansion)
                        if size == 1 and type(callback) is ExpandSingleChild:
                            callback = None  # `?rule: one` passes its one child up as it is
                        reduction = reductions[arg] = (size, arg.origin.name, callback)
                    acts[symbol] = reduction
                elif symbol in terminals:
                    acts[symbol] = arg
                else:
                    go[symbol] = arg
            actions[state] = acts
            gotos[state] = go
        self._actions = actions
        self._gotos = gotos
        self._specs = _Specs(lexer)

    def parse(self, text: str) -> Any:
        """The value of the start rule's callback, or :class:`NotParsed`."""
        actions = self._actions
        gotos = self._gotos
        specs = self._specs
        match_end = self.end_state
        new_str = _new_str
        Token = _Token

        state = self.start_state
        states = [state]
        values: list[Any] = []
        pos = 0
        end = len(text)
        line = 1
        line_start = 0
        last: Any = None
        while True:
            # --- lex one token with this state's lexer (ContextualLexer.lex) ---
            spec = specs[state]
            while True:
                if pos >= end:
                    type_ = "$END"
                    token = last
                    break
                m = spec.match(text, pos)
                if m is None:
                    raise NotParsed
                type_ = m.lastgroup
                value = m.group()
                if type_ not in spec.special:
                    token = new_str(Token, value)
                    token.type = type_
                    token.value = value
                    token.start_pos = pos
                    token.line = token.end_line = line
                    token.column = pos - line_start + 1
                    pos += len(value)
                    token.end_column = pos - line_start + 1
                    token.end_pos = pos
                    break
                start, start_line, column = pos, line, pos - line_start + 1
                pos += len(value)
                if type_ in spec.newline:
                    newlines = value.count("\n")
                    if newlines:
                        line += newlines
                        line_start = start + value.rindex("\n") + 1
                ignored = type_ in spec.ignore
                if ignored and type_ not in spec.callbacks and type_ not in spec.keywords:
                    continue
                token = new_str(Token, value)
                token.type = type_
                token.value = value
                token.start_pos = start
                token.line = start_line
                token.column = column
                token.end_line = line
                token.end_column = pos - line_start + 1
                token.end_pos = pos
                keywords = spec.keywords.get(type_)
                if keywords is not None:
                    token.type = keywords.get(value, type_)
                else:
                    callback = spec.callbacks.get(type_)
                    if callback is not None:
                        token = callback(token)
                        if not isinstance(token, Token):
                            raise NotParsed
                if not ignored:
                    type_ = token.type
                    break

            # --- reduce as long as the table says so, then shift (feed_token) ---
            row = actions[state]
            while True:
                action = row.get(type_)
                if action is None:
                    raise NotParsed
                if action.__class__ is int:
                    if type_ == "$END":  # pragma: no cover - Lark's tables never shift $END
                        raise NotParsed
                    state = action
                    states.append(state)
                    values.append(token)
                    last = token
                    break
                size, origin, callback = action
                if callback is None:  # a unit rule: same value, new state
                    state = gotos[states[-2]][origin]
                    states[-1] = state
                    if state == match_end and type_ == "$END":
                        return values[-1]
                    row = actions[state]
                    continue
                if size:
                    children = values[-size:]
                    del states[-size:]
                    del values[-size:]
                else:
                    children = []
                value = callback(children)
                state = gotos[states[-1]][origin]
                states.append(state)
                values.append(value)
                if state == match_end and type_ == "$END":
                    return values[-1]
                row = actions[state]
