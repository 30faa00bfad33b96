"""Month and year arithmetic, and repetitions (every 6 months for 5 years...)."""

from __future__ import annotations

from datetime import date

import pytest

from contracts_lib import (
    DateOutsideCalendar,
    MonthEnd,
    PeriodError,
    PeriodUnit,
    add_months,
    add_years,
    calendar_from_mapping,
    load_calendar,
    nth_repeat,
    repeat_count,
    repeating_period_ends,
)

CN = load_calendar("cn")
M, Y, D, W = PeriodUnit.MONTHS, PeriodUnit.YEARS, PeriodUnit.DAYS, PeriodUnit.WORKING_DAYS

# A plain calendar (weekends only) for the years the official one does not cover.
PLAIN = calendar_from_mapping(
    {
        "format": "jrule-calendar/1",
        "id": "plain",
        "title": "weekends only",
        "timezone": "Asia/Shanghai",
        "years": list(range(2024, 2032)),
        "weekend": ["saturday", "sunday"],
        "holidays": [],
        "working_days": [],
    }
)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2025, 1, 31), 2, date(2025, 3, 31)),
        (date(2025, 1, 31), 3, date(2025, 4, 30)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
        (date(2025, 11, 30), 14, date(2027, 1, 30)),
        (date(2025, 3, 31), -1, date(2025, 2, 28)),
        (date(2025, 1, 31), -2, date(2024, 11, 30)),
        (date(2025, 1, 15), -1, date(2024, 12, 15)),
        (date(2025, 1, 15), -13, date(2023, 12, 15)),
        (date(2025, 5, 31), 0, date(2025, 5, 31)),
        (date(2028, 2, 29), -12, date(2027, 2, 28)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected
    assert add_months(start, months, MonthEnd.CLAMP) == expected


@pytest.mark.parametrize(
    ("start", "years", "expected"),
    [
        (date(2024, 2, 29), 1, date(2025, 2, 28)),
        (date(2024, 2, 29), 4, date(2028, 2, 29)),
        (date(2024, 2, 29), -1, date(2023, 2, 28)),
        (date(2025, 10, 1), 2, date(2027, 10, 1)),
        (date(2025, 10, 1), -2, date(2023, 10, 1)),
    ],
)
def test_add_years(start: date, years: int, expected: date) -> None:
    assert add_years(start, years) == expected


def test_month_arithmetic_limits() -> None:
    with pytest.raises(PeriodError, match=r"outside the years 1..9999"):
        add_months(date(9999, 12, 1), 1)
    with pytest.raises(PeriodError):
        add_years(date(1, 1, 1), -1)
    with pytest.raises(TypeError):
        add_months(date(2025, 1, 1), 1.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- repetitions


@pytest.mark.parametrize(
    ("start", "every", "unit", "for_amount", "for_unit", "expected"),
    [
        (date(2025, 3, 1), 6, M, 5, Y, 10),  # re-query every 6 months for 5 years
        (date(2025, 8, 31), 6, M, 5, Y, 10),
        (date(2025, 3, 1), 1, Y, 5, Y, 5),
        (date(2025, 3, 1), 7, M, 2, Y, 3),
        (date(2025, 3, 1), 6, M, 0, Y, 0),
        (date(2025, 3, 1), 7, D, 30, D, 4),
        (date(2025, 3, 1), 10, D, 30, D, 3),
        (date(2025, 1, 1), 30, D, 2, M, 1),  # window ends 2025-03-01, 59 days later
        (date(2025, 7, 1), 30, D, 2, M, 2),  # window ends 2025-09-01, 62 days later
        (date(2025, 1, 31), 1, M, 59, D, 2),  # Feb 28 and Mar 31 are within 2025-03-31
        (date(2025, 1, 31), 1, M, 58, D, 1),  # window ends 2025-03-30
    ],
)
def test_repeat_count(
    start: date, every: int, unit: PeriodUnit, for_amount: int, for_unit: PeriodUnit, expected: int
) -> None:
    assert repeat_count(start, every, unit, for_amount, for_unit) == expected


def test_repeat_count_in_working_days_needs_a_calendar() -> None:
    with pytest.raises(PeriodError, match=r"needs a calendar"):
        repeat_count(date(2025, 9, 26), 2, W, 7, W)
    with pytest.raises(PeriodError, match=r"needs a calendar"):
        repeat_count(date(2025, 9, 26), 2, D, 7, W)
    # working days after 2025-09-26: 09-28, 09-29, 09-30, 10-09, 10-10, 10-11, 10-13
    assert repeat_count(date(2025, 9, 26), 2, W, 7, W, CN) == 3
    assert repeat_count(date(2025, 9, 26), 5, D, 4, W, CN) == 2  # window ends 2025-10-09
    assert repeat_count(date(2025, 9, 26), 1, W, 17, D, CN) == 7  # window ends 2025-10-13


def test_repeat_count_rejects_bad_amounts() -> None:
    with pytest.raises(PeriodError, match=r"interval must be >= 1, got 0"):
        repeat_count(date(2025, 3, 1), 0, M, 5, Y)
    with pytest.raises(PeriodError, match=r"must be >= 0, got -1"):
        repeat_count(date(2025, 3, 1), 6, M, -1, Y)


def test_nth_repeat_does_not_drift() -> None:
    first = nth_repeat(date(2025, 8, 31), 1, 6, M, CN)
    assert (first.nominal_end, first.end, first.month_end_clamped) == (
        date(2026, 2, 28),
        date(2026, 2, 28),  # a make-up Saturday: no extension
        True,
    )
    second = nth_repeat(date(2025, 8, 31), 2, 6, M, CN)
    assert (second.nominal_end, second.end, second.month_end_clamped) == (
        date(2026, 8, 31),
        date(2026, 8, 31),
        False,
    )
    with pytest.raises(PeriodError, match=r"k must be >= 1, got 0"):
        nth_repeat(date(2025, 8, 31), 0, 6, M, CN)
    with pytest.raises(DateOutsideCalendar):
        nth_repeat(date(2025, 8, 31), 3, 6, M, CN)  # 2027-02-28


def test_repeating_period_ends_monthly() -> None:
    ends = repeating_period_ends(date(2025, 1, 31), 1, M, 6, M, CN)
    assert [(e.nominal_end, e.end) for e in ends] == [
        (date(2025, 2, 28), date(2025, 2, 28)),
        (date(2025, 3, 31), date(2025, 3, 31)),
        (date(2025, 4, 30), date(2025, 4, 30)),
        (date(2025, 5, 31), date(2025, 6, 3)),  # Dragon Boat Festival 2025
        (date(2025, 6, 30), date(2025, 6, 30)),
        (date(2025, 7, 31), date(2025, 7, 31)),
    ]
    assert [e.amount for e in ends] == [1, 2, 3, 4, 5, 6]


def test_repeating_period_ends_every_6_months_for_5_years() -> None:
    ends = repeating_period_ends(date(2025, 8, 31), 6, M, 5, Y, PLAIN)
    assert [e.nominal_end for e in ends] == [
        date(2026, 2, 28),
        date(2026, 8, 31),
        date(2027, 2, 28),
        date(2027, 8, 31),
        date(2028, 2, 29),
        date(2028, 8, 31),
        date(2029, 2, 28),
        date(2029, 8, 31),
        date(2030, 2, 28),
        date(2030, 8, 31),
    ]
    # with weekends only: 2026-02-28 is a Saturday -> Monday 2026-03-02;
    # 2027-02-28 is a Sunday -> 2027-03-01; 2030-08-31 is a Saturday -> 2030-09-02
    assert ends[0].end == date(2026, 3, 2)
    assert ends[2].end == date(2027, 3, 1)
    assert ends[9].end == date(2030, 9, 2)
    with pytest.raises(DateOutsideCalendar):
        repeating_period_ends(date(2025, 8, 31), 6, M, 5, Y, CN)
