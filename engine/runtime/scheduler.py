"""Waking the engine: APScheduler only says *when to look*; deadlines live in the database.

An APScheduler 3 ``BackgroundScheduler`` with its in-memory job store holds
exactly two jobs:

- ``wake``: a ``date`` job at the earliest pending due instant
  (:meth:`EngineService.next_due`, one indexed ``min``).  It is moved earlier
  whenever a commit arms something sooner, and recomputed after every run;
- ``sweep``: an ``interval`` job (default every 5 s) that runs whatever is due
  anyway — the safety net for instants armed by *other* engine processes, for
  clock jumps, and for anything a missed wake-up would otherwise delay.

Both call :meth:`EngineService.run_due`; jobs coalesce and never overlap
(``max_instances=1``).  Nothing about a deadline is ever kept only in memory:
a process that dies loses nothing but its wake-up, and the next process fires
what fell due meanwhile (late, with how late) at start-up.

With a :class:`VirtualClock` standing still, ``advance()``/``set()`` trigger an
immediate run; with a running virtual clock (``speed``), wake-ups are placed at
the real instant the virtual clock will read the due instant.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

from engine.runtime.clock import VirtualClock
from engine.runtime.service import EngineService

__all__ = ["EngineScheduler"]

log = logging.getLogger("jrule.scheduler")


class EngineScheduler:
    """Runs :meth:`EngineService.run_due` at the next due instant and on a sweep."""

    def __init__(self, service: EngineService, *, sweep_seconds: float = 5.0,
                 batch_limit: int = 1000) -> None:
        self.service = service
        self.sweep_seconds = sweep_seconds
        self.batch_limit = batch_limit
        self._scheduler = BackgroundScheduler(
            timezone=dt.UTC,
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._lock = threading.Lock()
        self._wake_at: dt.datetime | None = None
        self._running = False
        self._again = False
        self._wake_count = 0
        self.runs = 0
        self.fired = 0
        self.last_error: BaseException | None = None

    # --- life cycle -------------------------------------------------------------
    def start(self) -> None:
        """Start waking the engine; fires at once whatever fell due while it was down."""
        self._scheduler.add_job(self._run, "interval", seconds=self.sweep_seconds, id="sweep",
                                replace_existing=True)
        self.service.subscribe(self._armed)
        if isinstance(self.service.clock, VirtualClock):
            self.service.clock.subscribe(self._clock_moved)
        self._scheduler.start()
        self.wake_now()

    def shutdown(self, wait: bool = True) -> None:
        if isinstance(self.service.clock, VirtualClock):
            self.service.clock.unsubscribe(self._clock_moved)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    def wake_now(self) -> None:
        """Run due work as soon as possible (on the scheduler's thread)."""
        self._schedule(dt.datetime.now(dt.UTC))

    # --- jobs --------------------------------------------------------------------
    def _run(self) -> None:
        """Run everything due; runs again at once if woken while running."""
        with self._lock:
            self._running = True
            self._wake_at = None  # this wake-up is being served
        try:
            while True:
                with self._lock:
                    self._again = False
                self._run_once()
                with self._lock:
                    if not self._again:
                        self._running = False
                        self._wake_at = None
                        break
        finally:
            with self._lock:
                self._running = False
        try:
            self._plan(self.service.next_due())
        except Exception as exc:
            self.last_error = exc
            log.exception("next_due failed; the sweep will retry")

    def _run_once(self) -> None:
        try:
            while True:
                fired = self.service.run_due(limit=self.batch_limit)
                self.fired += fired
                self.runs += 1
                if fired == 0:
                    break
                due = self.service.next_due()
                if due is None or due > self.service.clock.now():
                    break
            self.last_error = None
        except Exception as exc:  # keep waking; the sweep retries
            self.last_error = exc
            log.exception("run_due failed; the sweep will retry")

    def _armed(self, due: dt.datetime | None) -> None:
        """A commit armed ``due``: move the wake-up earlier if it is sooner."""
        if due is not None:
            self._plan(due)

    def _clock_moved(self, _now: dt.datetime) -> None:
        self.wake_now()

    # --- placing the wake-up -----------------------------------------------------
    def _plan(self, due: dt.datetime | None) -> None:
        if due is None:
            return
        clock = self.service.clock
        if isinstance(clock, VirtualClock):
            seconds = clock.real_seconds_until(due)
            if seconds is None:
                return  # a standing virtual clock: advance() wakes us
        else:
            seconds = max(0.0, (due - clock.now()).total_seconds())
        self._schedule(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))

    def _schedule(self, run_at: dt.datetime) -> None:
        if not self._scheduler.running:
            return  # start() wakes the engine once it runs
        with self._lock:
            if self._running and run_at <= dt.datetime.now(dt.UTC):
                self._again = True  # the run in progress goes round once more
                return
            if self._wake_at is not None and self._wake_at <= run_at:
                return  # an earlier wake-up is already set
            self._wake_at = run_at
        # A fresh job id per wake-up: re-using one id made APScheduler skip a wake-up
        # whose predecessor was still finishing ("maximum number of running
        # instances reached"), and the wake-up was lost.  The executor has one
        # thread, so runs still never overlap.
        self._wake_count += 1
        self._scheduler.add_job(self._run, "date", run_date=run_at,
                                id=f"wake-{self._wake_count}")

    def status(self) -> dict[str, Any]:
        return {"runs": self.runs, "fired": self.fired,
                "wake_at": None if self._wake_at is None else self._wake_at.isoformat(),
                "last_error": None if self.last_error is None else repr(self.last_error)}
