"""Money: parsing, arithmetic, explicit rounding and delayed-performance interest."""

from __future__ import annotations

import decimal
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts_lib import (
    DAILY_DELAY_RATE,
    ZERO,
    Money,
    MoneyError,
    Rounding,
    delayed_performance_interest,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("12.5", "12.50"),
        ("12", "12.00"),
        ("12.50", "12.50"),
        ("12.500", "12.50"),  # no digit is lost
        ("+3", "3.00"),
        ("-3.1", "-3.10"),
        ("007.5", "7.50"),
        ("0", "0.00"),
        ("-0.00", "0.00"),
        ("1234567890123.45", "1234567890123.45"),
        (12, "12.00"),
        (-7, "-7.00"),
        (0, "0.00"),
        (Decimal("12.5"), "12.50"),
        (Decimal("1E+3"), "1000.00"),
        (Decimal("-0"), "0.00"),
    ],
)
def test_parse(value: str | int | Decimal, text: str) -> None:
    assert str(Money(value)) == text
    assert Money.parse(value) == Money(value)
    assert Money(value).to_json() == text
    assert Money(value).amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12.345", "12.345 has more than two decimal places (fen)"),
        (Decimal("12.345"), "12.345 has more than two decimal places (fen)"),
        ("0.001", "0.001 has more than two decimal places (fen)"),
        ("NaN", "'NaN' is not an amount of money like '1234.50'"),
        ("1e3", "'1e3' is not an amount of money like '1234.50'"),
        (" 12", "' 12' is not an amount of money like '1234.50'"),
        ("", "'' is not an amount of money like '1234.50'"),
        ("12.", "'12.' is not an amount of money like '1234.50'"),
        (".5", "'.5' is not an amount of money like '1234.50'"),
        ("1,000.00", "'1,000.00' is not an amount of money like '1234.50'"),
        ("１２", "'１２' is not an amount of money like '1234.50'"),  # full-width digits
        (Decimal("NaN"), "NaN is not a finite amount"),
        (Decimal("Infinity"), "Infinity is not a finite amount"),
        (Decimal("-Infinity"), "-Infinity is not a finite amount"),
        (Decimal("1E+40"), "1E+40 is too large an amount"),
    ],
)
def test_parse_rejects(value: str | Decimal, message: str) -> None:
    with pytest.raises(MoneyError) as info:
        Money(value)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [12.5, 0.0, True, None, [1], b"12"])
def test_parse_rejects_other_types(value: object) -> None:
    with pytest.raises(TypeError):
        Money(value)  # type: ignore[arg-type]


def test_float_message_says_what_to_do() -> None:
    with pytest.raises(TypeError, match=r"cannot be a float \(12\.5\); use a str or Decimal"):
        Money(12.5)  # type: ignore[arg-type]


def test_from_json_is_canonical_only() -> None:
    assert Money.from_json("1234.50") == Money("1234.5")
    assert Money.from_json("-0.01") == Money("-0.01")
    for text in ("12.5", "012.50", "-0.00", "+1.00", "1.000", "1"):
        with pytest.raises(MoneyError, match=r"is not a canonical amount"):
            Money.from_json(text)


def test_arithmetic() -> None:
    assert Money("0.10") + Money("0.20") == Money("0.30")
    assert Money("100.00") - Money("0.01") == Money("99.99")
    assert Money("1.00") - Money("1.00") == ZERO and str(Money("1") - Money("1")) == "0.00"
    assert -Money("5.25") == Money("-5.25")
    assert str(-ZERO) == "0.00"
    assert Money("1.10") * 3 == Money("3.30")
    assert 3 * Money("1.10") == Money("3.30")
    assert Money.total([Money("1.01"), Money("2.02"), Money("3.03")]) == Money("6.06")
    assert Money.total([]) == ZERO
    assert ZERO.is_zero() and not Money("0.01").is_zero()
    assert Money("-0.01").is_negative() and not ZERO.is_negative()


def test_multiplying_by_a_decimal_gives_an_unrounded_decimal() -> None:
    product = Money("10000.00") * Decimal("0.000175")
    assert isinstance(product, Decimal) and product == Decimal("1.75")
    third = Money("100.00") * Decimal("0.3333")
    assert third == Decimal("33.330000")
    assert Money.round(Money("1234.56") * DAILY_DELAY_RATE, Rounding.HALF_UP) == Money("0.22")


