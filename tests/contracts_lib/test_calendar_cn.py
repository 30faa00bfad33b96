"""The built-in calendar "cn" against the State Council notices in the domain brief."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import pytest

from contracts_lib import (
    Calendar,
    CalendarError,
    DateOutsideCalendar,
    builtin_calendars,
    load_calendar,
)

CN = load_calendar("cn")

# The notices, copied by hand from docs/domain.md ("Official calendars").
HOLIDAY_RANGES = [
    ("2025-01-01", "2025-01-01"),
    ("2025-01-28", "2025-02-04"),
    ("2025-04-04", "2025-04-06"),
    ("2025-05-01", "2025-05-05"),
    ("2025-05-31", "2025-06-02"),
    ("2025-10-01", "2025-10-08"),
    ("2026-01-01", "2026-01-03"),
    ("2026-02-15", "2026-02-23"),
    ("2026-04-04", "2026-04-06"),
    ("2026-05-01", "2026-05-05"),
    ("2026-06-19", "2026-06-21"),
    ("2026-09-25", "2026-09-27"),
    ("2026-10-01", "2026-10-07"),
]
MAKE_UP_WORKING_DAYS = [
    "2025-01-26",
    "2025-02-08",
    "2025-04-27",
    "2025-09-28",
    "2025-10-11",
    "2026-01-04",
    "2026-02-14",
    "2026-02-28",
    "2026-05-09",
    "2026-09-20",
    "2026-10-10",
]


def _expand(first: str, last: str) -> list[date]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


HOLIDAYS = {d for first, last in HOLIDAY_RANGES for d in _expand(first, last)}
WORKING = {date.fromisoformat(s) for s in MAKE_UP_WORKING_DAYS}
ALL_DAYS = _expand("2025-01-01", "2026-12-31")


def test_metadata() -> None:
    assert builtin_calendars() == ("cn",)
    assert (CN.id, CN.timezone, CN.first_year, CN.last_year) == ("cn", "Asia/Shanghai", 2025, 2026)
    assert CN.weekend == (5, 6)
    assert len(CN.holidays) == 61  # 28 days in 2025 + 33 in 2026
    assert len(HOLIDAYS) == 61
    assert set(CN.holidays) == HOLIDAYS
    assert set(CN.working_days) == WORKING
    assert CN.version == f"cn@{CN.content_hash[:12]}"
    assert load_calendar("cn") is CN  # built-ins are loaded once


def test_every_day_of_2025_and_2026_matches_the_notices() -> None:
    assert len(ALL_DAYS) == 730
    for d in ALL_DAYS:
        expected_rest = d in HOLIDAYS or (d.weekday() >= 5 and d not in WORKING)
        assert CN.is_rest_day(d) is expected_rest, d
        assert CN.is_working_day(d) is (not expected_rest), d
        reason = CN.rest_day_reason(d)
        if d in HOLIDAYS:
            assert reason is not None and reason != "weekend", d
        elif expected_rest:
            assert reason == "weekend", d
        else:
            assert reason is None, d


def test_working_day_counts_per_year() -> None:
    # 2025: 365 days, 104 weekend days, 28 holidays of which 10 fall on weekends
    # (Feb 1, 2; Apr 5, 6; May 3, 4; May 31, Jun 1; Oct 4, 5), 5 make-up days:
    # 365 - 104 - (28 - 10) + 5 = 248.
    assert CN.count_working_days(date(2024, 12, 31), date(2025, 12, 31)) == 248
    # 2026: 365 days, 104 weekend days, 33 holidays of which 14 fall on weekends
    # (Jan 3; Feb 15, 21, 22; Apr 4, 5; May 2, 3; Jun 20, 21; Sep 26, 27; Oct 3, 4),
    # 6 make-up days: 365 - 104 - (33 - 14) + 6 = 248.
    assert CN.count_working_days(date(2025, 12, 31), date(2026, 12, 31)) == 248


def test_holiday_names() -> None:
    assert CN.rest_day_reason(date(2025, 1, 1)) == "元旦 New Year's Day"
    assert CN.rest_day_reason(date(2025, 1, 28)) == "春节 Spring Festival"
    assert CN.rest_day_reason(date(2026, 2, 23)) == "春节 Spring Festival"
    assert CN.rest_day_reason(date(2025, 4, 4)) == "清明节 Qingming Festival"
    assert CN.rest_day_reason(date(2026, 5, 5)) == "劳动节 Labour Day"
    assert CN.rest_day_reason(date(2025, 6, 2)) == "端午节 Dragon Boat Festival"
    assert CN.rest_day_reason(date(2026, 9, 25)) == "中秋节 Mid-Autumn Festival"
    assert CN.rest_day_reason(date(2026, 10, 7)) == "国庆节 National Day"
    assert (
        CN.rest_day_reason(date(2025, 10, 6))
        == "国庆节、中秋节 National Day and Mid-Autumn Festival"
    )
    assert CN.working_days[date(2026, 2, 28)].startswith("春节调休")


@pytest.mark.parametrize(
    ("day", "next_working", "previous_working"),
    [
        (date(2025, 1, 1), date(2025, 1, 2), date(2024, 12, 31)),
        (date(2025, 1, 25), date(2025, 1, 26), date(2025, 1, 24)),
        (date(2025, 1, 30), date(2025, 2, 5), date(2025, 1, 27)),
        (date(2025, 2, 9), date(2025, 2, 10), date(2025, 2, 8)),
        (date(2025, 10, 4), date(2025, 10, 9), date(2025, 9, 30)),
        (date(2025, 10, 12), date(2025, 10, 13), date(2025, 10, 11)),
        (date(2026, 1, 3), date(2026, 1, 4), date(2025, 12, 31)),
        (date(2026, 2, 20), date(2026, 2, 24), date(2026, 2, 14)),
        (date(2026, 3, 1), date(2026, 3, 2), date(2026, 2, 28)),
        (date(2026, 10, 3), date(2026, 10, 8), date(2026, 9, 30)),
        (date(2026, 2, 28), date(2026, 2, 28), date(2026, 2, 28)),  # make-up Saturday
        (date(2025, 9, 16), date(2025, 9, 16), date(2025, 9, 16)),  # ordinary Tuesday
    ],
)
def test_next_and_previous_working_day(
    day: date, next_working: date, previous_working: date
) -> None:
    assert CN.next_working_day(day) == next_working
    if previous_working.year == 2024:
        with pytest.raises(DateOutsideCalendar):
            CN.previous_working_day(day)
    else:
        assert CN.previous_working_day(day) == previous_working


def test_add_and_subtract_working_days() -> None:
    assert CN.add_working_days(date(2025, 10, 1), 0) == date(2025, 10, 1)  # unchanged
    assert CN.add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)
    assert CN.add_working_days(date(2025, 9, 30), 3) == date(2025, 10, 11)
    assert CN.subtract_working_days(date(2025, 10, 9), 1) == date(2025, 9, 30)
    assert CN.subtract_working_days(date(2025, 10, 9), 3) == date(2025, 9, 28)
    assert CN.count_working_days(date(2025, 9, 26), date(2025, 10, 13)) == 7
    assert CN.count_working_days(date(2025, 10, 13), date(2025, 9, 26)) == 0
    with pytest.raises(ValueError, match=r"must be >= 0"):
        CN.add_working_days(date(2025, 9, 30), -1)
    with pytest.raises(TypeError):
        CN.add_working_days(date(2025, 9, 30), 1.5)  # type: ignore[arg-type]


def test_dates_outside_raise_with_the_documented_message() -> None:
    assert not CN.covers(date(2027, 1, 4)) and not CN.covers(date(2024, 12, 31))
    assert CN.covers(date(2025, 1, 1)) and CN.covers(date(2026, 12, 31))
    for ask in (CN.is_working_day, CN.is_rest_day, CN.rest_day_reason, CN.next_working_day):
        with pytest.raises(DateOutsideCalendar) as info:
            ask(date(2027, 1, 4))
        assert str(info.value) == (
            f"2027-01-04 is outside calendar cn@{CN.content_hash[:12]} (covers 2025–2026); "
            "add that year's holiday notice"
        )
        assert isinstance(info.value, CalendarError) and isinstance(info.value, ValueError)
        assert (info.value.first_year, info.value.last_year) == (2025, 2026)
    with pytest.raises(DateOutsideCalendar, match=r"^2027-01-01 is outside"):
        CN.add_working_days(date(2026, 12, 31), 1)  # the 31st is a Thursday: 1 more is 2027


def _independent_canonical_hash(raw: dict[str, object]) -> str:
    """The documented canonical encoding, re-implemented from the module docstring."""
    holidays = raw["holidays"]
    working = raw["working_days"]
    assert isinstance(holidays, list) and isinstance(working, list)
    obj = {
        "format": raw["format"],
        "id": raw["id"],
        "title": raw["title"],
        "timezone": raw["timezone"],
        "years": raw["years"],
        "weekend": raw["weekend"],
        "holidays": sorted(holidays, key=lambda e: e["date"]),
        "working_days": sorted(working, key=lambda e: e["date"]),
    }
    encoded = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _builtin_raw() -> dict[str, object]:
    text = (resources.files("contracts_lib") / "calendars" / "cn.json").read_text("utf-8")
    raw = json.loads(text)
    assert isinstance(raw, dict)
    return raw


def test_content_hash_is_sha256_of_the_canonical_encoding() -> None:
    raw = _builtin_raw()
    assert CN.content_hash == _independent_canonical_hash(raw)
    # the file is already in canonical order, so re-encoding it compactly gives the same bytes
    assert CN.canonical_json() == json.dumps(
        raw,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")


def test_content_hash_ignores_layout_but_not_content(tmp_path: Path) -> None:
    raw = _builtin_raw()
    holidays = raw["holidays"]
    assert isinstance(holidays, list)
    shuffled = {**raw, "holidays": list(reversed(holidays))}
    path = tmp_path / "cn-reformatted.json"
    path.write_text(json.dumps(shuffled, indent=7, ensure_ascii=True), encoding="utf-8")
    same = load_calendar(str(path))
    assert same.content_hash == CN.content_hash and same == CN and hash(same) == hash(CN)

    renamed = [dict(e) for e in holidays]
    renamed[0]["name"] = "元旦"
    changed = load_calendar_from(tmp_path, {**raw, "holidays": renamed})
    assert changed.content_hash != CN.content_hash and changed != CN


def load_calendar_from(directory: Path, data: dict[str, object]) -> Calendar:
    path = directory / "changed.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return load_calendar(str(path))


def test_calendar_is_immutable() -> None:
    with pytest.raises(AttributeError):
        CN.id = "xx"  # type: ignore[misc]
    with pytest.raises(TypeError):
        CN.holidays[date(2025, 3, 3)] = "nope"  # type: ignore[index]
    with pytest.raises(TypeError):
        CN.working_days[date(2025, 3, 8)] = "nope"  # type: ignore[index]


def test_direct_construction_checks_its_hash_and_invariants() -> None:
    def build(**changes: object) -> Calendar:
        fields: dict[str, object] = {
            "id": "t",
            "title": "T",
            "timezone": "Asia/Shanghai",
            "first_year": 2025,
            "last_year": 2025,
            "weekend": (5, 6),
            "holidays": {date(2025, 10, 1): "National Day"},
            "working_days": {date(2025, 9, 28): "make-up"},
        }
        fields.update(changes)
        return Calendar(**fields)  # type: ignore[arg-type]

    good = build()
    assert build(content_hash=good.content_hash) == good
    with pytest.raises(CalendarError, match=r"does not match its data"):
        build(content_hash="0" * 64)
    with pytest.raises(CalendarError, match=r"outside its years"):
        build(holidays={date(2026, 1, 1): "x"})
    with pytest.raises(CalendarError, match=r"both a holiday and a working day"):
        build(holidays={date(2025, 9, 28): "x"})
    with pytest.raises(CalendarError, match=r"is not a weekend day"):
        build(working_days={date(2025, 9, 29): "x"})
    with pytest.raises(CalendarError, match=r"invalid years"):
        build(first_year=2026)
