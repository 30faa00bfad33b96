"""``jrule period``: compute a legal period's last day from the command line.

::

    jrule period --from 2025-09-20 --days 15
    jrule period --from 2025-10-09 --working-days 3 --before --format json
    jrule period --from 2025-01-31 --months 1 --calendar court.json

Prints the result with its explanation in English and Chinese (``text``) or
one JSON object (``json``). Mistakes in the input (a bad date, a negative
amount, a date outside the calendar, a missing or invalid calendar file) end
in one line ``jrule period: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date
from typing import Final, TextIO

from contracts_lib.calendar import CalendarError, load_calendar
from contracts_lib.periods import (
    PeriodEnd,
    PeriodError,
    PeriodStart,
    PeriodUnit,
    period_end,
    period_start_before,
)

__all__ = ["HELP", "add_arguments", "run"]

HELP: Final = "compute a legal period's last day"

_PROG: Final = "jrule period"
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AMOUNT_RE: Final = re.compile(r"[+-]?[0-9]+")
_UNIT_OPTIONS: Final = (
    ("days", PeriodUnit.DAYS),
    ("working_days", PeriodUnit.WORKING_DAYS),
    ("months", PeriodUnit.MONTHS),
    ("years", PeriodUnit.YEARS),
)


class _UsageError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``jrule period`` options to ``parser``.

    Values are kept as strings and checked by :func:`run`, so that every
    mistake is reported the same way (one line, status 2).
    """
    parser.add_argument(
        "--from",
        dest="from_date",
        required=True,
        metavar="DATE",
        help="the day the period is counted from (YYYY-MM-DD; not counted itself)",
    )
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--days", metavar="N", help="a period of N calendar days")
    amount.add_argument(
        "--working-days", dest="working_days", metavar="N", help="a period of N working days"
    )
    amount.add_argument("--months", metavar="N", help="a period of N months")
    amount.add_argument("--years", metavar="N", help="a period of N years")
    parser.add_argument(
        "--calendar",
        default="cn",
        metavar="cn|PATH",
        help="a built-in calendar name or a jrule-calendar/1 JSON file (default: cn)",
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help="count backwards from DATE (for reminders); a rest day moves to the previous "
        "working day",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("text", "json"),
        default="text",
        help="output format (default: text)",
    )


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``jrule period`` with parsed ``args``; return the exit status.

    Writes the result to ``out`` (default: stdout) and returns 0. On a mistake
    in the input writes ``jrule period: error: <message>`` to ``err``
    (default: stderr) and returns 2; it never raises for bad input.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        start = _parse_date(args.from_date)
        amount, unit = _parse_amount(args)
        calendar = load_calendar(args.calendar)
        result: PeriodEnd | PeriodStart
        if args.before:
            result = period_start_before(start, amount, unit, calendar)
        else:
            result = period_end(start, amount, unit, calendar)
    except (_UsageError, CalendarError, PeriodError) as exc:
        print(f"{_PROG}: error: {exc}", file=err)
        return 2
    if getattr(args, "output_format", "text") == "json":
        out.write(_render_json(result))
    else:
        out.write(_render_text(result))
    return 0


def _parse_date(text: str) -> date:
    if not _DATE_RE.fullmatch(text):
        raise _UsageError(f"--from {text!r} is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _UsageError(f"--from {text!r} is not a valid date") from None


def _parse_amount(args: argparse.Namespace) -> tuple[int, PeriodUnit]:
    given = [
        (name, unit, getattr(args, name, None))
        for name, unit in _UNIT_OPTIONS
        if getattr(args, name, None) is not None
    ]
    if len(given) != 1:
        raise _UsageError("give exactly one of --days, --working-days, --months, --years")
    name, unit, raw = given[0]
    option = "--" + name.replace("_", "-")
    text = str(raw)
    if not _AMOUNT_RE.fullmatch(text):
        raise _UsageError(f"{option} {text!r} is not a whole number")
    amount = int(text)
    if amount < 0:
        raise _UsageError(f"{option} must be 0 or more, got {amount}")
    return amount, unit


def _fields(result: PeriodEnd | PeriodStart) -> dict[str, object]:
    if isinstance(result, PeriodEnd):
        return {
            "direction": "after",
            "from": result.start.isoformat(),
            "nominal_date": result.nominal_end.isoformat(),
            "date": result.end.isoformat(),
            "nominal_rest_reason": result.nominal_end_rest_reason,
            "skipped": [{"date": d.isoformat(), "reason": r} for d, r in result.extended_over],
        }
    return {
        "direction": "before",
        "from": result.anchor.isoformat(),
        "nominal_date": result.nominal_start.isoformat(),
        "date": result.start.isoformat(),
        "nominal_rest_reason": result.nominal_start_rest_reason,
        "skipped": [{"date": d.isoformat(), "reason": r} for d, r in result.moved_over],
    }


def _render_json(result: PeriodEnd | PeriodStart) -> str:
    obj = {
        **_fields(result),
        "amount": result.amount,
        "unit": result.unit.value,
        "month_end_clamped": result.month_end_clamped,
        "calendar": result.calendar_version,
        "explain_en": result.explain_en(),
        "explain_zh": result.explain_zh(),
    }
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def _render_text(result: PeriodEnd | PeriodStart) -> str:
    fields = _fields(result)
    label = "last day" if fields["direction"] == "after" else "date"
    lines = [
        f"{label}: {fields['date']}",
        f"calendar: {result.calendar_version}",
        result.explain_en(),
        result.explain_zh(),
    ]
    return "\n".join(lines) + "\n"
