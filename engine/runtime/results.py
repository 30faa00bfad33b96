"""What the service returns: plain, JSON-ready values (for an HTTP API later)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "Outcome",
    "VersionInfo",
    "canonical_json",
    "compact_json",
    "iso",
]


# one encoder each, built once (``json.dumps`` with options builds one per call)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def canonical_json(value: object) -> str:
    """The one text encoding of stored JSON (sorted keys, compact, UTF-8 as is)."""
    return _CANONICAL(value)


def compact_json(value: object) -> str:
    """Compact JSON for stored results (not hashed: key order as built, no sorting).

    Written by ``orjson`` (3× faster than the standard encoder; UTF-8 kept as
    is, like it); what it refuses (an integer beyond 64 bits) by the standard
    encoder.  Any JSON reader reads both the same.
    """
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is one
        return _COMPACT(value)


def iso(t: dt.datetime | None) -> str | None:
    """An instant as ISO 8601 UTC with ``Z``."""
    return None if t is None else _iso(t)


@functools.lru_cache(maxsize=4096)
def _iso(t: dt.datetime) -> str:
    # the inputs of one transaction share a few instants (now, the instance clocks)
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    """The answer to one input: applied (``accepted``) or refused (``code``, ``message``).

    A refused input changed nothing.  ``duplicate`` is True when the answer is
    the stored result of an earlier call with the same idempotency key.

    ``explained`` holds the explanations as data (``Explanation.to_data``, or
    as stored in the input log); ``explanations`` renders them, texts included,
    when first read (``engine.explain.render``): the engine stores the data,
    and pays for the words only when somebody reads them.
    """

    accepted: bool
    instance_id: str
    code: str | None = None
    message: str | None = None
    seq: int | None = None
    state: str | None = None
    status: str | None = None
    at: str | None = None
    contract: str | None = None
    explained: tuple[Mapping[str, Any], ...] = ()
    actions: tuple[Mapping[str, Any], ...] = ()  # {"key", "action", "args"}
    approvals: tuple[Mapping[str, Any], ...] = ()  # {"id", "status", "action", "role", "reason"}
    extra: Mapping[str, Any] = field(default_factory=dict)
    duplicate: bool = False

    @property
    def explanations(self) -> tuple[dict[str, Any], ...]:
        """The explanations as the API shows them: data and both texts (zh, en)."""
        rendered: tuple[dict[str, Any], ...] | None = self.__dict__.get("_rendered")
        if rendered is None:
            from engine.explain import render

            rendered = tuple([render(e) for e in self.explained])
            object.__setattr__(self, "_rendered", rendered)
        return rendered

    @classmethod
    def applied(cls, instance_id: str, seq: int, state: str, status: str, at: str | None,
                contract: str, explained: tuple[Mapping[str, Any], ...],
                actions: tuple[Mapping[str, Any], ...],
                approvals: tuple[Mapping[str, Any], ...],
                extra: Mapping[str, Any]) -> Outcome:
        """An accepted outcome, as ``Outcome(True, ...)`` builds it, three times faster
        (every applied input makes one; a frozen dataclass's ``__init__`` sets each
        field through ``object.__setattr__``)."""
        out = object.__new__(cls)
        out.__dict__.update(
            accepted=True, instance_id=instance_id, code=None, message=None, seq=seq,
            state=state, status=status, at=at, contract=contract, explained=explained,
            actions=actions, approvals=approvals, extra=extra, duplicate=False)
        return out

    @classmethod
    def refused(cls, instance_id: str, code: str, message: str) -> Outcome:
        return cls(False, instance_id, code=code, message=message)

    def to_json(self) -> dict[str, Any]:
        """The answer as the API gives it (the explanations with their texts)."""
        return self._json(list(self.explanations))

    def to_stored(self) -> dict[str, Any]:
        """The answer as the input log's ``result`` stores it: the explanations as data
        (:meth:`from_json` of it gives this outcome back; ``to_json`` is the same)."""
        return self._json(list(self.explained))

    def _json(self, explanations: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accepted": self.accepted,
            "instance": self.instance_id,
        }
        if not self.accepted:
            out.update(code=self.code, message=self.message)
            return out
        out.update(
            seq=self.seq, state=self.state, status=self.status, at=self.at,
            contract=self.contract, explanations=explanations,
            actions=list(self.actions), approvals=list(self.approvals),
        )
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, duplicate: bool = False) -> Outcome:
        return cls(
            accepted=data["accepted"], instance_id=data["instance"], code=data.get("code"),
            message=data.get("message"), seq=data.get("seq"), state=data.get("state"),
            status=data.get("status"), at=data.get("at"), contract=data.get("contract"),
            explained=tuple(data.get("explanations", ())),
            actions=tuple(data.get("actions", ())), approvals=tuple(data.get("approvals", ())),
            extra=data.get("extra", {}), duplicate=duplicate,
        )


@dataclass(frozen=True)
class VersionInfo:
    """A deployed contract version."""

    id: str
    name: str
    version: str
    title: str
    ruleset_id: str
    deploy_seq: int
    deployed_at: str
    deployed_by: str
    report_hash: str | None
    #: who reviewed and approved the deployment (the test gate; migration 0005)
    reviewed_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)
