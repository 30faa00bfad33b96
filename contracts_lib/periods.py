"""Legal periods (期间) as pure functions over dates and a :class:`Calendar`.

The rules (see docs: "Time: legal periods"):

* The day on which a period starts is not counted: a period of N days from
  ``start`` has its nominal last day at ``start + N days``.
* Working-day periods count working days of the calendar after ``start``.
* Month and year arithmetic clamps to the month's end (31 January + 1 month =
  28/29 February; 29 February + 1 year = 28 February).
* If the last day falls on a rest day it is extended to the next working day.
* Counting backwards (reminders) moves a rest day to the *previous* working day.
* A running period can be suspended (中止) and resumed with the time it had
  left, or interrupted (中断) and started again.

Every date whose working-day status is consulted must lie inside the
calendar's years; otherwise :class:`~contracts_lib.calendar.DateOutsideCalendar`
is raised. Nothing here reads a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from contracts_lib.calendar import WEEKEND_REASON, Calendar

__all__ = [
    "MonthEnd",
    "PeriodEnd",
    "PeriodError",
    "PeriodStart",
    "PeriodUnit",
    "RunningPeriod",
    "add_months",
    "add_years",
    "interrupt",
    "nth_repeat",
    "period_end",
    "period_start_before",
    "repeat_count",
    "repeating_period_ends",
    "resume",
    "start_period",
    "suspend",
]


class PeriodError(ValueError):
    """A period was asked for with invalid arguments or in an invalid state."""


class PeriodUnit(enum.Enum):
    """The unit a period is counted in."""

    DAYS = "days"
    WORKING_DAYS = "working_days"
    MONTHS = "months"
    YEARS = "years"


class MonthEnd(enum.Enum):
    """How month arithmetic treats a day that the target month lacks."""

    CLAMP = "clamp"
    """Use the target month's last day: 31 Jan + 1 month = 28/29 Feb."""


_MONTH_UNITS: Final = (PeriodUnit.MONTHS, PeriodUnit.YEARS)
_EN_UNITS: Final = {
    PeriodUnit.DAYS: ("day", "days"),
    PeriodUnit.WORKING_DAYS: ("working day", "working days"),
    PeriodUnit.MONTHS: ("month", "months"),
    PeriodUnit.YEARS: ("year", "years"),
}
_ZH_UNITS: Final = {
    PeriodUnit.DAYS: "日",
    PeriodUnit.WORKING_DAYS: "个工作日",
    PeriodUnit.MONTHS: "个月",
    PeriodUnit.YEARS: "年",
}


# --------------------------------------------------------------------------- arithmetic


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days


def _shift_months(d: date, n: int, month_end: MonthEnd) -> tuple[date, bool]:
    """Return ``(d + n months, whether the day was clamped to the month's end)``."""
    if month_end is not MonthEnd.CLAMP:
        raise PeriodError(f"unsupported month-end rule {month_end!r}")
    _check_int("a number of months", n)
    index = d.year * 12 + (d.month - 1) + n
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise PeriodError(f"{d.isoformat()} + {n} months is outside the years 1..9999")
    last = _days_in_month(year, month0 + 1)
    return date(year, month0 + 1, min(d.day, last)), d.day > last


def add_months(d: date, n: int, month_end: MonthEnd = MonthEnd.CLAMP) -> date:
    """Return ``d`` shifted by ``n`` calendar months (``n`` may be negative).

    With :attr:`MonthEnd.CLAMP` a day the target month lacks becomes that
    month's last day: ``add_months(2025-01-31, 1) == 2025-02-28``. Raises
    :class:`PeriodError` if the result would fall outside years 1..9999.
    """
    return _shift_months(d, n, month_end)[0]


def add_years(d: date, n: int, month_end: MonthEnd = MonthEnd.CLAMP) -> date:
    """Return ``d`` shifted by ``n`` years (``n`` may be negative); 29 Feb + 1 year = 28 Feb."""
    _check_int("a number of years", n)
    return _shift_months(d, 12 * n, month_end)[0]


