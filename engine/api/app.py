"""The FastAPI application: routes, the error shape, access logs and request metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from engine.api import actions, contracts, instances, ledger, ops
from engine.api.errors import install_error_handlers
from engine.api.runtime import Runtime

__all__ = ["AccessLog", "JruleApp", "create_app"]

log = logging.getLogger("jrule.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]

DESCRIPTION = """The jrule engine as a service.  Every answer that is not a success has one
shape, `{"code", "message", "details"}`.  Authenticate with an API key
(`Authorization: Bearer jrule_...`); the ledger endpoints and `/health` are public.
See docs/api.md."""


class AccessLog:
    """A pure ASGI middleware: one JSON access line and the request metrics per request.

    :meth:`done` is the same accounting for a request answered without the framework
    (the event fast path)."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.enabled = runtime.config.access_log

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.done(scope, status, time.perf_counter() - start)

    def done(self, scope: Scope, status: int, seconds: float) -> None:
        """Count one answered request (and log its line when the access log is on)."""
        self.runtime.metrics.request(scope["method"], status, seconds)
        if self.enabled:
            state = scope.get("state") or {}
            log.info(json.dumps({
                "event": "request", "method": scope["method"], "path": scope["path"],
                "status": status, "ms": round(seconds * 1000, 2),
                "principal": state.get("principal"),
            }, ensure_ascii=False))


class JruleApp(FastAPI):
    """FastAPI with the event fast path (:mod:`engine.api.fastpath`) in front of it.

    The fast path sees a ``POST`` before FastAPI's own layers (its telemetry check,
    the server-error and user middleware): for the common event submission those
    cost more than the fast path itself.  What it does not answer it passes to
    :meth:`FastAPI.__call__` unchanged, and what it answers it counts and logs
    like :class:`AccessLog` and fails like the framework (500 ``internal_error``).
    When FastAPI's native OpenTelemetry support is active (a tracer, meter or
    logger provider configured before the first request), every request takes
    the framework's path instead, so none escapes it.
    """

    fast_path: Any = None
    _direct: bool | None = None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if self.fast_path is not None and scope["type"] == "http" \
                and scope["method"] == "POST":
            direct = self._direct
            if direct is None:
                direct = self._direct = not _telemetry_enabled(self)
            if direct:
                await self.fast_path(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                        send: Callable[[Message], Awaitable[None]]) -> None:
        """The whole FastAPI application (what the fast path passes requests on to)."""
        await super().__call__(scope, receive, send)


def _telemetry_enabled(app: FastAPI) -> bool:
    telemetry = getattr(app, "_native_telemetry", None)
    return telemetry is not None and bool(telemetry.enabled())


def create_app(runtime: Runtime, *, manage: bool = True) -> FastAPI:
    """The application over ``runtime``; with ``manage`` its lifespan starts and stops it."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage:
            runtime.start()
        try:
            yield
        finally:
            if manage:
                runtime.stop()

    app = JruleApp(title="jrule", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    for module in (ops, contracts, instances, actions, ledger):
        app.include_router(module.router)
    from engine.api.fastpath import EventFastPath

    access = AccessLog(app.framework, runtime)  # for the fast path's answers
    app.add_middleware(AccessLog, runtime=runtime)  # for everything else
    app.fast_path = EventFastPath(app.framework, runtime, access, app.exception_handlers)
    return app
