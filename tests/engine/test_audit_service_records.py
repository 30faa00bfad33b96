"""``jrule audit`` over the HTTP service's ledger records, and incident retry/resolve.

One store is made by real servers (``jrule serve`` on loopback): courts,
principals, roles and keys (with a grant, a revocation, a revoked key and a
deactivated principal), a gated deployment, a mediation centre's signed event,
a webhook delivery that fails (the reference receiver answers 400), is retried
through the API and is then delivered exactly once, a second failure resolved
by hand, and a deadline fault resolved.  The audit of that store is clean;
each test then changes, deletes or renumbers one row directly in a copy and
the audit names the table and the row.  The store is made once per backend
(SQLite, and PostgreSQL when ``JRULE_TEST_DATABASE_URL`` is set) and each test
changes its own copy (``runtime_support.clone_store``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import ORIGIN, ROOT, Server, Store, prepare_store
from runtime_support import (
    APPROVALS,
    BACKENDS,
    DATA,
    MINIMAL,
    audit_cli,
    clone_store,
    make_url,
)
from sqlalchemy import create_engine, text

from engine.api.admin import Administration
from engine.api.signatures import audit_signatures, event_message
from engine.runtime.db import open_database
from engine.runtime.receiver.server import ReferenceReceiver
from engine.runtime.webhook import load_public_key, write_key_pair
from ledger_adapter.note import Ed25519Signer
from ledger_adapter.sql import SqlLedger

EXAMPLES = ROOT / "examples"
TERMS = {"金额": "1000.00", "履行期限": "2025-09-30", "司法确认": True}


def _source(path: Path, tests: bool = False) -> dict[str, str]:
    body = {"source": path.read_text(encoding="utf-8"), "filename": path.name}
    if tests:
        body["tests"] = path.with_name(path.name.removesuffix(".jrule") + ".test.jrule"
                                       ).read_text(encoding="utf-8")
    return body


def _wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _freeze(clerk: httpx.Client, officer: httpx.Client, judge: httpx.Client,
            instance: str) -> None:
    """A freeze_flow case whose confirmed approval triggers a ``freeze`` action."""
    made = clerk.post("/instances", json={"contract": "freeze_flow", "instance": instance,
                                          "terms": {"owed": "5000.00", "rate": "0.01"}})
    assert made.status_code == 201, made.text
    found = officer.post(f"/instances/{instance}/events", json={
        "event": "property_found", "role": "officer",
        "payload": {"amount": "8000.00", "kind": "bank_deposit"}}).json()
    approval = found["approvals"][0]["id"]
    ok = judge.post(f"/approvals/{approval}/confirm",
                    json={"role": "judge", "reason": "deposit verified"})
    assert ok.status_code == 200, ok.text


def _incident(clerk: httpx.Client, instance: str) -> dict[str, Any]:
    def find() -> Any:
        rows = clerk.get("/actions/incidents", params={"instance": instance,
                                                       "status": "open"}).json()
        return rows[0] if rows else None
    found: dict[str, Any] = _wait(f"the incident of {instance}", find)
    return found


def _outbox(clerk: httpx.Client, instance: str) -> dict[str, Any]:
    rows = clerk.get("/actions/outbox", params={"instance": instance}).json()
    assert len(rows) == 1, rows
    return dict(rows[0])


def _story(store: Store, data: Path) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    db = open_database(store.url, engine_lock=False)
    try:
        signer = Ed25519Signer.from_skey((data / "ledger.skey").read_text().strip())
        admin = Administration(db, SqlLedger(db.engine, ORIGIN, signer))
        admin.grant("judge", "reviewer", "test")
        admin.revoke("all", "judge", "test")
        _, issued = admin.issue_key("clerk", "test")
        admin.revoke_key(issued["key_id"], "test")
        facts["revoked_key"] = issued["key_id"]
        admin.deactivate("party2", "test")
    finally:
        db.close()

    # a gated deployment: its test report and reviewer on the ledger
    with Server(store, deploy_gate=True) as server, server.client("reviewer") as reviewer:
        ok = reviewer.post("/contracts/deploy",
                           json=_source(EXAMPLES / "judgment_performance.jrule", True))
        assert ok.status_code == 201, ok.text

    private, public = write_key_pair(data, "hook")
    with ReferenceReceiver(load_public_key(public)) as receiver:
        (data / "delivery.json").write_text(json.dumps({"default": {"url": receiver.url,
                                                                    "timeout": 5}}))
        with Server(store, virtual_clock="2025-09-01T02:00:00Z",
                    delivery=str(data / "delivery.json"), webhook_key=str(private)) as server:
            reviewer, clerk = server.client("reviewer"), server.client("clerk")
            judge, officer = server.client("judge"), server.client("enforcement_officer")
            for source in (MINIMAL, APPROVALS, DATA / "faulty.jrule"):
                assert reviewer.post("/contracts/deploy", json=_source(source)
                                     ).status_code == 201

            # a signed event
            made = clerk.post("/instances", json={
                "contract": "调解协议", "instance": "case-1", "terms": TERMS,
                "parties": {"申请人": "p-1", "调解组织": "med-1"}})
            assert made.status_code == 201, made.text
            message = event_message("case-1", "付款", "申请人", {"数额": "5.00"}, "sig-1")
            assert store.org_private is not None
            sig = base64.b64encode(store.org_private.sign(message.encode())).decode()
            signed = server.client("mediation_centre").post("/instances/case-1/events", json={
                "event": "付款", "role": "申请人", "payload": {"数额": "5.00"},
                "idempotency_key": "sig-1",
                "signature": {"key_id": store.org_key_id, "value": sig}})
            assert signed.status_code == 200 and signed.json()["signature"]["verified"]

            # a delivery refused by the receiver (400: permanent) -> an incident, retried
            receiver.fail_next(1, status=400)
            _freeze(clerk, officer, judge, "f-1")
            incident = _incident(clerk, "f-1")
            assert incident["kind"] == "delivery_failed"
            before = _outbox(clerk, "f-1")
            assert before["status"] == "incident" and receiver.requests == 1
            assert receiver.docket.records() == []
            retried = clerk.post(f"/actions/incidents/{incident['id']}/retry")
            assert retried.status_code == 200, retried.text
            assert retried.json()["action_key"] == before["key"]
            row = _wait("the retried delivery", lambda: (
                lambda r: r if r["status"] == "delivered" else None)(_outbox(clerk, "f-1")))
            again = clerk.post(f"/actions/incidents/{incident['id']}/retry")
            assert again.status_code == 409, again.text
            time.sleep(1.0)  # a second delivery, if there were one, would have happened
            assert _outbox(clerk, "f-1")["status"] == "delivered"
            assert receiver.requests == 2  # the refused one and the one that succeeded
            filed = [r for r in receiver.docket.records() if r["key"] == before["key"]]
            assert len(filed) == 1, receiver.docket.records()
            facts["retried"] = (incident["id"], row["key"])

            # another refusal, resolved by hand
            receiver.fail_next(1, status=400)
            _freeze(clerk, officer, judge, "f-2")
            second = _incident(clerk, "f-2")
            done = clerk.post(f"/actions/incidents/{second['id']}/resolve",
                              json={"note": "served by hand at the bank's counter"})
            assert done.status_code == 200, done.text
            facts["resolved"] = second["id"]

            # a deadline fault, resolved
            assert clerk.post("/instances", json={"contract": "故障", "instance": "bad-1",
                                                  "terms": {"金额表": []}}).status_code == 201
            assert clerk.post("/sandbox/clock", json={"days": 2}).status_code == 200
            fault = _incident(clerk, "bad-1")
            assert fault["kind"] == "deadline_fault"
            fixed = clerk.post(f"/actions/incidents/{fault['id']}/resolve",
                               json={"note": "terms corrected by the clerk"})
            assert fixed.status_code == 200, fixed.text
            facts["fault"] = fault["id"]
    return facts


@pytest.fixture(scope="module", params=BACKENDS)
def made(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The story's store, once per backend: (backend, url, facts)."""
    root = tmp_path_factory.mktemp("service-records")
    for url in make_url(request.param, root):
        store = prepare_store(url, root / "data")
        facts = _story(store, root / "data")
        # the rows the findings must name
        gated = "FROM contract_versions WHERE report_ledger_index IS NOT NULL"
        facts["gated"] = _scalar(url, f"SELECT id {gated}")
        facts["ruleset"] = _scalar(url, f"SELECT ruleset_id {gated}")
        facts["bank_key"] = _scalar(url, "SELECT key_id FROM api_keys WHERE principal = 'bank'")
        facts["org_key"] = store.org_key_id
        facts["next_incident"] = _scalar(url, "SELECT max(id) FROM incidents") + 1
        yield request.param, url, facts


