"""Benchmark: events per second through the pure engine core, beside two peers.

Target (issue 3, Benchmarks): ``engine.core.step`` on the mediation contract
(examples/mediation_agreement.jrule) runs >= 70,000 events/s on one core, with
guards, updates, deadline arming and explanations included; in the same run it
is at least as fast as ``transitions`` 0.9.3 (one Machine per instance, Decimal
guards) and >= 10x ``durable_rules`` 2.0.28 (a statechart of the same workflow,
1,000 instances).  See bench/README.md for what is measured and how to read it.

    python bench/bench_core.py [--instances 1000] [--runs 5] [--seed 2024]
                               [--workload mix|payments|both] [--skip-durable]
                               [--profile] [--strict]

Two workloads (seeded: every run and every engine gets the same inputs):

  mix       1,000 mediation agreements (terms: effective 2025-09-01..05, three
            instalments of 500.00-5,000.00, the first due 2025-10-20..11-08, then
            every 30 days).  Each instalment is paid in 10 partial payments (Money,
            split to the fen) before its due date.  Every 10th agreement stops
            after half of its second instalment and defaults at that due date
            (file_trial_case).  Between payments the instance gets the ticks a
            runtime sends at each due instant (``Tick(state.next_due())``):
            reminders 3 days before (remind), the 30-day confirmation window
            (notify), instalment due dates (paid: re-enter 履行中 and re-arm its
            three deadlines; unpaid: file the case).  The last payment of the other
            9 in 10 reaches "paid in full" (notify, goto 履行完毕).  The exact
            counts are printed: 28,500 payments + 5,670 ticks = 34,170 inputs.
  payments  1,000 agreements (one instalment of 1,000,000.00) each receiving 20
            partial payments of 1.00-999.99: no deadline falls due.

Every step's result (state, effects, explanations) is built; the engines run
the same inputs in the same order, interleaved round by round; rates are inputs
per second of process CPU time (``time.process_time``).  The peers get, for each
input, one trigger per deadline that fired plus the payment (``peer_calls``).

Needs the ``bench`` extra (``pip install -e .[bench]``): transitions and
durable_rules.  Nothing is written to disk (``--profile`` writes bench/out/).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
CONTRACT = REPO / "examples" / "mediation_agreement.jrule"

TARGET_EVENTS_PER_SECOND = 70_000
TARGET_DURABLE_RATIO = 10.0
#: durable_rules' statechart refuses more sessions than this (MemoryError)
DURABLE_MAX_INSTANCES = 1024

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
#: deadline of the contract -> the trigger the peers receive when it falls due
PEER_TRIGGER = {"到期提醒": "remind", "本期届满": "due", "司法确认申请期限": "confirm_window"}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ------------------------------------------------------------------ the workload


@dataclass
class Workload:
    """The same inputs for every engine, in global time order."""

    name: str
    description: str
    instances: int
    #: terms of each instance (JSON, as a court system sends them)
    terms: list[dict[str, Any]]
    created_at: list[dt.datetime]
    #: (instance, input) in global time order (engine.state.Event / Tick)
    inputs: list[tuple[int, Any]] = field(default_factory=list)
    #: per input, what the peers receive: (trigger, amount text or None), in order
    peer_calls: list[tuple[tuple[str, str | None], ...]] = field(default_factory=list)
    composition: Counter[str] = field(default_factory=Counter)


def _local(day: dt.date, seconds: int) -> dt.datetime:
    """``day`` at ``seconds`` after 00:00 Shanghai time, as a UTC instant."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=SHANGHAI)
    return (start + dt.timedelta(seconds=seconds)).astimezone(dt.UTC)


