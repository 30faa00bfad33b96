"""Money in yuan with two decimal places (fen), without floating point.

:class:`Money` holds a :class:`decimal.Decimal` quantized to fen. Adding and
subtracting Money, or multiplying it by an int, is exact. Multiplying by a
Decimal (a rate) gives an unrounded Decimal; turning it back into Money needs
an explicit :class:`Rounding` (:meth:`Money.round`), so no amount is ever
rounded silently. All arithmetic uses a module-level decimal context, so
results never depend on the calling thread's context.
"""

from __future__ import annotations

import decimal
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, overload

__all__ = [
    "DAILY_DELAY_RATE",
    "ZERO",
    "Money",
    "MoneyError",
    "Rounding",
    "delayed_performance_interest",
]

_CONTEXT: Final = decimal.Context(
    prec=38,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[
        decimal.InvalidOperation,
        decimal.DivisionByZero,
        decimal.Overflow,
        decimal.Underflow,
        decimal.Inexact,
    ],
)
"""Exact arithmetic: anything that would need rounding (more than 38 digits) raises."""

_ROUNDING_CONTEXT: Final = decimal.Context(
    prec=38,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
"""Used only where rounding is explicitly asked for (:meth:`Money.round`)."""

_FEN: Final = Decimal("0.01")
_ZERO_FEN: Final = Decimal("0.00")
_FAST_MAX_LEN: Final = 30
"""Canonical text up to this length has at most 29 digits: well within the precision."""
_add: Final = _CONTEXT.add
_subtract: Final = _CONTEXT.subtract
_set: Final = object.__setattr__  # Money is frozen: values are set once, when made
_NUMBER_RE: Final = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_CANONICAL_RE: Final = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]{2}")

DAILY_DELAY_RATE: Final = Decimal("0.000175")
"""Delayed-performance interest per day of delay: 0.0175% (日万分之一点七五)."""


class MoneyError(ValueError):
    """An amount of money is malformed or an operation on money is invalid."""


class Rounding(enum.Enum):
    """How a Decimal is rounded to fen; the value is the :mod:`decimal` rounding mode."""

    HALF_UP = decimal.ROUND_HALF_UP
    """Ties away from zero (四舍五入): 0.125 -> 0.13, -0.125 -> -0.13."""
    HALF_EVEN = decimal.ROUND_HALF_EVEN
    """Ties to the even fen (banker's rounding): 0.125 -> 0.12, 0.135 -> 0.14."""
    DOWN = decimal.ROUND_DOWN
    """Towards zero (truncate): 0.129 -> 0.12, -0.129 -> -0.12."""
    UP = decimal.ROUND_UP
    """Away from zero: 0.121 -> 0.13, -0.121 -> -0.13."""


def _to_fen(value: Decimal, shown: str) -> Decimal:
    """Return ``value`` quantized to fen, or raise if that would lose information."""
    if not value.is_finite():
        raise MoneyError(f"{shown} is not a finite amount")
    try:
        quantized = value.quantize(_FEN, context=_ROUNDING_CONTEXT)
    except decimal.InvalidOperation:
        raise MoneyError(f"{shown} is too large an amount") from None
    if quantized != value:
        raise MoneyError(f"{shown} has more than two decimal places (fen)")
    if quantized.is_zero():
        return Decimal("0.00")  # never -0.00
    return quantized


def _reject_non_decimal(value: object, what: str) -> None:
    if isinstance(value, float):
        raise TypeError(
            f"{what} cannot be a float ({value!r}); use a str or Decimal such as Money('12.50')"
        )


