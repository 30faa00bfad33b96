"""``jrule simulate FILE --terms terms.json --events timeline.json``.

Runs one contract of a rule set through the pure core, with no database, and
prints the timeline: every input, the deadlines that fell due on the way,
actions triggered, approvals requested, states entered, each with its
explanation (Chinese and/or English) and legal citation.

The timeline is a JSON list of entries, each with an instant ``at`` (ISO 8601
with an offset) and one of::

    {"at": "...", "event": "付款", "role": "被申请人", "payload": {"数额": "400.00"}}
    {"at": "...", "decide": "latest" | APPROVAL_ID, "role": "officer",
     "approve": true, "reason": "..."}
    {"at": "..."}                      # just let time pass to this instant

The instance is created at ``--start`` (default: the first entry's instant).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from contracts_lib.calendar import CalendarError, load_calendar
from engine.core import Fault, Rejected, StepResult, step
from engine.program import Program, compile_contract
from engine.state import (
    ActionEffect,
    Create,
    Decision,
    Event,
    InstanceState,
    Tick,
    state_to_json,
)
from engine.values import parse_instant
from rules_dsl.compiler import compile_path
from rules_dsl.diagnostics import render_all

__all__ = ["HELP", "SimulationError", "add_arguments", "run", "simulate"]

HELP = "run a contract on a timeline of events, without a database"


class SimulationError(Exception):
    """A problem with the simulation's inputs (said in plain words)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the .jrule rule set")
    parser.add_argument("--terms", required=True, metavar="JSON", help="terms of the instance")
    parser.add_argument("--events", metavar="JSON", help="the timeline (a JSON list)")
    parser.add_argument("--contract", help="which contract (needed if the file has several)")
    parser.add_argument("--start", help="instant the instance is created (ISO 8601)")
    parser.add_argument("--until", help="finally let time pass to this instant")
    parser.add_argument("--calendar", default="cn", help="calendar id or file (default cn)")
    parser.add_argument("--lang", choices=("zh", "en", "both"), default="both")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--instance", default="simulation", help="instance id")


def _load_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SimulationError(f"cannot read {what} file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SimulationError(f"{what} file {path} is not JSON: line {exc.lineno}, "
                              f"column {exc.colno}: {exc.msg}") from exc


def _instant(text: object, where: str) -> dt.datetime:
    if not isinstance(text, str):
        raise SimulationError(f"{where}: `at` must be an ISO 8601 instant such as "
                              "\"2025-09-01T09:00:00+08:00\"")
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise SimulationError(f"{where}: {exc}") from exc


