"""The engine core's semantics, one rule at a time, on small inline contracts."""

from __future__ import annotations

import datetime as dt

import pytest
from core_helpers import CAL, actions, at, create, decide, event, program_of, tick

from engine.core import Fault, Rejected, step
from engine.state import Tick, canonical_state

HEAD = """contract c "T" version "1.0.0" {
  role creditor
  role debtor
  role officer
"""

PAYMENT = HEAD + """
  term amount: Money
  term due: Date
  var paid: Money = ¥0.00
  state open initial
  state done terminal
  state late terminal
  event pay by debtor { amount: Money }
  on pay in open when pay.amount > ¥0.00 {
    set paid = paid + pay.amount
    if paid >= amount { goto done }
    do notify(party: creditor, message: "partial payment")
  }
  deadline expiry in open: by due cite "art. 1" {
    do file_trial_case(plaintiff: creditor, defendant: debtor,
                       claim_amount: amount - paid, cause: "x")
    goto late
  }
  deadline reminder in open: 3 working days before due {
    do remind(party: debtor, due: due, amount: amount - paid)
  }
}
"""


def test_goto_ends_the_rule_and_partial_payment_continues() -> None:
    p = program_of(PAYMENT)
    r = create(p, {"amount": "100.00", "due": "2025-09-30"}, "2025-09-01 09:00")
    r2 = event(p, r.state, "pay", "debtor", "2025-09-02 09:00", amount="40.00")
    assert r2.state.var("paid").to_json() == "40.00"
    assert actions(r2) == ["notify"]  # the rule went on past the `if`
    r3 = event(p, r2.state, "pay", "debtor", "2025-09-03 09:00", amount="60.00")
    assert r3.state.state == "done"
    assert actions(r3) == []  # goto ended the rule: no notify


def test_refusals_change_nothing_and_say_why() -> None:
    p = program_of(PAYMENT)
    s = create(p, {"amount": "100.00", "due": "2025-09-30"}, "2025-09-01 09:00").state
    before = canonical_state(s)
    cases = [
        (("pay", "creditor", {"amount": "1.00"}), "role_not_allowed"),
        (("pay", "debtor", {"amount": 1}), "bad_payload"),
        (("pay", "debtor", {"amount": "1.00", "x": 1}), "bad_payload"),
        (("pay", "debtor", {}), "bad_payload"),
        (("pay", "debtor", {"amount": "0.00"}), "no_rule_applies"),
        (("nope", "debtor", {}), "unknown_event"),
    ]
    for (name, role, payload), code in cases:
        with pytest.raises(Rejected) as info:
            event(p, s, name, role, "2025-09-02 09:00", **payload)
        assert info.value.code == code
        assert info.value.message
    assert canonical_state(s) == before


def test_event_in_terminal_state_is_refused() -> None:
    p = program_of(PAYMENT)
    s = create(p, {"amount": "1.00", "due": "2025-09-30"}, "2025-09-01 09:00").state
    s = event(p, s, "pay", "debtor", "2025-09-02 09:00", amount="1.00").state
    with pytest.raises(Rejected) as info:
        event(p, s, "pay", "debtor", "2025-09-03 09:00", amount="1.00")
    assert info.value.code == "terminal"


def test_out_of_order_input_is_refused() -> None:
    p = program_of(PAYMENT)
    s = create(p, {"amount": "1.00", "due": "2025-09-30"}, "2025-09-05 09:00").state
    with pytest.raises(Rejected) as info:
        event(p, s, "pay", "debtor", "2025-09-04 09:00", amount="1.00")
    assert info.value.code == "out_of_order"


