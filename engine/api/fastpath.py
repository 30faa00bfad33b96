"""The hot path: ``POST /instances/{id}/events`` by court staff, without the framework.

Submitting events is what other court systems do all day; FastAPI's routing
and dependency resolution cost more than applying the event does.  This pure
ASGI layer answers the *common* case itself — a JSON body that the
:class:`EventRequest` model accepts, a valid API key of court staff, an
instance of the caller's court (looked up once per process), no signature —
with exactly the checks and answers of the documented route
(:func:`engine.api.instances.submit_event`): same model, same policy table,
same writer, same result shape.  Everything else (bad JSON, refusals by the
access policy, organisations, signed events, unknown instances, ...) is
passed on to FastAPI untouched, so every error still comes from one place.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import orjson
from pydantic import ValidationError

from engine.api.auth import Caller
from engine.api.instances import EventRequest
from engine.api.outcomes import refusal_error, result_json
from engine.api.policy import COURT_STAFF, allowed
from engine.api.writer import WriterClosed
from engine.runtime.service import EventSubmission

__all__ = ["EventFastPath"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PATH = re.compile(r"^/instances/([^/]{1,200})/events$")
_HEADER_KEY = re.compile(r"^[!-~]{1,200}$")
_MAX_BODY = 1_000_000


class EventFastPath:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 runtime: Any) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        if match is None or "%" in scope.get("raw_path", b"").decode("latin-1"):
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        replay = _Replay(body, more, receive)
        answer = self._answer(scope, match.group(1), body) if not more else None
        if answer is None:
            await self.app(scope, replay, send)
            return
        caller, submission = answer
        authenticator = self.runtime.authenticator
        meta = authenticator.cached_instance(submission.instance_id)
        if meta is None:  # first event for it in this process: look its court up once
            meta = await asyncio.get_running_loop().run_in_executor(
                None, authenticator.instance, submission.instance_id)
        if meta is None or (caller.court is not None and caller.court != meta.court):
            await self.app(scope, replay, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = caller.name
        try:
            outcome, index = await self.runtime.writer.apply(submission)
        except WriterClosed:
            await _json(send, 503, {"code": "unavailable", "details": None,
                                    "message": "the service is shutting down; retry elsewhere"})
            return
        if not outcome.accepted:
            err = refusal_error(outcome)
            await _json(send, err.status, {"code": err.code, "message": err.message,
                                           "details": err.details})
            return
        if outcome.duplicate:
            await self.app(scope, _Replay(body, False, receive), send)  # the rare case
            return
        await _json(send, 200, result_json(outcome, index, None))

    def _answer(self, scope: Scope, instance_id: str, body: bytes
                ) -> tuple[Caller, EventSubmission] | None:
        """The caller and the event when this request may be the common case, else None.

        Whether the instance exists and is of the caller's court is checked after.
        """
        headers: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            if k in headers:
                return None  # repeated headers: let the framework decide
            headers[k] = v
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            return None
        auth = headers.get(b"authorization", b"")
        if not auth.startswith(b"Bearer ") or b"x-api-key" in headers:
            return None
        runtime = self.runtime
        caller: Caller | None = runtime.authenticator.caller(auth[7:].decode("latin-1"))
        if caller is None or not allowed("submit_event", caller.roles) \
                or not caller.roles & COURT_STAFF:
            return None
        instance_id = unquote(instance_id)
        try:
            request = EventRequest.model_validate_json(body)
        except ValidationError:
            return None
        if request.signature is not None:
            return None
        key = request.idempotency_key
        if key is None and b"idempotency-key" in headers:
            header = headers[b"idempotency-key"].decode("latin-1")
            if not _HEADER_KEY.match(header):
                return None
            key = header
        return caller, EventSubmission(instance_id, request.event, request.role,
                                       request.payload, key)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, and whether it was cut short (too large: left to the framework)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > _MAX_BODY:
            return b"".join(chunks), True


class _Replay:
    """A ``receive`` that hands the already-read body to the framework first."""

    def __init__(self, body: bytes, more: bool, receive: Receive) -> None:
        self._body: bytes | None = body
        self._more = more
        self._receive = receive

    async def __call__(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": self._more}
        return await self._receive()


async def _json(send: Send, status: int, content: Any) -> None:
    body = orjson.dumps(content)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
