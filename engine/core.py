"""The pure engine core: ``step(program, calendar, state, input)``.

No clock, no I/O, no randomness, no floats, no iteration over unordered
collections: the same program, calendar version, state and input give the same
new state, effects and explanations, byte for byte, on any machine.

Time is legal time.  A deadline falls due at 24:00 court-local time of its last
day; an input at instant T first fires everything due at or before T (in order
of due instant, priority, declaration), then applies itself, so the outcome
never depends on how late the scheduler woke up.  Rule bodies that fire for a
deadline see ``today`` = the day after the last day and ``now`` = the due
instant, not the instant the engine happened to run.

A refused input (:class:`Rejected`) changes nothing.  A rule that cannot be
evaluated (:class:`engine.program.RuntimeFault`) refuses an event, and makes a
tick raise :class:`Fault` so the runtime can open an incident.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import is_, itemgetter
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from contracts_lib.calendar import Calendar, DateOutsideCalendar
from contracts_lib.periods import (
    PeriodUnit,
    add_months,
    add_years,
    nth_repeat,
    period_end,
    period_start_before,
    repeat_count,
)
from engine._fast import positional
from engine.explain import DeadlineNote, Explanation
from engine.program import (
    CompiledDeadline,
    CompiledTransition,
    Frame,
    Program,
    RuntimeFault,
)
from engine.state import (
    ActionEffect,
    ApprovalEffect,
    Create,
    Decision,
    Effect,
    Event,
    Input,
    InstanceState,
    PendingApproval,
    Tick,
    Timer,
)
from engine.values import Value, ValueError_, from_json

__all__ = ["MAX_FIRINGS_PER_STEP", "Fault", "Rejected", "StepResult", "arm_deadlines",
           "legal_date", "recompute_provisional", "step"]

#: A step that fires more than this many deadlines is stopped as a fault
#: (a rule set that re-arms a zero-length deadline forever).
MAX_FIRINGS_PER_STEP = 10_000


class Rejected(Exception):
    """The input was refused; the state is unchanged.  ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class Fault(Exception):
    """A deadline or approval timeout could not be evaluated: needs a person.

    ``message`` says what went wrong and ``span`` where (the innermost rule
    position known); :meth:`describe` joins them, naming the span once.
    """

    def __init__(self, message: str, span: str = "") -> None:
        self.span = span
        self.message = message
        super().__init__(message)

    def describe(self) -> str:
        """``message (at span)``, or the message alone when no span is known."""
        return f"{self.message} (at {self.span})" if self.span else self.message


@dataclass(frozen=True, slots=True)
class StepResult:
    state: InstanceState
    effects: tuple[Effect, ...]
    explanations: tuple[Explanation, ...]


# Positional constructors (all fields, in declaration order): see engine/_fast.py.
_make_state = positional(InstanceState)
_make_result = positional(StepResult)
_make_explanation = positional(Explanation)
_make_timer = positional(Timer)
_make_note = positional(DeadlineNote)
_make_action = positional(ActionEffect)


def _frame(terms: dict[str, Value], vars_: dict[str, Value], today: dt.date, now: dt.datetime,
           calendar: Calendar, payload: Mapping[str, Value], event_dates: Mapping[str, dt.date],
           event_payloads: Mapping[str, Mapping[str, Value]],
           deadline_days: Mapping[str, dt.date]) -> Frame:
    """``Frame(terms, vars_, ...)`` with an empty log, without the generated
    ``__init__``'s default handling (every frame of ``step`` gives all of these)."""
    f = _new_object(Frame)
    f.terms = terms
    f.vars = vars_
    f.today = today
    f.now = now
    f.calendar = calendar
    f.payload = payload
    f.event_dates = event_dates
    f.event_payloads = event_payloads
    f.deadline_days = deadline_days
    f.entering = None
    f.log = []
    f.goto = None
    return f


_new_object = object.__new__
_first = itemgetter(0)

#: a frame's (read-only, empty) deadline days or events' memory, where nothing can
#: write them: rules that never read deadline days, an event or tick path that
#: remembers nothing
_NOTHING: Mapping[str, Any] = MappingProxyType({})


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def legal_date(instant: dt.datetime, calendar: Calendar) -> dt.date:
    """The court-local calendar day an instant falls on."""
    return _local_day(instant, calendar.timezone)


#: id(terms tuple) -> (the tuple, its dict): see terms_mapping
_TERMS: dict[int, tuple[tuple[tuple[str, Value], ...], dict[str, Value]]] = {}
_TERMS_MAX = 16384


def terms_mapping(terms: tuple[tuple[str, Value], ...]) -> dict[str, Value]:
    """The terms of a state as a mapping: one dict per terms tuple, shared by every
    step of the instance (terms never change, and nothing writes the dict), so
    values of the terms alone can be remembered per instance
    (:func:`engine.program._by_terms`)."""
    hit = _TERMS.get(id(terms))
    if hit is not None and hit[0] is terms:
        return hit[1]
    mapping = dict(terms)
    if len(_TERMS) >= _TERMS_MAX:
        _TERMS.clear()
    _TERMS[id(terms)] = (terms, mapping)
    return mapping


#: (calendar, its version text) of the calendar seen last: see _calendar_version
_VERSION_SLOT: list[tuple[Calendar | None, str]] = [(None, "")]


def _calendar_version(calendar: Calendar) -> str:
    """``calendar.version``, remembered for the calendar seen last: the property
    formats a new string on every call, and every step needs it (a calendar is
    immutable; its version depends on its content alone)."""
    slot = _VERSION_SLOT[0]  # one tuple: read at once, so never half of another's
    if slot[0] is calendar:
        return slot[1]
    version = calendar.version
    _VERSION_SLOT[0] = (calendar, version)
    return version


#: time zone -> (start, end, day): the UTC instants [start, end) of the local day
#: looked up last, remembered only for a day of exactly 24 hours with one UTC offset
#: (no clock change in it), where every instant in between falls on that day
_DAY_SLOT: dict[str, tuple[dt.datetime, dt.datetime, dt.date]] = {}
#: time zone -> the last few such days, newest first: a tick fires deadlines due on
#: other days than its input's (e.g. a re-armed one already past), which would
#: otherwise replace the slot and make the next input convert its instant again
_DAY_RECENT: dict[str, tuple[tuple[dt.datetime, dt.datetime, dt.date], ...]] = {}
_DAY_RECENT_MAX = 8
_DAY = dt.timedelta(days=1)


