"""Shared helpers for the engine-core tests: compile inline .jrule text, run inputs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from contracts_lib.calendar import load_calendar
from engine.core import StepResult, step
from engine.program import Program, compile_contract
from engine.state import Create, Decision, Event, InstanceState, Tick
from rules_dsl.compiler import compile_bytes

CAL = load_calendar("cn")
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def program_of(source: str, name: str = "t.jrule") -> Program:
    result = compile_bytes(source.encode("utf-8"), name)
    assert result.ir is not None, [d.message for d in result.check.diagnostics]
    return compile_contract(result.ir.to_data()["contracts"][0])


def at(text: str) -> dt.datetime:
    """A Shanghai wall-clock time such as '2025-09-01 09:00'."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(dt.UTC)


def create(p: Program, terms: dict[str, Any], when: str, instance: str = "i1") -> StepResult:
    return step(p, CAL, None, Create(instance, terms, at(when)))


def event(p: Program, s: InstanceState, name: str, role: str, when: str,
          **payload: Any) -> StepResult:
    return step(p, CAL, s, Event(name, role, payload, at(when)))


def tick(p: Program, s: InstanceState, when: str) -> StepResult:
    return step(p, CAL, s, Tick(at(when)))


def decide(p: Program, s: InstanceState, approval: str, role: str, approve: bool,
           when: str) -> StepResult:
    return step(p, CAL, s, Decision(approval, role, approve, "reason", at(when)))


def actions(r: StepResult) -> list[str]:
    return [e.action for e in r.effects if hasattr(e, "key")]
