"""Contract IR -> an executable program of Python functions (built once per contract).

Expressions become functions of a :class:`Frame` (the values visible while a
rule runs); a block of statements becomes one function that updates the frame
(generated from the block's IR, expressions written in place where Python
evaluates them exactly as their closures do: see ``_Compiler.block`` and
:mod:`engine._fuse`).  Everything the IR leaves open is decided here once, not
on every event: the type-directed choice of arithmetic, the transitions that
can fire for (event, state), the deadlines armed on entering each state, the
parsing of each event's payload.

All arithmetic is exact: Money through :class:`contracts_lib.money.Money`,
decimals through :data:`engine.values.DECIMAL_CONTEXT`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from contracts_lib.calendar import Calendar
from contracts_lib.money import Money, Rounding, delayed_performance_interest
from contracts_lib.periods import PeriodUnit, period_end, period_start_before
from engine._fuse import Leaf, compile_function, fuse
from engine.values import (
    _DATE_RE,
    DECIMAL_CONTEXT,
    TypeTable,
    Value,
    from_json,
    to_json,
)

__all__ = [
    "ApprovalSite",
    "CompiledDeadline",
    "CompiledTransition",
    "Frame",
    "Program",
    "RuntimeFault",
    "compile_contract",
]

IR = Mapping[str, Any]
Expr = Callable[["Frame"], Value]
Stmt = Callable[["Frame"], None]


class RuntimeFault(Exception):
    """A rule could not be evaluated (index out of range, calendar year missing...).

    The engine turns it into a refusal (for events) or an incident (for
    deadlines); it never leaves a half-applied state.
    """

    def __init__(self, message: str, span: str = "") -> None:
        self.span = span
        #: what went wrong, without the span (``str()`` adds it once)
        self.message = message
        super().__init__(f"{message} (at {span})" if span else message)


@dataclass(slots=True, eq=False)
class Frame:
    """Mutable scratch space of one rule's evaluation (never escapes ``step``)."""

    terms: Mapping[str, Value]
    vars: dict[str, Value]
    today: dt.date
    now: dt.datetime
    calendar: Calendar
    payload: Mapping[str, Value] = field(default_factory=dict)
    event_dates: Mapping[str, dt.date] = field(default_factory=dict)
    event_payloads: Mapping[str, Mapping[str, Value]] = field(default_factory=dict)
    deadline_days: Mapping[str, dt.date] = field(default_factory=dict)
    entering: dt.date | None = None
    #: what the rule did, in order: ("do", site, args) / ("approval", site, args) /
    #: ("set", name, old, new) / ("suspend"|"resume"|"restart", deadline)
    log: list[tuple[Any, ...]] = field(default_factory=list)
    goto: str | None = None


@dataclass(frozen=True)
class ApprovalSite:
    """A ``do ... approved by`` statement: what runs on each outcome."""

    site: int
    action: str
    role: str
    within_unit: PeriodUnit
    within_amount: Expr
    on_approved: Stmt
    on_rejected: Stmt
    on_timeout: Stmt
    span: str


@dataclass(frozen=True)
class CompiledTransition:
    index: int
    event: str
    priority: int
    guard: Expr | None
    body: Stmt
    cite: str | None
    span: str


@dataclass(frozen=True)
class CompiledDeadline:
    index: int
    name: str
    title: str | None
    states: frozenset[str]
    kind: str  # by | after | before | every
    unit: PeriodUnit | None
    amount: Expr | None
    anchor: Expr | None  # None: entering
    anchor_event: str | None  # the anchor is an event that may not have occurred yet
    limit_unit: PeriodUnit | None
    limit_amount: Expr | None
    priority: int
    body: Stmt
    cite: str | None
    span: str


