"""The stand-in's HTTP front: verify, deduplicate, carry out, reply.

``POST /actions`` takes the engine's signed request (docs/receiving-systems.md):

=====  ==========================================================  ===========
code   when                                                        dispatcher
=====  ==========================================================  ===========
200    carried out now, or the key was seen before (stored reply)  delivered
409    the key was seen before, with ``replay_status=409``         delivered
400    the body is not a well-formed request                       incident
401    the signature does not verify                               incident
404    another path                                                incident
411    no Content-Length                                           incident
413    body over 1 MiB                                             incident
422    refused: unknown action, key reused for another request,
       nothing to renew, a freeze renewed after it expired          incident
503    told to fail (:meth:`ReferenceReceiver.fail_next`)          retried
=====  ==========================================================  ===========

``GET /cases`` lists what was carried out; ``GET /healthz`` answers ``ok``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine.runtime.receiver.docket import Docket, Outcome, Refused
from engine.runtime.webhook import verify_webhook

__all__ = ["MAX_BODY", "ReferenceReceiver"]

log = logging.getLogger("jrule.receiver")

MAX_BODY = 1 << 20
_FIELDS: Mapping[str, tuple[type, ...]] = {
    "key": (str,), "action": (str,), "args": (dict,), "instance": (str,),
    "cite": (str, type(None)), "rule": (str,), "attempt": (int,), "sent_at": (str,),
}


class ReferenceReceiver:
    """The reference receiving system: an HTTP server over a :class:`Docket`.

    ``public_key`` is the engine's webhook key (or a map of key id to key);
    ``db_path`` keeps the records across restarts; ``replay_status`` is what a
    known key gets back (200 with the stored reply, or 409 with
    ``{"error": "already_processed", "receipt": ...}``).  ``port=0`` picks a
    free port (see :attr:`url`).
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey | Mapping[str, Ed25519PublicKey],
        *,
        court: str = "京0105",
        db_path: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/actions",
        replay_status: int = 200,
    ) -> None:
        if replay_status not in (200, 409):
            raise ValueError("replay_status is 200 or 409")
        self.public_key = public_key
        self.docket = Docket(db_path, court)
        self.path = path
        self.replay_status = replay_status
        self._lock = threading.Lock()
        self._failures: list[tuple[int, str | None]] = []
        self._in_flight: set[str] = set()
        self.requests = 0
        self.overlapping = 0  # requests that arrived while the same key was in flight
        self.server = ThreadingHTTPServer((host, port), _RequestHandler)
        self.server.daemon_threads = True
        self.server.receiver = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to POST actions."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` without looking at them."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    # --- running --------------------------------------------------------------

    def start(self) -> ReferenceReceiver:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="jrule-receiver", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join()
        self.docket.close()

    def __enter__(self) -> ReferenceReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one request ----------------------------------------------------------

    def _take_failure(self) -> tuple[int, str | None] | None:
        with self._lock:
            self.requests += 1
            return self._failures.pop(0) if self._failures else None

    def handle(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any],
                                                                        dict[str, str]]:
        """Status, JSON reply and extra headers for one POST body."""
        failure = self._take_failure()
        if failure is not None:
            status, retry_after = failure
            extra = {"Retry-After": retry_after} if retry_after else {}
            return status, {"error": "simulated failure"}, extra
        if not verify_webhook(body, headers, self.public_key):
            return 401, {"error": "signature does not verify"}, {}
        try:
            request = json.loads(body.decode("utf-8"))
        except ValueError:
            return 400, {"error": "body is not JSON"}, {}
        problem = _malformed(request)
        if problem:
            return 400, {"error": problem}, {}
        key = request["key"]
        with self._lock:
            if key in self._in_flight:
                self.overlapping += 1
            self._in_flight.add(key)
        try:
            outcome = self.docket.process(request)
        except Refused as e:
            return e.status, {"error": e.message}, {}
        finally:
            with self._lock:
                self._in_flight.discard(key)
        return self._reply(outcome)

    def _reply(self, outcome: Outcome) -> tuple[int, dict[str, Any], dict[str, str]]:
        if outcome.replayed and self.replay_status == 409:
            return 409, {"error": "already_processed", "receipt": outcome.reply}, {}
        extra = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        return outcome.status, outcome.reply, extra


def _malformed(request: Any) -> str | None:
    if not isinstance(request, dict):
        return "body is not a JSON object"
    for name, types in _FIELDS.items():
        if name not in request:
            return f"missing field {name!r}"
        value = request[name]
        if not isinstance(value, types) or isinstance(value, bool):
            return f"field {name!r} has the wrong type"
    if not request["key"] or request["attempt"] < 1:
        return "key must be non-empty and attempt >= 1"
    return None


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "jrule-reference-receiver/1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = 30  # seconds a client may take to send its request

    @property
    def receiver(self) -> ReferenceReceiver:
        return self.server.receiver  # type: ignore[attr-defined,no-any-return]

    def do_POST(self) -> None:
        if self.path != self.receiver.path:
            self._send(404, {"error": f"no such endpoint {self.path}"})
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._send(411, {"error": "Content-Length required"})
            return
        if int(length) > MAX_BODY:
            self._send(413, {"error": "body too large"})
            return
        body = self.rfile.read(int(length))
        try:
            status, reply, extra = self.receiver.handle(body, dict(self.headers.items()))
        except Exception:
            log.exception("receiver failed")
            status, reply, extra = 500, {"error": "internal error"}, {}
        self._send(status, reply, extra)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"ok": True})
        elif self.path == "/cases":
            self._send(200, {"records": self.receiver.docket.records()})
        else:
            self._send(404, {"error": f"no such endpoint {self.path}"})

    def _send(self, status: int, reply: Mapping[str, Any],
              extra: Mapping[str, str] | None = None) -> None:
        data = json.dumps(reply, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s " + format, self.address_string(), *args)
