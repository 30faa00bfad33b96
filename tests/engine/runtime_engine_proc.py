"""A real engine process for the reliability tests (run as a script, not collected).

``serve URL START SPEED ORIGIN [RECEIVER_URL]``
    An :class:`EngineService` plus :class:`EngineScheduler` on a running
    virtual clock (``START + (time.time() - ORIGIN) * SPEED``), and with
    ``RECEIVER_URL`` a :class:`Dispatcher` delivering the outbox there as
    signed webhooks (key :data:`WEBHOOK_SEED`; retries on the real clock).  Reads commands
    as JSON lines on stdin (``{"op": "create"|"event", ...}``), applies what is
    waiting in one group commit, and acknowledges each command on stdout only
    after its transaction committed.  ``{"op": "stop"}`` exits cleanly; the
    tests mostly end it with SIGKILL instead.

``fire URL NOW``
    Runs due deadlines at the standing instant ``NOW`` until nothing is due,
    then prints how many it fired (the multi-process test starts three).
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import sys
import threading
import time
from typing import Any

from engine.runtime.clock import VirtualClock
from engine.runtime.scheduler import EngineScheduler
from engine.runtime.service import EngineService, EventSubmission, NewInstance

#: the Ed25519 seed the engine signs its webhooks with (the tests' receiver checks it)
WEBHOOK_SEED = bytes(range(32, 64))


def webhook_handler(receiver_url: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from engine.runtime.webhook import WebhookHandler

    return WebhookHandler(receiver_url, Ed25519PrivateKey.from_private_bytes(WEBHOOK_SEED),
                          "engine-test", timeout=30)


def _reader(lines: queue.Queue[dict[str, Any] | None]) -> None:
    for line in sys.stdin:
        if line.strip():
            lines.put(json.loads(line))
    lines.put(None)


def _ack(command: dict[str, Any], outcome: Any) -> dict[str, Any]:
    return {"key": command["key"], "accepted": outcome.accepted, "code": outcome.code,
            "seq": outcome.seq, "duplicate": outcome.duplicate}


def serve(url: str, start: str, speed: float, origin: float,
          receiver_url: str | None = None) -> None:
    clock = VirtualClock(dt.datetime.fromisoformat(start), speed=speed, real_origin=origin)
    service = EngineService(url, clock, mode="test")
    scheduler = EngineScheduler(service, sweep_seconds=0.5)
    scheduler.start()
    stop_delivering = threading.Event()
    delivering: threading.Thread | None = None
    if receiver_url:
        from engine.runtime.dispatcher import Dispatcher

        # the real clock: leases and backoff are about delivery, not legal time; a short
        # lease, so that rows a killed engine was delivering are taken back within seconds
        dispatcher = Dispatcher(service.db, webhook_handler(receiver_url), batch=10,
                                mode="test", lease=dt.timedelta(seconds=3))
        delivering = threading.Thread(target=dispatcher.run_forever,
                                      args=(stop_delivering, 0.05), daemon=True)
        delivering.start()
    print(json.dumps({"ready": True}), flush=True)
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_reader, args=(lines,), daemon=True).start()
    while True:
        first = lines.get()
        if first is None or first["op"] == "stop":
            break
        batch = [first]
        while len(batch) < 50:
            try:
                more = lines.get_nowait()
            except queue.Empty:
                break
            if more is None:
                lines.put(None)
                break
            batch.append(more)
        creates = [c for c in batch if c["op"] == "create"]
        events = [c for c in batch if c["op"] == "event"]
        acks = []
        if creates:
            outs = service.create_instances(
                NewInstance(c["contract"], c["id"], c["terms"], key=c["key"]) for c in creates)
            acks += [_ack(c, o) for c, o in zip(creates, outs, strict=True)]
        if events:
            outs = service.submit_events(
                EventSubmission(c["id"], c["event"], c["role"], c["payload"], c["key"])
                for c in events)
            acks += [_ack(c, o) for c, o in zip(events, outs, strict=True)]
        sys.stdout.write("".join(json.dumps(a) + "\n" for a in acks))
        sys.stdout.flush()
    scheduler.shutdown()
    stop_delivering.set()
    if delivering is not None:
        delivering.join(60)
    service.close()


def fire(url: str, now: str, start_at: float) -> None:
    clock = VirtualClock(dt.datetime.fromisoformat(now))
    service = EngineService(url, clock, mode="test", migrate=False)
    while time.time() < start_at:
        time.sleep(0.005)
    fired = runs = 0
    while True:
        n = service.run_due(limit=300, batch=50)
        fired += n
        runs += 1
        due = service.next_due()
        if due is None or due > clock.now():
            break
    print(json.dumps({"fired": fired, "runs": runs}), flush=True)
    service.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]),
              sys.argv[6] if len(sys.argv) > 6 else None)
    else:
        fire(sys.argv[2], sys.argv[3], float(sys.argv[4]))
