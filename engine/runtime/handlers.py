"""Delivery handlers: how one outbox row reaches the system that carries it out.

A :class:`Handler` takes one :class:`Delivery` and returns the receiving
system's reply (a :data:`Receipt`), or raises :class:`TransientFailure` (the
dispatcher retries with backoff) or :class:`PermanentFailure` (the dispatcher
raises an incident at once).  Any other exception is treated as transient.

Handlers must be safe to call again with the same idempotency key: the
dispatcher delivers at least once, and the receiving system makes it exactly
once in effect (see ``docs/receiving-systems.md``).

- :class:`LocalHandler`: an in-process callable per action, for tests and the
  demo; it honours idempotency keys itself.
- :class:`RoutingHandler`: picks a handler by action name, then by the
  catalogue's receiving system, then a default.
- ``engine.runtime.webhook.WebhookHandler``: signed HTTP POST.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, Protocol

from contracts_lib.actions import ACTIONS
from engine.runtime.errors import EngineError

__all__ = [
    "ActionFunction",
    "Delivery",
    "DeliveryFailure",
    "Handler",
    "LocalHandler",
    "PermanentFailure",
    "Receipt",
    "RoutingHandler",
    "TransientFailure",
    "missing_returns",
]

Receipt = dict[str, Any]
"""The receiving system's JSON reply (an object), stored in ``outbox.receipt``."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one outbox row.

    ``key`` is the idempotency key (``<instance>:<seq>:<n>``); ``attempt``
    counts from 1 and grows with every try of the same key.  ``parties`` are
    the instance's parties (role name -> party identifier, as given when the
    instance was created), so a receiver can tell who a role argument is.
    """

    key: str
    action: str
    args: Mapping[str, Any]
    instance_id: str
    cite: str | None
    rule_span: str
    attempt: int
    parties: Mapping[str, str] = _field(default_factory=dict)


class DeliveryFailure(EngineError):
    """A handler could not deliver; ``message`` is what the outbox records."""

    code = "delivery_failed"


class TransientFailure(DeliveryFailure):
    """The receiving system may accept a later try (timeouts, 5xx, 429...).

    ``retry_after`` (seconds), when the receiver asked for it, is a lower
    bound for the next try (capped by the dispatcher's maximum delay).
    """

    code = "delivery_transient"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFailure(DeliveryFailure):
    """The receiving system refused the request; retrying will not help."""

    code = "delivery_refused"


class Handler(Protocol):
    """Delivers one action; see the module docstring for the contract."""

    def deliver(self, delivery: Delivery) -> Receipt: ...


ActionFunction = Callable[[Delivery], Receipt]


class LocalHandler:
    """In-process handler: one callable per action (tests and the demo).

    It behaves like a receiving system that honours idempotency keys: the
    first successful call for a key stores its receipt and later calls with
    the same key return that receipt without calling the function again.
    A function that raises stores nothing.  Calls are serialised by one lock.
    ``calls`` counts the function calls per key (what took effect).
    """

    def __init__(
        self,
        functions: Mapping[str, ActionFunction] | None = None,
        default: ActionFunction | None = None,
    ) -> None:
        self._functions: dict[str, ActionFunction] = dict(functions or {})
        self._default = default
        self._receipts: dict[str, Receipt] = {}
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def register(self, action: str, function: ActionFunction) -> None:
        """Carry out ``action`` with ``function`` from now on."""
        with self._lock:
            self._functions[action] = function

    def receipt(self, key: str) -> Receipt | None:
        """The stored receipt for ``key``, if the action took effect."""
        with self._lock:
            stored = self._receipts.get(key)
            return None if stored is None else dict(stored)

    def deliver(self, delivery: Delivery) -> Receipt:
        with self._lock:
            stored = self._receipts.get(delivery.key)
            if stored is not None:
                return dict(stored)
            function = self._functions.get(delivery.action, self._default)
            if function is None:
                raise PermanentFailure(f"no local handler for action {delivery.action!r}")
            self.calls[delivery.key] = self.calls.get(delivery.key, 0) + 1
            receipt = function(delivery)
            if not isinstance(receipt, dict):
                raise PermanentFailure(
                    f"local handler for {delivery.action!r} returned "
                    f"{type(receipt).__name__}, not a JSON object"
                )
            self._receipts[delivery.key] = dict(receipt)
            return dict(receipt)


class RoutingHandler:
    """Sends each action to a handler chosen by configuration.

    Lookup order: ``routes[action]``, then ``routes[receiver]`` where
    ``receiver`` is the catalogue's receiving system for the action (e.g.
    ``"case management system"``), then ``default``.  With no match the
    delivery fails permanently (a configuration error a person must fix).
    """

    def __init__(self, routes: Mapping[str, Handler], default: Handler | None = None) -> None:
        self._routes = dict(routes)
        self._default = default

    def route(self, action: str) -> Handler | None:
        """The handler that delivers ``action``, or None."""
        handler = self._routes.get(action)
        if handler is None:
            spec = ACTIONS.get(action)
            if spec is not None:
                handler = self._routes.get(spec.receiver)
        return handler if handler is not None else self._default

    def deliver(self, delivery: Delivery) -> Receipt:
        handler = self.route(delivery.action)
        if handler is None:
            raise PermanentFailure(f"no route configured for action {delivery.action!r}")
        return handler.deliver(delivery)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        make: Callable[[Mapping[str, Any]], Handler],
    ) -> RoutingHandler:
        """Build from a configuration mapping.

        ``config`` is ``{"default": TARGET, "routes": {NAME: TARGET}}`` where
        ``NAME`` is an action name or a catalogue receiving system, and each
        ``TARGET`` is a mapping ``make`` turns into a handler (for example
        ``{"url": ..., "timeout": 10}`` for a webhook).  Equal targets share
        one handler.
        """
        unknown = set(config) - {"default", "routes"}
        if unknown:
            raise ValueError(f"unknown delivery configuration keys: {sorted(unknown)}")
        built: dict[str, Handler] = {}

        def build(target: Mapping[str, Any]) -> Handler:
            if not isinstance(target, Mapping):
                raise ValueError(f"a delivery target must be a mapping, not {target!r}")
            ident = repr(sorted(target.items()))
            if ident not in built:
                built[ident] = make(target)
            return built[ident]

        receivers = {spec.receiver for spec in ACTIONS.values()}
        routes: dict[str, Handler] = {}
        for name, target in dict(config.get("routes", {})).items():
            if name not in ACTIONS and name not in receivers:
                raise ValueError(
                    f"route {name!r} names neither an action nor a receiving system"
                )
            routes[name] = build(target)
        default = config.get("default")
        return cls(routes, None if default is None else build(default))


def missing_returns(action: str, receipt: Mapping[str, Any]) -> list[str]:
    """What ``receipt`` lacks of the catalogue's ``returns`` for ``action``.

    Each returned field must be present; ``Text`` fields must be non-empty
    strings and ``Date`` fields ISO dates (``YYYY-MM-DD``).  Actions outside
    the catalogue have no requirements.
    """
    spec = ACTIONS.get(action)
    if spec is None:
        return []
    problems: list[str] = []
    for field in spec.returns:
        if not field.required and field.name not in receipt:
            continue
        value = receipt.get(field.name)
        if not isinstance(value, str) or not value:
            problems.append(f"{field.name} ({field.type})")
        elif field.type == "Date" and not _is_iso_date(value):
            problems.append(f"{field.name} (Date, got {value!r})")
    return problems


def _is_iso_date(text: str) -> bool:
    try:
        return dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False
