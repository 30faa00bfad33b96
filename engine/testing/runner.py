"""Runs everything ``jrule test`` runs for one rule set and builds the report.

For each contract: its scenarios, then for each property a search for a
counterexample (generated timelines, or bounded exhaustive exploration), then
the built-in determinism checks on generated timelines; coverage is gathered
from all runs.  The report is plain data (``jrule-test-report/1``); its hash
(:func:`engine.testing.report.report_hash`) is what a deployment records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from contracts_lib.calendar import Calendar
from engine.testing.coverage import Coverage
from engine.testing.generate import BUILTIN, SearchStats, search
from engine.testing.monitor import compile_property
from engine.testing.scenarios import run_scenario
from engine.testing.target import TestTarget
from engine.testing.timeline import Run, scenario_text

__all__ = ["REPORT_FORMAT", "RunOptions", "run_suite"]

REPORT_FORMAT = "jrule-test-report/1"


@dataclass(frozen=True)
class RunOptions:
    seed: int
    examples: int = 200
    max_lines: int = 10
    explore: bool = False
    depth: int = 6
    max_states: int = 20_000


Progress = Callable[[str], None]


def _span(span: Any) -> str:
    return str(span.compact())


def run_target(target: TestTarget, calendar: Calendar, options: RunOptions,
                progress: Progress) -> dict[str, Any]:
    """Scenarios, properties and built-in checks of one contract."""
    program = target.program
    coverage = Coverage.of_contract(target.contract_ir)
    scenarios = []
    for sc in target.scenarios:
        progress(f"{target.name}: scenario {sc.name}")
        res = run_scenario(sc, target, calendar)
        if res.run is not None:
            coverage.add(res.run)
        scenarios.append({"name": sc.name, "span": _span(sc.span), "passed": res.passed,
                          "failures": [{"span": _span(f.span), "message": f.message}
                                       for f in res.failures]})

    def on_run(run: Run) -> None:
        coverage.add(run)

    properties = []
    exploration: dict[str, Any] | None = None
    monitors = [compile_property(p, target, calendar) for p in target.properties]
    if options.explore:
        from engine.testing.explore import explore

        progress(f"{target.name}: exploring every path of {options.depth} steps")
        exploration, explored = explore(target, calendar, monitors, options.depth,
                                        options.max_states, on_run)
        for m in monitors:
            found = explored.get(m.name)
            properties.append(_property_entry(m.name, m.text, m.span, found, target, calendar,
                                              exploration["paths"]))
    else:
        for i, m in enumerate(monitors, 1):
            stats = SearchStats()
            started = time.monotonic()
            progress(f"{target.name}: property {i}/{len(monitors)} \"{m.name}\" ...")
            found = search(program, calendar, m, max_examples=options.examples,
                           seed=options.seed, max_lines=options.max_lines, stats=stats,
                           on_run=on_run, progress=_counter(progress, target.name, i,
                                                            len(monitors), m.name))
            progress(f"{target.name}: property {i}/{len(monitors)} \"{m.name}\": "
                     f"{'FAILED' if found else 'ok'} ({stats.timelines} timelines, "
                     f"{time.monotonic() - started:.1f}s)")
            properties.append(_property_entry(m.name, m.text, m.span, found, target, calendar,
                                              stats.timelines))
    stats = SearchStats()
    progress(f"{target.name}: built-in determinism checks ...")
    builtin_found = search(program, calendar, None, max_examples=max(10, options.examples // 4),
                           seed=options.seed, max_lines=options.max_lines, stats=stats)
    builtin = _property_entry(BUILTIN, "deterministic; replay equals live; no incident", None,
                              builtin_found, target, calendar, stats.timelines)
    passed = all(s["passed"] for s in scenarios) and all(p["passed"] for p in properties) \
        and builtin["passed"]
    return {
        "name": target.name, "contract_id": program.contract_id, "passed": passed,
        "scenarios": scenarios, "properties": properties, "builtin": builtin,
        "exploration": exploration, "coverage": coverage.summary(),
    }


def _counter(progress: Progress, contract: str, i: int, n: int, name: str
             ) -> Callable[[int], None]:
    def say(done: int) -> None:
        progress(f"{contract}: property {i}/{n} \"{name}\": {done} timelines so far")

    return say


def _property_entry(name: str, text: str, span: Any, found: Any, target: TestTarget,
                    calendar: Calendar, timelines: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "text": text,
                             "span": _span(span) if span is not None else None,
                             "passed": found is None, "timelines": timelines}
    if found is not None:
        v = found.violation
        obs = found.run.observations
        where = obs[v.step] if 0 <= v.step < len(obs) else None
        comment = f"counterexample to \"{name}\": {v.message}"
        if where is not None:
            local = where.at.astimezone(ZoneInfo(calendar.timezone))
            comment += f"\nbroken at {local.isoformat(timespec='minutes')} ({where.label}), " \
                       f"state {where.state.state}"
        entry["message"] = v.message
        entry["counterexample"] = scenario_text(f"counterexample: {name}", found.timeline,
                                                target.program, calendar, comment)
        entry["counterexample_lines"] = len(found.timeline.lines)
    return entry


def run_suite(targets: dict[str, TestTarget], ruleset_id: str, files: list[str],
                 calendar: Calendar, options: RunOptions,
                 progress: Progress = lambda _s: None) -> dict[str, Any]:
    """The whole report for a rule set."""
    contracts = [run_target(t, calendar, options, progress) for _, t in sorted(targets.items())]
    return {
        "format": REPORT_FORMAT, "ruleset": ruleset_id, "files": files,
        "calendar": calendar.version, "seed": options.seed,
        "mode": "explore" if options.explore else "generate",
        "examples": options.examples, "depth": options.depth if options.explore else None,
        "contracts": contracts,
        "passed": all(c["passed"] for c in contracts),
    }