def _local_day(instant: dt.datetime, timezone: str) -> dt.date:
    """``instant.astimezone(zone).date()``; consecutive inputs mostly fall on one day,
    and a comparison with the day's bounds is cheaper than a zone conversion."""
    slot = _DAY_SLOT.get(timezone)
    if slot is not None and slot[0] <= instant < slot[1]:
        return slot[2]
    recent = _DAY_RECENT.get(timezone, ())
    for slot in recent:
        if slot[0] <= instant < slot[1]:
            _DAY_SLOT[timezone] = slot
            return slot[2]
    zone = _zone(timezone)
    day = instant.astimezone(zone).date()
    start, end = _start_of_day_in(day, timezone), _end_of_day_in(day, timezone)
    if end - start == _DAY and start.astimezone(zone).utcoffset() == \
            (end - _TICK).astimezone(zone).utcoffset():
        slot = _DAY_SLOT[timezone] = (start, end, day)
        _DAY_RECENT[timezone] = (slot, *recent[: _DAY_RECENT_MAX - 1])
    return day


_TICK = dt.timedelta(microseconds=1)


# Pure functions of immutable arguments, cached: a deadline's day and instant depend
# only on (anchor, amount, unit, calendar data) and (day, time zone), never on which
# instance or step asks, so a cache cannot change a result, only skip recomputing it.
# A calendar's data is identified by its content hash, a unit (an enum member, one
# object for the life of the process) by its id: both cheaper to hash than the objects.
_PERIODS: dict[tuple[Any, ...], Any] = {}
_PERIODS_MAX = 16384


def _period_end(start: dt.date, amount: int, unit: PeriodUnit, calendar: Calendar) -> Any:
    """:func:`contracts_lib.periods.period_end`, cached."""
    key = (0, start, amount, id(unit), calendar.content_hash)
    result = _PERIODS.get(key)
    if result is None:
        result = period_end(start, amount, unit, calendar)
        if len(_PERIODS) >= _PERIODS_MAX:
            _PERIODS.clear()
        _PERIODS[key] = result
    return result


def _period_start_before(anchor: dt.date, amount: int, unit: PeriodUnit,
                         calendar: Calendar) -> Any:
    """:func:`contracts_lib.periods.period_start_before`, cached."""
    key = (1, anchor, amount, id(unit), calendar.content_hash)
    result = _PERIODS.get(key)
    if result is None:
        result = period_start_before(anchor, amount, unit, calendar)
        if len(_PERIODS) >= _PERIODS_MAX:
            _PERIODS.clear()
        _PERIODS[key] = result
    return result


@functools.lru_cache(maxsize=16384)
def _start_of_day_in(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=_zone(timezone)).astimezone(dt.UTC)


@functools.lru_cache(maxsize=16384)
def _end_of_day_in(day: dt.date, timezone: str) -> dt.datetime:
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=_zone(timezone))
    return midnight.astimezone(dt.UTC)


def _start_of_day(day: dt.date, calendar: Calendar) -> dt.datetime:
    """00:00 court-local time of ``day``, as a UTC instant (``before`` timings)."""
    return _start_of_day_in(day, calendar.timezone)


def _end_of_day(day: dt.date, calendar: Calendar) -> dt.datetime:
    """24:00 court-local time of ``day``, as a UTC instant."""
    return _end_of_day_in(day, calendar.timezone)


@dataclass(frozen=True, slots=True)
class _Nominal:
    """A period computed without the calendar (its last year is not covered yet)."""

    start: dt.date
    amount: int
    unit: PeriodUnit
    end: dt.date

    def explain_en(self) -> str:
        return (f"{self.amount} {self.unit.value.replace('_', ' ')} from {self.start} "
                f"(start day not counted) end on {self.end}.")

    def explain_zh(self) -> str:
        return (f"自{self.start}起算{self.amount}（{self.unit.value}，起算日不计入），"
                f"至{self.end}届满。")


def _nominal(start: dt.date, amount: int, unit: PeriodUnit) -> dt.date:
    if unit is PeriodUnit.DAYS:
        return start + dt.timedelta(days=amount)
    if unit is PeriodUnit.MONTHS:
        return add_months(start, amount)
    if unit is PeriodUnit.YEARS:
        return add_years(start, amount)
    raise RuntimeFault("working days cannot be counted beyond the calendar's years")


