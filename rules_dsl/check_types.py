"""Names and types: every expression, statement and action call of a contract.

:func:`infer` is pure apart from appending diagnostics to the sink it is
given, so the IR lowering reuses it (with a throw-away sink) to annotate
expressions with their types.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from contracts_lib.actions import ActionSpec, find_action
from rules_dsl import ast
from rules_dsl.diagnostics import Diagnostic
from rules_dsl.scope import BUILTIN_FUNCTIONS, ROUNDING_MODES, ContractScope
from rules_dsl.types import (
    AMOUNT,
    ANY,
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    ERROR,
    INT,
    MONEY,
    PRIMITIVES,
    ROLE,
    TEXT,
    Type,
    assignable,
    comparable,
    list_of,
    ordered,
)

__all__ = ["ExprEnv", "check_block", "did_you_mean", "infer", "parse_type_name", "resolve_type"]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


@dataclass
class ExprEnv:
    """Where an expression is: which event's payload is visible, and so on."""

    scope: ContractScope
    sink: list[Diagnostic]
    event: ast.EventDecl | None = None
    in_timing: bool = False
    used: set[str] = field(default_factory=set)
    #: in scenario expectations and properties: a state's name is true while the
    #: instance is in it, an action's name counts the times it was triggered
    testing: bool = False

    def error(self, code: str, message: str, span: ast.Span, hint: str | None = None) -> Type:
        self.sink.append(Diagnostic(code, message, span, hint=hint))
        return ERROR


def resolve_type(ref: ast.TypeRef, scope: ContractScope, sink: list[Diagnostic]) -> Type:
    name = ref.name.name
    if name == "List":
        if len(ref.args) != 1:
            sink.append(Diagnostic("E104", "write a list type as List[Type]", ref.span))
            return ERROR
        return list_of(resolve_type(ref.args[0], scope, sink))
    if ref.args:
        sink.append(Diagnostic("E104", f"`{name}` takes no type argument", ref.span))
        return ERROR
    if name in PRIMITIVES:
        return PRIMITIVES[name]
    if name in scope.enums:
        return Type("enum", name)
    if name in scope.records:
        return Type("record", name)
    known = [*PRIMITIVES, "List", *scope.enums, *scope.records]
    sink.append(
        Diagnostic("E104", f"unknown type `{name}`", ref.name.span, hint=did_you_mean(name, known))
    )
    return ERROR


def parse_type_name(text: str, scope: ContractScope) -> Type:
    """A type written in the action catalogue (``Money``, ``PropertyKind``)."""
    if text in PRIMITIVES:
        return PRIMITIVES[text]
    if text.startswith("List[") and text.endswith("]"):
        return list_of(parse_type_name(text[5:-1], scope))
    if text in scope.enums:
        return Type("enum", text)
    return ERROR


def _field_type(
    fields: tuple[ast.FieldDecl, ...], name: ast.Ident, owner: str, env: ExprEnv
) -> Type:
    for f in fields:
        if f.name.name == name.name:
            return resolve_type(f.type, env.scope, [])
    return env.error(
        "E211",
        f"{owner} has no field `{name.name}`",
        name.span,
        hint=did_you_mean(name.name, [f.name.name for f in fields])
        or "fields: " + ", ".join(f.name.name for f in fields),
    )


def _infer_name(expr: ast.NameRef, env: ExprEnv) -> Type:
    name = expr.name
    scope = env.scope
    if name in scope.vars:
        env.used.add(name)
        return resolve_type(scope.vars[name].type, scope, [])
    if name in scope.terms:
        env.used.add(name)
        return resolve_type(scope.terms[name].type, scope, [])
    if name in scope.roles:
        return ROLE
    if name == "today":
        return DATE
    if name == "now":
        return DATETIME
    if env.testing and name in scope.states:
        return BOOL
    if env.testing and name not in scope.declared_at and find_action(name) is not None:
        return INT
    if name in scope.deadlines and env.in_timing:
        return DATE  # the last day of that deadline's period
    if name in scope.events:
        if env.in_timing:
            return DATE  # the date the event last occurred
        return env.error(
            "E211",
            f"`{name}` is an event; its payload is `{name}.FIELD` inside `on {name}`",
            expr.span,
        )
    kind = scope.kind_of(name)
    if kind is not None:
        return env.error("E101", f"`{name}` is a {kind}, not a value", expr.span)
    if name in scope.enums:
        return env.error("E101", f"`{name}` is an enum; write `{name}.VALUE`", expr.span)
    if name in ROUNDING_MODES:
        return env.error("E210", f"`{name}` is a rounding mode; use it in round(x, {name})",
                         expr.span)
    candidates = [*scope.vars, *scope.terms, *scope.roles, "today", "now"]
    return env.error(
        "E101", f"unknown name `{name}`", expr.span, hint=did_you_mean(name, candidates)
    )


