"""The ledger, public: checkpoint, keys, receipts, inclusion and consistency proofs, and
the witness endpoint.  No authentication: anyone holding a record must be able to check
it (the records are salted; proofs and checkpoints reveal nothing about the parties)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from engine.api.errors import ApiError, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/ledger", tags=["ledger"])

_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}


def _ledger(request: Request) -> Any:
    ledger = request.app.state.runtime.service.ledger
    if ledger is None:
        raise ApiError(503, "unavailable", "this engine runs without a ledger")
    return ledger


def _text(data: bytes | str) -> PlainTextResponse:
    return PlainTextResponse(data if isinstance(data, str) else data.decode("utf-8"))


@router.get("/checkpoint", operation_id="ledger_checkpoint",
            responses={200: _TEXT, **error_responses(404, 503)})
def ledger_checkpoint(request: Request) -> PlainTextResponse:
    """The latest signed checkpoint (C2SP tlog-checkpoint), with witness cosignatures."""
    return _text(_ledger(request).checkpoint().note)


@router.get("/keys", operation_id="ledger_keys",
            responses={200: _TEXT, **error_responses(503)})
def ledger_keys(request: Request) -> PlainTextResponse:
    """The log's public keys with the tree sizes each may sign (for ``jrule verify``)."""
    from ledger_adapter.keys import format_key_list

    return _text(format_key_list(_ledger(request).log_keys()))


@router.get("/receipts/{index}", operation_id="ledger_receipt",
            responses={200: _TEXT, **error_responses(404, 422, 503)})
def ledger_receipt(request: Request, index: int = Path(ge=0, le=2**62),
                   size: int | None = Query(None, ge=1, le=2**62)) -> PlainTextResponse:
    """A receipt for entry ``index`` (C2SP tlog-proof: the record, its inclusion proof and
    the signed checkpoint); check it offline with ``jrule verify``."""
    return _text(_ledger(request).receipt(index, size))


class Proof(BaseModel):
    hashes: list[str]
    size: int
    index: int | None = None
    old: int | None = None


def _b64(hashes: list[bytes]) -> list[str]:
    from ledger_adapter.note import b64encode

    return [b64encode(h) for h in hashes]


@router.get("/proofs/inclusion", operation_id="ledger_inclusion_proof", response_model=Proof,
            responses=error_responses(404, 422, 503))
def ledger_inclusion_proof(request: Request, index: int = Query(ge=0, le=2**62),
                           size: int = Query(ge=1, le=2**62)) -> dict[str, Any]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves (base64)."""
    ledger = _ledger(request)
    if not 0 <= index < size:
        raise ApiError(422, "invalid_request", "need 0 <= index < size")
    if size > ledger.size():
        raise ApiError(404, "no_checkpoint", f"the ledger has fewer than {size} entries")
    return {"index": index, "size": size, "hashes": _b64(ledger.inclusion_proof(index, size))}


@router.get("/proofs/consistency", operation_id="ledger_consistency_proof",
            response_model=Proof, responses=error_responses(404, 422, 503))
def ledger_consistency_proof(request: Request, old: int = Query(ge=0, le=2**62),
                             size: int = Query(ge=0, le=2**62)) -> dict[str, Any]:
    """RFC 9162 consistency proof from the tree of ``old`` leaves to that of ``size``."""
    ledger = _ledger(request)
    if not 0 <= old <= size:
        raise ApiError(422, "invalid_request", "need 0 <= old <= size")
    if size > ledger.size():
        raise ApiError(404, "no_checkpoint", f"the ledger has fewer than {size} entries")
    hashes = ledger.consistency_proof(old, size) if 0 < old < size else []
    return {"old": old, "size": size, "hashes": _b64(hashes)}


@router.get("/witness/add-checkpoint", operation_id="witness_add_checkpoint_request",
             responses={200: _TEXT, **error_responses(404, 409, 422, 503)})
def witness_add_checkpoint_request(request: Request,
                                   old: int = Query(0, ge=0, le=2**62)) -> PlainTextResponse:
    """The tlog-witness ``add-checkpoint`` body for a witness that last cosigned the tree of
    ``old`` leaves: the consistency proof to the latest checkpoint and that checkpoint.
    Feed it to ``jrule witness cosign`` and post the answer back."""
    from ledger_adapter.witness import format_add_checkpoint

    ledger = _ledger(request)
    cp = ledger.checkpoint()
    if old > cp.size:
        raise ApiError(409, "conflict", f"the latest checkpoint has {cp.size} entries, "
                                        f"fewer than {old}")
    proof = ledger.consistency_proof(old, cp.size) if 0 < old < cp.size else []
    return _text(format_add_checkpoint(old, proof, cp.note))


@router.post("/witness/cosignatures", operation_id="witness_submit_cosignature",
             response_model=dict[str, Any],
             openapi_extra={"requestBody": {"required": True, **_TEXT}},
             responses=error_responses(400, 404, 413, 422, 503))
async def witness_submit_cosignature(request: Request,
                                     size: int = Query(ge=0, le=2**62)) -> dict[str, Any]:
    """A witness hands in its cosignature lines for the checkpoint of ``size`` entries.
    Only witnesses configured (``witnesses``) are accepted, and only valid signatures."""
    body = await request.body()
    if len(body) > 100_000:
        raise ApiError(413, "too_large", "cosignature lines are small; this is not one")
    rt = request.app.state.runtime
    return await _cosign(rt, size, body)


async def _cosign(rt: Any, size: int, body: bytes) -> dict[str, Any]:
    from fastapi.concurrency import run_in_threadpool

    return dict(await run_in_threadpool(_store_cosignatures, rt, size, body))


def _store_cosignatures(rt: Any, size: int, body: bytes) -> dict[str, Any]:
    from ledger_adapter.errors import LedgerError
    from ledger_adapter.note import check_signatures, parse_note

    ledger = rt.service.ledger
    if ledger is None:
        raise ApiError(503, "unavailable", "this engine runs without a ledger")
    if not rt.witnesses:
        raise ApiError(404, "no_witnesses", "this service accepts no cosignatures "
                                            "(configure `witnesses`)")
    cp = ledger.checkpoint_at(size)
    try:
        note = parse_note(cp.note)
        combined = parse_note(note.text.encode("utf-8") + b"\n" + body)
        verified, unknown = check_signatures(combined, rt.witnesses)
    except (LedgerError, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "bad_cosignature", f"not valid cosignature lines: {exc}") from None
    if not verified:
        raise ApiError(422, "unknown_witness", "no valid cosignature by a configured witness")
    lines = b"".join(sig.line().encode("utf-8") for _, sig in verified)
    ledger.add_cosignatures(size, lines)
    return {"size": size, "accepted": [v.name for v, _ in verified], "ignored": len(unknown)}
