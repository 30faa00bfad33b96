"""What ``jrule test`` tests: a contract's program with its scenarios and properties.

A rules file ``NAME.jrule`` is loaded with ``NAME.test.jrule`` beside it (if
any); the scenarios and properties of ``tests for`` blocks in either file are
gathered per contract.  Expressions of expectations and properties
are lowered with the compiler's own lowering and compiled with the engine's
own expression compiler, so a property means exactly what the same words mean
in a rule.  In them a state's name is true while the instance is in that state
and an action's name counts the times it was triggered (``Observation.extra``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts_lib.actions import find_action
from contracts_lib.calendar import Calendar
from engine.core import legal_date
from engine.program import Frame, Program, _Compiler, compile_contract
from engine.values import Value
from rules_dsl import ast
from rules_dsl.check_types import ExprEnv, infer
from rules_dsl.compiler import CheckResult, check_bytes, check_path, rules_file_of, tests_file_of
from rules_dsl.diagnostics import Diagnostic, has_errors, render_all
from rules_dsl.scope import ContractScope
from rules_dsl.to_ir import RuleSetIR, _Lower, from_checked

__all__ = ["Condition", "LoadError", "TestTarget", "load_targets", "targets_from_bytes"]

IR = Any
STATE_PREFIX = "@in:"
COUNT_PREFIX = "@count:"


class LoadError(Exception):
    """The rules or their tests do not check: ``report`` is the rendered diagnostics."""

    def __init__(self, report: str, diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        self.report = report
        self.diagnostics = diagnostics
        super().__init__(report)


class _TestLower(_Lower):
    """The compiler's lowering, with state names and action counts as variables."""

    def expr(self, e: ast.Expr, event: ast.EventDecl | None = None, timing: bool = False) -> IR:
        if isinstance(e, ast.NameRef) and e.name not in self.scope.vars \
                and e.name not in self.scope.terms:
            if e.name in self.scope.states:
                return {"expr": "var", "name": STATE_PREFIX + e.name, "type": "Bool",
                        "span": self.span(e.span)}
            if e.name not in self.scope.declared_at and find_action(e.name) is not None:
                return {"expr": "var", "name": COUNT_PREFIX + e.name, "type": "Int",
                        "span": self.span(e.span)}
        return super().expr(e, event, timing)

    def type_of(self, expr: ast.Expr, event: ast.EventDecl | None, timing: bool) -> str:
        env = ExprEnv(self.scope, [], event=event, in_timing=timing, testing=True)
        return infer(expr, env).to_ir()


@dataclass(frozen=True)
class Condition:
    """A compiled expectation or property condition, with the text it was written as."""

    text: str
    span: ast.Span
    evaluate: Callable[[Frame], Value]


@dataclass
class TestTarget:
    """One contract: its program, scope, and the tests written for it."""

    name: str
    program: Program
    contract_ir: IR
    scope: ContractScope
    scenarios: list[ast.Scenario] = field(default_factory=list)
    properties: list[ast.Property] = field(default_factory=list)
    sources: Mapping[str, str] = field(default_factory=dict)
    _compiler: _Compiler | None = None

    def condition(self, expr: ast.Expr) -> Condition:
        from rules_dsl.fmt import _expr  # the canonical text of an expression

        if self._compiler is None:
            self._compiler = _Compiler(self.contract_ir)
        lowered = _TestLower(self.scope).expr(expr)
        return Condition(_expr(expr), expr.span, self._compiler.expr(lowered))

    def frame(self, terms: tuple[tuple[str, Value], ...], vars_: Mapping[str, Value],
              at: dt.datetime, calendar: Calendar) -> Frame:
        return Frame(dict(terms), dict(vars_), legal_date(at, calendar), at, calendar)


def _gather(result: CheckResult, extra: tuple[ast.TestSuite, ...]) -> dict[str, TestTarget]:
    checked = result.checked
    assert checked is not None
    ir = from_checked(checked)
    contracts = {c["name"]: c for c in ir.to_data()["contracts"]}
    targets: dict[str, TestTarget] = {}
    for scope in checked.contracts:
        name = scope.contract.name.name
        t = TestTarget(name, compile_contract(contracts[name]), contracts[name], scope,
                       sources=dict(checked.sources))
        targets[name] = t
    suites = [i for i in checked.source.items if isinstance(i, ast.TestSuite)] + list(extra)
    for suite in suites:
        target = targets.get(suite.contract.name)
        if target is None:
            continue
        for member in suite.members:
            if isinstance(member, ast.Scenario):
                target.scenarios.append(member)
            else:
                target.properties.append(member)
    return targets


def targets_from_bytes(rules: bytes, rules_name: str, tests: bytes | None = None,
                       tests_name: str | None = None) -> tuple[dict[str, TestTarget], RuleSetIR]:
    """Check a rule set (and its tests file); raise :class:`LoadError` on any error."""
    result = check_bytes(rules, rules_name)
    if not result.ok or result.checked is None:
        raise LoadError(render_all(result.diagnostics, result.sources), result.diagnostics)
    extra: tuple[ast.TestSuite, ...] = ()
    sources = dict(result.sources)
    if tests is not None:
        tname = tests_name or rules_name.removesuffix(".jrule") + ".test.jrule"
        tres = check_bytes(tests, tname, result.checked.contracts)
        sources.update(tres.sources)
        if tres.checked is None or has_errors(tres.diagnostics):
            raise LoadError(render_all(tres.diagnostics, sources), tres.diagnostics)
        extra = tuple(i for i in tres.checked.source.items if isinstance(i, ast.TestSuite))
    targets = _gather(result, extra)
    for t in targets.values():
        t.sources = sources
    return targets, from_checked(result.checked)


def load_targets(path: str | Path) -> tuple[dict[str, TestTarget], RuleSetIR, list[str]]:
    """Load ``NAME.jrule`` (or ``NAME.test.jrule``) with its tests; returns the targets,
    the rule set's IR and the files read."""
    p = Path(path)
    rules = rules_file_of(p) or p
    tests = tests_file_of(rules) if rules_file_of(p) is None else p
    check = check_path(rules)  # reads the file (and reports unreadable files like check)
    if check.checked is None or not check.ok:
        raise LoadError(render_all(check.diagnostics, check.sources), check.diagnostics)
    files = [str(rules)]
    tests_bytes = None
    if tests is not None and tests.is_file():
        tests_bytes = tests.read_bytes()
        files.append(str(tests))
    targets, ir = targets_from_bytes(rules.read_bytes(), rules.name, tests_bytes,
                                     tests.name if tests is not None else None)
    return targets, ir, files