def _infer_field(expr: ast.FieldAccess, env: ExprEnv) -> Type:
    scope = env.scope
    obj = expr.obj
    if isinstance(obj, ast.NameRef):
        if (obj.name in scope.enums and obj.name not in scope.declared_at) or (
            obj.name in scope.enums and scope.kind_of(obj.name) == "enum"
        ):
            info = scope.enums[obj.name]
            if expr.field.name in info.variants:
                return Type("enum", obj.name)
            return env.error(
                "E211",
                f"enum `{obj.name}` has no value `{expr.field.name}`",
                expr.field.span,
                hint=did_you_mean(expr.field.name, info.variants)
                or "values: " + ", ".join(info.variants),
            )
        if obj.name in scope.events:
            event = scope.events[obj.name]
            if not env.in_timing and (env.event is None or env.event.name.name != obj.name):
                return env.error(
                    "E211",
                    f"the payload of `{obj.name}` is only visible in `on {obj.name}` "
                    "transitions and in deadline timings",
                    expr.span,
                )
            return _field_type(event.fields, expr.field, f"event `{obj.name}`", env)
    base = infer(obj, env)
    if base.kind == "error":
        return ERROR
    if base.kind == "record":
        rec = scope.records[base.name]
        return _field_type(rec.fields, expr.field, f"record `{base.name}`", env)
    if base.kind == "list" and base.element.kind == "record":
        rec = scope.records[base.element.name]
        return list_of(_field_type(rec.fields, expr.field, f"record `{rec.name.name}`", env))
    return env.error("E211", f"a value of type {base} has no fields", expr.field.span)


def _expect(expr: ast.Expr, want: Type, env: ExprEnv, what: str) -> Type:
    got = infer(expr, env)
    if got.kind == "amount" and want == MONEY:
        env.error(
            "E207",
            f"{what} is an unrounded amount of money",
            expr.span,
            hint="say how fen are rounded: round(..., half_up)",
        )
        return ERROR
    if not assignable(want, got):
        code = "E203" if want == BOOL else "E201"
        env.error(code, f"{what} must be {want}, not {got}", expr.span, _literal_hint(want, got))
        return ERROR
    return got


def _literal_hint(want: Type, got: Type) -> str | None:
    if want == MONEY and got in (INT, DECIMAL):
        return "write amounts of money with ¥, for example ¥0.00"
    if want == BOOL:
        return "a condition is true or false, for example `paid >= amount`"
    return None