class _Work:
    """The mutable working copy of one step (never escapes :func:`step`).

    Parts of the state a step leaves alone are reused as they were: the timers
    tuple unless a timer was armed, fired, disarmed or changed (``timers_changed``),
    the remembered events and deadline days unless written (``memory_changed``).
    """

    __slots__ = (
        "_deadline_days", "approvals", "calendar", "calendar_version", "clock", "counter",
        "effects", "event_dates", "event_payloads", "explanations", "instance_id",
        "memory_changed", "original", "program", "seq", "set_names", "state", "terms",
        "timers", "timers_changed", "vars",
    )

    def __init__(self, program: Program, calendar: Calendar, state: InstanceState) -> None:
        self.program = program
        self.calendar = calendar
        self.calendar_version = _calendar_version(calendar)
        self.original = state
        self.instance_id = state.instance_id
        self.state = state.state
        self.seq = state.seq + 1
        self.clock = state.clock
        self.terms: dict[str, Value] = terms_mapping(state.terms)
        self.vars: dict[str, Value] = dict(state.vars)
        self.timers: list[Timer] = list(state.timers)
        self.approvals: list[PendingApproval] = list(state.approvals) if state.approvals else []
        self.event_dates: dict[str, dt.date] = (
            dict(state.event_dates) if state.event_dates else {})
        self.event_payloads: dict[str, dict[str, Value]] = (
            {k: dict(v) for k, v in state.event_payloads} if state.event_payloads else {})
        self._deadline_days: dict[str, dt.date] | None = None  # see deadline_days
        self.effects: list[Effect] = []
        self.explanations: list[Explanation] = []
        self.counter = 0
        # which parts changed (the rest of the state is reused as it was)
        self.timers_changed = False
        self.memory_changed = False
        self.set_names: list[str] = []  # the variables rules set (apply reads every log)

    @property
    def deadline_days(self) -> dict[str, dt.date]:
        """Each armed deadline's last day (copied from the state when first needed)."""
        days = self._deadline_days
        if days is None:
            days = self._deadline_days = dict(self.original.deadline_days)
        return days

    # --- building blocks ---------------------------------------------------------
    def frame(self, today: dt.date, now: dt.datetime,
              payload: dict[str, Value] | None = None) -> Frame:
        return _frame(self.terms, self.vars, today, now, self.calendar, payload or {},
                      self.event_dates, self.event_payloads, self.frame_deadline_days())

    def frame_deadline_days(self) -> Mapping[str, dt.date]:
        """What a frame needs of the deadlines' last days: only a program whose rules
        read them (``X.last_day``) needs the copy; the others get an empty mapping."""
        return self.deadline_days if self.program.reads_deadline_days else _NOTHING

    def next_key(self) -> str:
        self.counter += 1
        return f"{self.instance_id}:{self.seq}:{self.counter}"

    def finish(self, contract_id: str, calendar_version: str) -> InstanceState:
        old = self.original
        if self.timers_changed or len(self.timers) != len(old.timers):
            clock = self.clock
            timers = tuple(sorted(
                self.timers,
                key=lambda t: (t.due_at is None, t.due_at or clock, t.priority, t.index,
                               t.occurrence),
            )) if len(self.timers) > 1 else tuple(self.timers)
        else:
            timers = old.timers
        if self.memory_changed:
            event_dates = tuple(sorted(self.event_dates.items()))
            event_payloads = tuple(sorted((k, tuple(v.items()))
                                          for k, v in self.event_payloads.items()))
            deadline_days = tuple(sorted(self.deadline_days.items()))
        else:
            event_dates, event_payloads = old.event_dates, old.event_payloads
            deadline_days = old.deadline_days
        names = self.program.var_names
        return _make_state(
            self.instance_id,
            contract_id,
            calendar_version,
            self.state,
            self.seq,
            self.clock,
            old.terms if old.terms else tuple(self.terms.items()),
            _vars_after(names, old.vars, self.vars, self.set_names),
            timers,
            tuple(self.approvals),
            event_dates,
            event_payloads,
            deadline_days,
        )

    def drop_timer(self, timer: Timer) -> None:
        """Take ``timer`` (this very object) out of the running timers."""
        timers = self.timers
        for i, t in enumerate(timers):
            if t is timer:
                del timers[i]
                break
        self.timers_changed = True

    # --- deadlines ---------------------------------------------------------------
    def arm(self, d: CompiledDeadline, frame: Frame, occurrence: int = 1,
            anchor_override: dt.date | None = None) -> DeadlineNote | None:
        """Compute a deadline's last day and add its timer (None: nothing to arm)."""
        cal = self.calendar
        version = self.calendar_version
        today = frame.today
        try:
            if d.anchor_event is not None and anchor_override is None \
                    and d.anchor_event not in self.event_dates:
                self.timers.append(_make_timer(d.name, d.index, d.priority, None, occurrence,
                                               None, None, None, None, None, False))
                self.timers_changed = True
                return _make_note(d.name, d.title, None, None, None, version, d.anchor_event,
                                  False)
            if d.kind == "by":
                anchor = anchor_override or d.anchor(frame)  # type: ignore[misc]
                amount, unit = 0, PeriodUnit.DAYS
            else:
                anchor = anchor_override or (d.anchor(frame) if d.anchor else today)
                amount = _whole(d.amount(frame), d.span)  # type: ignore[misc]
                unit = d.unit  # type: ignore[assignment]
            computation: Any
            provisional = False
            try:
                if d.kind == "before":
                    computation = _period_start_before(anchor, amount, unit, cal)
                    nominal, last = computation.nominal_start, computation.start
                elif d.kind == "every":
                    if d.limit_amount is not None:
                        limit = _whole(d.limit_amount(frame), d.span)
                        assert d.limit_unit is not None
                        count = repeat_count(anchor, amount, unit, limit, d.limit_unit, cal)
                        if occurrence > count:
                            return None
                    computation = nth_repeat(anchor, occurrence, amount, unit, cal)
                    nominal, last = computation.nominal_end, computation.end
                else:
                    computation = _period_end(anchor, amount, unit, cal)
                    nominal, last = computation.nominal_end, computation.end
            except DateOutsideCalendar:
                if d.kind == "before":
                    raise
                total = amount * occurrence if d.kind == "every" else amount
                nominal = last = _nominal(anchor, total, unit)
                computation = _Nominal(anchor, total, unit, nominal)
                provisional = True
        except RuntimeFault as exc:
            raise RuntimeFault(f"deadline `{d.name}` cannot be computed: {exc.message}",
                               exc.span or d.span) from exc
        except ValueError as exc:
            raise RuntimeFault(f"deadline `{d.name}` cannot be computed: {exc}", d.span) from exc
        # A reminder ("N days before X") is due at the start of its day; every other
        # period has run out at 24:00 of its last day.
        if d.kind == "before":
            due = _start_of_day_in(last, cal.timezone)
        else:
            due = _end_of_day_in(last, cal.timezone)
        self.timers.append(_make_timer(d.name, d.index, d.priority, anchor, occurrence, nominal,
                                       last, due, None, None, provisional))
        self.timers_changed = True
        self.deadline_days[d.name] = last
        self.memory_changed = True
        return _make_note(d.name, d.title, last, due, computation, version, None, provisional)

    def enter(self, new_state: str, frame: Frame, reentry: bool) -> tuple[
            list[DeadlineNote], list[str]]:
        """Move to ``new_state``: disarm and arm deadlines; lapse stale approvals."""
        program = self.program
        old = self.state
        disarmed: list[str] = []
        if self.timers:
            by_name = program.deadline_by_name
            kept: list[Timer] = []
            for t in self.timers:
                # re-entering a state restarts its deadlines; leaving it ends them
                if reentry or new_state not in by_name[t.deadline].states:
                    disarmed.append(t.deadline)
                else:
                    kept.append(t)
            if disarmed:
                self.timers = kept
                self.timers_changed = True
        self.state = new_state
        armed: list[DeadlineNote] = []
        for d in program.deadlines:
            states = d.states
            if new_state in states and (reentry or old is None or old not in states):
                note = self.arm(d, frame)
                if note is not None:
                    armed.append(note)
        if not disarmed:
            return armed, disarmed
        armed_names = {n.name for n in armed}
        return armed, [n for n in disarmed if n not in armed_names]

    def period_op(self, op: str, name: str, frame: Frame) -> DeadlineNote | None:
        d = self.program.deadline_by_name[name]
        timer = next((t for t in self.timers if t.deadline == name), None)
        if timer is None:
            return None
        cal = self.calendar
        today = frame.today
        if op == "restart":
            self.drop_timer(timer)
            return self.arm(d, frame, anchor_override=today if d.kind != "by" else None)
        if op == "suspend":
            if timer.suspended_on is not None or timer.nominal_last_day is None:
                return None
            nominal = timer.nominal_last_day
            if d.unit is PeriodUnit.WORKING_DAYS:
                remaining = cal.count_working_days(today, nominal) if nominal > today else 0
            else:
                remaining = max((nominal - today).days, 0)
            self.timers[self.timers.index(timer)] = Timer(
                timer.deadline, timer.index, timer.priority, timer.anchor, timer.occurrence,
                timer.nominal_last_day, timer.last_day, None, today, remaining,
                timer.provisional,
            )
            self.timers_changed = True
            return None
        # resume
        if timer.suspended_on is None or timer.remaining is None:
            return None
        if d.unit is PeriodUnit.WORKING_DAYS:
            nominal = cal.add_working_days(today, timer.remaining)
        else:
            nominal = today + dt.timedelta(days=timer.remaining)
        computation = _period_end(nominal, 0, PeriodUnit.DAYS, cal)
        last = computation.end
        due = _end_of_day(last, cal)
        self.timers[self.timers.index(timer)] = Timer(
            timer.deadline, timer.index, timer.priority, timer.anchor, timer.occurrence,
            nominal, last, due,
        )
        self.timers_changed = True
        self.deadline_days[name] = last
        self.memory_changed = True
        return DeadlineNote(name, d.title, last, due, computation, self.calendar_version)

    # --- running a rule ----------------------------------------------------------
    def apply(self, frame: Frame, kind: Any, subject: str, span: str, cite: str | None,
              at: dt.datetime, by_role: str | None = None, late_by: dt.timedelta | None = None,
              event: str | None = None, detail: str = "",
              pre_actions: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...] = ()
              ) -> None:
        """Turn what a rule did (``frame.log``, ``frame.goto``) into state and effects."""
        from_state = self.state
        changes: list[tuple[str, Value, Value]] = []
        if frame.goto is None and not pre_actions:
            # The common case, a rule that only set variables and triggered actions.
            actions_: list[tuple[str, tuple[tuple[str, Value], ...]]] = []
            effects = len(self.effects)
            for entry in frame.log:
                tag = entry[0]
                if tag == "set":
                    if entry[2] != entry[3]:
                        changes.append(entry[1:])
                    self.set_names.append(entry[1])
                elif tag == "do":
                    site = self.program.approval_sites[entry[1]]
                    self.effects.append(_make_action(self.next_key(), site.action, entry[2],
                                                     cite, site.span))
                    actions_.append((site.action, entry[2]))
                else:  # undo, and take the general way below
                    changes.clear()
                    del self.effects[effects:]
                    self.counter -= len(actions_)
                    break
            else:
                lapsed = self.lapse_approvals() if self.approvals else ()
                self.explanations.append(_make_explanation(
                    kind, subject, span, cite, from_state, from_state, at, by_role, late_by,
                    tuple(changes), tuple(actions_), (), (), (), (), tuple(lapsed), detail,
                    self.calendar.timezone,
                ))
                return
        actions: list[tuple[str, tuple[tuple[str, Value], ...]]] = list(pre_actions)
        requested: list[tuple[str, int, tuple[tuple[str, Value], ...]]] = []
        periods: list[tuple[str, str]] = []
        armed: list[DeadlineNote] = []
        for entry in frame.log:
            tag = entry[0]
            if tag == "set":
                if entry[2] != entry[3]:
                    changes.append(entry[1:])
                self.set_names.append(entry[1])
            elif tag == "do":
                site = self.program.approval_sites[entry[1]]
                self.effects.append(ActionEffect(self.next_key(), site.action, entry[2], cite,
                                                 site.span))
                actions.append((site.action, entry[2]))
            elif tag == "approval":
                requested.append((self.next_key(), entry[1], entry[2]))
            else:
                periods.append((tag, entry[1]))
                note = self.period_op(tag, entry[1], frame)
                if note is not None:
                    armed.append(note)
        disarmed: list[str] = []
        if frame.goto is not None:
            reentry = frame.goto == self.state
            new_armed, disarmed = self.enter(frame.goto, frame, reentry)
            armed += new_armed
        approvals_out: list[tuple[str, str, str]] = []
        for key, site_no, args in requested:
            site = self.program.approval_sites[site_no]
            within = _whole(site.within_amount(frame), site.span)
            try:
                computation = _period_end(frame.today, within, site.within_unit, self.calendar)
            except DateOutsideCalendar as exc:
                # unlike a deadline, an approval period is never armed provisionally: a
                # confirming role's window must not be cut short by a missing holiday list
                raise RuntimeFault(
                    f"the approval period of `{site.action}` ({within} {site.within_unit.value} "
                    f"from {frame.today.isoformat()}) runs past the years calendar "
                    f"{self.calendar.version} covers ({exc}); load the next year's calendar "
                    f"and submit again", site.span) from exc
            due = _end_of_day(computation.end, self.calendar)
            payload = tuple(frame.payload.items())
            self.approvals.append(PendingApproval(
                key, site_no, site.action, args, site.role, self.state, frame.today,
                computation.end, due, event, payload, cite,
            ))
            self.effects.append(ApprovalEffect(key, "requested", site.action, site.role))
            approvals_out.append((key, site.action, site.role))
        lapsed = self.lapse_approvals() if self.approvals else ()
        self.explanations.append(_make_explanation(
            kind, subject, span, cite, from_state, self.state, at, by_role, late_by,
            tuple(changes), tuple(actions), tuple(approvals_out), tuple(armed),
            tuple(disarmed), tuple(periods), tuple(lapsed), detail, self.calendar.timezone,
        ))

    def lapse_approvals(self) -> list[str]:
        terminal = self.state in self.program.terminal
        keep: list[PendingApproval] = []
        lapsed: list[str] = []
        for a in self.approvals:
            if terminal or a.waiting_state != self.state:
                lapsed.append(a.id)
                self.effects.append(ApprovalEffect(a.id, "lapsed", a.action, a.role,
                                                   "the instance left the state it waited in"))
            else:
                keep.append(a)
        self.approvals = keep
        return lapsed

    # --- inputs ------------------------------------------------------------------
    def fire_due(self, until: dt.datetime) -> None:
        fired = 0
        while True:
            item = self.next_due_item(until)
            if item is None:
                return
            fired += 1
            if fired > MAX_FIRINGS_PER_STEP:
                raise Fault(f"more than {MAX_FIRINGS_PER_STEP} deadlines fired in one step")
            _, _, thing = item
            if isinstance(thing, Timer):
                self.fire_timer(thing, until)
            else:
                self.fire_approval_timeout(thing, until)

    def next_due_item(self, until: dt.datetime | None = None
                      ) -> tuple[dt.datetime, tuple[Any, ...], Timer | PendingApproval] | None:
        """What falls due first (at or before ``until``, if given): by due instant,
        then timers (by priority, declaration, occurrence) before approval timeouts
        (by id)."""
        best: Timer | PendingApproval | None = None
        best_key: tuple[Any, ...] = ()
        for t in self.timers:
            due = t.due_at
            if due is None or (until is not None and due > until):
                continue
            if best is None or due <= best_key[0]:
                key = (due, 0, t.priority, t.index, t.occurrence, "")
                if best is None or key < best_key:
                    best, best_key = t, key
        for a in self.approvals:
            if until is not None and a.due_at > until:
                continue
            if best is None or a.due_at <= best_key[0]:
                key = (a.due_at, 1, 0, 0, 0, a.id)
                if best is None or key < best_key:
                    best, best_key = a, key
        if best is None:
            return None
        return best_key[0], best_key[1:], best

    def fire_timer(self, timer: Timer, until: dt.datetime) -> None:
        assert timer.due_at is not None
        d = self.program.deadline_by_name[timer.deadline]
        if timer.provisional:
            raise Fault(_provisional_message(timer, self.calendar), d.span)
        self.drop_timer(timer)
        now = timer.due_at
        today = legal_date(now, self.calendar)
        frame = self.frame(today, now)
        try:
            d.body(frame)  # a goto ends the rule: frame.goto
        except RuntimeFault as exc:
            raise Fault(f"deadline `{d.name}`: {exc.message}", exc.span or d.span) from exc
        late = until - now if until > now else None
        try:
            self.apply(frame, "deadline", d.name, d.span, d.cite, now, None, late)
            if d.kind == "every" and self.state in d.states and frame.goto is None:
                note = self.arm(d, frame, occurrence=timer.occurrence + 1,
                                anchor_override=timer.anchor)
                if note is not None:
                    last = self.explanations[-1]
                    self.explanations[-1] = _with_armed(last, note)
        except RuntimeFault as exc:
            raise Fault(f"deadline `{d.name}`: {exc.message}", exc.span or d.span) from exc

    def fire_approval_timeout(self, approval: PendingApproval, until: dt.datetime) -> None:
        self.approvals.remove(approval)
        site = self.program.approval_sites[approval.site]
        now = approval.due_at
        frame = self.frame(legal_date(now, self.calendar), now, dict(approval.payload))
        self.effects.append(ApprovalEffect(approval.id, "timeout", approval.action,
                                           approval.role))
        try:
            site.on_timeout(frame)
            self.apply(frame, kind="approval_timeout", subject=approval.id, span=site.span,
                       cite=approval.cite, at=now, late_by=until - now if until > now else None,
                       event=approval.event)
        except RuntimeFault as exc:
            raise Fault(f"approval {approval.id} timeout: {exc.message}",
                        exc.span or site.span) from exc


