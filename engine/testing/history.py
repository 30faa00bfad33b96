"""``jrule test --against-history DB FILE``: what a new version would do to live cases.

Every running instance stored in the runtime database whose contract has the
same name as a contract of the new rule set is replayed, input by input from
its input log, under the new version.  Its outcome (the state it ends in and
the actions triggered, with their arguments) is compared with what the
stored version actually did; every instance whose outcome would change is
listed, so a reviewer sees the effect on live cases before deciding to
migrate them.  Nothing is written to the database.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.exc import SQLAlchemyError

from engine.core import Fault, Rejected, recompute_provisional, step
from engine.program import Program, RuntimeFault, compile_contract
from engine.runtime.errors import EngineError
from engine.state import ActionEffect, InstanceState, input_from_json
from rules_dsl.compiler import compile_path
from rules_dsl.diagnostics import render_all

__all__ = ["InstanceChange", "compare_history", "run_against_history"]


@dataclass
class InstanceChange:
    instance: str
    contract: str
    old_state: str
    new_state: str | None
    removed: list[str] = field(default_factory=list)  # actions only the old version took
    added: list[str] = field(default_factory=list)  # actions only the new version takes
    refused: list[str] = field(default_factory=list)  # inputs the new version refuses

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "contract": self.contract,
                "old_state": self.old_state, "new_state": self.new_state,
                "actions_no_longer_taken": self.removed, "actions_newly_taken": self.added,
                "inputs_refused": self.refused}


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def _action_text(action: str, args: dict[str, Any]) -> str:
    return f"{action}({json.dumps(args, ensure_ascii=False, sort_keys=True)})"


def _diff(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    rest = list(new)
    removed = []
    for a in old:
        if a in rest:
            rest.remove(a)
        else:
            removed.append(a)
    return removed, rest


def compare_history(service: Any, programs: dict[str, Program]) -> tuple[int, list[InstanceChange]]:
    """Replay every running (not ended) instance of a contract named in ``programs``."""
    changes: list[InstanceChange] = []
    replayed = 0
    for iid in service.instance_ids():
        stored = service.state(iid)
        if stored["status"] == "ended":
            continue
        program = programs.get(stored["contract_name"])
        if program is None:
            continue
        replayed += 1
        rows = service.timeline(iid)
        # the calendar it was created with (a later move to a newer version is re-applied)
        first_move = next((r["input"]["from"] for r in rows if r["kind"] == "recalendar"), None)
        calendar = service.calendar_for(first_move or stored["calendar"])
        old_actions = [_action_text(a["action"], a["args"]) for r in rows for a in r["actions"]]
        state: InstanceState | None = None
        new_actions: list[str] = []
        refused: list[str] = []
        for r in rows:
            if r["kind"] == "migrate":
                continue
            if r["kind"] == "recalendar":
                calendar = service.calendar_for(r["input"]["to"])
                if state is not None:
                    try:
                        state, _ = recompute_provisional(program, calendar, state,
                                                         _instant(r["input"]["at"]))
                    except RuntimeFault as exc:
                        refused.append(f"seq {r['seq']} (recalendar): {exc}")
                continue
            inp = input_from_json(r["input"])
            try:
                res = step(program, calendar, state, inp)
            except Rejected as exc:
                refused.append(f"seq {r['seq']} ({r['kind']}): {exc.code}: {exc.message}")
                if state is None:
                    break
                continue
            except Fault as exc:
                refused.append(f"seq {r['seq']} ({r['kind']}): fault: {exc.message}")
                continue
            state = res.state
            new_actions += [_action_text(e.action, e.args_json()) for e in res.effects
                            if isinstance(e, ActionEffect)]
        new_state = state.state if state is not None else None
        removed, added = _diff(old_actions, new_actions)
        if new_state != stored["state"] or removed or added or refused:
            changes.append(InstanceChange(iid, stored["contract_name"], stored["state"],
                                          new_state, removed, added, refused))
    return replayed, changes


def run_against_history(files: list[str], db_url: str, fmt: str, out: TextIO,
                        err: TextIO) -> int:
    from engine.runtime.service import EngineService

    programs: dict[str, Program] = {}
    for path in files:
        compiled = compile_path(path)
        if compiled.ir is None:
            err.write(f"{path}: does not compile:\n"
                      f"{render_all(compiled.check.diagnostics, compiled.check.sources)}\n")
            return 2
        for c in compiled.ir.to_data()["contracts"]:
            programs[c["name"]] = compile_contract(c)
    try:
        service = EngineService(db_url, mode="production", engine_lock=False, migrate=False)
    except Exception as exc:
        err.write(f"jrule test: cannot open {db_url}: {exc}\n")
        return 2
    try:
        replayed, changes = compare_history(service, programs)
    except (SQLAlchemyError, EngineError) as exc:
        err.write(f"jrule test: cannot read the running instances in {db_url}: "
                  f"{str(exc).splitlines()[0]}\n")
        return 2
    finally:
        service.close()
    names = ", ".join(Path(f).name for f in files)
    if fmt == "json":
        out.write(json.dumps({"replayed": replayed, "changed": [c.to_json() for c in changes]},
                             ensure_ascii=False, indent=2) + "\n")
        return 0
    out.write(f"replayed {replayed} running instance(s) under {names}; "
              f"{len(changes)} would change\n")
    for c in changes:
        out.write(f"  {c.instance} ({c.contract}): state {c.old_state} -> {c.new_state}\n")
        for a in c.removed:
            out.write(f"      no longer: {a}\n")
        for a in c.added:
            out.write(f"      newly:     {a}\n")
        for r in c.refused:
            out.write(f"      refused:   {r}\n")
    return 0