@dataclass(frozen=True)
class Program:
    """A contract ready to run.  Immutable; build it once per contract id."""

    contract_id: str
    name: str
    initial_state: str
    states: Mapping[str, IR]
    terminal: frozenset[str]
    types: TypeTable
    term_types: tuple[tuple[str, str], ...]
    var_inits: tuple[tuple[str, Expr], ...]
    events: Mapping[str, IR]
    event_fields: Mapping[str, tuple[tuple[str, str], ...]]
    #: (event, state) -> transitions in firing order
    transitions: Mapping[tuple[str, str], tuple[CompiledTransition, ...]]
    deadlines: tuple[CompiledDeadline, ...]
    deadline_by_name: Mapping[str, CompiledDeadline]
    approval_sites: Mapping[int, ApprovalSite]
    #: events whose last date/payload some timing reads
    remembered_events: frozenset[str]
    ir: IR
    #: the variables' names, in declaration order (the order of ``InstanceState.vars``)
    var_names: tuple[str, ...]
    #: event -> parse(payload JSON) -> its values, the same as
    #: :func:`engine.values.from_json` gives field by field, or None when anything
    #: is wrong or unusual (then the engine's general check says what)
    payload_parsers: Mapping[str, Callable[[object], dict[str, Value] | None]]
    #: events some deadline is anchored on (their timers may wait for them)
    anchor_events: frozenset[str]
    #: whether some expression reads a deadline's last day (``X.last_day``)
    reads_deadline_days: bool
    #: event -> state -> ``transitions[(event, state)]`` (a lookup without a key tuple)
    rules_by_event: Mapping[str, Mapping[str, tuple[CompiledTransition, ...]]]


_UNITS = {u.value: u for u in PeriodUnit}
_ROUNDING = {
    "half_up": Rounding.HALF_UP,
    "half_even": Rounding.HALF_EVEN,
    "down": Rounding.DOWN,
    "up": Rounding.UP,
}


def _dec(v: Value) -> Decimal:
    if isinstance(v, Money):
        return v.amount
    if isinstance(v, int):
        return Decimal(v)
    return v  # type: ignore[no-any-return]


def _arith(op: str, lt: str, rt: str, result: str) -> Callable[[Value, Value], Value]:
    """The Python operation for ``lt op rt`` (types as in the IR)."""
    if result == "Money" and lt == "Money" and rt == "Money":
        return (lambda a, b: a + b) if op == "+" else (lambda a, b: a - b)
    if result == "Money":  # Money * Int or Int * Money
        return lambda a, b: a * b
    if result == "Int":
        if op == "+":
            return lambda a, b: a + b
        if op == "-":
            return lambda a, b: a - b
        return lambda a, b: a * b
    if result == "Text":
        return lambda a, b: a + b
    ctx = DECIMAL_CONTEXT
    table: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
        "+": ctx.add,
        "-": ctx.subtract,
        "*": ctx.multiply,
        "/": ctx.divide,
    }
    fn = table[op]
    return lambda a, b: fn(_dec(a), _dec(b))


