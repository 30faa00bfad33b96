"""Where the runtime's time comes from.

The engine core never reads a clock: every input carries its instant.  The
runtime takes that instant from a :class:`Clock` it is given:

- :class:`SystemClock` — the real time; the only clock allowed in production.
- :class:`VirtualClock` — time that moves only when told to (``advance``,
  ``set``; never backwards), or, with ``speed``, runs at a fixed multiple of
  real time from a fixed origin.  Sandboxes and rehearsals use it to live
  through months of a workflow in minutes; tests use it to be exact.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from engine.runtime.errors import ClockNotAllowed

__all__ = ["Clock", "Mode", "SystemClock", "VirtualClock", "check_clock"]

Mode = Literal["production", "sandbox", "test"]
MODES: tuple[Mode, ...] = ("production", "sandbox", "test")


@runtime_checkable
class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


def _utc(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        raise ValueError("a clock needs an aware instant (use UTC)")
    return t.astimezone(dt.UTC)


class VirtualClock:
    """A clock that moves only when told to, or at ``speed`` × real time.

    ``VirtualClock(start)`` stands still at ``start`` until :meth:`advance` or
    :meth:`set` moves it.  ``VirtualClock(start, speed=3600.0, real_origin=t)``
    reads ``start + (time.time() - t) * speed`` (plus whatever was advanced): a
    function of the real time, so several processes given the same origin
    agree, and a restarted process carries on where the killed one was.

    Listeners (``subscribe``) are called after every ``advance``/``set`` so a
    scheduler can run what became due at once.
    """

    def __init__(self, start: dt.datetime, *, speed: float = 0.0,
                 real_origin: float | None = None) -> None:
        if speed < 0:
            raise ValueError("a clock cannot run backwards")
        self._base = _utc(start)
        self._speed = speed
        self._origin = time.time() if real_origin is None else real_origin
        self._offset = dt.timedelta(0)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dt.datetime], None]] = []

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now()

    def _now(self) -> dt.datetime:
        t = self._base + self._offset
        if self._speed:
            t += dt.timedelta(seconds=(time.time() - self._origin) * self._speed)
        return t

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move forward by ``delta`` (>= 0); returns the new instant."""
        if delta < dt.timedelta(0):
            raise ValueError("a virtual clock never goes backwards")
        with self._lock:
            self._offset += delta
            t = self._now()
        self._notify(t)
        return t

    def set(self, t: dt.datetime) -> dt.datetime:
        """Move forward to ``t``; refused if ``t`` is earlier than now."""
        t = _utc(t)
        with self._lock:
            current = self._now()
            if t < current:
                raise ValueError(f"a virtual clock never goes backwards ({t} < {current})")
            self._offset += t - current
        self._notify(t)
        return t

    def real_seconds_until(self, t: dt.datetime) -> float | None:
        """Real seconds until the clock reads ``t`` (None: it will not by itself)."""
        gap = (t - self.now()).total_seconds()
        if gap <= 0:
            return 0.0
        return gap / self._speed if self._speed else None

    def subscribe(self, listener: Callable[[dt.datetime], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[dt.datetime], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, t: dt.datetime) -> None:
        for listener in list(self._listeners):
            listener(t)

    def __repr__(self) -> str:
        return f"VirtualClock({self.now().isoformat()}, speed={self._speed})"


def check_clock(clock: Clock, mode: str) -> None:
    """Refuse a clock the mode does not allow (a virtual clock in production)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "production" and isinstance(clock, VirtualClock):
        raise ClockNotAllowed(
            "a virtual clock is refused in production mode: deadlines there run on real "
            "time; use mode 'sandbox' or 'test' to rehearse with a virtual clock")
