"""The engine core's shortcuts give exactly what the plain constructions give.

``step`` builds its frozen results with positional constructors (engine/_fast.py),
parses payloads with generated parsers and runs rule blocks as generated
functions (engine/program.py, engine/_fuse.py), and takes shortcuts for the usual
event and tick.  The semantics and property tests pin the results; these pin
the pieces.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from core_helpers import CAL, create, event, program_of, tick

from contracts_lib.money import ZERO, Money
from engine._fast import positional
from engine.core import Rejected, StepResult
from engine.explain import DeadlineNote, Explanation
from engine.state import ActionEffect, InstanceState, Timer

T0 = dt.datetime(2025, 9, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("cls", [InstanceState, Explanation, StepResult, Timer, DeadlineNote,
                                 ActionEffect])
def test_positional_constructor_makes_the_same_frozen_object(cls: type) -> None:
    values = [f"v{i}" for i, _ in enumerate(dataclasses.fields(cls))]
    made, expected = positional(cls)(*values), cls(*values)
    assert type(made) is cls and made == expected and hash(made) == hash(expected)
    assert repr(made) == repr(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.__setattr__(dataclasses.fields(cls)[0].name, "changed")


def test_positional_refuses_what_it_cannot_build() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    with pytest.raises(TypeError):
        positional(NoSlots)


@pytest.mark.parametrize("text", ["0.00", "-0.00", "12.50", "-3.07", "1234567890123.45",
                                  "12.5", "+3", "007.10", "12.500"])
def test_money_shortcuts_agree_with_the_checked_path(text: str) -> None:
    parsed = Money.parse(text)
    assert parsed == Money(text) and str(parsed) == str(Money(Decimal(text)))
    assert str(parsed + ZERO) == str(parsed) and str(parsed - parsed) == "0.00"
    assert (parsed != Money(text)) is False


def test_money_total_is_the_sum_left_to_right() -> None:
    amounts = [Money("0.10"), Money("-0.10"), Money("2.25")]
    assert Money.total(amounts) == Money("2.25") and str(Money.total([])) == "0.00"
    assert Money.total(iter(amounts)) == Money.total(tuple(amounts))
    with pytest.raises(TypeError):
        Money.total([Money("1.00"), 1])  # type: ignore[list-item]


PAY = """contract c "T" version "1.0.0" {
  role payer
  term total: Money
  var paid: Money = ¥0.00
  var payments: Int = 0
  state open initial
  state done terminal
  event pay by payer { amount: Money  day: Date }
  on pay in open {
    set paid = paid + pay.amount
    set payments = payments + 1
    if paid >= total { goto done }
  }
  deadline nudge in open: 2 days after entering {
    set payments = payments + 0
  }
}
"""


def test_payload_errors_are_reported_in_the_checked_order() -> None:
    p = program_of(PAY)
    s = create(p, {"total": "10.00"}, "2025-09-01 09:00").state
    cases = [
        ({"amount": "abc", "zz": 1}, "has no field(s) zz"),  # unknown before a bad value
        ({"amount": "1.001", "day": "2025-09-02"}, "more than two decimal places"),
        ({"amount": 5, "day": "2025-09-02"}, "is a string"),
        ({"amount": "1.00", "day": "2025-02-30"}, "not a real date"),
        ({"amount": "1.00"}, "missing field(s): day"),
    ]
    for payload, message in cases:
        with pytest.raises(Rejected) as info:
            event(p, s, "pay", "payer", "2025-09-01 10:00", **payload)
        assert info.value.code == "bad_payload" and message in info.value.message


def test_plain_event_and_tick_keep_unchanged_pairs_and_timers() -> None:
    p = program_of(PAY)
    s = create(p, {"total": "10.00"}, "2025-09-01 09:00").state
    r = event(p, s, "pay", "payer", "2025-09-01 10:00", amount="4.00", day="2025-09-01")
    assert r.state.timers is s.timers  # unchanged parts of the state are reused
    assert r.state.var("paid") == Money("4.00") and r.state.var("payments") == 1
    assert [c[0] for c in r.explanations[0].changes] == ["paid", "payments"]
    t = tick(p, r.state, "2025-09-04 00:00")  # nudge: sets payments to an equal value
    assert t.state.timers == () and t.explanations[0].changes == ()
    assert t.state.vars == r.state.vars and t.state.seq == r.state.seq + 1
    done = event(p, t.state, "pay", "payer", "2025-09-04 10:00", amount="6.00", day="2025-09-04")
    assert done.state.state == "done" and done.state.clock > T0


CMP = """contract c "T" version "1.0.0" {
  role payer
  record part { amount: Money }
  term parts: List[part]
  var paid: Money = ¥0.00
  var seen: Text = ""
  state open initial
  state closed terminal
  event pay by payer { amount: Money }
  event close by payer { }
  on close in open { goto closed }
  on pay in open {
    set paid = paid + pay.amount
    if paid == sum(parts.amount) { set seen = "eq" }
    else if paid < sum(parts.amount) { set seen = "lt" }
    else { set seen = "gt" }
    if paid != pay.amount and paid >= pay.amount and pay.amount <= paid { set seen = seen + "+" }
    if pay.amount > paid { set seen = "never" }
  }
}
"""


def test_money_comparisons_and_terms_only_values_written_in_place() -> None:
    """Money comparisons compare amounts in the generated rule, and ``sum(...)`` of
    the terms is read from its per-instance memo in place: each instance its own."""
    p = program_of(CMP)
    assert dict(p.transitions) == {(e, s): rules for e, by_state in p.rules_by_event.items()
                                   for s, rules in by_state.items()}
    a = create(p, {"parts": [{"amount": "3.00"}, {"amount": "2.00"}]}, "2025-09-01 09:00", "a")
    b = create(p, {"parts": [{"amount": "1.00"}]}, "2025-09-01 09:00", "b")
    seen = []
    for s, amount in [(a.state, "4.99"), (b.state, "1.00"), (a.state, "5.01"), (b.state, "0.50")]:
        r = event(p, s, "pay", "payer", "2025-09-01 10:00", amount=amount)
        seen.append(r.state.var("seen"))
    assert seen == ["lt", "eq", "gt", "lt"]
    r = event(p, a.state, "pay", "payer", "2025-09-01 10:00", amount="4.00")
    r = event(p, r.state, "pay", "payer", "2025-09-01 11:00", amount="1.00")
    assert r.state.var("seen") == "eq+" and r.state.calendar_version == CAL.version


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "Europe/London"])
def test_local_day_remembered_days_agree_with_the_zone_conversion(zone: str) -> None:
    """The remembered day bounds (the last day and the last few) give the day the
    zone conversion gives, also across clock changes and when inputs jump between
    days (a tick firing a deadline due days earlier)."""
    import random
    from zoneinfo import ZoneInfo

    from engine.core import _local_day

    rng = random.Random(7)
    base = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    instants = [base + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 300)) for _ in range(3000)]
    instants += [base + dt.timedelta(minutes=30 * k) for k in range(24 * 2 * 300)]
    for instant in instants:
        assert _local_day(instant, zone) == instant.astimezone(ZoneInfo(zone)).date()
