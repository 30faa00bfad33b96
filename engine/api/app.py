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

__all__ = ["create_app"]

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
    """A pure ASGI middleware: one JSON access line and the request metrics per request."""

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
            seconds = time.perf_counter() - start
            self.runtime.metrics.request(scope["method"], status, seconds)
            if self.enabled:
                state = scope.get("state") or {}
                log.info(json.dumps({
                    "event": "request", "method": scope["method"], "path": scope["path"],
                    "status": status, "ms": round(seconds * 1000, 2),
                    "principal": state.get("principal"),
                }, ensure_ascii=False))


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

    app = FastAPI(title="jrule", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    for module in (ops, contracts, instances, actions, ledger):
        app.include_router(module.router)
    from engine.api.fastpath import EventFastPath

    app.add_middleware(EventFastPath, runtime=runtime)
    app.add_middleware(AccessLog, runtime=runtime)
    return app
