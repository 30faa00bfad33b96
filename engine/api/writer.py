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

Events wait in an inbox, not in the queue: a sender wakes the writer thread
only for the first event of a group (to start its linger) and for the one
that completes it (as many as the last group had), not for every event, as
each wake-up is a hand-over of the interpreter lock and two context switches.
Requests waiting in one event loop (:meth:`apply`) are woken together: one
``call_soon_threadsafe`` per group settles all their futures, instead of one
wake-up of the loop per event.

Stopping (:meth:`close`) refuses new work, finishes everything queued and
joins the thread, so a graceful shutdown loses no accepted event.
"""

from __future__ import annotations

import asyncio
import collections
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
        self._inbox: collections.deque[_Item] = collections.deque()
        self._inbox_lock = threading.Lock()
        #: wake-ups of the writer thread: True (see the inbox), None (stop)
        self._queue: queue.SimpleQueue[bool | None] = queue.SimpleQueue()
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
        self._post((submission, future))
        return future

    async def apply(self, submission: EventSubmission) -> Applied:
        """:meth:`submit` and wait for the outcome (for ``async`` request handlers)."""
        if self._closed:
            raise WriterClosed("the service is shutting down")
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._post((submission, future))
        return await future

    def _post(self, item: _Item) -> None:
        """Put an event in the inbox; wake the writer for a group's first and last one."""
        with self._inbox_lock:
            self._inbox.append(item)
            waiting = len(self._inbox)
        if waiting == 1 or waiting == self._expect:
            self._queue.put(True)

    def _take(self) -> list[_Item]:
        """Everything in the inbox (up to ``max_batch``)."""
        with self._inbox_lock:
            inbox = self._inbox
            if len(inbox) <= self.max_batch:
                group = list(inbox)
                inbox.clear()
            else:
                group = [inbox.popleft() for _ in range(self.max_batch)]
        return group

    def close(self, timeout: float | None = 30.0) -> None:
        """Take no more events, apply those queued, stop the thread."""
        self._closed = True
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            if not self._inbox:
                if self._queue.get() is None:
                    break
                if not self._inbox:  # a wake-up for events an earlier group took
                    continue
            # linger a moment while fewer arrived than the last group had: the senders
            # answered by that commit are sending their next events (the sender of the
            # last expected one wakes this thread; no polling)
            until = time.monotonic() + self.linger
            while len(self._inbox) < min(self._expect, self.max_batch):
                left = until - time.monotonic()
                if left <= 0:
                    break
                try:
                    if self._queue.get(timeout=left) is None:
                        stopping = True
                        break
                except queue.Empty:
                    break
            group = self._take()
            if group:
                self._expect = len(group)
                self._apply(group)
        # anything posted after the stop (a race with close) is still applied
        while self._inbox:
            self._apply(self._take())

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
        # before the waiters are woken: their loop then finds the interpreter lock free
        # (this thread goes straight back to its queue), and the counts are current
        # by the time a client reads its answer
        if self._on_applied is not None:
            try:
                self._on_applied(outcomes)
            except Exception:
                log.exception("on_applied failed")
        _settle(settled)


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