def test_mixing_with_other_types_is_a_type_error() -> None:
    m = Money("1.00")
    with pytest.raises(TypeError):
        m * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        m * True
    with pytest.raises(TypeError):
        m + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        m - Decimal("1")  # type: ignore[operator]
    with pytest.raises(MoneyError):
        m * Decimal("NaN")


@pytest.mark.parametrize("other", [0, 1, Decimal("1.00"), 1.0, "1.00"])
def test_comparison_only_with_money(other: object) -> None:
    m = Money("1.00")
    with pytest.raises(TypeError, match=r"cannot compare Money"):
        m == other  # noqa: B015
    with pytest.raises(TypeError, match=r"cannot compare Money"):
        m != other  # noqa: B015
    with pytest.raises(TypeError):
        m < other  # type: ignore[operator]  # noqa: B015
    with pytest.raises(TypeError):
        m >= other  # type: ignore[operator]  # noqa: B015


def test_ordering_equality_and_hash() -> None:
    assert Money("1.5") == Money("1.50") and hash(Money("1.5")) == hash(Money("1.50"))
    assert len({Money("1.5"), Money("1.50"), Money(Decimal("1.500"))}) == 1
    assert Money("-1.00") < ZERO < Money("0.01") <= Money("0.01") < Money("10")
    assert Money("10") > Money("9.99") >= Money("9.99")
    assert sorted([Money("3"), Money("-1"), Money("2.5")]) == [
        Money("-1"),
        Money("2.5"),
        Money("3"),
    ]
    assert Money("1.00") != Money("1.01")
    assert (Money("1.00") == None) is False  # noqa: E711
    assert repr(Money("1234.5")) == "Money('1234.50')"


def test_money_is_immutable() -> None:
    m = Money("1.00")
    with pytest.raises(AttributeError):
        m.amount = Decimal("2.00")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [
        ("0.125", Rounding.HALF_UP, "0.13"),
        ("0.125", Rounding.HALF_EVEN, "0.12"),
        ("0.135", Rounding.HALF_EVEN, "0.14"),
        ("0.1249", Rounding.HALF_UP, "0.12"),
        ("0.129", Rounding.DOWN, "0.12"),
        ("0.121", Rounding.UP, "0.13"),
        ("0.12", Rounding.UP, "0.12"),
        ("-0.125", Rounding.HALF_UP, "-0.13"),
        ("-0.125", Rounding.HALF_EVEN, "-0.12"),
        ("-0.129", Rounding.DOWN, "-0.12"),
        ("-0.121", Rounding.UP, "-0.13"),
        ("-0.001", Rounding.DOWN, "0.00"),
        ("-0.004", Rounding.HALF_UP, "0.00"),
        ("7", Rounding.DOWN, "7.00"),
    ],
)
def test_round(value: str, mode: Rounding, expected: str) -> None:
    assert str(Money.round(Decimal(value), mode)) == expected


def test_round_rejects() -> None:
    with pytest.raises(TypeError):
        Money.round(0.125, Rounding.HALF_UP)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money.round(Decimal("NaN"), Rounding.HALF_UP)
    with pytest.raises(TypeError):
        Money.round(Decimal("1"), "half_up")  # type: ignore[arg-type]


def test_results_do_not_depend_on_the_threads_decimal_context() -> None:
    with decimal.localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = decimal.ROUND_FLOOR
        ctx.traps[decimal.Inexact] = True
        assert Money("12345.67") + Money("0.01") == Money("12345.68")
        assert Money("12345.67") - Money("12345.68") == Money("-0.01")
        assert Money("1234.56") * 1000 == Money("1234560.00")
        assert Money.round(Decimal("0.125"), Rounding.HALF_UP) == Money("0.13")
        assert delayed_performance_interest(
            Money("123456.78"), date(2025, 1, 1), date(2025, 12, 31)
        ) == Money("7864.20")  # 123456.78 x 0.000175 x 364 = 7864.196886


def test_exact_arithmetic_never_rounds_silently() -> None:
    big = Money("9" * 34 + ".99")
    with pytest.raises(decimal.Inexact):
        big * Decimal("1.000001")


# --------------------------------------------------------------------------- interest