def simulate(program: Program, calendar_name: str, terms: Any, timeline: list[Any],
             start: dt.datetime | None, until: dt.datetime | None,
             instance_id: str = "simulation") -> list[dict[str, Any]]:
    """Run the timeline; returns one record per input (what happened, or why refused)."""
    try:
        calendar = load_calendar(calendar_name)
    except CalendarError as exc:
        raise SimulationError(str(exc)) from exc
    if not isinstance(timeline, list):
        raise SimulationError("the timeline must be a JSON list of entries")
    entries = [(i, e) for i, e in enumerate(timeline)]
    if entries and not isinstance(entries[0][1], dict):
        raise SimulationError("timeline entry 0: each entry is a JSON object")
    first = start or (_instant(entries[0][1].get("at"), "entry 0") if entries else None)
    if first is None:
        raise SimulationError("give --start (or at least one timeline entry)")
    records: list[dict[str, Any]] = []
    state: InstanceState | None = None

    def record(label: str, at: dt.datetime, result: StepResult | None,
               refused: str | None = None) -> None:
        entry: dict[str, Any] = {"input": label, "at": at.isoformat()}
        if result is not None:
            entry["state"] = result.state.state
            entry["explanations"] = [e.to_json() for e in result.explanations]
            entry["effects"] = [
                {"action": f.action, "key": f.key, "args": f.args_json()}
                if isinstance(f, ActionEffect) else
                {"approval": f.approval_id, "status": f.status, "action": f.action,
                 "role": f.role}
                for f in result.effects
            ]
        if refused:
            entry["refused"] = refused
        records.append(entry)

    try:
        result = step(program, calendar, None, Create(instance_id, terms, first))
    except Rejected as exc:
        raise SimulationError(f"the terms were refused: {exc.message}") from exc
    state = result.state
    record("create", first, result)
    last_approval: str | None = None
    for index, raw in entries:
        where = f"timeline entry {index}"
        if not isinstance(raw, dict):
            raise SimulationError(f"{where}: each entry is a JSON object")
        at = _instant(raw.get("at"), where)
        for eff in result.effects:
            if getattr(eff, "status", None) == "requested":
                last_approval = eff.approval_id  # type: ignore[union-attr]
        # let time pass first: each deadline fires at its own due instant, not late
        while state is not None and (due := state.next_due()) is not None and due <= at:
            due = max(due, state.clock)  # fell due before the instance existed: fires now
            try:
                result = step(program, calendar, state, Tick(due))
            except Fault as exc:
                record("time passes", due, None, f"fault: {exc.describe()}")
                break
            state = result.state
            record("time passes", due, result)
        try:
            if "event" in raw:
                inp: Any = Event(str(raw["event"]), str(raw.get("role", "")),
                                 raw.get("payload", {}), at, key=f"timeline-{index}")
                label = f"event {raw['event']} by {raw.get('role', '?')}"
            elif "decide" in raw:
                target = raw["decide"]
                if target == "latest":
                    if last_approval is None:
                        raise SimulationError(f"{where}: no approval has been requested yet")
                    target = last_approval
                inp = Decision(str(target), str(raw.get("role", "")),
                               bool(raw.get("approve", True)), str(raw.get("reason", "")), at)
                label = f"decision on {target} by {raw.get('role', '?')}"
            else:
                inp = Tick(at)
                label = "time passes"
            result = step(program, calendar, state, inp)
            state = result.state
            record(label, at, result)
        except Rejected as exc:
            if exc.code != "nothing_due":
                record(label, at, None, f"{exc.code}: {exc.message}")
        except Fault as exc:
            record(label, at, None, f"fault: {exc.describe()}")
            break
    while until is not None and state is not None and (due := state.next_due()) is not None \
            and due <= until:
        due = max(due, state.clock)
        try:
            result = step(program, calendar, state, Tick(due))
        except Fault as exc:
            record("time passes", due, None, f"fault: {exc.describe()}")
            break
        state = result.state
        record("time passes", due, result)
    if until is not None:
        try:
            result = step(program, calendar, state, Tick(until))
            state = result.state
            record("time passes", until, result)
        except Rejected:
            pass
        except Fault as exc:
            record("time passes", until, None, f"fault: {exc.describe()}")
    assert state is not None
    records.append({"final": state_to_json(state)})
    return records


def _print_text(records: list[dict[str, Any]], lang: str, out: TextIO) -> None:
    langs = ["zh", "en"] if lang == "both" else [lang]
    for rec in records:
        if "final" in rec:
            final = rec["final"]
            out.write(f"\n== final state: {final['state']}\n")
            for name, value in final["vars"]:
                out.write(f"   {name} = {value}\n")
            for t in final["timers"]:
                when = t["last_day"] or "waiting"
                out.write(f"   pending deadline {t['deadline']}: last day {when}\n")
            for a in final["approvals"]:
                out.write(f"   pending approval {a['id']}: {a['action']} by {a['role']} "
                          f"until {a['last_day']}\n")
            continue
        out.write(f"\n-- {rec['at']}  {rec['input']}\n")
        if "refused" in rec:
            out.write(f"   REFUSED {rec['refused']}\n")
            continue
        for e in rec["explanations"]:
            for lg in langs:
                out.write(f"   {e['text_' + lg]}\n")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    compiled = compile_path(args.file)
    if compiled.ir is None:
        err.write(render_all(compiled.check.diagnostics, compiled.check.sources) + "\n")
        return 1
    contracts = compiled.ir.to_data()["contracts"]
    if args.contract:
        chosen = [c for c in contracts if c["name"] == args.contract]
    else:
        chosen = contracts if len(contracts) == 1 else []
    if len(chosen) != 1:
        names = ", ".join(c["name"] for c in contracts)
        err.write(f"jrule simulate: error: choose a contract with --contract (one of: {names})\n")
        return 2
    try:
        terms = _load_json(args.terms, "terms")
        timeline = _load_json(args.events, "timeline") if args.events else []
        start = _instant(args.start, "--start") if args.start else None
        until = _instant(args.until, "--until") if args.until else None
        records = simulate(compile_contract(chosen[0]), args.calendar, terms, timeline, start,
                           until, args.instance)
    except SimulationError as exc:
        err.write(f"jrule simulate: error: {exc}\n")
        return 2
    if args.format == "json":
        out.write(json.dumps(records, ensure_ascii=False, indent=2) + "\n")
    else:
        _print_text(records, args.lang, out)
    return 0
