"""``jrule run``: the sandbox demo on the embedded default.

A fresh SQLite file under ``jrule-data/``, the engine on a virtual clock, the
reference case-management receiver on loopback (signed webhooks), and three
mediation agreements.  The clock is moved one day at a time: reminders go
out, a partial payment is credited, an agreement confirmed by the court turns
into an automatic enforcement filing, an unconfirmed one into a trial filing,
and the receiver dockets them with case numbers.  At the end one instance's
timeline is printed with its explanations, and the receipt of the automatic
enforcement filing is fetched from the ledger and verified offline.

Then (unless ``--no-serve``) the same sandbox keeps running as the HTTP
service (``jrule serve`` on the virtual clock, the demo's reference court
system as its delivery target): it prints the API's address and a sandbox
API key, and serves until Ctrl-C (or ``--serve-seconds``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["HELP", "add_arguments", "run"]

HELP = "run the sandbox demo: examples deployed, demo cases on a virtual clock"

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2025, 9, 1, 9, 0, tzinfo=SHANGHAI)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="jrule-data", help="data directory (default jrule-data)")
    parser.add_argument("--examples", default=None,
                        help="folder of .jrule rule sets to deploy (default: ./examples)")
    parser.add_argument("--days", type=int, default=45, help="virtual days to run (default 45)")
    parser.add_argument("--lang", choices=("zh", "en"), default="en")
    parser.add_argument("--no-serve", dest="serve", action="store_false",
                        help="stop after the demo instead of serving the API")
    parser.add_argument("--port", type=int, default=8640, help="API port (default 8640)")
    parser.add_argument("--serve-seconds", type=float, default=None,
                        help="stop serving after this many seconds (default: until Ctrl-C)")


def _find_examples(arg: str | None) -> Path | None:
    candidates = [Path(arg)] if arg else [Path("examples"),
                                          Path(__file__).resolve().parents[1] / "examples"]
    for c in candidates:
        if c.is_dir() and any(c.glob("*.jrule")):
            return c
    return None


def _refuse_if_in_use(db_path: Path) -> None:
    """Raise EngineLocked if an engine holds the sandbox's store: never delete it under one."""
    import fcntl
    import os

    from engine.runtime.db import _lock_sqlite_file

    if db_path.exists():
        fd = _lock_sqlite_file(db_path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from engine.runtime.clock import VirtualClock
    from engine.runtime.db import open_database
    from engine.runtime.dispatcher import Dispatcher
    from engine.runtime.errors import EngineLocked
    from engine.runtime.receiver.server import ReferenceReceiver
    from engine.runtime.service import EngineService
    from engine.runtime.webhook import WebhookHandler
    from ledger_adapter.note import Ed25519Signer
    from ledger_adapter.sql import SqlLedger

    examples = _find_examples(args.examples)
    if examples is None:
        err.write("jrule run: error: no examples folder with .jrule files; run it from the "
                  "repository or pass --examples DIR\n")
        return 2
    if args.days < 0:
        err.write(f"jrule run: error: --days must not be negative, not {args.days}\n")
        return 2
    port = getattr(args, "port", 8640)
    if not 1 <= port <= 65535:
        err.write(f"jrule run: error: --port must be from 1 to 65535, not {port}\n")
        return 2
    if (getattr(args, "serve_seconds", None) or 0) < 0:
        err.write("jrule run: error: --serve-seconds must not be negative\n")
        return 2
    data = Path(args.data)
    sandbox = data / "sandbox"
    try:
        if sandbox.exists():
            _refuse_if_in_use(sandbox / "jrule.sqlite3")
            shutil.rmtree(sandbox)  # the demo always starts from nothing
        sandbox.mkdir(parents=True)
    except EngineLocked as exc:
        err.write(f"jrule run: error: {exc.message} (another `jrule run` is serving this "
                  "sandbox: stop it, or give another --data)\n")
        return 2
    except OSError as exc:
        err.write(f"jrule run: error: cannot make the sandbox directory {sandbox}: "
                  f"{exc.strerror or exc}\n")
        return 2
    db_path = sandbox / "jrule.sqlite3"
    clock = VirtualClock(START)
    url = f"sqlite:///{db_path}"
    db = open_database(url)
    # the tamper-evident ledger, with a throwaway log key (a court keeps its key safe)
    ledger = SqlLedger(db.engine, LOG_ORIGIN, Ed25519Signer.generate(LOG_ORIGIN))
    service = EngineService(url, clock=clock, mode="sandbox", db=db, ledger=ledger)
    key = Ed25519PrivateKey.generate()
    receiver = ReferenceReceiver(key.public_key(), db_path=str(sandbox / "court.sqlite3")).start()
    handler = WebhookHandler(receiver.url, key, "demo-webhook", clock=clock)
    dispatcher = Dispatcher(service.db, handler, clock, ledger=ledger, mode="sandbox")
    try:
        _say(out, f"jrule sandbox: data in {sandbox}/, virtual clock starting {START:%Y-%m-%d}")
        _say(out, f"reference court system (case management stand-in) at {receiver.url}")
        # rule sets only: their *.test.jrule files are not deployed, nor is examples/buggy/
        for path in sorted(p for p in examples.glob("*.jrule")
                           if not p.name.endswith(".test.jrule")):
            ids = service.deploy(path.read_bytes(), path.name, "demo")
            _say(out, f"  deployed {path.name}: {len(ids)} contract(s)")
        _cases(service, out)
        _advance(service, dispatcher, clock, args.days, args.lang, out)
        _summary(service, args.lang, out)
        _receipt(service, ledger, sandbox, out)
        if getattr(args, "serve", False):
            _serve(args, service, clock, dispatcher, sandbox, out)
    finally:
        receiver.stop() if hasattr(receiver, "stop") else None
        service.close()
    return 0


def _serve(args: argparse.Namespace, service: Any, clock: Any, dispatcher: Any,
           sandbox: Path, out: TextIO) -> None:
    """Keep the sandbox running as the HTTP service until Ctrl-C (or --serve-seconds)."""
    import threading

    from engine.api.app import create_app
    from engine.api.config import load_config
    from engine.api.runtime import open_runtime
    from engine.api.serve import listen, serve_app
    from engine.runtime.errors import EngineError

    try:
        sock = listen("127.0.0.1", args.port)
    except EngineError as exc:
        _say(out, f"\nthe sandbox API is not started: {exc.message}")
        return
    config = load_config(env={}, data_dir=str(sandbox), port=args.port, sandbox=True,
                         access_log=False)
    runtime = open_runtime(config, clock=clock, service=service, dispatcher=dispatcher)
    runtime.admin.create_court("sandbox", "sandbox court", "jrule run")
    runtime.admin.add_principal("sandbox", "user", None,
                                ["rule_author", "reviewer", "clerk", "judge",
                                 "enforcement_officer", "admin"], "jrule run")
    key, _ = runtime.admin.issue_key("sandbox", "jrule run")
    base = f"http://127.0.0.1:{args.port}"
    _say(out, f"""
the sandbox now runs as the HTTP service (virtual clock at {clock.now():%Y-%m-%d}):
  API       {base}/            docs {base}/docs
  API key   {key}
try:
  curl -H 'Authorization: Bearer {key}' {base}/instances/med-confirmed/timeline
  curl -H 'Authorization: Bearer {key}' -X POST -H 'content-type: application/json' \\
       -d '{{"days": 30}}' {base}/sandbox/clock
  curl {base}/ledger/checkpoint
Ctrl-C stops it.""")
    app = create_app(runtime, manage=False)
    runtime.start()
    try:
        if args.serve_seconds is not None:
            import uvicorn

            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port,
                                                   log_config=None, access_log=False))
            timer = threading.Timer(args.serve_seconds,
                                    lambda: setattr(server, "should_exit", True))
            timer.start()
            server.run(sockets=[sock])
            timer.cancel()
        else:
            serve_app(app, sock)
    finally:
        runtime.stop()