@pytest.mark.parametrize(
    ("unpaid", "start", "stop", "rounding", "expected"),
    [
        # 10000.00 x 0.000175 x 30 = 52.5
        ("10000.00", date(2025, 1, 1), date(2025, 1, 31), Rounding.HALF_UP, "52.50"),
        # 100000.00 x 0.000175 = 17.5 a day; 2025 has 365 days
        ("100000.00", date(2025, 1, 1), date(2026, 1, 1), Rounding.HALF_UP, "6387.50"),
        # 1234.56 x 0.000175 = 0.216048
        ("1234.56", date(2025, 3, 1), date(2025, 3, 2), Rounding.HALF_UP, "0.22"),
        ("1234.56", date(2025, 3, 1), date(2025, 3, 2), Rounding.DOWN, "0.21"),
        # 600.00 x 0.000175 = 0.105: a tie
        ("600.00", date(2025, 3, 1), date(2025, 3, 2), Rounding.HALF_UP, "0.11"),
        ("600.00", date(2025, 3, 1), date(2025, 3, 2), Rounding.HALF_EVEN, "0.10"),
        # 123456.78 x 0.000175 x 364 = 7864.1969 (2025-01-01 .. 2025-12-31)
        ("123456.78", date(2025, 1, 1), date(2025, 12, 31), Rounding.HALF_UP, "7864.20"),
        # February 2024 has 29 days: 5000.00 x 0.000175 x 29 = 25.375
        ("5000.00", date(2024, 2, 1), date(2024, 3, 1), Rounding.HALF_UP, "25.38"),
        ("5000.00", date(2024, 2, 1), date(2024, 3, 1), Rounding.HALF_EVEN, "25.38"),
        ("5000.00", date(2024, 2, 1), date(2024, 3, 1), Rounding.DOWN, "25.37"),
        ("10000.00", date(2025, 1, 1), date(2025, 1, 1), Rounding.HALF_UP, "0.00"),
        ("0.00", date(2025, 1, 1), date(2025, 12, 1), Rounding.HALF_UP, "0.00"),
    ],
)
def test_delayed_performance_interest(
    unpaid: str, start: date, stop: date, rounding: Rounding, expected: str
) -> None:
    result = delayed_performance_interest(Money(unpaid), start, stop, rounding=rounding)
    assert result == Money(expected)


def test_delayed_performance_interest_defaults_and_errors() -> None:
    assert DAILY_DELAY_RATE == Decimal("0.000175")
    assert delayed_performance_interest(
        Money("600.00"), date(2025, 3, 1), date(2025, 3, 2)
    ) == Money("0.11")  # HALF_UP by default
    with pytest.raises(MoneyError, match=r"cannot end \(2025-02-28\) before it starts"):
        delayed_performance_interest(Money("1.00"), date(2025, 3, 1), date(2025, 2, 28))
    with pytest.raises(MoneyError, match=r"cannot be negative"):
        delayed_performance_interest(Money("-1.00"), date(2025, 3, 1), date(2025, 3, 2))
    with pytest.raises(TypeError):
        delayed_performance_interest(Decimal("1.00"), date(2025, 3, 1), date(2025, 3, 2))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties

fen = st.decimals(
    min_value=Decimal("-1000000000000"),
    max_value=Decimal("1000000000000"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)


@given(fen)
def test_parse_str_round_trip(value: Decimal) -> None:
    m = Money(value)
    assert Money(str(m)) == m
    assert Money.from_json(m.to_json()) == m
    assert m.amount == value


@given(fen, fen)
def test_add_then_subtract_is_identity(a: Decimal, b: Decimal) -> None:
    x, y = Money(a), Money(b)
    assert x + y - y == x
    assert x + y == y + x
    assert x - y == -(y - x)


@given(fen, st.integers(min_value=-1000, max_value=1000))
def test_int_multiplication_is_repeated_addition(a: Decimal, n: int) -> None:
    x = Money(a)
    expected = Money.total([x] * abs(n))
    assert x * n == (expected if n >= 0 else -expected)


@given(fen, st.sampled_from(list(Rounding)))
def test_rounding_money_is_identity(a: Decimal, mode: Rounding) -> None:
    assert Money.round(Money(a).amount, mode) == Money(a)


@given(
    st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=6),
)
def test_rounding_modes_bracket_the_value(value: Decimal) -> None:
    down = Money.round(value, Rounding.DOWN).amount
    up = Money.round(value, Rounding.UP).amount
    assert abs(down) <= abs(value) <= abs(up)
    assert abs(up - down) <= Decimal("0.01")
    for mode in (Rounding.HALF_UP, Rounding.HALF_EVEN):
        assert abs(Money.round(value, mode).amount - value) <= Decimal("0.005")
