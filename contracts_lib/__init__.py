"""Pure legal-time and money library for jrule.

Calendars (which days are working days), legal periods (start day not
counted, month-end clamping, extension over rest days, suspension and
interruption) and money exact to the fen. Everything here is a pure function
of its arguments and the calendar data; nothing reads a clock.
"""

from contracts_lib.calendar import (
    CALENDAR_FORMAT,
    WEEKEND_REASON,
    Calendar,
    CalendarError,
    DateOutsideCalendar,
    builtin_calendars,
    calendar_from_mapping,
    load_calendar,
)
from contracts_lib.money import (
    DAILY_DELAY_RATE,
    ZERO,
    Money,
    MoneyError,
    Rounding,
    delayed_performance_interest,
)
from contracts_lib.periods import (
    MonthEnd,
    PeriodEnd,
    PeriodError,
    PeriodStart,
    PeriodUnit,
    RunningPeriod,
    add_months,
    add_years,
    interrupt,
    nth_repeat,
    period_end,
    period_start_before,
    repeat_count,
    repeating_period_ends,
    resume,
    start_period,
    suspend,
)

__all__ = [
    "CALENDAR_FORMAT",
    "DAILY_DELAY_RATE",
    "WEEKEND_REASON",
    "ZERO",
    "Calendar",
    "CalendarError",
    "DateOutsideCalendar",
    "Money",
    "MoneyError",
    "MonthEnd",
    "PeriodEnd",
    "PeriodError",
    "PeriodStart",
    "PeriodUnit",
    "Rounding",
    "RunningPeriod",
    "add_months",
    "add_years",
    "builtin_calendars",
    "calendar_from_mapping",
    "delayed_performance_interest",
    "interrupt",
    "load_calendar",
    "nth_repeat",
    "period_end",
    "period_start_before",
    "repeat_count",
    "repeating_period_ends",
    "resume",
    "start_period",
    "suspend",
]
