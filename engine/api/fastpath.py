"""The hot path: ``POST /instances/{id}/events`` by court staff, without the framework.

Submitting events is what other court systems do all day; FastAPI's routing
and dependency resolution cost more than applying the event does.  This pure
ASGI application, in front of FastAPI's own layers
(:class:`engine.api.app.JruleApp`), answers the *common* case itself — a JSON
body that the :class:`EventRequest` model accepts, a valid API key of court
staff, an instance of the caller's court (looked up once per process), no
signature — with exactly the checks and answers of the documented route
(:func:`engine.api.instances.submit_event`): same model, same policy table,
same writer, same result shape.  Everything else (bad JSON, refusals by the
access policy, organisations, signed events, unknown instances, ...) is
passed on to FastAPI untouched, so every error still comes from one place.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

import orjson
from pydantic import ValidationError, create_model

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

#: :class:`EventRequest` without its Unicode check (``UnicodeModel``), for bodies that
#: cannot carry a lone surrogate: the JSON parser refuses bytes that are not UTF-8, so
#: only an escape ``\\uD800``-``\\uDFFF`` could make one, and a body with ``\\ud`` or
#: ``\\uD`` in it takes the whole model
_UncheckedEvent = create_model(  # type: ignore[call-overload]
    "UncheckedEventRequest",
    **{name: (f.annotation, f) for name, f in EventRequest.model_fields.items()})


class EventFastPath:
    """An ASGI application in front of FastAPI's (see the module docstring).

    ``app`` is the framework it passes requests on to; ``access`` counts and logs
    the requests it answers itself (:class:`engine.api.app.AccessLog`); ``handlers``
    are the framework's exception handlers, whose ``Exception`` handler answers
    an unexpected failure here exactly as the framework would (500
    ``internal_error``, logged with its traceback, then re-raised to the server).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 runtime: Any, access: Any = None,
                 handlers: Mapping[Any, Callable[..., Any]] | None = None) -> None:
        self.app = app
        self.runtime = runtime
        self.access = access
        self.handlers = handlers if handlers is not None else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        if match is None or b"%" in (scope.get("raw_path") or b""):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        started = [0]  # the status of the answer once it is being sent
        passed: _Replay | None = None
        try:
            answer = await self._serve(scope, match.group(1), receive, send, started)
            if isinstance(answer, _Replay):
                passed = answer
        except Exception as exc:
            await self._failed(scope, receive, send, exc, started)
            raise
        finally:
            if passed is None and self.access is not None:
                # counted as AccessLog counts: the status sent, or 500 if none was
                self.access.done(scope, started[0] or 500, time.perf_counter() - start)
        if passed is not None:
            await self.app(scope, passed, send)

    async def _serve(self, scope: Scope, instance_id: str, receive: Receive, send: Send,
                     started: list[int]) -> int | _Replay:
        """Answer the request (its status) or say what to pass on to the framework."""
        body, more = await _read_body(receive)
        if more:
            return _Replay(body, more, receive)
        answer = self._answer(scope, instance_id, body)
        if answer is None:
            return _Replay(body, False, receive)
        caller, submission = answer
        authenticator = self.runtime.authenticator
        meta = authenticator.cached_instance(submission.instance_id)
        if meta is None:  # first event for it in this process: look its court up once
            meta = await asyncio.get_running_loop().run_in_executor(
                None, authenticator.instance, submission.instance_id)
        if meta is None or (caller.court is not None and caller.court != meta.court):
            return _Replay(body, False, receive)
        state = scope.setdefault("state", {})
        state["principal"] = caller.name
        try:
            outcome, index = await self.runtime.writer.apply(submission)
        except WriterClosed:
            await _json(send, 503, {"code": "unavailable", "details": None,
                                    "message": "the service is shutting down; retry elsewhere"},
                        started)
            return 503
        if not outcome.accepted:
            err = refusal_error(outcome)
            await _json(send, err.status, {"code": err.code, "message": err.message,
                                           "details": err.details}, started)
            return err.status
        if outcome.duplicate:
            return _Replay(body, False, receive)  # the rare case
        await _json(send, 200, result_json(outcome, index, None), started)
        return 200

    async def _failed(self, scope: Scope, receive: Receive, send: Send, exc: Exception,
                      started: list[int]) -> None:
        """Answer an unexpected failure as the framework's server-error layer does."""
        handler = self.handlers.get(Exception) or self.handlers.get(500)
        if handler is None or started[0]:
            return
        from starlette.requests import Request

        response = handler(Request(scope), exc)
        if inspect.isawaitable(response):
            response = await response
        await response(scope, receive, send)

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
        if caller is None or caller.kind == "org" or not allowed("submit_event", caller.roles) \
                or not caller.roles & COURT_STAFF:
            return None  # organisations (signatures, own cases) go to the route, always
        instance_id = unquote(instance_id)
        try:
            model = EventRequest if b"\\ud" in body or b"\\uD" in body else _UncheckedEvent
            request = model.model_validate_json(body)
        except ValidationError:
            return None
        if request.signature is not None:
            return None
        key = request.idempotency_key
        if b"idempotency-key" in headers:
            # the route checks the header whenever it is sent, even when the body has a key
            header = headers[b"idempotency-key"].decode("latin-1")
            if not _HEADER_KEY.match(header):
                return None
            if key is None:
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


async def _json(send: Send, status: int, content: Any, started: list[int]) -> None:
    body = orjson.dumps(content)
    started[0] = status
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
