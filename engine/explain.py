"""Explanations a party can read: what happened, under which rule, and why.

An :class:`Explanation` is data built by ``step``; its text in Chinese or
English is rendered only when asked for (``text("zh")``/``text("en")``), so a
busy engine pays for words only when somebody reads them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from engine.values import Value, to_json

__all__ = ["DeadlineNote", "Explanation"]

Lang = Literal["en", "zh"]


@dataclass(frozen=True, slots=True)
class DeadlineNote:
    """A deadline armed (or re-armed) by this step, and how its date was computed.

    ``computation`` is the :mod:`contracts_lib.periods` result (``PeriodEnd``
    or ``PeriodStart``), whose ``explain_en``/``explain_zh`` give the words.
    """

    name: str
    title: str | None
    last_day: dt.date | None
    due_at: dt.datetime | None
    computation: Any
    calendar_version: str
    waiting_for: str | None = None
    provisional: bool = False

    @property
    def how_en(self) -> str:
        if self.waiting_for:
            return f"Deadline '{self.name}' waits for event '{self.waiting_for}'."
        text = f"Deadline '{self.name}': " + str(self.computation.explain_en())
        if self.provisional:
            text += (" The calendar does not yet cover that year: the last day may be "
                     "extended once the year's holiday notice is loaded.")
        return text

    @property
    def how_zh(self) -> str:
        if self.waiting_for:
            return f"期限「{self.name}」待事件「{self.waiting_for}」发生后起算。"
        text = f"期限「{self.name}」：" + str(self.computation.explain_zh())
        if self.provisional:
            text += "（日历尚未涵盖该年度，节假日顺延待该年度放假安排载入后确定。）"
        return text


@dataclass(frozen=True, slots=True)
class Explanation:
    kind: Literal["create", "event", "deadline", "approval", "approval_timeout", "lapse"]
    subject: str  # event name, deadline name or approval id
    rule_span: str
    cite: str | None
    from_state: str | None
    to_state: str
    at: dt.datetime
    by_role: str | None = None
    late_by: dt.timedelta | None = None
    changes: tuple[tuple[str, Value, Value], ...] = ()
    actions: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...] = ()
    approvals: tuple[tuple[str, str, str], ...] = ()  # (id, action, role)
    armed: tuple[DeadlineNote, ...] = ()
    disarmed: tuple[str, ...] = ()
    periods: tuple[tuple[str, str], ...] = ()  # (suspend|resume|restart, deadline)
    lapsed: tuple[str, ...] = ()
    detail: str = ""
    zone: str = "UTC"  # the court's time zone, for the times shown to people

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "rule": self.rule_span,
            "cite": self.cite,
            "from": self.from_state,
            "to": self.to_state,
            "at": self.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "by": self.by_role,
            "late_seconds": None if self.late_by is None else int(self.late_by.total_seconds()),
            "changes": [[n, to_json(a), to_json(b)] for n, a, b in self.changes],
            "actions": [[a, {k: to_json(v) for k, v in args}] for a, args in self.actions],
            "approvals": [list(a) for a in self.approvals],
            "armed": [
                {
                    "deadline": n.name,
                    "last_day": None if n.last_day is None else n.last_day.isoformat(),
                    "how_en": n.how_en,
                    "how_zh": n.how_zh,
                    "calendar": n.calendar_version,
                    "waiting_for": n.waiting_for,
                }
                for n in self.armed
            ],
            "disarmed": list(self.disarmed),
            "periods": [list(p) for p in self.periods],
            "lapsed": list(self.lapsed),
            "detail": self.detail,
            "text_en": self.text("en"),
            "text_zh": self.text("zh"),
        }

    def text(self, lang: Lang = "en") -> str:
        zh = lang == "zh"
        parts: list[str] = []
        from zoneinfo import ZoneInfo

        when = self.at.astimezone(ZoneInfo(self.zone)).strftime("%Y-%m-%d %H:%M") + f" {self.zone}"
        if self.kind == "create":
            parts.append(f"案件实例创建，进入状态「{self.to_state}」" if zh
                         else f"Instance created in state '{self.to_state}'")
        elif self.kind == "event":
            who = f"（由{self.by_role}提交）" if zh else f" (submitted by {self.by_role})"
            parts.append(f"收到事件「{self.subject}」{who}" if zh
                         else f"Event '{self.subject}'{who} received")
        elif self.kind == "deadline":
            late = ""
            if self.late_by:
                late = (f"，迟延{_duration(self.late_by, zh)}触发" if zh
                        else f", fired {_duration(self.late_by, zh)} late")
            parts.append(f"期限「{self.subject}」届满{late}" if zh
                         else f"Deadline '{self.subject}' fell due{late}")
        elif self.kind == "approval":
            parts.append(f"审批{self.subject}由{self.by_role}作出：{self.detail}" if zh
                         else f"Approval {self.subject} decided by {self.by_role}: {self.detail}")
        elif self.kind == "approval_timeout":
            parts.append(f"审批{self.subject}逾期无人确认" if zh
                         else f"Nobody confirmed approval {self.subject} in time")
        else:
            parts.append(f"审批{self.subject}失效" if zh else f"Approval {self.subject} lapsed")
        parts.append(f"（{when}）" if zh else f" at {when}.")
        if self.cite:
            parts.append(f" 依据：{self.cite}。" if zh else f" Legal basis: {self.cite}.")
        parts.append(f" 规则位置 {self.rule_span}。" if zh else f" Rule at {self.rule_span}.")
        for name, old, new in self.changes:
            parts.append(f" {name}：{to_json(old)} → {to_json(new)}。" if zh
                         else f" {name}: {to_json(old)} -> {to_json(new)}.")
        for action, args in self.actions:
            shown = ", ".join(f"{k}={to_json(v)}" for k, v in args)
            parts.append(f" 触发操作 {action}({shown})。" if zh
                         else f" Triggered {action}({shown}).")
        for aid, action, role in self.approvals:
            parts.append(f" 操作 {action} 待{role}确认（审批{aid}）。" if zh
                         else f" {action} awaits confirmation by {role} (approval {aid}).")
        for op, deadline in self.periods:
            words = {"suspend": ("中止", "suspended"), "resume": ("恢复", "resumed"),
                     "restart": ("中断并重新计算", "restarted")}[op]
            parts.append(f" 期限「{deadline}」{words[0]}。" if zh
                         else f" Period '{deadline}' {words[1]}.")
        if self.from_state is not None and self.from_state != self.to_state:
            parts.append(f" 状态：{self.from_state} → {self.to_state}。" if zh
                         else f" State: {self.from_state} -> {self.to_state}.")
        for note in self.armed:
            if note.waiting_for:
                parts.append(f" 期限「{note.name}」待事件「{note.waiting_for}」发生后起算。" if zh
                             else f" Deadline '{note.name}' waits for event "
                             f"'{note.waiting_for}'.")
            else:
                parts.append(" " + (note.how_zh if zh else note.how_en))
        if self.disarmed:
            names = "、".join(self.disarmed) if zh else ", ".join(self.disarmed)
            parts.append(f" 不再适用的期限：{names}。" if zh else f" Deadlines no longer running: "
                         f"{names}.")
        if self.lapsed:
            names = ", ".join(self.lapsed)
            parts.append(f" 失效的审批：{names}。" if zh else f" Approvals lapsed: {names}.")
        return "".join(parts)


def _duration(delta: dt.timedelta, zh: bool) -> str:
    """``2 d 3 h 4 min`` / ``2天3小时4分钟`` (seconds only under a minute)."""
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    units = (("天", "d", days), ("小时", "h", hours), ("分钟", "min", minutes))
    parts = [f"{n}{z}" if zh else f"{n} {e}" for z, e, n in units if n]
    if not parts:
        return f"{seconds}秒" if zh else f"{seconds} s"
    return "".join(parts) if zh else " ".join(parts)