def _provisional_message(timer: Timer, calendar: Calendar) -> str:
    """Why a provisional timer that fell due does not fire (see :meth:`_Work.fire_timer`)."""
    assert timer.last_day is not None
    day = timer.last_day
    years = (str(calendar.first_year) if calendar.first_year == calendar.last_year
             else f"{calendar.first_year}\u2013{calendar.last_year}")
    return (f"deadline `{timer.deadline}` was armed provisionally: its nominal last day "
            f"{day.isoformat()} lies outside calendar {calendar.version} (covers {years}), so "
            "whether that day is a holiday (and the period runs on) is not known; it does not "
            f"fire on that guess. Load the calendar covering {day.year} (the court's holiday "
            "notice for that year), move the instance to it (recalendar: the deadline is "
            "recomputed with the holiday extension), then resolve this fault")


def _vars_after(names: tuple[str, ...], old: tuple[tuple[str, Value], ...],
                values: dict[str, Value],
                set_names: Sequence[str]) -> tuple[tuple[str, Value], ...]:
    """The state's variables, in declaration order: ``values`` (the old ones changed
    only by the ``set`` of ``set_names``).  The pairs of the variables that kept their
    value object are reused from ``old`` when it is in declaration order already."""
    if len(old) != len(names) or not all(map(is_, map(_first, old), names)):
        return tuple(zip(names, map(values.__getitem__, names), strict=True))
    if set_names:
        pairs = list(old)
        for name in set_names:
            i = names.index(name)
            value = values[name]
            if pairs[i][1] is not value:
                pairs[i] = (names[i], value)
        old = tuple(pairs)
    return old


