"""Runtime values of the engine, and their one canonical JSON encoding.

A value's Python form is fixed by its language type:

========  ==========================================
Money     :class:`contracts_lib.money.Money`
Amount    :class:`decimal.Decimal` (unrounded money, only inside round())
Decimal   :class:`decimal.Decimal`
Int       ``int``          Bool  ``bool``      Text ``str``
Date      :class:`datetime.date`
DateTime  aware :class:`datetime.datetime` (UTC)
Role      ``str`` (the role's name)
enum      ``str`` (the variant's name)
record    :class:`Record`
List[T]   ``tuple``
========  ==========================================

:func:`from_json` converts untrusted JSON (terms, event payloads) strictly,
naming the path of anything wrong; :func:`to_json` is its exact inverse.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from contracts_lib.money import Money, MoneyError

__all__ = [
    "DECIMAL_CONTEXT",
    "Record",
    "TypeTable",
    "Value",
    "ValueError_",
    "from_json",
    "parse_instant",
    "to_json",
]

import decimal

#: Every Decimal operation of the engine uses this context, never the thread's.
DECIMAL_CONTEXT = decimal.Context(
    prec=38,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

Value = Any  # see the module docstring for the Python form of each type


class ValueError_(ValueError):
    """A term or payload value does not fit its declared type."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True, slots=True)
class Record:
    """A record value: its fields in declaration order."""

    name: str
    fields: tuple[tuple[str, Value], ...]

    def get(self, field: str) -> Value:
        for key, value in self.fields:
            if key == field:
                return value
        raise KeyError(field)

    def __iter__(self) -> Iterator[tuple[str, Value]]:
        return iter(self.fields)


@dataclass(frozen=True)
class TypeTable:
    """What the converter needs to know about a contract's declared types."""

    records: Mapping[str, tuple[tuple[str, str], ...]]  # record -> ((field, type), ...)
    enums: Mapping[str, tuple[str, ...]]
    roles: tuple[str, ...]


_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL_RE = re.compile(r"-?\d+(\.\d+)?")


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 instant with an explicit offset, returned in UTC."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time") from exc
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset (write +08:00 or Z)")
    return value.astimezone(dt.UTC)


def from_json(raw: object, type_name: str, types: TypeTable, path: str) -> Value:
    """Convert JSON data to the value of ``type_name``, strictly."""
    if type_name == "Money":
        if not isinstance(raw, str):
            raise ValueError_(path, f"an amount of money is a string such as \"12.50\", "
                              f"not {type(raw).__name__}")
        try:
            return Money.parse(raw)
        except (MoneyError, TypeError, ValueError) as exc:
            raise ValueError_(path, str(exc)) from exc
    if type_name == "Decimal":
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise ValueError_(path, "a decimal is a string such as \"0.000175\"")
        text = str(raw)
        if not _DECIMAL_RE.fullmatch(text):
            raise ValueError_(path, f"{text!r} is not a decimal number")
        try:
            return Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only digits
            raise ValueError_(path, f"{text!r} is not a decimal number") from exc
    if type_name == "Int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError_(path, "expected a whole number")
        return raw
    if type_name == "Bool":
        if not isinstance(raw, bool):
            raise ValueError_(path, "expected true or false")
        return raw
    if type_name == "Text":
        if not isinstance(raw, str):
            raise ValueError_(path, "expected a text")
        return raw
    if type_name == "Date":
        if not isinstance(raw, str) or not _DATE_RE.fullmatch(raw):
            raise ValueError_(path, "expected a date such as \"2025-01-31\"")
        try:
            return dt.date.fromisoformat(raw)
        except ValueError as exc:
            raise ValueError_(path, f"{raw} is not a real date") from exc
    if type_name == "DateTime":
        if not isinstance(raw, str):
            raise ValueError_(
                path, "expected a date and time such as \"2025-01-31T09:00:00+08:00\""
            )
        try:
            return parse_instant(raw)
        except ValueError as exc:
            raise ValueError_(path, str(exc)) from exc
    if type_name == "Role":
        if not isinstance(raw, str) or raw not in types.roles:
            raise ValueError_(path, f"expected one of the roles {', '.join(types.roles)}")
        return raw
    if type_name.startswith("List[") and type_name.endswith("]"):
        if not isinstance(raw, list):
            raise ValueError_(path, "expected a list")
        inner = type_name[5:-1]
        return tuple(from_json(item, inner, types, f"{path}[{i}]") for i, item in enumerate(raw))
    if type_name in types.enums:
        variants = types.enums[type_name]
        if not isinstance(raw, str) or raw not in variants:
            raise ValueError_(path, f"expected one of {', '.join(variants)}")
        return raw
    if type_name in types.records:
        fields = types.records[type_name]
        if not isinstance(raw, dict):
            raise ValueError_(path, f"expected an object with fields "
                              f"{', '.join(f for f, _ in fields)}")
        names = [f for f, _ in fields]
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise ValueError_(path, f"unknown field(s): {', '.join(unknown)}")
        missing = [f for f in names if f not in raw]
        if missing:
            raise ValueError_(path, f"missing field(s): {', '.join(missing)}")
        return Record(
            type_name,
            tuple((f, from_json(raw[f], t, types, f"{path}.{f}")) for f, t in fields),
        )
    raise ValueError_(path, f"unknown type {type_name}")


def to_json(value: Value) -> object:
    """The canonical JSON form of a runtime value (inverse of :func:`from_json`)."""
    if isinstance(value, Money):
        return value.to_json()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Record):
        return {k: to_json(v) for k, v in value.fields}
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    raise TypeError(f"not a runtime value: {value!r}")