def _infer_call(expr: ast.FuncCall, env: ExprEnv) -> Type:
    name = expr.func.name
    args = expr.args
    if name not in BUILTIN_FUNCTIONS:
        hint = did_you_mean(name, BUILTIN_FUNCTIONS)
        if find_action(name) is not None:
            hint = f"`{name}` is an action: trigger it with `do {name}(...)`"
        return env.error("E210", f"unknown function `{name}`", expr.func.span, hint=hint)

    def arity(n: int) -> bool:
        if len(args) != n:
            env.error("E210", f"{name}() takes {n} argument(s), not {len(args)}", expr.span)
            return False
        return True

    if name in ("min", "max"):
        if not arity(2):
            return ERROR
        a, b = infer(args[0], env), infer(args[1], env)
        if not (ordered(a) and comparable(a, b)):
            return env.error("E201", f"{name}() needs two values of one ordered type, "
                             f"not {a} and {b}", expr.span)
        return DECIMAL if {a, b} == {INT, DECIMAL} else a
    if name == "count":
        if not arity(1):
            return ERROR
        t = infer(args[0], env)
        if t.kind not in ("list", "error"):
            return env.error("E201", f"count() needs a list, not {t}", args[0].span)
        return INT
    if name == "sum":
        if not arity(1):
            return ERROR
        t = infer(args[0], env)
        if t.kind == "error":
            return ERROR
        if t.kind != "list" or t.element not in (MONEY, INT, DECIMAL):
            return env.error("E201", f"sum() needs a list of Money, Int or Decimal, not {t}",
                             args[0].span)
        return t.element
    if name in ("first", "last"):
        if not arity(1):
            return ERROR
        t = infer(args[0], env)
        if t.kind == "error":
            return ERROR
        if t.kind != "list":
            return env.error("E201", f"{name}() needs a list, not {t}", args[0].span)
        return t.element
    if name == "round":
        if not arity(2):
            return ERROR
        t = infer(args[0], env)
        mode = args[1]
        if not (isinstance(mode, ast.NameRef) and mode.name in ROUNDING_MODES):
            env.error("E212", "the second argument of round() is a rounding mode",
                      mode.span, hint="one of: " + ", ".join(ROUNDING_MODES))
        if t.kind == "error":
            return ERROR
        if t not in (AMOUNT, MONEY):
            return env.error("E201", f"round() rounds an amount of money to fen, not {t}",
                             args[0].span)
        return MONEY
    if name == "delay_interest":
        if not arity(3):
            return ERROR
        _expect(args[0], MONEY, env, "the unpaid sum")
        _expect(args[1], DATE, env, "the first day of delay")
        _expect(args[2], DATE, env, "the last day of delay")
        return MONEY
    if name == "days_between":
        if not arity(2):
            return ERROR
        _expect(args[0], DATE, env, "the first date")
        _expect(args[1], DATE, env, "the second date")
        return INT
    if name == "text":
        if not arity(1):
            return ERROR
        t = infer(args[0], env)
        if t.kind == "amount":
            return env.error("E207", "round the amount before turning it into text",
                             args[0].span)
        return TEXT
    if name == "date":
        if not arity(1):
            return ERROR
        _expect(args[0], DATETIME, env, "the argument of date()")
        return DATE
    raise AssertionError(name)  # pragma: no cover


_ARITH: dict[tuple[str, Type, Type], Type] = {}
for _op in "+-":
    for _t in (MONEY, INT, DECIMAL, AMOUNT):
        _ARITH[(_op, _t, _t)] = _t
    _ARITH[(_op, INT, DECIMAL)] = DECIMAL
    _ARITH[(_op, DECIMAL, INT)] = DECIMAL
    _ARITH[(_op, AMOUNT, MONEY)] = AMOUNT
    _ARITH[(_op, MONEY, AMOUNT)] = AMOUNT
_ARITH[("+", TEXT, TEXT)] = TEXT
_ARITH.update(
    {
        ("*", INT, INT): INT,
        ("*", DECIMAL, DECIMAL): DECIMAL,
        ("*", INT, DECIMAL): DECIMAL,
        ("*", DECIMAL, INT): DECIMAL,
        ("*", MONEY, INT): MONEY,
        ("*", INT, MONEY): MONEY,
        ("*", MONEY, DECIMAL): AMOUNT,
        ("*", DECIMAL, MONEY): AMOUNT,
        ("*", AMOUNT, INT): AMOUNT,
        ("*", AMOUNT, DECIMAL): AMOUNT,
        ("/", DECIMAL, DECIMAL): DECIMAL,
        ("/", DECIMAL, INT): DECIMAL,
        ("/", INT, DECIMAL): DECIMAL,
        ("/", MONEY, INT): AMOUNT,
        ("/", MONEY, DECIMAL): AMOUNT,
        ("/", MONEY, MONEY): DECIMAL,
        ("/", AMOUNT, INT): AMOUNT,
        ("/", AMOUNT, DECIMAL): AMOUNT,
    }
)