MEDIATION = "调解协议履行"
LOG_ORIGIN = "sandbox.court.example/ledger"


def _cases(service: Any, out: TextIO) -> None:
    plan = [{"到期日": "2025-09-30", "金额": "3000.00"}]
    cases = {
        "med-confirmed": "confirmed by the court, partly paid: enforcement filing expected",
        "med-unconfirmed": "never confirmed, unpaid: trial filing expected",
        "med-paid": "paid in full before the due date",
    }
    _say(out, "\ncreating demo cases (mediation agreements of 3000.00 due 2025-09-30):")
    for case, what in cases.items():
        result = service.create_instance(MEDIATION, case,
                                         {"协议生效日": "2025-09-01", "履行计划": plan},
                                         court="sandbox")
        _say(out, f"  {case}: {what} -> {'created' if result.accepted else result.message}")


#: (day offset, case, event, role, payload)
_EVENTS: tuple[tuple[int, str, str, str, dict[str, Any]], ...] = (
    (4, "med-confirmed", "申请司法确认", "人民法院", {"申请日": "2025-09-05"}),
    (11, "med-confirmed", "确认裁定", "人民法院", {"有效": True}),
    (19, "med-confirmed", "付款", "权利人", {"金额": "1000.00", "付款日": "2025-09-20"}),
    (24, "med-paid", "付款", "权利人", {"金额": "3000.00", "付款日": "2025-09-25"}),
)


