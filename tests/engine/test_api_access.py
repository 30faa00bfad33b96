"""Access control over real HTTP: every role x every operation, derived from the one policy.

The matrix: for each operation in :data:`engine.api.policy.POLICY` a sample
request; each principal (one per role) sends it; the answer must be a
refusal (403) exactly when the policy does not list the role, and no
operation may answer 401/403 to a role the policy allows.  A test also
checks every route of the application is in the policy and vice versa.
Then the object-level rules: courts, parties' own cases, a mediation
centre's own mediation cases, a bank's payment and property reports; every
refusal logged; admin actions on the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Server, Store, open_minimal_case, prepare_store

from engine.api.policy import POLICY, PUBLIC, ROLES

#: operation -> (method, path, JSON body) — a request that reaches the operation
SAMPLES: dict[str, tuple[str, str, Any]] = {
    "health": ("GET", "/health", None),
    "metrics": ("GET", "/metrics", None),
    "whoami": ("GET", "/whoami", None),
    "sandbox_advance_clock": ("POST", "/sandbox/clock", {"days": 0}),
    "compile_rule_set": ("POST", "/contracts/compile", {"source": "contract x {"}),
    "deploy_rule_set": ("POST", "/contracts/deploy", {"source": "contract x {"}),
    "list_contract_versions": ("GET", "/contracts?diagrams=false", None),
    "get_contract_version": ("GET", "/contracts/" + "0" * 64, None),
    "create_instance": ("POST", "/instances", {"contract": "nope", "instance": "x",
                                               "terms": {}}),
    "get_instance": ("GET", "/instances/case-1", None),
    "get_deadlines": ("GET", "/instances/case-1/deadlines", None),
    "get_instance_approvals": ("GET", "/instances/case-1/approvals", None),
    "get_timeline": ("GET", "/instances/case-1/timeline", None),
    "migrate_instance": ("POST", "/instances/case-1/migrate", {"to": "0" * 64}),
    "recalendar_instance": ("POST", "/instances/case-1/recalendar",
                            {"calendar": "cn@000000000000"}),
    "submit_event": ("POST", "/instances/case-1/events",
                     {"event": "付款", "role": "被申请人", "payload": {"数额": "bad"}}),
    "list_outbox": ("GET", "/actions/outbox", None),
    "list_incidents": ("GET", "/actions/incidents", None),
    "retry_incident": ("POST", "/actions/incidents/999/retry", None),
    "resolve_incident": ("POST", "/actions/incidents/999/resolve", {"note": "done"}),
    "list_pending_approvals": ("GET", "/approvals", None),
    "confirm_approval": ("POST", "/approvals/nope/confirm", {"role": "judge"}),
    "reject_approval": ("POST", "/approvals/nope/reject", {"role": "judge", "reason": "no"}),
    "ledger_checkpoint": ("GET", "/ledger/checkpoint", None),
    "ledger_keys": ("GET", "/ledger/keys", None),
    "ledger_receipt": ("GET", "/ledger/receipts/0", None),
    "ledger_inclusion_proof": ("GET", "/ledger/proofs/inclusion?index=0&size=1", None),
    "ledger_consistency_proof": ("GET", "/ledger/proofs/consistency?old=0&size=1", None),
    "witness_add_checkpoint_request": ("GET", "/ledger/witness/add-checkpoint?old=0", None),
    "witness_submit_cosignature": ("POST", "/ledger/witness/cosignatures?size=1", None),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Store]]:
    data = tmp_path_factory.mktemp("access")
    store = prepare_store(f"sqlite:///{data / 'jrule.sqlite3'}", data / "data")
    with Server(store, virtual_clock="2025-09-01T02:00:00Z") as server:
        with server.client("all") as c:
            open_minimal_case(c, parties={"申请人": "p-1", "调解组织": "med-1"})
        with server.client("clerk2") as c2:
            assert c2.post("/instances", json={
                "contract": "调解协议", "instance": "case-c2",
                "terms": {"金额": "1.00", "履行期限": "2025-09-30", "司法确认": False},
                "parties": {"申请人": "p-1"}}).status_code == 201
        yield server, store


def _send(client: httpx.Client, operation: str) -> httpx.Response:
    method, path, body = SAMPLES[operation]
    return client.request(method, path, json=body)


def test_policy_covers_every_route(served: tuple[Server, Store]) -> None:
    server, _ = served
    spec = httpx.get(f"{server.base}/openapi.json").json()
    operations = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert operations == set(POLICY) == set(SAMPLES)


@pytest.mark.parametrize("role", ROLES)
def test_authorisation_matrix(served: tuple[Server, Store], role: str) -> None:
    server, _ = served
    wrong: list[str] = []
    with server.client(role) as client:
        for operation, permitted in POLICY.items():
            r = _send(client, operation)
            assert r.status_code < 500, (operation, r.text)
            allowed = permitted is PUBLIC or role in permitted
            refused = r.status_code in (401, 403)
            if allowed == refused:
                wrong.append(f"{operation}: {r.status_code} {r.text[:120]}")
    assert not wrong, f"{role}: " + "; ".join(wrong)


def test_no_key_only_public(served: tuple[Server, Store]) -> None:
    server, _ = served
    with server.client() as anonymous:
        for operation, permitted in POLICY.items():
            r = _send(anonymous, operation)
            assert (r.status_code == 401) == (permitted is not PUBLIC), (operation, r.text)
            if r.status_code == 401:
                assert r.json()["code"] == "unauthenticated"
                assert r.headers["www-authenticate"] == "Bearer"


def test_courts_parties_and_organisations(served: tuple[Server, Store]) -> None:
    server, _ = served
    pay = {"event": "付款", "role": "申请人", "payload": {"数额": "1.00"}}
    with server.client("clerk") as clerk, server.client("clerk2") as clerk2:
        assert clerk.get("/instances/case-1").status_code == 200
        assert clerk2.get("/instances/case-1").status_code == 403  # another court's case
        assert clerk.get("/instances/case-c2").status_code == 403
        assert clerk2.get("/instances/case-c2").status_code == 200
        # staff see only their court's outbox and approvals
        assert all(r["instance"] != "case-c2" for r in clerk.get("/actions/outbox").json())
        assert clerk2.post("/instances", json={"contract": "调解协议", "instance": "z",
                                               "terms": {}, "court": "c1"}).status_code == 403
    with server.client("party") as party, server.client("party2") as stranger:
        assert party.get("/instances/case-1/timeline").status_code == 200
        assert stranger.get("/instances/case-1").status_code == 403
        assert stranger.get("/instances/no-such-case").status_code == 403  # no probing
        assert party.post("/instances/case-1/events", json=pay).status_code == 403
    with server.client("mediation_centre") as med, server.client("med2") as med2:
        assert med.post("/instances/case-1/events", json=pay).status_code == 200
        assert med2.post("/instances/case-1/events", json=pay).status_code == 403
        assert med.get("/instances/case-c2").status_code == 403
    with server.client("bank") as bank:
        assert bank.post("/instances/case-1/events", json={**pay, "payload": {"数额": "2.00"},
                                                           "idempotency_key": "b1"}
                         ).status_code == 200
        refused = bank.post("/instances/case-1/events",
                            json={"event": "申请司法确认", "role": "申请人", "payload": {}})
        assert refused.status_code == 403 and "bank" in refused.json()["message"]
        assert bank.get("/instances/case-1").status_code == 403


def test_refusals_are_logged(served: tuple[Server, Store]) -> None:
    server, _ = served
    with server.client("party2") as stranger:
        stranger.get("/instances/case-1/deadlines")
    with server.client("bank") as bank:
        bank.get("/metrics")
    log = server.output()
    assert '"event": "access_refused"' in log
    assert '"principal": "party2"' in log and '"operation": "get_deadlines"' in log
    assert '"principal": "bank"' in log and '"operation": "metrics"' in log


def test_admin_actions_are_on_the_ledger(served: tuple[Server, Store], tmp_path: Path) -> None:
    server, store = served
    from ledger_adapter import verify_receipt

    with server.client() as public:
        size = int(public.get("/ledger/checkpoint").text.splitlines()[1])
        kinds = []
        for i in range(size):
            report = verify_receipt(public.get(f"/ledger/receipts/{i}").text.encode(),
                                    [store.vkey])
            assert report.ok and report.record is not None
            kinds.append((report.record.kind, report.record.get("action")))
    actions = [a for k, a in kinds if k == "admin"]
    assert actions.count("create_court") == 2 and "register_org_key" in actions
    assert actions.count("issue_key") == len(store.keys)
    assert ("deployment", None) in [(k, None) for k, _ in kinds]


def test_fast_path_answers_as_the_route_does(served: tuple[Server, Store]) -> None:
    """Staff event submissions take the framework-free path (``Authorization: Bearer``);
    the same request with ``X-API-Key`` goes through FastAPI.  Same answers."""
    server, store = served
    terms = {"金额": "1000.00", "履行期限": "2025-09-30", "司法确认": True}
    with server.client("clerk") as clerk:
        for iid in ("fp-a", "fp-b"):
            assert clerk.post("/instances", json={"contract": "调解协议", "instance": iid,
                                                  "terms": terms}).status_code == 201
            assert clerk.get(f"/instances/{iid}").status_code == 200  # now known: fast path
    fast = server.client("clerk")
    routed = httpx.Client(base_url=server.base, headers={"X-API-Key": store.keys["clerk"]})
    bodies = [
        {"event": "付款", "role": "被申请人", "payload": {"数额": "10.00"}, "idempotency_key": "k"},
        {"event": "付款", "role": "被申请人", "payload": {"数额": "10.00"}, "idempotency_key": "k"},
        {"event": "付款", "role": "外人", "payload": {"数额": "1.00"}},
        {"event": "付款", "role": "被申请人", "payload": {"数额": "x"}},
        {"event": "没有", "role": "被申请人", "payload": {}},
        {"event": "", "role": "被申请人"},
    ]

    def comparable(r: httpx.Response) -> tuple[int, Any]:
        body = r.json()
        for k in ("instance", "ledger", "at"):
            if isinstance(body, dict):
                body.pop(k, None)
                if isinstance(body.get("details"), dict):
                    body["details"].pop("instance", None)
        text = str(body).replace("fp-a", "X").replace("fp-b", "X")
        return r.status_code, text

    for body in bodies:
        a = fast.post("/instances/fp-a/events", json=body)
        b = routed.post("/instances/fp-b/events", json=body)
        assert comparable(a) == comparable(b), (body, a.text, b.text)
    fast.close()
    routed.close()
