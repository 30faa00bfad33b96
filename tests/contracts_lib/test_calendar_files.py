"""Court calendars from files: extending "cn", standalone calendars, and bad files."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from contracts_lib import (
    CalendarError,
    DateOutsideCalendar,
    PeriodUnit,
    calendar_from_mapping,
    load_calendar,
    period_end,
)

CN = load_calendar("cn")
NATIONAL_DAY_2025 = "国庆节、中秋节 National Day and Mid-Autumn Festival"

COURT = {
    "format": "jrule-calendar/1",
    "id": "cn-bj-haidian",
    "title": "北京市海淀区人民法院 Haidian District People's Court",
    "extends": "cn",
    "closures": [{"date": "2025-09-16", "name": "闭院 Court closed (system migration)"}],
}

STANDALONE = {
    "format": "jrule-calendar/1",
    "id": "test",
    "title": "Test calendar",
    "timezone": "Asia/Shanghai",
    "years": [2025],
    "weekend": ["saturday", "sunday"],
    "holidays": [
        {"date": "2025-10-01", "name": "国庆节"},
        {"date": "2025-10-04", "name": "国庆节"},
    ],
    "working_days": [{"date": "2025-09-28", "name": "调休"}],
}


def _write(tmp_path: Path, data: object, name: str = "court.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- good files


def test_court_closure_extends_a_period(tmp_path: Path) -> None:
    court = load_calendar(_write(tmp_path, COURT))
    assert court.id == "cn-bj-haidian"
    assert (court.first_year, court.last_year, court.timezone) == (2025, 2026, "Asia/Shanghai")
    assert court.version != CN.version and court.version.startswith("cn-bj-haidian@")
    # with cn the 15 days end on Tuesday 2025-09-16; the court was closed that day
    assert period_end(date(2025, 9, 1), 15, PeriodUnit.DAYS, CN).end == date(2025, 9, 16)
    result = period_end(date(2025, 9, 1), 15, PeriodUnit.DAYS, court)
    assert result.end == date(2025, 9, 17)
    assert result.extended_over == ((date(2025, 9, 16), "闭院 Court closed (system migration)"),)
    assert result.calendar_version == court.version
    # everything of the base calendar still applies
    assert court.rest_day_reason(date(2025, 10, 3)) == NATIONAL_DAY_2025
    assert court.is_working_day(date(2026, 2, 28))
    assert len(court.holidays) == len(CN.holidays) + 1
    with pytest.raises(
        DateOutsideCalendar, match=rf"^2027-01-04 is outside calendar {court.version}"
    ):
        court.is_working_day(date(2027, 1, 4))


def test_extension_may_add_holidays_working_days_and_a_timezone(tmp_path: Path) -> None:
    data = {
        **COURT,
        "timezone": "Asia/Urumqi",
        "holidays": [{"date": "2025-03-03", "name": "local holiday"}],
        "working_days": [{"date": "2025-03-08", "name": "local make-up day"}],
    }
    court = load_calendar(_write(tmp_path, data))
    assert court.timezone == "Asia/Urumqi"
    assert court.rest_day_reason(date(2025, 3, 3)) == "local holiday"
    assert court.is_working_day(date(2025, 3, 8))  # a Saturday
    assert court.rest_day_reason(date(2025, 9, 16)) == "闭院 Court closed (system migration)"


def test_closure_on_a_weekend_day_gives_its_name(tmp_path: Path) -> None:
    data = {**COURT, "closures": [{"date": "2025-09-13", "name": "闭院"}]}
    court = load_calendar(_write(tmp_path, data))
    assert court.rest_day_reason(date(2025, 9, 13)) == "闭院"
    assert CN.rest_day_reason(date(2025, 9, 13)) == "weekend"


def test_standalone_calendar_covering_a_leap_year() -> None:
    data = {
        **STANDALONE,
        "id": "leap",
        "years": [2024, 2025],
        "holidays": [],
        "working_days": [],
    }
    cal = calendar_from_mapping(data, source="leap.json")
    # 31 Jan 2024 + 1 month = 29 Feb 2024 (a Thursday)
    result = period_end(date(2024, 1, 31), 1, PeriodUnit.MONTHS, cal)
    assert (result.nominal_end, result.end, result.month_end_clamped) == (
        date(2024, 2, 29),
        date(2024, 2, 29),
        True,
    )
    # 29 Feb 2024 + 1 year = 28 Feb 2025 (a Friday)
    result = period_end(date(2024, 2, 29), 1, PeriodUnit.YEARS, cal)
    assert (result.nominal_end, result.end, result.month_end_clamped) == (
        date(2025, 2, 28),
        date(2025, 2, 28),
        True,
    )
    # without holidays, 2025-01-01 (Wed) is a working day
    assert cal.is_working_day(date(2025, 1, 1))
    assert not cal.covers(date(2026, 1, 1))


def test_standalone_calendar_with_other_weekend() -> None:
    data = {**STANDALONE, "weekend": ["friday", "saturday"], "working_days": []}
    cal = calendar_from_mapping(data)
    assert cal.weekend == (4, 5)
    assert cal.is_rest_day(date(2025, 3, 7))  # Friday
    assert cal.is_working_day(date(2025, 3, 9))  # Sunday


def test_calendar_from_mapping_does_not_keep_a_reference() -> None:
    data = copy.deepcopy(STANDALONE)
    cal = calendar_from_mapping(data)
    data["holidays"].append({"date": "2025-03-03", "name": "later"})  # type: ignore[attr-defined]
    assert cal.is_working_day(date(2025, 3, 3))


# --------------------------------------------------------------------------- bad files

Mutation = Callable[[dict[str, Any]], object]


def _set(key: str, value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data[key] = value

    return mutate


def _drop(key: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        del data[key]

    return mutate


def _append(key: str, entry: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data.setdefault(key, []).append(entry)

    return mutate


STANDALONE_KEYS = "closures, format, holidays, id, timezone, title, weekend, working_days, years"
EXTENDING_KEYS = "closures, extends, format, holidays, id, timezone, title, working_days"

BAD_STANDALONE: list[tuple[str, Mutation, str]] = [
    (
        "unknown key",
        _set("holiday", []),
        f"unknown key 'holiday' in a standalone calendar (allowed: {STANDALONE_KEYS})",
    ),
    ("missing title", _drop("title"), "missing key 'title' in a standalone calendar"),
    ("missing years", _drop("years"), "missing key 'years' in a standalone calendar"),
    (
        "wrong format",
        _set("format", "jrule-calendar/2"),
        "format must be 'jrule-calendar/1', got 'jrule-calendar/2'",
    ),
    (
        "bad id",
        _set("id", "cn@x"),
        "id 'cn@x' must be letters, digits, '_', '.' or '-'",
    ),
    ("empty title", _set("title", " "), "title must be a non-empty string, got ' '"),
    (
        "bad timezone",
        _set("timezone", "UTC+8 Beijing"),
        "timezone 'UTC+8 Beijing' is not an IANA time zone name like 'Asia/Shanghai'",
    ),
    (
        "years not consecutive",
        _set("years", [2025, 2027]),
        "years must be consecutive and ascending, e.g. [2025, 2026]; got [2025, 2027]",
    ),
    (
        "years descending",
        _set("years", [2026, 2025]),
        "years must be consecutive and ascending, e.g. [2025, 2026]; got [2026, 2025]",
    ),
    ("years empty", _set("years", []), "years must be a non-empty list of integers, got []"),
    (
        "years as strings",
        _set("years", ["2025"]),
        "years must be a non-empty list of integers, got ['2025']",
    ),
    (
        "unknown weekend day",
        _set("weekend", ["caturday"]),
        "weekend[0]: 'caturday' is not a day name like 'saturday'",
    ),
    (
        "weekend day twice",
        _set("weekend", ["sunday", "sunday"]),
        "weekend[1]: 'sunday' is listed twice",
    ),
    (
        "impossible date",
        _set("holidays", [{"date": "2025-02-30", "name": "x"}]),
        "holidays[0]: '2025-02-30' is not a valid date",
    ),
    (
        "date not in YYYY-MM-DD form",
        _set("holidays", [{"date": "2025-1-5", "name": "x"}]),
        "holidays[0]: date '2025-1-5' is not a date in the form YYYY-MM-DD",
    ),
    (
        "compact ISO date",
        _set("holidays", [{"date": "20251001", "name": "x"}]),
        "holidays[0]: date '20251001' is not a date in the form YYYY-MM-DD",
    ),
    (
        "date not a string",
        _set("holidays", [{"date": 20251001, "name": "x"}]),
        "holidays[0]: date 20251001 is not a date in the form YYYY-MM-DD",
    ),
    (
        "entry with unknown key",
        _set("holidays", [{"date": "2025-10-01", "name": "x", "note": "y"}]),
        "holidays[0]: unknown key 'note' (allowed: date, name)",
    ),
    (
        "entry without name",
        _set("holidays", [{"date": "2025-10-01"}]),
        "holidays[0]: missing key 'name'",
    ),
    (
        "entry with empty name",
        _set("holidays", [{"date": "2025-10-01", "name": ""}]),
        "holidays[0] (2025-10-01): name must be a non-empty string, got ''",
    ),
    (
        "entry not an object",
        _set("holidays", ["2025-10-01"]),
        'holidays[0]: must be an object {"date", "name"}, got \'2025-10-01\'',
    ),
    (
        "list not a list",
        _set("holidays", {"2025-10-01": "x"}),
        "holidays must be a list of {\"date\", \"name\"} objects, got {'2025-10-01': 'x'}",
    ),
    (
        "duplicate holiday",
        _append("holidays", {"date": "2025-10-01", "name": "again"}),
        "holidays[2] (2025-10-01): duplicate date, already listed in holidays[0]",
    ),
    (
        "closure duplicating a holiday",
        _append("closures", {"date": "2025-10-04", "name": "closed"}),
        "closures[0] (2025-10-04): duplicate date, already listed in holidays[1]",
    ),
    (
        "holiday and working day",
        _append("working_days", {"date": "2025-10-04", "name": "make-up"}),
        "working_days[1] (2025-10-04): date is both a rest day and a working day "
        "(also listed in holidays[1] as '国庆节')",
    ),
    (
        "date outside years",
        _append("holidays", {"date": "2026-01-01", "name": "元旦"}),
        "holidays[2] (2026-01-01): outside the calendar's years 2025",
    ),
    (
        "working day on a weekday",
        _append("working_days", {"date": "2025-09-29", "name": "make-up"}),
        "working_days[1] (2025-09-29): a Monday is a working day already; "
        "only weekend days can be made working days",
    ),
]

BAD_EXTENDING: list[tuple[str, Mutation, str]] = [
    (
        "years in an extending calendar",
        _set("years", [2025]),
        f"unknown key 'years' in an extending calendar (allowed: {EXTENDING_KEYS})",
    ),
    ("missing title", _drop("title"), "missing key 'title' in an extending calendar"),
    (
        "unknown base",
        _set("extends", "us"),
        "extends 'us' is not a built-in calendar (built-in calendars: cn)",
    ),
    ("same id as base", _set("id", "cn"), "id 'cn' must differ from the calendar it extends"),
    (
        "closure on a base holiday",
        _set("closures", [{"date": "2025-10-01", "name": "closed"}]),
        "closures[0] (2025-10-01): duplicate date, already listed in base calendar cn",
    ),
    (
        "working day on a base holiday",
        _set("working_days", [{"date": "2025-10-04", "name": "open"}]),
        "working_days[0] (2025-10-04): date is both a rest day and a working day "
        f"(also listed in base calendar cn as '{NATIONAL_DAY_2025}')",
    ),
    (
        "closure on a base make-up working day",
        _set("closures", [{"date": "2026-02-28", "name": "closed"}]),
        "closures[0] (2026-02-28): date is both a rest day and a working day "
        "(also listed in base calendar cn as '春节调休 Spring Festival make-up working day')",
    ),
    (
        "closure outside the base years",
        _set("closures", [{"date": "2027-01-04", "name": "closed"}]),
        "closures[0] (2027-01-04): outside the calendar's years 2025–2026",
    ),
    (
        "working day duplicating a base working day",
        _set("working_days", [{"date": "2025-01-26", "name": "open"}]),
        "working_days[0] (2025-01-26): duplicate date, already listed in base calendar cn",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(m, msg) for _, m, msg in BAD_STANDALONE],
    ids=[name for name, _, _ in BAD_STANDALONE],
)
def test_bad_standalone_calendar(tmp_path: Path, mutate: Mutation, message: str) -> None:
    data = copy.deepcopy(STANDALONE)
    calendar_from_mapping(data)  # the unmutated calendar is fine
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(CalendarError) as info:
        load_calendar(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(m, msg) for _, m, msg in BAD_EXTENDING],
    ids=[name for name, _, _ in BAD_EXTENDING],
)
def test_bad_extending_calendar(tmp_path: Path, mutate: Mutation, message: str) -> None:
    data = copy.deepcopy(COURT)
    calendar_from_mapping(data)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(CalendarError) as info:
        load_calendar(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{",
            "not valid JSON: Expecting property name enclosed in double quotes (line 1 column 2)",
        ),
        ('{"id": "a", "id": "b"}', "duplicate key 'id'"),
        ('{"years": [2025.0]}', "non-integer number 2025.0"),
        ('{"years": [NaN]}', "invalid JSON constant NaN"),
        ("[]", "a calendar must be a JSON object"),
    ],
)
def test_bad_json(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "court.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError) as info:
        load_calendar(str(path))
    assert str(info.value) == f"{path}: {message}"


def test_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.json")
    with pytest.raises(CalendarError) as info:
        load_calendar(missing)
    assert str(info.value) == f"calendar file {missing} not found (built-in calendars: cn)"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match=r"^cannot read calendar file"):
        load_calendar(str(tmp_path))  # a directory
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CalendarError, match=r"^cannot read calendar file"):
        load_calendar(str(binary))


def test_mapping_errors_name_the_source() -> None:
    with pytest.raises(CalendarError) as info:
        calendar_from_mapping({**STANDALONE, "years": [2025, 2027]}, source="hz.json")
    assert str(info.value).startswith("hz.json: years must be consecutive")
    with pytest.raises(CalendarError, match=r"^<calendar>: missing key 'id'"):
        calendar_from_mapping({k: v for k, v in STANDALONE.items() if k != "id"})