def _infer_binary(expr: ast.BinaryOp, env: ExprEnv) -> Type:
    op = expr.op
    if op in ("and", "or"):
        _expect(expr.left, BOOL, env, f"each side of `{op}`")
        _expect(expr.right, BOOL, env, f"each side of `{op}`")
        return BOOL
    left, right = infer(expr.left, env), infer(expr.right, env)
    if left.kind == "error" or right.kind == "error":
        return BOOL if op in ("==", "!=", "<", "<=", ">", ">=") else ERROR
    if op in ("==", "!=", "<", "<=", ">", ">="):
        if left.kind == "amount" or right.kind == "amount":
            return env.error("E207", "an unrounded amount of money cannot be compared",
                             expr.span, hint="round it first: round(..., half_up)")
        if not comparable(left, right):
            hint = None
            if MONEY in (left, right) and (INT in (left, right) or DECIMAL in (left, right)):
                hint = "write amounts of money with ¥, for example ¥0.00"
            return env.error("E202", f"cannot compare {left} with {right}", expr.span, hint)
        if op not in ("==", "!=") and not ordered(left):
            return env.error("E202", f"values of type {left} have no order; use == or !=",
                             expr.span)
        return BOOL
    result = _ARITH.get((op, left, right))
    if result is None:
        hint = None
        if op == "/" and left == INT and right == INT:
            hint = "Int / Int could round; make one side a Decimal (e.g. 3.0)"
        elif op == "*" and left == MONEY and right == MONEY:
            hint = "multiply Money by a number, not by Money"
        elif DATE in (left, right):
            hint = "date arithmetic is done by deadlines (`15 days after ...`) or days_between()"
        return env.error("E201", f"cannot apply `{op}` to {left} and {right}", expr.span, hint)
    return result


def infer(expr: ast.Expr, env: ExprEnv) -> Type:
    """The type of an expression, reporting errors into ``env.sink``."""
    match expr:
        case ast.IntLit():
            return INT
        case ast.DecimalLit():
            return DECIMAL
        case ast.MoneyLit():
            return MONEY
        case ast.DateLit():
            return DATE
        case ast.DateTimeLit():
            return DATETIME
        case ast.StringLit():
            return TEXT
        case ast.BoolLit():
            return BOOL
        case ast.NameRef():
            return _infer_name(expr, env)
        case ast.FieldAccess():
            return _infer_field(expr, env)
        case ast.IndexAccess():
            base = infer(expr.obj, env)
            _expect(expr.index, INT, env, "a list index")
            if base.kind == "error":
                return ERROR
            if base.kind != "list":
                return env.error("E201", f"only lists can be indexed, not {base}", expr.obj.span)
            return base.element
        case ast.FuncCall():
            return _infer_call(expr, env)
        case ast.UnaryOp(op="not"):
            _expect(expr.operand, BOOL, env, "the operand of `not`")
            return BOOL
        case ast.UnaryOp():
            t = infer(expr.operand, env)
            if t in (MONEY, INT, DECIMAL, AMOUNT) or t.kind == "error":
                return t
            return env.error("E201", f"cannot negate a value of type {t}", expr.span)
        case ast.BinaryOp():
            return _infer_binary(expr, env)
        case ast.LegalDate():
            check_period(expr.period, env)
            _expect(expr.anchor, DATE, env, "the date a period counts from")
            return DATE
        case ast.ListLit():
            if not expr.items:
                return list_of(ANY)
            first = infer(expr.items[0], env)
            for item in expr.items[1:]:
                t = infer(item, env)
                if not assignable(first, t):
                    env.error("E201", f"list items must share one type: {first} and {t}",
                              item.span)
            return list_of(first)
    raise AssertionError(expr)  # pragma: no cover


# --- statements ----------------------------------------------------------------


def check_period(period: ast.Period, env: ExprEnv, *, repeating: bool = False) -> None:
    """A period's length is a whole number (literal, Int term/variable or expression)."""
    amount = period.amount
    t = infer(amount, env)
    if t.kind != "error" and t != INT:
        env.error("E208", f"a period is counted in whole units, not {t}", amount.span)
    if repeating and isinstance(amount, ast.IntLit) and amount.value == 0:
        env.error("E208", "a repeating period must be at least 1", amount.span,
                  hint="every 0 months would fire forever")


