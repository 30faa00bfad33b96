"""Hypothesis strategies for random, syntactically valid .jrule ASTs.

Every tree drawn here is one the parser can produce: identifiers match the
grammar's NAME and are never keywords, literals are in the canonical form the
AST keeps (money with two decimals, decimals as ``format(Decimal, "f")``,
ISO dates), integers fit in 18 digits, nesting stays far below
``rules_dsl.to_ast.MAX_NESTING``.  Spans are placeholders (spans take no part
in equality) and there are no comments.
"""

from __future__ import annotations

import datetime as dt
import string
from typing import Any

from hypothesis import strategies as st

from rules_dsl import ast
from rules_dsl.ast import Span

__all__ = [
    "PATH",
    "expressions",
    "identifiers",
    "members",
    "periods",
    "source_files",
    "statements",
    "string_values",
    "timings",
]

PATH = "generated.jrule"
_SPAN = Span(PATH, 1, 1, 1, 1)

#: Every word the grammar uses as a keyword; some are legal names in some
#: places, but a generated tree never needs them.
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

_FIRST = string.ascii_letters + "_" + "法院申请人被执行期限调解书案号金额财产冻结"
_REST = _FIRST + string.digits

identifiers: st.SearchStrategy[str] = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_FIRST),
    st.text(alphabet=_REST, max_size=7),
).filter(lambda name: name not in KEYWORDS)

#: Text with the characters a printer must escape or keep as they are.
string_values: st.SearchStrategy[str] = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "\n", "\t", "\r", "\x00", "#", "{", "}"]),
        st.sampled_from("法院判决书第一二三条¥￥"),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)


def _ident(name: str) -> ast.Ident:
    return ast.Ident(name, _SPAN)


idents = identifiers.map(_ident)
_titles = st.none() | string_values


# --- literals ------------------------------------------------------------------

_int_lits = st.integers(0, 2**53 - 1).map(lambda v: ast.IntLit(v, _SPAN))
_small_ints = st.integers(0, 400).map(lambda v: ast.IntLit(v, _SPAN))
_decimal_lits = st.builds(
    lambda whole, frac: ast.DecimalLit(f"{whole}.{frac}", _SPAN),
    st.integers(0, 10**12),
    st.text(alphabet=string.digits, min_size=1, max_size=6),
)
_money_lits = st.builds(
    lambda yuan, fen: ast.MoneyLit(f"{yuan}.{fen:02d}", _SPAN),
    st.integers(0, 10**15 - 1),
    st.integers(0, 99),
)
_date_lits = st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(
    lambda d: ast.DateLit(d.isoformat(), _SPAN)
)
_datetime_lits = st.builds(
    lambda d, seconds, zone: ast.DateTimeLit(
        d.isoformat(timespec="seconds" if seconds else "minutes") + zone, _SPAN
    ),
    st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)),
    st.booleans(),
    st.sampled_from(["", "Z", "+08:00", "-05:30"]),
)
_string_lits = string_values.map(lambda v: ast.StringLit(v, _SPAN))
_bool_lits = st.booleans().map(lambda v: ast.BoolLit(v, _SPAN))
_name_refs = identifiers.map(lambda n: ast.NameRef(n, _SPAN))

_leaves: st.SearchStrategy[ast.Expr] = st.one_of(
    _name_refs,
    _int_lits,
    _decimal_lits,
    _money_lits,
    _date_lits,
    _datetime_lits,
    _string_lits,
    _bool_lits,
    st.just(ast.ListLit((), _SPAN)),
)