def _fen_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` fen split into ``parts`` positive amounts."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


def _payment(at: dt.datetime, fen: int) -> Any:
    from engine.state import Event

    day = at.astimezone(SHANGHAI).date().isoformat()
    return Event("付款", "权利人", {"金额": _fen_text(fen), "付款日": day}, at)


def mix_workload(instances: int, seed: int, instalments: int = 3,
                 payments_per_instalment: int = 10) -> Workload:
    """Agreements paying instalments; the runtime's ticks at every due instant."""
    rng = random.Random(seed)
    terms: list[dict[str, Any]] = []
    created: list[dt.datetime] = []
    payments: list[list[Any]] = []
    for i in range(instances):
        start_day = dt.date(2025, 9, 1) + dt.timedelta(days=i % 5)
        created.append(_local(start_day, 9 * 3600 + i))
        first_due = dt.date(2025, 10, 20) + dt.timedelta(days=i % 20)
        plan = [(first_due + dt.timedelta(days=30 * k), rng.randint(50_000, 500_000))
                for k in range(instalments)]
        terms.append({"协议生效日": start_day.isoformat(),
                      "履行计划": [{"到期日": d.isoformat(), "金额": _fen_text(a)}
                                   for d, a in plan]})
        defaulter = i % 10 == 9
        own: list[Any] = []
        window_start = start_day + dt.timedelta(days=1)
        for k, (due, amount) in enumerate(plan):
            parts = _split(amount, payments_per_instalment, rng)
            if defaulter and k == 1:
                parts = parts[: payments_per_instalment // 2]
            window = (due - window_start).days  # payments land before the due date
            stamps = sorted(rng.randrange(window * 86_400) for _ in parts)
            for fen, s in zip(parts, stamps, strict=True):
                day = window_start + dt.timedelta(days=s // 86_400)
                own.append(_payment(_local(day, 8 * 3600 + (s % 86_400) // 3), fen))
            window_start = due + dt.timedelta(days=1)
            if defaulter and k == 1:
                break
        payments.append(own)
    return _with_ticks(
        Workload("mix", "partial payments + due ticks, re-entries, 90% paid in full, "
                 "10% default", instances, terms, created),
        payments,
        horizon=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )


def payments_workload(instances: int, seed: int, per_instance: int = 20) -> Workload:
    """Agreements receiving partial payments only: no deadline falls due."""
    rng = random.Random(seed)
    terms, created, payments = [], [], []
    for i in range(instances):
        created.append(_local(dt.date(2025, 9, 1), 9 * 3600 + i))
        terms.append({"协议生效日": "2025-09-01",
                      "履行计划": [{"到期日": "2026-09-30", "金额": "1000000.00"}]})
        stamps = sorted(rng.randrange(20 * 86_400) for _ in range(per_instance))
        payments.append([
            _payment(_local(dt.date(2025, 9, 2) + dt.timedelta(days=s // 86_400),
                            8 * 3600 + (s % 86_400) // 3), rng.randint(100, 99_999))
            for s in stamps])
    return _with_ticks(
        Workload("payments", "partial payments only (no deadline due)", instances, terms,
                 created),
        payments,
        horizon=None,
    )


def _with_ticks(w: Workload, payments: list[list[Any]],
                horizon: dt.datetime | None) -> Workload:
    """Dry-run every instance: add a Tick at each due instant (as the runtime's
    scheduler does), record what the peers must receive, and count the mix."""
    from engine.state import Tick

    program, calendar = load_contract()
    timeline: list[tuple[dt.datetime, int, int, Any, tuple[tuple[str, str | None], ...]]] = []
    for i in range(w.instances):
        state = create_instance(program, calendar, w, i)
        own: list[Any] = []
        for p in payments[i]:
            due = state.next_due()
            while due is not None and due <= p.at:
                own.append(Tick(due))
                state = _record(w, program, calendar, state, own[-1], timeline, i)
                due = state.next_due()
            if state.state in program.terminal:
                break
            own.append(p)
            state = _record(w, program, calendar, state, p, timeline, i)
        due = state.next_due()
        while horizon is not None and due is not None and due <= horizon:
            own.append(Tick(due))
            state = _record(w, program, calendar, state, own[-1], timeline, i)
            due = state.next_due()
        w.composition["final state " + state.state] += 1
    timeline.sort(key=lambda item: item[:3])
    w.inputs = [(i, inp) for _, i, _, inp, _ in timeline]
    w.peer_calls = [calls for *_, calls in timeline]
    return w


def _record(w: Workload, program: Any, calendar: Any, state: Any, inp: Any,
            timeline: list[Any], i: int) -> Any:
    from engine.core import step
    from engine.state import ActionEffect, Event

    result = step(program, calendar, state, inp)
    calls: list[tuple[str, str | None]] = []
    for e in result.explanations:
        if e.kind == "deadline":
            calls.append((PEER_TRIGGER[e.subject], None))
            w.composition[f"deadline fired: {e.subject}"] += 1
            if e.armed:
                w.composition["re-entry re-arming deadlines"] += 1
    if isinstance(inp, Event):
        calls.append(("pay", inp.payload["金额"]))
        w.composition["input: payment"] += 1
        if result.state.state == "履行完毕":
            w.composition["payment reaching paid in full (goto 履行完毕)"] += 1
    else:
        w.composition["input: tick"] += 1
    for effect in result.effects:
        if isinstance(effect, ActionEffect):
            w.composition[f"action: {effect.action}"] += 1
    timeline.append((inp.at, i, state.seq, inp, tuple(calls)))
    return result.state


# ------------------------------------------------------------------ jrule


def load_contract() -> tuple[Any, Any]:
    from contracts_lib.calendar import load_calendar
    from engine.program import compile_contract
    from rules_dsl.compiler import compile_path

    result = compile_path(CONTRACT)
    assert result.ir is not None, "the example contract must compile"
    return compile_contract(result.ir.to_data()["contracts"][0]), load_calendar("cn")


def create_instance(program: Any, calendar: Any, w: Workload, i: int) -> Any:
    from engine.core import step
    from engine.state import Create

    return step(program, calendar, None, Create(f"mediation-{i}", w.terms[i],
                                                w.created_at[i])).state


def run_jrule(w: Workload) -> tuple[float, Any]:
    """Seconds to apply every input through ``step`` (instances created beforehand)."""
    from engine.core import step

    program, calendar = load_contract()
    states = [create_instance(program, calendar, w, i) for i in range(w.instances)]
    inputs = w.inputs
    gc.collect()
    started = time.process_time()
    for i, inp in inputs:
        states[i] = step(program, calendar, states[i], inp).state
    return time.process_time() - started, states


# ------------------------------------------------------------------ transitions


class PeerAgreement:
    """The mediation workflow as a ``transitions`` model: Decimal amounts."""

    def __init__(self, plan: Sequence[Decimal]) -> None:
        self.plan = list(plan)
        self.total = sum(self.plan, Decimal("0.00"))
        self.paid = Decimal("0.00")
        self.instalment = 0
        self.due_so_far = self.plan[0]
        self.window_over = False
        self.actions: list[tuple[str, Decimal]] = []

    # guards
    def paid_in_full(self, event: Any) -> bool:
        return self.paid + event.kwargs["amount"] >= self.total

    def instalment_met(self, event: Any) -> bool:
        return self.paid >= self.due_so_far and self.instalment + 1 < len(self.plan)

    def instalment_missed(self, event: Any) -> bool:
        return self.paid < self.due_so_far

    def window_open(self, event: Any) -> bool:
        return not self.window_over

    # updates
    def add_payment(self, event: Any) -> None:
        self.paid += event.kwargs["amount"]

    def notify_performed(self, event: Any) -> None:
        self.actions.append(("notify", self.total))

    def next_instalment(self, event: Any) -> None:
        self.instalment += 1
        self.due_so_far += self.plan[self.instalment]

    def remind(self, event: Any) -> None:
        if self.paid < self.due_so_far:
            self.actions.append(("remind", self.due_so_far - self.paid))

    def close_window(self, event: Any) -> None:
        self.window_over = True
        self.actions.append(("notify", Decimal("0.00")))

    def file_trial(self, event: Any) -> None:
        self.actions.append(("file_trial_case", self.total - self.paid))


PEER_STATES = ["履行中", "履行完毕", "已提起诉讼", "已申请执行", "待确认裁定"]
PEER_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "pay", "source": "履行中", "dest": "履行完毕", "conditions": "paid_in_full",
     "before": "add_payment", "after": "notify_performed"},
    {"trigger": "pay", "source": "履行中", "dest": None, "unless": "paid_in_full",
     "before": "add_payment"},
    {"trigger": "due", "source": "履行中", "dest": "履行中", "conditions": "instalment_met",
     "after": "next_instalment"},
    {"trigger": "due", "source": "履行中", "dest": "已提起诉讼",
     "conditions": "instalment_missed", "after": "file_trial"},
    {"trigger": "remind", "source": "履行中", "dest": None, "after": "remind"},
    {"trigger": "confirm_window", "source": "履行中", "dest": None,
     "conditions": "window_open", "after": "close_window"},
]


def _plan(terms: dict[str, Any]) -> list[Decimal]:
    return [Decimal(p["金额"]) for p in terms["履行计划"]]


def run_transitions(w: Workload) -> tuple[float, list[str]]:
    from transitions import Machine

    models = []
    for i in range(w.instances):
        model = PeerAgreement(_plan(w.terms[i]))
        Machine(model=model, states=PEER_STATES, transitions=PEER_TRANSITIONS,
                initial="履行中", send_event=True, auto_transitions=False)
        models.append(model)
    work = [(models[i], calls) for (i, _), calls in zip(w.inputs, w.peer_calls, strict=True)]
    gc.collect()
    started = time.process_time()
    for model, calls in work:
        for trigger, amount in calls:
            if amount is None:
                model.trigger(trigger)
            else:
                model.trigger(trigger, amount=Decimal(amount))
    elapsed = time.process_time() - started
    return elapsed, [m.state for m in models]


# ------------------------------------------------------------------ durable_rules

_durable_charts = 0


def _durable_chart() -> str:
    """Define a fresh statechart of the workflow (amounts in integer fen)."""
    from durable.lang import c, m, s, state, statechart, to, when_all

    global _durable_charts
    _durable_charts += 1
    name = f"mediation{_durable_charts}"
    with statechart(name):
        with state("start"):
            @to("履行中")
            @when_all(m.t == "create")
            def create(c: Any) -> None:
                c.s.plan = c.m.plan
                c.s.instalment = 0
                c.s.remaining = sum(c.m.plan)  # total - paid
                c.s.shortfall = c.m.plan[0]  # due so far - paid
                c.s.window_over = False
                c.s.actions = 0

        with state("履行中"):
            @to("履行完毕")
            @when_all(c.p << (m.t == "pay"), s.remaining <= c.p.fen)
            def paid_in_full(c: Any) -> None:
                c.s.remaining -= c.p.fen
                c.s.shortfall -= c.p.fen
                c.s.actions += 1

            @to("履行中")
            @when_all(c.p << (m.t == "pay"), s.remaining > c.p.fen)
            def partial(c: Any) -> None:
                c.s.remaining -= c.p.fen
                c.s.shortfall -= c.p.fen

            @to("履行中")
            @when_all(c.d << (m.t == "due"), s.shortfall <= 0)
            def instalment_met(c: Any) -> None:
                if c.s.instalment + 1 < len(c.s.plan):
                    c.s.instalment += 1
                    c.s.shortfall += c.s.plan[c.s.instalment]

            @to("已提起诉讼")
            @when_all(c.d << (m.t == "due"), s.shortfall > 0)
            def instalment_missed(c: Any) -> None:
                c.s.actions += 1

            @to("履行中")
            @when_all(m.t == "remind")
            def remind(c: Any) -> None:
                if c.s.shortfall > 0:
                    c.s.actions += 1

            @to("履行中")
            @when_all(m.t == "confirm_window")
            def confirm_window(c: Any) -> None:
                if not c.s.window_over:
                    c.s.window_over = True
                    c.s.actions += 1

        state("履行完毕")
        state("已提起诉讼")
    return name


def run_durable(w: Workload) -> tuple[float, int]:
    from durable.lang import get_host, post

    name = _durable_chart()
    get_host()
    for i in range(w.instances):
        fen = [int(Decimal(p) * 100) for p in _plan(w.terms[i])]
        post(name, {"sid": str(i), "t": "create", "plan": fen})
    work = [(str(i), calls) for (i, _), calls in zip(w.inputs, w.peer_calls, strict=True)]
    gc.collect()
    started = time.process_time()
    for sid, calls in work:
        for trigger, amount in calls:
            if amount is None:
                post(name, {"sid": sid, "t": trigger})
            else:
                post(name, {"sid": sid, "t": trigger, "fen": int(Decimal(amount) * 100)})
    elapsed = time.process_time() - started
    return elapsed, len(work)


# ------------------------------------------------------------------ reporting


def _best_median(runs: list[float], n: int) -> tuple[float, float]:
    rates = [n / t for t in runs]
    return max(rates), statistics.median(rates)


def profile(w: Workload, top: int = 25) -> str:
    import cProfile
    import io
    import pstats

    OUT.mkdir(exist_ok=True)
    prof = cProfile.Profile()
    prof.enable()
    run_jrule(w)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    (OUT / "profile_core.txt").write_text(buf.getvalue(), encoding="utf-8")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="rounds of jrule and transitions")
    parser.add_argument("--durable-runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--workload", choices=["mix", "payments", "both"], default="both")
    parser.add_argument("--skip-durable", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile jrule on the mix -> bench/out/profile_core.txt")
    parser.add_argument("--strict", action="store_true",
                        help="exit status 1 when a target is missed")
    args = parser.parse_args(argv)
    durable = not (args.skip_peers or args.skip_durable)
    if durable and args.instances > DURABLE_MAX_INSTANCES:
        print(f"durable_rules skipped: its statechart refuses more than "
              f"{DURABLE_MAX_INSTANCES:,} instances (MemoryError)")
        durable = False

    names = ["mix", "payments"] if args.workload == "both" else [args.workload]
    ok = True
    print(f"Python {sys.version.split()[0]}; one process, one core, CPU time; "
          f"{args.instances:,} instances; best and median of {args.runs} interleaved rounds "
          f"(durable_rules: {args.durable_runs})")
    for wname in names:
        w = (mix_workload if wname == "mix" else payments_workload)(args.instances, args.seed)
        n = len(w.inputs)
        peer_triggers = sum(len(c) for c in w.peer_calls)
        print(f"\n== workload `{w.name}`: {w.description}")
        print(f"   {n:,} inputs through step ({peer_triggers:,} triggers for the peers):")
        for key, count in sorted(w.composition.items()):
            print(f"     {count:>7,}  {key}")
        times: dict[str, list[float]] = {"jrule step": []}
        if not args.skip_peers:
            times["transitions 0.9.3"] = []
        if durable:
            times["durable_rules 2.0.28"] = []
        for r in range(args.runs):
            times["jrule step"].append(run_jrule(w)[0])
            if not args.skip_peers:
                times["transitions 0.9.3"].append(run_transitions(w)[0])
            if durable and r < args.durable_runs:
                times["durable_rules 2.0.28"].append(run_durable(w)[0])
        ours = times["jrule step"]
        our_median = statistics.median(n / t for t in ours)
        print(f"   {'engine':<22}{'best inputs/s':>15}{'median':>10}{'µs/input':>10}"
              f"{'jrule ÷ it':>12}")
        for label, runs in times.items():
            best, median = _best_median(runs, n)
            if label.startswith("transitions"):  # per round: the same machine weather
                ratio = statistics.median(t / o for o, t in zip(ours, runs, strict=True))
            else:
                ratio = our_median / median
            print(f"   {label:<22}{best:>15,.0f}{median:>10,.0f}{1e6 / median:>10.1f}"
                  f"{ratio:>11.2f}x")
            if label.startswith("transitions"):
                passed = ratio >= 1.0
            elif label.startswith("durable"):
                passed = ratio >= TARGET_DURABLE_RATIO
            else:
                passed = median >= TARGET_EVENTS_PER_SECOND
            ok &= passed
            target = {"jrule": f">= {TARGET_EVENTS_PER_SECOND:,}/s",
                      "transitions": ">= 1x", "durable_rules": f">= {TARGET_DURABLE_RATIO:g}x"}
            print(f"   {'':<22}target {target[label.split()[0]]}: {'PASS' if passed else 'FAIL'}")
    if args.profile:
        print("\n" + profile(mix_workload(args.instances, args.seed)))
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    raise SystemExit(main())