def _check_action(stmt: ast.DoStmt, env: ExprEnv) -> None:
    call = stmt.call
    spec = find_action(call.action.name)
    if spec is None:
        from contracts_lib.actions import ACTIONS

        env.error(
            "E105",
            f"unknown action `{call.action.name}`",
            call.action.span,
            hint=did_you_mean(call.action.name, ACTIONS) or "see the action catalogue in docs/",
        )
        for arg in call.args:
            infer(arg.value, env)
    else:
        _check_arguments(call, spec, env)
        if spec.needs_approval and stmt.approval is None:
            env.sink.append(
                Diagnostic(
                    "E310",
                    f"`{spec.name}` ({spec.title_zh}) must be confirmed by an officer "
                    "before it takes effect",
                    call.span,
                    hint="add `approved by ROLE within N working days` (and `on timeout { ... }`)",
                )
            )
        if not spec.needs_approval and stmt.approval is not None:
            env.sink.append(
                Diagnostic(
                    "W403",
                    f"`{spec.name}` does not need approval; the gate delays it anyway",
                    stmt.approval.span,
                    severity="warning",
                )
            )
    if stmt.approval is not None:
        approval = stmt.approval
        if approval.role.name not in env.scope.roles:
            env.error("E108", f"unknown role `{approval.role.name}`", approval.role.span,
                      hint=did_you_mean(approval.role.name, env.scope.roles))
        check_period(approval.within, env)
        seen: set[str] = set()
        for branch in approval.branches:
            if branch.outcome in seen:
                env.error("E102", f"`on {branch.outcome}` appears twice", branch.span)
            seen.add(branch.outcome)
            check_block(branch.body, env)


def _check_arguments(call: ast.ActionCall, spec: ActionSpec, env: ExprEnv) -> None:
    given: dict[str, ast.NamedArg] = {}
    for arg in call.args:
        pname = arg.name.name
        if pname in given:
            env.error("E206", f"argument `{pname}` is given twice", arg.name.span)
            continue
        given[pname] = arg
        param = spec.param(pname)
        if param is None:
            infer(arg.value, env)
            env.error(
                "E206",
                f"`{spec.name}` has no argument `{pname}`",
                arg.name.span,
                hint=did_you_mean(pname, [p.name for p in spec.params])
                or "its arguments: " + ", ".join(p.name for p in spec.params),
            )
            continue
        want = parse_type_name(param.type, env.scope)
        got = infer(arg.value, env)
        if got.kind == "amount" and want == MONEY:
            env.error("E207", f"argument `{pname}` is an unrounded amount of money",
                      arg.value.span, hint="round it: round(..., half_up)")
        elif not assignable(want, got):
            env.error(
                "E205",
                f"argument `{pname}` of `{spec.name}` must be {want} ({param.title}), not {got}",
                arg.value.span,
                hint=_literal_hint(want, got),
            )
    missing = [p.name for p in spec.params if p.required and p.name not in given]
    if missing:
        env.error(
            "E206",
            f"`{spec.name}` is missing argument(s): {', '.join(missing)}",
            call.span,
            hint="write " + ", ".join(f"{m}: ..." for m in missing),
        )


def check_block(block: ast.Block, env: ExprEnv) -> None:
    """Type-check a block of statements (names, types, actions)."""
    scope = env.scope
    for stmt in block.stmts:
        match stmt:
            case ast.SetStmt():
                name = stmt.target.name
                if name in scope.vars:
                    env.used.add(name)
                    want = resolve_type(scope.vars[name].type, scope, [])
                    _expect(stmt.value, want, env, f"the new value of `{name}`")
                elif name in scope.terms:
                    infer(stmt.value, env)
                    env.error("E209", f"`{name}` is a term, fixed when the instance is created",
                              stmt.target.span, hint="declare a `var` for values that change")
                else:
                    infer(stmt.value, env)
                    env.error("E101", f"unknown variable `{name}`", stmt.target.span,
                              hint=did_you_mean(name, scope.vars))
            case ast.DoStmt():
                _check_action(stmt, env)
            case ast.GotoStmt():
                if stmt.state.name not in scope.states:
                    env.error("E106", f"unknown state `{stmt.state.name}`", stmt.state.span,
                              hint=did_you_mean(stmt.state.name, scope.states))
            case ast.IfStmt():
                for branch in stmt.branches:
                    _expect(branch.condition, BOOL, env, "a condition")
                    check_block(branch.body, env)
                if stmt.otherwise is not None:
                    check_block(stmt.otherwise, env)
            case ast.PeriodStmt():
                if stmt.deadline.name not in scope.deadlines:
                    env.error("E109", f"unknown deadline `{stmt.deadline.name}`",
                              stmt.deadline.span,
                              hint=did_you_mean(stmt.deadline.name, scope.deadlines))


def expect(expr: ast.Expr, want: Type, env: ExprEnv, what: str) -> Type:
    """Public form of the internal expectation check."""
    return _expect(expr, want, env, what)
