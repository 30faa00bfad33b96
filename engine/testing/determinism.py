"""Built-in determinism checks, run on every scenario and generated timeline.

1. The same timeline played twice gives the same states and effects, byte for byte.
2. Replay equals live: the accepted inputs, written to the input log's JSON
   and read back (as the service's replay and ``jrule audit`` do), rebuild the
   same final state.
3. The final state survives its canonical encoding (``jrule-state/1``).
"""

from __future__ import annotations

from contracts_lib.calendar import Calendar
from engine.core import Fault, Rejected, step
from engine.program import Program
from engine.state import (
    InstanceState,
    canonical_state,
    input_from_json,
    input_to_json,
    state_from_json,
    state_to_json,
)
from engine.testing.timeline import Run, Timeline, run_timeline

__all__ = ["determinism_problems"]


def _trace(run: Run) -> list[tuple[bytes, tuple[object, ...]]]:
    return [(canonical_state(o.state), o.effects) for o in run.observations]


def _replay(program: Program, calendar: Calendar, run: Run) -> InstanceState | str:
    inputs = [o.input for o in run.observations if o.input is not None and o.refused is None]
    state: InstanceState | None = None
    for inp in inputs:
        logged = input_from_json(input_to_json(inp))
        try:
            state = step(program, calendar, state, logged).state
        except (Rejected, Fault) as exc:
            return f"replaying {input_to_json(inp)['input']} at {inp.at.isoformat()} " \
                   f"was refused: {exc}"
    assert state is not None
    return state


def determinism_problems(program: Program, calendar: Calendar, timeline: Timeline,
                         run: Run) -> list[str]:
    """What is not deterministic about this run (empty: everything is)."""
    if run.refused_create is not None or not run.observations:
        return []
    problems: list[str] = []
    again = run_timeline(program, calendar, timeline)
    if _trace(again) != _trace(run) or again.fault != run.fault:
        problems.append("the same timeline played twice gave different results")
    if run.fault is not None:
        return problems
    live = run.final
    assert live is not None
    replayed = _replay(program, calendar, run)
    if isinstance(replayed, str):
        problems.append(f"replay from the input log: {replayed}")
    elif canonical_state(replayed) != canonical_state(live):
        problems.append("replay from the input log does not give the live state")
    decoded = state_from_json(state_to_json(live), program)
    if canonical_state(decoded) != canonical_state(live):
        problems.append("the final state changes when encoded and decoded (jrule-state/1)")
    return problems