@dataclass(frozen=True, init=False, eq=False, repr=False, slots=True)
class Money:
    """An amount in yuan, exact to the fen (``amount`` is a Decimal with 2 places).

    ``Money(value)`` accepts a str (``"12.5"``, ``"-3"``, ``"1234.50"``), an
    int or a Decimal. It raises :class:`TypeError` for a float (or any other
    type) and :class:`MoneyError` for text that is not a plain decimal
    number, for NaN or infinity, and for a value with non-zero digits beyond
    the fen (``"12.345"``); trailing zeros (``"12.500"``) are accepted.
    Money compares and hashes by value; comparing it with a number raises
    :class:`TypeError` (write ``m == ZERO``, not ``m == 0``).
    """

    amount: Decimal

    def __init__(self, value: str | int | Decimal) -> None:
        if value.__class__ is str and len(value) <= _FAST_MAX_LEN \
                and _CANONICAL_RE.fullmatch(value):
            # Fast path: canonical text ("1234.50") is already exact to the fen, so
            # the checks below could not change it; only -0.00 needs normalising.
            number = Decimal(value)
            _set(self, "amount", number if number else _ZERO_FEN)
            return
        _reject_non_decimal(value, "an amount of money")
        if isinstance(value, str):
            if not _NUMBER_RE.fullmatch(value):
                raise MoneyError(f"{value!r} is not an amount of money like '1234.50'")
            number = Decimal(value)
        elif isinstance(value, bool):
            raise TypeError("an amount of money cannot be a bool")
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, Decimal):
            number = value
        else:
            raise TypeError(
                f"an amount of money must be a str, int or Decimal, not {type(value).__name__}"
            )
        object.__setattr__(self, "amount", _to_fen(number, str(value)))

    @classmethod
    def parse(cls, value: str | int | Decimal) -> Money:
        """Same as ``Money(value)``."""
        if cls is Money and value.__class__ is str and len(value) <= _FAST_MAX_LEN \
                and _CANONICAL_RE.fullmatch(value):
            money = _Fresh()  # canonical text is already exact to the fen: see _exact
            money.amount = Decimal(value) or _ZERO_FEN
            money.__class__ = Money  # type: ignore[assignment]
            return money  # type: ignore[return-value]
        return cls(value)

    @classmethod
    def from_json(cls, text: str) -> Money:
        """Parse the canonical encoding produced by :meth:`to_json` (e.g. ``"1234.50"``).

        Stricter than :meth:`parse`: exactly two decimal places, no sign other
        than a leading ``-``, no leading zeros, and no ``-0.00``.
        """
        if not isinstance(text, str) or not _CANONICAL_RE.fullmatch(text) or text == "-0.00":
            raise MoneyError(f"{text!r} is not a canonical amount like '1234.50'")
        return cls(text)

    @staticmethod
    def round(value: Decimal | int, mode: Rounding) -> Money:
        """Round ``value`` to the fen with the rounding ``mode`` and return it as Money.

        ``value`` must be a Decimal or int (:class:`TypeError` for a float);
        NaN or infinity raise :class:`MoneyError`.
        """
        _reject_non_decimal(value, "a value to round")
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"can only round a Decimal or int, not {type(value).__name__}")
        number = Decimal(value)
        if not number.is_finite():
            raise MoneyError(f"{value} is not a finite amount")
        if not isinstance(mode, Rounding):
            raise TypeError(f"mode must be a Rounding, not {type(mode).__name__}")
        try:
            rounded = number.quantize(_FEN, rounding=mode.value, context=_ROUNDING_CONTEXT)
        except decimal.InvalidOperation:
            raise MoneyError(f"{value} is too large an amount") from None
        return Money(rounded)

    @staticmethod
    def total(amounts: Iterable[Money]) -> Money:
        """Return the sum of ``amounts`` (``ZERO`` for none)."""
        total = _ZERO_FEN
        add = _CONTEXT.add
        items = iter(amounts)
        for amount in items:
            if amount.__class__ is not Money and not isinstance(amount, Money):
                # the same TypeError as ``Money + other`` gives, from the same place
                result = _exact(total) + amount
                for rest in items:
                    result = result + rest
                return result
            total = add(total, amount.amount)  # exact, or raises (Inexact) like ``+``
        money = _Fresh()  # see _exact
        money.amount = total or _ZERO_FEN
        money.__class__ = Money  # type: ignore[assignment]
        return money  # type: ignore[return-value]

    def to_json(self) -> str:
        """Return the canonical encoding: exactly two decimals, e.g. ``"1234.50"``."""
        return str(self)

    def is_zero(self) -> bool:
        """Whether this is 0.00."""
        return self.amount.is_zero()

    def is_negative(self) -> bool:
        """Whether this is less than 0.00."""
        return self.amount < 0

    def __str__(self) -> str:
        # str() of a Decimal with two places is its plain text ("1234.50"), and four
        # times cheaper than format(); anything else (never made here) is formatted.
        text = self.amount.__str__()
        return text if text[-3:-2] == "." else f"{self.amount:f}"

    def __repr__(self) -> str:
        return f"Money('{self}')"

    def __hash__(self) -> int:
        return hash((Money, self.amount))

    def __add__(self, other: Money) -> Money:
        if other.__class__ is not Money and not isinstance(other, Money):
            return NotImplemented
        money = _Fresh()  # see _exact
        money.amount = _add(self.amount, other.amount) or _ZERO_FEN
        money.__class__ = Money  # type: ignore[assignment]
        return money  # type: ignore[return-value]

    def __sub__(self, other: Money) -> Money:
        if other.__class__ is not Money and not isinstance(other, Money):
            return NotImplemented
        money = _Fresh()  # see _exact
        money.amount = _subtract(self.amount, other.amount) or _ZERO_FEN
        money.__class__ = Money  # type: ignore[assignment]
        return money  # type: ignore[return-value]

    def __neg__(self) -> Money:
        return _exact(_CONTEXT.minus(self.amount))

    @overload
    def __mul__(self, other: int) -> Money: ...

    @overload
    def __mul__(self, other: Decimal) -> Decimal: ...

    def __mul__(self, other: int | Decimal) -> Money | Decimal:
        """``money * int`` is exact Money; ``money * Decimal`` is an unrounded Decimal.

        A float raises :class:`TypeError`; use :meth:`round` to turn a Decimal
        result back into Money.
        """
        _reject_non_decimal(other, "a multiplier of money")
        if isinstance(other, bool):
            raise TypeError("cannot multiply money by a bool")
        if isinstance(other, int):
            return _exact(_CONTEXT.multiply(self.amount, Decimal(other)))
        if isinstance(other, Decimal):
            if not other.is_finite():
                raise MoneyError(f"cannot multiply money by {other}")
            return _CONTEXT.multiply(self.amount, other)
        return NotImplemented

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if other.__class__ is Money or isinstance(other, Money):
            return self.amount == other.amount
        _refuse_comparison(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if other.__class__ is Money or isinstance(other, Money):
            return self.amount != other.amount
        _refuse_comparison(other)
        return NotImplemented

    def __lt__(self, other: Money) -> bool:
        if other.__class__ is Money:
            return self.amount < other.amount
        return self.amount < _comparable(other)

    def __le__(self, other: Money) -> bool:
        if other.__class__ is Money:
            return self.amount <= other.amount
        return self.amount <= _comparable(other)

    def __gt__(self, other: Money) -> bool:
        if other.__class__ is Money:
            return self.amount > other.amount
        return self.amount > _comparable(other)

    def __ge__(self, other: Money) -> bool:
        if other.__class__ is Money:
            return self.amount >= other.amount
        return self.amount >= _comparable(other)


class _Fresh:
    """A Money being made: the same slot, still writable (see :func:`_exact`)."""

    __slots__ = ("amount",)
    amount: Decimal


def _exact(amount: Decimal) -> Money:
    """Money from a Decimal already exact to the fen (the sum, difference, negation
    or integer multiple of fen amounts), without re-validating it: the hot path of
    every engine step.  Zero is normalised so there is no -0.00.

    The object is filled as a :class:`_Fresh` (same layout as Money) and then
    becomes a Money, frozen like any other: cheaper than ``object.__setattr__``.
    """
    money = _Fresh()
    money.amount = amount or _ZERO_FEN
    money.__class__ = Money  # type: ignore[assignment]
    return money  # type: ignore[return-value]


def _refuse_comparison(other: object) -> None:
    if isinstance(other, int | float | Decimal | str):
        raise TypeError(
            f"cannot compare Money with {type(other).__name__} {other!r}; "
            f"compare with Money({str(other)!r}) or ZERO"
        )


def _comparable(other: object) -> Decimal:
    if isinstance(other, Money):
        return other.amount
    raise TypeError(f"cannot compare Money with {type(other).__name__} {other!r}")


ZERO: Final = Money(0)
"""0.00 yuan."""


def delayed_performance_interest(
    unpaid: Money,
    from_date: date,
    to_date: date,
    *,
    rounding: Rounding = Rounding.HALF_UP,
) -> Money:
    """Return the delayed-performance interest on ``unpaid`` from ``from_date`` to ``to_date``.

    Interest is :data:`DAILY_DELAY_RATE` (0.0175%) of the unpaid principal for
    each day of delay; the number of days is ``(to_date - from_date).days``
    (``from_date``, e.g. the last day of the performance period, is not
    counted: the day after it is day 1). The result is rounded to the fen once,
    with ``rounding``. ``to_date == from_date`` gives ``ZERO``. Raises
    :class:`MoneyError` if ``to_date`` is before ``from_date`` or ``unpaid``
    is negative. For example 10000.00 unpaid for 30 days gives 52.50.
    """
    if not isinstance(unpaid, Money):
        raise TypeError(f"unpaid must be Money, not {type(unpaid).__name__}")
    if to_date < from_date:
        raise MoneyError(
            f"the delay cannot end ({to_date.isoformat()}) before it starts "
            f"({from_date.isoformat()})"
        )
    if unpaid.is_negative():
        raise MoneyError(f"the unpaid principal cannot be negative ({unpaid})")
    days = (to_date - from_date).days
    interest = _CONTEXT.multiply(_CONTEXT.multiply(unpaid.amount, DAILY_DELAY_RATE), Decimal(days))
    return Money.round(interest, rounding)