@pytest.fixture
def copy(made: tuple[str, str, dict[str, Any]], tmp_path: Path
         ) -> Iterator[tuple[str, dict[str, Any]]]:
    """A copy of the story's store for one test to change (same backend)."""
    backend, url, facts = made
    for target in make_url(backend, tmp_path):
        clone_store(url, target)
        yield target, facts



def _sql(url: str, sql: str, **params: object) -> None:
    """Change rows directly, as someone with the database's keys would: no foreign-key
    checks (SQLite enforces none on this plain connection; on PostgreSQL the
    superuser turns its FK triggers off), so any row can be changed or deleted."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            assert conn.execute(text(sql), params).rowcount >= 1, sql
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def _admin_records(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        ledger = SqlLedger(engine, ORIGIN, Ed25519Signer.generate(ORIGIN))
        return [dict(e.record.fields) for e in ledger.entries(0, ledger.size())
                if e.kind == "admin"]
    finally:
        engine.dispose()


def test_the_store_audits_clean_and_logs_who_closed_each_incident(
        copy: tuple[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    url, facts = copy
    code, out = audit_cli(url, capsys)
    assert code == 0, out
    assert "no disagreement found" in out
    records = _admin_records(url)
    actions = [r["action"] for r in records]
    for action in ("create_court", "add_principal", "grant_role", "revoke_role",
                   "issue_key", "revoke_key", "deactivate_principal", "register_org_key",
                   "test_report"):
        assert action in actions, action
    incident, key = facts["retried"]
    closed = {r["subject"]: r for r in records
              if r["action"] in ("retry_incident", "resolve_incident")}
    retry = closed[f"incident={incident} key={key}"]
    assert retry["action"] == "retry_incident" and retry["by"] == "clerk"
    resolved = next(r for s, r in closed.items()
                    if s.startswith(f"incident={facts['resolved']} key="))
    assert resolved["action"] == "resolve_incident" and resolved["by"] == "clerk"
    import hashlib

    assert resolved["digest"] == hashlib.sha256(
        b"resolved: served by hand at the bank's counter").hexdigest()
    assert f"incident={facts['fault']} instance=bad-1" in closed
    assert len(closed) == 3
    # the retried row: delivered once, its outcome on the ledger after the failure's
    assert _scalar(url, "SELECT count(*) FROM outbox WHERE status = 'delivered'") == 1
    assert _scalar(url, f"SELECT attempts FROM outbox WHERE key = '{key}'") == 1


CASES = [
    # (1) signed events
    ("signature renumbered", "UPDATE event_signatures SET seq = seq + 100",
     ["event_signatures[id=1].seq", "event_signatures[instance_id=case-1,seq="]),
    ("signature deleted", "DELETE FROM event_signatures",
     ["event_signatures[instance_id=case-1,seq="]),
    ("signature's ledger index moved",
     "UPDATE event_signatures SET ledger_index = ledger_index - 1",
     ["event_signatures[id=1].ledger_index"]),
    ("signature changed", "UPDATE event_signatures SET signature = 'AAAA' || signature",
     ["event_signatures[id=1].signature"]),
    ("signed message changed",
     "UPDATE event_signatures SET message = replace(message, '5.00', '50.00')",
     ["event_signatures[id=1].message: is not the event logged at inputs[case-1, seq ",
      "event_signatures[id=1].signature: does not verify with mediation_centre's key",
      "event_signatures[id=1].message: disagrees with ledger entry"]),
    ("signed event's input changed",
     "UPDATE inputs SET body = replace(body, '5.00', '50.00') WHERE instance_id = 'case-1' "
     "AND kind = 'event'",
     ["event_signatures[id=1].message: is not the event logged at inputs[case-1, seq "]),
    # (1) administration
    ("court renamed", "UPDATE courts SET name = 'x' WHERE code = 'c2'",
     ["courts[code=c2].name"]),
    ("court added", "INSERT INTO courts (code, name, created_at) VALUES "
                    "('c9', 'x', '2025-01-01 00:00:00')",
     ["courts[code=c9]: has no create_court record"]),
    ("court renumbered", "UPDATE courts SET code = 'c3' WHERE code = 'c2'",
     ["courts[code=c2]: missing", "courts[code=c3]: has no create_court"]),
    ("principal moved to another court", "UPDATE principals SET court = 'c2' "
                                         "WHERE name = 'judge'",
     ["principals[name=judge].kind/court/party_id"]),
    ("principal deleted", "DELETE FROM principals WHERE name = 'med2'",
     ["principals[name=med2]: missing"]),
    ("role given directly", "INSERT INTO principal_roles (principal, role, granted_at, "
                            "granted_by) VALUES ('clerk', 'admin', '2025-01-01 00:00:00', 'x')",
     ["principal_roles[principal=clerk,role=admin]: is not granted"]),
    ("granted role deleted", "DELETE FROM principal_roles WHERE principal = 'judge' "
                             "AND role = 'reviewer'",
     ["principal_roles[principal=judge,role=reviewer]: missing"]),
    ("revoked role restored", "INSERT INTO principal_roles (principal, role, granted_at, "
                              "granted_by) VALUES ('all', 'judge', '2025-01-01 00:00:00', 't')",
     ["principal_roles[principal=all,role=judge]: is not granted"]),
    ("deactivated principal reactivated", "UPDATE principals SET active = TRUE "
                                          "WHERE name = 'party2'",
     ["principals[name=party2].active"]),
    ("revoked key restored", "UPDATE api_keys SET revoked_at = NULL "
                             "WHERE revoked_at IS NOT NULL",
     ["api_keys[key_id={revoked_key}].revoked_at"]),
    ("key added", "INSERT INTO api_keys (key_id, principal, secret_hash, created_at) VALUES "
                  "('k-forged', 'judge', 'x', '2025-01-01 00:00:00')",
     ["api_keys[key_id=k-forged]: has no issue_key record"]),
    ("key secret swapped", "UPDATE api_keys SET secret_hash = "
                           "'0000000000000000000000000000000000000000000000000000000000000000' "
                           "WHERE principal = 'admin'",
     ["api_keys[principal=admin]: missing the key", "(or its secret_hash was changed)"]),
    ("key moved to another principal", "UPDATE api_keys SET principal = 'admin' "
                                       "WHERE principal = 'bank'",
     ["api_keys[key_id={bank_key}].principal: is admin, but ledger entry"]),
    ("organisation key replaced", "UPDATE org_keys SET public_key = "
                                  "'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='",
     ["org_keys[principal=mediation_centre]: missing the key ledger entry",
      "org_keys[key_id={org_key}]: has no register_org_key record"]),
    # (1) gated deployments
    ("reviewer changed", "UPDATE contract_versions SET reviewed_by = 'mallory' "
                         "WHERE report_ledger_index IS NOT NULL",
     ["contract_versions[id={gated}].reviewed_by: disagrees with ledger entry"]),
    ("test report changed", "UPDATE contract_versions SET test_report = "
                            "replace(test_report, 'true', 'false') "
                            "WHERE report_ledger_index IS NOT NULL",
     ["contract_versions[id={gated}].test_report: does not hash"]),
    ("report hash changed", "UPDATE contract_versions SET report_hash = "
                            "'0000000000000000000000000000000000000000000000000000000000000000' "
                            "WHERE report_ledger_index IS NOT NULL",
     ["contract_versions[id={gated}].report_hash: disagrees with ledger entry"]),
    ("report ledger index renumbered", "UPDATE contract_versions SET report_ledger_index = "
                                       "report_ledger_index + 1 "
                                       "WHERE report_ledger_index IS NOT NULL",
     ["contract_versions[id={gated}].report_ledger_index: ledger entry",
      "contract_versions[ruleset_id={ruleset}]: missing, or its report_ledger_index "
      "renumbered"]),
    ("gated version deleted", "DELETE FROM contract_versions "
                              "WHERE report_ledger_index IS NOT NULL",
     ["contract_versions[ruleset_id={ruleset}]: missing, or its report_ledger_index "
      "renumbered: ledger entry", "contract_versions[id={gated}]: missing, but ledger entry"]),
    # (2) incident resolutions
    ("retried by someone else", "UPDATE incidents SET resolved_by = 'judge' "
                                "WHERE id = {retried_id}",
     ["incidents[id={retried_id}].resolved_by"]),
    ("resolution note changed", "UPDATE incidents SET resolution = 'resolved: nothing' "
                                "WHERE id = {resolved}",
     ["incidents[id={resolved}].resolution"]),
    ("incident deleted", "DELETE FROM incidents WHERE id = {fault}",
     ["incidents[id={fault}]: missing"]),
    ("incident moved to another outbox row",
     "UPDATE incidents SET outbox_id = (SELECT outbox_id FROM incidents WHERE id = "
     "{resolved}) WHERE id = {retried_id}",
     ["incidents[id={retried_id}].outbox_id"]),
    ("resolution without a record",
     "INSERT INTO incidents (kind, instance_id, message, status, created_at, resolved_by, "
     "resolved_at, resolution) VALUES ('deadline_fault', 'bad-1', 'x', 'resolved', "
     "'2025-09-03 00:00:00', 'mallory', '2025-09-03 00:00:00', 'resolved: quietly')",
     ["incidents[id={next_incident}]: is resolved, but the ledger has no record of who "
      "resolved it"]),
]


@pytest.mark.parametrize(("sql", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_audit_names_the_changed_row(copy: tuple[str, dict[str, Any]], sql: str,
                                     named: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    url, facts = copy
    values = {**facts, "retried_id": facts["retried"][0]}
    _sql(url, sql.format(**values))
    code, out = audit_cli(url, capsys)
    assert code == 1, out
    findings = out.split("finding(s):", 1)[1]
    for part in named:
        assert part.format(**values) in findings, (part, findings)
    if "principals[name=judge].kind" in named[0]:  # one finding, no cascade over its roles
        assert "principal_roles" not in findings, findings
    if "event_signatures[id=" in named[0]:  # check-signatures: the same check, same messages
        signatures = _check_signatures(url)
        assert signatures, findings
        assert all(f"  {f}\n" in findings for f in signatures), (signatures, findings)


def _check_signatures(url: str) -> list[str]:
    """What ``jrule admin check-signatures`` finds (``audit_signatures``)."""
    db = open_database(url, engine_lock=False, migrate=False)
    try:
        return audit_signatures(db, SqlLedger(db.engine, ORIGIN, Ed25519Signer.generate(ORIGIN)))
    finally:
        db.close()
