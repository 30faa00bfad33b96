"""Instances: create one for a case; read its state, deadlines, approvals and timeline;
migrate it to another deployed version, or move it to a newer version of its calendar.
Events: submit one (group-committed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import select

from engine.api.auth import Caller, InstanceMeta, check_instance, court_of, guard, refusal
from engine.api.bodies import UnicodeModel
from engine.api.errors import ApiError, error_responses
from engine.api.outcomes import Result, json_response, refusal_error, result_json
from engine.api.signatures import SignedSubmission, event_message, verify_event_signature
from engine.api.writer import WriterClosed
from engine.runtime.models import T_INPUTS
from engine.runtime.service import EventSubmission

__all__ = ["router"]

router = APIRouter(prefix="/instances", tags=["instances"])

InstanceId = Path(min_length=1, max_length=200, description="the instance (case obligation) id")
_KEY = Field(None, min_length=1, max_length=200,
             description="idempotency key: the same key again returns the first result")


class NewInstanceRequest(UnicodeModel):
    contract: str = Field(min_length=1, max_length=200,
                          description="contract name (its newest deployed version is used)")
    instance: str = Field(min_length=1, max_length=200, description="the new instance's id")
    terms: dict[str, Any] = Field(description="the contract's terms (its `terms` block)")
    parties: dict[str, str] = Field(default_factory=dict,
                                    description="contract role -> party id (who may read it)")
    court: str | None = Field(None, max_length=100,
                              description="defaults to the caller's court")
    idempotency_key: str | None = _KEY


class Signature(BaseModel):
    key_id: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=100,
                       description="base64 Ed25519 signature of the jrule-event/1 message")


class EventRequest(UnicodeModel):
    event: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=200,
                      description="the contract role the event is submitted as")
    payload: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = _KEY
    signature: Signature | None = Field(None, description="an external organisation's "
                                                          "signature (see docs/api.md)")


class MigrateRequest(BaseModel):
    to: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$",
                    description="the contract id (version) to move the instance to")


class RecalendarRequest(BaseModel):
    calendar: str = Field(min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+@[0-9a-f]{12}$",
                          description="the calendar version to move the instance to, e.g. "
                                      "cn@0123456789ab (a newer version of its calendar, "
                                      "loaded in the engine)")


class InstanceView(BaseModel):
    instance: str
    contract: str
    contract_name: str
    calendar: str
    state: str
    status: str
    seq: int
    state_hash: str
    variables: dict[str, Any]
    terms: dict[str, Any]
    parties: dict[str, Any]
    court: str | None
    created_at: str | None
    updated_at: str | None
    document: dict[str, Any]


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def _meta(request: Request, caller: Caller, operation: str, instance_id: str) -> InstanceMeta:
    rt = _runtime(request)
    return check_instance(request, caller, rt.authenticator.instance(instance_id), operation,
                          instance_id,
                          mediation_contracts=frozenset(rt.config.mediation_contracts))


@router.post("", operation_id="create_instance", status_code=201, response_model=Result,
             responses=error_responses(401, 403, 404, 409, 422))
def create_instance(request: Request, body: NewInstanceRequest,
                    caller: Caller = Depends(guard("create_instance"))) -> dict[str, Any]:
    """Create an instance for a case, with its terms and parties, in the caller's court."""
    court = court_of(caller, body.court)
    outcome = _runtime(request).service.create_instance(
        body.contract, body.instance, body.terms, body.parties, court, body.idempotency_key)
    if not outcome.accepted:
        raise refusal_error(outcome)
    return result_json(outcome, _ledger_index(request, outcome.instance_id, outcome.seq))


def _ledger_index(request: Request, instance_id: str, seq: int | None) -> int | None:
    if seq is None:
        return None
    with _runtime(request).service.db.read() as conn:
        index: int | None = conn.scalar(select(T_INPUTS.c.ledger_index).where(
            T_INPUTS.c.instance_id == instance_id, T_INPUTS.c.seq == seq))
    return index


@router.get("/{instance_id}", operation_id="get_instance", response_model=InstanceView,
            responses=error_responses(401, 403, 404))
def get_instance(request: Request, instance_id: str = InstanceId,
                 caller: Caller = Depends(guard("get_instance"))) -> dict[str, Any]:
    """The instance's state, variables and terms."""
    _meta(request, caller, "get_instance", instance_id)
    st = _runtime(request).service.state(instance_id)
    doc = st["document"]
    return {**{k: st[k] for k in ("instance", "contract", "contract_name", "calendar", "state",
                                  "status", "seq", "state_hash", "parties", "court",
                                  "created_at", "updated_at", "document")},
            "variables": _pairs(doc.get("vars")), "terms": _pairs(doc.get("terms"))}