def test_by_deadline_extends_over_holiday_and_fires_at_end_of_day() -> None:
    p = program_of(PAYMENT)
    # 2025-10-01 is National Day: the period ends on the next working day, 2025-10-09
    r = create(p, {"amount": "100.00", "due": "2025-10-01"}, "2025-09-01 09:00")
    expiry = next(t for t in r.state.timers if t.deadline == "expiry")
    assert expiry.last_day == dt.date(2025, 10, 9)
    assert expiry.due_at == at("2025-10-10 00:00")
    just_before = tick(p, r.state, "2025-10-09 23:59")  # only the reminder has fired
    assert just_before.state.state == "open"
    assert [e.subject for e in just_before.explanations] == ["reminder"]
    r2 = tick(p, just_before.state, "2025-10-10 00:00")
    assert r2.state.state == "late"
    assert "file_trial_case" in actions(r2)
    text = " ".join(e.text("en") for e in r.explanations)
    assert "2025-10-09" in text and "National Day" in text


def test_reminder_moves_back_to_a_working_day_and_fires_at_its_start() -> None:
    p = program_of(PAYMENT)
    # 3 working days before 2025-10-09: Oct 1-8 are holidays, so Tue 30 Sep, Mon 29
    # and Sun 28 Sep (a weekend day made a working day, 调休)
    r = create(p, {"amount": "100.00", "due": "2025-10-09"}, "2025-09-01 09:00")
    reminder = next(t for t in r.state.timers if t.deadline == "reminder")
    assert reminder.last_day == dt.date(2025, 9, 28)
    assert reminder.due_at == at("2025-09-28 00:00")


def test_due_deadlines_fire_before_a_later_event() -> None:
    p = program_of(PAYMENT)
    s = create(p, {"amount": "100.00", "due": "2025-09-30"}, "2025-09-01 09:00").state
    # the payment comes after the due date: the deadline fired first, the event is refused
    with pytest.raises(Rejected) as info:
        event(p, s, "pay", "debtor", "2025-10-15 09:00", amount="100.00")
    assert info.value.code == "terminal"


def test_deadline_firing_is_independent_of_when_the_engine_wakes() -> None:
    p = program_of(PAYMENT)
    s = create(p, {"amount": "100.00", "due": "2025-09-30"}, "2025-09-01 09:00").state
    on_time = tick(p, s, "2025-10-01 00:00")
    late = tick(p, s, "2025-10-20 12:00")
    assert on_time.effects == late.effects
    assert on_time.state.timers == late.state.timers
    assert late.explanations[-1].late_by is not None
    assert on_time.explanations[-1].late_by is None


MULTI = HEAD + """
  term start: Date
  state a initial
  state b
  state c
  state end terminal
  event to_b by creditor
  event to_c by creditor
  event again by creditor
  event finish by creditor
  on to_b in a { goto b }
  on to_c in b { goto c }
  on again in b { goto b }
  on finish { goto end }
  deadline long_period in a, b: 30 days after entering { goto end }
  deadline only_b in b: 10 days after entering { do notify(party: debtor, message: "b") }
}
"""


def test_deadlines_survive_moves_within_their_states_and_rearm_on_reentry() -> None:
    p = program_of(MULTI)
    s = create(p, {"start": "2025-03-01"}, "2025-03-03 09:00").state
    long_a = next(t for t in s.timers if t.deadline == "long_period")
    s = event(p, s, "to_b", "creditor", "2025-03-05 09:00").state
    assert next(t for t in s.timers if t.deadline == "long_period") == long_a  # kept
    only_b = next(t for t in s.timers if t.deadline == "only_b")
    assert only_b.anchor == dt.date(2025, 3, 5)
    s2 = event(p, s, "again", "creditor", "2025-03-07 09:00").state  # re-entry re-arms
    assert next(t for t in s2.timers if t.deadline == "only_b").anchor == dt.date(2025, 3, 7)
    assert next(t for t in s2.timers if t.deadline == "long_period").anchor == dt.date(2025, 3, 7)
    s3 = event(p, s2, "to_c", "creditor", "2025-03-08 09:00").state
    assert s3.timers == ()  # c is in neither deadline's states


