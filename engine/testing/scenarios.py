"""Running scenario tests: a written timeline with expectations along the way.

An expectation refers to the most recent timeline line: ``expect action``,
``expect no action`` and ``expect explanation`` look at what that line did
(including deadlines that fell due just before it), ``expect state`` and
``expect CONDITION`` at where the instance stands after it.  Expectations
before the first line refer to the newly created instance.  A plain date means
12:00 court time on that day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from contracts_lib.actions import ACTIONS
from contracts_lib.calendar import Calendar
from engine.program import RuntimeFault
from engine.testing.determinism import determinism_problems
from engine.testing.target import TestTarget
from engine.testing.timeline import Line, Observation, Run, Timeline, noon, run_timeline
from engine.values import to_json
from rules_dsl import ast
from rules_dsl.check_tests import value_json
from rules_dsl.check_types import parse_type_name, resolve_type

__all__ = ["Failure", "ScenarioResult", "run_scenario", "scenario_timeline"]


@dataclass(frozen=True)
class Failure:
    span: ast.Span
    message: str


@dataclass
class ScenarioResult:
    name: str
    span: ast.Span
    failures: list[Failure] = field(default_factory=list)
    run: Run | None = None
    timeline: Timeline | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def instant(when: ast.When, calendar: Calendar) -> dt.datetime:
    if when.is_date:
        return noon(dt.date.fromisoformat(when.iso), calendar)
    value = dt.datetime.fromisoformat(when.iso.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(calendar.timezone))
    return value.astimezone(dt.UTC)


def scenario_timeline(sc: ast.Scenario, target: TestTarget, calendar: Calendar) -> Timeline:
    scope = target.scope
    terms: dict[str, Any] = {}
    start: dt.datetime | None = None
    lines: list[Line] = []
    for s in sc.steps:
        match s:
            case ast.TermsGiven(fields=fields):
                for f in fields:
                    decl = scope.terms[f.name.name]
                    terms[f.name.name] = value_json(f.value, resolve_type(decl.type, scope, []),
                                                    scope, [], f.name.name)
            case ast.StartAt(when=when):
                start = instant(when, calendar)
            case ast.EventAt(when=when, event=event, role=role, payload=payload):
                decl_fields = {fd.name.name: fd for fd in scope.events[event.name].fields}
                body = {f.name.name: value_json(
                    f.value, resolve_type(decl_fields[f.name.name].type, scope, []), scope, [],
                    f.name.name) for f in payload}
                lines.append(Line("event", instant(when, calendar), event.name, role.name, body))
            case ast.DecisionAt(when=when, approve=approve, action=action, role=role):
                lines.append(Line("decide", instant(when, calendar), role=role.name,
                                  approve=approve,
                                  action=action.name if action is not None else None))
            case ast.AdvanceTo(when=when):
                lines.append(Line("advance", instant(when, calendar)))
            case _:
                pass
    if start is None:
        start = lines[0].at if lines else noon(dt.date(calendar.first_year, 1, 2), calendar)
    return Timeline(terms, start, tuple(lines))


def _group(run: Run, group: int) -> list[Observation]:
    return [o for o in run.observations if o.group == group]


def run_scenario(sc: ast.Scenario, target: TestTarget, calendar: Calendar) -> ScenarioResult:
    """Play a scenario and check each of its expectations."""
    result = ScenarioResult(sc.name, sc.span)
    timeline = scenario_timeline(sc, target, calendar)
    result.timeline = timeline
    run = run_timeline(target.program, calendar, timeline)
    result.run = run
    if run.refused_create is not None:
        result.failures.append(Failure(sc.span, f"the terms were refused: {run.refused_create}"))
        return result
    if run.fault is not None:
        result.failures.append(Failure(sc.span, f"a deadline could not be evaluated (the "
                                       f"service would open an incident): {run.fault}"))
    line = -1
    for s in sc.steps:
        if isinstance(s, ast.EventAt | ast.DecisionAt | ast.AdvanceTo):
            line += 1
            continue
        group = _group(run, line)
        current = [o for o in run.observations if o.group <= line]
        if not current:
            break  # a fault stopped the run before this point (reported above)
        last = current[-1]
        problem = _expectation(s, group, last, target, calendar)
        if problem is not None:
            result.failures.append(Failure(s.span, problem))
    for problem in determinism_problems(target.program, calendar, timeline, run):
        result.failures.append(Failure(sc.span, problem))
    return result


def _said(group: list[Observation]) -> str:
    actions = [f"{e.action}({', '.join(f'{k}: {v}' for k, v in e.args_json().items())})"
               for o in group for e in o.actions()]
    return ", ".join(actions) if actions else "no action"


def _expectation(s: ast.ScenarioStep, group: list[Observation], last: Observation,
                 target: TestTarget, calendar: Calendar) -> str | None:
    match s:
        case ast.ExpectState(state=state):
            if last.state.state != state.name:
                return f"expected state {state.name}, but the instance is in {last.state.state}"
        case ast.ExpectAction(action=action, args=args):
            spec = ACTIONS[action.name]
            want: dict[str, Any] = {}
            for a in args or ():
                param = spec.param(a.name.name)
                assert param is not None
                want[a.name.name] = value_json(a.value, parse_type_name(param.type, target.scope),
                                               target.scope, [], a.name.name)
            for o in group:
                for e in o.actions():
                    got = e.args_json()
                    if e.action == action.name and all(got.get(k) == v for k, v in want.items()):
                        return None
            shown = f"{action.name}({', '.join(f'{k}: {v}' for k, v in want.items())})"
            return f"expected action {shown}; this line triggered: {_said(group)}"
        case ast.ExpectNoAction():
            if any(o.actions() for o in group):
                return f"expected no action; this line triggered: {_said(group)}"
        case ast.ExpectExplanation(text=text):
            for o in group:
                for x in o.explanations:
                    if text in x.text("zh") or text in x.text("en"):
                        return None
            return f"no explanation of this line mentions {text!r}"
        case ast.ExpectRefused():
            if not group or group[-1].refused is None:
                return "expected the line to be refused, but it was accepted"
        case ast.ExpectTrue(condition=cond):
            compiled = target.condition(cond)
            frame = target.frame(last.state.terms, {**dict(last.state.vars),
                                                    **last.extra(target.program)},
                                 last.at, calendar)
            try:
                value = compiled.evaluate(frame)
            except (RuntimeFault, ArithmeticError, IndexError, KeyError) as exc:
                return f"`{compiled.text}` cannot be evaluated: {exc}"
            if value is not True:
                names = sorted({n.name for n in _names(cond)
                                if n.name in dict(last.state.vars)})
                now = ", ".join(f"{n} = {to_json(dict(last.state.vars)[n])}" for n in names)
                return f"`{compiled.text}` does not hold" + (f" ({now})" if now else "")
    return None


def _names(e: ast.Expr) -> list[ast.NameRef]:
    from rules_dsl.check import _name_refs

    return _name_refs(e)
