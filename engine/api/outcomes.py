"""How a service :class:`Outcome` becomes an HTTP answer."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response
from pydantic import BaseModel, Field

from engine.api.errors import ApiError
from engine.runtime.results import Outcome

__all__ = ["LedgerRef", "Result", "json_response", "refusal_error", "result_json"]

#: refusal codes (of the core and the service) whose HTTP status is not 409
_STATUS = {"no_instance": 404, "unknown_contract": 404, "unknown_approval": 404,
           "bad_payload": 422, "bad_terms": 422, "bad_key": 422, "unknown_event": 422}


class LedgerRef(BaseModel):
    index: int | None = Field(description="the input's transition record in the ledger")
    receipt: str | None = Field(description="where to fetch its receipt (public)")


class Result(BaseModel):
    """An applied input: what it changed, why, and where the ledger records it."""

    accepted: bool
    duplicate: bool = Field(description="true: the first result for this idempotency key")
    instance: str
    seq: int | None = None
    state: str | None = None
    status: str | None = None
    at: str | None = None
    contract: str | None = None
    explanations: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    approvals: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    ledger: LedgerRef | None = None
    signature: dict[str, Any] | None = None


def refusal_error(outcome: Outcome) -> ApiError:
    """A refused input as an error: 404 (no such thing), 422 (bad input) or 409 (not now)."""
    code = outcome.code or "refused"
    return ApiError(_STATUS.get(code, 409), code, outcome.message or "refused",
                    {"instance": outcome.instance_id, "accepted": False})


def result_json(outcome: Outcome, ledger_index: int | None = None,
                signature: dict[str, Any] | None = None) -> dict[str, Any]:
    out = outcome.to_json()
    out["duplicate"] = outcome.duplicate
    out.setdefault("extra", {})
    out["ledger"] = {"index": ledger_index,
                     "receipt": None if ledger_index is None
                     else f"/ledger/receipts/{ledger_index}"}
    out["signature"] = signature
    return out


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON answer built without re-validation (the hot path: the content already has
    the documented shape)."""
    return Response(orjson.dumps(content), status_code=status_code,
                    media_type="application/json")
