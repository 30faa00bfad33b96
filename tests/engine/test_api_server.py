"""The HTTP service against a real server process (uvicorn on loopback), SQLite and PostgreSQL.

One story per backend: a rule author compiles (errors with codes and
positions), a reviewer deploys, a clerk opens a case, events go in (applied,
duplicate, refused — each with the one error shape), the case is read back
(state, deadlines with how they were computed, timeline with explanations),
a judge confirms an approval, an instance is migrated, a receipt fetched from
the public ledger verifies offline, consistency proofs check out, a
mediation centre's signed event is kept on the ledger, metrics count it all.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import ORIGIN, Server, prepare_store
from runtime_support import APPROVALS, DATA, MINIMAL

from engine.api.signatures import event_message
from ledger_adapter import verify_receipt
from ledger_adapter.merkle import verify_consistency
from ledger_adapter.note import b64decode
from ledger_adapter.witness import Witness

TERMS = {"金额": "1000.00", "履行期限": "2025-09-30", "司法确认": True}


def _source(path: Path) -> dict[str, str]:
    return {"source": path.read_text(encoding="utf-8"), "filename": path.name}


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"code", "message", "details"}, body
    if code is not None:
        assert body["code"] == code, body
    return dict(body)


def test_the_service_story(store_url: str, tmp_path: Path) -> None:
    store = prepare_store(store_url, tmp_path / "data")
    witness = Witness.create(tmp_path / "witness.json", "mediation.example/witness")
    witness.add_log(ORIGIN, [store.vkey])
    with Server(store, virtual_clock="2025-09-01T02:00:00Z",
                witnesses=[witness.vkey]) as server:
        author, reviewer = server.client("rule_author"), server.client("reviewer")
        clerk, judge = server.client("clerk"), server.client("judge")
        officer, public = server.client("enforcement_officer"), server.client()

        # compile: errors with their codes and spans; a good one gives its IR id
        bad = author.post("/contracts/compile", json={"source": "contract x {", "filename":
                                                      "bad.jrule"})
        diags = _error(bad, 422, "does_not_compile")["details"]
        assert diags[0]["code"] == "E001" and diags[0]["line"] == 1 and diags[0]["column"]
        ok = author.post("/contracts/compile", json=_source(MINIMAL))
        assert ok.status_code == 200 and len(ok.json()["ruleset_id"]) == 64
        _error(author.post("/contracts/deploy", json=_source(MINIMAL)), 403, "forbidden")
        deployed = reviewer.post("/contracts/deploy", json=_source(MINIMAL))
        assert deployed.status_code == 201, deployed.text
        assert reviewer.post("/contracts/deploy", json=_source(APPROVALS)).status_code == 201
        cp0 = public.get("/ledger/checkpoint").text.splitlines()
        versions = clerk.get("/contracts", params={"name": "调解协议"}).json()
        assert versions[0]["id"] == deployed.json()["contracts"][0]
        assert versions[0]["diagram"].startswith("stateDiagram-v2")

        # a case with its terms and parties
        made = clerk.post("/instances", json={
            "contract": "调解协议", "instance": "case-1", "terms": TERMS,
            "parties": {"申请人": "p-1", "调解组织": "med-1"}})
        assert made.status_code == 201, made.text
        assert made.json()["state"] == "履行中" and made.json()["ledger"]["index"] is not None
        _error(clerk.post("/instances", json={"contract": "nope", "instance": "x",
                                              "terms": {}}), 404, "unknown_contract")
        _error(clerk.post("/instances", json={"contract": "调解协议", "instance": "y",
                                              "terms": {"金额": "abc"}}), 422, "bad_terms")

        # events: applied (with explanation and ledger entry), duplicate, refused
        pay = {"event": "付款", "role": "被申请人", "payload": {"数额": "400.00"},
               "idempotency_key": "pay-1"}
        first = clerk.post("/instances/case-1/events", json=pay)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["accepted"] and not body["duplicate"] and body["seq"] == 2
        assert body["explanations"] and body["ledger"]["receipt"].startswith("/ledger/")
        again = officer.post("/instances/case-1/events", json=pay).json()
        assert again["duplicate"] and again["seq"] == 2
        assert again["ledger"]["index"] == body["ledger"]["index"]
        _error(clerk.post("/instances/case-1/events", json={**pay, "idempotency_key": "p2",
                                                            "payload": {"数额": "x"}}),
               422, "bad_payload")
        _error(clerk.post("/instances/case-1/events", json={"event": "付款", "role": "外人",
                                                            "payload": {"数额": "1.00"}}),
               409, "role_not_allowed")
        _error(clerk.post("/instances/nope/events", json=pay), 404)
        lone = '{"event": "付款", "role": "被申请人", "payload": {"数额": "\\ud800"}}'
        assert "invalid_request" == _error(clerk.post(
            "/instances/case-1/events", content=lone.encode(),
            headers={"content-type": "application/json"}), 422)["code"]
        _error(clerk.post("/instances/case-1/events", content=b"{not json",
                          headers={"content-type": "application/json"}), 422,
               "invalid_request")

        # concurrent events are group-committed, each applied once
        def submit(n: int) -> int:
            with server.client("clerk") as c:
                r = c.post("/instances/case-1/events", json={
                    "event": "付款", "role": "被申请人", "payload": {"数额": "1.00"},
                    "idempotency_key": f"c{n % 10}"})
                assert r.status_code == 200, r.text
                return int(r.json()["seq"])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            seqs = list(pool.map(submit, range(40)))
        assert sorted(set(seqs)) == list(range(3, 13))

        # reading the case back
        state = clerk.get("/instances/case-1").json()
        assert state["variables"]["已付"] == "410.00" and state["seq"] == 12
        deadlines = clerk.get("/instances/case-1/deadlines").json()
        assert {d["deadline"] for d in deadlines} == {"提醒", "到期"}
        assert all(d["how_en"] for d in deadlines)
        timeline = clerk.get("/instances/case-1/timeline").json()
        assert len(timeline) == 12 and timeline[1]["explanations"]

        # approvals: confirm with a reason (the judge), refusals in the error shape
        officer.post("/instances", json={}).status_code == 403  # noqa: B015
        assert clerk.post("/instances", json={"contract": "freeze_flow", "instance": "f-1",
                                              "terms": {"owed": "5000.00", "rate": "0.01"}}
                          ).status_code == 201
        found = officer.post("/instances/f-1/events", json={
            "event": "property_found", "role": "officer",
            "payload": {"amount": "8000.00", "kind": "bank_deposit"}}).json()
        approval = found["approvals"][0]["id"]
        pending = judge.get("/approvals", params={"role": "judge"}).json()
        assert [p["id"] for p in pending] == [approval]
        _error(judge.post(f"/approvals/{approval}/reject", json={"role": "judge",
                                                                "reason": ""}), 422)
        _error(judge.post(f"/approvals/{approval}/confirm", json={"role": "officer"}), 409,
               "role_not_allowed")
        confirmed = judge.post(f"/approvals/{approval}/confirm",
                               json={"role": "judge", "reason": "deposit verified"})
        assert confirmed.status_code == 200 and confirmed.json()["state"] == "frozen_state"
        assert judge.get("/instances/f-1/approvals").json()[0]["decided_by"] == "judge"
        outbox = clerk.get("/actions/outbox", params={"instance": "f-1"}).json()
        assert [o["action"] for o in outbox] == ["freeze"]
        assert clerk.get("/actions/incidents").json() == []
        _error(clerk.post("/actions/incidents/12345/retry"), 404)

        # a deadline that cannot be evaluated: an incident a person resolves
        assert reviewer.post("/contracts/deploy",
                             json=_source(DATA / "faulty.jrule")).status_code == 201
        assert clerk.post("/instances", json={"contract": "故障", "instance": "bad-1",
                                              "terms": {"金额表": []}}).status_code == 201
        moved = clerk.post("/sandbox/clock", json={"days": 2})
        assert moved.status_code == 200, moved.text
        incidents = clerk.get("/actions/incidents", params={"status": "open"}).json()
        assert [(i["kind"], i["instance"]) for i in incidents] == [("deadline_fault", "bad-1")]
        _error(clerk.post(f"/actions/incidents/{incidents[0]['id']}/retry"), 409,
               "incident_refused")
        _error(clerk.post(f"/actions/incidents/{incidents[0]['id']}/resolve", json={}), 422)
        resolved = clerk.post(f"/actions/incidents/{incidents[0]['id']}/resolve",
                              json={"note": "terms corrected by the clerk"})
        assert resolved.status_code == 200 and resolved.json()["incidents_resolved"] == 1

        # migration to another version, recorded on the ledger
        v2 = reviewer.post("/contracts/deploy", json=_source(DATA / "mediation_v2.jrule"))
        if v2.status_code == 201:
            new_ids = v2.json()["contracts"]
            target = next(i for i in new_ids if i != deployed.json()["contracts"][0])
            mig = server.client("admin").post("/instances/case-1/migrate", json={"to": target})
            assert mig.status_code in (200, 409), mig.text
        _error(judge.post("/instances/case-1/migrate", json={"to": "0" * 64}), 404)

        # a mediation centre's signed event: verified, kept with the event and on the ledger
        signed = {"event": "付款", "role": "申请人", "payload": {"数额": "5.00"},
                  "idempotency_key": "med-sig-1"}
        message = event_message("case-1", "付款", "申请人", {"数额": "5.00"}, "med-sig-1")
        assert store.org_private is not None
        sig = base64.b64encode(store.org_private.sign(message.encode())).decode()
        med = server.client("mediation_centre")
        forged = {**signed, "signature": {"key_id": store.org_key_id,
                                          "value": base64.b64encode(b"x" * 64).decode()}}
        _error(med.post("/instances/case-1/events", json=forged), 422, "bad_signature")
        good = med.post("/instances/case-1/events", json={
            **signed, "signature": {"key_id": store.org_key_id, "value": sig}})
        assert good.status_code == 200, good.text
        assert good.json()["signature"]["verified"]

        # the public ledger: receipts verify offline, proofs check out
        keys = public.get("/ledger/keys").text
        vkeys = [line.split()[0] for line in keys.splitlines() if line and line[0] != "#"]
        assert vkeys == [store.vkey]
        receipt = public.get(body["ledger"]["receipt"])
        assert receipt.status_code == 200
        assert verify_receipt(receipt.text.encode(), vkeys).ok
        cp1 = public.get("/ledger/checkpoint").text
        size1 = int(cp1.splitlines()[1])
        kinds = []
        for index in range(size1):
            r = public.get(f"/ledger/receipts/{index}")
            report = verify_receipt(r.text.encode(), vkeys)
            assert report.ok, report.failure
            assert report.record is not None
            kinds.append(report.record.kind)
        assert {"admin", "deployment", "transition", "signed_event"} <= set(kinds)
        assert kinds.count("signed_event") == 1
        size0 = int(cp0[1])
        proof = public.get("/ledger/proofs/consistency", params={"old": size0, "size": size1})
        assert proof.status_code == 200 and proof.json()["hashes"], proof.text
        verify_consistency(size0, size1, [b64decode(h) for h in proof.json()["hashes"]],
                           b64decode(cp0[2]), b64decode(cp1.splitlines()[2]))
        inclusion = public.get("/ledger/proofs/inclusion", params={"index": 0, "size": size1})
        assert len(inclusion.json()["hashes"]) >= 1
        _error(public.get("/ledger/receipts/999999"), 404)

        # a witness cosigns the latest checkpoint through the witness endpoint
        request = public.get("/ledger/witness/add-checkpoint", params={"old": 0})
        assert request.status_code == 200 and request.text.startswith("old 0\n")
        size = int(request.text.split("\n\n", 1)[1].splitlines()[1])
        lines = witness.add_checkpoint(request.text.encode())
        _error(public.post("/ledger/witness/cosignatures", params={"size": size},
                           content=b"\xe2\x80\x94 someone AAAA\n"), 400)
        stored = public.post("/ledger/witness/cosignatures", params={"size": size},
                             content=lines)
        assert stored.status_code == 200 and stored.json()["accepted"] == [witness.vkey.split(
            "+")[0]], stored.text
        cosigned = public.get(f"/ledger/receipts/{size - 1}", params={"size": size}).text
        assert verify_receipt(cosigned.encode(), vkeys, [witness.vkey],
                              require_witnesses=1).ok
        _error(public.get("/ledger/proofs/inclusion", params={"index": 5, "size": 2}), 422)

        # metrics, and the error shape for unknown routes and methods
        metrics = server.client("admin").get("/metrics")
        assert metrics.status_code == 200
        text = metrics.text
        assert 'jrule_events_total{outcome="applied"}' in text
        assert "jrule_ledger_size" in text and "jrule_deadline_lateness_seconds_bucket" in text
        _error(clerk.get("/metrics"), 403, "forbidden")
        _error(public.get("/no/such/route"), 404, "not_found")
        _error(public.delete("/health"), 405, "method_not_allowed")
        _error(public.get("/instances/case-1"), 401, "unauthenticated")
        _error(public.get("/instances/case-1", headers={"Authorization": "Bearer nope"}), 401)
        assert public.get("/openapi.json").json()["info"]["title"] == "jrule"
        assert server.stop() in (0, -15)  # uvicorn re-raises SIGTERM once shut down
    assert "Traceback" not in server.output()
    assert "stopped: queued events applied" in server.output()
    _check_signatures(store_url, store.data_dir)


def _check_signatures(url: str, data: Path) -> None:
    """The kept signature agrees with its key, its event and the ledger; tampering shows."""
    from sqlalchemy import text

    from engine.api.signatures import audit_signatures
    from engine.runtime.db import open_database
    from ledger_adapter.note import Ed25519Signer
    from ledger_adapter.sql import SqlLedger

    signer = Ed25519Signer.from_skey((data / "ledger.skey").read_text().strip())
    db = open_database(url, engine_lock=False)
    try:
        ledger = SqlLedger(db.engine, ORIGIN, signer)
        assert audit_signatures(db, ledger) == []
        with db.write() as conn:
            conn.execute(text("UPDATE event_signatures SET message = "
                              "replace(message, '5.00', '50.00')"))
        findings = audit_signatures(db, ledger)
        assert len(findings) == 3 and all(f.startswith("event_signatures[id=") for f in findings)
    finally:
        db.close()


def test_serve_with_no_configuration(tmp_path: Path) -> None:
    """`jrule serve` alone: SQLite in ./jrule-data, prints where things are and a first key."""
    import os
    import subprocess
    import sys
    import time

    from api_support import ROOT, free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JRULE_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "rules_dsl.cli", "serve"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").json()["mode"] == "embedded":
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0].decode()
    assert f"http://127.0.0.1:{port}/docs" in out and "jrule_" in out
    assert (tmp_path / "jrule-data" / "jrule.sqlite3").exists()
    assert (tmp_path / "jrule-data" / "ledger.skey").stat().st_mode & 0o077 == 0


def test_serve_on_a_taken_port_says_so_and_opens_nothing(tmp_path: Path) -> None:
    """A port already in use is reported in one line before anything is announced or opened."""
    import socket

    from engine.api import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        parser = argparse.ArgumentParser()
        serve.add_arguments(parser)
        args = parser.parse_args(["--data", str(tmp_path / "data"), "--port", str(port)])
        out, err = io.StringIO(), io.StringIO()
        code = serve.run(args, out=out, err=err)
    assert code == 2
    assert err.getvalue() == (
        f"jrule serve: error: cannot listen on 127.0.0.1:{port}: it is in use "
        "(choose another with --port or `port` in the configuration)\n")
    assert out.getvalue() == ""
    assert not (tmp_path / "data" / "jrule.sqlite3").exists()


def test_serve_port_out_of_range_and_bound_not_listening(tmp_path: Path) -> None:
    """A port outside 0-65535 is one line, not a traceback; and the port is listened on at
    once, so a second server on a port another has only just taken is refused as well."""
    import socket

    from engine.api import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    args = parser.parse_args(["--data", str(tmp_path / "data"), "--port", "70000"])
    out, err = io.StringIO(), io.StringIO()
    assert serve.run(args, out=out, err=err) == 2
    assert err.getvalue().startswith("jrule serve: error: cannot listen on 127.0.0.1:70000: "
                                      "a port is 0 to 65535")
    first = serve.listen("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with socket.socket() as probe:  # a listening socket refuses a second listener
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", port))
                probe.listen()
    finally:
        first.close()
