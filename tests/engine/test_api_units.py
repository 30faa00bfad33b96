"""The service's parts on their own: configuration, the group writer, keys, administration."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_support import MINIMAL, T0, deploy, minimal_terms
from sqlalchemy import text

from engine.api.admin import AdminError, Administration
from engine.api.auth import Authenticator, parse_api_key
from engine.api.config import ConfigError, load_config
from engine.api.writer import GroupWriter, WriterClosed
from engine.runtime.clock import VirtualClock
from engine.runtime.service import EngineService, EventSubmission

# --- configuration -------------------------------------------------------------------------


def test_config_layers(tmp_path: Path) -> None:
    f = tmp_path / "jrule.toml"
    f.write_text('[serve]\nport = 9000\nbank_events = ["付款"]\naccess_log = false\n'
                 'database_url = "sqlite:///x.db"\n', encoding="utf-8")
    cfg = load_config(f, env={"JRULE_PORT": "9100", "JRULE_WITNESSES": "a,b"})
    assert cfg.port == 9100 and cfg.bank_events == ("付款",) and not cfg.access_log
    assert cfg.witnesses == ("a", "b") and cfg.url == "sqlite:///x.db" and not cfg.production
    assert load_config(env={}, data_dir="d").url == "sqlite:///d/jrule.sqlite3"
    assert load_config(env={"JRULE_DATABASE_URL": "postgresql://h/db"}).production
    gated = load_config(env={})
    assert gated.deploy_gate and gated.gate_examples == 200
    ungated = load_config(env={"JRULE_DEPLOY_GATE": "false", "JRULE_GATE_EXAMPLES": "50"})
    assert not ungated.deploy_gate and ungated.gate_examples == 50


@pytest.mark.parametrize(("content", "env", "message"), [
    ("port = 'x'", {}, "`port` must be a whole number: got 'x'"),
    ("", {"JRULE_SWEEP_SECONDS": "often"}, "`sweep_seconds` must be a number: got 'often'"),
    ("colour = 1", {}, "unknown setting(s) colour"),
    ("port = [", {}, "not valid TOML"),
    ("", {"JRULE_ACCESS_LOG": "perhaps"}, "JRULE_ACCESS_LOG: `access_log` must be true or false"),
])
def test_config_errors_say_what_and_where(tmp_path: Path, content: str, env: dict[str, str],
                                          message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(f, env=env)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", env={})


def test_cpu_setting_pins_the_serving_threads_or_says_what_is_wrong(tmp_path: Path) -> None:
    import os
    import threading

    from engine.api.serve import pin_cpu

    assert load_config(env={}).cpu == ""
    assert load_config(env={"JRULE_CPU": " Auto "}).cpu == "auto"
    assert load_config(env={"JRULE_CPU": "off"}).cpu == "off"
    with pytest.raises(ConfigError,
                       match='JRULE_CPU: `cpu` must be "auto", "off" or a CPU number'):
        load_config(env={"JRULE_CPU": "fast"})
    allowed = os.sched_getaffinity(0)
    got: dict[str, object] = {}

    def in_a_thread() -> None:  # affinity is per thread: the test's own stays as it was
        got["none"] = pin_cpu("")
        got["off"] = pin_cpu("off")
        got["unchanged"] = os.sched_getaffinity(0)
        try:
            pin_cpu(str(max(allowed) + 1000))
        except ConfigError as exc:
            got["error"] = exc.message
        got["auto"] = pin_cpu("auto")
        got["after"] = os.sched_getaffinity(0)

    t = threading.Thread(target=in_a_thread)
    t.start()
    t.join()
    assert got["none"] is None and got["off"] is None and got["unchanged"] == allowed
    assert "this process may only run on CPUs" in str(got["error"])
    assert got["auto"] in allowed and got["after"] == {got["auto"]}
    assert os.sched_getaffinity(0) == allowed


# --- the group writer ----------------------------------------------------------------------


def _service(tmp_path: Path, name: str) -> EngineService:
    svc = EngineService(f"sqlite:///{tmp_path / name}", VirtualClock(T0), mode="test")
    deploy(svc, MINIMAL)
    for i in range(3):
        svc.create_instance("调解协议", f"c{i}", minimal_terms(amount="50.00"))
    return svc


_events = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["k1", "k2", "k3", None]),
                             st.sampled_from(["10.00", "0.00", "x", "30.00"]),
                             st.sampled_from(["被申请人", "外人"])), min_size=1, max_size=25)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=_events)
def test_grouped_outcomes_equal_one_by_one(tmp_path_factory: pytest.TempPathFactory,
                                           events: list[tuple[int, str | None, str, str]]
                                           ) -> None:
    """However requests fall into groups, each gets exactly what it would alone."""
    tmp = tmp_path_factory.mktemp("w")
    grouped, alone = _service(tmp, "g.sqlite3"), _service(tmp, "a.sqlite3")
    try:
        writer = GroupWriter(grouped, max_batch=7)
        subs = [EventSubmission(f"c{i}", "付款", role, {"数额": amount}, key)
                for i, key, amount, role in events]
        futures = [writer.submit(s) for s in subs]  # queued before the thread starts
        writer.start()
        got = [f.result(30)[0] for f in futures]
        writer.close()
        want = [alone.submit_event(s.instance_id, s.event, s.role, s.payload,
                                   s.idempotency_key) for s in subs]
        assert [o.to_json() | {"dup": o.duplicate} for o in got] == \
            [o.to_json() | {"dup": o.duplicate} for o in want]
        for i in range(3):
            assert grouped.state(f"c{i}")["state_hash"] == alone.state(f"c{i}")["state_hash"]
        assert writer.groups < len(events) or len(events) == 1
    finally:
        grouped.close()
        alone.close()


def test_closing_applies_what_was_queued(tmp_path: Path) -> None:
    svc = _service(tmp_path, "s.sqlite3")
    try:
        writer = GroupWriter(svc).start()
        futures = [writer.submit(EventSubmission("c0", "付款", "被申请人", {"数额": "1.00"},
                                                 f"k{n}")) for n in range(40)]
        writer.close()
        assert all(f.done() and f.result()[0].accepted for f in futures)
        assert svc.state("c0")["seq"] == 41
        with pytest.raises(WriterClosed):
            writer.submit(EventSubmission("c0", "付款", "被申请人", {"数额": "1.00"}))
    finally:
        svc.close()


def test_coroutines_waiting_in_one_group_all_get_their_own_outcome(tmp_path: Path) -> None:
    """apply(): a group's waiters are settled together; a cancelled one does not stop the rest,
    and an event that fails raises in its own waiter only."""
    import asyncio

    svc = _service(tmp_path, "s.sqlite3")
    writer = GroupWriter(svc, linger=0.05)

    async def run() -> list[object]:
        subs = [EventSubmission(f"c{n % 3}", "付款", "被申请人", {"数额": "1.00"}, f"a{n}")
                for n in range(6)]
        tasks = [asyncio.ensure_future(writer.apply(s)) for s in subs]
        bad = asyncio.ensure_future(writer.apply(EventSubmission("c0", "boom", "被申请人", {})))
        await asyncio.sleep(0)
        tasks[2].cancel()  # its client went away before the group committed
        writer.start()
        return await asyncio.wait_for(asyncio.gather(*tasks, bad, return_exceptions=True), 30)

    try:
        results = asyncio.run(run())
        assert isinstance(results[2], asyncio.CancelledError)
        applied = [r for n, r in enumerate(results[:6]) if n != 2]
        assert all(isinstance(r, tuple) and r[0].accepted for r in applied)
        # each its own outcome: its own instance and position in that instance's log
        assert len({(r[0].instance_id, r[0].seq) for r in applied
                    if isinstance(r, tuple)}) == 5
        last = results[6]
        assert isinstance(last, RuntimeError) or \
            (isinstance(last, tuple) and not last[0].accepted)
        writer.close()
        # the cancelled request's event was still applied (it was accepted before the cancel)
        assert sum(svc.state(f"c{i}")["seq"] for i in range(3)) == 3 + 6
    finally:
        svc.close()


# --- keys and administration ----------------------------------------------------------------


def test_keys_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    svc = EngineService(f"sqlite:///{tmp_path / 'k.sqlite3'}", VirtualClock(T0), mode="test")
    try:
        admin = Administration(svc.db)
        admin.create_court("c1", "court", "t")
        admin.add_principal("ann", "user", "c1", ["clerk"], "t")
        key, done = admin.issue_key("ann", "t")
        key_id, secret = parse_api_key(key) or ("", "")
        with svc.db.read() as conn:
            dump = "\n".join(str(r) for r in conn.execute(text("SELECT * FROM api_keys")))
        assert done["key_id"] == key_id and secret not in dump and key_id in dump
        auth = Authenticator(svc.db, cache_seconds=0)
        caller = auth.caller(key)
        assert caller is not None and caller.roles == {"clerk"} and caller.court == "c1"
        assert auth.caller(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert auth.caller("jrule_nothing") is None and parse_api_key("Bearer x") is None
        admin.revoke_key(key_id, "t")
        assert auth.caller(key) is None
        with pytest.raises(AdminError, match="unknown role"):
            admin.add_principal("bob", "user", "c1", ["emperor"], "t")
        with pytest.raises(AdminError, match="32 bytes"):
            admin.register_org_key("ann", "not base64", "t")
        with pytest.raises(AdminError, match="already exists"):
            admin.create_court("c1", "again", "t")
    finally:
        svc.close()




def test_admin_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rules_dsl.cli import main

    data = ["admin", "--data", str(tmp_path), "--by", "ops"]
    assert main([*data, "court", "c1", "第一法院"]) == 0
    assert main([*data, "user", "ann", "--role", "clerk", "--court", "c1"]) == 0
    out = capsys.readouterr().out
    assert "API key for ann (shown only now)" in out and "jrule_" in out
    assert main([*data, "grant", "ann", "judge"]) == 0
    assert main([*data, "user", "bob", "--role", "emperor"]) == 1
    assert "unknown role(s) emperor" in capsys.readouterr().err
    assert main([*data, "user", "bob", "--role", "clerk", "--court", "c9"]) == 1
    assert "no court 'c9' (create it first: jrule admin court c9 NAME)" in \
        capsys.readouterr().err
    assert main([*data, "grant", "nobody", "judge"]) == 1
    assert "no principal 'nobody'" in capsys.readouterr().err
    capsys.readouterr()
    assert main([*data, "list"]) == 0
    listing = capsys.readouterr().out
    assert '"judge"' in listing and '"c1"' in listing
    assert main([*data, "upgrade"]) == 0
    assert main([*data, "ledger-key", str(tmp_path / "prod.skey")]) == 0
    assert main([*data, "ledger-key", str(tmp_path / "prod.skey")]) == 1


def test_rotate_the_ledger_key_from_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger_adapter.keys import parse_key_list
    from ledger_adapter.note import parse_note
    from ledger_adapter.verify import verify_receipt
    from rules_dsl.cli import main

    monkeypatch.delenv("JRULE_LEDGER_KEY", raising=False)
    data = ["admin", "--data", str(tmp_path), "--by", "ops"]
    assert main([*data, "court", "c1", "第一法院"]) == 0  # entry 0, signed by the first key
    new = tmp_path / "2026.skey"
    assert main([*data, "ledger-key", str(new)]) == 0
    capsys.readouterr()
    assert main([*data, "rotate-ledger-key", str(new)]) == 0
    out = capsys.readouterr().out
    assert "key_rotation at entry 1" in out
    keys = parse_key_list(out[out.index("# jrule log keys"):])
    assert [(k.valid_from, k.valid_to) for k in keys] == [(0, 2), (2, None)]
    # the old key no longer signs: admin and serve say so in one line
    assert main([*data, "court", "c2", "第二法院"]) == 1
    assert "the ledger refused: the log is now signed by key" in capsys.readouterr().err
    assert main(["serve", "--data", str(tmp_path), "--port", "1"]) == 2
    assert "jrule serve: error: ledger_key " in capsys.readouterr().err
    # with the new key configured, writes go on; the boundary is signed by both keys
    monkeypatch.setenv("JRULE_LEDGER_KEY", str(new))
    assert main([*data, "court", "c2", "第二法院"]) == 0
    from engine.api.admin_cli import _open
    from engine.api.config import load_config

    admin, db = _open(load_config(data_dir=str(tmp_path)))
    try:
        boundary = admin.ledger.checkpoint_at(2)
        assert len(parse_note(boundary.note).signatures) == 2
        assert verify_receipt(admin.ledger.receipt(0), keys).ok  # signed under the retired key
    finally:
        db.close()
    assert main(["audit", "--db", f"sqlite:///{tmp_path / 'jrule.sqlite3'}"]) == 0
    capsys.readouterr()
    assert main([*data, "rotate-ledger-key", str(new)]) == 1  # never back to a used key
    assert "already used by this log" in capsys.readouterr().err


def test_one_bad_event_does_not_fail_its_group(tmp_path: Path) -> None:
    svc = _service(tmp_path, "s.sqlite3")
    real = svc.submit_events

    def submit_events(batch: list[EventSubmission]) -> list[object]:
        if any(s.event == "boom" for s in batch):
            raise RuntimeError("a bug in the engine")
        return real(batch)

    svc.submit_events = submit_events  # type: ignore[method-assign,assignment]
    try:
        writer = GroupWriter(svc)
        subs = [EventSubmission("c0", "付款", "被申请人", {"数额": "1.00"}, f"k{n}")
                for n in range(5)]
        futures = [writer.submit(s) for s in subs[:2]]
        futures.append(writer.submit(EventSubmission("c0", "boom", "被申请人", {})))
        futures += [writer.submit(s) for s in subs[2:]]
        writer.start()
        assert all(f.result(30)[0].accepted for n, f in enumerate(futures) if n != 2)
        with pytest.raises(RuntimeError, match="could not be applied"):
            futures[2].result(30)
        writer.close()
        assert svc.state("c0")["seq"] == 6
    finally:
        svc.close()


def test_unknown_deploy_refusals_are_4xx(tmp_path: Path) -> None:
    """A refusal the service may add to deploying (a pre-deployment gate) is a 422 in the
    error shape, never a 500."""
    from fastapi.testclient import TestClient

    from engine.api.app import create_app
    from engine.api.runtime import open_runtime

    config = load_config(env={}, data_dir=str(tmp_path))
    runtime = open_runtime(config, scheduler=False)
    try:
        admin = runtime.admin
        admin.add_principal("rev", "user", None, ["reviewer"], "t")
        key, _ = admin.issue_key("rev", "t")

        class GateRefused(Exception):
            code = "gate_refused"

        def deploy(*_args: object, **_kw: object) -> list[str]:
            raise GateRefused("property tests failed: 3 counterexamples")

        runtime.service.deploy = deploy  # type: ignore[method-assign,assignment]
        with TestClient(create_app(runtime, manage=False)) as client:
            r = client.post("/contracts/deploy", headers={"Authorization": f"Bearer {key}"},
                            json={"source": MINIMAL.read_text(encoding="utf-8")})
        assert r.status_code == 422
        assert r.json() == {"code": "gate_refused", "details": None,
                            "message": "property tests failed: 3 counterexamples"}
    finally:
        runtime.service.close()


def test_fast_path_answers_and_fails_like_the_framework(tmp_path: Path) -> None:
    """The event fast path (in front of FastAPI) answers as the route does, counts each
    request once in the metrics, and fails like the framework: 500 ``internal_error``."""
    from fastapi.testclient import TestClient

    from engine.api.app import create_app
    from engine.api.runtime import open_runtime
    from engine.runtime.service import NewInstance

    config = load_config(env={}, data_dir=str(tmp_path), deploy_gate=False,
                         virtual_clock="2025-09-01T02:00:00Z")
    runtime = open_runtime(config, scheduler=False)
    try:
        runtime.admin.create_court("c1", "court", "t")
        runtime.admin.add_principal("clerk", "user", "c1", ["clerk"], "t")
        key, _ = runtime.admin.issue_key("clerk", "t")
        deploy(runtime.service, MINIMAL)
        terms = minimal_terms("2025-12-31")
        runtime.service.create_instances([NewInstance("调解协议", f"c{n}", terms, None, "c1")
                                          for n in range(2)])
        fast = {"Authorization": f"Bearer {key}"}
        framework = {"X-API-Key": key}  # a header the fast path leaves to the framework
        event = {"event": "付款", "role": "被申请人", "payload": {"数额": "1.00"}}
        app = create_app(runtime)
        calls: list[int] = []
        original = runtime.service.submit_events

        def counting(batch: list[EventSubmission]) -> list[Any]:
            calls.append(len(batch))
            return original(batch)

        runtime.service.submit_events = counting  # type: ignore[method-assign]
        with TestClient(app, raise_server_exceptions=False) as client:
            answers = [client.post(f"/instances/c{n}/events", headers=h,
                                   json={**event, "idempotency_key": f"k{n}"})
                       for n, h in enumerate((fast, framework))]
            assert [a.status_code for a in answers] == [200, 200] and len(calls) == 2
            a, b = (dict(r.json(), instance=None) for r in answers)
            assert a.keys() == b.keys() and a["ledger"]["index"] is not None
            refused = [client.post(f"/instances/c{n}/events", headers=h,
                                   json={**event, "event": "没有"})
                       for n, h in enumerate((fast, framework))]
            assert [r.status_code for r in refused] == [422, 422]
            first, second = (r.json() for r in refused)
            assert first["details"] == {"instance": "c0", "accepted": False}
            assert second["details"] == {"instance": "c1", "accepted": False}
            assert dict(first, details=None) == dict(second, details=None)
            assert first["code"] == "unknown_event"
            lone = [client.post(f"/instances/c{n}/events", content=raw,
                                headers={**h, "Content-Type": "application/json"})
                    for n, h in enumerate((fast, framework))
                    for raw in (b'{"event": "\\ud800", "role": "r"}',
                                b'{"event": "a", "role": "r", "payload": {"\\uDC00": 1}}')]
            assert [r.status_code for r in lone] == [422] * 4
            assert lone[0].json() == lone[2].json() and lone[1].json() == lone[3].json()
            assert {r.json()["code"] for r in lone} == {"invalid_request"}

            def broken(_batch: list[EventSubmission]) -> list[Any]:
                raise RuntimeError("disk on fire")

            runtime.service.submit_events = broken  # type: ignore[method-assign]
            failed = [client.post(f"/instances/c{n}/events", headers=h, json=event)
                      for n, h in enumerate((fast, framework))]
            assert [r.status_code for r in failed] == [500, 500]
            assert failed[0].json() == failed[1].json() == {
                "code": "internal_error", "details": None,
                "message": "the service failed; the error was logged"}
            metrics = runtime.metrics.exposition().decode()
        # each request counted once, whichever layer answered it
        assert 'jrule_http_requests_total{method="POST",status="200"} 2.0' in metrics
        assert 'jrule_http_requests_total{method="POST",status="422"} 6.0' in metrics
        assert 'jrule_http_requests_total{method="POST",status="500"} 2.0' in metrics
    finally:
        runtime.writer.close()
        runtime.service.close()


def test_fast_path_refuses_what_the_route_refuses(tmp_path: Path) -> None:
    """Requests the route refuses are refused the same way when the fast path sees them
    first: an organisation's unsigned event under ``require_org_signatures`` (even when it
    holds a staff role), and a malformed Idempotency-Key header beside a body key."""
    from fastapi.testclient import TestClient

    from engine.api.app import create_app
    from engine.api.runtime import open_runtime
    from engine.runtime.service import NewInstance

    config = load_config(env={}, data_dir=str(tmp_path), deploy_gate=False,
                         require_org_signatures=True, virtual_clock="2025-09-01T02:00:00Z")
    runtime = open_runtime(config, scheduler=False)
    try:
        runtime.admin.create_court("c1", "court", "t")
        runtime.admin.add_principal("clerk", "user", "c1", ["clerk"], "t")
        runtime.admin.add_principal("centre", "org", "c1", ["clerk"], "t")
        staff, _ = runtime.admin.issue_key("clerk", "t")
        org, _ = runtime.admin.issue_key("centre", "t")
        deploy(runtime.service, MINIMAL)
        runtime.service.create_instances([NewInstance("调解协议", "c0", minimal_terms(
            "2025-12-31"), None, "c1")])
        event = {"event": "付款", "role": "被申请人", "payload": {"数额": "1.00"}}
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            def both(key: str, **extra: Any) -> list[Any]:
                fast = {"Authorization": f"Bearer {key}", **extra}
                framework = {"X-API-Key": key, **extra}  # left to the framework
                return [client.post("/instances/c0/events", headers=h,
                                    json={**event, "idempotency_key": "k"})
                        for h in (fast, framework)]

            unsigned = both(org)
            assert [r.status_code for r in unsigned] == [422, 422]
            assert [r.json()["code"] for r in unsigned] == ["signature_required"] * 2
            bad_header = both(staff, **{"Idempotency-Key": "bad key"})
            assert [r.status_code for r in bad_header] == [422, 422]
            assert bad_header[0].json() == bad_header[1].json()
            assert runtime.service.state("c0")["seq"] == 1  # nothing was applied
    finally:
        runtime.writer.close()
        runtime.service.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["event", "role", "payload", "idempotency_key",
                                        "signature", "other"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=3),
                                 st.text(min_size=199, max_size=201),
                                 st.dictionaries(st.text(max_size=3), st.text(max_size=3)),
                                 st.lists(st.integers(), max_size=2))), st.booleans())
def test_fast_event_model_accepts_what_the_route_model_accepts(body: dict[str, Any],
                                                               ascii: bool) -> None:
    """Without a ``\\ud``/``\\uD`` escape in the body (what a lone surrogate needs), the
    fast path's model (no Unicode walk) accepts and reads exactly what
    :class:`EventRequest` does."""
    import json

    from pydantic import ValidationError

    from engine.api.fastpath import _UncheckedEvent
    from engine.api.instances import EventRequest

    raw = json.dumps(body, ensure_ascii=ascii).encode()
    if b"\\ud" in raw or b"\\uD" in raw:
        return
    results = []
    for model in (EventRequest, _UncheckedEvent):
        try:
            results.append(model.model_validate_json(raw).model_dump())
        except ValidationError as exc:
            results.append([(e["loc"], e["type"]) for e in exc.errors()])
    assert results[0] == results[1]


def test_writer_is_woken_per_group_not_per_event(tmp_path: Path) -> None:
    """Rounds of 8 concurrent requests form groups of 8, and the writer thread is woken
    for a group's first and last event only (each wake-up costs a lock hand-over)."""
    import asyncio

    svc = _service(tmp_path, "w.sqlite3")
    writer = GroupWriter(svc, linger=0.5)
    import queue

    wakes: list[object] = []

    class Counting(queue.SimpleQueue):  # type: ignore[type-arg]
        def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
            wakes.append(item)
            super().put(item, block, timeout)

    writer._queue = Counting()

    async def run() -> list[tuple[object, object]]:
        results = []
        for r in range(6):
            subs = [EventSubmission(f"c{n % 3}", "付款", "被申请人", {"数额": "1.00"},
                                    f"w{r}-{n}") for n in range(8)]
            results += await asyncio.wait_for(
                asyncio.gather(*(writer.apply(s) for s in subs)), 30)
        return results

    try:
        writer.start()
        results = asyncio.run(run())
        assert all(outcome.accepted for outcome, _ in results)  # type: ignore[attr-defined]
        assert writer.events == 48 and writer.groups <= 7  # the first group may be short
        assert len(wakes) <= 2 * writer.groups
        writer.close()
        assert sum(svc.state(f"c{i}")["seq"] for i in range(3)) == 3 + 48
    finally:
        svc.close()


def test_json_logs_follow_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging configured once keeps writing after sys.stderr was replaced and the old one
    closed (a caller's capture, a test runner): no "Logging error", the line lands."""
    import io
    import json as _json
    import logging

    from engine.api.logs import configure_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate,
                 logging.getLogger(n).level)
             for n in ("jrule", "uvicorn", "uvicorn.error", "apscheduler")}
    try:
        configure_logging("INFO")
        first.close()
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("jrule.test").warning("after the swap")
        line = second.getvalue().strip()
        assert _json.loads(line)["message"] == "after the swap"
        assert "Logging error" not in line
    finally:
        for n, (handlers, propagate, level) in saved.items():
            lg = logging.getLogger(n)
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(level)
