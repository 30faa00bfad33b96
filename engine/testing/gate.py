"""The deployment gate: a rule set is deployed only after its tests and properties pass.

:func:`make_gate` builds the callable an :class:`~engine.runtime.service.EngineService`
runs in ``deploy`` (``EngineService(..., deploy_gate=make_gate())``).  It
checks the rule set and its tests, runs every scenario, searches for a
counterexample to every property and runs the built-in determinism checks,
with a fixed seed so the same rule set always gives the same report.  Any
failure raises :class:`DeployRefused` carrying the report; a pass returns the
report's canonical JSON and hash, which the service stores with the version
and logs on the ledger with the reviewer who approved it.  A deployment
without a named reviewer is refused.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts_lib.calendar import Calendar, load_calendar
from engine.runtime.errors import DeployRefused
from engine.testing.report import canonical_report, report_hash, to_text
from engine.testing.runner import RunOptions, run_suite
from engine.testing.target import LoadError, targets_from_bytes
from ledger_adapter.record import Record

__all__ = ["DEFAULT_GATE_SEED", "DeployGate", "GatePassed", "make_gate", "run_gate"]

#: The gate's seed: fixed, so a rule set's report (and its hash) is reproducible.
DEFAULT_GATE_SEED = 20261122


@dataclass(frozen=True)
class GatePassed:
    report: dict[str, Any]
    report_hash: str
    reviewer: str

    @property
    def report_json(self) -> str:
        return canonical_report(self.report).decode("utf-8")

    def record(self, ruleset_id: str, at: dt.datetime) -> Record:
        from engine.runtime.ledger import test_report_record

        return test_report_record(ruleset_id, self.report_hash, self.reviewer, at)


DeployGate = Callable[[bytes, str, "bytes | None", "str | None"], GatePassed]


def run_gate(source: bytes, filename: str, tests: bytes | None, reviewer: str | None,
             calendar: Calendar, options: RunOptions) -> GatePassed:
    """Test a rule set; raise :class:`DeployRefused` unless everything passes."""
    if not reviewer or not reviewer.strip():
        raise DeployRefused("a deployment must name the reviewer who approved it", [])
    try:
        targets, ir = targets_from_bytes(source, filename, tests)
    except LoadError as exc:
        raise DeployRefused(f"{filename} or its tests do not check:\n{exc.report}",
                            [d.to_json() for d in exc.diagnostics]) from exc
    if not any(t.scenarios or t.properties for t in targets.values()):
        raise DeployRefused(f"{filename} has no scenario tests or properties; write them in "
                            f"{filename.removesuffix('.jrule')}.test.jrule (docs/testing.md)",
                            [])
    files = [filename] + ([filename.removesuffix(".jrule") + ".test.jrule"] if tests else [])
    report = run_suite(targets, ir.id, files, calendar, options)
    if not report["passed"]:
        raise DeployRefused(f"{filename} failed its tests; not deployed:\n{to_text(report)}",
                            [{"report": json.loads(canonical_report(report))}])
    return GatePassed(report, report_hash(report), reviewer.strip())


def make_gate(calendar: Calendar | None = None, examples: int = 200,
              seed: int = DEFAULT_GATE_SEED) -> DeployGate:
    """The gate a service runs on every deployment."""
    cal = calendar or load_calendar("cn")
    options = RunOptions(seed=seed, examples=examples)

    def gate(source: bytes, filename: str, tests: bytes | None,
             reviewer: str | None) -> GatePassed:
        return run_gate(source, filename, tests, reviewer, cal, options)

    return gate
