"""The API's one error shape: ``{"code", "message", "details"}`` with a fitting HTTP status.

Every failure, whatever raised it, leaves the service in this shape: the
service's own errors (:class:`engine.runtime.errors.EngineError` and the
ledger's :class:`ledger_adapter.errors.LedgerError`) are mapped by their
stable codes; request validation errors are 422; an unknown route 404; a
wrong method 405.  Anything else is a bug: it is logged with its traceback
and answered 500 ``internal_error`` without details.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.runtime.errors import DeployRefused, EngineError, MigrationRefused, NotFound

__all__ = ["ApiError", "ErrorBody", "error_responses", "install_error_handlers"]

log = logging.getLogger("jrule.api")


class ErrorBody(BaseModel):
    """What every error response carries."""

    code: str
    message: str
    details: Any = None


class ApiError(Exception):
    """An answer that is not a success: HTTP ``status``, stable ``code``, ``message``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


#: service error codes whose status is not 409 (everything else the service refuses is 409)
_ENGINE_STATUS = {
    NotFound.code: 404, DeployRefused.code: 422, MigrationRefused.code: 409,
    "no_entry": 404, "no_checkpoint": 404, "not_initialised": 503,
    "malformed_note": 400, "malformed_record": 400, "malformed_proof": 400,
}
_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden",
               404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
               413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
               429: "too_many_requests", 503: "unavailable"}


def _body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(_body(code, message, details), status_code=status, headers=headers)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _validation(errors: list[Any]) -> list[dict[str, Any]]:
    return [{"location": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to the one error shape."""

    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, _json_safe(exc.details),
                              headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", "the request is not valid: see details",
                              _validation(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), None,
                              dict(exc.headers) if exc.headers else None)

    @app.exception_handler(EngineError)
    async def _engine(_request: Request, exc: EngineError) -> JSONResponse:
        details = getattr(exc, "diagnostics", None)
        return error_response(_ENGINE_STATUS.get(exc.code, 409), exc.code, exc.message,
                              _json_safe(details))

    from ledger_adapter.errors import LedgerError

    @app.exception_handler(LedgerError)
    async def _ledger(_request: Request, exc: LedgerError) -> JSONResponse:
        code = getattr(exc, "code", "ledger_error") or "ledger_error"
        message = getattr(exc, "message", None) or str(exc)
        return error_response(_ENGINE_STATUS.get(code, 400), code, message)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error",
                              "the service failed; the error was logged")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error shape for ``statuses``."""
    return {s: {"model": ErrorBody, "description": _HTTP_CODES.get(s, "error")}
            for s in statuses}
