"""Explanations a party can read: what happened, under which rule, and why.

An :class:`Explanation` is data built by ``step``; its text in Chinese or
English is rendered only when asked for (``text("zh")``/``text("en")``), so a
busy engine pays for words only when somebody reads them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from engine.values import Value, to_json

__all__ = ["DeadlineNote", "Explanation", "render"]

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

    def to_data(self) -> dict[str, Any]:
        """The explanation as data, without its words: what the input log stores.

        JSON-ready, compact (fields at their default are left out), in a fixed
        key order; :func:`render` turns it into :meth:`to_json`'s form, texts
        included.  ``late_us`` is the lateness in microseconds (exact: the text
        says "fired late" for any non-zero lateness), ``zone`` the court's time
        zone the texts show instants in.  An armed deadline keeps the words of
        its computation (``how_en``/``how_zh``): they come from the calendar
        arithmetic, which the data alone cannot redo.
        """
        data: dict[str, Any] = {"kind": self.kind, "subject": self.subject,
                                "rule": self.rule_span}
        if self.cite is not None:
            data["cite"] = self.cite
        if self.from_state is not None:
            data["from"] = self.from_state
        data["to"] = self.to_state
        data["at"] = _utc_text(self.at)
        data["zone"] = self.zone
        if self.by_role is not None:
            data["by"] = self.by_role
        if self.late_by is not None:
            data["late_us"] = self.late_by // _MICROSECOND
        if self.changes:
            data["changes"] = [[n, to_json(a), to_json(b)] for n, a, b in self.changes]
        if self.actions:
            data["actions"] = [[a, {k: to_json(v) for k, v in args}] for a, args in self.actions]
        if self.approvals:
            data["approvals"] = [list(a) for a in self.approvals]
        if self.armed:
            data["armed"] = [
                {
                    "deadline": n.name,
                    "last_day": None if n.last_day is None else n.last_day.isoformat(),
                    "how_en": n.how_en,
                    "how_zh": n.how_zh,
                    "calendar": n.calendar_version,
                    "waiting_for": n.waiting_for,
                }
                for n in self.armed
            ]
        if self.disarmed:
            data["disarmed"] = list(self.disarmed)
        if self.periods:
            data["periods"] = [list(p) for p in self.periods]
        if self.lapsed:
            data["lapsed"] = list(self.lapsed)
        if self.detail:
            data["detail"] = self.detail
        return data

    def to_json(self) -> dict[str, object]:
        """The explanation as people and programs read it: its data and both texts."""
        return render(self.to_data())

    def text(self, lang: Lang = "en") -> str:
        return self.texts()[1 if lang == "zh" else 0]

    def texts(self) -> tuple[str, str]:
        """The English and the Chinese text, rendered together (one pass)."""
        return _texts(self.to_data())


_MICROSECOND = dt.timedelta(microseconds=1)
_EMPTY: tuple[Any, ...] = ()


def render(data: Mapping[str, Any]) -> dict[str, Any]:
    """An explanation as the API, the timeline and the audit show it, from its data.

    ``data``: :meth:`Explanation.to_data` (as built, or as stored and read back).
    An explanation stored before explanations were stored as data already has
    its texts (``text_en``): it is returned as it is.  The result does not
    depend on the reader: same data, same dict, same texts.
    """
    if "text_en" in data:
        return dict(data)
    text_en, text_zh = _texts(data)
    late = data.get("late_us")
    return {
        "kind": data["kind"],
        "subject": data["subject"],
        "rule": data["rule"],
        "cite": data.get("cite"),
        "from": data.get("from"),
        "to": data["to"],
        "at": data["at"],
        "by": data.get("by"),
        "late_seconds": None if late is None else int(
            dt.timedelta(microseconds=late).total_seconds()),
        "changes": list(data.get("changes", _EMPTY)),
        "actions": list(data.get("actions", _EMPTY)),
        "approvals": list(data.get("approvals", _EMPTY)),
        "armed": list(data.get("armed", _EMPTY)),
        "disarmed": list(data.get("disarmed", _EMPTY)),
        "periods": list(data.get("periods", _EMPTY)),
        "lapsed": list(data.get("lapsed", _EMPTY)),
        "detail": data.get("detail", ""),
        "text_en": text_en,
        "text_zh": text_zh,
    }


def _texts(data: Mapping[str, Any]) -> tuple[str, str]:
    """The English and the Chinese text of an explanation's data (one pass).

    Values appear as their JSON form (``to_json``), which reads back from the
    stored JSON as the very same Python values: the texts rendered on read are
    the texts rendered when the input was applied.
    """
    en: list[str] = []
    zh: list[str] = []
    when = _local_text(data["at"], data["zone"])
    kind = data["kind"]
    subject = data["subject"]
    by = data.get("by")
    if kind == "create":
        to_state = data["to"]
        en.append(f"Instance created in state '{to_state}'")
        zh.append(f"案件实例创建，进入状态「{to_state}」")
    elif kind == "event":
        en.append(f"Event '{subject}' (submitted by {by}) received")
        zh.append(f"收到事件「{subject}」（由{by}提交）")
    elif kind == "deadline":
        late = data.get("late_us")
        if late:
            late_by = dt.timedelta(microseconds=late)
            en.append(f"Deadline '{subject}' fell due, fired "
                      f"{_duration(late_by, False)} late")
            zh.append(f"期限「{subject}」届满，迟延{_duration(late_by, True)}触发")
        else:
            en.append(f"Deadline '{subject}' fell due")
            zh.append(f"期限「{subject}」届满")
    elif kind == "approval":
        detail = data.get("detail", "")
        en.append(f"Approval {subject} decided by {by}: {detail}")
        zh.append(f"审批{subject}由{by}作出：{detail}")
    elif kind == "approval_timeout":
        en.append(f"Nobody confirmed approval {subject} in time")
        zh.append(f"审批{subject}逾期无人确认")
    else:
        en.append(f"Approval {subject} lapsed")
        zh.append(f"审批{subject}失效")
    en.append(f" at {when}.")
    zh.append(f"（{when}）")
    cite = data.get("cite")
    if cite:
        en.append(f" Legal basis: {cite}.")
        zh.append(f" 依据：{cite}。")
    rule = data["rule"]
    en.append(f" Rule at {rule}.")
    zh.append(f" 规则位置 {rule}。")
    for name, a, b in data.get("changes", _EMPTY):
        en.append(f" {name}: {a} -> {b}.")
        zh.append(f" {name}：{a} → {b}。")
    for action, args in data.get("actions", _EMPTY):
        shown = ", ".join([f"{k}={v}" for k, v in args.items()])
        en.append(f" Triggered {action}({shown}).")
        zh.append(f" 触发操作 {action}({shown})。")
    for aid, action, role in data.get("approvals", _EMPTY):
        en.append(f" {action} awaits confirmation by {role} (approval {aid}).")
        zh.append(f" 操作 {action} 待{role}确认（审批{aid}）。")
    for op, deadline in data.get("periods", _EMPTY):
        word_zh, word_en = _PERIOD_WORDS[op]
        en.append(f" Period '{deadline}' {word_en}.")
        zh.append(f" 期限「{deadline}」{word_zh}。")
    from_state = data.get("from")
    if from_state is not None and from_state != data["to"]:
        en.append(f" State: {from_state} -> {data['to']}.")
        zh.append(f" 状态：{from_state} → {data['to']}。")
    for note in data.get("armed", _EMPTY):
        # a waiting deadline's how_en/how_zh are the "waits for event" sentence
        en.append(" " + note["how_en"])
        zh.append(" " + note["how_zh"])
    disarmed = data.get("disarmed")
    if disarmed:
        en.append(f" Deadlines no longer running: {', '.join(disarmed)}.")
        zh.append(f" 不再适用的期限：{'、'.join(disarmed)}。")
    lapsed = data.get("lapsed")
    if lapsed:
        names = ", ".join(lapsed)
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
def _local_text(at: str, zone: str) -> str:
    """``2025-03-03 10:00 Asia/Shanghai``: the instant (its UTC text, as in the data)
    as the court reads it."""
    instant = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") + f" {zone}"


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
