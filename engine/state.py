"""The state of one contract instance, and the inputs and effects of a step.

Everything here is immutable.  :func:`state_to_json` gives the canonical
encoding (stored, hashed, compared with a replay); :func:`state_from_json`
reads it back given the contract's program (which knows the value types).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from contracts_lib.money import Money
from engine._fast import positional
from engine.values import Value, from_json, to_json

__all__ = [
    "ActionEffect",
    "ApprovalEffect",
    "Create",
    "Decision",
    "Effect",
    "Event",
    "Input",
    "InstanceState",
    "PendingApproval",
    "Tick",
    "Timer",
    "canonical_input",
    "canonical_state",
    "canonical_state_text",
    "input_from_json",
    "input_to_json",
    "reference_canonical_state",
    "state_from_json",
    "state_to_json",
]

STATE_FORMAT = "jrule-state/1"


@dataclass(frozen=True, slots=True)
class Timer:
    """An armed deadline (or one occurrence of a repeating deadline)."""

    deadline: str
    index: int
    priority: int
    anchor: dt.date | None
    occurrence: int
    nominal_last_day: dt.date | None
    last_day: dt.date | None
    due_at: dt.datetime | None  # None while suspended or waiting for its anchor event
    suspended_on: dt.date | None = None
    remaining: int | None = None
    provisional: bool = False  # the calendar did not cover the last day yet

    def sort_key(self) -> tuple[dt.datetime, int, int, int]:
        assert self.due_at is not None
        return (self.due_at, self.priority, self.index, self.occurrence)


@dataclass(frozen=True, slots=True)
class PendingApproval:
    id: str
    site: int
    action: str
    args: tuple[tuple[str, Value], ...]
    role: str
    waiting_state: str
    requested_on: dt.date
    last_day: dt.date
    due_at: dt.datetime
    event: str | None
    payload: tuple[tuple[str, Value], ...]
    cite: str | None


@dataclass(frozen=True, slots=True)
class InstanceState:
    instance_id: str
    contract_id: str
    calendar_version: str
    state: str
    seq: int
    clock: dt.datetime
    terms: tuple[tuple[str, Value], ...]
    vars: tuple[tuple[str, Value], ...]
    timers: tuple[Timer, ...] = ()
    approvals: tuple[PendingApproval, ...] = ()
    event_dates: tuple[tuple[str, dt.date], ...] = ()
    event_payloads: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...] = ()
    deadline_days: tuple[tuple[str, dt.date], ...] = ()

    def var(self, name: str) -> Value:
        return dict(self.vars)[name]

    def next_due(self) -> dt.datetime | None:
        """The earliest instant at which something falls due, if any."""
        dues = [t.due_at for t in self.timers if t.due_at is not None]
        dues += [a.due_at for a in self.approvals]
        return min(dues) if dues else None


# --- inputs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    instance_id: str
    terms: Mapping[str, Any]  # JSON, validated by step
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    role: str
    payload: Mapping[str, Any]  # JSON, validated by step
    at: dt.datetime
    key: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Decision:
    approval_id: str
    role: str
    approve: bool
    reason: str
    at: dt.datetime


Input = Create | Event | Tick | Decision


# --- effects --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionEffect:
    """An action to deliver through the outbox, exactly once, under ``key``."""

    key: str
    action: str
    args: tuple[tuple[str, Value], ...]
    cite: str | None
    span: str

    def args_json(self) -> dict[str, object]:
        return {k: to_json(v) for k, v in self.args}


@dataclass(frozen=True, slots=True)
class ApprovalEffect:
    """An approval was requested, or closed (approved/rejected/timeout/lapsed)."""

    approval_id: str
    status: Literal["requested", "approved", "rejected", "timeout", "lapsed"]
    action: str
    role: str
    reason: str = ""


Effect = ActionEffect | ApprovalEffect


# Positional constructors (all fields, in declaration order): see engine/_fast.py.
_make_state = positional(InstanceState)
_make_timer = positional(Timer)


# --- canonical encoding -----------------------------------------------------------


def _instant(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    text = _INSTANTS.get(t)
    if text is None:
        text = t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        if len(_INSTANTS) >= 4096:
            _INSTANTS.clear()
        _INSTANTS[t] = text
    return text


#: instant -> its text (equal instants have one UTC text, whatever their zone object);
#: the inputs of a group commit, and a state's clock and its input, share instants
_INSTANTS: dict[dt.datetime, str] = {}


def _day(d: dt.date | None) -> str | None:
    return None if d is None else d.isoformat()


def _pairs(items: tuple[tuple[str, Value], ...]) -> list[list[object]]:
    return [[k, to_json(v)] for k, v in items]


def _approval_json(a: PendingApproval) -> dict[str, object]:
    return {
        "id": a.id,
        "site": a.site,
        "action": a.action,
        "args": _pairs(a.args),
        "role": a.role,
        "waiting_state": a.waiting_state,
        "requested_on": _day(a.requested_on),
        "last_day": _day(a.last_day),
        "due_at": _instant(a.due_at),
        "event": a.event,
        "payload": _pairs(a.payload),
        "cite": a.cite,
    }


def state_to_json(s: InstanceState) -> dict[str, object]:
    return {
        "format": STATE_FORMAT,
        "instance": s.instance_id,
        "contract": s.contract_id,
        "calendar": s.calendar_version,
        "state": s.state,
        "seq": s.seq,
        "clock": _instant(s.clock),
        "terms": _pairs(s.terms),
        "vars": _pairs(s.vars),
        "timers": [
            {
                "deadline": t.deadline,
                "index": t.index,
                "priority": t.priority,
                "anchor": _day(t.anchor),
                "occurrence": t.occurrence,
                "nominal_last_day": _day(t.nominal_last_day),
                "last_day": _day(t.last_day),
                "due_at": _instant(t.due_at),
                "suspended_on": _day(t.suspended_on),
                "remaining": t.remaining,
                "provisional": t.provisional,
            }
            for t in s.timers
        ],
        "approvals": [_approval_json(a) for a in s.approvals],
        "event_dates": [[e, _day(d)] for e, d in s.event_dates],
        "event_payloads": [[e, _pairs(p)] for e, p in s.event_payloads],
        "deadline_days": [[n, _day(d)] for n, d in s.deadline_days],
    }


def canonical_state(s: InstanceState) -> bytes:
    """The one byte encoding of a state (sorted keys, compact, UTF-8).

    Exactly ``json.dumps(state_to_json(s), sort_keys=True, separators=(",",
    ":"), ensure_ascii=False).encode()`` (:func:`reference_canonical_state`),
    written directly: the keys are emitted in sorted order, and the encodings
    of the parts a step usually leaves as they were (the terms, the timers,
    the remembered events and deadline days: the same immutable objects from
    step to step) are remembered by object identity and reused.
    """
    return _state_text(s).encode("utf-8")


def canonical_state_text(s: InstanceState) -> str:
    """:func:`canonical_state` as text (what the runtime stores)."""
    return _state_text(s)


def reference_canonical_state(s: InstanceState) -> bytes:
    """:func:`canonical_state` by the general JSON encoder (the definition; for tests)."""
    return json.dumps(
        state_to_json(s), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


# --- the direct encoder behind canonical_state ----------------------------------------

_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         check_circular=False).encode  # our data are trees
_text = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept (C)

#: id(part) -> (part, its JSON text).  Holding the part keeps its id from being
#: reused while the entry exists; a hit is checked by identity.  Parts are
#: immutable (tuples of frozen values), so their text never changes.
_PARTS: dict[int, tuple[object, str]] = {}
_PARTS_MAX = 100_000  # ~420 bytes an entry: about 40 MB at most


def _part(obj: Any, encode: Any) -> str:
    hit = _PARTS.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    text: str = encode(obj)
    if len(_PARTS) >= _PARTS_MAX:
        _PARTS.clear()
    _PARTS[id(obj)] = (obj, text)
    return text


def _value_text(v: Value) -> str:
    t = type(v)
    if t is str:
        return _text(v)
    if t is Money:
        return '"' + str(v) + '"'
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return int.__repr__(v)
    if t is dt.date:
        return '"' + dt.date.isoformat(v) + '"'
    return _json(to_json(v))


def _pair_text(pair: tuple[str, Value]) -> str:
    return "[" + _text(pair[0]) + "," + _value_text(pair[1]) + "]"


def _pairs_text(items: tuple[tuple[str, Value], ...]) -> str:
    return "[" + ",".join([_pair_text(p) for p in items]) + "]"


def _vars_text(items: tuple[tuple[str, Value], ...]) -> str:
    # a step keeps the pair of every variable it did not set: those are hits
    # (_part, inlined: this runs for every variable of every step)
    get = _PARTS.get
    texts = []
    for p in items:
        hit = get(id(p))
        texts.append(hit[1] if hit is not None and hit[0] is p else _part(p, _pair_text))
    return "[" + ",".join(texts) + "]"


def _day_text(d: dt.date | None) -> str:
    return "null" if d is None else '"' + d.isoformat() + '"'


def _instant_text(t: dt.datetime | None) -> str:
    return "null" if t is None else '"' + _instant(t) + '"'  # type: ignore[operator]


def _timer_text(t: Timer) -> str:
    return (
        '{"anchor":' + _day_text(t.anchor)
        + ',"deadline":' + _text(t.deadline)
        + ',"due_at":' + _instant_text(t.due_at)
        + ',"index":' + int.__repr__(t.index)
        + ',"last_day":' + _day_text(t.last_day)
        + ',"nominal_last_day":' + _day_text(t.nominal_last_day)
        + ',"occurrence":' + int.__repr__(t.occurrence)
        + ',"priority":' + int.__repr__(t.priority)
        + ',"provisional":' + ("true" if t.provisional else "false")
        + ',"remaining":' + ("null" if t.remaining is None else int.__repr__(t.remaining))
        + ',"suspended_on":' + _day_text(t.suspended_on) + "}"
    )


def _timers_text(timers: tuple[Timer, ...]) -> str:
    return "[" + ",".join([_part(t, _timer_text) for t in timers]) + "]"


def _approvals_text(approvals: tuple[PendingApproval, ...]) -> str:
    return _json([_approval_json(a) for a in approvals])


def _days_text(items: tuple[tuple[str, dt.date], ...]) -> str:
    return "[" + ",".join(["[" + _text(k) + "," + _day_text(d) + "]" for k, d in items]) + "]"


def _payloads_text(items: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...]) -> str:
    return "[" + ",".join(["[" + _text(e) + "," + _pairs_text(p) + "]" for e, p in items]) + "]"


def _state_text(s: InstanceState) -> str:
    return "".join((
        '{"approvals":', "[]" if not s.approvals else _part(s.approvals, _approvals_text),
        ',"calendar":', _text(s.calendar_version),
        ',"clock":', _instant_text(s.clock),
        ',"contract":', _text(s.contract_id),
        ',"deadline_days":', _part(s.deadline_days, _days_text),
        ',"event_dates":', _part(s.event_dates, _days_text),
        ',"event_payloads":', _part(s.event_payloads, _payloads_text),
        ',"format":"', STATE_FORMAT,
        '","instance":', _text(s.instance_id),
        ',"seq":', int.__repr__(s.seq),
        ',"state":', _text(s.state),
        ',"terms":', _part(s.terms, _pairs_text),
        ',"timers":', _part(s.timers, _timers_text),
        ',"vars":', _vars_text(s.vars), "}",
    ))


def state_hash(s: InstanceState) -> str:
    return hashlib.sha256(canonical_state(s)).hexdigest()


def _parse_instant(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def _parse_day(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


@dataclass(frozen=True)
class _Types:
    """Types needed to decode a stored state (from the contract's program)."""

    terms: Mapping[str, str]
    vars: Mapping[str, str]
    args: Mapping[tuple[str, str], str]  # (action, param) -> type
    payloads: Mapping[tuple[str, str], str]  # (event, field) -> type
    table: Any = field(default=None)


def state_from_json(data: Mapping[str, Any], program: Any) -> InstanceState:
    """Decode :func:`state_to_json` output (``program``: :class:`engine.program.Program`)."""
    from contracts_lib.actions import ACTIONS

    if data.get("format") != STATE_FORMAT:
        raise ValueError(f"not a {STATE_FORMAT} state")
    types = program.types
    term_types = dict(program.term_types)
    var_types = {v["name"]: v["type"] for v in program.ir["vars"]}

    def pairs(raw: list[list[Any]], kinds: Mapping[str, str], where: str) -> tuple[Any, ...]:
        return tuple((k, from_json(v, kinds[k], types, f"{where}.{k}")) for k, v in raw)

    def payload(event: str | None, raw: list[list[Any]]) -> tuple[Any, ...]:
        kinds = dict(program.event_fields.get(event, ())) if event else {}
        return pairs(raw, kinds, "payload")

    def args(action: str, raw: list[list[Any]]) -> tuple[Any, ...]:
        spec = ACTIONS[action]
        kinds = {p.name: p.type for p in spec.params}
        return pairs(raw, kinds, "args")

    terms = pairs(data["terms"], term_types, "terms")
    # the stored text of the terms is their canonical encoding: remember it for
    # canonical_state (the terms never change; re-encoding them would give the same)
    _part(terms, lambda _: _json(data["terms"]))
    return _make_state(
        data["instance"],
        data["contract"],
        data["calendar"],
        data["state"],
        data["seq"],
        _parse_instant(data["clock"]),
        terms,
        pairs(data["vars"], var_types, "vars"),
        tuple([
            _make_timer(
                t["deadline"], t["index"], t["priority"], _parse_day(t["anchor"]),
                t["occurrence"], _parse_day(t["nominal_last_day"]), _parse_day(t["last_day"]),
                _parse_instant(t["due_at"]), _parse_day(t["suspended_on"]), t["remaining"],
                t["provisional"],
            )
            for t in data["timers"]
        ]),
        tuple(
            PendingApproval(
                a["id"], a["site"], a["action"], args(a["action"], a["args"]), a["role"],
                a["waiting_state"], _parse_day(a["requested_on"]),  # type: ignore[arg-type]
                _parse_day(a["last_day"]), _parse_instant(a["due_at"]),  # type: ignore[arg-type]
                a["event"], payload(a["event"], a["payload"]), a["cite"],
            )
            for a in data["approvals"]
        ),
        tuple([(e, _parse_day(d)) for e, d in data["event_dates"]]),
        tuple([(e, payload(e, p)) for e, p in data["event_payloads"]]),
        tuple([(n, _parse_day(d)) for n, d in data["deadline_days"]]),
    )


# --- inputs as JSON (the input log) -----------------------------------------------


def input_to_json(i: Input) -> dict[str, object]:
    if isinstance(i, Create):
        return {"input": "create", "instance": i.instance_id, "terms": dict(i.terms),
                "at": _instant(i.at)}
    if isinstance(i, Event):
        return {"input": "event", "event": i.name, "role": i.role, "payload": dict(i.payload),
                "at": _instant(i.at), "key": i.key}
    if isinstance(i, Tick):
        return {"input": "tick", "at": _instant(i.at)}
    return {"input": "decision", "approval": i.approval_id, "role": i.role,
            "approve": i.approve, "reason": i.reason, "at": _instant(i.at)}


_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                   allow_nan=False, check_circular=False).encode


def canonical_input(i: Input) -> str:
    """The input log's ``body``: :func:`input_to_json` as canonical JSON (sorted keys,
    compact, non-ASCII kept), written directly for events and ticks."""
    if type(i) is Event:
        return "".join((
            '{"at":"', _instant(i.at), '","event":', _text(i.name),  # type: ignore[arg-type]
            ',"input":"event","key":', _text(i.key),
            ',"payload":', _canonical_json(dict(i.payload)),
            ',"role":', _text(i.role), "}"))
    if type(i) is Tick:
        return '{"at":"' + _instant(i.at) + '","input":"tick"}'  # type: ignore[operator]
    return _canonical_json(input_to_json(i))


def input_from_json(d: Mapping[str, Any]) -> Input:
    at = _parse_instant(d["at"])
    assert at is not None
    kind = d["input"]
    if kind == "create":
        return Create(d["instance"], d["terms"], at)
    if kind == "event":
        return Event(d["event"], d["role"], d["payload"], at, d.get("key", ""))
    if kind == "tick":
        return Tick(at)
    if kind == "decision":
        return Decision(d["approval"], d["role"], d["approve"], d["reason"], at)
    raise ValueError(f"unknown input kind {kind!r}")