def _with_armed(e: Explanation, note: DeadlineNote) -> Explanation:
    """``e`` with ``note`` added to the deadlines it armed."""
    return _make_explanation(
        e.kind, e.subject, e.rule_span, e.cite, e.from_state, e.to_state, e.at, e.by_role,
        e.late_by, e.changes, e.actions, e.approvals, (*e.armed, note), e.disarmed, e.periods,
        e.lapsed, e.detail, e.zone,
    )


def _whole(n: Value, span: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise RuntimeFault(f"a period length must be a whole number >= 0, not {n!r}", span)
    return n


def _payload(program: Program, event: Event) -> dict[str, Value]:
    """The event's payload as values, or :class:`Rejected` saying what is wrong."""
    raw = event.payload
    fields = program.event_fields[event.name]
    if not isinstance(raw, dict):
        raise Rejected("bad_payload", "the payload must be a JSON object")
    names = [f for f, _ in fields]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise Rejected("bad_payload", f"event `{event.name}` has no field(s) {', '.join(unknown)}"
                       f"; its fields: {', '.join(names) or 'none'}")
    missing = [f for f in names if f not in raw]
    if missing:
        raise Rejected("bad_payload", f"missing field(s): {', '.join(missing)}")
    try:
        return {f: from_json(raw[f], t, program.types, f) for f, t in fields}
    except ValueError_ as exc:
        raise Rejected("bad_payload", str(exc)) from exc


def _create(program: Program, calendar: Calendar, inp: Create) -> StepResult:
    raw = inp.terms
    if not isinstance(raw, dict):
        raise Rejected("bad_terms", "terms must be a JSON object")
    names = [n for n, _ in program.term_types]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise Rejected("bad_terms", f"unknown term(s): {', '.join(unknown)}")
    missing = [n for n in names if n not in raw]
    if missing:
        raise Rejected("bad_terms", f"missing term(s): {', '.join(missing)}")
    try:
        terms = {n: from_json(raw[n], t, program.types, n) for n, t in program.term_types}
    except ValueError_ as exc:
        raise Rejected("bad_terms", str(exc)) from exc
    today = legal_date(inp.at, calendar)
    blank = InstanceState(inp.instance_id, program.contract_id, calendar.version,
                          program.initial_state, 0, inp.at, tuple(terms.items()), ())
    work = _Work(program, calendar, blank)
    frame = work.frame(today, inp.at)
    try:
        for name, init in program.var_inits:
            work.vars[name] = init(frame)
        work.state = ""  # entering the initial state arms its deadlines
        armed, _ = work.enter(program.initial_state, frame, reentry=False)
    except RuntimeFault as exc:
        raise Rejected("runtime_fault", str(exc)) from exc
    work.explanations.append(Explanation(
        kind="create", subject=inp.instance_id, rule_span=program.ir.get("span", ""),
        cite=None, from_state=None, to_state=work.state, at=inp.at, armed=tuple(armed),
        zone=calendar.timezone,
    ))
    return StepResult(work.finish(program.contract_id, work.calendar_version),
                      tuple(work.effects), tuple(work.explanations))


def _run_event_rule(program: Program, current: str, inp: Event,
                    frame: Frame) -> CompiledTransition:
    """Choose the rule for ``inp`` in state ``current`` (the first whose guard holds,
    in firing order) and run it on ``frame``; a ``goto`` ends it."""
    candidates = program.transitions.get((inp.name, current), ())
    if not candidates:
        if current in program.terminal:
            raise Rejected("terminal", f"the instance has ended (state `{current}`)")
        raise Rejected("not_allowed_in_state",
                       f"event `{inp.name}` is not accepted in state `{current}`")
    chosen = None
    for t in candidates:
        if t.guard is None or t.guard(frame):
            chosen = t
            break
    if chosen is None:
        spans = ", ".join(t.span for t in candidates)
        raise Rejected("no_rule_applies",
                       f"event `{inp.name}` in state `{current}`: no rule's condition holds "
                       f"(rules at {spans})")
    chosen.body(frame)  # a goto ends the rule: frame.goto
    return chosen


def _event(work: _Work, program: Program, inp: Event, payload: dict[str, Value]) -> None:
    at = inp.at
    today = legal_date(at, work.calendar)
    frame = _frame(work.terms, work.vars, today, at, work.calendar, payload, work.event_dates,
                   work.event_payloads, work.frame_deadline_days())
    try:
        chosen = _run_event_rule(program, work.state, inp, frame)
        if inp.name in program.remembered_events:
            work.event_dates[inp.name] = today
            work.event_payloads[inp.name] = dict(payload)
            work.memory_changed = True
        work.apply(frame, "event", inp.name, chosen.span, chosen.cite, at, inp.role, None,
                   inp.name)
        if inp.name in program.anchor_events:
            _arm_waiting(work, program, inp.name, frame)
    except RuntimeFault as exc:
        raise Rejected("runtime_fault", str(exc)) from exc


def _plain_event(program: Program, calendar: Calendar, state: InstanceState, inp: Event,
                 payload: dict[str, Value]) -> StepResult:
    """An event when nothing falls due, no approval is pending and no timing reads
    the event: the usual case.  The same result as the general path (``_Work``,
    :func:`_event`), which takes over as soon as the rule does anything else than
    set variables and trigger actions (a ``goto``, an approval, a period operation).
    """
    at = inp.at
    current = state.state
    frame = _new_object(Frame)  # as _frame() makes it
    # terms_mapping and _local_day, their usual hits written in place (no call)
    terms = state.terms
    hit = _TERMS.get(id(terms))
    frame.terms = hit[1] if hit is not None and hit[0] is terms else terms_mapping(terms)
    frame.vars = dict(state.vars)
    zone = calendar.timezone
    day = _DAY_SLOT.get(zone)
    frame.today = day[2] if day is not None and day[0] <= at < day[1] \
        else _local_day(at, zone)
    frame.now = at
    frame.calendar = calendar
    frame.payload = payload
    # (this event is not remembered: nothing here writes to the events' memory)
    frame.event_dates = dict(state.event_dates) if state.event_dates else _NOTHING
    frame.event_payloads = (
        {k: dict(v) for k, v in state.event_payloads} if state.event_payloads else _NOTHING)
    frame.deadline_days = dict(state.deadline_days) if program.reads_deadline_days \
        else _NOTHING
    frame.entering = None
    frame.log = []
    frame.goto = None
    try:
        # _run_event_rule, in place: the first rule whose guard holds
        for chosen in program.rules_by_event.get(inp.name, _NOTHING).get(current, ()):
            if chosen.guard is None or chosen.guard(frame):
                break
        else:
            chosen = _run_event_rule(program, current, inp, frame)  # refuses: says why
        chosen.body(frame)  # a goto ends the rule: frame.goto
    except RuntimeFault as exc:
        raise Rejected("runtime_fault", str(exc)) from exc
    cite = chosen.cite
    seq = state.seq + 1
    changes: list[tuple[str, Value, Value]] = []
    actions: list[tuple[str, tuple[tuple[str, Value], ...]]] = []
    effects: list[Effect] = []
    set_names: list[str] = []
    plain = frame.goto is None
    if plain:
        for entry in frame.log:
            tag = entry[0]
            if tag == "set":
                if entry[2] != entry[3]:
                    changes.append(entry[1:])
                set_names.append(entry[1])
            elif tag == "do":
                site = program.approval_sites[entry[1]]
                key = f"{state.instance_id}:{seq}:{len(effects) + 1}"
                effects.append(_make_action(key, site.action, entry[2], cite, site.span))
                actions.append((site.action, entry[2]))
            else:
                plain = False
                break
    if not plain:  # the general path, from where the rule left off
        work = _Work(program, calendar, state)
        work.clock = at
        work.terms, work.vars = frame.terms, frame.vars
        work.event_dates = frame.event_dates  # type: ignore[assignment]
        work.event_payloads = frame.event_payloads  # type: ignore[assignment]
        if program.reads_deadline_days:
            work._deadline_days = frame.deadline_days  # type: ignore[assignment]
        try:
            work.apply(frame, kind="event", subject=inp.name, span=chosen.span, cite=cite,
                       at=at, by_role=inp.role, event=inp.name)
        except RuntimeFault as exc:
            raise Rejected("runtime_fault", str(exc)) from exc
        return _make_result(work.finish(program.contract_id, work.calendar_version),
                            tuple(work.effects), tuple(work.explanations))
    explanation = _make_explanation(
        "event", inp.name, chosen.span, cite, current, current, at, inp.role, None,
        tuple(changes), tuple(actions), (), (), (), (), (), "", calendar.timezone,
    )
    new_vars = _vars_after(program.var_names, state.vars, frame.vars, set_names)
    slot = _VERSION_SLOT[0]  # _calendar_version, its usual hit in place
    new_state = _make_state(
        state.instance_id, program.contract_id,
        slot[1] if slot[0] is calendar else _calendar_version(calendar), current, seq, at,
        state.terms if state.terms else tuple(frame.terms.items()),
        new_vars, state.timers, (), state.event_dates, state.event_payloads,
        state.deadline_days,
    )
    return _make_result(new_state, tuple(effects), (explanation,))


def _plain_tick(program: Program, calendar: Calendar, state: InstanceState, at: dt.datetime,
                timer: Timer) -> StepResult:
    """A tick when exactly one timer falls due and no approval is pending: the same
    result as the general path (``_Work.fire_due``), which takes over from where
    the deadline's rule left off if it does more than set variables and trigger
    actions, or if the deadline repeats."""
    d = program.deadline_by_name[timer.deadline]
    now = timer.due_at
    assert now is not None
    frame = _new_object(Frame)  # as _Work.frame() makes it
    # terms_mapping and _local_day, their usual hits written in place (no call)
    terms = state.terms
    hit = _TERMS.get(id(terms))
    frame.terms = hit[1] if hit is not None and hit[0] is terms else terms_mapping(terms)
    frame.vars = dict(state.vars)
    zone = calendar.timezone
    day = _DAY_SLOT.get(zone)
    frame.today = day[2] if day is not None and day[0] <= now < day[1] \
        else _local_day(now, zone)
    frame.now = now
    frame.calendar = calendar
    frame.payload = {}
    # (a tick remembers no event: nothing on its path writes to the events' memory)
    frame.event_dates = dict(state.event_dates) if state.event_dates else _NOTHING
    frame.event_payloads = (
        {k: dict(v) for k, v in state.event_payloads} if state.event_payloads else _NOTHING)
    frame.deadline_days = dict(state.deadline_days) if program.reads_deadline_days \
        else _NOTHING
    frame.entering = None
    frame.log = []
    frame.goto = None
    try:
        d.body(frame)  # a goto ends the rule: frame.goto
    except RuntimeFault as exc:
        raise Fault(f"deadline `{d.name}`: {exc.message}", exc.span or d.span) from exc
    late = at - now if at > now else None
    seq = state.seq + 1
    changes: list[tuple[str, Value, Value]] = []
    actions: list[tuple[str, tuple[tuple[str, Value], ...]]] = []
    effects: list[Effect] = []
    set_names: list[str] = []
    plain = frame.goto is None and d.kind != "every"
    if plain:
        for entry in frame.log:
            tag = entry[0]
            if tag == "set":
                if entry[2] != entry[3]:
                    changes.append(entry[1:])
                set_names.append(entry[1])
            elif tag == "do":
                site = program.approval_sites[entry[1]]
                key = f"{state.instance_id}:{seq}:{len(effects) + 1}"
                effects.append(_make_action(key, site.action, entry[2], d.cite, site.span))
                actions.append((site.action, entry[2]))
            else:
                plain = False
                break
    if not plain:  # the general path, from where the rule left off (as fire_timer)
        work = _Work(program, calendar, state)
        work.clock = at
        work.terms, work.vars = frame.terms, frame.vars
        work.event_dates = frame.event_dates  # type: ignore[assignment]
        work.event_payloads = frame.event_payloads  # type: ignore[assignment]
        if program.reads_deadline_days:
            work._deadline_days = frame.deadline_days  # type: ignore[assignment]
        work.drop_timer(timer)
        try:
            work.apply(frame, "deadline", d.name, d.span, d.cite, now, None, late)
            if d.kind == "every" and work.state in d.states and frame.goto is None:
                note = work.arm(d, frame, occurrence=timer.occurrence + 1,
                                anchor_override=timer.anchor)
                if note is not None:
                    work.explanations[-1] = _with_armed(work.explanations[-1], note)
        except RuntimeFault as exc:
            raise Fault(f"deadline `{d.name}`: {exc.message}", exc.span or d.span) from exc
        work.fire_due(at)  # what else falls due by now (a deadline armed in the past)
        return _make_result(work.finish(program.contract_id, work.calendar_version),
                            tuple(work.effects), tuple(work.explanations))
    current = state.state
    explanation = _make_explanation(
        "deadline", d.name, d.span, d.cite, current, current, now, None, late,
        tuple(changes), tuple(actions), (), (), (), (), (), "", calendar.timezone,
    )
    remaining = [t for t in state.timers if t is not timer]
    slot = _VERSION_SLOT[0]  # _calendar_version, its usual hit in place
    new_state = _make_state(
        state.instance_id, program.contract_id,
        slot[1] if slot[0] is calendar else _calendar_version(calendar), current, seq, at,
        state.terms if state.terms else tuple(frame.terms.items()),
        _vars_after(program.var_names, state.vars, frame.vars, set_names),
        tuple(sorted(remaining, key=lambda t: (t.due_at is None, t.due_at or at, t.priority,
                                               t.index, t.occurrence)))
        if len(remaining) > 1 else tuple(remaining),
        (), state.event_dates, state.event_payloads, state.deadline_days,
    )
    return _make_result(new_state, tuple(effects), (explanation,))


def _arm_waiting(work: _Work, program: Program, event: str, frame: Frame) -> None:
    """Arm the timers that were waiting for ``event`` (their anchor) to occur."""
    waiting = [t for t in work.timers
               if t.due_at is None and t.suspended_on is None
               and program.deadline_by_name[t.deadline].anchor_event == event]
    for waiting_timer in waiting:
        work.drop_timer(waiting_timer)
        note = work.arm(program.deadline_by_name[waiting_timer.deadline], frame,
                        waiting_timer.occurrence)
        if note is not None:
            work.explanations[-1] = _with_armed(work.explanations[-1], note)


def _decision(work: _Work, program: Program, inp: Decision) -> None:
    approval = next((a for a in work.approvals if a.id == inp.approval_id), None)
    if approval is None:
        raise Rejected("unknown_approval",
                       f"no pending approval `{inp.approval_id}` (decided, lapsed or unknown)")
    if inp.role != approval.role:
        raise Rejected("role_not_allowed",
                       f"approval `{approval.id}` must be decided by `{approval.role}`, "
                       f"not `{inp.role}`")
    site = program.approval_sites[approval.site]
    work.approvals.remove(approval)
    frame = work.frame(legal_date(inp.at, work.calendar), inp.at, dict(approval.payload))
    status: Literal["approved", "rejected"] = "approved" if inp.approve else "rejected"
    work.effects.append(ApprovalEffect(approval.id, status, approval.action, approval.role,
                                       inp.reason))
    pre: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...] = ()
    try:
        if inp.approve:
            work.effects.append(ActionEffect(work.next_key(), approval.action, approval.args,
                                             approval.cite, site.span))
            pre = ((approval.action, approval.args),)
            site.on_approved(frame)
        else:
            site.on_rejected(frame)
        work.apply(frame, kind="approval", subject=approval.id, span=site.span,
                   cite=approval.cite, at=inp.at, by_role=inp.role, event=approval.event,
                   detail=f"{status}: {inp.reason}" if inp.reason else status, pre_actions=pre)
    except RuntimeFault as exc:
        raise Rejected("runtime_fault", str(exc)) from exc