def _advance(service: Any, dispatcher: Any, clock: Any, days: int, lang: str,
             out: TextIO) -> None:
    _say(out, "\nletting time pass, one virtual day at a time:")
    seen: set[str] = set()
    for day in range(1, days + 1):
        target = clock.now() + dt.timedelta(days=1)
        # as the scheduler would: wake at each due instant on the way, not late
        while (due := service.next_due()) is not None and due <= target:
            clock.set(max(due, clock.now()))
            service.run_due()
        clock.set(target)
        today = clock.now().astimezone(SHANGHAI).date()
        for offset, case, event, role, payload in _EVENTS:
            if offset == day:
                result = service.submit_event(case, event, role, payload,
                                              idempotency_key=f"demo-{case}-{offset}")
                status = "applied" if result.accepted else f"refused: {result.message}"
                _say(out, f"  {today}  {case}: event {event} by {role} {status}")
        service.run_due()
        while dispatcher.run_once():
            pass
        for row in service.outbox():
            if row["key"] in seen or row["status"] != "delivered":
                continue
            seen.add(row["key"])
            receipt = row.get("receipt") or {}
            if isinstance(receipt, str):
                receipt = json.loads(receipt)
            number = receipt.get("case_number") or receipt.get("receipt_id") or ""
            _say(out, f"  {today}  {row['instance']}: {row['action']} delivered -> "
                      f"{number}")


def _summary(service: Any, lang: str, out: TextIO) -> None:
    _say(out, "\nwhere each case ended:")
    for case in ("med-confirmed", "med-unconfirmed", "med-paid"):
        state = service.state(case)
        _say(out, f"  {case}: {state.get('state')}")
    _say(out, "\ntimeline of med-confirmed, with explanations:")
    for entry in service.timeline("med-confirmed"):
        for e in entry.get("explanations", ()):
            _say(out, "  - " + e.get(f"text_{lang}", ""))


def _receipt(service: Any, ledger: Any, sandbox: Path, out: TextIO) -> None:
    """The receipt of the automatic enforcement filing, checked offline."""
    from ledger_adapter.keys import format_key_list
    from ledger_adapter.verify import verify_receipt

    filed = [r for r in service.outbox("med-confirmed", status="delivered")
             if r["action"] == "file_enforcement_case"]
    if not filed:
        return
    from sqlalchemy import select

    from engine.runtime.models import T_OUTBOX

    with service.db.read() as conn:
        index = conn.scalar(select(T_OUTBOX.c.ledger_index)
                            .where(T_OUTBOX.c.key == filed[0]["key"]))
    if index is None:
        return
    receipt = ledger.receipt(index)
    path = sandbox / "enforcement-filed.tlog-proof"
    keys = sandbox / "log-keys.txt"
    path.write_bytes(receipt)
    keys.write_text(format_key_list(ledger.log_keys()), encoding="utf-8")
    report = verify_receipt(receipt, ledger.log_keys())
    _say(out, f"\nthe ledger's receipt for the automatic enforcement filing ({path.name}), "
              "checked offline:")
    for line in report.text().splitlines():
        _say(out, "  " + line)
    _say(out, f"check it yourself: jrule verify {path} --key {keys}")
