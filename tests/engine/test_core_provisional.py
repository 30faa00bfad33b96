"""A deadline beyond the calendar's years never fires on a guess (issue 3).

A deadline whose last day lies beyond the years the instance's calendar covers
is armed provisionally at its nominal last day.  When it falls due the core
raises :class:`Fault` (the runtime opens an incident) -- on the fast tick path
and on the general path alike -- and :func:`recompute_provisional` moves the
instance to a calendar that covers the year, recomputing the deadline with the
holiday extension.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from core_helpers import CAL, at, create, program_of
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts_lib.calendar import Calendar, calendar_from_mapping
from engine.core import Fault, recompute_provisional, step
from engine.state import Event, Tick

HEAD = """contract c "T" version "1.0.0" {
  role creditor
  role debtor
"""

ONE = (
    HEAD
    + """
  var n: Int = 0
  state open initial
  state done terminal
  event poke by creditor
  on poke in open { set n = n + 1 }
  deadline answer in open: 30 days after entering cite "art. 1" {
    do notify(party: creditor, message: "no answer")
    goto done
  }
}
"""
)

TWO = (
    HEAD
    + """
  state open initial
  state done terminal
  deadline early in open: 10 days after entering { do notify(party: creditor, message: "early") }
  deadline answer in open: 30 days after entering { goto done }
}
"""
)


def next_year(cal: Calendar = CAL, holidays: tuple[str, ...] = ("2027-01-11",)) -> Calendar:
    """``cal`` plus the next year, with ``holidays`` in it (a test holiday notice)."""
    data = json.loads(cal.canonical_json())
    data["years"] = [*data["years"], cal.last_year + 1]
    data["holidays"] = [*data["holidays"], *({"date": d, "name": "test holiday"} for d in holidays)]
    return calendar_from_mapping(data)


def test_fast_tick_path_refuses_a_provisional_timer() -> None:
    p = program_of(ONE)
    s = create(p, {}, "2026-12-10 09:00").state  # 30 days -> 2027-01-09, beyond 2026
    (t,) = s.timers
    assert t.provisional and t.last_day == dt.date(2027, 1, 9)
    assert t.due_at is not None
    # one timer due, no approval: the tick would take the plain path
    with pytest.raises(Fault) as info:
        step(p, CAL, s, Tick(t.due_at))
    msg = info.value.message
    assert "answer" in msg and "2027-01-09" in msg and CAL.version in msg
    assert "2025–2026" in msg and "calendar covering 2027" in msg


def test_general_path_refuses_a_provisional_timer() -> None:
    p = program_of(TWO)
    s = create(p, {}, "2026-12-10 09:00").state
    early, answer = s.timers
    assert not early.provisional and answer.provisional
    assert answer.due_at is not None
    # both due at once: the general path fires `early` then refuses `answer`
    with pytest.raises(Fault) as info:
        step(p, CAL, s, Tick(answer.due_at + dt.timedelta(days=1)))
    assert "`answer`" in info.value.message
    # an event after the due instant takes the general path as well
    p1 = program_of(ONE)
    s1 = create(p1, {}, "2026-12-10 09:00").state
    with pytest.raises(Fault):
        step(p1, CAL, s1, Event("poke", "creditor", {}, at("2027-02-01 09:00")))
    # and before it, the event is applied as usual
    r = step(p1, CAL, s1, Event("poke", "creditor", {}, at("2027-01-08 09:00")))
    assert r.state.var("n") == 1


def test_recompute_applies_the_holiday_extension_then_fires() -> None:
    p = program_of(ONE)
    s = create(p, {}, "2026-12-10 09:00").state
    new_cal = next_year()
    moved, carried = recompute_provisional(p, new_cal, s, at("2027-01-20 10:00"))
    assert moved.calendar_version == new_cal.version and moved.seq == s.seq + 1
    (t,) = moved.timers
    # 2027-01-09 is a Saturday, the 10th a Sunday, the 11th the test holiday
    assert not t.provisional and t.nominal_last_day == dt.date(2027, 1, 9)
    assert t.last_day == dt.date(2027, 1, 12)
    assert dict(moved.deadline_days)["answer"] == dt.date(2027, 1, 12)
    ((old, new, note),) = carried
    assert old is s.timers[0] and new is t and note is not None
    r = step(p, new_cal, moved, Tick(at("2027-01-20 10:00")))
    assert r.state.state == "done"
    (e,) = r.explanations
    assert e.late_by == at("2027-01-20 10:00") - t.due_at  # type: ignore[operator]
    assert e.at == t.due_at == at("2027-01-13 00:00")  # 24:00 of the extended last day


def test_recompute_keeps_other_timers_and_stays_provisional_if_still_beyond() -> None:
    p = program_of(TWO)
    s = create(p, {}, "2026-12-10 09:00").state
    moved, carried = recompute_provisional(p, next_year(), s, at("2026-12-11 09:00"))
    assert moved.timers[0] is s.timers[0]  # `early` kept, the very timer
    assert [o.deadline for o, _, _ in carried] == ["answer"]
    # a deadline beyond the new calendar as well stays provisional
    q = program_of(ONE.replace("30 days", "400 days"))
    s2 = create(q, {}, "2026-12-10 09:00").state
    moved2, ((_, new, _),) = recompute_provisional(q, next_year(), s2, at("2026-12-11 09:00"))
    assert new is not None and new.provisional and new.last_day == dt.date(2028, 1, 14)
    with pytest.raises(Fault):
        step(q, next_year(), moved2, Tick(new.due_at))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=0, max_value=3),
)
def test_a_due_provisional_timer_always_faults(day: int, days: int, extra: int) -> None:
    """Whatever the arming day and length: a provisional timer that falls due faults,
    a non-provisional one fires; never a firing on the nominal (unchecked) day."""
    p = program_of(ONE.replace("30 days", f"{days} days"))
    start = dt.date(2026, 9, 1) + dt.timedelta(days=day)
    s = create(p, {}, f"{start.isoformat()} 09:00").state
    (t,) = s.timers
    assert t.due_at is not None
    when = t.due_at + dt.timedelta(hours=extra)
    if t.provisional:
        with pytest.raises(Fault):
            step(p, CAL, s, Tick(when))
    else:
        assert step(p, CAL, s, Tick(when)).state.state == "done"