APPROVAL = HEAD + """
  term owed: Money
  state searching initial
  state waiting
  state frozen terminal
  state gave_up terminal
  event found by officer
  event abandon by creditor
  on found in searching {
    do freeze(debtor: debtor, kind: PropertyKind.bank_deposit, amount: owed)
      approved by officer within 3 working days
      on approved { goto frozen }
      on rejected { goto searching }
      on timeout { do notify(party: creditor, message: "not confirmed") goto searching }
    goto waiting
  }
  on abandon in waiting { goto gave_up }
}
"""


def _requested(r):  # type: ignore[no-untyped-def]
    return next(e.approval_id for e in r.effects if getattr(e, "status", "") == "requested")


def test_approval_confirmed_takes_effect_then_branch_runs() -> None:
    p = program_of(APPROVAL)
    s = create(p, {"owed": "500.00"}, "2025-09-01 09:00").state
    r = event(p, s, "found", "officer", "2025-09-02 09:00")
    assert r.state.state == "waiting" and actions(r) == []  # nothing frozen yet
    aid = _requested(r)
    with pytest.raises(Rejected) as info:
        decide(p, r.state, aid, "creditor", True, "2025-09-02 10:00")
    assert info.value.code == "role_not_allowed"
    r2 = decide(p, r.state, aid, "officer", True, "2025-09-02 10:00")
    assert actions(r2) == ["freeze"]
    assert r2.state.state == "frozen"
    with pytest.raises(Rejected):  # decided once only
        decide(p, r2.state, aid, "officer", True, "2025-09-02 11:00")


def test_approval_rejected_never_takes_effect() -> None:
    p = program_of(APPROVAL)
    s = create(p, {"owed": "500.00"}, "2025-09-01 09:00").state
    r = event(p, s, "found", "officer", "2025-09-02 09:00")
    r2 = decide(p, r.state, _requested(r), "officer", False, "2025-09-02 10:00")
    assert actions(r2) == [] and r2.state.state == "searching"


def test_approval_timeout_after_three_working_days() -> None:
    p = program_of(APPROVAL)
    s = create(p, {"owed": "500.00"}, "2025-09-01 09:00").state
    # requested Friday 2025-09-26; 3 working days: Sun 28 (调休 working day), Mon 29, Tue 30
    r = event(p, s, "found", "officer", "2025-09-26 09:00")
    (approval,) = r.state.approvals
    assert approval.last_day == dt.date(2025, 9, 30)
    r2 = tick(p, r.state, "2025-10-01 00:00")
    assert actions(r2) == ["notify"] and r2.state.state == "searching"


def test_approval_lapses_when_instance_leaves_its_waiting_state() -> None:
    p = program_of(APPROVAL)
    s = create(p, {"owed": "500.00"}, "2025-09-01 09:00").state
    r = event(p, s, "found", "officer", "2025-09-02 09:00")
    r2 = event(p, r.state, "abandon", "creditor", "2025-09-02 10:00")
    assert r2.state.approvals == ()
    assert any(getattr(e, "status", "") == "lapsed" for e in r2.effects)


def test_deadline_firing_while_an_approval_waits_keeps_it() -> None:
    source = APPROVAL.replace(
        "  on abandon in waiting { goto gave_up }",
        "  on abandon in waiting { goto gave_up }\n"
        "  deadline chase in waiting: 1 days after entering {\n"
        "    do notify(party: officer, message: \"please decide\")\n  }")
    p = program_of(source)
    s = create(p, {"owed": "500.00"}, "2025-09-01 09:00").state
    r = event(p, s, "found", "officer", "2025-09-02 09:00")
    aid = _requested(r)
    r2 = tick(p, r.state, "2025-09-04 00:00")  # chase (Wed 3rd) falls due; the approval waits
    assert actions(r2) == ["notify"] and r2.state.state == "waiting"
    assert [a.id for a in r2.state.approvals] == [aid] and r2.state.timers == ()
    r3 = decide(p, r2.state, aid, "officer", True, "2025-09-04 10:00")
    assert actions(r3) == ["freeze"] and r3.state.state == "frozen"


