"""A fast LALR(1) driver for the tables Lark builds (stage 1's hot loop).

Lark stays the grammar's authority: the parse table, the contextual lexer's
per-state terminal lists, the terminals' patterns and priorities, and the
reduction callbacks (which build the AST, :mod:`rules_dsl.to_ast`) are all
taken from the :class:`lark.Lark` object at load time, never written down
here, so a change to ``jrule.lark`` needs no change to this module.

What this module replaces is Lark's per-token machinery (``LexerThread``,
``ParserState.feed_token``, ``Token.__new__``, line counting objects): one
loop that lexes a token as the current state's lexer would (the same
alternation, order and keyword folding, see :class:`_Lexing`), then shifts
it after any reductions, as Lark's ``ContextualLexer`` and ``ParserState``
do, in the same order, with the same tokens and positions.  The reductions
are Lark's callback chains written out per rule (:mod:`rules_dsl.reductions`),
or Lark's callbacks themselves for any rule that module does not handle.

It has no error reporting of its own: on any input it cannot parse it raises
:class:`NotParsed` at once, and the caller runs Lark's own parser, whose
messages, expected-token sets and positions are the diagnostics users see.
A differential test (``tests/rules_dsl/test_lalr_driver.py``) holds the two
paths to equal ASTs, spans, comments and diagnostics.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

import lark
from lark.lexer import BasicLexer, ContextualLexer, PatternStr
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

from rules_dsl.reductions import specialise

__all__ = ["FastParser", "NotParsed"]

_Token = lark.Token
_new_str = str.__new__


class NotParsed(Exception):
    """The fast path cannot parse this text: run Lark's parser for the diagnostics."""


class Unsupported(Exception):
    """The Lark configuration uses a feature this driver does not reproduce."""


class _StateLex:
    """How one parser state's lexer (Lark's ``ContextualLexer.lexers[state]``) lexes.

    ``scan``: its alternation, in Lark's order, after a skip of white space;
    ``keywords``: its keyword tables (terminal -> {text: keyword terminal}).
    """

    __slots__ = ("keywords", "scan")

    def __init__(self, scan: Callable[[str, int], Any],
                 keywords: dict[str, dict[str, str]]) -> None:
        self.scan = scan
        self.keywords = keywords


class _Lexing(dict[int, _StateLex]):
    """Lark's contextual lexer, one regular expression per parser state.

    Lark gives each parser state a lexer of the terminals that state accepts
    (and the ignored ones): an alternation, ordered by one global key, whose
    first matching alternative wins, with keyword strings folded into a
    regexp terminal that matches them whole (``_create_unless``: the token is
    renamed afterwards).  This class builds the same alternation and keyword
    tables from the same terminal lists, and adds in front of it a skip of the
    ignored terminals without callbacks (white space): ``(?>(?:(?!EARLIER)WS)*)``,
    each step taken only where Lark's alternation would pick WS too (EARLIER:
    the alternatives before it).  One match then yields the skipped white space
    and the next token; ``\\Z`` after the skip is the end of the text.
    """

    def __init__(self, lexer: ContextualLexer) -> None:
        super().__init__()
        root = lexer.root_lexer
        if type(root) is not BasicLexer or any(
            type(basic) is not BasicLexer for basic in lexer.lexers.values()
        ):
            raise Unsupported("a custom lexer class")
        self._flags = root.g_regex_flags
        terminals = list(root.terminals)  # every terminal, in Lark's order
        if any("(?P" in t.pattern.to_regexp() for t in terminals):
            raise Unsupported("named groups inside a terminal")
        self.ignore = frozenset(root.ignore_types)
        self.newline = frozenset(root.newline_types)
        self.callbacks: dict[str, Callable[[Any], Any]] = dict(root.user_callbacks)
        # Lark's _create_unless: which strings each regexp terminal matches whole
        self._unless: dict[str, list[Any]] = {}
        self._folds: dict[str, set[str]] = {}  # string terminal -> regexps that fold it
        strings = [t for t in terminals if isinstance(t.pattern, PatternStr)]
        for retok in terminals:
            if isinstance(retok.pattern, PatternStr):
                continue
            regexp = retok.pattern.to_regexp()
            for strtok in strings:
                if strtok.priority != retok.priority:
                    continue
                value = strtok.pattern.value
                m = re.match(regexp, value, self._flags)
                if m is None or m.group(0) != value:
                    continue
                if strtok.pattern.flags:  # then folded only under the same flags
                    raise Unsupported(f"a keyword with flags: {strtok.name}")
                self._unless.setdefault(retok.name, []).append(strtok)
                self._folds.setdefault(strtok.name, set()).add(retok.name)
        self.special = (self.ignore | self.newline | frozenset(self._unless)
                        | frozenset(self.callbacks))
        self.keyword_only = frozenset(self._unless) - self.ignore - self.newline - set(
            self.callbacks)
        self._lexers = lexer.lexers
        self._by_lexer: dict[int, _StateLex] = {}
        self._scans: dict[str, Callable[[str, int], Any]] = {}

    def __missing__(self, state: int) -> _StateLex:
        basic = self._lexers[state]
        info = self._by_lexer.get(id(basic))
        if info is None:
            info = self._by_lexer[id(basic)] = self._state_lex(cast(BasicLexer, basic))
        self[state] = info
        return info

    def _state_lex(self, basic: BasicLexer) -> _StateLex:
        names = {t.name for t in basic.terminals}
        keywords: dict[str, dict[str, str]] = {}
        for retok, strings in self._unless.items():
            if retok in names:
                table: dict[str, str] = {}
                for strtok in strings:
                    if strtok.name in names:
                        table.setdefault(strtok.pattern.value, strtok.name)
                keywords[retok] = table
        # the alternation: the lexer's terminals (sorted) without the folded strings
        order = [t for t in basic.terminals if not self._folds.get(t.name, set()) & names]
        alternation = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in order)
        skippable = [i for i, t in enumerate(order)
                     if t.name in self.ignore and t.name not in self.callbacks
                     and t.name not in keywords and t.name in self.newline]
        steps = []
        for i in skippable:
            earlier = "|".join(t.pattern.to_regexp() for t in order[:i])
            guard = f"(?!{earlier})" if earlier else ""
            steps.append(f"{guard}(?:{order[i].pattern.to_regexp()})")
        skip = f"(?>(?:{'|'.join(steps)})*)" if steps else ""
        pattern = f"(?P<{_SKIP}>{skip})(?:{alternation}|\\Z)"
        scan = self._scans.get(pattern)
        if scan is None:
            scan = self._scans[pattern] = re.compile(pattern, self._flags).match
        return _StateLex(scan, keywords)


