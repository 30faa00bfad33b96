"""Hypothesis strategies built from a contract's own declarations, and the search.

Timelines are made of what the contract itself declares: its terms (values of
the declared types: amounts in fen, dates across the calendar's years with
holidays and adjusted working days favoured, records, lists, enums, roles),
its events submitted by the roles allowed to submit them with well-typed
payloads, decisions on pending approvals by the roles that approve them, and
clock advances from an hour to months.  Some lines repeat the previous event
(a duplicate submission) or arrive earlier than the line before (out of
order).  Every generated timeline ends by letting time run to a horizon, so
deadlines fire and "within" obligations are decided.

:func:`search` asks Hypothesis for a timeline that breaks a property; a
failure is shrunk by Hypothesis to a minimal timeline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.reporting import with_reporter

from contracts_lib.calendar import Calendar
from engine.core import legal_date
from engine.program import Program
from engine.testing.determinism import determinism_problems
from engine.testing.monitor import Monitor, Violation, check_run
from engine.testing.timeline import Line, Run, Timeline, noon, run_timeline

__all__ = ["Found", "SearchStats", "search", "terms_strategy", "timeline_strategy"]

_TEXTS = ("甲", "付款", "note")
_DECIMALS = ("0", "0.5", "1", "0.000175", "2.5")


def _days(calendar: Calendar) -> tuple[dt.date, dt.date]:
    return dt.date(calendar.first_year, 1, 1), dt.date(calendar.last_year, 12, 31)


def _special_days(calendar: Calendar) -> list[dt.date]:
    """Holidays, adjusted working days and the days around them: where periods bend."""
    days: set[dt.date] = set()
    for d in [*calendar.holidays, *calendar.working_days]:
        days.update({d - dt.timedelta(days=1), d, d + dt.timedelta(days=1)})
    first, last = _days(calendar)
    return sorted(d for d in days if first <= d <= last)


def _date_near(calendar: Calendar, around: dt.date, before: int, after: int
               ) -> st.SearchStrategy[dt.date]:
    first, last = _days(calendar)
    lo = max(first, around - dt.timedelta(days=before))
    hi = min(last, around + dt.timedelta(days=after))
    special = [d for d in _special_days(calendar) if lo <= d <= hi]
    plain = st.dates(min_value=lo, max_value=hi)
    return st.one_of(plain, st.sampled_from(special)) if special else plain


def _money(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _value(type_name: str, program: Program, calendar: Calendar, around: dt.date,
           money: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Values of a declared type, as the JSON the engine accepts."""
    types = program.types
    if type_name.startswith("List[") and type_name.endswith("]"):
        inner = type_name[5:-1]
        return st.lists(_value(inner, program, calendar, around, money), min_size=1, max_size=3)
    if type_name in types.records:
        fields = types.records[type_name]
        return st.fixed_dictionaries({n: _value(t, program, calendar, around, money)
                                      for n, t in fields})
    if type_name in types.enums:
        return st.sampled_from(types.enums[type_name])
    if type_name == "Money":
        plain = st.integers(min_value=1, max_value=50_000_00).map(_money)
        return st.one_of(plain, st.sampled_from(money)) if money else plain
    if type_name == "Int":
        return st.integers(min_value=0, max_value=12)
    if type_name == "Decimal":
        return st.sampled_from(_DECIMALS)
    if type_name == "Bool":
        return st.booleans()
    if type_name == "Text":
        return st.sampled_from(_TEXTS)
    if type_name == "Date":
        return _date_near(calendar, around, 0, 150).map(dt.date.isoformat)
    if type_name == "DateTime":
        return _date_near(calendar, around, 30, 150).map(
            lambda d: noon(d, calendar).isoformat())
    if type_name == "Role":
        return st.sampled_from(types.roles)
    raise ValueError(f"no strategy for type {type_name}")  # pragma: no cover


def _money_in(value: Any) -> list[int]:
    """Amounts (in fen) in a JSON value whose strings look like money."""
    out: list[int] = []
    if isinstance(value, dict):
        for v in value.values():
            out += _money_in(v)
    elif isinstance(value, list):
        for v in value:
            out += _money_in(v)
    elif isinstance(value, str) and value.count(".") == 1:
        whole, frac = value.split(".")
        if whole.isdigit() and frac.isdigit() and len(frac) == 2:
            out.append(int(whole) * 100 + int(frac))
    return out


def terms_strategy(program: Program, calendar: Calendar, start: dt.date
                   ) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        name: _value(t, program, calendar, start, ()) for name, t in program.term_types})


def _approval_roles(program: Program) -> list[str]:
    return sorted({site.role for site in program.approval_sites.values() if site.role})