def arm_deadlines(program: Program, calendar: Calendar, state: InstanceState,
                  names: Sequence[str], today: dt.date,
                  now: dt.datetime) -> tuple[InstanceState, tuple[DeadlineNote | None, ...]]:
    """Arm the deadlines ``names`` of ``program`` on ``state``, as entering its state does.

    Each is computed exactly as :func:`step` computes it when the instance
    enters its state on ``today`` (legal day) at ``now``: the same anchor,
    period arithmetic, calendar extension and due instant.  Returns the state
    with the new timers appended after the existing ones (in the order of
    ``names``; not re-sorted) and their last days remembered, and one note per
    name saying how its date was computed (``None``: nothing to arm, e.g. a
    repetition past its limit).  Used by the runtime to re-arm deadlines when
    a running instance moves to another contract version
    (:mod:`engine.runtime.carry`).  Pure; raises
    :class:`~engine.program.RuntimeFault` (naming the deadline) when one
    cannot be computed, and ``KeyError`` for a name ``program`` lacks.
    """
    work = _Work(program, calendar, state)
    frame = work.frame(today, now)
    frame.entering = today
    notes = tuple(work.arm(program.deadline_by_name[name], frame) for name in names)
    new = _make_state(
        state.instance_id, state.contract_id, state.calendar_version, state.state, state.seq,
        state.clock, state.terms, state.vars, tuple(work.timers), state.approvals,
        state.event_dates, state.event_payloads, tuple(sorted(work.deadline_days.items())))
    return new, notes


