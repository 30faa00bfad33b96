"""Bounded exhaustive exploration: every path of N steps from one instance.

For small contracts, instead of sampling timelines, every sequence of up to
``depth`` inputs is tried from the instance a scenario creates (its terms and
start).  The inputs possible at each point are: each event by each role
allowed to submit it, with payloads from a small domain per field type (the
amounts named in the terms and one fen; both truth values; the day itself;
every enum value), a day after the last input; the clock advancing to the
next deadline; and approving or rejecting each pending approval.  After the
last step time runs to the horizon (so ``eventually`` properties are decided).
States already seen with the same property memories at the same depth are not
explored twice.  The report says how many paths and distinct states were
covered, and whether the search finished or hit ``max_states``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable
from typing import Any

from contracts_lib.calendar import Calendar
from engine.core import Fault, Rejected, step
from engine.state import ActionEffect, Decision, Event, InstanceState, Tick, state_to_json
from engine.testing.generate import Found, _money, _money_in
from engine.testing.monitor import Monitor, PropertyError, check_run
from engine.testing.scenarios import scenario_timeline
from engine.testing.target import TestTarget
from engine.testing.timeline import Line, Observation, Run, Timeline, noon, run_timeline

__all__ = ["explore"]

_MAX_PAYLOADS = 6


def _key(state: InstanceState) -> str:
    data = state_to_json(state)
    for k in ("clock", "seq", "instance"):
        data.pop(k, None)
    approvals: list[dict[str, Any]] = data["approvals"]  # type: ignore[assignment]
    for a in approvals:
        a.pop("id", None)
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _domain(type_name: str, target: TestTarget, day: dt.date, money: list[str]) -> list[Any]:
    types = target.program.types
    if type_name == "Money":
        return money or ["0.01"]
    if type_name == "Bool":
        return [True, False]
    if type_name == "Int":
        return [0, 1]
    if type_name == "Decimal":
        return ["1"]
    if type_name == "Date":
        return [day.isoformat()]
    if type_name == "DateTime":
        return [dt.datetime.combine(day, dt.time(12)).isoformat() + "+08:00"]
    if type_name == "Role":
        return list(types.roles[:2])
    if type_name == "Text":
        return ["x"]
    if type_name in types.enums:
        return list(types.enums[type_name])
    return []  # records and lists in payloads: not explored


def explore(target: TestTarget, calendar: Calendar, monitors: list[Monitor], depth: int,
            max_states: int, on_run: Callable[[Run], None]
            ) -> tuple[dict[str, Any], dict[str, Found | None]]:
    program = target.program
    found: dict[str, Found | None] = {m.name: None for m in monitors}
    if not target.scenarios:
        return ({"depth": depth, "paths": 0, "states": 0, "state_names": 0,
                 "state_names_total": len(program.states), "complete": False,
                 "note": "exploration starts from a scenario's terms; write one"}, found)
    base = scenario_timeline(target.scenarios[0], target, calendar)
    first = run_timeline(program, calendar, Timeline(base.terms, base.start, ()))
    if not first.observations:
        return ({"depth": depth, "paths": 0, "states": 0, "state_names": 0,
                 "state_names_total": len(program.states), "complete": False,
                 "note": f"the terms were refused: {first.refused_create}"}, found)
    horizon = noon(dt.date(calendar.last_year, 12, 31), calendar)
    fen = sorted(set(_money_in(dict(base.terms))))
    money = [_money(f) for f in sorted({*fen, sum(fen), 1})][:3]
    seen: set[tuple[Any, ...]] = set()
    names: set[str] = set()
    paths = 0
    truncated = False

    def inputs(state: InstanceState) -> list[tuple[Line, Any]]:
        out: list[tuple[Line, Any]] = []
        at = state.clock + dt.timedelta(days=1)
        day = (at + dt.timedelta(hours=8)).date()
        if at > horizon:
            return out
        for name in sorted(program.events):
            fields = program.event_fields[name]
            domains = [_domain(t, target, day, money) for _, t in fields]
            if any(not d for d in domains):
                continue
            combos = list(itertools.islice(itertools.product(*domains), _MAX_PAYLOADS))
            for role in program.events[name]["by"]:
                for combo in combos:
                    payload = {f: v for (f, _), v in zip(fields, combo, strict=True)}
                    line = Line("event", at, name, role, payload)
                    out.append((line, Event(name, role, payload, at)))
        due = state.next_due()
        if due is not None and due <= horizon:
            tick_at = max(due, state.clock)
            out.append((Line("advance", tick_at), Tick(tick_at)))
        for a in state.approvals:
            when = state.clock + dt.timedelta(hours=1)
            for approve in (True, False):
                out.append((Line("decide", when, role=a.role, approve=approve, action=a.action),
                            Decision(a.id, a.role, approve, "", when)))
        return out

    def check_path(lines: list[Line], monitor: Monitor) -> None:
        timeline = Timeline(base.terms, base.start, tuple(lines), horizon)
        run = run_timeline(program, calendar, timeline)
        on_run(run)
        violations = check_run([monitor], run.observations, run.drained)
        if violations and found[monitor.name] is None:
            found[monitor.name] = Found(monitor.name, timeline, violations[0], run)

    def visit(state: InstanceState, lines: list[Line], mems: tuple[Any, ...], left: int,
              prev: Observation) -> None:
        nonlocal paths, truncated
        names.add(state.state)
        key = (_key(state), mems, left)
        if key in seen:
            return
        if len(seen) >= max_states:
            truncated = True
            return
        seen.add(key)
        options = inputs(state) if left > 0 and state.state not in program.terminal else []
        if not options:
            paths += 1
            for m in monitors:
                if m.needs_end and found[m.name] is None:
                    # decide "finish" obligations on the drained path
                    check_path(lines, m)
            return
        for line, inp in options:
            try:
                res = step(program, calendar, state, inp)
            except Rejected as exc:
                on_run(Run([prev, Observation(line.kind, inp.at, state, (), (), prev.counts, inp,
                                              exc.code)]))
                continue
            except Fault:
                paths += 1
                continue
            counts = dict(prev.counts)
            for e in res.effects:
                if isinstance(e, ActionEffect):
                    counts[e.action] = counts.get(e.action, 0) + 1
            obs = Observation(line.kind, inp.at, res.state, res.effects, res.explanations,
                              counts, inp)
            on_run(Run([prev, obs]))
            new_mems = []
            for m, mem in zip(monitors, mems, strict=True):
                try:
                    mem2, problem = m.observe(mem, 1, obs)
                except PropertyError:
                    problem, mem2 = "error", mem
                if problem is not None and found[m.name] is None:
                    check_path([*lines, line], m)
                new_mems.append(mem2)
            visit(res.state, [*lines, line], tuple(new_mems), left - 1, obs)

    start_obs = first.observations[0]
    mems0 = []
    for m in monitors:
        try:
            mem, _ = m.observe(m.start, 0, start_obs)
        except PropertyError:
            mem = m.start
        mems0.append(mem)
    visit(start_obs.state, [], tuple(mems0), depth, start_obs)
    summary = {"depth": depth, "paths": paths, "states": len(seen), "state_names": len(names),
               "state_names_total": len(program.states), "complete": not truncated,
               "terms_from": target.scenarios[0].name}
    return summary, found