def timeline_strategy(program: Program, calendar: Calendar, max_lines: int = 10
                      ) -> st.SearchStrategy[Timeline]:
    first, last = _days(calendar)
    latest_start = max(first, last - dt.timedelta(days=400))
    # inputs stop 45 days before the calendar's end: periods counted from later inputs
    # (an approval's working days) would need next year's holiday notice
    last_input = noon(last - dt.timedelta(days=45), calendar)
    events = sorted(program.events)
    deciders = _approval_roles(program)
    gap = st.one_of(st.just(dt.timedelta(0)),
                    st.integers(min_value=1, max_value=72).map(lambda h: dt.timedelta(hours=h)),
                    st.integers(min_value=1, max_value=120).map(lambda d: dt.timedelta(days=d)))

    @st.composite
    def build(draw: Callable[..., Any]) -> Timeline:
        start_day = draw(_date_near(calendar, draw(st.dates(first, latest_start)), 0, 0))
        start = noon(start_day, calendar)
        terms = draw(terms_strategy(program, calendar, start_day))
        fen = sorted(set(_money_in(terms)))
        money = tuple(_money(f) for f in [*fen, sum(fen)] if f > 0)
        n = draw(st.integers(min_value=0, max_value=max_lines))
        lines: list[Line] = []
        at = start
        kinds = ["event"] * 6 + ["advance"] * 2 + ["duplicate", "late"]
        if deciders:
            kinds += ["decide"] * 2
        for _ in range(n):
            kind = draw(st.sampled_from(kinds)) if events else "advance"
            at = min(at + draw(gap), last_input)
            if kind == "duplicate" and lines and lines[-1].kind == "event":
                prev = lines[-1]
                lines.append(Line("event", at, prev.event, prev.role, prev.payload))
                continue
            if kind == "decide":
                lines.append(Line("decide", at, role=draw(st.sampled_from(deciders)),
                                  approve=draw(st.booleans())))
                continue
            if kind == "advance" or not events:
                lines.append(Line("advance", at))
                continue
            when = at
            if kind == "late":  # submitted with an instant before the previous line's
                when = at - draw(st.integers(1, 240).map(lambda h: dt.timedelta(hours=h)))
            name = draw(st.sampled_from(events))
            spec = program.events[name]
            role = draw(st.sampled_from(spec["by"])) if spec["by"] else ""
            day = legal_date(when, calendar)
            payload = {f: draw(_value(t, program, calendar, day, money))
                       for f, t in program.event_fields[name]}
            if any(t == "Date" for _, t in program.event_fields[name]) and draw(st.booleans()):
                for f, t in program.event_fields[name]:  # the usual case: dated the same day
                    if t == "Date":
                        payload[f] = day.isoformat()
            lines.append(Line("event", when, name, role, payload))
        horizon = min(max(at, start) + dt.timedelta(days=730), noon(last, calendar))
        return Timeline(terms, start, tuple(lines), max(horizon, at))

    return build()


@dataclass
class Found:
    """A shrunk counterexample."""

    name: str
    timeline: Timeline
    violation: Violation
    run: Run


@dataclass
class SearchStats:
    timelines: int = 0
    steps: int = 0
    refused_terms: int = 0


class _Stop(Exception):
    pass


@contextlib.contextmanager
def _reproducible() -> Iterator[None]:
    """Generation that depends only on the seed and the contract.

    Hypothesis (6.13x and later) also draws "local constants": literals it finds
    in whatever project modules happen to be imported.  Which modules are
    imported differs between ``jrule test``, a service running the deployment
    gate and a test run, so the same seed would give different timelines and a
    different report hash.  Here that pool is empty (and the constants cache
    cleared on the way in and out); the contract's own values are drawn
    explicitly by the strategies above.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - other hypothesis layouts
        yield
        return
    getter = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if getter is None or cache is None:  # pragma: no cover - versions without the pool
        yield
        return
    empty = type(providers._local_constants)()
    providers._get_local_constants = lambda: empty
    cache.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = getter
        cache.cache.clear()


BUILTIN = "built-in: deterministic, replays to the live state, no incident"


def search(program: Program, calendar: Calendar, monitor: Monitor | None, *, max_examples: int,
           seed: int, max_lines: int = 10, stats: SearchStats | None = None,
           on_run: Callable[[Run], None] | None = None,
           progress: Callable[[int], None] | None = None) -> Found | None:
    """Look for a timeline breaking ``monitor`` (None: the built-in checks)."""
    stats = stats if stats is not None else SearchStats()
    found: list[Found] = []
    name = monitor.name if monitor is not None else BUILTIN

    @settings(max_examples=max_examples, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              phases=(Phase.generate, Phase.shrink), print_blob=False)
    @hypothesis_seed(seed)
    @given(timeline_strategy(program, calendar, max_lines))
    def attempt(timeline: Timeline) -> None:
        run = run_timeline(program, calendar, timeline)
        stats.timelines += 1
        stats.steps += len(run.observations)
        if progress is not None and stats.timelines % 100 == 0:
            progress(stats.timelines)
        if run.refused_create is not None:
            stats.refused_terms += 1
            reject()
        if on_run is not None:
            on_run(run)
        if monitor is None:
            problems = determinism_problems(program, calendar, timeline, run)
            if run.fault is not None:
                problems.insert(0, f"a deadline could not be evaluated (an incident): "
                                   f"{run.fault}")
            if problems:
                found.append(Found(name, timeline, Violation(name, len(run.observations) - 1,
                                                             "; ".join(problems)), run))
                raise _Stop
            return
        violations = check_run([monitor], run.observations, run.drained)
        if violations:
            found.append(Found(name, timeline, violations[0], run))
            raise _Stop

    with with_reporter(lambda _text: None), _reproducible():
        try:
            attempt()
        except _Stop:
            pass
        except Exception as exc:  # hypothesis gave up (e.g. every terms refused)
            if type(exc).__name__ in ("Unsatisfiable", "FailedHealthCheck"):
                return None
            raise
    return found[-1] if found else None
