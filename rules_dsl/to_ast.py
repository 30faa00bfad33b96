"""Stage 2: Lark parse tree -> immutable AST (:mod:`rules_dsl.ast`).

One transformer whose method names are the grammar's rule names.  It never
recurses (``Transformer_NonRecursive``), so deeply nested input cannot blow
the stack; expressions nested beyond :data:`MAX_NESTING` are refused (E003).
Literals are validated here (E002): impossible dates, money with more than two
decimal places, bad escapes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar, cast

import lark
from lark import Transformer_NonRecursive, v_args
from lark.tree import Meta

from rules_dsl import ast
from rules_dsl.ast import Span
from rules_dsl.diagnostics import Diagnostic

__all__ = ["MAX_NESTING", "build_ast", "from_parse_tree", "inline_transformer"]

#: Deepest expression/statement nesting accepted.
MAX_NESTING = 64
#: Largest whole number a literal may write: exact in every JSON reader (2**53 - 1).
MAX_INT = 2**53 - 1


class _HasSpan(Protocol):
    @property
    def span(self) -> Span: ...


_N = TypeVar("_N", bound=_HasSpan)


class _TooDeep(Exception):
    def __init__(self, span: Span) -> None:
        self.span = span


_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")


def _unquote(raw: str) -> str:
    body = raw[1:-1]

    def sub(m: re.Match[str]) -> str:
        code = m.group(1)
        if code.startswith("u"):
            return chr(int(code[1:], 16))
        return _ESCAPES[code]

    return _ESCAPE_RE.sub(sub, body)


def _depth(node: object) -> int:
    return cast(int, getattr(node, "_jrule_depth", 0))


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive[lark.Token, Any]):
    """Methods named after the rules in ``jrule.lark``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self._depths: dict[int, int] = {}

    # --- helpers -----------------------------------------------------------
    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.path, 1, 1, 1, 1)
        return Span(
            self.path,
            meta.line,
            meta.column,
            meta.end_line,
            meta.end_column,
            meta.start_pos,
            meta.end_pos,
        )

    def _tok_span(self, tok: lark.Token) -> Span:
        return Span(
            self.path,
            tok.line or 1,
            tok.column or 1,
            tok.end_line or 1,
            tok.end_column or 1,
            tok.start_pos or 0,
            tok.end_pos or 0,
        )

    def _ident(self, tok: lark.Token) -> ast.Ident:
        return ast.Ident(str(tok), self._tok_span(tok))

    def _nest(self, node: _N, *children: object) -> _N:
        depth = 1 + max((self._depths.get(id(c), 0) for c in children), default=0)
        if depth > MAX_NESTING:
            raise _TooDeep(node.span)
        self._depths[id(node)] = depth
        return node

    # --- file and items ----------------------------------------------------
    def start(self, meta: Meta, items: list[ast.Item]) -> ast.SourceFile:
        return ast.SourceFile(self.path, tuple(items), (), self._span(meta))

    def contract(self, meta: Meta, ch: list[Any]) -> ast.Contract:
        name, title, version, *members = ch
        return ast.Contract(
            self._ident(name), self._text(title), self._text(version), tuple(members),
            self._span(meta)
        )

    def module_decl(self, meta: Meta, ch: list[Any]) -> ast.ModuleDecl:
        name, title, *members = ch
        return ast.ModuleDecl(self._ident(name), title, tuple(members), self._span(meta))

    def opt_title(self, meta: Meta, ch: list[Any]) -> str | None:
        if not ch or ch[0] is None:
            return None
        return _SpannedStr(self._text(ch[0]), self._tok_span(ch[0]))

    # --- declarations --------------------------------------------------------
    def import_decl(self, meta: Meta, ch: list[Any]) -> ast.ImportDecl:
        return ast.ImportDecl(self._ident(ch[0]), self._span(meta))

    def role_decl(self, meta: Meta, ch: list[Any]) -> ast.RoleDecl:
        return ast.RoleDecl(self._ident(ch[0]), ch[1], self._span(meta))

    def enum_variant(self, meta: Meta, ch: list[Any]) -> ast.EnumVariant:
        return ast.EnumVariant(self._ident(ch[0]), ch[1], self._span(meta))

    def enum_decl(self, meta: Meta, ch: list[Any]) -> ast.EnumDecl:
        name, title, *variants = ch
        return ast.EnumDecl(self._ident(name), title, tuple(variants), self._span(meta))

    def field_decl(self, meta: Meta, ch: list[Any]) -> ast.FieldDecl:
        return ast.FieldDecl(self._ident(ch[0]), ch[1], ch[2], self._span(meta))

    def record_decl(self, meta: Meta, ch: list[Any]) -> ast.RecordDecl:
        name, title, *fields = ch
        return ast.RecordDecl(self._ident(name), title, tuple(fields), self._span(meta))

    def term_decl(self, meta: Meta, ch: list[Any]) -> ast.TermDecl:
        return ast.TermDecl(self._ident(ch[0]), ch[1], ch[2], self._span(meta))

    def var_decl(self, meta: Meta, ch: list[Any]) -> ast.VarDecl:
        return ast.VarDecl(self._ident(ch[0]), ch[1], ch[2], ch[3], self._span(meta))

    def state_flag(self, meta: Meta, ch: list[Any]) -> str:
        return _SpannedStr(str(ch[0]), self._span(meta))

    def state_decl(self, meta: Meta, ch: list[Any]) -> ast.StateDecl:
        name, title, *flags = ch
        return ast.StateDecl(
            self._ident(name), title, "initial" in flags, "terminal" in flags, self._span(meta)
        )

    def name_list(self, meta: Meta, ch: list[Any]) -> tuple[ast.Ident, ...]:
        return tuple(self._ident(t) for t in ch)

    def event_fields(self, meta: Meta, ch: list[Any]) -> tuple[ast.FieldDecl, ...]:
        return _SpannedTuple(ch, self._span(meta))  # the span reaches the closing brace

    def event_decl(self, meta: Meta, ch: list[Any]) -> ast.EventDecl:
        name, title, by, fields = ch
        return ast.EventDecl(self._ident(name), title, by or (), fields or (), self._span(meta))

    def submitters(self, meta: Meta, ch: list[Any]) -> tuple[ast.Ident, ...]:
        return cast(tuple[ast.Ident, ...], ch[0])

    def type_ref(self, meta: Meta, ch: list[Any]) -> ast.TypeRef:
        return ast.TypeRef(self._ident(ch[0]), (), self._span(meta))

    def generic_type(self, meta: Meta, ch: list[Any]) -> ast.TypeRef:
        return self._nest(ast.TypeRef(self._ident(ch[0]), (ch[1],), self._span(meta)), ch[1])

    # --- rules ---------------------------------------------------------------
    # Header clauses become (keyword, value, span) triples for _clauses().
    def in_states(self, meta: Meta, ch: list[Any]) -> tuple[str, Any, Span]:
        return ("in", ch[0], self._span(meta))

    def guard(self, meta: Meta, ch: list[Any]) -> tuple[str, Any, Span]:
        return ("when", ch[0], self._span(meta))

    def priority(self, meta: Meta, ch: list[Any]) -> tuple[str, Any, Span]:
        return ("priority", ast.IntLit(self._whole(ch[0]), self._tok_span(ch[0])),
                self._span(meta))

    def cite(self, meta: Meta, ch: list[Any]) -> tuple[str, Any, Span]:
        return ("cite", ast.StringLit(self._text(ch[0]), self._span(meta)), self._span(meta))

    def _clauses(self, clauses: list[Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for kind, value, span in clauses:
            if kind in found:
                self.diagnostics.append(
                    Diagnostic("E001", f"`{kind}` is given twice for this rule", span,
                               hint=f"keep one `{kind}`")
                )
                continue
            found[kind] = value
        return found

    def transition(self, meta: Meta, ch: list[Any]) -> ast.Transition:
        event, *clauses, body = ch
        c = self._clauses(clauses)
        return ast.Transition(
            self._ident(event),
            c.get("in", ()),
            c.get("when"),
            c.get("priority"),
            c.get("cite"),
            body,
            self._span(meta),
        )

    def deadline(self, meta: Meta, ch: list[Any]) -> ast.Deadline:
        name, title, states, timing, *clauses, body = ch
        c = self._clauses(clauses)
        return ast.Deadline(
            self._ident(name),
            title,
            states,
            timing,
            c.get("priority"),
            c.get("cite"),
            body,
            self._span(meta),
        )

    def timing_by(self, meta: Meta, ch: list[Any]) -> ast.TimingBy:
        return ast.TimingBy(ch[0], self._span(meta))

    def timing_after(self, meta: Meta, ch: list[Any]) -> ast.TimingAfter:
        return ast.TimingAfter(ch[0], ch[1], self._span(meta))

    def timing_before(self, meta: Meta, ch: list[Any]) -> ast.TimingBefore:
        return ast.TimingBefore(ch[0], ch[1], self._span(meta))

    def timing_every(self, meta: Meta, ch: list[Any]) -> ast.TimingEvery:
        return ast.TimingEvery(ch[0], ch[1], ch[2], self._span(meta))

    def repeat_for(self, meta: Meta, ch: list[Any]) -> ast.Period:
        return cast(ast.Period, ch[0])

    def anchor_entering(self, meta: Meta, ch: list[Any]) -> ast.AnchorEntering:
        return ast.AnchorEntering(self._span(meta))

    def amount_int(self, meta: Meta, ch: list[Any]) -> ast.IntLit:
        return ast.IntLit(self._whole(ch[0]), self._tok_span(ch[0]))

    def amount_name(self, meta: Meta, ch: list[Any]) -> ast.NameRef:
        return ast.NameRef(str(ch[0]), self._tok_span(ch[0]))


    def date_after(self, meta: Meta, ch: list[Any]) -> ast.LegalDate:
        return self._nest(ast.LegalDate(ch[0], "after", ch[1], self._span(meta)), ch[0], ch[1])

    def date_before(self, meta: Meta, ch: list[Any]) -> ast.LegalDate:
        return self._nest(ast.LegalDate(ch[0], "before", ch[1], self._span(meta)), ch[0], ch[1])

    def period_unit(self, meta: Meta, ch: list[Any]) -> str:
        word = str(ch[0])
        unit = {"day": "days", "month": "months", "year": "years"}.get(word, word)
        return _SpannedStr(unit, self._span(meta))

    def working_days(self, meta: Meta, ch: list[Any]) -> str:
        return _SpannedStr("working_days", self._span(meta))

    def atom(self, meta: Meta, ch: list[Any]) -> Any:
        """``( expr )``: the parentheses only group; enclosing spans include them."""
        return _Paren(ch[0], self._span(meta))

    def amount_expr(self, meta: Meta, ch: list[Any]) -> Any:
        return _Paren(ch[0], self._span(meta))

    def period(self, meta: Meta, ch: list[Any]) -> ast.Period:
        return self._nest(ast.Period(ch[0], ch[1], self._span(meta)), ch[0])

    # --- statements ----------------------------------------------------------
    def block(self, meta: Meta, ch: list[Any]) -> ast.Block:
        return self._nest(ast.Block(tuple(ch), self._span(meta)), *ch)

    def set_stmt(self, meta: Meta, ch: list[Any]) -> ast.SetStmt:
        return ast.SetStmt(self._ident(ch[0]), ch[1], self._span(meta))

    def named_arg(self, meta: Meta, ch: list[Any]) -> ast.NamedArg:
        return ast.NamedArg(self._ident(ch[0]), ch[1], self._span(meta))

    def action_call(self, meta: Meta, ch: list[Any]) -> ast.ActionCall:
        name, *args = ch
        return ast.ActionCall(
            self._ident(name), tuple(a for a in args if a is not None), self._span(meta)
        )

    def on_approved(self, meta: Meta, ch: list[Any]) -> ast.ApprovalBranch:
        return self._nest(ast.ApprovalBranch("approved", ch[0], self._span(meta)), ch[0])

    def on_rejected(self, meta: Meta, ch: list[Any]) -> ast.ApprovalBranch:
        return self._nest(ast.ApprovalBranch("rejected", ch[0], self._span(meta)), ch[0])

    def on_timeout(self, meta: Meta, ch: list[Any]) -> ast.ApprovalBranch:
        return self._nest(ast.ApprovalBranch("timeout", ch[0], self._span(meta)), ch[0])

    def approval(self, meta: Meta, ch: list[Any]) -> ast.Approval:
        role, within, *branches = ch
        return self._nest(
            ast.Approval(self._ident(role), within, tuple(branches), self._span(meta)), *branches
        )

    def do_stmt(self, meta: Meta, ch: list[Any]) -> ast.DoStmt:
        return self._nest(ast.DoStmt(ch[0], ch[1], self._span(meta)), ch[1])

    def goto_stmt(self, meta: Meta, ch: list[Any]) -> ast.GotoStmt:
        return ast.GotoStmt(self._ident(ch[0]), self._span(meta))

    def else_if(self, meta: Meta, ch: list[Any]) -> ast.IfBranch:
        return self._nest(ast.IfBranch(ch[0], ch[1], self._span(meta)), ch[1])

    def else_block(self, meta: Meta, ch: list[Any]) -> ast.Block:
        return cast(ast.Block, ch[0])

    def if_stmt(self, meta: Meta, ch: list[Any]) -> ast.IfStmt:
        cond, body, *rest = ch
        otherwise = rest.pop() if rest and isinstance(rest[-1], ast.Block) else None
        first = ast.IfBranch(cond, body, cond.span.cover(body.span))
        self._nest(first, body)
        branches = (first, *rest)
        return self._nest(
            ast.IfStmt(branches, otherwise, self._span(meta)), *branches, otherwise
        )

    def period_stmt(self, meta: Meta, ch: list[Any]) -> ast.PeriodStmt:
        return ast.PeriodStmt(
            cast(Any, str(ch[0])), self._ident(ch[1]), self._span(meta)
        )

    # --- scenario tests and properties --------------------------------------
    def test_suite(self, meta: Meta, ch: list[Any]) -> ast.TestSuite:
        name, *members = ch
        return ast.TestSuite(self._ident(name), tuple(members), self._span(meta))

    def scenario(self, meta: Meta, ch: list[Any]) -> ast.Scenario:
        name, *steps = ch
        return ast.Scenario(self._text(name), tuple(steps), self._span(meta))

    def when_date(self, meta: Meta, ch: list[Any]) -> ast.When:
        lit = self.date_lit(meta, ch)
        return ast.When(lit.iso, True, lit.span)

    def when_datetime(self, meta: Meta, ch: list[Any]) -> ast.When:
        lit = self.datetime_lit(meta, ch)
        return ast.When(lit.iso, False, lit.span)

    def sc_start(self, meta: Meta, ch: list[Any]) -> ast.StartAt:
        return ast.StartAt(ch[0], self._span(meta))

    def sc_terms(self, meta: Meta, ch: list[Any]) -> ast.TermsGiven:
        return ast.TermsGiven(tuple(ch), self._span(meta))

    def sc_event(self, meta: Meta, ch: list[Any]) -> ast.EventAt:
        when, event, role, payload = ch
        return ast.EventAt(when, self._ident(event), self._ident(role), tuple(payload or ()),
                           self._span(meta))

    def sc_approve(self, meta: Meta, ch: list[Any]) -> ast.DecisionAt:
        return self._decision(meta, ch, True)

    def sc_reject(self, meta: Meta, ch: list[Any]) -> ast.DecisionAt:
        return self._decision(meta, ch, False)

    def _decision(self, meta: Meta, ch: list[Any], approve: bool) -> ast.DecisionAt:
        when, action, role = ch
        return ast.DecisionAt(when, approve, None if action is None else self._ident(action),
                              self._ident(role), self._span(meta))

    def sc_advance(self, meta: Meta, ch: list[Any]) -> ast.AdvanceTo:
        return ast.AdvanceTo(ch[0], self._span(meta))

    def expect_state(self, meta: Meta, ch: list[Any]) -> ast.ExpectState:
        return ast.ExpectState(self._ident(ch[0]), self._span(meta))

    def expect_action(self, meta: Meta, ch: list[Any]) -> ast.ExpectAction:
        args = None if ch[1] is None else tuple(ch[1])
        return ast.ExpectAction(self._ident(ch[0]), args, self._span(meta))

    def expect_no_action(self, meta: Meta, ch: list[Any]) -> ast.ExpectNoAction:
        return ast.ExpectNoAction(self._span(meta))

    def expect_explanation(self, meta: Meta, ch: list[Any]) -> ast.ExpectExplanation:
        return ast.ExpectExplanation(self._text(ch[0]), self._span(meta))

    def expect_refused(self, meta: Meta, ch: list[Any]) -> ast.ExpectRefused:
        return ast.ExpectRefused(self._span(meta))

    def expect_true(self, meta: Meta, ch: list[Any]) -> ast.ExpectTrue:
        return ast.ExpectTrue(ch[0], self._span(meta))

    def value_fields(self, meta: Meta, ch: list[Any]) -> tuple[ast.ValueField, ...]:
        return _SpannedTuple(ch, self._span(meta))

    def value_args(self, meta: Meta, ch: list[Any]) -> tuple[ast.ValueField, ...]:
        return _SpannedTuple([c for c in ch if c is not None], self._span(meta))

    def value_field(self, meta: Meta, ch: list[Any]) -> ast.ValueField:
        return ast.ValueField(self._ident(ch[0]), ch[1], self._span(meta))

    def value_enum(self, meta: Meta, ch: list[Any]) -> ast.EnumValue:
        return ast.EnumValue(self._ident(ch[0]), self._ident(ch[1]), self._span(meta))

    def value_list(self, meta: Meta, ch: list[Any]) -> ast.ValueList:
        items = tuple(c for c in ch if c is not None)
        return self._nest(ast.ValueList(items, self._span(meta)), *items)

    def value_record(self, meta: Meta, ch: list[Any]) -> ast.ValueRecord:
        return self._nest(ast.ValueRecord(tuple(ch), self._span(meta)),
                          *(f.value for f in ch))

    def property_decl(self, meta: Meta, ch: list[Any]) -> ast.Property:
        return ast.Property(self._text(ch[0]), ch[1], self._span(meta))

    def prop_always(self, meta: Meta, ch: list[Any]) -> ast.PropAlways:
        return ast.PropAlways(ch[0], False, self._span(meta))

    def prop_never(self, meta: Meta, ch: list[Any]) -> ast.PropAlways:
        return ast.PropAlways(ch[0], True, self._span(meta))

    def prop_never_action(self, meta: Meta, ch: list[Any]) -> ast.PropNeverAction:
        return ast.PropNeverAction(None, ch[0], self._span(meta))

    def prop_after_never_action(self, meta: Meta, ch: list[Any]) -> ast.PropNeverAction:
        return ast.PropNeverAction(ch[0], ch[1], self._span(meta))

    def prop_after_never(self, meta: Meta, ch: list[Any]) -> ast.PropAfterNever:
        return ast.PropAfterNever(ch[0], ch[1], self._span(meta))

    def prop_within(self, meta: Meta, ch: list[Any]) -> ast.PropWithin:
        return ast.PropWithin(ch[0], ch[1], ch[2], self._span(meta))

    def prop_terminates(self, meta: Meta, ch: list[Any]) -> ast.PropTerminates:
        return ast.PropTerminates(self._span(meta))

    def prop_unapproved(self, meta: Meta, ch: list[Any]) -> ast.PropUnapproved:
        return ast.PropUnapproved(tuple(ch[0] or ()), self._span(meta))

    # --- expressions ---------------------------------------------------------
    def or_op(self, meta: Meta, ch: list[Any]) -> ast.BinaryOp:
        return self._nest(ast.BinaryOp("or", ch[0], ch[1], self._span(meta)), ch[0], ch[1])

    def and_op(self, meta: Meta, ch: list[Any]) -> ast.BinaryOp:
        return self._nest(ast.BinaryOp("and", ch[0], ch[1], self._span(meta)), ch[0], ch[1])

    def not_op(self, meta: Meta, ch: list[Any]) -> ast.UnaryOp:
        return self._nest(ast.UnaryOp("not", ch[0], self._span(meta)), ch[0])

    def negate(self, meta: Meta, ch: list[Any]) -> ast.UnaryOp:
        return self._nest(ast.UnaryOp("-", ch[0], self._span(meta)), ch[0])

    def compare(self, meta: Meta, ch: list[Any]) -> ast.BinaryOp:
        left, op, right = ch
        return self._nest(
            ast.BinaryOp(cast(ast.BinaryOperator, str(op)), left, right, self._span(meta)),
            left,
            right,
        )

    def binary(self, meta: Meta, ch: list[Any]) -> ast.BinaryOp:
        left, op, right = ch
        return self._nest(
            ast.BinaryOp(cast(ast.BinaryOperator, str(op)), left, right, self._span(meta)),
            left,
            right,
        )

    def field_access(self, meta: Meta, ch: list[Any]) -> ast.FieldAccess:
        return self._nest(
            ast.FieldAccess(ch[0], self._ident(ch[1]), self._span(meta)), ch[0]
        )

    def index_access(self, meta: Meta, ch: list[Any]) -> ast.IndexAccess:
        return self._nest(ast.IndexAccess(ch[0], ch[1], self._span(meta)), ch[0], ch[1])

    def name_ref(self, meta: Meta, ch: list[Any]) -> ast.NameRef:
        return ast.NameRef(str(ch[0]), self._tok_span(ch[0]))

    def func_call(self, meta: Meta, ch: list[Any]) -> ast.FuncCall:
        name, *args = ch
        real = tuple(a for a in args if a is not None)
        return self._nest(ast.FuncCall(self._ident(name), real, self._span(meta)), *real)

    def list_lit(self, meta: Meta, ch: list[Any]) -> ast.ListLit:
        items = tuple(a for a in ch if a is not None)
        return self._nest(ast.ListLit(items, self._span(meta)), *items)

    def int_lit(self, meta: Meta, ch: list[Any]) -> ast.IntLit:
        return ast.IntLit(self._whole(ch[0]), self._tok_span(ch[0]))

    def _whole(self, tok: lark.Token) -> int:
        """A whole-number token, capped at MAX_INT (E002 beyond)."""
        text = str(tok)
        if len(text) > 16 or int(text) > MAX_INT:
            shown = text if len(text) <= 20 else text[:20] + "..."
            self._bad_literal(tok, f"the number {shown} is too large (at most {MAX_INT})")
            return MAX_INT
        return int(text)

    def decimal_lit(self, meta: Meta, ch: list[Any]) -> ast.DecimalLit:
        text = str(ch[0])
        if len(text) > 40:
            self._bad_literal(ch[0], "the decimal number is too long (more than 40 characters)")
        return ast.DecimalLit(_canonical_decimal(text[:40]), self._tok_span(ch[0]))

    def money_lit(self, meta: Meta, ch: list[Any]) -> ast.MoneyLit:
        text = str(ch[0])[1:]
        whole, _, frac = text.partition(".")
        if len(frac) > 2:
            self._bad_literal(
                ch[0],
                f"¥{text} has more than two decimal places; money is counted in fen (0.01)",
                hint=f"write ¥{whole}.{frac[:2]} or use a Decimal and round(...)",
            )
            frac = frac[:2]
        if len(whole) > 15:
            self._bad_literal(ch[0], "the amount is too large (more than 15 digits of yuan)")
            whole = whole[:15]
        value = f"{int(whole)}.{frac.ljust(2, '0')}"
        return ast.MoneyLit(value, self._tok_span(ch[0]))

    def date_lit(self, meta: Meta, ch: list[Any]) -> ast.DateLit:
        text = str(ch[0])
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            self._bad_literal(ch[0], f"{text} is not a real date", hint="dates are YYYY-MM-DD")
        return ast.DateLit(text, self._tok_span(ch[0]))

    def datetime_lit(self, meta: Meta, ch: list[Any]) -> ast.DateTimeLit:
        text = str(ch[0])
        try:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self._bad_literal(ch[0], f"{text} is not a real date and time")
        return ast.DateTimeLit(text, self._tok_span(ch[0]))

    def string_lit(self, meta: Meta, ch: list[Any]) -> ast.StringLit:
        return ast.StringLit(self._text(ch[0]), self._tok_span(ch[0]))

    def _text(self, tok: lark.Token) -> str:
        """Unquote a string, refusing escapes of lone surrogates (not text)."""
        value = _unquote(tok)
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            # a pair of escapes (\\ud83d\\ude00) is one character, as in JSON
            value = value.encode("utf-16-le", "surrogatepass").decode(
                "utf-16-le", "surrogatepass")
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            self._bad_literal(tok, "a \\u escape names half of a surrogate pair, which is not "
                              "a character", hint="write the character itself (UTF-8)")
            value = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
        return value

    def true_lit(self, meta: Meta, ch: list[Any]) -> ast.BoolLit:
        return ast.BoolLit(True, self._tok_span(ch[0]))

    def false_lit(self, meta: Meta, ch: list[Any]) -> ast.BoolLit:
        return ast.BoolLit(False, self._tok_span(ch[0]))

    def _bad_literal(self, tok: lark.Token, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic("E002", message, self._tok_span(tok), hint=hint))


class _SpannedStr(str):
    """A string result that remembers where it was written (for enclosing spans)."""

    span: Span

    def __new__(cls, value: str, span: Span) -> _SpannedStr:
        obj = super().__new__(cls, value)
        obj.span = span
        return obj


@dataclass(frozen=True, slots=True)
class _Paren:
    """A parenthesised expression on its way up: ``span`` includes the parentheses
    (for the enclosing rule's span); the AST keeps ``expr`` itself."""

    expr: Any
    span: Span


class _SpannedTuple(tuple[Any, ...]):
    """A tuple result that remembers where it was written (braces included)."""

    span: Span

    def __new__(cls, items: list[Any], span: Span) -> _SpannedTuple:
        obj = super().__new__(cls, items)
        obj.span = span
        return obj


@dataclass(frozen=True, slots=True)
class _Meta:
    """What the methods read of a rule's position (as Lark's ``meta`` would give)."""

    line: int
    column: int
    end_line: int
    end_column: int
    start_pos: int
    end_pos: int
    empty: bool = False


_EMPTY_META = _Meta(1, 1, 1, 1, 0, 0, True)

#: Terminals whose text the methods need; every other token is a keyword or punctuation.
_KEEP = frozenset(
    """NAME STRING INT DECIMAL MONEY DATE DATETIME COMP_OP ADD_OP MUL_OP INITIAL TERMINAL
    ENTERING DAY_UNIT WORKING MONTH_UNIT YEAR_UNIT PERIOD_OP TRUE FALSE""".split()
)


def _first_pos(x: object) -> tuple[int, int, int] | None:
    """(line, column, offset) where a child starts, if it has a position."""
    if isinstance(x, lark.Token):
        return None if x.line is None else (x.line, x.column or 1, x.start_pos or 0)
    span = getattr(x, "span", None)
    if isinstance(span, Span):
        return (span.line, span.column, span.start)
    if isinstance(x, tuple) and x:
        if len(x) == 3 and isinstance(x[2], Span):  # a header clause
            return (x[2].line, x[2].column, x[2].start)
        for item in x:
            pos = _first_pos(item)
            if pos is not None:
                return pos
    return None


def _last_pos(x: object) -> tuple[int, int, int] | None:
    """(end line, end column, end offset) of a child, if it has a position."""
    if isinstance(x, lark.Token):
        return None if x.end_line is None else (x.end_line, x.end_column or 1, x.end_pos or 0)
    span = getattr(x, "span", None)
    if isinstance(span, Span):
        return (span.end_line, span.end_column, span.end)
    if isinstance(x, tuple) and x:
        if len(x) == 3 and isinstance(x[2], Span):
            return (x[2].end_line, x[2].end_column, x[2].end)
        for item in reversed(x):
            pos = _last_pos(item)
            if pos is not None:
                return pos
    return None


class _Inline(lark.Transformer[lark.Token, Any]):
    """Runs inside the LALR parser's reductions (no parse tree is built).

    Each rule's span runs from its first to its last token, keywords and braces
    included (the parser keeps every token for this); the ``_ToAst`` method then
    sees only the meaningful children.  The current file's ``_ToAst`` comes from
    a context variable set by :func:`build_ast`.
    """


def _adapter(name: str) -> Any:
    member = vars(_ToAst)[name]
    # the plain function under Lark's v_args wrapper (which rebuilds itself per call)
    method = getattr(member, "base_func", member)

    def callback(self: _Inline, children: list[Any]) -> Any:
        first = last = None
        for child in children:
            first = _first_pos(child)
            if first is not None:
                break
        for child in reversed(children):
            last = _last_pos(child)
            if last is not None:
                break
        if first is None or last is None:
            meta = _EMPTY_META
        else:
            meta = _Meta(first[0], first[1], last[0], last[1], first[2], last[2])
        kept = [
            str(c) if isinstance(c, _SpannedStr) else tuple(c) if isinstance(c, _SpannedTuple)
            else c.expr if isinstance(c, _Paren) else c
            for c in children
            if not (isinstance(c, lark.Token) and c.type not in _KEEP)
        ]
        builder = _CURRENT.get()
        assert builder is not None, "build_ast() sets the builder"
        return method(builder, meta, kept)

    callback.__name__ = name
    return callback


_CURRENT: ContextVar[_ToAst | None] = ContextVar("_CURRENT", default=None)


def inline_transformer() -> _Inline:
    """The transformer the parser is built with (one per process)."""
    return _Inline()


def _install_adapters() -> None:
    for name, member in vars(_ToAst).items():
        if name.startswith("_") or not callable(member):
            continue
        setattr(_Inline, name, _adapter(name))


def build_ast(parse: Callable[[], Any], path: str) -> tuple[ast.SourceFile | None,
                                                             tuple[Diagnostic, ...]]:
    """Run ``parse`` (a parser built with :func:`inline_transformer`) for ``path``.

    Syntax errors propagate (lark.UnexpectedInput); nesting beyond
    :data:`MAX_NESTING` gives E003.
    """
    builder = _ToAst(path)
    token = _CURRENT.set(builder)
    try:
        result = parse()
    except _TooDeep as exc:
        return None, (
            Diagnostic(
                "E003",
                f"nested more than {MAX_NESTING} levels deep",
                exc.span,
                hint="split the expression or the rule into smaller parts",
            ),
        )
    finally:
        _CURRENT.reset(token)
    return cast(ast.SourceFile, result), tuple(builder.diagnostics)


def _canonical_decimal(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the grammar only admits digits
        return text
    return format(value, "f")


def from_parse_tree(
    tree: lark.Tree[lark.Token], path: str
) -> tuple[ast.SourceFile | None, tuple[Diagnostic, ...]]:
    """Transform a parse tree into an AST, with literal diagnostics."""
    transformer = _ToAst(path)
    try:
        result = transformer.transform(tree)
    except _TooDeep as exc:
        return None, (
            Diagnostic(
                "E003",
                f"nested more than {MAX_NESTING} levels deep",
                exc.span,
                hint="split the expression or the rule into smaller parts",
            ),
        )
    except lark.exceptions.VisitError as exc:
        inner = exc.orig_exc
        if isinstance(inner, _TooDeep):
            return None, (
                Diagnostic(
                    "E003",
                    f"nested more than {MAX_NESTING} levels deep",
                    inner.span,
                    hint="split the expression or the rule into smaller parts",
                ),
            )
        raise
    return cast(ast.SourceFile, result), tuple(transformer.diagnostics)


_install_adapters()
