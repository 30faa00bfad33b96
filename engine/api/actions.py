"""Actions: the outbox with delivery status, incidents (retry, resolve), and approvals
(confirm or reject, with a reason)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import Field
from sqlalchemy import select

from engine.api.auth import Caller, check_instance, guard
from engine.api.bodies import UnicodeModel
from engine.api.errors import ApiError, error_responses
from engine.api.outcomes import Result, refusal_error, result_json
from engine.runtime.errors import NotFound
from engine.runtime.models import T_APPROVALS, T_INCIDENTS

__all__ = ["router"]

router = APIRouter(tags=["actions"])

_INSTANCE = Query(None, min_length=1, max_length=200)
_LIMIT = Query(100, ge=1, le=1000)


def _rt(request: Request) -> Any:
    return request.app.state.runtime


def _visible(request: Request, caller: Caller, operation: str,
             rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only rows of instances the caller may see (its court's, for court staff)."""
    if caller.court is None:
        return rows
    auth = _rt(request).authenticator
    out = []
    for row in rows:
        iid = row.get("instance")
        meta = auth.instance(iid) if iid else None
        if meta is not None and meta.court == caller.court:
            out.append(row)
    return out


def _check(request: Request, caller: Caller, operation: str, instance: str | None) -> None:
    if instance is not None:
        rt = _rt(request)
        check_instance(request, caller, rt.authenticator.instance(instance), operation,
                       instance)


@router.get("/actions/outbox", operation_id="list_outbox", response_model=list[dict[str, Any]],
            responses=error_responses(401, 403, 404))
def list_outbox(request: Request, instance: str | None = _INSTANCE,
                status: str | None = Query(None, pattern="^(pending|delivering|delivered|"
                                                          "incident)$"),
                limit: int = _LIMIT,
                caller: Caller = Depends(guard("list_outbox"))) -> list[dict[str, Any]]:
    """Triggered actions and their delivery status (receipt once delivered)."""
    _check(request, caller, "list_outbox", instance)
    rows = _rt(request).service.outbox(instance, status, limit)
    return _visible(request, caller, "list_outbox", rows)


@router.get("/actions/incidents", operation_id="list_incidents",
            response_model=list[dict[str, Any]], responses=error_responses(401, 403, 404))
def list_incidents(request: Request, instance: str | None = _INSTANCE,
                   status: str | None = Query(None, pattern="^(open|resolved)$"),
                   limit: int = _LIMIT,
                   caller: Caller = Depends(guard("list_incidents"))) -> list[dict[str, Any]]:
    """What needs a person: failed deliveries, deadlines that could not be evaluated."""
    _check(request, caller, "list_incidents", instance)
    rows = _rt(request).service.incidents(status, instance, None, limit)
    return _visible(request, caller, "list_incidents", rows)


class Resolution(UnicodeModel):
    note: str = Field(min_length=1, max_length=2000, description="what the person did")


def _incident(request: Request, caller: Caller, operation: str, incident_id: int
              ) -> dict[str, Any]:
    i = T_INCIDENTS.c
    with _rt(request).service.db.read() as conn:
        r = conn.execute(select(i.id, i.kind, i.instance_id, i.status)
                         .where(i.id == incident_id)).first()
    if r is None:
        raise NotFound(f"no incident {incident_id}")
    if r.instance_id:
        _check(request, caller, operation, r.instance_id)
    return {"id": r.id, "kind": r.kind, "instance": r.instance_id, "status": r.status}


def _dispatcher(request: Request) -> Any:
    rt = _rt(request)
    if rt.dispatcher is not None:
        return rt.dispatcher
    from engine.runtime.dispatcher import Dispatcher
    from engine.runtime.handlers import LocalHandler

    return Dispatcher(rt.service.db, LocalHandler(), rt.service.clock,
                      ledger=rt.service.ledger)


@router.post("/actions/incidents/{incident_id}/retry", operation_id="retry_incident",
             response_model=dict[str, Any], responses=error_responses(401, 403, 404, 409))
