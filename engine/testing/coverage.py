"""Which states, transitions, deadlines, actions and guards the tests reached.

Coverage is collected from runs (scenarios, generated timelines, explored
paths) and reported per kind with the uncovered items and their source
positions.  A guard counts as covered when it was seen both to hold (its
transition fired) and to fail (its event arrived in one of its states and the
transition did not fire).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.state import Event
from engine.testing.timeline import Run

__all__ = ["Coverage", "CoverageItem"]


@dataclass(frozen=True)
class CoverageItem:
    kind: str  # state | transition | deadline | action | guard
    name: str
    span: str


def _do_sites(body: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(body, dict):
        if body.get("stmt") == "do":
            out.append((body["action"], body["span"]))
        for v in body.values():
            _do_sites(v, out)
    elif isinstance(body, list):
        for v in body:
            _do_sites(v, out)


@dataclass
class Coverage:
    items: list[CoverageItem]
    hit: set[CoverageItem] = field(default_factory=set)
    guard_true: set[str] = field(default_factory=set)
    guard_false: set[str] = field(default_factory=set)

    @classmethod
    def of_contract(cls, ir: Any) -> Coverage:
        items = [CoverageItem("state", s["name"], s["span"]) for s in ir["states"]]
        for t in ir["transitions"]:
            items.append(CoverageItem("transition", f"on {t['event']}", t["span"]))
            if t["guard"] is not None:
                items.append(CoverageItem("guard", f"on {t['event']} when ...", t["span"]))
        items += [CoverageItem("deadline", d["name"], d["span"]) for d in ir["deadlines"]]
        sites: list[tuple[str, str]] = []
        for rule in ir["transitions"] + ir["deadlines"]:
            _do_sites(rule["body"], sites)
        items += [CoverageItem("action", a, s) for a, s in sites]
        cov = cls(items)
        cov._transitions = ir["transitions"]  # type: ignore[attr-defined]
        return cov

    def add(self, run: Run) -> None:
        by_span = {(i.kind, i.span): i for i in self.items}
        transitions: list[Any] = getattr(self, "_transitions", [])
        before: str | None = None
        for obs in run.observations:
            state_item = next((i for i in self.items if i.kind == "state"
                               and i.name == obs.state.state), None)
            if state_item is not None:
                self.hit.add(state_item)
            fired: set[str] = set()
            for e in obs.explanations:
                if e.kind == "event":
                    item = by_span.get(("transition", e.rule_span))
                    if item is not None:
                        self.hit.add(item)
                        fired.add(e.rule_span)
                        self.guard_true.add(e.rule_span)
                elif e.kind == "deadline":
                    for i in self.items:
                        if i.kind == "deadline" and i.name == e.subject:
                            self.hit.add(i)
            for eff in obs.actions():
                item = by_span.get(("action", eff.span))
                if item is not None:
                    self.hit.add(item)
            if isinstance(obs.input, Event) and before is not None:
                for t in transitions:
                    if t["guard"] is not None and t["event"] == obs.input.name \
                            and before in t["states"] and t["span"] not in fired:
                        self.guard_false.add(t["span"])
            before = obs.state.state
        for i in self.items:
            if i.kind == "guard" and i.span in self.guard_true and i.span in self.guard_false:
                self.hit.add(i)

    def summary(self) -> dict[str, Any]:
        kinds = ("state", "transition", "deadline", "action", "guard")
        out: dict[str, Any] = {}
        for k in kinds:
            all_k = [i for i in self.items if i.kind == k]
            covered = [i for i in all_k if i in self.hit]
            out[k] = {
                "covered": len(covered), "total": len(all_k),
                "uncovered": [{"name": i.name, "span": i.span} for i in all_k
                              if i not in self.hit],
            }
        return out
