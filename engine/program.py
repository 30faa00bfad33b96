"""Contract IR -> an executable program of Python closures (built once per contract).

Expressions become functions of a :class:`Frame` (the values visible while a
rule runs); statements become functions that update the frame.  Everything
the IR leaves open is decided here once, not on every event: the type-directed
choice of arithmetic, the transitions that can fire for (event, state), the
deadlines armed on entering each state.

All arithmetic is exact: Money through :class:`contracts_lib.money.Money`,
decimals through :data:`engine.values.DECIMAL_CONTEXT`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from contracts_lib.calendar import Calendar
from contracts_lib.money import Money, Rounding, delayed_performance_interest
from contracts_lib.periods import PeriodUnit, period_end, period_start_before
from engine.values import DECIMAL_CONTEXT, TypeTable, Value, to_json

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
        super().__init__(f"{message} (at {span})" if span else message)


class _Goto(Exception):
    """Raised by ``goto``: it ends the rule (statements after it never run)."""

    def __init__(self, state: str) -> None:
        self.state = state


@dataclass
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


def _text(v: Value) -> str:
    out = to_json(v)
    if isinstance(out, bool):
        return "true" if out else "false"
    return str(out)


def legal_date_of(instant: dt.datetime, calendar: Calendar) -> dt.date:
    """The legal day (court-local calendar day) an instant falls on."""
    from zoneinfo import ZoneInfo

    return instant.astimezone(ZoneInfo(calendar.timezone)).date()


class _Compiler:
    def __init__(self, contract: IR) -> None:
        self.contract = contract
        self.sites: dict[int, ApprovalSite] = {}
        self.next_site = 0  # reserved before compiling nested blocks: sites never collide
        self.remembered: set[str] = set()

    # --- expressions ---------------------------------------------------------
    def expr(self, e: IR) -> Expr:
        kind = e["expr"]
        span = e.get("span", "")
        if kind == "literal":
            if e["type"] == "DateTime":
                return _datetime_literal(e["value"])
            value = self.literal(e["type"], e["value"])
            return lambda f: value
        if kind == "term":
            name = e["name"]
            return lambda f: f.terms[name]
        if kind == "var":
            name = e["name"]
            return lambda f: f.vars[name]
        if kind == "role":
            role = e["name"]
            return lambda f: role
        if kind == "enum":
            variant = e["value"]
            return lambda f: variant
        if kind == "today":
            return lambda f: f.today
        if kind == "now":
            return lambda f: f.now
        if kind == "entering":
            return lambda f: f.entering if f.entering is not None else f.today
        if kind == "payload":
            fname = e["field"]
            return lambda f: f.payload[fname]
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

            def deadline_day(f: Frame) -> Value:
                if dname not in f.deadline_days:
                    raise RuntimeFault(f"deadline `{dname}` has never been armed", span)
                return f.deadline_days[dname]

            return deadline_day
        if kind == "field":
            of = self.expr(e["of"])
            fname = e["field"]
            if e["of"]["type"].startswith("List["):
                return lambda f: tuple(r.get(fname) for r in of(f))
            return lambda f: of(f).get(fname)
        if kind == "index":
            of, idx = self.expr(e["of"]), self.expr(e["index"])

            def index(f: Frame) -> Value:
                items, i = of(f), idx(f)
                if not 0 <= i < len(items):
                    raise RuntimeFault(f"index {i} is outside the list of {len(items)}", span)
                return items[i]

            return index
        if kind == "list":
            items = [self.expr(i) for i in e["items"]]
            return lambda f: tuple(item(f) for item in items)
        if kind == "unary":
            operand = self.expr(e["operand"])
            if e["op"] == "not":
                return lambda f: not operand(f)
            if e["type"] == "Money":
                return lambda f: -operand(f)
            if e["type"] == "Int":
                return lambda f: -operand(f)
            return lambda f: DECIMAL_CONTEXT.minus(_dec(operand(f)))
        if kind == "binary":
            return self.binary(e)
        if kind == "call":
            return self.call(e)
        if kind == "legal_date":
            return self.legal_date(e)
        raise ValueError(f"unknown IR expression kind {kind!r}")

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
        if op == "and":
            return lambda f: left(f) and right(f)
        if op == "or":
            return lambda f: left(f) or right(f)
        lt, rt = e["left"]["type"], e["right"]["type"]
        if op in ("==", "!=", "<", "<=", ">", ">="):
            cmp = _compare(op, lt, rt)
            return lambda f: cmp(left(f), right(f))
        fn = _arith(op, lt, rt, e["type"])
        span = e.get("span", "")

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
            return lambda f: len(a(f))
        if name == "sum":
            (a,) = args
            if e["type"] == "Money":
                return lambda f: Money.total(a(f))
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
    def block(self, stmts: list[IR]) -> Stmt:
        compiled = [self.stmt(s) for s in stmts]
        if not compiled:
            return lambda f: None
        if len(compiled) == 1:
            return compiled[0]

        def run(f: Frame) -> None:
            for s in compiled:
                s(f)

        return run

    def stmt(self, s: IR) -> Stmt:
        kind = s["stmt"]
        if kind == "set":
            name = s["var"]
            value = self.expr(s["value"])

            def set_(f: Frame) -> None:
                new = value(f)
                old = f.vars[name]
                f.vars[name] = new
                f.log.append(("set", name, old, new))

            return set_
        if kind == "goto":
            state = s["state"]

            def goto(f: Frame) -> None:
                f.goto = state
                raise _Goto(state)

            return goto
        if kind == "if":
            branches = [(self.expr(b["condition"]), self.block(b["body"])) for b in s["branches"]]
            otherwise = self.block(s["otherwise"]) if s["otherwise"] is not None else None

            def if_(f: Frame) -> None:
                for cond, body in branches:
                    if cond(f):
                        body(f)
                        return
                if otherwise is not None:
                    otherwise(f)

            return if_
        if kind in ("suspend", "resume", "restart"):
            deadline = s["deadline"]
            return lambda f: f.log.append((kind, deadline))
        if kind == "do":
            return self.do(s)
        raise ValueError(f"unknown IR statement {kind!r}")

    def do(self, s: IR) -> Stmt:
        site = self.next_site
        self.next_site += 1
        args = [(a["name"], self.expr(a["value"])) for a in s["args"]]
        approval = s["approval"]
        if approval is None:
            self.sites[site] = ApprovalSite(
                site, s["action"], "", PeriodUnit.DAYS, lambda f: 0,
                _noop, _noop, _noop, s.get("span", ""),
            )

            def do(f: Frame) -> None:
                f.log.append(("do", site, tuple((n, a(f)) for n, a in args)))

            return do
        unit, amount = self.period(approval["within"])
        self.sites[site] = ApprovalSite(
            site,
            s["action"],
            approval["role"],
            unit,
            amount,
            _catch_goto(self.block(approval["on_approved"])),
            _catch_goto(self.block(approval["on_rejected"])),
            _catch_goto(self.block(approval["on_timeout"])),
            s.get("span", ""),
        )

        def ask(f: Frame) -> None:
            f.log.append(("approval", site, tuple((n, a(f)) for n, a in args)))

        return ask


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


def _catch_goto(body: Stmt) -> Stmt:
    def run(f: Frame) -> None:
        try:
            body(f)
        except _Goto:
            pass

    return run


def _whole(n: Value, span: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise RuntimeFault(f"a period length must be a whole number >= 0, not {n!r}", span)
    return n


def run_rule(body: Stmt, frame: Frame) -> None:
    """Run a rule's statements; a ``goto`` ends them (recorded in ``frame.goto``)."""
    try:
        body(frame)
    except _Goto:
        pass


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
    )


def _builtin_enums() -> dict[str, tuple[str, ...]]:
    from contracts_lib.actions import BUILTIN_ENUMS

    return {n: tuple(v for v, _ in e.variants) for n, e in BUILTIN_ENUMS.items()}
