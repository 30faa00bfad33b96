"""Properties as monitors over the observations of one run.

Each property becomes a :class:`Monitor`: it reads the observations one at a
time (``observe``), keeping a small immutable memory (a tuple, so the bounded
explorer can use it as part of a search key), and says at the end of a run
(``finish``) whether anything is still owed.  A monitor answers with a
:class:`Violation` (which step, and what went wrong) or None.

Meanings (``docs/testing.md``):

``always C`` / ``never C``
    C holds (does not hold) after every step, creation included.
``[after A] never action X, Y``
    no step triggers X or Y (after the step in which A first held).
``after A never C``
    from the step in which A first holds on, C never holds.
``after A eventually G within N units``
    whenever A becomes true on day D, G holds at some step by 24:00 of the last
    day of the period of N units counted from D (the instant a deadline of that
    period would fall due).  A period still running
    when the run ends is not a failure; one that ran out is.
``eventually terminal``
    left alone (no more events), the instance never gets stuck: when time has
    run to the horizon it is in a terminal state, or something is still due
    (a deadline beyond the calendar's last year cannot be decided yet).
``never unapproved [X, Y]``
    X and Y (default: every action the catalogue says needs approval) take
    effect only in the step that records an officer's approval of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from contracts_lib.actions import ACTIONS
from contracts_lib.calendar import Calendar, DateOutsideCalendar
from contracts_lib.periods import PeriodUnit, period_end
from engine.core import legal_date
from engine.program import RuntimeFault
from engine.testing.target import Condition, TestTarget
from engine.testing.timeline import Observation, approval_closed
from rules_dsl import ast

__all__ = ["Monitor", "Violation", "compile_property"]

Memory = tuple[Any, ...]


@dataclass(frozen=True)
class Violation:
    property: str
    step: int  # index into the run's observations (-1: at the end)
    message: str


@dataclass(frozen=True)
class Monitor:
    name: str
    text: str
    span: ast.Span
    start: Memory
    observe: Callable[[Memory, int, Observation], tuple[Memory, str | None]]
    finish: Callable[[Memory, bool], str | None]
    #: whether the end of a run (time let run to the horizon) can break it
    needs_end: bool = False


def _end_of_day(day: dt.date, calendar: Calendar) -> dt.datetime:
    """24:00 court time of ``day`` (when a period whose last day it is runs out), in UTC."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0),
                                   tzinfo=ZoneInfo(calendar.timezone))
    return midnight.astimezone(dt.UTC)


def _holds(target: TestTarget, cond: Condition, obs: Observation,
           calendar: Calendar) -> bool:
    frame = target.frame(obs.state.terms, {**dict(obs.state.vars),
                                           **obs.extra(target.program)},
                         obs.at, calendar)
    try:
        return bool(cond.evaluate(frame))
    except (RuntimeFault, DateOutsideCalendar, ArithmeticError, IndexError, KeyError) as exc:
        raise PropertyError(f"`{cond.text}` cannot be evaluated: {exc}") from exc


class PropertyError(Exception):
    """A property's condition cannot be evaluated in some state (reported as a failure)."""


def _form_text(prop: ast.Property) -> str:
    from rules_dsl.fmt import _property_form

    return _property_form(prop.form)


