"""The direct encoders equal their definitions, over random timelines (hypothesis).

``canonical_state`` writes the state document directly, reusing the encodings of
unchanged parts; ``canonical_input`` writes the input log's body directly; an
explanation renders both languages in one pass.  Each must give exactly the
bytes of its definition: the general JSON encoder over ``state_to_json`` /
``input_to_json``, and the one-language-at-a-time renderer kept below as the
reference (the renderer as it was before it was merged).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from core_helpers import CAL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_core_properties import timelines

from engine.core import Fault, Rejected, step
from engine.explain import Explanation, _duration, render
from engine.program import Program
from engine.runtime.results import canonical_json, compact_json
from engine.state import (
    Create,
    Input,
    canonical_input,
    canonical_state,
    canonical_state_text,
    input_to_json,
    reference_canonical_state,
    state_from_json,
)
from engine.values import to_json

START = dt.datetime(2025, 1, 2, 1, 0, tzinfo=dt.UTC)


def reference_text(e: Explanation, lang: str) -> str:
    """The explanation renderer one language at a time (the definition)."""
    zh = lang == "zh"
    parts: list[str] = []
    when = e.at.astimezone(ZoneInfo(e.zone)).strftime("%Y-%m-%d %H:%M") + f" {e.zone}"
    if e.kind == "create":
        parts.append(f"案件实例创建，进入状态「{e.to_state}」" if zh
                     else f"Instance created in state '{e.to_state}'")
    elif e.kind == "event":
        who = f"（由{e.by_role}提交）" if zh else f" (submitted by {e.by_role})"
        parts.append(f"收到事件「{e.subject}」{who}" if zh
                     else f"Event '{e.subject}'{who} received")
    elif e.kind == "deadline":
        late = ""
        if e.late_by:
            late = (f"，迟延{_duration(e.late_by, zh)}触发" if zh
                    else f", fired {_duration(e.late_by, zh)} late")
        parts.append(f"期限「{e.subject}」届满{late}" if zh
                     else f"Deadline '{e.subject}' fell due{late}")
    elif e.kind == "approval":
        parts.append(f"审批{e.subject}由{e.by_role}作出：{e.detail}" if zh
                     else f"Approval {e.subject} decided by {e.by_role}: {e.detail}")
    elif e.kind == "approval_timeout":
        parts.append(f"审批{e.subject}逾期无人确认" if zh
                     else f"Nobody confirmed approval {e.subject} in time")
    else:
        parts.append(f"审批{e.subject}失效" if zh else f"Approval {e.subject} lapsed")
    parts.append(f"（{when}）" if zh else f" at {when}.")
    if e.cite:
        parts.append(f" 依据：{e.cite}。" if zh else f" Legal basis: {e.cite}.")
    parts.append(f" 规则位置 {e.rule_span}。" if zh else f" Rule at {e.rule_span}.")
    for name, old, new in e.changes:
        parts.append(f" {name}：{to_json(old)} → {to_json(new)}。" if zh
                     else f" {name}: {to_json(old)} -> {to_json(new)}.")
    for action, args in e.actions:
        shown = ", ".join(f"{k}={to_json(v)}" for k, v in args)
        parts.append(f" 触发操作 {action}({shown})。" if zh else f" Triggered {action}({shown}).")
    for aid, action, role in e.approvals:
        parts.append(f" 操作 {action} 待{role}确认（审批{aid}）。" if zh
                     else f" {action} awaits confirmation by {role} (approval {aid}).")
    for op, deadline in e.periods:
        words = {"suspend": ("中止", "suspended"), "resume": ("恢复", "resumed"),
                 "restart": ("中断并重新计算", "restarted")}[op]
        parts.append(f" 期限「{deadline}」{words[0]}。" if zh
                     else f" Period '{deadline}' {words[1]}.")
    if e.from_state is not None and e.from_state != e.to_state:
        parts.append(f" 状态：{e.from_state} → {e.to_state}。" if zh
                     else f" State: {e.from_state} -> {e.to_state}.")
    for note in e.armed:
        if note.waiting_for:
            parts.append(f" 期限「{note.name}」待事件「{note.waiting_for}」发生后起算。" if zh
                         else f" Deadline '{note.name}' waits for event '{note.waiting_for}'.")
        else:
            parts.append(" " + (note.how_zh if zh else note.how_en))
    if e.disarmed:
        names = "、".join(e.disarmed) if zh else ", ".join(e.disarmed)
        parts.append(f" 不再适用的期限：{names}。" if zh
                     else f" Deadlines no longer running: {names}.")
    if e.lapsed:
        names = ", ".join(e.lapsed)
        parts.append(f" 失效的审批：{names}。" if zh else f" Approvals lapsed: {names}.")
    return "".join(parts)


def reference_json(e: Explanation) -> dict[str, Any]:
    """An explanation as the API shows it (the definition: the shape of ``to_json``)."""
    return {
        "kind": e.kind, "subject": e.subject, "rule": e.rule_span, "cite": e.cite,
        "from": e.from_state, "to": e.to_state,
        "at": e.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"), "by": e.by_role,
        "late_seconds": None if e.late_by is None else int(e.late_by.total_seconds()),
        "changes": [[n, to_json(a), to_json(b)] for n, a, b in e.changes],
        "actions": [[a, {k: to_json(v) for k, v in args}] for a, args in e.actions],
        "approvals": [list(a) for a in e.approvals],
        "armed": [{"deadline": n.name,
                   "last_day": None if n.last_day is None else n.last_day.isoformat(),
                   "how_en": n.how_en, "how_zh": n.how_zh, "calendar": n.calendar_version,
                   "waiting_for": n.waiting_for} for n in e.armed],
        "disarmed": list(e.disarmed), "periods": [list(p) for p in e.periods],
        "lapsed": list(e.lapsed), "detail": e.detail,
        "text_en": reference_text(e, "en"), "text_zh": reference_text(e, "zh"),
    }


def check_explanation(e: Explanation) -> None:
    assert e.text("en") == reference_text(e, "en")
    assert e.text("zh") == reference_text(e, "zh")
    want = reference_json(e)
    data = e.to_json()
    assert data == want and list(data) == list(want)
    # stored as data (the input log), read back and rendered: the very same answer
    stored = json.loads(compact_json(e.to_data()))
    assert "text_en" not in stored
    rendered = render(stored)
    assert rendered == want and list(rendered) == list(want)
    # a row stored with its texts (before explanations were stored as data) reads as is
    assert render(json.loads(compact_json(want))) == want


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(timelines())
def test_direct_encodings_equal_their_definitions(
        case: tuple[Program, dict[str, Any], list[Input]]) -> None:
    program, terms, inputs = case
    try:
        first = step(program, CAL, None, Create("case", terms, START))
    except Rejected:
        return
    state = first.state
    for e in first.explanations:
        check_explanation(e)
    for inp in [Create("case", terms, START), *inputs]:
        assert canonical_input(inp) == canonical_json(input_to_json(inp))
    for inp in inputs:
        # twice: the second time the unchanged parts' encodings are reused
        for _ in range(2):
            assert canonical_state(state) == reference_canonical_state(state)
            assert canonical_state_text(state).encode("utf-8") == canonical_state(state)
        # decoded from its stored text (which seeds the terms' encoding), the same bytes
        stored = canonical_state(state)
        decoded = state_from_json(json.loads(stored), program)
        assert decoded == state and canonical_state(decoded) == stored
        try:
            result = step(program, CAL, state, inp)
        except (Rejected, Fault):
            continue
        for e in result.explanations:
            check_explanation(e)
        state = result.state
    assert canonical_state(state) == reference_canonical_state(state)


def test_a_late_firing_and_period_words_render_as_defined() -> None:
    at = dt.datetime(2025, 10, 9, 16, 0, tzinfo=dt.UTC)
    e = Explanation("deadline", "d", "x.jrule:1:1", "art. 1", "a", "b", at,
                    late_by=dt.timedelta(days=2, minutes=5),
                    periods=(("suspend", "p"), ("resume", "q"), ("restart", "r")),
                    disarmed=("x", "y"), lapsed=("a1",), zone="Asia/Shanghai")
    check_explanation(e)
    assert "fired 2 d 5 min late" in e.text("en") and "迟延2天5分钟触发" in e.text("zh")


def test_a_lateness_under_a_second_still_reads_as_late() -> None:
    at = dt.datetime(2025, 10, 9, 16, 0, 0, 250_000, tzinfo=dt.UTC)
    e = Explanation("deadline", "d", "x.jrule:1:1", None, "a", "a", at,
                    late_by=dt.timedelta(microseconds=400_000), zone="Asia/Shanghai")
    check_explanation(e)
    assert "fired 0 s late" in e.text("en") and e.to_json()["late_seconds"] == 0
    on_time = Explanation("deadline", "d", "x.jrule:1:1", None, "a", "a", at,
                          late_by=dt.timedelta(0))
    check_explanation(on_time)
    assert on_time.text("en").startswith("Deadline 'd' fell due at ")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["Asia/Shanghai", "America/New_York", "Europe/London",
                        "Australia/Lord_Howe", "America/Santiago", "UTC"]),
       st.lists(st.integers(0, 3 * 365 * 24 * 60), min_size=1, max_size=40))
def test_the_remembered_local_day_is_the_zone_conversion(zone: str, minutes: list[int]) -> None:
    from engine.core import _local_day

    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for m in sorted(minutes) + minutes:  # in order (the slot hits), then shuffled
        for instant in (base + dt.timedelta(minutes=m),
                        base + dt.timedelta(minutes=m, seconds=59, microseconds=999_999)):
            assert _local_day(instant, zone) == instant.astimezone(ZoneInfo(zone)).date()


def test_the_remembered_local_day_across_clock_changes() -> None:
    from engine.core import _local_day

    for zone, day in (("America/New_York", "2025-03-08"), ("America/New_York", "2025-11-01"),
                      ("Europe/London", "2025-03-29"), ("America/Santiago", "2025-04-04"),
                      ("America/Santiago", "2025-09-05"), ("Australia/Lord_Howe", "2025-04-05")):
        t = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        for _ in range(4 * 24 * 12):  # three days and more, every 5 minutes
            assert _local_day(t, zone) == t.astimezone(ZoneInfo(zone)).date(), (zone, t)
            t += dt.timedelta(minutes=5)