#: The group that holds the skipped white space (named unlike any terminal).
_SKIP = "jrule_skip"


class FastParser:
    """Parses with a :class:`lark.Lark` object's own LALR table, lexers and callbacks."""

    def __init__(self, parser: lark.Lark, cache_folder: str | None = None) -> None:
        frontend = parser.parser
        options = parser.options
        if options.parser != "lalr" or options.lexer != "contextual" or options.postlex:
            raise Unsupported("only lalr with the contextual lexer and no postlexer")
        lexer = frontend.lexer
        if type(lexer) is not ContextualLexer:
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
        fast = specialise(callbacks, options.transformer, cache_folder)
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
                        reduction = reductions[arg] = (
                            size, arg.origin.name, fast.get(arg, callback))
                    if reduction[0] == 1 and type(callbacks[arg]) is ExpandSingleChild:
                        # `?rule: one` passes its one child up as it is
                        acts[symbol] = _Unit(reduction[1])  # one per (state, lookahead)
                    else:
                        acts[symbol] = reduction
                elif symbol in terminals:
                    acts[symbol] = arg
                else:
                    go[symbol] = arg
            actions[state] = acts
            gotos[state] = go
        self._actions = actions
        self._gotos = gotos
        self._lexing = _Lexing(lexer)

    def parse(self, text: str) -> Any:
        """The value of the start rule's callback, or :class:`NotParsed`."""
        actions = self._actions
        gotos = self._gotos
        lexing = self._lexing
        special = lexing.special
        keyword_only = lexing.keyword_only
        ignore = lexing.ignore
        newline = lexing.newline
        lexer_callbacks = lexing.callbacks
        match_end = self.end_state
        new_str = _new_str
        Token = _Token
        Unit = _Unit
        SKIP = _SKIP

        state = self.start_state
        states = [state]
        values: list[Any] = []
        pos = 0
        line = 1
        line_start = 0
        last: Any = None
        while True:
            # --- lex one token as this state's lexer would (ContextualLexer.lex) ---
            info = lexing[state]
            while True:
                m = info.scan(text, pos)
                if m is None:
                    raise NotParsed
                type_ = m.lastgroup
                start = m.end(1)
                if start != pos:  # white space skipped (newlines counted as Lark does)
                    newlines = text.count("\n", pos, start)
                    if newlines:
                        line += newlines
                        line_start = text.rindex("\n", pos, start) + 1
                    pos = start
                if type_ == SKIP:  # the end of the text
                    type_ = "$END"
                    token = last
                    break
                value = m.group(type_)
                if type_ not in special or type_ in keyword_only:
                    token = new_str(Token, value)
                    token.value = value
                    token.start_pos = pos
                    token.line = token.end_line = line
                    token.column = pos - line_start + 1
                    pos += len(value)
                    token.end_column = pos - line_start + 1
                    token.end_pos = pos
                    if type_ in keyword_only:
                        table = info.keywords.get(type_)
                        if table:
                            type_ = table.get(value, type_)
                    token.type = type_
                    break
                start, start_line, column = pos, line, pos - line_start + 1
                pos += len(value)
                if type_ in newline:
                    newlines = value.count("\n")
                    if newlines:
                        line += newlines
                        line_start = start + value.rindex("\n") + 1
                ignored = type_ in ignore
                callback = lexer_callbacks.get(type_)
                table = info.keywords.get(type_)
                if ignored and callback is None and table is None:
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
                if table is not None:  # Lark's UnlessCallback, then a user callback
                    token.type = table.get(value, type_)
                if callback is not None and token.type == type_:
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
                kind = action.__class__
                if kind is int:
                    state = action
                    states.append(state)
                    values.append(token)
                    last = token
                    break
                if kind is Unit:  # unit rules (`?rule: one`): same value, new state
                    below = states[-2]
                    state = action.get(below)
                    if state is None:
                        state = self._unit_chain(action, below, type_)
                    states[-1] = state
                    if state == match_end and type_ == "$END":
                        return values[-1]
                    row = actions[state]
                    continue
                size, origin, callback = action
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

    def _unit_chain(self, unit: _Unit, below: int, type_: str) -> int:
        """Where a run of unit reductions on lookahead ``type_`` ends, with ``below``
        under the reduced symbol (each one pops one state and pushes goto(below, A))."""
        state = self._gotos[below][unit.origin]
        for _ in range(len(self._actions)):
            if state == self.end_state:
                break
            step = self._actions[state].get(type_)
            if step.__class__ is not _Unit:
                break
            state = self._gotos[below][step.origin]
        unit[below] = state
        return state


class _Unit(dict[int, int]):
    """A unit reduction's action: the state below -> the state after the run
    of unit reductions it starts (filled in as met)."""

    __slots__ = ("origin",)

    def __init__(self, origin: str) -> None:
        super().__init__()
        self.origin = origin
