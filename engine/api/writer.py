"""Group commit across concurrent requests: one writer thread, one transaction per group.

HTTP requests do not write themselves.  Each hands its event to
:meth:`GroupWriter.submit` and awaits its own result; the writer thread takes
everything queued (up to ``max_batch``), applies it with
:meth:`EngineService.submit_events` (each event exactly as alone; one
transaction, one fsync, one ledger checkpoint for the group) and resolves
each request's future with its own :class:`Outcome`.  Under load, groups grow
by themselves (requests arriving during a commit form the next group); with
one client each group is one event and nothing waits.  After a group of n
committed, the writer lingers up to ``linger`` (2 ms) for n again before it
starts the next: the senders just answered are sending their next events, and
a group of one event costs a whole transaction.

Requests waiting in one event loop (:meth:`apply`) are woken together: one
``call_soon_threadsafe`` per group settles all their futures, instead of one
wake-up of the loop per event.

Stopping (:meth:`close`) refuses new work, finishes everything queued and
joins the thread, so a graceful shutdown loses no accepted event.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Union

from engine.runtime.results import Outcome
from engine.runtime.service import EngineService, EventSubmission

__all__ = ["Applied", "GroupWriter", "WriterClosed"]

log = logging.getLogger("jrule.writer")

#: an applied event's outcome and the ledger index of its transition record
Applied = tuple[Outcome, int | None]
#: who waits for an event: a thread (``concurrent.futures``) or a coroutine (``asyncio``)
_Waiter = Union["Future[Applied]", "asyncio.Future[Applied]"]
_Item = tuple[EventSubmission, _Waiter]


class WriterClosed(RuntimeError):
    """The service is shutting down and takes no more events."""


class GroupWriter:
    """Applies queued events in groups on one thread (see the module docstring)."""

    def __init__(self, service: EngineService, *, max_batch: int = 256,
                 linger: float = 0.002,
                 on_applied: Callable[[list[Outcome]], None] | None = None) -> None:
        self.service = service
        self.max_batch = max_batch
        self.linger = linger
        self._expect = 1
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self._on_applied = on_applied
        self._thread = threading.Thread(target=self._run, name="jrule-writer", daemon=True)
        self.groups = 0
        self.events = 0
        self._indexes: dict[tuple[str, int], int | None] = {}
        service.on_transaction(self._remember)

    def _remember(self, _conn: Any, _commands: Any, _outcomes: Any,
                  rows: list[dict[str, Any]]) -> None:
        """(A transaction hook.) Note the ledger index of each row this thread writes."""
        if threading.current_thread() is self._thread:
            for r in rows:
                self._indexes[(r["instance_id"], r["seq"])] = r.get("ledger_index")

    def start(self) -> GroupWriter:
        self._thread.start()
        return self

    def submit(self, submission: EventSubmission) -> Future[Applied]:
        """Queue one event; the future gets its outcome once its group committed."""
        if self._closed:
            raise WriterClosed("the service is shutting down")
        future: Future[Applied] = Future()
        self._queue.put((submission, future))
        return future

    async def apply(self, submission: EventSubmission) -> Applied:
        """:meth:`submit` and wait for the outcome (for ``async`` request handlers)."""
        if self._closed:
            raise WriterClosed("the service is shutting down")
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._queue.put((submission, future))
        return await future

    def close(self, timeout: float | None = 30.0) -> None:
        """Take no more events, apply those queued, stop the thread."""
        self._closed = True
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            until = time.monotonic() + self.linger
            while len(group) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    # linger a moment while fewer arrived than the last group had: the
                    # senders answered by that commit are sending their next events
                    # (a blocking get wakes as soon as one arrives; no polling)
                    left = until - time.monotonic()
                    if len(group) >= self._expect or left <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=left)
                    except queue.Empty:
                        break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self._expect = len(group)
            self._apply(group)
        # anything queued after the stop marker (a race with close) is still applied
        rest: list[_Item] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        if rest:
            self._apply(rest)

    def _apply(self, group: list[_Item]) -> None:
        self._indexes.clear()
        try:
            outcomes = self.service.submit_events([s for s, _ in group])
        except Exception:
            if len(group) > 1:  # one bad event must not fail the others: each alone
                log.exception("a group of %d events failed; applying them one by one",
                              len(group))
                for item in group:
                    self._apply([item])
                return
            log.exception("an event could not be applied")
            _settle([(future, None) for _, future in group])
            return
        self.groups += 1
        self.events += len(group)
        settled: list[tuple[_Waiter, Applied | None]] = []
        for (_, future), outcome in zip(group, outcomes, strict=True):
            index = None
            if outcome.accepted and not outcome.duplicate and outcome.seq is not None:
                index = self._indexes.get((outcome.instance_id, outcome.seq))
            settled.append((future, (outcome, index)))
        _settle(settled)
        if self._on_applied is not None:
            try:
                self._on_applied(outcomes)
            except Exception:
                log.exception("on_applied failed")


def _settle(settled: list[tuple[_Waiter, Applied | None]]) -> None:
    """Give each waiter its result (``None``: the event failed); one wake-up per event loop."""
    loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Applied],
                                                     Applied | None]]] = {}
    for future, result in settled:
        if isinstance(future, asyncio.Future):
            loops.setdefault(future.get_loop(), []).append((future, result))
        elif not future.done():
            if result is None:
                future.set_exception(RuntimeError("the event could not be applied"))
            else:
                future.set_result(result)
    for loop, waiting in loops.items():
        try:
            loop.call_soon_threadsafe(_settle_in_loop, waiting)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


def _settle_in_loop(waiting: list[tuple[asyncio.Future[Applied], Applied | None]]) -> None:
    for future, result in waiting:
        if future.done():  # the request was cancelled (its client went away)
            continue
        if result is None:
            future.set_exception(RuntimeError("the event could not be applied"))
        else:
            future.set_result(result)
