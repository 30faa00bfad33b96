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
from dataclasses import dataclass
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
from engine.explain import DeadlineNote, Explanation
from engine.program import CompiledDeadline, Frame, Program, RuntimeFault, run_rule
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
    Timer,
)
from engine.values import Value, ValueError_, from_json

__all__ = ["MAX_FIRINGS_PER_STEP", "Fault", "Rejected", "StepResult", "legal_date", "step"]

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
    """A deadline or approval timeout could not be evaluated: needs a person."""

    def __init__(self, message: str, span: str = "") -> None:
        self.span = span
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class StepResult:
    state: InstanceState
    effects: tuple[Effect, ...]
    explanations: tuple[Explanation, ...]


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def legal_date(instant: dt.datetime, calendar: Calendar) -> dt.date:
    """The court-local calendar day an instant falls on."""
    return instant.astimezone(_zone(calendar.timezone)).date()


def _start_of_day(day: dt.date, calendar: Calendar) -> dt.datetime:
    """00:00 court-local time of ``day``, as a UTC instant (``before`` timings)."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=_zone(calendar.timezone)).astimezone(dt.UTC)


def _end_of_day(day: dt.date, calendar: Calendar) -> dt.datetime:
    """24:00 court-local time of ``day``, as a UTC instant."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0),
                                   tzinfo=_zone(calendar.timezone))
    return midnight.astimezone(dt.UTC)


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
    """The mutable working copy of one step (never escapes :func:`step`)."""

    def __init__(self, program: Program, calendar: Calendar, state: InstanceState) -> None:
        self.program = program
        self.calendar = calendar
        self.original = state
        self.instance_id = state.instance_id
        self.state = state.state
        self.seq = state.seq + 1
        self.clock = state.clock
        self.terms = dict(state.terms)
        self.vars = dict(state.vars)
        self.timers = list(state.timers)
        self.approvals = list(state.approvals)
        self.event_dates = dict(state.event_dates)
        self.event_payloads = {k: dict(v) for k, v in state.event_payloads}
        self.deadline_days = dict(state.deadline_days)
        self.effects: list[Effect] = []
        self.explanations: list[Explanation] = []
        self.counter = 0
        # which parts changed (the rest of the state is reused as it was)
        self.timers_changed = False
        self.memory_changed = False

    # --- building blocks ---------------------------------------------------------
    def frame(self, today: dt.date, now: dt.datetime,
              payload: dict[str, Value] | None = None) -> Frame:
        return Frame(
            terms=self.terms,
            vars=self.vars,
            today=today,
            now=now,
            calendar=self.calendar,
            payload=payload or {},
            event_dates=self.event_dates,
            event_payloads=self.event_payloads,
            deadline_days=self.deadline_days,
        )

    def next_key(self) -> str:
        self.counter += 1
        return f"{self.instance_id}:{self.seq}:{self.counter}"

    def finish(self, contract_id: str, calendar_version: str) -> InstanceState:
        old = self.original
        timers_changed = self.timers_changed or len(self.timers) != len(old.timers) or any(
            a is not b for a, b in zip(self.timers, old.timers, strict=True))
        timers = tuple(sorted(
            self.timers,
            key=lambda t: (t.due_at is None, t.due_at or self.clock, t.priority, t.index,
                           t.occurrence),
        )) if timers_changed else old.timers
        if self.memory_changed:
            event_dates = tuple(sorted(self.event_dates.items()))
            event_payloads = tuple(sorted((k, tuple(v.items()))
                                          for k, v in self.event_payloads.items()))
            deadline_days = tuple(sorted(self.deadline_days.items()))
        else:
            event_dates, event_payloads = old.event_dates, old.event_payloads
            deadline_days = old.deadline_days
        return InstanceState(
            instance_id=self.instance_id,
            contract_id=contract_id,
            calendar_version=calendar_version,
            state=self.state,
            seq=self.seq,
            clock=self.clock,
            terms=old.terms if old.terms else tuple(self.terms.items()),
            vars=tuple((name, self.vars[name]) for name, _ in self.program.var_inits),
            timers=timers,
            approvals=tuple(self.approvals),
            event_dates=event_dates,
            event_payloads=event_payloads,
            deadline_days=deadline_days,
        )

    # --- deadlines ---------------------------------------------------------------
    def arm(self, d: CompiledDeadline, frame: Frame, occurrence: int = 1,
            anchor_override: dt.date | None = None) -> DeadlineNote | None:
        """Compute a deadline's last day and add its timer (None: nothing to arm)."""
        cal = self.calendar
        today = frame.today
        try:
            if d.anchor_event is not None and anchor_override is None \
                    and d.anchor_event not in self.event_dates:
                self.timers.append(Timer(d.name, d.index, d.priority, None, occurrence,
                                         None, None, None))
                return DeadlineNote(d.name, d.title, None, None, None, cal.version,
                                    waiting_for=d.anchor_event)
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
                    computation = period_start_before(anchor, amount, unit, cal)
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
                    computation = period_end(anchor, amount, unit, cal)
                    nominal, last = computation.nominal_end, computation.end
            except DateOutsideCalendar:
                if d.kind == "before":
                    raise
                total = amount * occurrence if d.kind == "every" else amount
                nominal = last = _nominal(anchor, total, unit)
                computation = _Nominal(anchor, total, unit, nominal)
                provisional = True
        except (RuntimeFault, ValueError) as exc:
            raise RuntimeFault(f"deadline `{d.name}` cannot be computed: {exc}", d.span) from exc
        # A reminder ("N days before X") is due at the start of its day; every other
        # period has run out at 24:00 of its last day.
        due = _start_of_day(last, cal) if d.kind == "before" else _end_of_day(last, cal)
        self.timers.append(Timer(d.name, d.index, d.priority, anchor, occurrence, nominal,
                                 last, due, provisional=provisional))
        self.deadline_days[d.name] = last
        self.memory_changed = True
        return DeadlineNote(d.name, d.title, last, due, computation, cal.version,
                            provisional=provisional)

    def enter(self, new_state: str, frame: Frame, reentry: bool) -> tuple[
            list[DeadlineNote], list[str]]:
        """Move to ``new_state``: disarm and arm deadlines; lapse stale approvals."""
        program = self.program
        old = self.state
        disarmed: list[str] = []
        kept: list[Timer] = []
        for t in self.timers:
            states = program.deadline_by_name[t.deadline].states
            if new_state not in states or (reentry and new_state in states):
                disarmed.append(t.deadline)
            else:
                kept.append(t)
        self.timers = kept
        self.state = new_state
        armed: list[DeadlineNote] = []
        for d in program.deadlines:
            if new_state in d.states and (reentry or old is None or old not in d.states):
                note = self.arm(d, frame)
                if note is not None:
                    armed.append(note)
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
            self.timers.remove(timer)
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
            return None
        # resume
        if timer.suspended_on is None or timer.remaining is None:
            return None
        if d.unit is PeriodUnit.WORKING_DAYS:
            nominal = cal.add_working_days(today, timer.remaining)
        else:
            nominal = today + dt.timedelta(days=timer.remaining)
        computation = period_end(nominal, 0, PeriodUnit.DAYS, cal)
        last = computation.end
        due = _end_of_day(last, cal)
        self.timers[self.timers.index(timer)] = Timer(
            timer.deadline, timer.index, timer.priority, timer.anchor, timer.occurrence,
            nominal, last, due,
        )
        self.deadline_days[name] = last
        self.memory_changed = True
        return DeadlineNote(name, d.title, last, due, computation, cal.version)

    # --- running a rule ----------------------------------------------------------
    def apply(self, frame: Frame, *, kind: Any, subject: str, span: str, cite: str | None,
              at: dt.datetime, by_role: str | None = None, late_by: dt.timedelta | None = None,
              event: str | None = None, detail: str = "",
              pre_actions: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...] = ()
              ) -> None:
        """Turn what a rule did (``frame.log``, ``frame.goto``) into state and effects."""
        from_state = self.state
        changes: list[tuple[str, Value, Value]] = []
        actions: list[tuple[str, tuple[tuple[str, Value], ...]]] = list(pre_actions)
        requested: list[tuple[str, int, tuple[tuple[str, Value], ...]]] = []
        periods: list[tuple[str, str]] = []
        armed: list[DeadlineNote] = []
        sites = self.program.approval_sites
        for entry in frame.log:
            tag = entry[0]
            if tag == "set":
                if entry[2] != entry[3]:
                    changes.append((entry[1], entry[2], entry[3]))
            elif tag == "do":
                site = sites[entry[1]]
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
            site = sites[site_no]
            within = _whole(site.within_amount(frame), site.span)
            computation = period_end(frame.today, within, site.within_unit, self.calendar)
            due = _end_of_day(computation.end, self.calendar)
            payload = tuple(frame.payload.items())
            self.approvals.append(PendingApproval(
                key, site_no, site.action, args, site.role, self.state, frame.today,
                computation.end, due, event, payload, cite,
            ))
            self.effects.append(ApprovalEffect(key, "requested", site.action, site.role))
            approvals_out.append((key, site.action, site.role))
        lapsed = self.lapse_approvals()
        self.explanations.append(Explanation(
            kind=kind, subject=subject, rule_span=span, cite=cite, from_state=from_state,
            to_state=self.state, at=at, by_role=by_role, late_by=late_by,
            changes=tuple(changes), actions=tuple(actions), approvals=tuple(approvals_out),
            armed=tuple(armed), disarmed=tuple(disarmed), periods=tuple(periods),
            lapsed=tuple(lapsed), detail=detail, zone=self.calendar.timezone,
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
            item = self.next_due_item()
            if item is None or item[0] > until:
                return
            fired += 1
            if fired > MAX_FIRINGS_PER_STEP:
                raise Fault(f"more than {MAX_FIRINGS_PER_STEP} deadlines fired in one step")
            _, _, thing = item
            if isinstance(thing, Timer):
                self.fire_timer(thing, until)
            else:
                self.fire_approval_timeout(thing, until)

    def next_due_item(self) -> tuple[dt.datetime, tuple[Any, ...], Timer | PendingApproval] | None:
        best: tuple[dt.datetime, tuple[Any, ...], Timer | PendingApproval] | None = None
        for t in self.timers:
            if t.due_at is not None:
                key = (t.due_at, (0, t.priority, t.index, t.occurrence, ""))
                if best is None or key < (best[0], best[1]):
                    best = (key[0], key[1], t)
        for a in self.approvals:
            key = (a.due_at, (1, 0, 0, 0, a.id))
            if best is None or key < (best[0], best[1]):
                best = (key[0], key[1], a)
        return best

    def fire_timer(self, timer: Timer, until: dt.datetime) -> None:
        assert timer.due_at is not None
        d = self.program.deadline_by_name[timer.deadline]
        self.timers.remove(timer)
        now = timer.due_at
        today = legal_date(now, self.calendar)
        frame = self.frame(today, now)
        try:
            run_rule(d.body, frame)
        except RuntimeFault as exc:
            raise Fault(f"deadline `{d.name}`: {exc}", exc.span or d.span) from exc
        late = until - now if until > now else None
        try:
            self.apply(frame, kind="deadline", subject=d.name, span=d.span, cite=d.cite, at=now,
                       late_by=late)
            if d.kind == "every" and self.state in d.states and frame.goto is None:
                note = self.arm(d, frame, occurrence=timer.occurrence + 1,
                                anchor_override=timer.anchor)
                if note is not None:
                    last = self.explanations[-1]
                    self.explanations[-1] = _with_armed(last, note)
        except RuntimeFault as exc:
            raise Fault(f"deadline `{d.name}`: {exc}", exc.span or d.span) from exc

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
            raise Fault(f"approval {approval.id} timeout: {exc}", exc.span or site.span) from exc


def _with_armed(e: Explanation, note: DeadlineNote) -> Explanation:
    from dataclasses import replace

    return replace(e, armed=(*e.armed, note))


def _whole(n: Value, span: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise RuntimeFault(f"a period length must be a whole number >= 0, not {n!r}", span)
    return n


def _payload(program: Program, event: Event) -> dict[str, Value]:
    fields = program.event_fields[event.name]
    raw = event.payload
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
    return StepResult(work.finish(program.contract_id, calendar.version), tuple(work.effects),
                      tuple(work.explanations))


def _event(work: _Work, program: Program, inp: Event, payload: dict[str, Value]) -> None:
    state = work.state
    candidates = program.transitions.get((inp.name, state), ())
    if not candidates:
        if state in program.terminal:
            raise Rejected("terminal", f"the instance has ended (state `{state}`)")
        raise Rejected("not_allowed_in_state",
                       f"event `{inp.name}` is not accepted in state `{state}`")
    today = legal_date(inp.at, work.calendar)
    frame = work.frame(today, inp.at, payload)
    try:
        chosen = None
        for t in candidates:
            if t.guard is None or t.guard(frame):
                chosen = t
                break
        if chosen is None:
            spans = ", ".join(t.span for t in candidates)
            raise Rejected("no_rule_applies",
                           f"event `{inp.name}` in state `{state}`: no rule's condition holds "
                           f"(rules at {spans})")
        run_rule(chosen.body, frame)
        if inp.name in program.remembered_events:
            work.event_dates[inp.name] = today
            work.event_payloads[inp.name] = dict(payload)
            work.memory_changed = True
        work.apply(frame, kind="event", subject=inp.name, span=chosen.span, cite=chosen.cite,
                   at=inp.at, by_role=inp.role, event=inp.name)
        waiting = [t for t in work.timers
                   if t.due_at is None and t.suspended_on is None
                   and program.deadline_by_name[t.deadline].anchor_event == inp.name]
        for waiting_timer in waiting:
            work.timers.remove(waiting_timer)
            note = work.arm(program.deadline_by_name[waiting_timer.deadline], frame,
                            waiting_timer.occurrence)
            if note is not None:
                work.explanations[-1] = _with_armed(work.explanations[-1], note)
    except RuntimeFault as exc:
        raise Rejected("runtime_fault", str(exc)) from exc


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
    if inp.at < state.clock:
        raise Rejected("out_of_order",
                       f"input at {inp.at.isoformat()} is earlier than the instance's last "
                       f"input at {state.clock.isoformat()}")
    if isinstance(inp, Event):
        spec = program.events.get(inp.name)
        if spec is None:
            raise Rejected("unknown_event", f"contract `{program.name}` has no event "
                           f"`{inp.name}`")
        if inp.role not in spec["by"]:
            raise Rejected("role_not_allowed", f"event `{inp.name}` may be submitted by "
                           f"{', '.join(spec['by'])}, not by `{inp.role}`")
        payload = _payload(program, inp)  # refuse a bad payload before anything else
    work = _Work(program, calendar, state)
    work.clock = inp.at
    work.fire_due(inp.at)
    if isinstance(inp, Event):
        _event(work, program, inp, payload)
    elif isinstance(inp, Decision):
        _decision(work, program, inp)
    elif not work.explanations:
        raise Rejected("nothing_due", "nothing falls due at or before that instant")
    return StepResult(work.finish(program.contract_id, calendar.version), tuple(work.effects),
                      tuple(work.explanations))
