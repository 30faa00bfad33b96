"""Moving a running instance to another version of its contract (pure).

``carry_over(state, old, new, calendar, at)`` builds the instance's state under
the new version, or refuses with every reason it cannot:

- the contract name must be the same, and the current state must exist in the
  new version; no approval may be pending (decide it first);
- terms are kept by name and must keep their type; a term the new version
  needs but the old one did not have is refused (there is no value for it);
- variables are kept by name and must keep their type; a new variable starts
  at its declared initial value;
- running timers are carried over one by one (see :class:`TimerCarry`):
  ``kept`` when the deadline has the same name and the same timing in the new
  version (same due instant, suspension and occurrence kept), ``re-armed``
  when its timing changed (recomputed from the migration day, like entering
  the state), ``dropped`` when the new version has no such deadline in the
  current state; a deadline new in this version for the current state is
  ``armed``.  A deadline of the old version that already fired in this state
  is not armed again.

``recalendar(state, program, old, new, at)`` moves a running instance to a
newer version of its calendar (see :func:`check_calendar_move` for which
moves are allowed): each provisional timer (its last day lay beyond the old
calendar's years) is ``recomputed`` from its stored anchor and occurrence
under the new calendar (the holiday extension now applies; still provisional
if still beyond); every other timer is ``kept`` -- the new calendar agrees
with the old one on every day of the old one's years, so what was computed
under the old one stands.

Like the core it is deterministic (same inputs, same state), so a replay of
the input log re-applies a logged migration and gets the same state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from contracts_lib.calendar import Calendar
from engine.core import arm_deadlines, legal_date, recompute_provisional
from engine.program import Frame, Program, RuntimeFault
from engine.runtime.errors import MigrationRefused
from engine.state import InstanceState, Timer

__all__ = ["TimerCarry", "carry_over", "check_calendar_move", "recalendar"]


@dataclass(frozen=True)
class TimerCarry:
    """How one running timer (or newly armed deadline) crossed the migration."""

    deadline: str
    how: str  # kept | re-armed | dropped | armed | recomputed (a calendar move)
    old_due: dt.datetime | None
    new_due: dt.datetime | None
    reason: str
    how_en: str | None = None
    how_zh: str | None = None

    def to_json(self) -> dict[str, Any]:
        def t(v: dt.datetime | None) -> str | None:
            return None if v is None else v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

        return {"deadline": self.deadline, "how": self.how, "old_due": t(self.old_due),
                "new_due": t(self.new_due), "reason": self.reason, "how_en": self.how_en,
                "how_zh": self.how_zh}


def _strip_spans(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_spans(v) for k, v in value.items() if k != "span"}
    if isinstance(value, list):
        return [_strip_spans(v) for v in value]
    return value


def _deadline_irs(program: Program) -> dict[str, Mapping[str, Any]]:
    return {d["name"]: d for d in program.ir["deadlines"]}


def _var_types(program: Program) -> dict[str, str]:
    return {v["name"]: v["type"] for v in program.ir["vars"]}


def _check(state: InstanceState, old: Program, new: Program) -> list[str]:
    reasons: list[str] = []
    if old.name != new.name:
        reasons.append(f"contract `{new.name}` is not a version of `{old.name}`")
    if state.state not in new.states:
        reasons.append(f"the instance is in state `{state.state}`, which version "
                       f"{new.ir.get('version')} does not have")
    if state.approvals:
        ids = ", ".join(a.id for a in state.approvals)
        reasons.append(f"approval(s) {ids} are pending: decide them before migrating")
    old_terms = dict(old.term_types)
    for name, kind in new.term_types:
        if name not in old_terms:
            reasons.append(f"term `{name}` is new in this version: a running instance has "
                           "no value for it")
        elif old_terms[name] != kind:
            reasons.append(f"term `{name}` changed type ({old_terms[name]} -> {kind})")
    old_vars = _var_types(old)
    for name, kind in _var_types(new).items():
        if name in old_vars and old_vars[name] != kind:
            reasons.append(f"var `{name}` changed type ({old_vars[name]} -> {kind})")
    return reasons


def _sorted_timers(timers: list[Timer], clock: dt.datetime) -> tuple[Timer, ...]:
    return tuple(sorted(timers, key=lambda t: (t.due_at is None, t.due_at or clock, t.priority,
                                               t.index, t.occurrence)))


def carry_over(state: InstanceState, old: Program, new: Program, calendar: Calendar,
               at: dt.datetime) -> tuple[InstanceState, list[TimerCarry]]:
    """The instance's state under ``new``, and how each timer was carried over.

    Raises :class:`MigrationRefused` listing every reason when it cannot.
    """
    reasons = _check(state, old, new)
    if reasons:
        raise MigrationRefused("cannot migrate: " + "; ".join(reasons))
    clock = max(at, state.clock)
    today = legal_date(clock, calendar)
    old_terms = dict(state.terms)
    terms = {name: old_terms[name] for name, _ in new.term_types}
    old_vars = dict(state.vars)
    vars_: dict[str, Any] = {}
    frame = Frame(terms=terms, vars=vars_, today=today, now=clock, calendar=calendar)
    try:
        for name, init in new.var_inits:
            vars_[name] = old_vars[name] if name in old_vars else init(frame)
    except RuntimeFault as exc:
        raise MigrationRefused(f"cannot migrate: a new variable cannot be initialised: "
                               f"{exc}") from exc

    event_fields = {name: tuple(fields) for name, fields in new.event_fields.items()}
    old_fields = {name: tuple(fields) for name, fields in old.event_fields.items()}
    keep_event = {e for e in event_fields if old_fields.get(e) == event_fields[e]}
    event_dates = tuple((e, d) for e, d in state.event_dates if e in keep_event)
    event_payloads = tuple((e, p) for e, p in state.event_payloads if e in keep_event)
    deadline_days = tuple((n, d) for n, d in state.deadline_days if n in new.deadline_by_name)

    old_irs, new_irs = _deadline_irs(old), _deadline_irs(new)
    current = state.state
    carried: list[Timer] = []
    report: list[TimerCarry] = []
    to_arm: list[tuple[str, Timer | None]] = []
    running = {t.deadline for t in state.timers}
    for t in state.timers:
        d = new.deadline_by_name.get(t.deadline)
        if d is None or current not in d.states:
            why = ("the new version has no such deadline" if d is None
                   else f"the deadline no longer runs in state `{current}`")
            report.append(TimerCarry(t.deadline, "dropped", t.due_at, None, why))
            continue
        same = _strip_spans(old_irs[t.deadline]["timing"]) == \
            _strip_spans(new_irs[t.deadline]["timing"])
        if same:
            carried.append(replace(t, index=d.index, priority=d.priority))
            report.append(TimerCarry(t.deadline, "kept", t.due_at, t.due_at,
                                     "same deadline, same timing"))
        else:
            to_arm.append((t.deadline, t))
    for d in new.deadlines:
        if current in d.states and d.name not in running:
            old_d = old.deadline_by_name.get(d.name)
            if old_d is not None and current in old_d.states:
                continue  # it ran in this state under the old version and already fired
            to_arm.append((d.name, None))

    base = InstanceState(
        instance_id=state.instance_id, contract_id=new.contract_id,
        calendar_version=state.calendar_version, state=current, seq=state.seq + 1,
        clock=clock, terms=tuple(terms.items()), vars=tuple(vars_.items()),
        timers=tuple(carried), approvals=(), event_dates=event_dates,
        event_payloads=event_payloads, deadline_days=deadline_days,
    )
    if to_arm:
        base = _arm(base, new, calendar, today, clock, to_arm, report)
    return replace(base, timers=_sorted_timers(list(base.timers), clock)), report


def _arm(base: InstanceState, new: Program, calendar: Calendar, today: dt.date,
         now: dt.datetime, to_arm: list[tuple[str, Timer | None]],
         report: list[TimerCarry]) -> InstanceState:
    """Arm deadlines of ``new`` from the migration day, as entering the state does.

    Uses the core's deadline arithmetic (:func:`engine.core.arm_deadlines`) so
    a re-armed deadline is computed exactly as the core would compute it.
    """
    try:
        armed, notes = arm_deadlines(new, calendar, base, [name for name, _ in to_arm],
                                     today, now)
    except RuntimeFault as exc:
        raise MigrationRefused(f"cannot migrate: a deadline cannot be re-armed: {exc}") from exc
    for (name, old_timer), note in zip(to_arm, notes, strict=True):
        new_due = None if note is None else note.due_at
        how_en = None if note is None else note.how_en
        how_zh = None if note is None else note.how_zh
        if old_timer is not None:
            report.append(TimerCarry(name, "re-armed", old_timer.due_at, new_due,
                                     "its timing changed in the new version; counted again "
                                     "from the migration day", how_en, how_zh))
        else:
            report.append(TimerCarry(name, "armed", None, new_due,
                                     "new in this version for the current state", how_en, how_zh))
    return armed


def _rest_days(calendar: Calendar, first_year: int, last_year: int) -> tuple[Any, ...]:
    """The days of ``first_year..last_year`` that differ from the plain weekly pattern."""
    def within(days: Mapping[dt.date, str]) -> tuple[dt.date, ...]:
        return tuple(d for d in days if first_year <= d.year <= last_year)

    return (calendar.timezone, calendar.weekend, within(calendar.holidays),
            within(calendar.working_days))


def check_calendar_move(old: Calendar, new: Calendar) -> list[str]:
    """Why an instance on ``old`` may not move to ``new`` (empty: it may).

    Allowed: a newer version of the *same* calendar (same id) that covers every
    year ``old`` covers and at least one more, and agrees with ``old`` on every
    day of ``old``'s years (same time zone and weekend, the same holidays,
    closures and working weekend days).  So it only adds years (a new year's
    holiday notice), and every deadline computed under ``old`` stays right.
    """
    reasons: list[str] = []
    if new.id != old.id:
        reasons.append(f"calendar {new.version} is not a version of calendar `{old.id}` "
                       f"(the instance runs {old.version})")
        return reasons
    if new.version == old.version:
        reasons.append(f"the instance already runs calendar {old.version}")
        return reasons
    if new.first_year > old.first_year or new.last_year < old.last_year \
            or (new.first_year, new.last_year) == (old.first_year, old.last_year):
        reasons.append(f"calendar {new.version} (covers {new.first_year}-{new.last_year}) "
                       f"must cover every year {old.version} covers ({old.first_year}-"
                       f"{old.last_year}) and at least one more")
    elif _rest_days(new, old.first_year, old.last_year) != \
            _rest_days(old, old.first_year, old.last_year):
        reasons.append(f"calendar {new.version} changes days within {old.first_year}-"
                       f"{old.last_year}, which {old.version} already covers (deadlines "
                       "computed under it would be wrong): only new years may be added")
    return reasons


def recalendar(state: InstanceState, program: Program, old: Calendar, new: Calendar,
               at: dt.datetime) -> tuple[InstanceState, list[TimerCarry]]:
    """The instance's state under calendar ``new``, and how each timer was carried.

    Raises :class:`MigrationRefused` listing every reason when it cannot.
    """
    reasons = check_calendar_move(old, new)
    if reasons:
        raise MigrationRefused("cannot move to calendar " + new.version + ": "
                               + "; ".join(reasons))
    try:
        moved_state, moved = recompute_provisional(program, new, state, at)
    except RuntimeFault as exc:
        raise MigrationRefused(f"cannot move to calendar {new.version}: {exc}") from exc
    recomputed = {id(o) for o, _, _ in moved}
    report: list[TimerCarry] = []
    for t in state.timers:
        if id(t) in recomputed:
            continue
        why = ("suspended: computed under the new calendar when it resumes"
               if t.provisional else f"computed under {old.version}, which {new.version} "
               "agrees with on every day it covered")
        report.append(TimerCarry(t.deadline, "kept", t.due_at, t.due_at, why))
    for o, n, note in moved:
        if n is None:
            report.append(TimerCarry(o.deadline, "dropped", o.due_at, None,
                                     f"under {new.version} this repetition is past its limit"))
            continue
        why = (f"provisional under {old.version} (last day {o.last_day} beyond its years): "
               f"recomputed from its anchor {o.anchor} (occurrence {o.occurrence}) under "
               f"{new.version}, last day {n.last_day}"
               + (" (still beyond its years: still provisional)" if n.provisional else ""))
        report.append(TimerCarry(o.deadline, "recomputed", o.due_at, n.due_at, why,
                                 None if note is None else note.how_en,
                                 None if note is None else note.how_zh))
    return moved_state, report
