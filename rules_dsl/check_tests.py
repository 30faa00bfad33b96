"""Checking scenario tests and properties against their contract.

A scenario or property is checked like any other rule: names must exist,
values must have the declared types, conditions must be true/false.  In their
expressions two kinds of names mean more than in rules (``ExprEnv.testing``):
a state's name is true while the instance is in that state, and an action's
name counts how many times the instance has triggered it.

Tests and properties are never lowered to the IR: adding a test does not
change a contract's id.  The test runner (``engine/testing``) turns the
checked AST into runnable form itself; :func:`value_json` is the one place
that turns a written test value into the JSON the engine accepts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from contracts_lib.actions import ACTIONS, find_action
from rules_dsl import ast
from rules_dsl.check_types import (
    ExprEnv,
    check_period,
    did_you_mean,
    expect,
    parse_type_name,
    resolve_type,
)
from rules_dsl.diagnostics import Diagnostic, Label
from rules_dsl.scope import ContractScope
from rules_dsl.types import BOOL, ROLE, Type

__all__ = ["check_test_members", "check_tests", "value_json"]

JSON = object


def _env(scope: ContractScope, sink: list[Diagnostic]) -> ExprEnv:
    return ExprEnv(scope, sink, testing=True)


def value_json(value: ast.TestValue, want: Type, scope: ContractScope,
               sink: list[Diagnostic], what: str) -> JSON:
    """The JSON form of a written test value of type ``want`` (errors into ``sink``)."""

    def bad(expected: str) -> None:
        sink.append(Diagnostic("E502", f"{what} must be {expected}", value.span,
                               hint=_value_hint(want)))

    if want.kind == "error":
        return None
    if want.kind == "list":
        if not isinstance(value, ast.ValueList):
            bad(f"a list ({want}) written [a, b, ...]")
            return None
        return [value_json(item, want.element, scope, sink, f"an item of {what}")
                for item in value.items]
    if want.kind == "record":
        rec = scope.records[want.name]
        if not isinstance(value, ast.ValueRecord):
            bad(f"a record {want.name} written {{field: value, ...}}")
            return None
        declared = {f.name.name: f for f in rec.fields}
        out: dict[str, JSON] = {}
        for f in value.fields:
            decl = declared.get(f.name.name)
            if decl is None:
                sink.append(Diagnostic(
                    "E211", f"record `{want.name}` has no field `{f.name.name}`", f.name.span,
                    hint=did_you_mean(f.name.name, declared) or "fields: " + ", ".join(declared)))
                continue
            if f.name.name in out:
                sink.append(Diagnostic("E102", f"field `{f.name.name}` is given twice",
                                       f.name.span))
                continue
            out[f.name.name] = value_json(f.value, resolve_type(decl.type, scope, []), scope,
                                          sink, f"field `{f.name.name}`")
        missing = [n for n in declared if n not in out]
        if missing:
            sink.append(Diagnostic("E502", f"{what} lacks field(s): {', '.join(missing)}",
                                   value.span))
        return {n: out[n] for n in declared if n in out}
    if want.kind == "enum":
        info = scope.enums[want.name]
        if not isinstance(value, ast.EnumValue) or value.enum.name != want.name:
            bad(f"a value of enum {want.name}, such as {want.name}.{info.variants[0]}")
            return None
        if value.variant.name not in info.variants:
            sink.append(Diagnostic(
                "E211", f"enum `{want.name}` has no value `{value.variant.name}`",
                value.variant.span, hint="values: " + ", ".join(info.variants)))
            return None
        return value.variant.name
    if want == ROLE:
        if not isinstance(value, ast.NameRef):
            bad("a role")
            return None
        if value.name not in scope.roles:
            sink.append(Diagnostic("E108", f"unknown role `{value.name}`", value.span,
                                   hint=did_you_mean(value.name, scope.roles)))
            return None
        return value.name
    simple: dict[str, tuple[type, ...]] = {
        "Money": (ast.MoneyLit,), "Decimal": (ast.DecimalLit, ast.IntLit), "Int": (ast.IntLit,),
        "Bool": (ast.BoolLit,), "Text": (ast.StringLit,), "Date": (ast.DateLit,),
        "DateTime": (ast.DateTimeLit,),
    }
    kinds = simple.get(want.name, ())
    if not isinstance(value, kinds):
        bad(f"{want}")
        return None
    match value:
        case ast.MoneyLit(text=t) | ast.DecimalLit(text=t):
            return t
        case ast.IntLit(value=v):
            return str(v) if want.name == "Decimal" else v
        case ast.BoolLit(value=v):
            return v
        case ast.StringLit(value=v):
            return v
        case ast.DateLit(iso=t):
            return t
        case ast.DateTimeLit(iso=t):
            if dt.datetime.fromisoformat(t.replace("Z", "+00:00")).tzinfo is None:
                sink.append(Diagnostic("E502", f"{what}: {t} has no time zone offset",
                                       value.span, hint="write +08:00 or Z at the end"))
            return t
    return None  # pragma: no cover - every simple kind is matched above


def _value_hint(want: Type) -> str | None:
    examples = {"Money": "¥3000.00", "Date": "2025-09-30", "Int": "3", "Decimal": "0.5",
                "Bool": "true", "Text": '"text"', "DateTime": "2025-09-30T09:00:00+08:00"}
    if want.name in examples:
        return f"for example {examples[want.name]}"
    return None


def _fields(given: Iterable[ast.ValueField], declared: tuple[ast.FieldDecl, ...],
            scope: ContractScope, sink: list[Diagnostic], owner: str, span: ast.Span) -> None:
    by_name = {f.name.name: f for f in declared}
    seen: dict[str, ast.Span] = {}
    for f in given:
        if f.name.name in seen:
            sink.append(Diagnostic("E102", f"`{f.name.name}` is given twice", f.name.span,
                                   labels=(Label(seen[f.name.name], "first here"),)))
            continue
        seen[f.name.name] = f.name.span
        decl = by_name.get(f.name.name)
        if decl is None:
            sink.append(Diagnostic(
                "E211", f"{owner} has no field `{f.name.name}`", f.name.span,
                hint=did_you_mean(f.name.name, by_name) or
                ("fields: " + ", ".join(by_name) if by_name else "it has no fields")))
            continue
        value_json(f.value, resolve_type(decl.type, scope, []), scope, sink,
                   f"`{f.name.name}`")
    missing = [n for n in by_name if n not in seen]
    if missing:
        sink.append(Diagnostic("E502", f"{owner} needs: {', '.join(missing)}", span,
                               hint="write " + ", ".join(f"{m}: ..." for m in missing)))


def _terms(step: ast.TermsGiven, scope: ContractScope, sink: list[Diagnostic]) -> None:
    declared = tuple(ast.FieldDecl(t.name, t.type, t.title, t.span)
                     for t in scope.terms.values())
    _fields(step.fields, declared, scope, sink, "the contract's terms", step.span)


def _action(ident: ast.Ident, sink: list[Diagnostic]) -> bool:
    if find_action(ident.name) is None:
        sink.append(Diagnostic("E105", f"unknown action `{ident.name}`", ident.span,
                               hint=did_you_mean(ident.name, ACTIONS)
                               or "see the action catalogue in docs/"))
        return False
    return True


def _check_scenario(sc: ast.Scenario, scope: ContractScope, sink: list[Diagnostic]) -> None:
    terms = [s for s in sc.steps if isinstance(s, ast.TermsGiven)]
    if not terms:
        sink.append(Diagnostic("E501", f"scenario \"{sc.name}\" gives no terms", sc.span,
                               hint="add `terms { NAME: value ... }` first"))
    for extra in terms[1:]:
        sink.append(Diagnostic("E501", "the terms are given twice", extra.span,
                               labels=(Label(terms[0].span, "first here"),)))
    started = False
    for step in sc.steps:
        match step:
            case ast.TermsGiven():
                _terms(step, scope, sink)
            case ast.StartAt():
                if started:
                    sink.append(Diagnostic(
                        "E501", "`start at` must come before the timeline's first line",
                        step.span))
            case ast.EventAt(event=event, role=role, payload=payload):
                started = True
                decl = scope.events.get(event.name)
                if decl is None:
                    sink.append(Diagnostic("E107", f"unknown event `{event.name}`", event.span,
                                           hint=did_you_mean(event.name, scope.events)))
                    continue
                if role.name not in scope.roles:
                    sink.append(Diagnostic("E108", f"unknown role `{role.name}`", role.span,
                                           hint=did_you_mean(role.name, scope.roles)))
                elif decl.by and role.name not in {r.name for r in decl.by}:
                    sink.append(Diagnostic(
                        "E504", f"`{role.name}` may not submit `{event.name}`", role.span,
                        hint="submitted by: " + ", ".join(r.name for r in decl.by)))
                _fields(payload, decl.fields, scope, sink, f"event `{event.name}`", step.span)
            case ast.DecisionAt(action=action, role=role):
                started = True
                if action is not None:
                    _action(action, sink)
                if role.name not in scope.roles:
                    sink.append(Diagnostic("E108", f"unknown role `{role.name}`", role.span,
                                           hint=did_you_mean(role.name, scope.roles)))
            case ast.AdvanceTo():
                started = True
            case ast.ExpectState(state=state):
                if state.name not in scope.states:
                    sink.append(Diagnostic("E106", f"unknown state `{state.name}`", state.span,
                                           hint=did_you_mean(state.name, scope.states)))
            case ast.ExpectAction(action=action, args=args):
                if _action(action, sink) and args is not None:
                    spec = ACTIONS[action.name]
                    for arg in args:
                        param = spec.param(arg.name.name)
                        if param is None:
                            sink.append(Diagnostic(
                                "E206", f"`{spec.name}` has no argument `{arg.name.name}`",
                                arg.name.span,
                                hint="its arguments: " + ", ".join(p.name for p in spec.params)))
                            continue
                        value_json(arg.value, parse_type_name(param.type, scope), scope, sink,
                                   f"argument `{arg.name.name}`")
            case ast.ExpectTrue(condition=cond):
                expect(cond, BOOL, _env(scope, sink), "an expectation")
            case _:
                pass


def _check_property(prop: ast.Property, scope: ContractScope, sink: list[Diagnostic]) -> None:
    env = _env(scope, sink)
    form = prop.form
    match form:
        case ast.PropAlways(condition=cond):
            expect(cond, BOOL, env, "a property's condition")
        case ast.PropNeverAction(after=after, actions=actions):
            if after is not None:
                expect(after, BOOL, env, "the condition after `after`")
            for a in actions:
                _action(a, sink)
        case ast.PropAfterNever(after=after, condition=cond):
            expect(after, BOOL, env, "the condition after `after`")
            expect(cond, BOOL, env, "the condition after `never`")
        case ast.PropWithin(after=after, goal=goal, within=within):
            expect(after, BOOL, env, "the condition after `after`")
            expect(goal, BOOL, env, "the condition after `eventually`")
            check_period(within, env)
            if not isinstance(within.amount, ast.IntLit):
                for_terms = within.amount
                if not (isinstance(for_terms, ast.NameRef) and for_terms.name in scope.terms):
                    sink.append(Diagnostic("E505", "the period of `within` is a number or a term",
                                           within.span))
        case ast.PropUnapproved(actions=actions):
            for a in actions:
                if _action(a, sink) and not ACTIONS[a.name].needs_approval:
                    sink.append(Diagnostic(
                        "E505", f"`{a.name}` does not need approval, so it always takes "
                        "effect unapproved", a.span,
                        hint="name actions that need approval: " + ", ".join(
                            n for n, s in ACTIONS.items() if s.needs_approval)))
        case ast.PropTerminates():
            if not any(s.terminal for s in scope.states.values()):
                sink.append(Diagnostic("E505", "the contract has no terminal state to reach",
                                       form.span))


def check_test_members(members: Iterable[ast.Scenario | ast.Property], scope: ContractScope,
                       sink: list[Diagnostic]) -> None:
    """Check scenarios and properties against one contract; errors into ``sink``."""
    names: dict[tuple[str, str], ast.Span] = {}
    for member in members:
        kind = "scenario" if isinstance(member, ast.Scenario) else "property"
        key = (kind, member.name)
        if key in names:
            sink.append(Diagnostic("E102", f"two {kind}s are called \"{member.name}\"",
                                   member.span, labels=(Label(names[key], "first here"),)))
        names.setdefault(key, member.span)
        if isinstance(member, ast.Scenario):
            _check_scenario(member, scope, sink)
        else:
            _check_property(member, scope, sink)


def check_tests(suites: Iterable[ast.TestSuite], contracts: Iterable[ContractScope],
                sink: list[Diagnostic]) -> None:
    """Check ``tests for NAME`` blocks against the contracts they name."""
    by_name = {c.contract.name.name: c for c in contracts}
    for suite in suites:
        scope = by_name.get(suite.contract.name)
        if scope is None:
            sink.append(Diagnostic(
                "E503", f"no contract `{suite.contract.name}` to test", suite.contract.span,
                hint=did_you_mean(suite.contract.name, by_name)
                or "tests in NAME.test.jrule are checked against the contracts of NAME.jrule"))
            continue
        check_test_members(suite.members, scope, sink)