def recompute_provisional(program: Program, calendar: Calendar, state: InstanceState,
                          now: dt.datetime) -> tuple[InstanceState, tuple[
                              tuple[Timer, Timer | None, DeadlineNote | None], ...]]:
    """Move ``state`` to ``calendar`` (a newer version of its calendar): recompute
    every provisional timer from its stored anchor and occurrence, as arming it did.

    A provisional timer (its last day lay beyond the old calendar's years; see
    :meth:`_Work.arm`) is armed again under ``calendar`` with its anchor and
    occurrence: the holiday extension now applies, or it stays provisional if
    its last day is still beyond.  A suspended one (no due instant) and every
    other timer are kept as they are.  Returns the state at ``now`` (seq + 1,
    ``calendar_version`` the new one, timers sorted as :func:`step` sorts
    them) and, per provisional timer, ``(old, new or None, note)`` (``None``:
    a repetition past its limit under the new calendar).  Pure; raises
    :class:`~engine.program.RuntimeFault` (naming the deadline) when one
    cannot be recomputed or its nominal last day would change (its period
    length now evaluates differently than when it was armed).
    """
    work = _Work(program, calendar, state)
    clock = max(now, state.clock)
    frame = work.frame(legal_date(clock, calendar), clock)
    moved: list[tuple[Timer, Timer | None, DeadlineNote | None]] = []
    for old in state.timers:
        if not old.provisional or old.due_at is None or old.anchor is None:
            continue
        d = program.deadline_by_name[old.deadline]
        work.drop_timer(old)
        note = work.arm(d, frame, occurrence=old.occurrence, anchor_override=old.anchor)
        new = work.timers[-1] if note is not None else None
        if new is not None and new.nominal_last_day != old.nominal_last_day:
            raise RuntimeFault(
                f"deadline `{d.name}`: recomputed, its nominal last day would be "
                f"{new.nominal_last_day}, not {old.nominal_last_day} as armed (its period "
                "now evaluates differently)", d.span)
        moved.append((old, new, note))
    timers = tuple(sorted(work.timers, key=lambda t: (
        t.due_at is None, t.due_at or clock, t.priority, t.index, t.occurrence)))
    new_state = _make_state(
        state.instance_id, state.contract_id, work.calendar_version, state.state,
        state.seq + 1, clock, state.terms, state.vars, timers, state.approvals,
        state.event_dates, state.event_payloads, tuple(sorted(work.deadline_days.items())))
    return new_state, tuple(moved)