def _check_int(what: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    return n


def _check_amount(what: str, n: object, *, minimum: int = 0) -> None:
    if _check_int(what, n) < minimum:
        raise PeriodError(f"{what} must be >= {minimum}, got {n}")


def _check_unit(unit: object) -> None:
    if not isinstance(unit, PeriodUnit):
        raise TypeError(f"unit must be a PeriodUnit, not {type(unit).__name__}")


def _add_days(d: date, n: int) -> date:
    try:
        return d + timedelta(days=n)
    except OverflowError:
        raise PeriodError(f"{d.isoformat()} + {n} days is outside the years 1..9999") from None


def _shift(
    d: date, amount: int, unit: PeriodUnit, calendar: Calendar | None, month_end: MonthEnd
) -> tuple[date, bool]:
    """Move ``d`` by ``amount`` units (negative: backwards); return (date, clamped)."""
    if unit is PeriodUnit.DAYS:
        return _add_days(d, amount), False
    if unit is PeriodUnit.WORKING_DAYS:
        if calendar is None:
            raise PeriodError("counting working days needs a calendar")
        if amount >= 0:
            return calendar.add_working_days(d, amount), False
        return calendar.subtract_working_days(d, -amount), False
    if unit is PeriodUnit.MONTHS:
        return _shift_months(d, amount, month_end)
    return _shift_months(d, 12 * amount, month_end)


def _amount_en(amount: int, unit: PeriodUnit) -> str:
    singular, plural = _EN_UNITS[unit]
    return f"{amount} {singular if amount == 1 else plural}"


def _amount_zh(amount: int, unit: PeriodUnit) -> str:
    return f"{amount}{_ZH_UNITS[unit]}"


def _reason_zh(reason: str) -> str:
    return "周末" if reason == WEEKEND_REASON else reason


def _skipped(
    calendar: Calendar, first: date, stop: date, step: int
) -> tuple[tuple[date, str], ...]:
    """The rest days from ``first`` (inclusive) towards ``stop`` (exclusive), with reasons."""
    result: list[tuple[date, str]] = []
    d = first
    while d != stop:
        reason = calendar.rest_day_reason(d)
        assert reason is not None, "only rest days are skipped"
        result.append((d, reason))
        d = d + timedelta(days=step)
    return tuple(result)


# --------------------------------------------------------------------------- forwards


@dataclass(frozen=True)
class PeriodEnd:
    """The last day of a period counted forwards from ``start``.

    ``nominal_end`` is the day the counting rule gives; ``end`` is the legal
    last day after extension over rest days (``extended_over`` lists the rest
    days skipped, with their reasons, and is empty if there was no extension).
    ``nominal_end_rest_reason`` is why ``nominal_end`` is a rest day, or None
    if it is a working day. ``month_end_clamped`` tells whether month
    arithmetic hit a shorter month. ``calendar_version`` identifies the
    calendar data the result depends on.
    """

    start: date
    amount: int
    unit: PeriodUnit
    nominal_end: date
    end: date
    extended_over: tuple[tuple[date, str], ...]
    month_end_clamped: bool
    calendar_version: str
    nominal_end_rest_reason: str | None

    def explain_en(self) -> str:
        """Return one English sentence explaining how ``end`` was reached."""
        nominal = self.nominal_end.isoformat()
        if self.amount == 0:
            head = f"A period due on {nominal} ends that day"
        else:
            verb = "ends" if self.amount == 1 else "end"
            head = (
                f"{_amount_en(self.amount, self.unit)} from {self.start.isoformat()} "
                f"(start day not counted) {verb} on {nominal}"
            )
        if self.month_end_clamped:
            head += " (clamped to the end of that shorter month)"
        tail = f"(calendar {self.calendar_version})."
        reason = self.nominal_end_rest_reason
        if reason is None:
            return f"{head}, a working day {tail}"
        if self.end == self.nominal_end:
            return (
                f"{head}, a rest day ({reason}); the period is not extended, "
                f"so it ends on {nominal} {tail}"
            )
        return (
            f"{head}, a rest day ({reason}), so the period ends on the next working day, "
            f"{self.end.isoformat()} {tail}"
        )

    def explain_zh(self) -> str:
        """Return one Chinese sentence explaining how ``end`` was reached."""
        nominal = self.nominal_end.isoformat()
        if self.amount == 0:
            head = f"期限为{self.start.isoformat()}当日"
        else:
            head = (
                f"自{self.start.isoformat()}起算{_amount_zh(self.amount, self.unit)}"
                f"（起算日不计入），期间届满日为{nominal}"
            )
        if self.month_end_clamped:
            head += "（该月无对应日，以该月最后一日为准）"
        tail = f"（日历 {self.calendar_version}）。"
        reason = self.nominal_end_rest_reason
        if reason is None:
            return f"{head}，该日为工作日{tail}"
        if self.end == self.nominal_end:
            return (
                f"{head}，该日为休息日（{_reason_zh(reason)}），不予顺延，期间于{nominal}届满{tail}"
            )
        return (
            f"{head}，该日为休息日（{_reason_zh(reason)}），"
            f"顺延至其后第一个工作日{self.end.isoformat()}{tail}"
        )


def period_end(
    start: date,
    amount: int,
    unit: PeriodUnit,
    calendar: Calendar,
    *,
    extend_to_working_day: bool = True,
    month_end: MonthEnd = MonthEnd.CLAMP,
) -> PeriodEnd:
    """Return the last day of a period of ``amount`` ``unit`` counted from ``start``.

    The start day is not counted. ``DAYS``: ``start + amount`` days.
    ``WORKING_DAYS``: the ``amount``-th working day after ``start``.
    ``MONTHS``/``YEARS``: month arithmetic clamped to the month's end. If the
    nominal last day is a rest day and ``extend_to_working_day`` is true, the
    period ends on the next working day.

    ``amount`` must be >= 0 (:class:`PeriodError`). ``amount == 0`` means the
    start day itself is the last day, still extended if it is a rest day: this
    is how "due by date X" is expressed (``period_end(X, 0, DAYS, cal)``).

    The nominal last day and every day up to the end (and, for working days,
    every day counted) must be covered by ``calendar``; otherwise
    :class:`DateOutsideCalendar` is raised. ``start`` itself need not be.
    """
    _check_unit(unit)
    _check_amount("a period's amount", amount)
    nominal, clamped = _shift(start, amount, unit, calendar, month_end)
    reason = calendar.rest_day_reason(nominal)
    end = nominal
    if reason is not None and extend_to_working_day:
        end = calendar.next_working_day(nominal)
    return PeriodEnd(
        start=start,
        amount=amount,
        unit=unit,
        nominal_end=nominal,
        end=end,
        extended_over=_skipped(calendar, nominal, end, 1),
        month_end_clamped=clamped,
        calendar_version=calendar.version,
        nominal_end_rest_reason=reason,
    )


# --------------------------------------------------------------------------- backwards


@dataclass(frozen=True)
class PeriodStart:
    """The day reached by counting ``amount`` ``unit`` back from ``anchor``.

    Used for reminders ("3 working days before the due date"). ``nominal_start``
    is the day the counting rule gives; ``start`` is the result after moving a
    rest day back to the previous working day (``moved_over`` lists the rest
    days passed, from ``nominal_start`` backwards, empty if none).
    """

    anchor: date
    amount: int
    unit: PeriodUnit
    nominal_start: date
    start: date
    moved_over: tuple[tuple[date, str], ...]
    month_end_clamped: bool
    calendar_version: str
    nominal_start_rest_reason: str | None

    def explain_en(self) -> str:
        """Return one English sentence explaining how ``start`` was reached."""
        nominal = self.nominal_start.isoformat()
        head = (
            f"Counting {_amount_en(self.amount, self.unit)} back from "
            f"{self.anchor.isoformat()} (that day not counted) gives {nominal}"
        )
        if self.month_end_clamped:
            head += " (clamped to the end of that shorter month)"
        tail = f"(calendar {self.calendar_version})."
        reason = self.nominal_start_rest_reason
        if reason is None:
            return f"{head}, a working day {tail}"
        if self.start == self.nominal_start:
            return f"{head}, a rest day ({reason}); it is not moved {tail}"
        return (
            f"{head}, a rest day ({reason}), so it moves back to the previous working day, "
            f"{self.start.isoformat()} {tail}"
        )

    def explain_zh(self) -> str:
        """Return one Chinese sentence explaining how ``start`` was reached."""
        nominal = self.nominal_start.isoformat()
        head = (
            f"自{self.anchor.isoformat()}向前推算{_amount_zh(self.amount, self.unit)}"
            f"（该日不计入）为{nominal}"
        )
        if self.month_end_clamped:
            head += "（该月无对应日，以该月最后一日为准）"
        tail = f"（日历 {self.calendar_version}）。"
        reason = self.nominal_start_rest_reason
        if reason is None:
            return f"{head}，该日为工作日{tail}"
        if self.start == self.nominal_start:
            return f"{head}，该日为休息日（{_reason_zh(reason)}），不予调整{tail}"
        return (
            f"{head}，该日为休息日（{_reason_zh(reason)}），"
            f"提前至其前最后一个工作日{self.start.isoformat()}{tail}"
        )


def period_start_before(
    anchor: date,
    amount: int,
    unit: PeriodUnit,
    calendar: Calendar,
    *,
    move_to_working_day: bool = True,
    month_end: MonthEnd = MonthEnd.CLAMP,
) -> PeriodStart:
    """Count ``amount`` ``unit`` back from ``anchor`` (``anchor`` not counted).

    ``DAYS``: ``anchor - amount`` days; ``WORKING_DAYS``: the ``amount``-th
    working day before ``anchor``; ``MONTHS``/``YEARS``: month arithmetic
    clamped to the month's end. If the day reached is a rest day and
    ``move_to_working_day`` is true, the result is the *previous* working day:
    a reminder must come earlier, never later. ``amount`` must be >= 0.
    Every day consulted must be covered (:class:`DateOutsideCalendar`).
    """
    _check_unit(unit)
    _check_amount("a period's amount", amount)
    nominal, clamped = _shift(anchor, -amount, unit, calendar, month_end)
    reason = calendar.rest_day_reason(nominal)
    start = nominal
    if reason is not None and move_to_working_day:
        start = calendar.previous_working_day(nominal)
    return PeriodStart(
        anchor=anchor,
        amount=amount,
        unit=unit,
        nominal_start=nominal,
        start=start,
        moved_over=_skipped(calendar, nominal, start, -1),
        month_end_clamped=clamped,
        calendar_version=calendar.version,
        nominal_start_rest_reason=reason,
    )


# --------------------------------------------------------------------------- repetition


def nth_repeat(
    start: date,
    k: int,
    every_amount: int,
    unit: PeriodUnit,
    calendar: Calendar,
    *,
    month_end: MonthEnd = MonthEnd.CLAMP,
) -> PeriodEnd:
    """Return the ``k``-th occurrence (``k >= 1``) of a repetition every ``every_amount`` ``unit``.

    The occurrence is computed from ``start`` as a period of
    ``k * every_amount`` units (so clamping never drifts: 31 Aug + 6 months =
    28/29 Feb, + 12 months = 31 Aug) and extended to a working day.
    """
    _check_amount("k", k, minimum=1)
    _check_amount("a repetition's interval", every_amount, minimum=1)
    return period_end(start, k * every_amount, unit, calendar, month_end=month_end)


def repeat_count(
    start: date,
    every_amount: int,
    unit: PeriodUnit,
    for_amount: int,
    for_unit: PeriodUnit,
    calendar: Calendar | None = None,
) -> int:
    """Return how many occurrences a repetition has within its window.

    Occurrence ``k`` (``k >= 1``) counts when its *nominal* date
    (``start + k * every_amount unit``, before extension) is on or before the
    window's nominal end (``start + for_amount for_unit``). For example every
    6 months for 5 years gives 10. Pure date arithmetic: ``calendar`` is
    consulted only if either unit is ``WORKING_DAYS``, and must then be given
    (:class:`PeriodError` otherwise). ``every_amount`` must be >= 1 and
    ``for_amount`` >= 0 (:class:`PeriodError`).
    """
    _check_unit(unit)
    _check_unit(for_unit)
    _check_amount("a repetition's interval", every_amount, minimum=1)
    _check_amount("a repetition window's amount", for_amount)
    if calendar is None and PeriodUnit.WORKING_DAYS in (unit, for_unit):
        raise PeriodError("a repetition counted in working days needs a calendar")
    if unit in _MONTH_UNITS and for_unit in _MONTH_UNITS:
        every_months = every_amount * (12 if unit is PeriodUnit.YEARS else 1)
        for_months = for_amount * (12 if for_unit is PeriodUnit.YEARS else 1)
        return for_months // every_months
    if unit is PeriodUnit.DAYS and for_unit is PeriodUnit.DAYS:
        return for_amount // every_amount
    window_end, _ = _shift(start, for_amount, for_unit, calendar, MonthEnd.CLAMP)
    if unit is PeriodUnit.DAYS:
        return max(0, (window_end - start).days) // every_amount
    if unit is PeriodUnit.WORKING_DAYS:
        assert calendar is not None  # checked above
        return calendar.count_working_days(start, window_end) // every_amount
    count = 0
    while (
        _shift(start, (count + 1) * every_amount, unit, calendar, MonthEnd.CLAMP)[0] <= window_end
    ):
        count += 1
    return count


def repeating_period_ends(
    start: date,
    every_amount: int,
    unit: PeriodUnit,
    for_amount: int,
    for_unit: PeriodUnit,
    calendar: Calendar,
    *,
    month_end: MonthEnd = MonthEnd.CLAMP,
) -> tuple[PeriodEnd, ...]:
    """Return every occurrence of a repetition within its window, in order.

    Occurrences are :func:`nth_repeat` for ``k = 1 .. repeat_count(...)``.
    Raises :class:`DateOutsideCalendar` if any occurrence lies beyond the
    calendar; an engine that must not wait for future holiday notices should
    compute one occurrence at a time with :func:`nth_repeat` instead.
    """
    count = repeat_count(start, every_amount, unit, for_amount, for_unit, calendar)
    return tuple(
        nth_repeat(start, k, every_amount, unit, calendar, month_end=month_end)
        for k in range(1, count + 1)
    )


# --------------------------------------------------------------------------- suspension


@dataclass(frozen=True)
class RunningPeriod:
    """A period that may be suspended (中止), resumed, or interrupted (中断).

    While running, ``suspended_on`` and ``remaining`` are None and
    ``nominal_end``/``end`` are the current nominal and legal last days. While
    suspended, ``suspended_on`` is the day of suspension and ``remaining`` the
    time left: calendar days (for ``DAYS``, ``MONTHS`` and ``YEARS`` periods)
    or working days (for ``WORKING_DAYS`` periods); ``nominal_end``/``end``
    keep the values from before the suspension. ``calendar_version`` is the
    calendar used by the latest computation.
    """

    start: date
    amount: int
    unit: PeriodUnit
    calendar_version: str
    suspended_on: date | None
    remaining: int | None
    nominal_end: date
    end: date

    @property
    def is_suspended(self) -> bool:
        """Whether the period is currently suspended."""
        return self.suspended_on is not None


def start_period(
    start: date,
    amount: int,
    unit: PeriodUnit,
    calendar: Calendar,
    *,
    month_end: MonthEnd = MonthEnd.CLAMP,
) -> RunningPeriod:
    """Return a running period of ``amount`` ``unit`` from ``start`` (see :func:`period_end`)."""
    result = period_end(start, amount, unit, calendar, month_end=month_end)
    return RunningPeriod(
        start=start,
        amount=amount,
        unit=unit,
        calendar_version=result.calendar_version,
        suspended_on=None,
        remaining=None,
        nominal_end=result.nominal_end,
        end=result.end,
    )


def suspend(period: RunningPeriod, on_date: date, calendar: Calendar) -> RunningPeriod:
    """Suspend a running period on ``on_date`` and record the time it has left.

    ``remaining`` is the number of calendar days from ``on_date`` to
    ``nominal_end`` (for a ``WORKING_DAYS`` period: the working days ``w``
    with ``on_date < w <= nominal_end``), and 0 if ``on_date`` falls in the
    extension after ``nominal_end``. Raises :class:`PeriodError` if the period
    is already suspended, or ``on_date`` is before its start or after its end.
    """
    if period.suspended_on is not None:
        raise PeriodError(
            f"the period is already suspended (since {period.suspended_on.isoformat()})"
        )
    if on_date < period.start:
        raise PeriodError(
            f"cannot suspend on {on_date.isoformat()}, before the period starts "
            f"({period.start.isoformat()})"
        )
    if on_date > period.end:
        raise PeriodError(
            f"cannot suspend on {on_date.isoformat()}: the period ended on {period.end.isoformat()}"
        )
    if period.unit is PeriodUnit.WORKING_DAYS:
        remaining = calendar.count_working_days(on_date, period.nominal_end)
    else:
        remaining = max(0, (period.nominal_end - on_date).days)
    return RunningPeriod(
        start=period.start,
        amount=period.amount,
        unit=period.unit,
        calendar_version=calendar.version,
        suspended_on=on_date,
        remaining=remaining,
        nominal_end=period.nominal_end,
        end=period.end,
    )


def resume(period: RunningPeriod, on_date: date, calendar: Calendar) -> RunningPeriod:
    """Resume a suspended period on ``on_date`` with the time it had left.

    The new nominal end is ``on_date`` plus ``remaining`` calendar days (or
    the ``remaining``-th working day after ``on_date`` for a ``WORKING_DAYS``
    period), extended to the next working day if it is a rest day. Resuming
    on the day of suspension gives back the original end. Raises
    :class:`PeriodError` if the period is not suspended or ``on_date`` is
    before the day of suspension.
    """
    if period.suspended_on is None or period.remaining is None:
        raise PeriodError("cannot resume a period that is not suspended")
    if on_date < period.suspended_on:
        raise PeriodError(
            f"cannot resume on {on_date.isoformat()}, before the suspension on "
            f"{period.suspended_on.isoformat()}"
        )
    if period.unit is PeriodUnit.WORKING_DAYS:
        nominal = calendar.add_working_days(on_date, period.remaining)
    else:
        nominal = _add_days(on_date, period.remaining)
    return RunningPeriod(
        start=period.start,
        amount=period.amount,
        unit=period.unit,
        calendar_version=calendar.version,
        suspended_on=None,
        remaining=None,
        nominal_end=nominal,
        end=calendar.next_working_day(nominal),
    )


def interrupt(period: RunningPeriod, on_date: date, calendar: Calendar) -> RunningPeriod:
    """Interrupt a period on ``on_date``: it starts again in full from that day.

    The result equals ``start_period(on_date, period.amount, period.unit,
    calendar)`` (the day of interruption is not counted). A suspended period
    may be interrupted too. Raises :class:`PeriodError` if ``on_date`` is
    before the period's start, after the end of a running period, or before
    the suspension of a suspended one.
    """
    if on_date < period.start:
        raise PeriodError(
            f"cannot interrupt on {on_date.isoformat()}, before the period starts "
            f"({period.start.isoformat()})"
        )
    if period.suspended_on is None and on_date > period.end:
        raise PeriodError(
            f"cannot interrupt on {on_date.isoformat()}: the period ended on "
            f"{period.end.isoformat()}"
        )
    if period.suspended_on is not None and on_date < period.suspended_on:
        raise PeriodError(
            f"cannot interrupt on {on_date.isoformat()}, before the suspension on "
            f"{period.suspended_on.isoformat()}"
        )
    return start_period(on_date, period.amount, period.unit, calendar)
