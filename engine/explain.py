"""Explanations a party can read: what happened, under which rule, and why.

An :class:`Explanation` is data built by ``step``; its text in Chinese or
English is rendered only when asked for (``text("zh")``/``text("en")``), so a
busy engine pays for words only when somebody reads them.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

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
        text_en, text_zh = self.texts()
        return {
            "kind": self.kind,
            "subject": self.subject,
            "rule": self.rule_span,
            "cite": self.cite,
            "from": self.from_state,
            "to": self.to_state,
            "at": _utc_text(self.at),
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
            "text_en": text_en,
            "text_zh": text_zh,
        }

    def text(self, lang: Lang = "en") -> str:
        return self.texts()[1 if lang == "zh" else 0]

    def texts(self) -> tuple[str, str]:
        """The English and the Chinese text, rendered together (one pass)."""
        en: list[str] = []
        zh: list[str] = []
        when = _local_text(self.at, self.zone)
        kind = self.kind
        subject = self.subject
        if kind == "create":
            en.append(f"Instance created in state '{self.to_state}'")
            zh.append(f"案件实例创建，进入状态「{self.to_state}」")
        elif kind == "event":
            en.append(f"Event '{subject}' (submitted by {self.by_role}) received")
            zh.append(f"收到事件「{subject}」（由{self.by_role}提交）")
        elif kind == "deadline":
            if self.late_by:
                en.append(f"Deadline '{subject}' fell due, fired "
                          f"{_duration(self.late_by, False)} late")
                zh.append(f"期限「{subject}」届满，迟延{_duration(self.late_by, True)}触发")
            else:
                en.append(f"Deadline '{subject}' fell due")
                zh.append(f"期限「{subject}」届满")
        elif kind == "approval":
            en.append(f"Approval {subject} decided by {self.by_role}: {self.detail}")
            zh.append(f"审批{subject}由{self.by_role}作出：{self.detail}")
        elif kind == "approval_timeout":
            en.append(f"Nobody confirmed approval {subject} in time")
            zh.append(f"审批{subject}逾期无人确认")
        else:
            en.append(f"Approval {subject} lapsed")
            zh.append(f"审批{subject}失效")
        en.append(f" at {when}.")
        zh.append(f"（{when}）")
        if self.cite:
            en.append(f" Legal basis: {self.cite}.")
            zh.append(f" 依据：{self.cite}。")
        en.append(f" Rule at {self.rule_span}.")
        zh.append(f" 规则位置 {self.rule_span}。")
        for name, old, new in self.changes:
            a, b = to_json(old), to_json(new)
            en.append(f" {name}: {a} -> {b}.")
            zh.append(f" {name}：{a} → {b}。")
        for action, args in self.actions:
            shown = ", ".join([f"{k}={to_json(v)}" for k, v in args])
            en.append(f" Triggered {action}({shown}).")
            zh.append(f" 触发操作 {action}({shown})。")
        for aid, action, role in self.approvals:
            en.append(f" {action} awaits confirmation by {role} (approval {aid}).")
            zh.append(f" 操作 {action} 待{role}确认（审批{aid}）。")
        for op, deadline in self.periods:
            word_zh, word_en = _PERIOD_WORDS[op]
            en.append(f" Period '{deadline}' {word_en}.")
            zh.append(f" 期限「{deadline}」{word_zh}。")
        if self.from_state is not None and self.from_state != self.to_state:
            en.append(f" State: {self.from_state} -> {self.to_state}.")
            zh.append(f" 状态：{self.from_state} → {self.to_state}。")
        for note in self.armed:
            if note.waiting_for:
                en.append(f" Deadline '{note.name}' waits for event '{note.waiting_for}'.")
                zh.append(f" 期限「{note.name}」待事件「{note.waiting_for}」发生后起算。")
            else:
                en.append(" " + note.how_en)
                zh.append(" " + note.how_zh)
        if self.disarmed:
            en.append(f" Deadlines no longer running: {', '.join(self.disarmed)}.")
            zh.append(f" 不再适用的期限：{'、'.join(self.disarmed)}。")
        if self.lapsed:
            names = ", ".join(self.lapsed)
            en.append(f" Approvals lapsed: {names}.")
            zh.append(f" 失效的审批：{names}。")
        return "".join(en), "".join(zh)


_PERIOD_WORDS = {"suspend": ("中止", "suspended"), "resume": ("恢复", "resumed"),
                 "restart": ("中断并重新计算", "restarted")}


# Many explanations of a busy engine share an instant (a group commit's inputs, the
# deadlines due at one 24:00): their renderings are pure functions, cached.
@functools.lru_cache(maxsize=4096)
def _utc_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def _local_text(at: dt.datetime, zone: str) -> str:
    """``2025-03-03 10:00 Asia/Shanghai``: the instant as the court reads it."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") + f" {zone}"


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
