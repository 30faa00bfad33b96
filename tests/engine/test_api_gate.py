"""The deployment gate through the API, against a real server: a deployment runs the
rule set's tests first, is refused (422, with the failing report) when they fail or are
missing, and on a pass stores the report's hash with the version and logs it on the
ledger with the reviewer who deployed it."""

from __future__ import annotations

import base64
from pathlib import Path

from api_support import ROOT, Server, prepare_store

EXAMPLES = ROOT / "examples"


def _body(name: Path, tests: bool = True) -> dict[str, str]:
    body = {"source": name.read_text(encoding="utf-8"), "filename": name.name}
    companion = name.with_name(name.name.removesuffix(".jrule") + ".test.jrule")
    if tests:
        body["tests"] = companion.read_text(encoding="utf-8")
    return body


def test_gate_refuses_failing_and_untested_rule_sets_and_records_passing_ones(
        tmp_path: Path) -> None:
    store = prepare_store(f"sqlite:///{tmp_path / 'jrule.sqlite3'}", tmp_path / "data")
    with Server(store, deploy_gate=True) as server, \
            server.client("reviewer") as reviewer:
        untested = reviewer.post("/contracts/deploy",
                                 json=_body(EXAMPLES / "judgment_performance.jrule", False))
        assert untested.status_code == 422, untested.text
        assert untested.json()["code"] == "deploy_refused"
        assert "no scenario tests or properties" in untested.json()["message"]

        buggy = reviewer.post("/contracts/deploy",
                              json=_body(EXAMPLES / "buggy" / "mediation_buggy.jrule"))
        assert buggy.status_code == 422, buggy.text
        error = buggy.json()
        assert error["code"] == "deploy_refused"
        assert "failed its tests" in error["message"]
        report = error["details"][0]["report"]
        assert report["passed"] is False

        before = reviewer.get("/contracts").json()
        ok = reviewer.post("/contracts/deploy",
                           json=_body(EXAMPLES / "judgment_performance.jrule"))
        assert ok.status_code == 201, ok.text
        deployed = set(ok.json()["contracts"])
        versions = reviewer.get("/contracts").json()
        new = [v for v in versions if v["id"] in deployed]
        assert new and len(versions) == len(before) + len(deployed)
        hashes = {v["report_hash"] for v in new}
        assert len(hashes) == 1 and None not in hashes
        # an embedded (SQLite) server pins itself to one CPU unless told otherwise
        assert "serving threads pinned to CPU" in server.output()
        (report_hash,) = hashes
        assert len(report_hash) == 64
        index = _report_ledger_index(store.url)
        receipt = server.client().get(f"/ledger/receipts/{index}")  # public: no key
        assert receipt.status_code == 200, receipt.text
        (extra,) = [line for line in receipt.text.splitlines() if line.startswith("extra ")]
        record = base64.b64decode(extra.removeprefix("extra ")).decode("utf-8")
        assert "kind admin\naction test_report\n" in record
        assert f"digest {report_hash}\n" in record and "by reviewer\n" in record



def _report_ledger_index(url: str) -> int:
    """The ledger entry of the stored report; the version names the deploying reviewer."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT reviewed_by, report_ledger_index FROM "
                                 "contract_versions WHERE report_hash IS NOT NULL")).all()
    engine.dispose()
    assert rows and {r[0] for r in rows} == {"reviewer"}
    indexes = {r[1] for r in rows}
    assert len(indexes) == 1 and None not in indexes
    return int(indexes.pop())
