"""Official calendars: which days are working days for a court.

A calendar is data (a ``jrule-calendar/1`` JSON file), chosen per court and
versioned. It covers a fixed, contiguous range of years; asking about any date
outside those years raises :class:`DateOutsideCalendar` -- the library never
guesses a year whose holiday notice it has not been given.

A day is a *working day* when it is listed in ``working_days`` (a weekend day
made a working day, 调休), or when it is neither a holiday/closure nor a
weekend day. Every other day is a *rest day*.

Canonical encoding and version
------------------------------
A calendar's ``content_hash`` is the hex SHA-256 of its canonical encoding::

    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        .encode("utf-8")

where ``obj`` is the *effective* (merged, normalised) calendar::

    {"format": "jrule-calendar/1", "id": ..., "title": ..., "timezone": ...,
     "years": [first, ..., last],
     "weekend": [day names in Monday..Sunday order],
     "holidays": [{"date": "YYYY-MM-DD", "name": ...}, ...],      # by date
     "working_days": [{"date": "YYYY-MM-DD", "name": ...}, ...]}  # by date

Court closures are merged into ``holidays`` and a calendar that ``extends``
another one is hashed after merging, so whitespace, key order, entry order and
the way a file was split into base and extension do not change the hash; any
change to a date, a name, the title or the years does. ``Calendar.version`` is
``f"{id}@{content_hash[:12]}"``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Final, NoReturn

__all__ = [
    "CALENDAR_FORMAT",
    "WEEKEND_REASON",
    "Calendar",
    "CalendarError",
    "DateOutsideCalendar",
    "builtin_calendars",
    "calendar_from_mapping",
    "load_calendar",
]

CALENDAR_FORMAT: Final = "jrule-calendar/1"
"""The only calendar file format this library reads."""

WEEKEND_REASON: Final = "weekend"
"""What :meth:`Calendar.rest_day_reason` returns for an ordinary weekend day."""

_WEEKDAY_NAMES: Final = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
_BUILTIN: Final = ("cn",)
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TIMEZONE_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*)*")
_MIN_YEAR: Final = 1
_MAX_YEAR: Final = 9998  # leaves room for "the next day" arithmetic


class CalendarError(ValueError):
    """A calendar file is invalid, or a calendar cannot answer a question."""


class DateOutsideCalendar(CalendarError):
    """A date outside the calendar's covered years was asked about.

    Attributes: ``day`` (the date), ``calendar_version``, ``first_year`` and
    ``last_year`` (the years the calendar covers).
    """

    def __init__(self, day: date, calendar_version: str, first_year: int, last_year: int) -> None:
        years = _years_text(first_year, last_year)
        super().__init__(
            f"{day.isoformat()} is outside calendar {calendar_version} (covers {years}); "
            f"add that year's holiday notice"
        )
        self.day = day
        self.calendar_version = calendar_version
        self.first_year = first_year
        self.last_year = last_year


def _years_text(first_year: int, last_year: int) -> str:
    return str(first_year) if first_year == last_year else f"{first_year}–{last_year}"


def _canonical_json(
    *,
    id: str,
    title: str,
    timezone: str,
    first_year: int,
    last_year: int,
    weekend: tuple[int, ...],
    holidays: Mapping[date, str],
    working_days: Mapping[date, str],
) -> bytes:
    """Return the canonical encoding of calendar data (see the module docstring)."""
    obj = {
        "format": CALENDAR_FORMAT,
        "id": id,
        "title": title,
        "timezone": timezone,
        "years": list(range(first_year, last_year + 1)),
        "weekend": [_WEEKDAY_NAMES[i] for i in sorted(weekend)],
        "holidays": [{"date": d.isoformat(), "name": holidays[d]} for d in sorted(holidays)],
        "working_days": [
            {"date": d.isoformat(), "name": working_days[d]} for d in sorted(working_days)
        ],
    }
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


@dataclass(frozen=True)
class Calendar:
    """An official calendar covering the years ``first_year``..``last_year``.

    ``holidays`` maps each rest day other than an ordinary weekend day
    (statutory holidays and court closures) to its name; ``working_days`` maps
    each weekend day made a working day (调休) to its name; ``weekend`` lists
    the weekday numbers (Monday = 0) that are rest days unless listed in
    ``working_days``. Both mappings are read-only.

    ``content_hash`` is computed when left empty and checked when given;
    construct calendars with :func:`load_calendar` or
    :func:`calendar_from_mapping` rather than directly. Two calendars are equal
    exactly when their data (and so their hash) is equal.
    """

    id: str
    title: str
    timezone: str
    first_year: int
    last_year: int
    weekend: tuple[int, ...]
    holidays: Mapping[date, str] = field(repr=False, compare=False)
    working_days: Mapping[date, str] = field(repr=False, compare=False)
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not (_MIN_YEAR <= self.first_year <= self.last_year <= _MAX_YEAR):
            raise CalendarError(
                f"calendar {self.id}: invalid years {self.first_year}..{self.last_year}"
            )
        weekend = tuple(sorted(set(self.weekend)))
        if any(not 0 <= i <= 6 for i in weekend):
            raise CalendarError(f"calendar {self.id}: weekend days must be 0 (Monday)..6 (Sunday)")
        holidays = MappingProxyType(dict(sorted(self.holidays.items())))
        working = MappingProxyType(dict(sorted(self.working_days.items())))
        for d in (*holidays, *working):
            if not self.first_year <= d.year <= self.last_year:
                raise CalendarError(f"calendar {self.id}: {d.isoformat()} is outside its years")
        for d in working:
            if d in holidays:
                raise CalendarError(
                    f"calendar {self.id}: {d.isoformat()} is both a holiday and a working day"
                )
            if d.weekday() not in weekend:
                raise CalendarError(
                    f"calendar {self.id}: working day {d.isoformat()} is not a weekend day"
                )
        object.__setattr__(self, "weekend", weekend)
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(self, "working_days", working)
        digest = hashlib.sha256(self.canonical_json()).hexdigest()
        if not self.content_hash:
            object.__setattr__(self, "content_hash", digest)
        elif self.content_hash != digest:
            raise CalendarError(
                f"calendar {self.id}: content_hash {self.content_hash} does not match "
                f"its data ({digest})"
            )

    @property
    def version(self) -> str:
        """``"<id>@<first 12 hex digits of content_hash>"``, e.g. ``cn@0123456789ab``."""
        return f"{self.id}@{self.content_hash[:12]}"

    def canonical_json(self) -> bytes:
        """Return the canonical encoding whose SHA-256 is ``content_hash``."""
        return _canonical_json(
            id=self.id,
            title=self.title,
            timezone=self.timezone,
            first_year=self.first_year,
            last_year=self.last_year,
            weekend=self.weekend,
            holidays=self.holidays,
            working_days=self.working_days,
        )

    def covers(self, d: date) -> bool:
        """Return whether ``d`` lies in the years this calendar covers."""
        return self.first_year <= d.year <= self.last_year

    def _require(self, d: date) -> None:
        if not self.covers(d):
            raise DateOutsideCalendar(d, self.version, self.first_year, self.last_year)

    def is_working_day(self, d: date) -> bool:
        """Return whether ``d`` is a working day.

        Raises :class:`DateOutsideCalendar` if ``d`` is not covered.
        """
        return self.rest_day_reason(d) is None

    def is_rest_day(self, d: date) -> bool:
        """Return whether ``d`` is a rest day (holiday, closure or weekend).

        Raises :class:`DateOutsideCalendar` if ``d`` is not covered.
        """
        return self.rest_day_reason(d) is not None

    def rest_day_reason(self, d: date) -> str | None:
        """Return why ``d`` is a rest day, or ``None`` if it is a working day.

        The reason is the holiday's (or closure's) name, or
        :data:`WEEKEND_REASON` (``"weekend"``) for an ordinary weekend day.
        Raises :class:`DateOutsideCalendar` if ``d`` is not covered.
        """
        self._require(d)
        if d in self.working_days:
            return None
        name = self.holidays.get(d)
        if name is not None:
            return name
        if d.weekday() in self.weekend:
            return WEEKEND_REASON
        return None

    def next_working_day(self, d: date) -> date:
        """Return the first working day on or after ``d``.

        Raises :class:`DateOutsideCalendar` if a date that must be consulted
        (``d`` itself, or a later day while searching) is not covered.
        """
        while self.is_rest_day(d):
            d = d + timedelta(days=1)
        return d

    def previous_working_day(self, d: date) -> date:
        """Return the last working day on or before ``d``.

        Raises :class:`DateOutsideCalendar` if a date that must be consulted
        (``d`` itself, or an earlier day while searching) is not covered.
        """
        while self.is_rest_day(d):
            d = d - timedelta(days=1)
        return d

    def add_working_days(self, d: date, n: int) -> date:
        """Return the ``n``-th working day after ``d`` (``d`` itself not counted).

        ``n`` must be >= 0; ``n == 0`` returns ``d`` unchanged (whatever kind of
        day it is) without consulting the calendar. Only the days after ``d``
        are consulted, and each must be covered (:class:`DateOutsideCalendar`).
        """
        _check_count(n)
        while n > 0:
            d = d + timedelta(days=1)
            if self.is_working_day(d):
                n -= 1
        return d

    def subtract_working_days(self, d: date, n: int) -> date:
        """Return the ``n``-th working day before ``d`` (``d`` itself not counted).

        The mirror image of :meth:`add_working_days`: ``n`` must be >= 0 and
        ``n == 0`` returns ``d`` unchanged.
        """
        _check_count(n)
        while n > 0:
            d = d - timedelta(days=1)
            if self.is_working_day(d):
                n -= 1
        return d

    def count_working_days(self, after: date, through: date) -> int:
        """Return the number of working days ``w`` with ``after < w <= through``.

        Returns 0 when ``through <= after``. Every day in the range must be
        covered (:class:`DateOutsideCalendar`).
        """
        return sum(1 for d in _days_between(after, through) if self.is_working_day(d))


def _days_between(after: date, through: date) -> Iterator[date]:
    d = after + timedelta(days=1)
    while d <= through:
        yield d
        d = d + timedelta(days=1)


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"a number of working days must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"a number of working days must be >= 0, got {n}")


# --------------------------------------------------------------------------- loading


def builtin_calendars() -> tuple[str, ...]:
    """Return the names of the calendars shipped with the library (e.g. ``("cn",)``)."""
    return _BUILTIN


def load_calendar(name_or_path: str) -> Calendar:
    """Load a built-in calendar by name (see :func:`builtin_calendars`) or a file by path.

    A file is a ``jrule-calendar/1`` JSON object, either standalone or
    extending a built-in calendar (``"extends": "cn"``); see
    :func:`calendar_from_mapping` for the rules. Raises :class:`CalendarError`
    naming the file (and the offending entry) if the file cannot be read or is
    invalid. Built-in calendars are loaded once and shared (they are immutable).
    """
    if name_or_path in _BUILTIN:
        return _load_builtin(name_or_path)
    path = Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalendarError(
            f"calendar file {name_or_path} not found (built-in calendars: {', '.join(_BUILTIN)})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarError(f"cannot read calendar file {name_or_path}: {exc}") from None
    return _calendar_from_text(text, source=name_or_path)


@cache
def _load_builtin(name: str) -> Calendar:
    resource = resources.files("contracts_lib") / "calendars" / f"{name}.json"
    text = resource.read_text(encoding="utf-8")
    return _calendar_from_text(text, source=f"built-in calendar {name}")


def _calendar_from_text(text: str, *, source: str) -> Calendar:
    def no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, value in pairs:
            if key in result:
                _fail(source, f"duplicate key {key!r}")
            result[key] = value
        return result

    def no_float(text: str) -> NoReturn:
        _fail(source, f"non-integer number {text}")

    def no_constant(text: str) -> NoReturn:
        _fail(source, f"invalid JSON constant {text}")

    try:
        data = json.loads(
            text,
            object_pairs_hook=no_duplicate_keys,
            parse_float=no_float,
            parse_constant=no_constant,
        )
    except json.JSONDecodeError as exc:
        raise CalendarError(
            f"{source}: not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        _fail(source, "a calendar must be a JSON object")
    return calendar_from_mapping(data, source=source)


_STANDALONE_REQUIRED: Final = frozenset(
    {"format", "id", "title", "timezone", "years", "weekend", "holidays", "working_days"}
)
_STANDALONE_OPTIONAL: Final = frozenset({"closures"})
_EXTENDING_REQUIRED: Final = frozenset({"format", "id", "title", "extends"})
_EXTENDING_OPTIONAL: Final = frozenset({"timezone", "holidays", "closures", "working_days"})


def _fail(source: str, message: str) -> NoReturn:
    raise CalendarError(f"{source}: {message}")


@dataclass(frozen=True)
class _Entry:
    where: str  # e.g. "holidays[3]" or "rest day 2025-10-01 of base calendar cn"
    day: date
    name: str
    rest: bool  # True: holiday/closure; False: working day


def calendar_from_mapping(data: Mapping[str, object], *, source: str = "<calendar>") -> Calendar:
    """Build a :class:`Calendar` from parsed ``jrule-calendar/1`` data, validating strictly.

    A standalone calendar has exactly the keys ``format``, ``id``, ``title``,
    ``timezone``, ``years`` (consecutive ints), ``weekend`` (day names),
    ``holidays`` and ``working_days``, and optionally ``closures``. An
    extending calendar has ``format``, ``id``, ``title`` and ``extends`` (a
    built-in calendar name), optionally ``timezone`` (default: the base's) and
    extra ``holidays``, ``closures`` and ``working_days``; it takes its years
    and weekend from the base. Entries are ``{"date": "YYYY-MM-DD", "name": ...}``.

    Raises :class:`CalendarError` naming ``source`` and the offending entry for:
    unknown or missing keys, wrong types, bad dates, dates outside the years,
    a date listed twice (including one already in the base calendar), a date
    that is both a rest day and a working day, and a working day that is not a
    weekend day.
    """
    extends = data.get("extends")
    if extends is None:
        required, optional = _STANDALONE_REQUIRED, _STANDALONE_OPTIONAL
    else:
        required, optional = _EXTENDING_REQUIRED, _EXTENDING_OPTIONAL
    _check_keys(source, data, required, optional, extending=extends is not None)

    fmt = data["format"]
    if fmt != CALENDAR_FORMAT:
        _fail(source, f"format must be {CALENDAR_FORMAT!r}, got {fmt!r}")
    cal_id = _string(source, "id", data["id"])
    if not _ID_RE.fullmatch(cal_id):
        _fail(source, f"id {cal_id!r} must be letters, digits, '_', '.' or '-'")
    title = _string(source, "title", data["title"])

    base: Calendar | None = None
    if extends is not None:
        base_name = _string(source, "extends", extends)
        if base_name not in _BUILTIN:
            _fail(
                source,
                f"extends {base_name!r} is not a built-in calendar "
                f"(built-in calendars: {', '.join(_BUILTIN)})",
            )
        if base_name == cal_id:
            _fail(source, f"id {cal_id!r} must differ from the calendar it extends")
        base = _load_builtin(base_name)

    if base is None:
        timezone = _timezone(source, data["timezone"])
        first_year, last_year = _years(source, data["years"])
        weekend = _weekend(source, data["weekend"])
    else:
        timezone = _timezone(source, data["timezone"]) if "timezone" in data else base.timezone
        first_year, last_year = base.first_year, base.last_year
        weekend = base.weekend

    entries: list[_Entry] = []
    for key, rest in (("holidays", True), ("closures", True), ("working_days", False)):
        if key in data:
            entries.extend(_entries(source, key, data[key], rest=rest))

    seen: dict[date, _Entry] = {}
    if base is not None:
        for d, name in base.holidays.items():
            seen[d] = _Entry(f"base calendar {base.id}", d, name, rest=True)
        for d, name in base.working_days.items():
            seen[d] = _Entry(f"base calendar {base.id}", d, name, rest=False)

    holidays: dict[date, str] = dict(base.holidays) if base is not None else {}
    working: dict[date, str] = dict(base.working_days) if base is not None else {}
    for entry in entries:
        label = f"{entry.where} ({entry.day.isoformat()})"
        if not first_year <= entry.day.year <= last_year:
            _fail(
                source,
                f"{label}: outside the calendar's years {_years_text(first_year, last_year)}",
            )
        previous = seen.get(entry.day)
        if previous is not None:
            if previous.rest == entry.rest:
                _fail(source, f"{label}: duplicate date, already listed in {previous.where}")
            _fail(
                source,
                f"{label}: date is both a rest day and a working day "
                f"(also listed in {previous.where} as {previous.name!r})",
            )
        seen[entry.day] = entry
        if entry.rest:
            holidays[entry.day] = entry.name
        else:
            if entry.day.weekday() not in weekend:
                day_name = _WEEKDAY_NAMES[entry.day.weekday()].capitalize()
                _fail(
                    source,
                    f"{label}: a {day_name} is a working day already; "
                    f"only weekend days can be made working days",
                )
            working[entry.day] = entry.name

    return Calendar(
        id=cal_id,
        title=title,
        timezone=timezone,
        first_year=first_year,
        last_year=last_year,
        weekend=weekend,
        holidays=holidays,
        working_days=working,
    )


def _check_keys(
    source: str,
    data: Mapping[str, object],
    required: frozenset[str],
    optional: frozenset[str],
    *,
    extending: bool,
) -> None:
    kind = "an extending calendar" if extending else "a standalone calendar"
    allowed = required | optional
    for key in data:
        if key not in allowed:
            _fail(
                source,
                f"unknown key {key!r} in {kind} (allowed: {', '.join(sorted(allowed))})",
            )
    for key in sorted(required):
        if key not in data:
            _fail(source, f"missing key {key!r} in {kind}")


def _string(source: str, where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(source, f"{where} must be a non-empty string, got {value!r}")
    return value


def _timezone(source: str, value: object) -> str:
    tz = _string(source, "timezone", value)
    if not _TIMEZONE_RE.fullmatch(tz):
        _fail(source, f"timezone {tz!r} is not an IANA time zone name like 'Asia/Shanghai'")
    return tz


def _years(source: str, value: object) -> tuple[int, int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(y, int) and not isinstance(y, bool) for y in value)
    ):
        _fail(source, f"years must be a non-empty list of integers, got {value!r}")
    years: list[int] = value
    if any(not _MIN_YEAR <= y <= _MAX_YEAR for y in years):
        _fail(source, f"years must lie in {_MIN_YEAR}..{_MAX_YEAR}, got {years!r}")
    if years != list(range(years[0], years[0] + len(years))):
        _fail(source, f"years must be consecutive and ascending, e.g. [2025, 2026]; got {years!r}")
    return years[0], years[-1]


def _weekend(source: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        _fail(source, f"weekend must be a list of day names, got {value!r}")
    days: list[int] = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or name not in _WEEKDAY_NAMES:
            _fail(source, f"weekend[{i}]: {name!r} is not a day name like 'saturday'")
        day = _WEEKDAY_NAMES.index(name)
        if day in days:
            _fail(source, f"weekend[{i}]: {name!r} is listed twice")
        days.append(day)
    return tuple(sorted(days))


def _entries(source: str, key: str, value: object, *, rest: bool) -> list[_Entry]:
    if not isinstance(value, list):
        _fail(source, f'{key} must be a list of {{"date", "name"}} objects, got {value!r}')
    result: list[_Entry] = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            _fail(source, f'{where}: must be an object {{"date", "name"}}, got {item!r}')
        extra = sorted(k for k in item if k not in ("date", "name"))
        if extra:
            _fail(source, f"{where}: unknown key {extra[0]!r} (allowed: date, name)")
        for k in ("date", "name"):
            if k not in item:
                _fail(source, f"{where}: missing key {k!r}")
        raw = item["date"]
        if not isinstance(raw, str) or not _DATE_RE.fullmatch(raw):
            _fail(source, f"{where}: date {raw!r} is not a date in the form YYYY-MM-DD")
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            _fail(source, f"{where}: {raw!r} is not a valid date")
        name = _string(source, f"{where} ({raw}): name", item["name"])
        result.append(_Entry(where, day, name, rest))
    return result
