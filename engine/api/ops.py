"""Operations: health (public), Prometheus metrics, who am I, the sandbox clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from engine.api.auth import Caller, guard
from engine.api.errors import ApiError, error_responses
from engine.api.metrics import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    mode: str
    database: str
    ledger_size: int | None


@router.get("/health", operation_id="health", response_model=Health,
            responses=error_responses(503))
def health(request: Request) -> Any:
    """Liveness and readiness: the store answers."""
    rt = request.app.state.runtime
    try:
        size = rt.service.ledger.size() if rt.service.ledger is not None else None
    except Exception as exc:
        raise ApiError(503, "unavailable", f"the store does not answer: {exc}") from None
    mode = "sandbox" if rt.config.sandbox else \
        "production" if rt.config.production else "embedded"
    return {"status": "ok", "mode": mode, "database": rt.service.db.dialect,
            "ledger_size": size}


@router.get("/metrics", operation_id="metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
                       **error_responses(401, 403)})
async def metrics(request: Request,
                  caller: Caller = Depends(guard("metrics"))) -> Response:
    """Prometheus text exposition of the service's metrics."""
    body = await run_in_threadpool(request.app.state.runtime.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE)


@router.get("/whoami", operation_id="whoami", response_model=dict[str, Any],
            responses=error_responses(401))
def whoami(caller: Caller = Depends(guard("whoami"))) -> dict[str, Any]:
    """The principal the API key belongs to: roles, court, party id."""
    return caller.to_json()


class ClockMove(BaseModel):
    days: int = Field(0, ge=0, le=3650)
    hours: int = Field(0, ge=0, le=24 * 3650)


@router.post("/sandbox/clock", operation_id="sandbox_advance_clock",
             response_model=dict[str, Any], responses=error_responses(401, 403, 404))
def sandbox_advance_clock(request: Request, body: ClockMove,
                          caller: Caller = Depends(guard("sandbox_advance_clock"))
                          ) -> dict[str, Any]:
    """Sandbox only: move the virtual clock forward; what falls due fires."""
    from engine.runtime.clock import VirtualClock

    service = request.app.state.runtime.service
    if not isinstance(service.clock, VirtualClock):
        raise ApiError(404, "not_found", "this service runs on real time (no sandbox clock)")
    target = service.clock.now() + dt.timedelta(days=body.days, hours=body.hours)
    fired = 0
    while (due := service.next_due()) is not None and due <= target:
        service.clock.set(max(due, service.clock.now()))
        fired += service.run_due()
    service.clock.set(target)
    fired += service.run_due()
    return {"now": target.isoformat(), "fired": fired}