def step(program: Program, calendar: Calendar, state: InstanceState | None,
         inp: Input) -> StepResult:
    """Apply one input to an instance.  Pure and deterministic.

    Raises :class:`Rejected` (nothing changed) for inputs that are not allowed,
    and :class:`Fault` when a due deadline cannot be evaluated.
    """
    if isinstance(inp, Create):
        if state is not None:
            raise Rejected("exists", f"instance `{state.instance_id}` already exists")
        return _create(program, calendar, inp)
    if state is None:
        raise Rejected("no_instance", "the instance does not exist")
    if state.contract_id != program.contract_id:
        raise Rejected("wrong_contract", "the state belongs to another contract version")
    at = inp.at
    if at < state.clock:
        raise Rejected("out_of_order",
                       f"input at {at.isoformat()} is earlier than the instance's last "
                       f"input at {state.clock.isoformat()}")
    # Does anything fall due at or before ``at``?  (Then it fires first.)
    # (datetimes are true; a timer without a due instant has None)
    due = 0  # timers due (up to two: more need not be counted)
    first_due: Timer | None = None
    for t in state.timers:
        due_at = t.due_at
        if due_at is not None and due_at <= at:
            due += 1
            if first_due is not None:
                break
            first_due = t
    if state.approvals and any(a.due_at <= at for a in state.approvals):
        due += 2
    if isinstance(inp, Event):
        name = inp.name
        spec = program.events.get(name)
        if spec is None:
            raise Rejected("unknown_event", f"contract `{program.name}` has no event `{name}`")
        if inp.role not in spec["by"]:
            raise Rejected("role_not_allowed", f"event `{name}` may be submitted by "
                           f"{', '.join(spec['by'])}, not by `{inp.role}`")
        # refuse a bad payload before anything else
        payload = program.payload_parsers[name](inp.payload)
        if payload is None:
            payload = _payload(program, inp)
        if not due and not state.approvals and name not in program.remembered_events \
                and name not in program.anchor_events:
            return _plain_event(program, calendar, state, inp, payload)
        work = _Work(program, calendar, state)
        work.clock = at
        if due:
            work.fire_due(at)
        _event(work, program, inp, payload)
    else:
        # (a provisional timer takes the general path, which refuses to fire it)
        if due == 1 and not state.approvals and inp.__class__ is Tick \
                and not first_due.provisional:  # type: ignore[union-attr]
            return _plain_tick(program, calendar, state, at, first_due)  # type: ignore[arg-type]
        work = _Work(program, calendar, state)
        work.clock = at
        if due:
            work.fire_due(at)
        if isinstance(inp, Decision):
            _decision(work, program, inp)
        elif not work.explanations:
            raise Rejected("nothing_due", "nothing falls due at or before that instant")
    return _make_result(work.finish(program.contract_id, work.calendar_version),
                        tuple(work.effects), tuple(work.explanations))
