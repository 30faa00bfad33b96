"""Properties of periods that hold for every start date and amount in the calendar."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from contracts_lib import (
    DateOutsideCalendar,
    PeriodUnit,
    interrupt,
    load_calendar,
    period_end,
    period_start_before,
    resume,
    start_period,
    suspend,
)

CN = load_calendar("cn")

# Start dates and amounts chosen so that every date consulted stays in 2025-2026.
starts = st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 6, 30))
periods = st.one_of(
    st.tuples(starts, st.integers(0, 150), st.just(PeriodUnit.DAYS)),
    st.tuples(starts, st.integers(0, 60), st.just(PeriodUnit.WORKING_DAYS)),
    st.tuples(starts, st.integers(0, 5), st.just(PeriodUnit.MONTHS)),
    st.tuples(
        st.dates(min_value=date(2025, 1, 1), max_value=date(2025, 12, 31)),
        st.integers(0, 1),
        st.just(PeriodUnit.YEARS),
    ),
)
anchors = st.dates(min_value=date(2025, 7, 1), max_value=date(2026, 12, 31))


@given(periods)
def test_extended_end_is_a_working_day_not_before_the_nominal_end(
    period: tuple[date, int, PeriodUnit],
) -> None:
    start, amount, unit = period
    result = period_end(start, amount, unit, CN)
    assert CN.is_working_day(result.end)
    assert result.start <= result.nominal_end <= result.end
    # every day skipped is a rest day, and they are exactly the days before the end
    gap = (result.end - result.nominal_end).days
    assert [d for d, _ in result.extended_over] == [
        result.nominal_end + timedelta(days=i) for i in range(gap)
    ]
    assert all(CN.rest_day_reason(d) == reason for d, reason in result.extended_over)
    if unit is PeriodUnit.DAYS:
        assert (result.nominal_end - start).days == amount
    if unit is PeriodUnit.WORKING_DAYS:
        assert CN.count_working_days(start, result.nominal_end) == amount


@given(periods)
def test_without_extension_the_end_is_the_nominal_end(period: tuple[date, int, PeriodUnit]) -> None:
    start, amount, unit = period
    fixed = period_end(start, amount, unit, CN, extend_to_working_day=False)
    extended = period_end(start, amount, unit, CN)
    assert fixed.end == fixed.nominal_end == extended.nominal_end
    assert fixed.extended_over == ()


@given(starts, st.integers(0, 60), st.integers(0, 60))
def test_add_working_days_is_monotone(d: date, n1: int, n2: int) -> None:
    a, b = CN.add_working_days(d, n1), CN.add_working_days(d, n2)
    assert (a < b) == (n1 < n2) and (a == b) == (n1 == n2)
    assert CN.add_working_days(d, 0) == d


@given(starts, st.integers(1, 60))
def test_subtract_undoes_add_from_a_working_day(d: date, n: int) -> None:
    w = CN.next_working_day(d)
    assert CN.subtract_working_days(CN.add_working_days(w, n), n) == w


@given(anchors, st.integers(0, 100), st.sampled_from([PeriodUnit.DAYS, PeriodUnit.WORKING_DAYS]))
def test_counting_back_gives_an_earlier_working_day(
    anchor: date, amount: int, unit: PeriodUnit
) -> None:
    result = period_start_before(anchor, amount, unit, CN)
    assert CN.is_working_day(result.start)
    assert result.start <= result.nominal_start <= anchor
    # nothing between the result and the nominal day is a working day
    assert all(CN.is_rest_day(d) for d, _ in result.moved_over)


@given(periods, st.data())
def test_suspend_then_resume_the_same_day_changes_nothing(
    period: tuple[date, int, PeriodUnit], data: st.DataObject
) -> None:
    start, amount, unit = period
    p = start_period(start, amount, unit, CN)
    on = data.draw(st.dates(min_value=start, max_value=p.end))
    r = resume(suspend(p, on, CN), on, CN)
    assert r.end == p.end
    if on <= p.nominal_end:
        assert r == p


@given(periods, st.data())
def test_resuming_later_never_ends_earlier(
    period: tuple[date, int, PeriodUnit], data: st.DataObject
) -> None:
    start, amount, unit = period
    p = start_period(start, amount, unit, CN)
    on = data.draw(st.dates(min_value=start, max_value=p.end))
    later = data.draw(st.integers(0, 60))
    # keep the resumed period inside the calendar (the remaining time is at most what
    # was left before, plus a few days of extension)
    assume(p.end + timedelta(days=later + 30) <= date(2026, 12, 31))
    r = resume(suspend(p, on, CN), on + timedelta(days=later), CN)
    assert r.end >= p.end
    assert CN.is_working_day(r.end)


@given(periods, st.data())
def test_interrupt_is_starting_fresh(
    period: tuple[date, int, PeriodUnit], data: st.DataObject
) -> None:
    start, amount, unit = period
    p = start_period(start, amount, unit, CN)
    on = data.draw(st.dates(min_value=start, max_value=p.end))
    try:
        fresh = start_period(on, amount, unit, CN)
    except DateOutsideCalendar:
        with pytest.raises(DateOutsideCalendar):
            interrupt(p, on, CN)
        return
    assert interrupt(p, on, CN) == fresh