def retry_incident(request: Request, incident_id: int = Path(ge=1, le=2**62),
                   caller: Caller = Depends(guard("retry_incident"))) -> dict[str, Any]:
    """Deliver a failed action again (its attempts start over)."""
    _incident(request, caller, "retry_incident", incident_id)
    key = _dispatcher(request).retry_incident(incident_id, caller.name)
    return {"incident": incident_id, "status": "resolved", "resolution": "retried",
            "action_key": key}


@router.post("/actions/incidents/{incident_id}/resolve", operation_id="resolve_incident",
             response_model=dict[str, Any], responses=error_responses(401, 403, 404, 409, 422))
def resolve_incident(request: Request, body: Resolution,
                     incident_id: int = Path(ge=1, le=2**62),
                     caller: Caller = Depends(guard("resolve_incident"))) -> dict[str, Any]:
    """Close an incident a person handled (a deadline fault re-activates its instance)."""
    row = _incident(request, caller, "resolve_incident", incident_id)
    if row["kind"] == "deadline_fault":
        if row["status"] != "open":
            raise ApiError(409, "incident_refused", f"incident {incident_id} is already "
                                                    f"{row['status']}")
        done = _rt(request).service.resolve_fault(row["instance"], caller.name, body.note)
        return {"incident": incident_id, "status": "resolved", **done}
    _dispatcher(request).resolve_incident(incident_id, caller.name, body.note)
    return {"incident": incident_id, "status": "resolved", "resolution": body.note}


# --- approvals ------------------------------------------------------------------------


class Decision(UnicodeModel):
    role: str = Field(min_length=1, max_length=200,
                      description="the contract role the decision is made as (e.g. 执行法官)")
    reason: str = Field("", max_length=2000)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


class Rejection(Decision):
    reason: str = Field(min_length=1, max_length=2000, description="why it is rejected")


@router.get("/approvals", operation_id="list_pending_approvals",
            response_model=list[dict[str, Any]], responses=error_responses(401, 403))
def list_pending_approvals(request: Request,
                           role: str | None = Query(None, min_length=1, max_length=200),
                           caller: Caller = Depends(guard("list_pending_approvals"))
                           ) -> list[dict[str, Any]]:
    """Approvals waiting for a decision (of one contract role when ``role`` is given)."""
    rows = _rt(request).service.pending_approvals(role)
    return _visible(request, caller, "list_pending_approvals", rows)


def _decide(request: Request, caller: Caller, operation: str, approval_id: str,
            approve: bool, body: Decision) -> dict[str, Any]:
    rt = _rt(request)
    with rt.service.db.read() as conn:
        owner = conn.scalar(select(T_APPROVALS.c.instance_id)
                            .where(T_APPROVALS.c.id == approval_id))
    if owner is not None:
        _check(request, caller, operation, owner)
    outcome = rt.service.decide(approval_id, body.role, approve, body.reason,
                                body.idempotency_key, by=caller.name)
    if not outcome.accepted:
        raise refusal_error(outcome)
    return result_json(outcome)


@router.post("/approvals/{approval_id}/confirm", operation_id="confirm_approval",
             response_model=Result, responses=error_responses(401, 403, 404, 409, 422))
def confirm_approval(request: Request, body: Decision,
                     approval_id: str = Path(min_length=1, max_length=200),
                     caller: Caller = Depends(guard("confirm_approval"))) -> dict[str, Any]:
    """Confirm a pending approval (the closed-loop confirmation of a sensitive step)."""
    return _decide(request, caller, "confirm_approval", approval_id, True, body)


@router.post("/approvals/{approval_id}/reject", operation_id="reject_approval",
             response_model=Result, responses=error_responses(401, 403, 404, 409, 422))
def reject_approval(request: Request, body: Rejection,
                    approval_id: str = Path(min_length=1, max_length=200),
                    caller: Caller = Depends(guard("reject_approval"))) -> dict[str, Any]:
    """Reject a pending approval, with the reason."""
    return _decide(request, caller, "reject_approval", approval_id, False, body)
