"""Signed webhook delivery, against stub servers and the reference receiving system."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from delivery_helpers import BACKENDS, T0, add_action, open_store, row

from engine.runtime.clock import VirtualClock
from engine.runtime.dispatcher import Dispatcher
from engine.runtime.handlers import Delivery, PermanentFailure, TransientFailure
from engine.runtime.receiver import ReferenceReceiver
from engine.runtime.webhook import (
    WebhookHandler,
    load_private_key,
    load_public_key,
    verify_webhook,
    write_key_pair,
)

ROOT = Path(__file__).resolve().parents[2]
SIGNING = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = SIGNING.public_key()
ENFORCE = {"applicant": "张三", "respondent": "李四", "amount": "1234.50",
           "basis": "(2026)京0105民初1号调解书"}


def delivery(key: str = "i1:1:0", action: str = "file_enforcement_case",
             args: dict[str, Any] | None = None, attempt: int = 1) -> Delivery:
    return Delivery(key, action, ENFORCE if args is None else args, key.split(":")[0],
                    "《民事诉讼法》第二百四十三条", "mediation.jrule:12:5", attempt,
                    {"申请人": "张三", "被申请人": "李四"})


def webhook(url: str, clock: VirtualClock | None = None, key: Ed25519PrivateKey = SIGNING,
            timeout: float = 5.0) -> WebhookHandler:
    return WebhookHandler(url, key, "engine-2026", timeout=timeout, clock=clock or VirtualClock(T0))


@pytest.fixture
def receiver() -> Iterator[ReferenceReceiver]:
    with ReferenceReceiver(PUBLIC) as r:
        yield r


# --- the request --------------------------------------------------------------------


def test_the_request_is_canonical_and_signed() -> None:
    body, headers = webhook("http://cms.court/actions").request_for(delivery())
    assert body == (
        '{"action":"file_enforcement_case","args":{"amount":"1234.50",'
        '"applicant":"张三","basis":"(2026)京0105民初1号调解书","respondent":"李四"},'
        '"attempt":1,"cite":"《民事诉讼法》第二百四十三条","instance":"i1","key":"i1:1:0",'
        '"parties":{"申请人":"张三","被申请人":"李四"},'
        '"rule":"mediation.jrule:12:5","sent_at":"2026-03-02T01:00:00.000Z"}'
    ).encode()
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "i1:1:0"
    assert headers["X-Jrule-Key-Id"] == "engine-2026"
    scheme, signature = headers["X-Jrule-Signature"].split("=", 1)
    assert scheme == "ed25519"
    PUBLIC.verify(base64.b64decode(signature), body)  # raises if wrong
    assert verify_webhook(body, headers, PUBLIC)


def test_non_ascii_keys_are_percent_encoded_in_the_header() -> None:
    body, headers = webhook("http://x/").request_for(delivery("调解-7:3:0"))
    assert headers["Idempotency-Key"] == "%E8%B0%83%E8%A7%A3-7:3:0"
    assert headers["Idempotency-Key"].isascii()
    assert verify_webhook(body, headers, PUBLIC)


def _forgeries(body: bytes, headers: dict[str, str]) -> dict[str, tuple[bytes, dict[str, str]]]:
    other = Ed25519PrivateKey.generate()
    resigned = "ed25519=" + base64.b64encode(other.sign(body)).decode()
    tampered = body.replace(b"1234.50", b"9234.50")
    return {
        "tampered body": (tampered, headers),
        "signed by another key": (body, {**headers, "X-Jrule-Signature": resigned}),
        "replayed under a fresh key": (body, {**headers, "Idempotency-Key": "i1:1:9"}),
        "no signature": (body, {k: v for k, v in headers.items() if k != "X-Jrule-Signature"}),
        "no idempotency key": (body, {k: v for k, v in headers.items()
                                      if k != "Idempotency-Key"}),
        "not base64": (body, {**headers, "X-Jrule-Signature": "ed25519=!!!"}),
        "other scheme": (body, {**headers, "X-Jrule-Signature":
                                headers["X-Jrule-Signature"].replace("ed25519", "rsa")}),
    }


def test_verify_webhook_rejects_forgeries() -> None:
    body, headers = webhook("http://x/").request_for(delivery())
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_webhook(body, lower, PUBLIC)  # header names in any case
    assert verify_webhook(body, headers, {"engine-2026": PUBLIC})
    assert not verify_webhook(body, headers, {"engine-2025": PUBLIC})
    for name, (b, h) in _forgeries(body, headers).items():
        assert not verify_webhook(b, h, PUBLIC), name


def test_the_documented_snippet_is_the_check_we_ship() -> None:
    doc = (ROOT / "docs" / "receiving-systems.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    snippet = next(b for b in blocks if "def verify_webhook" in b)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "receiving-systems.md", "exec"), namespace)
    copied = namespace["verify_webhook"]
    body, headers = webhook("http://x/").request_for(delivery("调解-7:3:0"))
    assert copied(body, headers, PUBLIC)
    for name, (b, h) in _forgeries(body, headers).items():
        assert not copied(b, h, PUBLIC), name


def test_the_documented_returns_are_the_catalogues() -> None:
    from contracts_lib.actions import ACTIONS

    doc = (ROOT / "docs" / "receiving-systems.md").read_text(encoding="utf-8")
    documented = {}
    for line in doc.splitlines():
        m = re.match(r"\| `(\w+)` \(.*?\) \| (.*?) \| (.*?) \| (.*?) \| (yes|no) \|$", line)
        if m:
            documented[m[1]] = (m[2], m[3], m[4], m[5] == "yes")
    expected = {
        s.name: (s.receiver, ", ".join(f"`{p.name}` ({p.type})" for p in s.params),
                 ", ".join(f"`{p.name}` ({p.type})" for p in s.returns), s.needs_approval)
        for s in ACTIONS.values()
    }
    assert documented == expected


# --- replies, against stub servers ------------------------------------------------------


class _Stub(BaseHTTPRequestHandler):
    reply: tuple[int, bytes, dict[str, str]] = (200, b"{}", {})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status, data, headers = self.server.reply  # type: ignore[attr-defined]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/actions"


@pytest.mark.parametrize(
    ("status", "data", "headers", "outcome"),
    [
        (200, b'{"case_number":"(2026)\xe4\xba\xac0105\xe6\x89\xa71\xe5\x8f\xb7"}', {},
         {"case_number": "(2026)京0105执1号"}),
        (201, b'{"receipt_id":"R1"}', {}, {"receipt_id": "R1"}),
        (409, b'{"error":"already_processed","receipt":{"receipt_id":"R1"}}', {},
         {"receipt_id": "R1"}),
        (409, b'{"error":"conflict"}', {}, PermanentFailure),
        (200, b"OK", {}, TransientFailure),
        (200, b"[1,2]", {}, TransientFailure),
        (408, b"", {}, TransientFailure),
        (429, b"slow down", {"Retry-After": "30"}, TransientFailure),
        (500, b"oops", {}, TransientFailure),
        (503, b"maintenance", {}, TransientFailure),
        (400, b"bad request", {}, PermanentFailure),
        (401, b"bad signature", {}, PermanentFailure),
        (404, b"", {}, PermanentFailure),
        (422, b"unknown action", {}, PermanentFailure),
        (302, b"", {"Location": "http://elsewhere/"}, PermanentFailure),
    ],
)
def test_what_each_reply_means(stub: ThreadingHTTPServer, status: int, data: bytes,
                               headers: dict[str, str], outcome: Any) -> None:
    stub.reply = (status, data, headers)  # type: ignore[attr-defined]
    handler = webhook(_url(stub))
    if isinstance(outcome, dict):
        assert handler.deliver(delivery()) == outcome
        return
    with pytest.raises(outcome) as caught:
        handler.deliver(delivery())
    assert str(status) in caught.value.message
    if data and status != 409:
        assert data.decode() in caught.value.message


def test_retry_after_seconds_and_dates(stub: ThreadingHTTPServer) -> None:
    stub.reply = (503, b"", {"Retry-After": "120"})  # type: ignore[attr-defined]
    with pytest.raises(TransientFailure) as caught:
        webhook(_url(stub)).deliver(delivery())
    assert caught.value.retry_after == 120
    later = "Mon, 02 Mar 2026 01:05:00 GMT"  # five minutes after the clock
    stub.reply = (429, b"", {"Retry-After": later})  # type: ignore[attr-defined]
    with pytest.raises(TransientFailure) as caught:
        webhook(_url(stub)).deliver(delivery())
    assert caught.value.retry_after == 300


def test_connection_refused_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientFailure, match="connection failed"):
        webhook(f"http://127.0.0.1:{port}/actions").deliver(delivery())


def test_a_silent_receiver_times_out_as_transient() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/actions"
        with pytest.raises(TransientFailure, match="timed out"):
            webhook(url, timeout=0.3).deliver(delivery())


def test_bad_urls_are_refused() -> None:
    for url in ("ftp://cms/actions", "cms/actions", "http:///actions"):
        with pytest.raises(ValueError):
            webhook(url)


# --- the reference receiving system ---------------------------------------------------------

CASE_NUMBER = re.compile(r"^\((\d{4})\)京0105(执|民初)(\d+)号$")


def test_receiver_dockets_cases_with_increasing_numbers(receiver: ReferenceReceiver) -> None:
    handler = webhook(receiver.url)
    first = handler.deliver(delivery("i1:1:0"))
    assert first["case_number"] == "(2026)京0105执1号"
    assert CASE_NUMBER.match(first["case_number"])
    assert handler.deliver(delivery("i1:1:0", attempt=2)) == first  # same key, same case
    assert handler.deliver(delivery("i2:1:0"))["case_number"] == "(2026)京0105执2号"
    trial = {"plaintiff": "张三", "defendant": "李四", "claim_amount": "500.00",
             "cause": "调解协议未履行"}
    assert handler.deliver(delivery("i3:1:0", "file_trial_case", trial))["case_number"] == \
        "(2026)京0105民初1号"
    docket = {"case_type": "民事", "procedure": "summary"}
    assert handler.deliver(delivery("i4:1:0", "docket_filing", docket))["case_number"] == \
        "(2026)京0105民初2号"
    assert receiver.docket.deliveries()["i1:1:0"] == 2
    assert [r["number"] for r in receiver.docket.records()] == [
        "(2026)京0105执1号", "(2026)京0105执2号", "(2026)京0105民初1号", "(2026)京0105民初2号"]


def test_receiver_replies_what_the_catalogue_says(receiver: ReferenceReceiver) -> None:
    handler = webhook(receiver.url)
    notice = handler.deliver(delivery("i1:1:0", "notify", {"party": "李四", "message": "请履行"}))
    assert re.fullmatch(r"RCPT-2026-\d{6}", notice["receipt_id"])
    report = handler.deliver(delivery("i1:2:0", "query_property", {"debtor": "李四"}))
    assert re.fullmatch(r"RPT-2026-\d{6}", report["report_id"])
    freeze = {"debtor": "李四", "kind": "bank_deposit", "amount": "1234.50"}
    frozen = handler.deliver(delivery("i1:3:0", "freeze", freeze))
    assert frozen["expires_on"] == "2026-09-02"  # 6 months for a bank deposit
    renewed = handler.deliver(delivery("i1:4:0", "renew_freeze", freeze))
    assert renewed == {**renewed, "freeze_id": frozen["freeze_id"], "expires_on": "2026-12-02"}
    with pytest.raises(PermanentFailure, match=r"422.*no active freeze"):
        handler.deliver(delivery("i2:1:0", "renew_freeze", freeze))
    late = webhook(receiver.url, VirtualClock(dt.datetime(2027, 1, 1, tzinfo=dt.UTC)))
    with pytest.raises(PermanentFailure, match="expired on 2026-12-02"):
        late.deliver(delivery("i1:5:0", "renew_freeze", freeze))


def test_receiver_dates_by_the_courts_day(receiver: ReferenceReceiver) -> None:
    new_year_in_beijing = VirtualClock(dt.datetime(2026, 12, 31, 16, 30, tzinfo=dt.UTC))
    reply = webhook(receiver.url, new_year_in_beijing).deliver(delivery())
    assert reply["case_number"] == "(2027)京0105执1号" and reply["recorded_on"] == "2027-01-01"


def test_receiver_refuses_a_bad_signature(receiver: ReferenceReceiver) -> None:
    forger = webhook(receiver.url, key=Ed25519PrivateKey.generate())
    with pytest.raises(PermanentFailure, match="401"):
        forger.deliver(delivery())
    assert receiver.docket.records() == []


def test_receiver_refuses_a_reused_key(receiver: ReferenceReceiver) -> None:
    handler = webhook(receiver.url)
    handler.deliver(delivery())
    with pytest.raises(PermanentFailure, match=r"422.*different request"):
        handler.deliver(delivery(args={**ENFORCE, "amount": "1.00"}))


def test_receiver_409_replay_counts_as_delivered() -> None:
    with ReferenceReceiver(PUBLIC, replay_status=409, court="沪0101") as receiver:
        handler = webhook(receiver.url)
        first = handler.deliver(delivery())
        assert first["case_number"] == "(2026)沪0101执1号"
        assert handler.deliver(delivery(attempt=2)) == first


def test_receiver_can_be_told_to_fail(receiver: ReferenceReceiver) -> None:
    receiver.fail_next(2, retry_after="7")
    handler = webhook(receiver.url)
    for _ in range(2):
        with pytest.raises(TransientFailure, match="503") as caught:
            handler.deliver(delivery())
        assert caught.value.retry_after == 7
    assert handler.deliver(delivery())["case_number"] == "(2026)京0105执1号"


def test_receiver_lists_cases_and_answers_health(receiver: ReferenceReceiver) -> None:
    webhook(receiver.url).deliver(delivery())
    base = receiver.url.removesuffix("/actions")
    with urllib.request.urlopen(base + "/cases", timeout=5) as reply:
        listed = json.loads(reply.read())
    assert [r["number"] for r in listed["records"]] == ["(2026)京0105执1号"]
    with urllib.request.urlopen(base + "/healthz", timeout=5) as reply:
        assert json.loads(reply.read()) == {"ok": True}
    with pytest.raises(PermanentFailure, match="404"):
        webhook(base + "/elsewhere").deliver(delivery())


def test_receiver_keeps_its_records_across_restarts(tmp_path: Path) -> None:
    db = str(tmp_path / "cms.db")
    with ReferenceReceiver(PUBLIC, db_path=db) as receiver:
        first = webhook(receiver.url).deliver(delivery("i1:1:0"))
    with ReferenceReceiver(PUBLIC, db_path=db) as receiver:
        handler = webhook(receiver.url)
        assert handler.deliver(delivery("i1:1:0", attempt=3)) == first
        assert handler.deliver(delivery("i2:1:0"))["case_number"] == "(2026)京0105执2号"


def test_receiver_runs_from_the_command_line(tmp_path: Path) -> None:
    private_path, public_path = write_key_pair(tmp_path)
    assert load_public_key(public_path).public_bytes_raw() == \
        load_private_key(private_path).public_key().public_bytes_raw()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.runtime.receiver", "--port", "0", "--quiet",
         "--public-key", str(public_path), "--db", str(tmp_path / "cms.db")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = re.search(r"listening on (\S+)", banner)
        assert url, banner
        handler = webhook(url.group(1), key=load_private_key(private_path))
        assert handler.deliver(delivery())["case_number"] == "(2026)京0105执1号"
    finally:
        process.terminate()
        process.wait(10)


# --- end to end: outbox -> dispatcher -> webhook -> receiver -------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_outbox_to_receiver_through_outage(backend: str, tmp_path: Path,
                                           receiver: ReferenceReceiver) -> None:
    clock = VirtualClock(T0)
    with open_store(backend, tmp_path) as store:
        add_action(store, "i1:1:0")
        add_action(store, "i2:1:0", "notify", {"party": "李四", "message": "已自动申请执行"})
        receiver.fail_next(3)
        dispatcher = Dispatcher(store, webhook(receiver.url, clock), clock)
        dispatcher.run_once()  # two 503s
        assert row(store, "i1:1:0")["status"] == "pending"
        while (due := dispatcher.next_due()) is not None:
            clock.set(max(due, clock.now()))
            dispatcher.run_once()
        enforce, notice = row(store, "i1:1:0"), row(store, "i2:1:0")
        assert enforce["status"] == notice["status"] == "delivered"
        assert json.loads(enforce["receipt"])["case_number"] == "(2026)京0105执1号"
        assert enforce["attempts"] + notice["attempts"] == 5
        assert receiver.docket.deliveries() == {"i1:1:0": 1, "i2:1:0": 1}