def _compare(op: str, lt: str, rt: str) -> Callable[[Value, Value], bool]:
    mixed = {lt, rt} == {"Int", "Decimal"}
    conv: Callable[[Value], Value] = _dec if mixed else (lambda v: v)
    ops: dict[str, Callable[[Value, Value], bool]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    fn = ops[op]
    if mixed:
        return lambda a, b: fn(conv(a), conv(b))
    return fn


# Templates of fused closures (engine/_fuse.py): {0}, {1} are the operands.
_BINARY = {op: f"def fused(f):\n    return {{0}} {op} {{1}}\n"
           for op in ("and", "or", "==", "!=", "<", "<=", ">", ">=")}
_ARITH = {op: ("def fused(f):\n"
               "    try:\n"
               f"        return {{0}} {op} {{1}}\n"
               "    except ArithmeticError as exc:\n"
               "        raise FAULT(exc) from exc\n")
          for op in ("+", "-", "*")}
_INDEX = """\
def fused(f):
    items, i = {0}, {1}
    if not 0 <= i < len(items):
        raise RuntimeFault(f"index {{i}} is outside the list of {{len(items)}}", SPAN)
    return items[i]
"""
# A record's fields are stored in declaration order (engine.values.from_json builds
# them so): a field is read at its position, checked by name, else found by name.
_FIELD = """\
def fused(f):
    r = {0}
    fields = r.fields
    if len(fields) > POS:
        pair = fields[POS]
        if pair[0] == NAME:
            return pair[1]
    return r.get(NAME)
"""
_LIST_FIELD = """\
def fused(f):
    items = {0}
    try:
        return tuple([p[1] if (p := r.fields[POS])[0] == NAME else r.get(NAME) for r in items])
    except IndexError:
        return tuple([r.get(NAME) for r in items])
"""
_LIST_FIELD_BY_NAME = """\
def fused(f):
    return tuple([r.get(NAME) for r in {0}])
"""
_TOTAL_OF_FIELD = """\
def fused(f):
    items = {0}
    try:
        values = [p[1] if (p := r.fields[POS])[0] == NAME else r.get(NAME) for r in items]
    except IndexError:
        values = [r.get(NAME) for r in items]
    return TOTAL(values)
"""
_SET = """\
def fused(f):
    new = {0}
    old = f.vars[NAME]
    f.vars[NAME] = new
    f.log.append(("set", NAME, old, new))
"""


def _by_position(name: str, pos: int) -> dict[str, Any]:
    """What the ``list.field`` templates read a record's field with."""
    return {"NAME": name, "POS": pos}


def _arith_fault(span: str) -> Callable[[ArithmeticError], RuntimeFault]:
    def fault(exc: ArithmeticError) -> RuntimeFault:
        return RuntimeFault(f"arithmetic failed: {exc.__class__.__name__}", span)

    return fault


def _text(v: Value) -> str:
    out = to_json(v)
    if isinstance(out, bool):
        return "true" if out else "false"
    return str(out)


def legal_date_of(instant: dt.datetime, calendar: Calendar) -> dt.date:
    """The legal day (court-local calendar day) an instant falls on."""
    from zoneinfo import ZoneInfo

    return instant.astimezone(ZoneInfo(calendar.timezone)).date()


#: functions whose value depends on their arguments alone (no calendar, no clock)
_PURE_FUNCTIONS = frozenset({"sum", "count", "min", "max", "first", "last", "round"})
_TERMS_ONLY_KINDS = frozenset({"literal", "term", "role", "enum", "field", "index", "list",
                               "unary", "binary", "call"})


def _terms_only(e: IR) -> bool:
    """Whether an expression's value depends on the instance's terms alone (and
    constants): then it is the same at every step of the instance."""
    kind = e.get("expr")
    if kind not in _TERMS_ONLY_KINDS:
        return False
    if kind == "call" and e["function"] not in _PURE_FUNCTIONS:
        return False
    if kind == "literal" and e.get("type") == "DateTime":
        return True
    children: list[Any] = []
    for key in ("of", "index", "operand", "left", "right"):
        if isinstance(e.get(key), dict):
            children.append(e[key])
    children += [a for a in e.get("items", ()) if isinstance(a, dict)]
    children += [a for a in e.get("args", ()) if isinstance(a, dict) and "expr" in a]
    return all(_terms_only(c) for c in children)


_BY_TERMS_MAX = 4096


def _by_terms(closure: Expr) -> Expr:
    """``closure`` (an expression of the terms alone), remembered per terms mapping.

    A frame's terms are one mapping per instance's terms (``engine.core`` hands
    every step of an instance the same, never-written dict), so a value such as
    ``sum(履行计划.金额)`` is computed once per instance instead of at every step.
    Keyed by the mapping's identity (held, so the identity is not reused); a
    fault is not remembered (it is raised again).
    """
    cache: dict[int, tuple[Mapping[str, Value], Value]] = {}

    def by_terms(f: Frame) -> Value:
        terms = f.terms
        hit = cache.get(id(terms))
        if hit is not None and hit[0] is terms:
            return hit[1]
        value = closure(f)
        if len(cache) >= _BY_TERMS_MAX:
            cache.clear()
        cache[id(terms)] = (terms, value)
        return value

    by_terms.cache = cache  # type: ignore[attr-defined]  # read in place: _Compiler.source
    return by_terms


class _Compiler:
    def __init__(self, contract: IR) -> None:
        self.contract = contract
        self.sites: dict[int, ApprovalSite] = {}
        self.next_site = 0  # reserved before compiling nested blocks: sites never collide
        self.remembered: set[str] = set()
        self.reads_deadline_days = False
        #: leaf expressions (constants, variables, terms, payload fields): what they read
        self.leaves: dict[Expr, Leaf] = {}
        #: ``list.field`` expressions: (the list operand, the field's position, its name)
        self.list_fields: dict[Expr, tuple[tuple[Expr, Leaf | None], int, str]] = {}

    def operand(self, e: Expr) -> tuple[Expr, Leaf | None]:
        """An operand for :func:`engine._fuse.fuse`: the closure and what it reads."""
        return e, self.leaves.get(e)

    def leaf(self, e: Expr, source: str, key: Any) -> Expr:
        self.leaves[e] = (source, key)
        return e

    # --- expressions ---------------------------------------------------------
    def expr(self, e: IR) -> Expr:
        kind = e["expr"]
        span = e.get("span", "")
        if kind == "literal":
            if e["type"] == "DateTime":
                return _datetime_literal(e["value"])
            value = self.literal(e["type"], e["value"])
            return self.leaf(lambda f: value, "const", value)
        if kind == "term":
            name = e["name"]
            return self.leaf(lambda f: f.terms[name], "terms", name)
        if kind == "var":
            name = e["name"]
            return self.leaf(lambda f: f.vars[name], "vars", name)
        if kind == "role":
            role = e["name"]
            return self.leaf(lambda f: role, "const", role)
        if kind == "enum":
            variant = e["value"]
            return self.leaf(lambda f: variant, "const", variant)
        if kind == "today":
            return lambda f: f.today
        if kind == "now":
            return lambda f: f.now
        if kind == "entering":
            return lambda f: f.entering if f.entering is not None else f.today
        if kind == "payload":
            fname = e["field"]
            return self.leaf(lambda f: f.payload[fname], "payload", fname)
        if kind == "event_date":
            ev = e["event"]
            self.remembered.add(ev)

            def event_date(f: Frame) -> Value:
                if ev not in f.event_dates:
                    raise RuntimeFault(f"event `{ev}` has not occurred yet", span)
                return f.event_dates[ev]

            return event_date
        if kind == "last_payload":
            ev, fname = e["event"], e["field"]
            self.remembered.add(ev)

            def last_payload(f: Frame) -> Value:
                if ev not in f.event_payloads:
                    raise RuntimeFault(f"event `{ev}` has not occurred yet", span)
                return f.event_payloads[ev][fname]

            return last_payload
        if kind == "deadline_last_day":
            dname = e["deadline"]
            self.reads_deadline_days = True

            def deadline_day(f: Frame) -> Value:
                if dname not in f.deadline_days:
                    raise RuntimeFault(f"deadline `{dname}` has never been armed", span)
                return f.deadline_days[dname]

            return deadline_day
        if kind == "field":
            return self.field(e)
        if kind == "index":
            of, idx = self.expr(e["of"]), self.expr(e["index"])
            return fuse(_INDEX, [self.operand(of), self.operand(idx)],
                        {"RuntimeFault": RuntimeFault, "SPAN": span})
        if kind == "list":
            items = [self.expr(i) for i in e["items"]]
            return lambda f: tuple([item(f) for item in items])
        if kind == "unary":
            operand = self.expr(e["operand"])
            if e["op"] == "not":
                return fuse("def fused(f):\n    return not {0}\n", [self.operand(operand)], {})
            if e["type"] == "Money":
                return lambda f: -operand(f)
            if e["type"] == "Int":
                return lambda f: -operand(f)
            return lambda f: DECIMAL_CONTEXT.minus(_dec(operand(f)))
        if kind == "binary":
            return self.binary(e)
        if kind == "call":
            closure = self.call(e)
            return _by_terms(closure) if _terms_only(e) else closure
        if kind == "legal_date":
            return self.legal_date(e)
        raise ValueError(f"unknown IR expression kind {kind!r}")

    def field(self, e: IR) -> Expr:
        """``record.field``, or ``list.field`` (that field of every record, in order).

        A record's fields are stored in declaration order (:func:`engine.values.from_json`
        builds them so), so the field is read at its position, checked by name.
        """
        of = self.operand(self.expr(e["of"]))
        fname = e["field"]
        of_type = e["of"]["type"]
        is_list = of_type.startswith("List[")
        record = of_type[5:-1] if is_list else of_type
        declared = [f["name"] for r in self.contract["records"] if r["name"] == record
                    for f in r["fields"]]
        if fname not in declared:  # not a declared record (nothing to gain): by name
            if is_list:
                return fuse(_LIST_FIELD_BY_NAME, [of], {"NAME": fname})
            return fuse("def fused(f):\n    return {0}.get(NAME)\n", [of], {"NAME": fname})
        pos = declared.index(fname)
        if not is_list:
            return fuse(_FIELD, [of], {"NAME": fname, "POS": pos})
        list_field = fuse(_LIST_FIELD, [of], _by_position(fname, pos))
        self.list_fields[list_field] = (of, pos, fname)
        return list_field

    def literal(self, type_name: str, raw: Any) -> Value:
        if type_name == "Money":
            return Money.parse(raw)
        if type_name == "Decimal":
            return Decimal(raw)
        if type_name == "Date":
            return dt.date.fromisoformat(raw)
        return raw

    def binary(self, e: IR) -> Expr:
        op = e["op"]
        left, right = self.expr(e["left"]), self.expr(e["right"])
        operands = [self.operand(left), self.operand(right)]
        if op in ("and", "or"):
            return fuse(_BINARY[op], operands, {})
        lt, rt = e["left"]["type"], e["right"]["type"]
        if op in ("==", "!=", "<", "<=", ">", ">="):
            if {lt, rt} != {"Int", "Decimal"}:  # same kind: Python's own comparison
                return fuse(_BINARY[op], operands, {})
            cmp = _compare(op, lt, rt)
            return lambda f: cmp(left(f), right(f))
        span = e.get("span", "")
        result = e["type"]
        if result in ("Money", "Int", "Text") and op in ("+", "-", "*"):
            # Python's own operator is the exact operation (Money's are exact or raise)
            return fuse(_ARITH[op], operands, {"FAULT": _arith_fault(span)})
        fn = _arith(op, lt, rt, result)

        def arith(f: Frame) -> Value:
            try:
                return fn(left(f), right(f))
            except ArithmeticError as exc:
                raise RuntimeFault(f"arithmetic failed: {exc.__class__.__name__}", span) from exc

        return arith

    def call(self, e: IR) -> Expr:
        name = e["function"]
        span = e.get("span", "")
        args_ir = e["args"]
        if name == "round":
            value = self.expr(args_ir[0])
            mode = _ROUNDING[args_ir[1]["mode"]]
            if args_ir[0]["type"] == "Money":
                return value
            return lambda f: Money.round(value(f), mode)
        args = [self.expr(a) for a in args_ir]
        types = [a["type"] for a in args_ir]
        if name in ("min", "max"):
            a, b = args
            pick = min if name == "min" else max
            if {types[0], types[1]} == {"Int", "Decimal"}:
                return lambda f: pick(_dec(a(f)), _dec(b(f)))
            return lambda f: pick(a(f), b(f))
        if name == "count":
            (a,) = args
            return fuse("def fused(f):\n    return len({0})\n", [self.operand(a)], {})
        if name == "sum":
            (a,) = args
            if e["type"] == "Money":
                if a in self.list_fields:  # sum(list.field): the field read in the same loop
                    items, pos, fname = self.list_fields[a]
                    return fuse(_TOTAL_OF_FIELD, [items],
                                {**_by_position(fname, pos), "TOTAL": Money.total})
                return fuse("def fused(f):\n    return TOTAL({0})\n", [self.operand(a)],
                            {"TOTAL": Money.total})
            if e["type"] == "Int":
                return lambda f: sum(a(f))
            return lambda f: DECIMAL_CONTEXT.create_decimal(sum(a(f), Decimal(0)))
        if name in ("first", "last"):
            (a,) = args
            pos = 0 if name == "first" else -1

            def end(f: Frame) -> Value:
                items = a(f)
                if not items:
                    raise RuntimeFault(f"{name}() of an empty list", span)
                return items[pos]

            return end
        if name == "delay_interest":
            unpaid, start, stop = args

            def interest(f: Frame) -> Value:
                try:
                    return delayed_performance_interest(unpaid(f), start(f), stop(f))
                except ValueError as exc:
                    raise RuntimeFault(str(exc), span) from exc

            return interest
        if name == "days_between":
            a, b = args
            return lambda f: (b(f) - a(f)).days
        if name == "text":
            (a,) = args
            return lambda f: _text(a(f))
        if name == "date":
            (a,) = args
            return lambda f: legal_date_of(a(f), f.calendar)
        raise ValueError(f"unknown function {name!r}")

    def period(self, p: IR) -> tuple[PeriodUnit, Expr]:
        return _UNITS[p["unit"]], self.expr(p["amount"])

    def legal_date(self, e: IR) -> Expr:
        unit, amount = self.period(e["period"])
        anchor = self.expr(e["anchor"])
        span = e.get("span", "")
        if e["direction"] == "after":

            def after(f: Frame) -> Value:
                try:
                    return period_end(anchor(f), _whole(amount(f), span), unit, f.calendar).end
                except ValueError as exc:
                    raise RuntimeFault(str(exc), span) from exc

            return after

        def before(f: Frame) -> Value:
            try:
                return period_start_before(
                    anchor(f), _whole(amount(f), span), unit, f.calendar
                ).start
            except ValueError as exc:
                raise RuntimeFault(str(exc), span) from exc

        return before

    # --- statements ------------------------------------------------------------
    # A block of statements becomes one generated function (see _Source): its
    # statements in order, with the expressions Python can evaluate exactly as the
    # closures would (variables, terms, payload fields, constants, comparisons,
    # and/or/not, Int and Text arithmetic of those) written in place, and every
    # other expression called as its closure.  ``goto`` sets ``frame.goto`` and
    # returns: it ends the rule.
    def block(self, stmts: list[IR]) -> Stmt:
        if not stmts:
            return _noop
        src = _Source()
        body: list[str] = []
        for st in stmts:
            self.stmt(st, src, body, 1)
        return src.function(body)

    def stmt(self, s: IR, src: _Source, out: list[str], depth: int) -> None:
        pad = "    " * depth
        kind = s["stmt"]
        if kind == "set":
            name = src.bind(s["var"])
            value = s["value"]
            if value["expr"] == "binary" and value["op"] in ("+", "-", "*") \
                    and value["type"] in ("Money", "Int", "Text"):
                # the arithmetic in place, with its own fault (as _ARITH)
                left, right = self.source(value["left"], src), self.source(value["right"], src)
                fault = src.bind(_arith_fault(value.get("span", "")))
                out += [f"{pad}try:",
                        f"{pad}    new = {left} {value['op']} {right}",
                        f"{pad}except ArithmeticError as exc:",
                        f"{pad}    raise {fault}(exc) from exc"]
            else:
                out.append(f"{pad}new = {self.source(value, src)}")
            src.uses.update(("_v", "_log"))
            out += [f"{pad}old = _v[{name}]",
                    f"{pad}_v[{name}] = new",
                    f"{pad}_log.append(('set', {name}, old, new))"]
            return
        if kind == "goto":
            out += [f"{pad}f.goto = {src.bind(s['state'])}", f"{pad}return"]
            return
        if kind == "if":
            for i, b in enumerate(s["branches"]):
                out.append(f"{pad}{'if' if i == 0 else 'elif'} {self.source(b['condition'], src)}:")
                self.nested(b["body"], src, out, depth + 1)
            if s["otherwise"] is not None:
                out.append(f"{pad}else:")
                self.nested(s["otherwise"], src, out, depth + 1)
            return
        if kind in ("suspend", "resume", "restart"):
            src.uses.add("_log")
            out.append(f"{pad}_log.append(({src.bind(kind)}, {src.bind(s['deadline'])}))")
            return
        if kind == "do":
            tag, site, args = self.do(s, src)
            pairs = "".join(f"({src.bind(name)}, {value}), " for name, value in args)
            src.uses.add("_log")
            out.append(f"{pad}_log.append(({src.bind(tag)}, {src.bind(site)}, ({pairs})))")
            return
        raise ValueError(f"unknown IR statement {kind!r}")

    def nested(self, stmts: list[IR], src: _Source, out: list[str], depth: int) -> None:
        if not stmts:
            out.append("    " * depth + "pass")
        for st in stmts:
            self.stmt(st, src, out, depth)

    def source(self, e: IR, src: _Source) -> str:
        """Python source evaluating ``e`` exactly as its closure does, in ``src``."""
        kind = e["expr"]
        if kind == "literal" and e["type"] != "DateTime":
            return src.bind(self.literal(e["type"], e["value"]))
        if kind in ("term", "var"):
            local = "_t" if kind == "term" else "_v"
            src.uses.add(local)
            return f"{local}[{src.bind(e['name'])}]"
        if kind == "payload":
            src.uses.add("_p")
            return f"_p[{src.bind(e['field'])}]"
        if kind == "role":
            return src.bind(e["name"])
        if kind == "enum":
            return src.bind(e["value"])
        if kind == "unary" and e["op"] == "not":
            return f"(not {self.source(e['operand'], src)})"
        if kind == "binary":
            op = e["op"]
            left, right = e["left"], e["right"]
            same_kind = {left["type"], right["type"]} != {"Int", "Decimal"}
            if op in _COMPARISONS and left["type"] == right["type"] == "Money":
                # Money's comparison methods compare the amounts of two Money values:
                # compared here, without a method call (the operands are Money: typed)
                return (f"({self.source(left, src)}.amount {op} "
                        f"{self.source(right, src)}.amount)")
            if op in ("and", "or") or (op in _COMPARISONS and same_kind):
                return f"({self.source(left, src)} {op} {self.source(right, src)})"
            if op in ("+", "-", "*") and e["type"] in ("Int", "Text") \
                    and left["expr"] in _LEAVES and right["expr"] in _LEAVES:
                # int and text arithmetic of plain values cannot fail: no fault to catch
                return f"({self.source(left, src)} {op} {self.source(right, src)})"
        closure = self.expr(e)
        cache = getattr(closure, "cache", None) if kind == "call" else None
        if cache is not None:
            # a value of the terms alone (_by_terms): its usual hit read in place
            src.uses.add("_t")
            memo, fn = src.bind(cache), src.bind(closure)
            return (f"(_h[1] if (_h := {memo}.get(id(_t))) is not None and _h[0] is _t "
                    f"else {fn}(f))")
        return f"{src.bind(closure)}(f)"

    def do(self, s: IR, src: _Source) -> tuple[str, int, list[tuple[str, str]]]:
        """Register the action site of a ``do``; its log tag, site and argument sources."""
        site = self.next_site
        self.next_site += 1
        args = [(a["name"], self.source(a["value"], src)) for a in s["args"]]
        approval = s["approval"]
        if approval is None:
            self.sites[site] = ApprovalSite(
                site, s["action"], "", PeriodUnit.DAYS, lambda f: 0,
                _noop, _noop, _noop, s.get("span", ""),
            )
            return "do", site, args
        unit, amount = self.period(approval["within"])
        self.sites[site] = ApprovalSite(
            site,
            s["action"],
            approval["role"],
            unit,
            amount,
            self.block(approval["on_approved"]),
            self.block(approval["on_rejected"]),
            self.block(approval["on_timeout"]),
            s.get("span", ""),
        )
        return "approval", site, args


_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_LEAVES = ("literal", "term", "var", "payload", "role", "enum")
_PROLOGUE = {"_v": "_v = f.vars", "_t": "_t = f.terms", "_p": "_p = f.payload",
             "_log": "_log = f.log"}


class _Source:
    """A generated block function being written: its namespace (every name from
    the rule set or value is bound here, never pasted into the source)."""

    def __init__(self) -> None:
        self.env: dict[str, Any] = {}
        self.uses: set[str] = set()

    def bind(self, value: Any) -> str:
        name = f"_k{len(self.env)}"
        self.env[name] = value
        return name

    def function(self, body: list[str]) -> Stmt:
        prologue = [f"    {_PROLOGUE[u]}" for u in sorted(self.uses)]
        source = "\n".join(["def rule(f):", *prologue, *body]) + "\n"
        return compile_function(source, "rule", self.env)


def _datetime_literal(text: str) -> Expr:
    """A DateTime literal; without an offset it is court-local time."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        instant = parsed.astimezone(dt.UTC)
        return lambda f: instant

    def local(f: Frame) -> Value:
        from zoneinfo import ZoneInfo

        return parsed.replace(tzinfo=ZoneInfo(f.calendar.timezone)).astimezone(dt.UTC)

    return local


def _noop(f: Frame) -> None:
    return None


def _whole(n: Value, span: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise RuntimeFault(f"a period length must be a whole number >= 0, not {n!r}", span)
    return n


def run_rule(body: Stmt, frame: Frame) -> None:
    """Run a rule's statements; a ``goto`` ends them (recorded in ``frame.goto``)."""
    body(frame)


def compile_contract(contract: IR) -> Program:
    """Build the executable program of one contract of an IR rule set."""
    c = _Compiler(contract)
    states = {s["name"]: s for s in contract["states"]}
    terminal = frozenset(n for n, s in states.items() if s["terminal"])
    types = TypeTable(
        records={r["name"]: tuple((f["name"], f["type"]) for f in r["fields"])
                 for r in contract["records"]},
        enums={
            **{e["name"]: tuple(v["name"] for v in e["variants"]) for e in contract["enums"]},
            **_builtin_enums(),
        },
        roles=tuple(r["name"] for r in contract["roles"]),
    )
    transitions: dict[tuple[str, str], list[CompiledTransition]] = {}
    for t in contract["transitions"]:
        ct = CompiledTransition(
            t["index"],
            t["event"],
            t["priority"] or 0,
            c.expr(t["guard"]) if t["guard"] is not None else None,
            c.block(t["body"]),
            t["cite"],
            t["span"],
        )
        for state in t["states"]:
            transitions.setdefault((t["event"], state), []).append(ct)
    deadlines: list[CompiledDeadline] = []
    for i, d in enumerate(contract["deadlines"]):
        timing = d["timing"]
        kind = timing["kind"]
        unit = amount = anchor = limit_unit = limit_amount = None
        anchor_event = None
        if kind == "by":
            anchor = c.expr(timing["date"])
        else:
            unit, amount = c.period(timing["period"])
            if timing["anchor"]["expr"] != "entering":
                anchor = c.expr(timing["anchor"])
                if timing["anchor"]["expr"] in ("event_date", "last_payload"):
                    anchor_event = timing["anchor"]["event"]
            if kind == "every" and timing["limit"] is not None:
                limit_unit, limit_amount = c.period(timing["limit"])
        deadlines.append(
            CompiledDeadline(
                i, d["name"], d["title"], frozenset(d["states"]), kind, unit, amount, anchor,
                anchor_event, limit_unit, limit_amount, d["priority"] or 0, c.block(d["body"]),
                d["cite"], d["span"],
            )
        )
    ordered = {
        key: tuple(sorted(ts, key=lambda t: (t.priority, t.index)))
        for key, ts in transitions.items()
    }
    return Program(
        contract_id=contract["id"],
        name=contract["name"],
        initial_state=contract["initial_state"],
        states=states,
        terminal=terminal,
        types=types,
        term_types=tuple((t["name"], t["type"]) for t in contract["terms"]),
        var_inits=tuple((v["name"], c.expr(v["init"])) for v in contract["vars"]),
        events={e["name"]: e for e in contract["events"]},
        event_fields={e["name"]: tuple((f["name"], f["type"]) for f in e["fields"])
                      for e in contract["events"]},
        transitions=ordered,
        deadlines=tuple(deadlines),
        deadline_by_name={d.name: d for d in deadlines},
        approval_sites=dict(c.sites),
        remembered_events=frozenset(c.remembered),
        ir=contract,
        var_names=tuple(v["name"] for v in contract["vars"]),
        payload_parsers={e["name"]: _payload_parser(e["fields"], types)
                         for e in contract["events"]},
        anchor_events=frozenset(d.anchor_event for d in deadlines if d.anchor_event),
        reads_deadline_days=c.reads_deadline_days,
        rules_by_event=_by_event(ordered),
    )


def _by_event(transitions: Mapping[tuple[str, str], tuple[CompiledTransition, ...]]
              ) -> dict[str, dict[str, tuple[CompiledTransition, ...]]]:
    """``Program.rules_by_event``: the same transitions, grouped by event."""
    grouped: dict[str, dict[str, tuple[CompiledTransition, ...]]] = {}
    for (event, state), rules in transitions.items():
        grouped.setdefault(event, {})[state] = rules
    return grouped


def _payload_parser(fields: list[IR], types: TypeTable) -> Callable[[object], Any]:
    """The generated ``parse(raw)`` of an event's payload (see ``Program.payload_parsers``).

    Each field is converted by :func:`engine.values.from_json`, or first by a
    shortcut for text (``_FROM_TEXT``) that gives the same value.  Any exception
    gives None: the caller's general check then reports the problem, in its order
    (unknown fields, missing fields, then the first bad value).
    """
    src = _Source()
    lines = ["def parse(raw):",
             f"    if raw.__class__ is not dict or len(raw) != {len(fields)}:",
             "        return None",
             "    try:"]
    out = []
    for i, f in enumerate(fields):
        name, type_name = src.bind(f["name"]), f["type"]
        convert = src.bind(functools.partial(from_json, type_name=type_name, types=types,
                                             path=f["name"]))
        from_text = _FROM_TEXT.get(type_name)
        lines.append(f"        v = raw[{name}]")
        if from_text is None:
            lines.append(f"        x{i} = {convert}(v)")
        else:
            lines += [f"        x{i} = {src.bind(from_text)}(v) if v.__class__ is str else None",
                      f"        if x{i} is None:",
                      f"            x{i} = {convert}(v)"]
        out.append(f"{name}: x{i}")
    if not fields:
        lines.append("        pass")
    lines += ["    except Exception:",
              "        return None",
              f"    return {{{', '.join(out)}}}"]
    return compile_function("\n".join(lines) + "\n", "parse", src.env)


@functools.lru_cache(maxsize=4096)
def _iso_date(text: str) -> dt.date | None:
    """The date of ``YYYY-MM-DD`` text, or None (the caller reports why)."""
    if not _DATE_RE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


#: shortcuts for JSON text (see ``Program.payload_parsers``): the value
#: :func:`engine.values.from_json` gives for a str, or None / ValueError
_FROM_TEXT: dict[str, Callable[[str], Value]] = {"Money": Money.parse, "Date": _iso_date}


def _builtin_enums() -> dict[str, tuple[str, ...]]:
    from contracts_lib.actions import BUILTIN_ENUMS

    return {n: tuple(v for v, _ in e.variants) for n, e in BUILTIN_ENUMS.items()}
