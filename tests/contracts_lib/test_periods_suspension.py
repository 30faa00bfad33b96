"""Suspension (中止), resumption and interruption (中断) of a running period."""

from __future__ import annotations

from datetime import date

import pytest

from contracts_lib import (
    PeriodError,
    PeriodUnit,
    RunningPeriod,
    interrupt,
    load_calendar,
    resume,
    start_period,
    suspend,
)

CN = load_calendar("cn")
D, W, M = PeriodUnit.DAYS, PeriodUnit.WORKING_DAYS, PeriodUnit.MONTHS


def test_start_period() -> None:
    p = start_period(date(2025, 9, 20), 15, D, CN)
    assert p == RunningPeriod(
        start=date(2025, 9, 20),
        amount=15,
        unit=D,
        calendar_version=CN.version,
        suspended_on=None,
        remaining=None,
        nominal_end=date(2025, 10, 5),
        end=date(2025, 10, 9),
    )
    assert not p.is_suspended


def test_suspend_and_resume_calendar_days() -> None:
    p = start_period(date(2025, 9, 1), 15, D, CN)  # ends Tuesday 2025-09-16
    s = suspend(p, date(2025, 9, 10), CN)
    assert s.is_suspended and s.suspended_on == date(2025, 9, 10) and s.remaining == 6
    assert (s.nominal_end, s.end) == (date(2025, 9, 16), date(2025, 9, 16))
    r = resume(s, date(2025, 9, 24), CN)
    assert (r.suspended_on, r.remaining) == (None, None)
    assert (r.nominal_end, r.end) == (date(2025, 9, 30), date(2025, 9, 30))
    # resumed two days later the 6 days end on 2025-10-02, in National Day
    r = resume(s, date(2025, 9, 26), CN)
    assert (r.nominal_end, r.end) == (date(2025, 10, 2), date(2025, 10, 9))
    assert (r.start, r.amount, r.unit) == (date(2025, 9, 1), 15, D)


def test_month_period_is_suspended_in_calendar_days() -> None:
    p = start_period(date(2025, 3, 31), 6, M, CN)
    assert p.nominal_end == date(2025, 9, 30)
    s = suspend(p, date(2025, 9, 20), CN)
    assert s.remaining == 10
    r = resume(s, date(2025, 12, 1), CN)
    assert (r.nominal_end, r.end) == (date(2025, 12, 11), date(2025, 12, 11))


def test_working_day_period_is_suspended_in_working_days() -> None:
    p = start_period(date(2025, 9, 26), 6, W, CN)
    assert p.end == date(2025, 10, 11)  # make-up Saturday
    s = suspend(p, date(2025, 9, 29), CN)
    assert s.remaining == 4  # 09-30, 10-09, 10-10, 10-11
    r = resume(s, date(2026, 2, 12), CN)
    # 02-13, 02-14 (make-up Saturday), Spring Festival, 02-24, 02-25
    assert (r.nominal_end, r.end) == (date(2026, 2, 25), date(2026, 2, 25))


def test_suspension_during_the_extension_leaves_nothing() -> None:
    p = start_period(date(2025, 9, 20), 15, D, CN)  # nominal 10-05, end 10-09
    s = suspend(p, date(2025, 10, 7), CN)
    assert s.remaining == 0
    r = resume(s, date(2025, 10, 20), CN)
    assert (r.nominal_end, r.end) == (date(2025, 10, 20), date(2025, 10, 20))
    r = resume(s, date(2025, 10, 7), CN)
    assert r.end == p.end


def test_suspension_errors() -> None:
    p = start_period(date(2025, 9, 1), 15, D, CN)
    s = suspend(p, date(2025, 9, 10), CN)
    with pytest.raises(
        PeriodError, match=r"^the period is already suspended \(since 2025-09-10\)$"
    ):
        suspend(s, date(2025, 9, 11), CN)
    with pytest.raises(
        PeriodError, match=r"^cannot suspend on 2025-09-17: the period ended on 2025-09-16$"
    ):
        suspend(p, date(2025, 9, 17), CN)
    with pytest.raises(PeriodError, match=r"before the period starts"):
        suspend(p, date(2025, 8, 31), CN)
    with pytest.raises(PeriodError, match=r"^cannot resume a period that is not suspended$"):
        resume(p, date(2025, 9, 10), CN)
    with pytest.raises(
        PeriodError, match=r"^cannot resume on 2025-09-09, before the suspension on 2025-09-10$"
    ):
        resume(s, date(2025, 9, 9), CN)
    assert suspend(p, date(2025, 9, 16), CN).remaining == 0  # the last day itself is fine


def test_interrupt_starts_again() -> None:
    p = start_period(date(2025, 9, 1), 15, D, CN)
    i = interrupt(p, date(2025, 9, 10), CN)
    assert (i.start, i.nominal_end, i.end) == (
        date(2025, 9, 10),
        date(2025, 9, 25),
        date(2025, 9, 25),
    )
    assert i == start_period(date(2025, 9, 10), 15, D, CN)
    # interrupting a suspended period starts it again too
    s = suspend(p, date(2025, 9, 5), CN)
    assert interrupt(s, date(2025, 9, 20), CN) == start_period(date(2025, 9, 20), 15, D, CN)
    with pytest.raises(PeriodError, match=r"before the suspension"):
        interrupt(s, date(2025, 9, 4), CN)
    with pytest.raises(PeriodError, match=r"^cannot interrupt on 2025-09-17: the period ended on"):
        interrupt(p, date(2025, 9, 17), CN)
    with pytest.raises(PeriodError, match=r"before the period starts"):
        interrupt(p, date(2025, 8, 1), CN)


def test_values_are_immutable() -> None:
    p = start_period(date(2025, 9, 1), 15, D, CN)
    with pytest.raises(AttributeError):
        p.end = date(2025, 9, 17)  # type: ignore[misc]
    suspend(p, date(2025, 9, 10), CN)
    assert not p.is_suspended
