"""Timelines and the runner that plays one through the pure core.

A :class:`Timeline` is the terms, the creation instant and a list of
:class:`Line` s (an event, a decision on the latest pending approval, or the
clock advancing).  :func:`run_timeline` plays it like the service would: before
each line every deadline that fell due fires at its own due instant, then the
line itself is applied.  Each step gives an :class:`Observation`; a refused
input gives one too (state unchanged).  ``drain`` lets time pass at the end
until nothing more falls due before ``horizon``.

:func:`scenario_text` prints a timeline as a scenario an author can paste
into a ``.test.jrule`` file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from contracts_lib.actions import ACTIONS
from contracts_lib.calendar import Calendar
from engine.core import Fault, Rejected, step
from engine.explain import Explanation
from engine.program import Program
from engine.state import (
    ActionEffect,
    ApprovalEffect,
    Create,
    Decision,
    Effect,
    Event,
    Input,
    InstanceState,
    Tick,
)

__all__ = ["Line", "Observation", "Run", "Timeline", "noon", "run_timeline", "scenario_text"]


def noon(day: dt.date, calendar: Calendar) -> dt.datetime:
    """12:00 court time of ``day`` (what a scenario's plain date means), in UTC."""
    local = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(calendar.timezone))
    return local.astimezone(dt.UTC)


@dataclass(frozen=True)
class Line:
    """One line of a timeline."""

    kind: Literal["event", "decide", "advance"]
    at: dt.datetime
    event: str = ""
    role: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    approve: bool = True
    action: str | None = None


@dataclass(frozen=True)
class Timeline:
    terms: Mapping[str, Any]
    start: dt.datetime
    lines: tuple[Line, ...]
    #: let time pass at the end up to this instant (None: stop after the last line)
    horizon: dt.datetime | None = None


@dataclass(frozen=True)
class Observation:
    """The instance after one step (or unchanged, when the input was refused)."""

    label: str
    at: dt.datetime
    state: InstanceState
    effects: tuple[Effect, ...]
    explanations: tuple[Explanation, ...]
    #: actions triggered so far (this step included), by name
    counts: Mapping[str, int]
    input: Input | None
    refused: str | None = None
    line: int | None = None  # index of the timeline line (None: a deadline or the end)
    #: the timeline line whose processing produced this (-1: creation; len(lines): the end)
    group: int = -1

    def actions(self) -> list[ActionEffect]:
        return [e for e in self.effects if isinstance(e, ActionEffect)]

    def extra(self, program: Program) -> dict[str, Any]:
        """The values state names and action names have in tests."""
        out: dict[str, Any] = {"@in:" + s: s == self.state.state for s in program.states}
        for name in ACTIONS:
            out["@count:" + name] = self.counts.get(name, 0)
        return out


@dataclass
class Run:
    observations: list[Observation]
    fault: str | None = None
    fault_at: dt.datetime | None = None
    refused_create: str | None = None
    drained: bool = False

    @property
    def final(self) -> InstanceState | None:
        return self.observations[-1].state if self.observations else None


def _count(counts: dict[str, int], effects: tuple[Effect, ...]) -> dict[str, int]:
    out = dict(counts)
    for e in effects:
        if isinstance(e, ActionEffect):
            out[e.action] = out.get(e.action, 0) + 1
    return out


def _engine_error(exc: Exception) -> str:
    """An exception step() should never raise (it refuses or faults): say which."""
    return f"the engine raised {type(exc).__name__} instead of refusing or faulting: {exc}"


def _pending(state: InstanceState, action: str | None) -> str | None:
    found = [a for a in state.approvals if action is None or a.action == action]
    return found[-1].id if found else None


