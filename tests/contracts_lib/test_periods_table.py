"""Data-driven period tables (data/*.tsv) and the explanations of the results."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from contracts_lib import (
    DateOutsideCalendar,
    PeriodEnd,
    PeriodError,
    PeriodStart,
    PeriodUnit,
    load_calendar,
    period_end,
    period_start_before,
)

DATA = Path(__file__).parent / "data"
CN = load_calendar("cn")


def _rows(name: str) -> list[tuple[date, int, PeriodUnit, date, date, bool, str]]:
    rows = []
    for number, line in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) in (6, 7), f"{name}:{number}: expected 6 or 7 fields: {line!r}"
        start, amount, unit, nominal, end, clamped = fields[:6]
        assert clamped in ("y", "n"), f"{name}:{number}"
        note = fields[6] if len(fields) == 7 else ""
        rows.append(
            (
                date.fromisoformat(start),
                int(amount),
                PeriodUnit(unit),
                date.fromisoformat(nominal),
                date.fromisoformat(end),
                clamped == "y",
                f"{name}:{number} {note}",
            )
        )
    return rows


END_ROWS = _rows("period_ends.tsv")
BEFORE_ROWS = _rows("periods_before.tsv")


def test_tables_are_not_empty() -> None:
    assert len(END_ROWS) > 90
    assert len(BEFORE_ROWS) > 15


@pytest.mark.parametrize(
    ("start", "amount", "unit", "nominal", "end", "clamped", "where"),
    END_ROWS,
    ids=[row[6] for row in END_ROWS],
)
def test_period_end_table(
    start: date, amount: int, unit: PeriodUnit, nominal: date, end: date, clamped: bool, where: str
) -> None:
    result = period_end(start, amount, unit, CN)
    assert (result.nominal_end, result.end, result.month_end_clamped) == (nominal, end, clamped)
    assert result.start == start and result.amount == amount and result.unit is unit
    assert result.calendar_version == CN.version
    # the days skipped are exactly the days from the nominal end up to the end
    skipped = [d for d, _ in result.extended_over]
    assert skipped == [date.fromordinal(o) for o in range(nominal.toordinal(), end.toordinal())]
    assert (result.nominal_end_rest_reason is None) == (nominal == end)


@pytest.mark.parametrize(
    ("start", "amount", "unit", "nominal", "end", "clamped", "where"),
    END_ROWS,
    ids=[row[6] for row in END_ROWS],
)
def test_period_end_table_without_extension(
    start: date, amount: int, unit: PeriodUnit, nominal: date, end: date, clamped: bool, where: str
) -> None:
    result = period_end(start, amount, unit, CN, extend_to_working_day=False)
    assert (result.nominal_end, result.end, result.extended_over) == (nominal, nominal, ())


@pytest.mark.parametrize(
    ("anchor", "amount", "unit", "nominal", "start", "clamped", "where"),
    BEFORE_ROWS,
    ids=[row[6] for row in BEFORE_ROWS],
)
def test_period_start_before_table(
    anchor: date,
    amount: int,
    unit: PeriodUnit,
    nominal: date,
    start: date,
    clamped: bool,
    where: str,
) -> None:
    result = period_start_before(anchor, amount, unit, CN)
    assert (result.nominal_start, result.start, result.month_end_clamped) == (
        nominal,
        start,
        clamped,
    )
    moved = [d for d, _ in result.moved_over]
    assert moved == [date.fromordinal(o) for o in range(nominal.toordinal(), start.toordinal(), -1)]


def test_moved_over_lists_reasons_backwards() -> None:
    result = period_start_before(date(2025, 10, 12), 7, PeriodUnit.DAYS, CN)
    name = "国庆节、中秋节 National Day and Mid-Autumn Festival"
    assert result.moved_over == tuple((date(2025, 10, d), name) for d in (5, 4, 3, 2, 1))


def test_extended_over_lists_reasons() -> None:
    result = period_end(date(2025, 1, 10), 15, PeriodUnit.DAYS, CN)
    assert result.extended_over == ((date(2025, 1, 25), "weekend"),)
    result = period_end(date(2025, 12, 17), 15, PeriodUnit.DAYS, CN)
    assert result.extended_over == (
        (date(2026, 1, 1), "元旦 New Year's Day"),
        (date(2026, 1, 2), "元旦 New Year's Day"),
        (date(2026, 1, 3), "元旦 New Year's Day"),
    )


# --------------------------------------------------------------------------- outside the calendar


@pytest.mark.parametrize(
    ("start", "amount", "unit", "outside"),
    [
        (date(2026, 12, 20), 15, PeriodUnit.DAYS, date(2027, 1, 4)),
        (date(2026, 12, 31), 1, PeriodUnit.DAYS, date(2027, 1, 1)),
        (date(2026, 12, 31), 1, PeriodUnit.WORKING_DAYS, date(2027, 1, 1)),
        (date(2026, 8, 31), 6, PeriodUnit.MONTHS, date(2027, 2, 28)),
        (date(2026, 1, 1), 1, PeriodUnit.YEARS, date(2027, 1, 1)),
        (date(2024, 12, 1), 10, PeriodUnit.DAYS, date(2024, 12, 11)),
        (date(2024, 2, 10), 19, PeriodUnit.DAYS, date(2024, 2, 29)),  # 2024 is not covered
        (date(2024, 1, 31), 1, PeriodUnit.MONTHS, date(2024, 2, 29)),
    ],
)
def test_dates_outside_the_calendar_raise(
    start: date, amount: int, unit: PeriodUnit, outside: date
) -> None:
    with pytest.raises(DateOutsideCalendar) as info:
        period_end(start, amount, unit, CN)
    assert info.value.day == outside
    assert str(info.value) == (
        f"{outside.isoformat()} is outside calendar {CN.version} (covers 2025–2026); "
        "add that year's holiday notice"
    )


def test_last_covered_day_works_but_the_next_does_not() -> None:
    assert period_end(date(2026, 12, 31), 0, PeriodUnit.DAYS, CN).end == date(2026, 12, 31)
    assert period_end(date(2026, 12, 30), 1, PeriodUnit.WORKING_DAYS, CN).end == date(2026, 12, 31)


def test_counting_back_out_of_the_calendar_raises() -> None:
    # 2025-01-01 is a holiday, so the reminder would move back into 2024
    with pytest.raises(DateOutsideCalendar, match=r"^2024-12-31 is outside calendar cn@"):
        period_start_before(date(2025, 1, 2), 1, PeriodUnit.DAYS, CN)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("unit", list(PeriodUnit))
def test_negative_amount_is_rejected(unit: PeriodUnit) -> None:
    with pytest.raises(PeriodError, match=r"amount must be >= 0, got -1"):
        period_end(date(2025, 3, 3), -1, unit, CN)
    with pytest.raises(PeriodError, match=r"amount must be >= 0, got -1"):
        period_start_before(date(2025, 3, 3), -1, unit, CN)


def test_non_int_amount_is_rejected() -> None:
    with pytest.raises(TypeError):
        period_end(date(2025, 3, 3), 1.0, PeriodUnit.DAYS, CN)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        period_end(date(2025, 3, 3), True, PeriodUnit.DAYS, CN)
    with pytest.raises(TypeError):
        period_end(date(2025, 3, 3), 1, "days", CN)  # type: ignore[arg-type]


def test_huge_amount_is_a_period_error() -> None:
    with pytest.raises(PeriodError):
        period_end(date(2025, 3, 3), 10**12, PeriodUnit.DAYS, CN)
    with pytest.raises(PeriodError):
        period_end(date(2025, 3, 3), 10**6, PeriodUnit.YEARS, CN)


# --------------------------------------------------------------------------- explanations


def test_explain_extended_period() -> None:
    result = period_end(date(2025, 9, 20), 15, PeriodUnit.DAYS, CN)
    name = "国庆节、中秋节 National Day and Mid-Autumn Festival"
    assert result.explain_en() == (
        f"15 days from 2025-09-20 (start day not counted) end on 2025-10-05, a rest day "
        f"({name}), so the period ends on the next working day, 2025-10-09 "
        f"(calendar {CN.version})."
    )
    assert result.explain_zh() == (
        f"自2025-09-20起算15日（起算日不计入），期间届满日为2025-10-05，该日为休息日（{name}），"
        f"顺延至其后第一个工作日2025-10-09（日历 {CN.version}）。"
    )


def test_explain_working_day_and_clamp() -> None:
    result = period_end(date(2025, 1, 31), 1, PeriodUnit.MONTHS, CN)
    assert result.explain_en() == (
        "1 month from 2025-01-31 (start day not counted) ends on 2025-02-28 "
        f"(clamped to the end of that shorter month), a working day (calendar {CN.version})."
    )
    assert result.explain_zh() == (
        "自2025-01-31起算1个月（起算日不计入），期间届满日为2025-02-28"
        f"（该月无对应日，以该月最后一日为准），该日为工作日（日历 {CN.version}）。"
    )


def test_explain_weekend_and_working_days() -> None:
    result = period_end(date(2025, 1, 10), 15, PeriodUnit.DAYS, CN)
    assert result.explain_en() == (
        "15 days from 2025-01-10 (start day not counted) end on 2025-01-25, a rest day "
        "(weekend), so the period ends on the next working day, 2025-01-26 "
        f"(calendar {CN.version})."
    )
    assert "该日为休息日（周末），顺延至其后第一个工作日2025-01-26" in result.explain_zh()
    result = period_end(date(2025, 9, 26), 3, PeriodUnit.WORKING_DAYS, CN)
    assert result.explain_en().startswith(
        "3 working days from 2025-09-26 (start day not counted) end on 2025-09-30, a working day"
    )
    assert result.explain_zh().startswith("自2025-09-26起算3个工作日（起算日不计入）")


def test_explain_due_date_and_no_extension() -> None:
    due = period_end(date(2025, 10, 5), 0, PeriodUnit.DAYS, CN)
    assert due.explain_en().startswith("A period due on 2025-10-05 ends that day, a rest day (")
    assert due.explain_zh().startswith("期限为2025-10-05当日，该日为休息日（")
    assert "2025-10-09" in due.explain_en() and "2025-10-09" in due.explain_zh()
    fixed = period_end(date(2025, 10, 4), 1, PeriodUnit.DAYS, CN, extend_to_working_day=False)
    assert "the period is not extended, so it ends on 2025-10-05" in fixed.explain_en()
    assert "不予顺延，期间于2025-10-05届满" in fixed.explain_zh()


def test_explain_counting_back() -> None:
    result = period_start_before(date(2025, 10, 12), 7, PeriodUnit.DAYS, CN)
    name = "国庆节、中秋节 National Day and Mid-Autumn Festival"
    assert result.explain_en() == (
        f"Counting 7 days back from 2025-10-12 (that day not counted) gives 2025-10-05, "
        f"a rest day ({name}), so it moves back to the previous working day, 2025-09-30 "
        f"(calendar {CN.version})."
    )
    assert result.explain_zh() == (
        f"自2025-10-12向前推算7日（该日不计入）为2025-10-05，该日为休息日（{name}），"
        f"提前至其前最后一个工作日2025-09-30（日历 {CN.version}）。"
    )
    plain = period_start_before(date(2025, 10, 9), 3, PeriodUnit.WORKING_DAYS, CN)
    assert plain.explain_en().endswith(f"gives 2025-09-28, a working day (calendar {CN.version}).")
    kept = period_start_before(
        date(2025, 10, 12), 7, PeriodUnit.DAYS, CN, move_to_working_day=False
    )
    assert kept.start == date(2025, 10, 5) and kept.moved_over == ()
    assert "it is not moved" in kept.explain_en() and "不予调整" in kept.explain_zh()


def test_results_are_frozen_values() -> None:
    a = period_end(date(2025, 9, 20), 15, PeriodUnit.DAYS, CN)
    b = period_end(date(2025, 9, 20), 15, PeriodUnit.DAYS, CN)
    assert a == b and hash(a) == hash(b) and isinstance(a, PeriodEnd)
    with pytest.raises(AttributeError):
        a.end = date(2025, 10, 10)  # type: ignore[misc]
    s = period_start_before(date(2025, 10, 9), 3, PeriodUnit.WORKING_DAYS, CN)
    assert isinstance(s, PeriodStart)
