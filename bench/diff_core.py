"""Differential check of the engine core: this checkout against another one.

    python bench/diff_core.py OTHER_CHECKOUT [--cases 3000]

Runs the same seeded random timelines (every example contract; random terms,
events from right and wrong roles, good and bad payloads, decisions, ticks)
through the core of both checkouts, each in its own process, and compares every
step's outcome: the canonical state bytes, the effects, the explanations' JSON
(both texts), or the refusal / fault and its message.  Exit status 1 on the first
difference.  Use it before and after a change to the core that must not change
results (``git worktree add /tmp/base <commit>``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = r'''
import sys, json, random, datetime as dt
from decimal import Decimal
from pathlib import Path
repo, n_cases, out = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "w", encoding="utf-8")
sys.path.insert(0, repo)
from contracts_lib.calendar import load_calendar
from engine.core import Fault, Rejected, step
from engine.program import compile_contract
from engine.state import Create, Decision, Event, Tick, canonical_state
from rules_dsl.compiler import compile_path
CAL = load_calendar("cn")
progs = []
for path in sorted(Path(repo, "examples").glob("*.jrule")):
    progs += [compile_contract(c) for c in compile_path(path).ir.to_data()["contracts"]]

def value(t, p, r):
    if t == "Money":
        return str(Decimal(r.randint(0, 2_000_000)) / 100) if r.random() > 0.02 else "x"
    if t == "Decimal": return str(Decimal(r.randint(0, 10000)) / 10000)
    if t == "Int": return r.randint(0, 30)
    if t == "Bool": return r.random() < 0.5
    if t == "Text": return r.choice(["", "说明", "note"])
    if t == "Date": return (dt.date(2025, 1, 1) + dt.timedelta(days=r.randint(0, 540))).isoformat()
    if t == "DateTime": return "2025-06-01T09:00:00+08:00"
    if t == "Role": return r.choice(p.types.roles)
    if t.startswith("List["): return [value(t[5:-1], p, r) for _ in range(r.randint(1, 3))]
    if t in p.types.enums: return r.choice(p.types.enums[t])
    return {f: value(ft, p, r) for f, ft in p.types.records[t]}

def dump(tag, res):
    if isinstance(res, Exception):
        out.write(json.dumps([tag, type(res).__name__, str(res)], ensure_ascii=False) + "\n")
        return
    out.write(json.dumps([tag, canonical_state(res.state).decode(), repr(res.effects),
                          [e.to_json() for e in res.explanations]], ensure_ascii=False) + "\n")

START = dt.datetime(2025, 1, 2, 1, 0, tzinfo=dt.UTC)
for case in range(n_cases):
    r = random.Random(case)
    p = r.choice(progs)
    terms = {n: value(t, p, r) for n, t in p.term_types}
    try:
        res = step(p, CAL, None, Create("case", terms, START))
    except (Rejected, Fault) as exc:
        dump(case, exc)
        continue
    dump(case, res)
    state, now = res.state, START
    for i in range(r.randint(0, 25)):
        now += dt.timedelta(hours=r.randint(1, 24 * 40))
        k = r.random()
        if k < 0.25:
            inp = Tick(now)
        elif k < 0.35 and state.approvals:
            a = r.choice(state.approvals)
            inp = Decision(a.id, r.choice(p.types.roles), r.random() < 0.6, "r", now)
        else:
            name = r.choice(sorted(p.events))
            role = r.choice([*p.events[name]["by"], *p.types.roles])
            payload = {f: value(t, p, r) for f, t in p.event_fields[name]}
            inp = Event(name, role, payload, now, key=f"k{i}")
        try:
            res = step(p, CAL, state, inp)
        except (Rejected, Fault) as exc:
            dump(case, exc)
            continue
        dump(case, res)
        state = res.state
'''


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", type=Path, help="the other checkout (its repository root)")
    ap.add_argument("--cases", type=int, default=3000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        outs = []
        procs = []
        for n, repo in enumerate((HERE, args.other.resolve())):
            out = Path(tmp) / f"{n}.jsonl"
            outs.append(out)
            procs.append(subprocess.Popen([sys.executable, "-c", CHILD, str(repo),
                                           str(args.cases), str(out)], env={"PATH": ""}))
        for p in procs:
            if p.wait() != 0:
                print("a run failed", file=sys.stderr)
                return 2
        a = outs[0].read_text(encoding="utf-8").splitlines()
        b = outs[1].read_text(encoding="utf-8").splitlines()
    for n, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            print(f"step {n} differs:\n  this:  {x[:400]}\n  other: {y[:400]}")
            return 1
    if len(a) != len(b):
        print(f"different numbers of steps: {len(a)} and {len(b)}")
        return 1
    accepted = sum(1 for line in a if '"Rejected"' not in line and '"Fault"' not in line)
    print(f"identical: {len(a):,} steps of {args.cases:,} timelines ({accepted:,} applied)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