def _pairs(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if isinstance(item, list | tuple) and len(item) == 2:
                out[str(item[0])] = item[1]
            elif isinstance(item, dict) and "name" in item:
                out[str(item["name"])] = item.get("value")
        return out
    return {}


@router.get("/{instance_id}/deadlines", operation_id="get_deadlines",
            response_model=list[dict[str, Any]], responses=error_responses(401, 403, 404))
def get_deadlines(request: Request, instance_id: str = InstanceId,
                  caller: Caller = Depends(guard("get_deadlines"))) -> list[dict[str, Any]]:
    """Running deadlines, each with how its last day was computed (zh and en)."""
    _meta(request, caller, "get_deadlines", instance_id)
    return list(_runtime(request).service.pending_deadlines(instance_id))


@router.get("/{instance_id}/approvals", operation_id="get_instance_approvals",
            response_model=list[dict[str, Any]], responses=error_responses(401, 403, 404))
def get_instance_approvals(request: Request, instance_id: str = InstanceId,
                           caller: Caller = Depends(guard("get_instance_approvals"))
                           ) -> list[dict[str, Any]]:
    """Every approval of the instance (pending ones first to be decided)."""
    _meta(request, caller, "get_instance_approvals", instance_id)
    return list(_runtime(request).service.approvals(instance_id))


@router.get("/{instance_id}/timeline", operation_id="get_timeline",
            response_model=list[dict[str, Any]], responses=error_responses(401, 403, 404))
def get_timeline(request: Request, instance_id: str = InstanceId,
                 caller: Caller = Depends(guard("get_timeline"))) -> list[dict[str, Any]]:
    """Every input applied to the instance, with its explanations."""
    _meta(request, caller, "get_timeline", instance_id)
    return list(_runtime(request).service.timeline(instance_id))


@router.post("/{instance_id}/migrate", operation_id="migrate_instance",
             response_model=dict[str, Any], responses=error_responses(401, 403, 404, 409))
def migrate_instance(request: Request, body: MigrateRequest, instance_id: str = InstanceId,
                     caller: Caller = Depends(guard("migrate_instance"))) -> dict[str, Any]:
    """Move the instance to another deployed version (recorded on the ledger)."""
    _meta(request, caller, "migrate_instance", instance_id)
    return dict(_runtime(request).service.migrate(instance_id, body.to, caller.name))


@router.post("/{instance_id}/recalendar", operation_id="recalendar_instance",
             response_model=dict[str, Any], responses=error_responses(401, 403, 404, 409))
def recalendar_instance(request: Request, body: RecalendarRequest,
                        instance_id: str = InstanceId,
                        caller: Caller = Depends(guard("recalendar_instance"))
                        ) -> dict[str, Any]:
    """Move the instance (active or faulted) to a newer version of its calendar: each
    deadline armed provisionally beyond the old calendar's years is recomputed (holiday
    extension applied), the others are kept; recorded on the ledger.  A faulted
    instance is then resolved through its incident."""
    _meta(request, caller, "recalendar_instance", instance_id)
    return dict(_runtime(request).service.recalendar(instance_id, body.calendar, caller.name))


@router.post("/{instance_id}/events", operation_id="submit_event", response_model=Result,
             tags=["events"], responses=error_responses(401, 403, 404, 409, 422, 503))
async def submit_event(request: Request, body: EventRequest, instance_id: str = InstanceId,
                       idempotency_key: str | None = Header(
                           None, min_length=1, max_length=200, pattern="^[!-~]+$",
                           description="idempotency key (printable ASCII; or in the body)"),
                       caller: Caller = Depends(guard("submit_event"))) -> Any:
    """Submit an event.  Answer: what it changed and why, with its ledger entry; or why
    it was refused (409/422) — a refused event changes nothing."""
    rt = _runtime(request)
    meta = rt.authenticator.cached_instance(instance_id)
    if meta is None:
        meta = await run_in_threadpool(rt.authenticator.instance, instance_id)
    check_instance(request, caller, meta, "submit_event", instance_id,
                   mediation_contracts=frozenset(rt.config.mediation_contracts))
    roles = caller.roles
    if "bank" in roles and not roles - {"bank"} and body.event not in rt.config.bank_events:
        reason = f"a bank may submit only {', '.join(rt.config.bank_events)}"
        refusal(request, caller.name, "submit_event", reason)
        raise ApiError(403, "forbidden", reason)
    key = body.idempotency_key or idempotency_key
    submission: EventSubmission
    signed: dict[str, Any] | None = None
    if body.signature is not None:
        if caller.kind != "org":
            raise ApiError(422, "signature_not_expected",
                           "only external organisations sign events")
        message = event_message(instance_id, body.event, body.role, body.payload, key)
        await run_in_threadpool(verify_event_signature, rt.service.db, caller.name,
                                body.signature.key_id, body.signature.value, message)
        submission = SignedSubmission(instance_id, body.event, body.role, body.payload, key,
                                      org=caller.name, key_id=body.signature.key_id,
                                      message=message, signature=body.signature.value)
        signed = {"org": caller.name, "key_id": body.signature.key_id, "verified": True}
    else:
        if caller.kind == "org" and rt.config.require_org_signatures:
            raise ApiError(422, "signature_required",
                           "this service requires organisations to sign their events")
        submission = EventSubmission(instance_id, body.event, body.role, body.payload, key)
    try:
        outcome, index = await rt.writer.apply(submission)
    except WriterClosed:
        raise ApiError(503, "unavailable", "the service is shutting down; retry elsewhere")\
            from None
    if not outcome.accepted:
        raise refusal_error(outcome)
    if outcome.duplicate:
        index = await run_in_threadpool(_ledger_index, request, instance_id, outcome.seq)
        signed = None
    return json_response(result_json(outcome, index, signed))