PERIODS = HEAD + """
  state running initial
  state expired terminal
  event obstacle by creditor
  event obstacle_gone by creditor
  event claim by creditor
  on obstacle { suspend limit }
  on obstacle_gone { resume limit }
  on claim { restart limit }
  deadline limit in running: 30 days after entering { goto expired }
}
"""


def test_suspend_resume_adds_the_stopped_time() -> None:
    p = program_of(PERIODS)
    s = create(p, {}, "2025-03-03 09:00").state  # nominal end 2025-04-02
    s = event(p, s, "obstacle", "creditor", "2025-03-10 09:00").state
    (t,) = s.timers
    assert t.due_at is None and t.remaining == 23
    s = event(p, s, "obstacle_gone", "creditor", "2025-03-20 09:00").state
    (t,) = s.timers
    # 2025-03-20 + the 23 days left = Saturday 2025-04-12, extended to Monday 04-14
    assert t.nominal_last_day == dt.date(2025, 4, 12)
    assert t.last_day == dt.date(2025, 4, 14)


def test_restart_counts_again_from_the_interruption() -> None:
    p = program_of(PERIODS)
    s = create(p, {}, "2025-03-03 09:00").state
    s = event(p, s, "claim", "creditor", "2025-03-20 09:00").state
    (t,) = s.timers
    assert t.anchor == dt.date(2025, 3, 20)
    assert t.nominal_last_day == dt.date(2025, 4, 19)


REPEAT = HEAD + """
  state watching initial
  state closed terminal
  event close by creditor
  on close { goto closed }
  deadline requery in watching: every 6 months after entering for 5 years {
    do query_property(debtor: debtor)
  }
}
"""


def test_repeating_deadline_fires_every_six_months() -> None:
    p = program_of(REPEAT)
    s = create(p, {}, "2025-01-31 09:00").state
    fired: list[dt.date] = []
    for _ in range(3):
        due = s.next_due()
        assert due is not None
        r = step(p, CAL, s, Tick(due))
        fired.append(r.explanations[-1].at.astimezone(dt.UTC).date())
        s = r.state
    (t,) = s.timers
    assert t.occurrence == 4
    # 2025-07-31, 2026-01-31 (Saturday -> Monday 2026-02-02), 2026-07-31
    assert [d.isoformat() for d in fired] == ["2025-07-31", "2026-02-02", "2026-07-31"]


def test_deadline_beyond_the_calendar_is_provisional() -> None:
    p = program_of(REPEAT)
    s = create(p, {}, "2026-06-01 09:00").state
    (t,) = s.timers  # 2026-12-01 is inside; the next ones are not
    assert not t.provisional
    r = step(p, CAL, s, Tick(s.next_due()))  # type: ignore[arg-type]
    (t2,) = r.state.timers
    assert t2.provisional and t2.last_day == dt.date(2027, 6, 1)


WAIT = HEAD + """
  state open initial
  state done terminal
  event served by officer { on_date: Date }
  event close by creditor
  on served in open { do notify(party: debtor, message: "served") }
  on close { goto done }
  deadline appeal in open: 15 days after served.on_date { goto done }
}
"""


def test_deadline_anchored_on_an_event_waits_for_it() -> None:
    p = program_of(WAIT)
    s = create(p, {}, "2025-03-03 09:00").state
    (t,) = s.timers
    assert t.due_at is None  # waiting for `served`
    s = event(p, s, "served", "officer", "2025-03-04 09:00", on_date="2025-03-04").state
    (t,) = s.timers
    assert t.last_day == dt.date(2025, 3, 19)