def run_timeline(program: Program, calendar: Calendar, timeline: Timeline,
                 instance_id: str = "test") -> Run:
    """Play a timeline; never raises for refused inputs or faults (they are recorded)."""
    run = Run([])
    try:
        result = step(program, calendar, None, Create(instance_id, dict(timeline.terms),
                                                       timeline.start))
    except Rejected as exc:
        run.refused_create = f"{exc.code}: {exc.message}"
        return run
    except Fault as exc:  # pragma: no cover - creation fires nothing
        run.fault = exc.message
        return run
    except Exception as exc:  # the engine itself failed: a finding, not a crash
        run.fault = _engine_error(exc)
        return run
    counts = _count({}, result.effects)
    state = result.state
    run.observations.append(Observation("create", timeline.start, state, result.effects,
                                        result.explanations, counts,
                                        Create(instance_id, dict(timeline.terms),
                                               timeline.start)))

    def fire_until(limit: dt.datetime, group: int) -> bool:
        nonlocal state, counts
        while (due := state.next_due()) is not None and due <= limit:
            # a deadline that fell due before the instance's clock (e.g. armed in the
            # past at creation) fires at the next tick, as the service would fire it
            due = max(due, state.clock)
            try:
                res = step(program, calendar, state, Tick(due))
            except Fault as exc:
                run.fault, run.fault_at = f"{exc.message} (at {exc.span})", due
                return False
            except Rejected:  # pragma: no cover - something is due
                return True
            except Exception as exc:  # the engine itself failed: a finding, not a crash
                run.fault, run.fault_at = _engine_error(exc), due
                return False
            state = res.state
            counts = _count(counts, res.effects)
            run.observations.append(Observation("time passes", due, state, res.effects,
                                                res.explanations, counts, Tick(due),
                                                group=group))
        return True

    for index, line in enumerate(timeline.lines):
        if line.at >= state.clock and not fire_until(line.at, index):
            return run
        inp: Input
        if line.kind == "event":
            inp = Event(line.event, line.role, dict(line.payload), line.at, key=f"line-{index}")
            label = f"event {line.event} by {line.role}"
        elif line.kind == "decide":
            target = _pending(state, line.action)
            label = f"{'approve' if line.approve else 'reject'} by {line.role}"
            if target is None:
                run.observations.append(Observation(label, line.at, state, (), (), counts, None,
                                                    "no_approval: nothing awaits a decision",
                                                    index, index))
                continue
            inp = Decision(target, line.role, line.approve, "", line.at)
        else:
            inp = Tick(line.at)
            label = "time passes"
        try:
            res = step(program, calendar, state, inp)
        except Rejected as exc:
            if exc.code != "nothing_due":
                run.observations.append(Observation(label, line.at, state, (), (), counts, inp,
                                                    f"{exc.code}: {exc.message}", index,
                                                    index))
            continue
        except Fault as exc:
            run.fault, run.fault_at = f"{exc.message} (at {exc.span})", line.at
            return run
        except Exception as exc:  # the engine itself failed: a finding, not a crash
            run.fault, run.fault_at = _engine_error(exc), line.at
            return run
        state = res.state
        counts = _count(counts, res.effects)
        run.observations.append(Observation(label, line.at, state, res.effects,
                                            res.explanations, counts, inp, None, index,
                                            index))
    if timeline.horizon is not None and timeline.horizon >= state.clock:
        end = len(timeline.lines)
        if not fire_until(timeline.horizon, end):
            return run
        run.observations.append(Observation("the end", timeline.horizon, state, (), (), counts,
                                            None, group=end))
        run.drained = True
    return run


# --- printing a timeline as a scenario ----------------------------------------------


def _instant_text(at: dt.datetime, calendar: Calendar) -> str:
    local = at.astimezone(ZoneInfo(calendar.timezone))
    if local.time() == dt.time(12) and local.tzinfo is not None:
        return local.date().isoformat()
    return local.isoformat(timespec="seconds")


def value_text(raw: Any, type_name: str, program: Program) -> str:
    """A JSON value of ``type_name`` written as a scenario value."""
    if type_name.startswith("List[") and type_name.endswith("]"):
        inner = type_name[5:-1]
        return "[" + ", ".join(value_text(v, inner, program) for v in raw) + "]"
    records = program.types.records
    if type_name in records:
        return "{" + ", ".join(f"{n}: {value_text(raw[n], t, program)}"
                               for n, t in records[type_name]) + "}"
    if type_name in program.types.enums:
        return f"{type_name}.{raw}"
    if type_name == "Money":
        return "¥" + str(raw)
    if type_name == "Text":
        from rules_dsl.fmt import _quote

        return _quote(raw)
    if type_name == "Bool":
        return "true" if raw else "false"
    return str(raw)


def scenario_text(name: str, timeline: Timeline, program: Program, calendar: Calendar,
                  comment: str = "", indent: str = "  ") -> str:
    """The timeline as a scenario (terms, start, lines, the final advance)."""
    fields = dict(program.event_fields)
    lines = [f"scenario {json.dumps(name, ensure_ascii=False)} {{"]
    if comment:
        lines += [f"{indent}# {c}" for c in comment.splitlines()]
    lines.append(f"{indent}terms {{")
    for tname, ttype in program.term_types:
        lines.append(f"{indent * 2}{tname}: {value_text(timeline.terms[tname], ttype, program)}")
    lines.append(f"{indent}}}")
    lines.append(f"{indent}start at {_instant_text(timeline.start, calendar)}")
    for line in timeline.lines:
        when = _instant_text(line.at, calendar)
        if line.kind == "event":
            kinds = dict(fields.get(line.event, ()))
            payload = ", ".join(f"{k}: {value_text(v, kinds.get(k, 'Text'), program)}"
                                for k, v in line.payload.items())
            tail = f" {{{payload}}}" if payload else ""
            lines.append(f"{indent}at {when} event {line.event} by {line.role}{tail}")
        elif line.kind == "decide":
            what = f" {line.action}" if line.action else ""
            verb = "approve" if line.approve else "reject"
            lines.append(f"{indent}at {when} {verb}{what} by {line.role}")
        else:
            lines.append(f"{indent}advance to {when}")
    if timeline.horizon is not None:
        lines.append(f"{indent}advance to {_instant_text(timeline.horizon, calendar)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def approval_closed(effects: tuple[Effect, ...], action: str) -> bool:
    """Whether ``effects`` include the officer's approval of ``action``."""
    return any(isinstance(e, ApprovalEffect) and e.status == "approved" and e.action == action
               for e in effects)