_BINARY_OPS = ["+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">=", "and", "or"]


def _compound(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    some = st.lists(children, max_size=3).map(tuple)
    return st.one_of(
        st.builds(ast.BinaryOp, st.sampled_from(_BINARY_OPS), children, children, st.just(_SPAN)),
        st.builds(ast.UnaryOp, st.sampled_from(["-", "not"]), children, st.just(_SPAN)),
        st.builds(ast.FieldAccess, children, idents, st.just(_SPAN)),
        st.builds(ast.IndexAccess, children, children, st.just(_SPAN)),
        st.builds(ast.FuncCall, idents, some, st.just(_SPAN)),
        st.builds(ast.ListLit, some, st.just(_SPAN)),
    )


_UNITS = st.sampled_from(["days", "working_days", "months", "years"])

#: Names that are keywords elsewhere but are names inside ``(...)``; the
#: expression-start words (``not``, ``true``, ``false``) never are.
_KEYWORD_NAMES = sorted(KEYWORDS - {"not", "true", "false"})


def _periods_of(amounts: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Period]:
    return st.builds(
        ast.Period,
        st.one_of(
            _small_ints,
            st.just(ast.IntLit(1, _SPAN)),
            _name_refs,
            st.sampled_from(_KEYWORD_NAMES).map(lambda n: ast.NameRef(n, _SPAN)),
            amounts,
        ),
        _UNITS,
        st.just(_SPAN),
    )


def _compound_or_date(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    legal_dates = st.builds(
        ast.LegalDate, _periods_of(children), st.sampled_from(["after", "before"]), children,
        st.just(_SPAN),
    )
    return _compound(children) | legal_dates


expressions: st.SearchStrategy[ast.Expr] = st.recursive(
    _leaves, _compound_or_date, max_leaves=10
)


# --- periods and timings -------------------------------------------------------

periods: st.SearchStrategy[ast.Period] = _periods_of(expressions)

_anchors: st.SearchStrategy[ast.Expr | ast.AnchorEntering] = st.one_of(
    st.just(ast.AnchorEntering(_SPAN)), expressions
)

timings: st.SearchStrategy[ast.Timing] = st.one_of(
    st.builds(ast.TimingBy, expressions, st.just(_SPAN)),
    st.builds(ast.TimingAfter, periods, _anchors, st.just(_SPAN)),
    st.builds(ast.TimingBefore, periods, expressions, st.just(_SPAN)),
    st.builds(ast.TimingEvery, periods, _anchors, st.none() | periods, st.just(_SPAN)),
)


# --- statements ----------------------------------------------------------------


def _blocks(depth: int) -> st.SearchStrategy[ast.Block]:
    return st.lists(statements(depth), max_size=3).map(lambda s: ast.Block(tuple(s), _SPAN))


def statements(depth: int = 2) -> st.SearchStrategy[ast.Stmt]:
    """Statements whose blocks nest at most ``depth`` levels."""
    simple: list[st.SearchStrategy[Any]] = [
        st.builds(ast.SetStmt, idents, expressions, st.just(_SPAN)),
        st.builds(ast.GotoStmt, idents, st.just(_SPAN)),
        st.builds(
            ast.PeriodStmt, st.sampled_from(["suspend", "resume", "restart"]), idents,
            st.just(_SPAN),
        ),
    ]
    args = st.lists(st.builds(ast.NamedArg, idents, expressions, st.just(_SPAN)), max_size=3)
    calls = st.builds(ast.ActionCall, idents, args.map(tuple), st.just(_SPAN))
    if depth <= 0:
        approvals: st.SearchStrategy[ast.Approval | None] = st.none()
        return st.one_of(*simple, st.builds(ast.DoStmt, calls, approvals, st.just(_SPAN)))
    body = _blocks(depth - 1)
    branches = st.builds(
        ast.ApprovalBranch, st.sampled_from(["approved", "rejected", "timeout"]), body,
        st.just(_SPAN),
    )
    approvals = st.none() | st.builds(
        ast.Approval, idents, periods, st.lists(branches, max_size=3).map(tuple),
        st.just(_SPAN),
    )
    if_branches = st.builds(ast.IfBranch, expressions, body, st.just(_SPAN))
    return st.one_of(
        *simple,
        st.builds(ast.DoStmt, calls, approvals, st.just(_SPAN)),
        st.builds(
            ast.IfStmt, st.lists(if_branches, min_size=1, max_size=3).map(tuple),
            st.none() | body, st.just(_SPAN),
        ),
    )


# --- members and files ---------------------------------------------------------


def _type_refs() -> st.SearchStrategy[ast.TypeRef]:
    plain = st.builds(ast.TypeRef, idents, st.just(()), st.just(_SPAN))
    return st.recursive(
        plain,
        lambda inner: st.builds(
            ast.TypeRef, idents, inner.map(lambda t: (t,)), st.just(_SPAN)
        ),
        max_leaves=3,
    )


_fields = st.builds(ast.FieldDecl, idents, _type_refs(), _titles, st.just(_SPAN))
_field_tuples = st.lists(_fields, max_size=3).map(tuple)
_ident_tuples = st.lists(idents, min_size=1, max_size=3).map(tuple)
_priorities = st.none() | _int_lits
_cites = st.none() | _string_lits

members: st.SearchStrategy[ast.Member] = st.one_of(
    st.builds(ast.ImportDecl, idents, st.just(_SPAN)),
    st.builds(ast.RoleDecl, idents, _titles, st.just(_SPAN)),
    st.builds(
        ast.EnumDecl, idents, _titles,
        st.lists(
            st.builds(ast.EnumVariant, idents, _titles, st.just(_SPAN)), min_size=1, max_size=4
        ).map(tuple),
        st.just(_SPAN),
    ),
    st.builds(ast.RecordDecl, idents, _titles, _field_tuples, st.just(_SPAN)),
    st.builds(ast.TermDecl, idents, _type_refs(), _titles, st.just(_SPAN)),
    st.builds(ast.VarDecl, idents, _type_refs(), expressions, _titles, st.just(_SPAN)),
    st.builds(ast.StateDecl, idents, _titles, st.booleans(), st.booleans(), st.just(_SPAN)),
    st.builds(
        ast.EventDecl, idents, _titles, st.just(()) | _ident_tuples, _field_tuples,
        st.just(_SPAN),
    ),
    st.builds(
        ast.Transition, idents, st.just(()) | _ident_tuples, st.none() | expressions,
        _priorities, _cites, _blocks(2), st.just(_SPAN),
    ),
    st.builds(
        ast.Deadline, idents, _titles, _ident_tuples, timings, _priorities, _cites,
        _blocks(2), st.just(_SPAN),
    ),
)

_member_tuples = st.lists(members, max_size=6).map(tuple)

_items: st.SearchStrategy[ast.Item] = st.one_of(
    st.builds(ast.Contract, idents, string_values, string_values, _member_tuples,
              st.just(_SPAN)),
    st.builds(ast.ModuleDecl, idents, _titles, _member_tuples, st.just(_SPAN)),
)

source_files: st.SearchStrategy[ast.SourceFile] = st.builds(
    lambda items: ast.SourceFile(PATH, tuple(items), (), _SPAN),
    st.lists(_items, max_size=2),
)
