"""Contracts: compile a rule set, deploy it, list deployed versions with their diagrams."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from engine.api.auth import Caller, guard
from engine.api.bodies import UnicodeModel
from engine.api.errors import ApiError, error_responses
from engine.runtime.errors import EngineError
from engine.runtime.models import T_VERSIONS

__all__ = ["router"]

log = logging.getLogger("jrule.api")

router = APIRouter(prefix="/contracts", tags=["contracts"])
MAX_SOURCE = 1_000_000


class RuleSetSource(UnicodeModel):
    source: str = Field(description="the .jrule text", max_length=MAX_SOURCE)
    filename: str = Field("rules.jrule", min_length=1, max_length=200,
                          description="the name errors are reported against")


class DeployRequest(RuleSetSource):
    tests: str | None = Field(None, max_length=2_000_000,
                              description="the rule set's scenario tests and properties (the "
                                          "text of its NAME.test.jrule); the deployment gate "
                                          "runs them, with any tests in the source, first")
    report_hash: str | None = Field(None, max_length=64, pattern="^[0-9a-f]{64}$",
                                    description="only when the service runs without the gate "
                                                "(deploy_gate = false): SHA-256 of a test "
                                                "report signed off elsewhere; with the gate, "
                                                "the report it produces is stored instead")


class ContractSummary(BaseModel):
    id: str
    name: str
    version: str
    title: str


class CompileResult(BaseModel):
    ruleset_id: str = Field(description="SHA-256 of the rule set's canonical IR")
    contracts: list[ContractSummary]
    warnings: list[dict[str, Any]]


class Deployed(BaseModel):
    ruleset_id: str | None
    contracts: list[str] = Field(description="the deployed contract ids")


class Version(BaseModel):
    id: str
    name: str
    version: str
    title: str
    ruleset_id: str
    deploy_seq: int
    deployed_at: str
    deployed_by: str
    report_hash: str | None
    diagram: str | None = Field(None, description="Mermaid stateDiagram-v2 of the contract")


def _diagnostics(result: Any) -> list[dict[str, Any]]:
    from rules_dsl.diagnostics import diagnostics_to_json

    return list(json.loads(diagnostics_to_json(result.check.diagnostics)))


@router.post("/compile", operation_id="compile_rule_set", response_model=CompileResult,
             responses=error_responses(401, 403, 422))
def compile_rule_set(body: RuleSetSource,
                     caller: Caller = Depends(guard("compile_rule_set"))) -> dict[str, Any]:
    """Compile a rule set: its IR id, or every error with its code and position (422)."""
    from rules_dsl.compiler import compile_bytes

    result = compile_bytes(body.source.encode("utf-8"), body.filename)
    diagnostics = _diagnostics(result)
    if result.ir is None:
        raise ApiError(422, "does_not_compile", f"{body.filename} does not compile",
                       diagnostics)
    contracts = result.ir.to_data()["contracts"]
    return {"ruleset_id": result.ir.id,
            "contracts": [{"id": c["id"], "name": c["name"], "version": c.get("version") or "",
                           "title": c.get("title") or ""} for c in contracts],
            "warnings": diagnostics}


@router.post("/deploy", operation_id="deploy_rule_set", status_code=201,
             response_model=Deployed, responses=error_responses(401, 403, 409, 422))
def deploy_rule_set(request: Request, body: DeployRequest,
                    caller: Caller = Depends(guard("deploy_rule_set"))) -> dict[str, Any]:
    """Deploy every contract of a rule set (recorded on the ledger as deployments)."""
    service = request.app.state.runtime.service
    try:
        ids = service.deploy(body.source.encode("utf-8"), body.filename, caller.name,
                             body.report_hash,
                             tests=body.tests.encode("utf-8") if body.tests else None,
                             reviewer=caller.name)
    except (EngineError, ApiError):
        raise
    except Exception as exc:  # a refusal the service added later (e.g. a test gate)
        log.warning("deploy of %s refused: %r", body.filename, exc)
        raise ApiError(422, str(getattr(exc, "code", "deploy_refused")),
                       str(getattr(exc, "message", None) or exc),
                       getattr(exc, "details", None)) from None
    with service.db.read() as conn:
        ruleset = conn.scalar(select(T_VERSIONS.c.ruleset_id)
                              .where(T_VERSIONS.c.id.in_(ids)).limit(1)) if ids else None
    return {"ruleset_id": ruleset, "contracts": ids}


_diagrams: dict[str, str] = {}


def _diagram(service: Any, contract_id: str) -> str | None:
    hit = _diagrams.get(contract_id)
    if hit is not None:
        return hit
    from rules_dsl.graph import to_mermaid

    with service.db.read() as conn:
        ir = conn.scalar(select(T_VERSIONS.c.ir).where(T_VERSIONS.c.id == contract_id))
    if ir is None:
        return None
    text = to_mermaid(json.loads(ir))
    _diagrams[contract_id] = text
    return text


@router.get("", operation_id="list_contract_versions", response_model=list[Version],
            responses=error_responses(401, 403))
def list_contract_versions(request: Request,
                           name: str | None = Query(None, max_length=200),
                           diagrams: bool = Query(True, description="include Mermaid diagrams"),
                           caller: Caller = Depends(guard("list_contract_versions"))
                           ) -> list[dict[str, Any]]:
    """Deployed versions, oldest first (of one contract name when ``name`` is given)."""
    service = request.app.state.runtime.service
    out = []
    for v in service.versions(name):
        row = v.to_json()
        row["diagram"] = _diagram(service, v.id) if diagrams else None
        out.append(row)
    return out


@router.get("/{contract_id}", operation_id="get_contract_version", response_model=Version,
            responses=error_responses(401, 403, 404))
def get_contract_version(request: Request, contract_id: str,
                         caller: Caller = Depends(guard("get_contract_version"))
                         ) -> dict[str, Any]:
    """One deployed version with its diagram."""
    service = request.app.state.runtime.service
    for v in service.versions():
        if v.id == contract_id:
            return {**v.to_json(), "diagram": _diagram(service, v.id)}
    raise ApiError(404, "not_found", f"no deployed contract {contract_id}")