def test_runtime_fault_in_deadline_raises_fault() -> None:
    p = program_of(HEAD + """
  term plan: List[Date]
  state open initial
  state done terminal
  event x by creditor
  on x { goto done }
  deadline d in open: 1 day after entering { do remind(party: debtor, due: plan[5], amount: ¥1.00) }
}
""")
    s = create(p, {"plan": ["2025-03-10"]}, "2025-03-03 09:00").state
    with pytest.raises(Fault) as info:
        tick(p, s, "2025-03-10 00:00")
    assert "index 5" in info.value.message
    assert info.value.span
    assert info.value.span not in info.value.message  # the span is said once, by describe()
    assert info.value.describe().count(info.value.span) == 1


def test_a_deadline_that_cannot_be_armed_names_one_span() -> None:
    p = program_of(HEAD + """
  term plan: List[Date]
  state open initial
  state next
  state done terminal
  event x by creditor
  on x { goto next }
  deadline opening in open: 1 day after entering { goto next }
  deadline d in next: 1 days after plan[5] { goto done }
}
""")
    s = create(p, {"plan": ["2025-03-10"]}, "2025-03-03 09:00").state
    with pytest.raises(Rejected) as refused:
        event(p, s, "x", "creditor", "2025-03-03 10:00")
    assert refused.value.code == "runtime_fault"
    assert refused.value.message.count("(at ") == 1  # the index's span, not also the deadline's
    assert "index 5" in refused.value.message and "deadline `d`" in refused.value.message
    with pytest.raises(Fault) as info:
        tick(p, s, "2025-03-10 00:00")  # `opening` fires, entering `next` arms `d`
    assert info.value.describe().count("(at ") == 1
    assert info.value.span in refused.value.message  # the innermost position: plan[5]


def test_legal_day_is_court_local() -> None:
    p = program_of(PAYMENT)
    # 2025-09-30T17:00Z is 2025-10-01 01:00 in Shanghai
    s = create(p, {"amount": "1.00", "due": "2025-10-01"}, "2025-09-01 09:00").state
    r = step(p, CAL, s, Tick(dt.datetime(2025, 10, 9, 16, 0, tzinfo=dt.UTC)))
    assert r.state.state == "late"


def test_explanations_bilingual_with_citation() -> None:
    p = program_of(PAYMENT)
    s = create(p, {"amount": "100.00", "due": "2025-09-30"}, "2025-09-01 09:00").state
    r = tick(p, s, "2025-10-01 00:00")
    final = r.explanations[-1]
    assert "art. 1" in final.text("en") and "art. 1" in final.text("zh")
    assert "Deadline 'expiry' fell due" in final.text("en")
    assert "期限「expiry」届满" in final.text("zh")
    assert final.to_json()["to"] == "late"
    assert CAL.version.startswith("cn@")


def test_arm_deadlines_computes_what_entering_the_state_computes() -> None:
    from dataclasses import replace

    from engine.core import arm_deadlines, legal_date

    p = program_of(PAYMENT)
    created = create(p, {"amount": "100.00", "due": "2025-10-01"}, "2025-09-01 09:00").state
    assert {t.deadline for t in created.timers} == {"expiry", "reminder"}
    bare = replace(created, timers=(), deadline_days=())
    armed, notes = arm_deadlines(p, CAL, bare, ["reminder", "expiry"],
                                 legal_date(created.clock, CAL), created.clock)
    assert [t.deadline for t in armed.timers] == ["reminder", "expiry"]  # in the order asked
    assert sorted(armed.timers, key=lambda t: t.deadline) == \
        sorted(created.timers, key=lambda t: t.deadline)
    assert armed.deadline_days == created.deadline_days
    assert [n.due_at for n in notes if n] == [t.due_at for t in armed.timers]
    assert all(n is not None and "2025" in n.how_en for n in notes)
    assert bare.timers == ()  # pure: the input state is untouched
    with pytest.raises(KeyError):
        arm_deadlines(p, CAL, bare, ["no_such_deadline"], dt.date(2025, 9, 1), created.clock)
