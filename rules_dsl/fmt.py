"""The one canonical layout of .jrule source (``jrule fmt``).

:func:`format_source` prints an AST; the layout depends only on the tree
(never on how the source was laid out) plus the comments, which are put back
by position.  Its contract, checked by the tests for every fixture, every
example in the repository and random trees::

    parse(format_source(ast)) == ast          # the meaning never changes
    format(format(text)) == format(text)      # the layout is a fixed point
    comments(format(text)) == comments(text)  # none lost, none duplicated

Layout
  * Two spaces per level; one member, field, enum variant or statement per
    line; ``{`` ends its header line and ``}`` has a line of its own.  An
    empty block, member list or record is ``{}`` on the header line (unless a
    comment sits inside it).  Events without fields print no braces.
  * Members: a blank line between members of different kinds and around
    every multi-line kind (enum, record, event with fields, transition,
    deadline); never a blank line inside a block; one blank line between
    items; at most one blank line anywhere; exactly one final newline.
  * Enum variants are separated by commas, with none after the last; fields
    and arguments have no trailing commas; ``1 day`` but ``2 days`` and
    ``n days`` (singular only for the literal 1).
  * Rule headers print their clauses as ``in``, ``when``, ``priority``,
    ``cite`` whatever order they were written in.  A header wider than
    :data:`MAX_WIDTH` columns (a CJK character counts two) puts each clause
    on its own line, indented four more spaces; the deadline's timing stays
    on the first line.  ``approved by ROLE within PERIOD`` follows its ``do``
    on the same line if that fits, else on a line indented four more; the
    ``on approved|rejected|timeout`` branches are indented two more.
  * Expressions never break; they carry the fewest parentheses that keep
    the tree (operators are left-associative, comparisons do not chain).
    ``- -a`` keeps a space.  Texts are re-escaped (``\\"``, ``\\\\``,
    ``\\n``, ``\\t``; control characters and lone surrogates as ``\\uXXXX``;
    everything else as itself), money is ``¥`` with two decimals.

Comments
  Comments are attached by source offset.  A comment with code before it on
  its line ("trailing") stays at the end of the output line showing the code
  that starts last before it.  Any other comment ("own-line") is printed on
  its own line just before the next *anchor* that follows it in the source:
  the start of a member, field, enum variant, statement or approval branch
  (at that node's indentation), a closing ``}`` of such a list (one level
  deeper than the ``}``), or the end of the file.  When two trailing comments
  would share one output line, the first stays and the later ones become
  own-line comments at the next anchor, where a second run leaves them.
  Trailing white space (and a CR) is removed from comment text.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from rules_dsl import ast, precedence
from rules_dsl.diagnostics import Diagnostic, has_errors
from rules_dsl.syntax import parse_source

__all__ = ["format_source", "format_text"]

#: Headers (and a ``do`` with its approval) wider than this many terminal
#: columns are broken; a Chinese character takes two columns.
MAX_WIDTH = 100

_INDENT = "  "

# --- expressions -----------------------------------------------------------------
#
# Binding strength, lowest first, as in jrule.lark: or, and, not, comparison,
# + -, * /, unary -, postfix (. [] call) and atoms.

_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _NEGATE, _POSTFIX, _ATOM = (
    precedence.OR, precedence.AND, precedence.NOT, precedence.COMPARE, precedence.SUM,
    precedence.PRODUCT, precedence.UNARY, precedence.POSTFIX, precedence.ATOM)
_BINARY_LEVEL = precedence.BINARY_LEVEL
_quote = precedence.quote_string


def _width(text: str) -> int:
    """Terminal columns: wide and full-width (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _title(title: str | None) -> str:
    return "" if title is None else " " + _quote(title)


def _expr(node: ast.Expr, need: int = 0) -> str:
    """``node`` as text, parenthesised when it binds more loosely than ``need``."""
    text, level = _expr_level(node)
    return f"({text})" if level < need else text


def _expr_level(node: ast.Expr) -> tuple[str, int]:
    match node:
        case ast.BinaryOp(op=op, left=left, right=right):
            level = _BINARY_LEVEL[op]
            if level == _COMPARE:  # comparisons do not chain
                return f"{_expr(left, _SUM)} {op} {_expr(right, _SUM)}", level
            return f"{_expr(left, level)} {op} {_expr(right, level + 1)}", level
        case ast.UnaryOp(op="not", operand=operand):
            return f"not {_expr(operand, _NOT)}", _NOT
        case ast.UnaryOp(operand=operand):
            inner = _expr(operand, _NEGATE)
            return ("- " if inner.startswith("-") else "-") + inner, _NEGATE  # `- -a`, not `--a`
        case ast.FieldAccess(obj=obj, field=field):
            return f"{_expr(obj, _POSTFIX)}.{field.name}", _POSTFIX
        case ast.IndexAccess(obj=obj, index=index):
            return f"{_expr(obj, _POSTFIX)}[{_expr(index)}]", _POSTFIX
        case ast.FuncCall(func=func, args=args):
            return f"{func.name}({_expr_list(args)})", _ATOM
        case ast.ListLit(items=items):
            return f"[{_expr_list(items)}]", _ATOM
        case ast.LegalDate(period=period, direction=direction, anchor=anchor):
            return f"({_period(period)} {direction} {_expr(anchor)})", _ATOM
        case _:
            return _literal(node), _ATOM


def _expr_list(items: Sequence[ast.Expr]) -> str:
    return ", ".join(_expr(item) for item in items)


def _literal(node: ast.Expr) -> str:
    match node:
        case ast.NameRef(name=name):
            return name
        case ast.IntLit(value=value):
            return str(value)
        case ast.DecimalLit(text=text):
            return text
        case ast.MoneyLit(text=text):
            return "\u00a5" + text
        case ast.DateLit(iso=iso) | ast.DateTimeLit(iso=iso):
            return iso
        case ast.StringLit(value=value):
            return _quote(value)
        case ast.BoolLit(value=value):
            return "true" if value else "false"
    raise TypeError(f"not an expression: {node!r}")  # pragma: no cover


_ENTERING_WORD = re.compile(r"entering(?!\w)")


def _anchor_expr(anchor: ast.Expr | ast.AnchorEntering) -> str:
    """The date after ``after``.

    A bare ``entering`` there is the keyword, so an expression that starts
    with a name spelled ``entering`` (possible as ``(entering)``) keeps
    parentheses.
    """
    if isinstance(anchor, ast.AnchorEntering):
        return "entering"
    text = _expr(anchor)
    return f"({text})" if _ENTERING_WORD.match(text) else text


# --- periods, timings, types -----------------------------------------------------

_UNIT_WORDS: dict[str, tuple[str, str]] = {
    "days": ("day", "days"),
    "working_days": ("working day", "working days"),
    "months": ("month", "months"),
    "years": ("year", "years"),
}


#: The words jrule.lark spells out.  A period amount named like one of them
#: (possible as ``(by) days``) keeps its parentheses.
KEYWORDS = frozenset(
    """
    contract version module import role enum record term var state initial terminal
    event by on in when priority cite deadline before after every entering for
    day days working month months year years set do goto if else suspend resume
    restart approved within rejected timeout and or not true false
    tests scenario start at terms advance to expect action no explanation refused approve
    reject property always never eventually unapproved
    """.split()
)


def _period(period: ast.Period) -> str:
    """``1 day``, ``15 days``, ``n days``, ``(n + 1) days``."""
    one, many = _UNIT_WORDS[period.unit]
    match period.amount:
        case ast.IntLit(value=value):
            return f"{value} {one if value == 1 else many}"
        case ast.NameRef(name=name) if name not in KEYWORDS:
            return f"{name} {many}"
    return f"({_expr(period.amount)}) {many}"


def _timing(timing: ast.Timing) -> str:
    match timing:
        case ast.TimingBy(date=date):
            return f"by {_expr(date)}"
        case ast.TimingAfter(period=period, anchor=anchor):
            return f"{_period(period)} after {_anchor_expr(anchor)}"
        case ast.TimingBefore(period=period, anchor=anchor):
            return f"{_period(period)} before {_expr(anchor)}"
        case ast.TimingEvery(period=period, anchor=anchor, limit=limit):
            text = f"every {_period(period)} after {_anchor_expr(anchor)}"
            return text if limit is None else f"{text} for {_period(limit)}"
    raise TypeError(f"not a timing: {timing!r}")  # pragma: no cover


def _type(ref: ast.TypeRef) -> str:
    if not ref.args:
        return ref.name.name
    return f"{ref.name.name}[{', '.join(_type(a) for a in ref.args)}]"


def _names(idents: Sequence[ast.Ident]) -> str:
    return ", ".join(i.name for i in idents)


def _field(field: ast.FieldDecl) -> str:
    return f"{field.name.name}: {_type(field.type)}{_title(field.title)}"


def _is_multiline(member: ast.Member | ast.TestMember) -> bool:
    if isinstance(member, ast.EventDecl):
        return bool(member.fields)
    return isinstance(member, ast.Transition | ast.Deadline | ast.EnumDecl | ast.RecordDecl
                      | ast.Scenario)


def _value(value: ast.TestValue) -> str:
    match value:
        case ast.EnumValue(enum=enum, variant=variant):
            return f"{enum.name}.{variant.name}"
        case ast.ValueList(items=items):
            return "[" + ", ".join(_value(v) for v in items) + "]"
        case ast.ValueRecord(fields=fields):
            return "{" + _value_fields(fields) + "}"
    return _literal(value)


def _value_fields(fields: Sequence[ast.ValueField]) -> str:
    return ", ".join(f"{f.name.name}: {_value(f.value)}" for f in fields)


def _step(step: ast.ScenarioStep) -> str:
    """One line of a scenario (``terms`` is printed by the printer: one term per line)."""
    match step:
        case ast.StartAt(when=when):
            return f"start at {when.iso}"
        case ast.EventAt(when=when, event=event, role=role, payload=payload):
            tail = f" {{{_value_fields(payload)}}}" if payload else ""
            return f"at {when.iso} event {event.name} by {role.name}{tail}"
        case ast.DecisionAt(when=when, approve=approve, action=action, role=role):
            what = f" {action.name}" if action is not None else ""
            return f"at {when.iso} {'approve' if approve else 'reject'}{what} by {role.name}"
        case ast.AdvanceTo(when=when):
            return f"advance to {when.iso}"
        case ast.ExpectState(state=state):
            return f"expect state {state.name}"
        case ast.ExpectAction(action=action, args=args):
            shown = "" if args is None else f"({_value_fields(args)})"
            return f"expect action {action.name}{shown}"
        case ast.ExpectNoAction():
            return "expect no action"
        case ast.ExpectExplanation(text=text):
            return f"expect explanation {_quote(text)}"
        case ast.ExpectRefused():
            return "expect refused"
        case ast.ExpectTrue(condition=condition):
            return f"expect {_expr(condition)}"
    raise TypeError(f"not a scenario line: {step!r}")  # pragma: no cover


def _property_form(form: ast.PropertyForm) -> str:
    match form:
        case ast.PropAlways(condition=condition, negated=negated):
            return f"{'never' if negated else 'always'} {_expr(condition)}"
        case ast.PropNeverAction(after=after, actions=actions):
            head = f"after {_expr(after)} " if after is not None else ""
            return f"{head}never action {_names(actions)}"
        case ast.PropAfterNever(after=after, condition=condition):
            return f"after {_expr(after)} never {_expr(condition)}"
        case ast.PropWithin(after=after, goal=goal, within=within):
            return (f"after {_expr(after)} eventually {_expr(goal)} "
                    f"within {_period(within)}")
        case ast.PropTerminates():
            return "eventually terminal"
        case ast.PropUnapproved(actions=actions):
            return "never unapproved" + (f" {_names(actions)}" if actions else "")
    raise TypeError(f"not a property: {form!r}")  # pragma: no cover


def _blank_between(prev: ast.Member | ast.TestMember,
                   member: ast.Member | ast.TestMember) -> bool:
    return type(prev) is not type(member) or _is_multiline(prev) or _is_multiline(member)


# --- comment positions -------------------------------------------------------------


def _spans(source: ast.SourceFile) -> Iterator[ast.Span]:
    """The span of every node in the tree (not the comments, not the file)."""
    stack: list[object] = list(source.items)
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            stack.extend(node)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            for f in dataclasses.fields(node):
                value = getattr(node, f.name)
                if f.name == "span":
                    yield value
                else:
                    stack.append(value)


def _trailing_comments(source: ast.SourceFile) -> set[int]:
    """Offsets of the comments that have code before them on their line."""
    first_start: dict[int, int] = {}
    first_end: dict[int, int] = {}
    for span in _spans(source):
        if span.end <= span.start:  # placeholder span, no text behind it
            continue
        first_start[span.line] = min(first_start.get(span.line, span.column), span.column)
        first_end[span.end_line] = min(
            first_end.get(span.end_line, span.end_column), span.end_column
        )
    never = 1 << 62
    return {
        c.span.start
        for c in source.comments
        if first_start.get(c.span.line, never) < c.span.column
        or first_end.get(c.span.line, never) <= c.span.column
    }


# --- the printer ---------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    """One output line.

    ``starts`` are the source offsets where the pieces of code it shows begin
    (none for blank and comment lines).  ``in_order`` is false for a rule
    header's clause lines: clauses may be written in any order, so such a
    line may show code from before the lines above it.
    """

    indent: int
    text: str
    starts: tuple[int, ...] = ()
    in_order: bool = True
    trailing: str | None = None

    def render(self) -> str:
        if not self.text:
            return ""
        text = _INDENT * self.indent + self.text
        return text if self.trailing is None else f"{text}  {self.trailing}"


_N = TypeVar("_N")

_END_OF_FILE = 1 << 62


class _Printer:
    def __init__(self, source: ast.SourceFile) -> None:
        self._lines: list[_Line] = []
        self._comments = sorted(source.comments, key=lambda c: c.span.start)
        self._trailing = _trailing_comments(source) if self._comments else set()
        self._next_comment = 0

    # --- lines and comments ----------------------------------------------------
    def text(self) -> str:
        return "".join(line.render() + "\n" for line in self._lines)

    def _open(self, indent: int, text: str, *starts: int, in_order: bool = True) -> None:
        self._lines.append(_Line(indent, text, starts, in_order))

    def _add(self, text: str) -> None:
        self._lines[-1].text += text

    def _blank(self) -> None:
        if self._lines and self._lines[-1].text:
            self._lines.append(_Line(0, ""))

    def _take(self, offset: int) -> list[ast.Comment]:
        """Consume the comments before ``offset``.

        Trailing ones are put on their output line; the rest (own-line ones
        and trailing ones whose line already has a comment) are returned for
        the caller to print on lines of their own, in source order.
        """
        own: list[ast.Comment] = []
        while self._next_comment < len(self._comments):
            comment = self._comments[self._next_comment]
            if comment.span.start >= offset:
                break
            self._next_comment += 1
            trailing = comment.span.start in self._trailing
            line = self._code_line_at(comment.span.start) if trailing else None
            if line is not None and line.trailing is None:
                line.trailing = _comment_text(comment)
            else:
                own.append(comment)
        return own

    def _code_line_at(self, offset: int) -> _Line | None:
        """The output line showing the code that starts last before ``offset``."""
        found: _Line | None = None
        best = -1
        for line in reversed(self._lines):
            here = max((s for s in line.starts if s <= offset), default=-1)
            if here > best:
                found, best = line, here
            if line.in_order and 0 <= here:
                break  # every line above shows only code from before this one
        return found

    def _comment_lines(self, comments: Sequence[ast.Comment], indent: int) -> None:
        for comment in comments:
            self._lines.append(_Line(indent, _comment_text(comment)))

    def _anchor(self, offset: int, indent: int) -> None:
        """Print the comments that come before the node starting at ``offset``."""
        self._comment_lines(self._take(offset), indent)

    def _braced(
        self,
        nodes: Sequence[_N],
        close: int,
        indent: int,
        emit: Callable[[int, _N], None],
    ) -> None:
        """Append `` {`` to the current line, ``emit(i, node)`` each node one
        level deeper, and leave the line with the closing ``}`` open.

        ``close`` is the source offset of the ``}``.  With no nodes and no
        comments inside, the block is ``{}`` on the current line.
        """
        if not nodes:
            inside = self._take(close)
            if not inside:
                self._add(" {}")
                return
            self._add(" {")
            self._comment_lines(inside, indent + 1)
        else:
            self._add(" {")
            for i, node in enumerate(nodes):
                emit(i, node)
            self._anchor(close, indent + 1)
        self._open(indent, "}", close)

    def _header(
        self,
        indent: int,
        head: tuple[str, Sequence[int]],
        clauses: Sequence[tuple[str, int]],
        body: ast.Block,
    ) -> None:
        """A rule header, on one line if it fits, else one clause per line.

        ``head`` is the text before the clauses with the offsets of its
        pieces; each clause is its text and offset, in canonical order.
        """
        text, starts = head
        tail = " {}" if not body.stmts else " {"
        one_line = text + "".join(" " + clause for clause, _ in clauses)
        if _width(_INDENT * indent + one_line + tail) <= MAX_WIDTH or not clauses:
            self._open(indent, one_line, *starts, *(start for _, start in clauses))
        else:
            self._open(indent, text, *starts)
            for clause, start in clauses:
                self._open(indent + 2, clause, start, in_order=False)
        self._block(body, indent)

    # --- file and items ----------------------------------------------------------
    def source_file(self, source: ast.SourceFile) -> None:
        for i, item in enumerate(source.items):
            if i:
                self._blank()
            self._anchor(item.span.start, 0)
            if isinstance(item, ast.TestSuite):
                head = f"tests for {item.contract.name}"
            elif isinstance(item, ast.Contract):
                head = (
                    f"contract {item.name.name} {_quote(item.title)} "
                    f"version {_quote(item.version)}"
                )
            else:
                head = f"module {item.name.name}{_title(item.title)}"
            self._open(0, head, item.span.start)
            self._members(item.members, item.span.end - 1, 0)
        self._anchor(_END_OF_FILE, 0)

    def _members(self, members: Sequence[ast.Member | ast.TestMember], close: int,
                 indent: int) -> None:
        def emit(i: int, member: ast.Member | ast.TestMember) -> None:
            if i and _blank_between(members[i - 1], member):
                self._blank()
            self._anchor(member.span.start, indent + 1)
            self._member(member, indent + 1)

        self._braced(members, close, indent, emit)

    def _fields(self, fields: Sequence[ast.FieldDecl], close: int, indent: int) -> None:
        def emit(_i: int, field: ast.FieldDecl) -> None:
            self._anchor(field.span.start, indent + 1)
            self._open(indent + 1, _field(field), field.span.start)

        self._braced(fields, close, indent, emit)

    def _member(self, member: ast.Member | ast.TestMember, indent: int) -> None:
        start = member.span.start
        match member:
            case ast.ImportDecl(module=module):
                self._open(indent, f"import {module.name}", start)
            case ast.RoleDecl(name=name, title=title):
                self._open(indent, f"role {name.name}{_title(title)}", start)
            case ast.EnumDecl(name=name, title=title, variants=variants):
                self._open(indent, f"enum {name.name}{_title(title)}", start)
                last = len(variants) - 1

                def emit(i: int, variant: ast.EnumVariant) -> None:
                    self._anchor(variant.span.start, indent + 1)
                    comma = "," if i < last else ""
                    text = f"{variant.name.name}{_title(variant.title)}{comma}"
                    self._open(indent + 1, text, variant.span.start)

                self._braced(variants, member.span.end - 1, indent, emit)
            case ast.RecordDecl(name=name, title=title, fields=fields):
                self._open(indent, f"record {name.name}{_title(title)}", start)
                self._fields(fields, member.span.end - 1, indent)
            case ast.TermDecl(name=name, type=type_ref, title=title):
                self._open(indent, f"term {name.name}: {_type(type_ref)}{_title(title)}", start)
            case ast.VarDecl(name=name, type=type_ref, init=init, title=title):
                text = f"var {name.name}: {_type(type_ref)} = {_expr(init)}{_title(title)}"
                self._open(indent, text, start)
            case ast.StateDecl(name=name, title=title, initial=initial, terminal=terminal):
                flags = (" initial" if initial else "") + (" terminal" if terminal else "")
                self._open(indent, f"state {name.name}{_title(title)}{flags}", start)
            case ast.EventDecl(name=name, title=title, by=by, fields=fields):
                submitters = f" by {_names(by)}" if by else ""
                self._open(indent, f"event {name.name}{_title(title)}{submitters}", start)
                if fields:
                    self._fields(fields, member.span.end - 1, indent)
            case ast.Transition():
                self._transition(member, indent)
            case ast.Deadline():
                self._deadline(member, indent)
            case ast.Scenario(name=name, steps=steps):
                self._open(indent, f"scenario {_quote(name)}", start)

                def emit_step(_i: int, step: ast.ScenarioStep) -> None:
                    self._anchor(step.span.start, indent + 1)
                    if isinstance(step, ast.TermsGiven):
                        self._open(indent + 1, "terms", step.span.start)
                        self._terms(step, indent + 1)
                    else:
                        self._open(indent + 1, _step(step), step.span.start)

                self._braced(steps, member.span.end - 1, indent, emit_step)
            case ast.Property(name=name, form=form):
                self._open(indent, f"property {_quote(name)} {_property_form(form)}", start)

    def _terms(self, step: ast.TermsGiven, indent: int) -> None:
        def emit(_i: int, field: ast.ValueField) -> None:
            self._anchor(field.span.start, indent + 1)
            self._open(indent + 1, f"{field.name.name}: {_value(field.value)}",
                       field.span.start)

        self._braced(step.fields, step.span.end - 1, indent, emit)

    def _rule_clauses(
        self, priority: ast.IntLit | None, cite: ast.StringLit | None
    ) -> list[tuple[str, int]]:
        clauses: list[tuple[str, int]] = []
        if priority is not None:
            clauses.append((f"priority {priority.value}", priority.span.start))
        if cite is not None:
            clauses.append((f"cite {_quote(cite.value)}", cite.span.start))
        return clauses

    def _transition(self, rule: ast.Transition, indent: int) -> None:
        head = f"on {rule.event.name}"
        starts = [rule.span.start]
        if rule.states:
            head += f" in {_names(rule.states)}"
            starts.append(rule.states[0].span.start)
        clauses: list[tuple[str, int]] = []
        if rule.guard is not None:
            clauses.append((f"when {_expr(rule.guard)}", rule.guard.span.start))
        clauses += self._rule_clauses(rule.priority, rule.cite)
        self._header(indent, (head, starts), clauses, rule.body)

    def _deadline(self, rule: ast.Deadline, indent: int) -> None:
        head = (
            f"deadline {rule.name.name}{_title(rule.title)} in {_names(rule.states)}: "
            f"{_timing(rule.timing)}"
        )
        clauses = self._rule_clauses(rule.priority, rule.cite)
        self._header(indent, (head, [rule.span.start]), clauses, rule.body)

    # --- statements ----------------------------------------------------------------
    def _block(self, block: ast.Block, indent: int) -> None:
        def emit(_i: int, stmt: ast.Stmt) -> None:
            self._anchor(stmt.span.start, indent + 1)
            self._stmt(stmt, indent + 1)

        self._braced(block.stmts, block.span.end - 1, indent, emit)

    def _stmt(self, stmt: ast.Stmt, indent: int) -> None:
        start = stmt.span.start
        match stmt:
            case ast.SetStmt(target=target, value=value):
                self._open(indent, f"set {target.name} = {_expr(value)}", start)
            case ast.GotoStmt(state=state):
                self._open(indent, f"goto {state.name}", start)
            case ast.PeriodStmt(op=op, deadline=deadline):
                self._open(indent, f"{op} {deadline.name}", start)
            case ast.DoStmt(call=call, approval=approval):
                args = ", ".join(f"{a.name.name}: {_expr(a.value)}" for a in call.args)
                self._open(indent, f"do {call.action.name}({args})", start)
                if approval is not None:
                    self._approval(approval, indent)
            case ast.IfStmt(branches=branches, otherwise=otherwise):
                for i, branch in enumerate(branches):
                    if i == 0:
                        self._open(indent, f"if {_expr(branch.condition)}", start)
                    else:
                        self._add(f" else if {_expr(branch.condition)}")
                    self._block(branch.body, indent)
                if otherwise is not None:
                    self._add(" else")
                    self._block(otherwise, indent)

    def _approval(self, approval: ast.Approval, indent: int) -> None:
        tail = f"approved by {approval.role.name} within {_period(approval.within)}"
        line = self._lines[-1]
        if _width(_INDENT * indent + line.text + " " + tail) <= MAX_WIDTH:
            self._add(" " + tail)
        else:
            self._open(indent + 2, tail, approval.span.start)
        for branch in approval.branches:
            self._anchor(branch.span.start, indent + 1)
            self._open(indent + 1, f"on {branch.outcome}", branch.span.start)
            self._block(branch.body, indent + 1)


def _comment_text(comment: ast.Comment) -> str:
    return comment.text.rstrip()


# --- entry points --------------------------------------------------------------------


def format_source(source: ast.SourceFile) -> str:
    """The canonical text of ``source``, with every one of its comments.

    The result parses back to a tree equal to ``source`` and is its own
    canonical form.  It ends with exactly one newline (or is empty).
    """
    printer = _Printer(source)
    printer.source_file(source)
    return printer.text()


def format_text(text: str, path: str) -> tuple[str | None, tuple[Diagnostic, ...]]:
    """Parse ``text`` and return its canonical form and the diagnostics.

    The text is ``None`` when the source has an error of any kind, including
    literal errors (E002) whose AST would print a different value.
    """
    source, diagnostics = parse_source(text, path)
    if source is None or has_errors(diagnostics):
        return None, diagnostics
    return format_source(source), diagnostics