def compile_property(prop: ast.Property, target: TestTarget, calendar: Calendar) -> Monitor:
    form = prop.form
    name, text = prop.name, _form_text(prop)

    def never_end(mem: Memory, drained: bool) -> str | None:
        return None

    match form:
        case ast.PropAlways(condition=c, negated=negated):
            cond = target.condition(c)

            def observe_always(mem: Memory, i: int, obs: Observation) -> tuple[Memory, str | None]:
                held = _holds(target, cond, obs, calendar)
                if held == negated:
                    word = "holds" if negated else "does not hold"
                    return mem, f"`{cond.text}` {word} after: {obs.label}"
                return mem, None

            return Monitor(name, text, prop.span, (), observe_always, never_end)
        case ast.PropNeverAction(after=after, actions=actions):
            names = {a.name for a in actions}
            after_cond = target.condition(after) if after is not None else None

            def observe_action(mem: Memory, i: int, obs: Observation) -> tuple[Memory, str | None]:
                armed = mem[0] if mem else after_cond is None
                if armed:
                    for e in obs.actions():
                        if e.action in names:
                            why = f" although `{after_cond.text}` held earlier" \
                                if after_cond is not None else ""
                            return (armed,), f"{e.action} was triggered{why} ({obs.label})"
                if not armed and after_cond is not None and _holds(target, after_cond, obs,
                                                                   calendar):
                    armed = True
                return (armed,), None

            return Monitor(name, text, prop.span, (after_cond is None,), observe_action,
                           never_end)
        case ast.PropAfterNever(after=after, condition=c):
            after_cond, bad = target.condition(after), target.condition(c)

            def observe_after(mem: Memory, i: int, obs: Observation) -> tuple[Memory, str | None]:
                armed = mem[0] or _holds(target, after_cond, obs, calendar)
                if armed and _holds(target, bad, obs, calendar):
                    return (True,), (f"`{bad.text}` holds after `{after_cond.text}` held "
                                     f"({obs.label})")
                return (armed,), None

            return Monitor(name, text, prop.span, (False,), observe_after, never_end)
        case ast.PropWithin(after=after, goal=g, within=within):
            trigger, goal = target.condition(after), target.condition(g)
            unit = PeriodUnit(within.unit)

            def amount(obs: Observation) -> int:
                if isinstance(within.amount, ast.IntLit):
                    return within.amount.value
                assert isinstance(within.amount, ast.NameRef)
                return int(dict(obs.state.terms)[within.amount.name])

            def observe_within(mem: Memory, i: int, obs: Observation) -> tuple[Memory, str | None]:
                # due: (the instant the period ends: 24:00 of its last day, the last day,
                # the day the condition became true) of the open obligation
                was_true, due = mem
                today = legal_date(obs.at, calendar)
                if due is not None:
                    if obs.at <= due[0] and _holds(target, goal, obs, calendar):
                        due = None
                    elif obs.at > due[0]:
                        return mem, (f"`{trigger.text}` held on {due[2]} but `{goal.text}` did "
                                     f"not hold by the end of {due[1]} ({obs.label} on {today})")
                now_true = _holds(target, trigger, obs, calendar)
                if now_true and not was_true and due is None:
                    if not _holds(target, goal, obs, calendar):
                        try:
                            last = period_end(today, amount(obs), unit, calendar).end
                            ends = _end_of_day(last, calendar)
                        except DateOutsideCalendar:  # beyond the calendar: cannot be decided
                            last, ends = dt.date.max, dt.datetime.max.replace(tzinfo=dt.UTC)
                        due = (ends, last, today)
                return (now_true, due), None

            def finish_within(mem: Memory, drained: bool) -> str | None:
                return None

            return Monitor(name, text, prop.span, (False, None), observe_within, finish_within,
                           True)
        case ast.PropTerminates():
            terminal = target.program.terminal

            def observe_last(mem: Memory, i: int, obs: Observation) -> tuple[Memory, str | None]:
                return (obs.state.state, obs.state.next_due() is not None), None

            def finish_terminal(mem: Memory, drained: bool) -> str | None:
                # stuck: not terminal, and nothing (deadline, approval timeout) left to fall
                # due; a deadline beyond the horizon (the calendar's end) cannot be decided
                state, pending = mem
                if drained and state not in terminal and not pending:
                    return (f"with no more events the instance stays in `{state}` for good: "
                            "it is not a terminal state and nothing is left to fall due")
                return None

            return Monitor(name, text, prop.span, ("", True), observe_last, finish_terminal,
                           True)
        case ast.PropUnapproved(actions=actions):
            gated = {a.name for a in actions} or {n for n, s in ACTIONS.items()
                                                   if s.needs_approval}

            def observe_gate(mem: Memory, i: int, obs: Observation) -> tuple[Memory, str | None]:
                for e in obs.actions():
                    if e.action in gated and not approval_closed(obs.effects, e.action):
                        return mem, f"{e.action} took effect without approval ({obs.label})"
                return mem, None

            return Monitor(name, text, prop.span, (), observe_gate, never_end)
    raise AssertionError(form)  # pragma: no cover


def check_run(monitors: list[Monitor], observations: list[Observation],
              drained: bool) -> list[Violation]:
    """Every monitor over one run: the first violation of each."""
    out: list[Violation] = []
    for m in monitors:
        mem = m.start
        found: Violation | None = None
        for i, obs in enumerate(observations):
            try:
                mem, problem = m.observe(mem, i, obs)
            except PropertyError as exc:
                found = Violation(m.name, i, str(exc))
                break
            if problem is not None:
                found = Violation(m.name, i, problem)
                break
        if found is None:
            problem = m.finish(mem, drained)
            if problem is not None:
                found = Violation(m.name, -1, problem)
        if found is not None:
            out.append(found)
    return out
