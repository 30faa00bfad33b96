"""Over HTTP: a provisional deadline faults, a judge moves the case to next year's
calendar (``POST /instances/{id}/recalendar``), the incident is resolved and the
deadline fires on its extended day."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from api_support import Server, prepare_store
from test_runtime_recalendar import CN, NEXT, SOURCE


@pytest.fixture
def server(tmp_path: Path) -> Server:
    store = prepare_store(f"sqlite:///{tmp_path / 'jrule.sqlite3'}", tmp_path / "data")
    notice = tmp_path / "cn-2027.json"  # next year's holiday notice, as a calendar file
    notice.write_text(
        json.dumps(json.loads(NEXT.canonical_json()), ensure_ascii=False), encoding="utf-8"
    )
    return Server(store, virtual_clock="2026-12-10T01:00:00Z", calendars=["cn", str(notice)])


def test_recalendar_over_http(server: Server) -> None:
    with server, server.client("all") as c, server.client("clerk") as clerk:
        src = {"source": SOURCE, "filename": "answer.jrule"}
        assert c.post("/contracts/deploy", json=src).status_code == 201
        made = c.post("/instances", json={"contract": "答辩", "instance": "k", "terms": {}})
        assert made.status_code == 201, made.text
        assert c.get("/instances/k").json()["calendar"] == CN.version
        assert c.post("/sandbox/clock", json={"days": 31}).status_code == 200
        st = c.get("/instances/k").json()
        assert st["status"] == "faulted" and st["state"] == "open"
        (incident,) = c.get("/actions/incidents", params={"instance": "k"}).json()
        assert "2027-01-09" in incident["message"]
        # a clerk may not move it; an unknown version is refused with the loaded ones
        r = clerk.post("/instances/k/recalendar", json={"calendar": NEXT.version})
        assert r.status_code == 403
        r = c.post("/instances/k/recalendar", json={"calendar": "cn@000000000000"})
        assert r.status_code == 409 and NEXT.version in r.json()["message"]
        r = c.post("/instances/k/recalendar", json={"calendar": "not a version"})
        assert r.status_code == 422
        r = c.post("/instances/k/recalendar", json={"calendar": NEXT.version})
        assert r.status_code == 200, r.text
        moved = r.json()
        assert moved["to_calendar"] == NEXT.version and moved["by"] == "all"
        assert [t["how"] for t in moved["timers"]] == ["recomputed"]
        assert moved["timers"][0]["new_due"] == "2027-01-12T16:00:00Z"
        r = c.post(
            f"/actions/incidents/{incident['id']}/resolve",
            json={"note": "moved to " + NEXT.version},
        )
        assert r.status_code == 200, r.text
        # the extended last day (Tuesday 2027-01-12) has not run out yet
        assert c.post("/sandbox/clock", json={"days": 0}).json()["fired"] == 0
        assert c.get("/instances/k").json()["status"] == "active"
        assert c.post("/sandbox/clock", json={"days": 3}).status_code == 200
        for _ in range(50):  # fired by this call or by the engine's own wake-up
            st = c.get("/instances/k").json()
            if st["status"] == "ended":
                break
            time.sleep(0.1)
        assert st["calendar"] == NEXT.version
        assert st["state"] == "done" and st["status"] == "ended"  # it fired
        kinds = [row["kind"] for row in c.get("/instances/k/timeline").json()]
        assert kinds == ["create", "recalendar", "tick"]
