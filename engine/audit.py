"""``jrule audit --db URL [--key-file FILE] [--chunk N]``: check a whole store.

Four checks, each streaming over the store in chunks (memory does not grow
with the log):

a. the ledger's own audit (leaves, tiles, checkpoints, keys, head);
b. every input-log row with a ``ledger_index``: its ``transition`` record is
   recomputed from the row (SHA-256 of ``inputs.body``, the state hash, the
   contract, the actions it emitted, ...) and compared with the ledger entry;
   a ``migrate`` row is also compared with the ``migration`` record after it;
c. every instance's stored document equals a replay of its logged inputs;
d. every instance's ``state_hash`` is the SHA-256 of its document.

Every finding names its location (``table[key].column``).  Progress goes to
stderr.  Exit status: 0 clean, 1 any finding, 2 a usage problem.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select

from engine.runtime.ledger import migration_record, transition_record
from engine.runtime.unit import T_INPUTS, T_INSTANCES

__all__ = ["HELP", "StoreAudit", "add_arguments", "audit_store", "run"]

HELP = "check the whole store against the ledger and replays"

_COLUMN = {"instance": "instance_id", "seq": "seq", "contract": "result", "input": "body",
           "state": "state_hash", "effects": "result", "at": "at",
           "from": "body", "to": "body", "by": "body"}


@dataclass
class StoreAudit:
    """What :func:`audit_store` checked and found (``findings``: ``location: message``)."""

    findings: list[str] = field(default_factory=list)
    ledger_text: str = ""
    inputs: int = 0
    instances: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, location: str, message: str) -> None:
        self.findings.append(f"{location}: {message}")


def _chunks(conn_factory: Any, query: Any, key: Any, chunk: int) -> Iterator[list[Any]]:
    """Rows of ``query`` in ``key`` order, ``chunk`` at a time (keyset pagination)."""
    last = None
    while True:
        q = query.order_by(key).limit(chunk)
        if last is not None:
            q = q.where(key > last)
        with conn_factory() as conn:
            rows = conn.execute(q).mappings().all()
        if not rows:
            return
        yield list(rows)
        last = rows[-1][key.name]


def audit_store(service: Any, ledger: Any | None, *, chunk: int = 1000,
                progress: Callable[[str], None] | None = None) -> StoreAudit:
    """Run checks (a)-(d) on ``service``'s store (``ledger``: its SqlLedger, or None)."""
    out = StoreAudit()
    say = progress or (lambda _msg: None)

    # (a) the ledger itself
    if ledger is not None:
        say("auditing the ledger")
        report = ledger.audit(progress=lambda done, total: say(f"ledger: {done}/{total} entries"))
        out.ledger_text = report.text()
        for f in report.findings:
            out.add(f.location, f"{f.message} [{f.code}]")
        if report.findings_total > len(report.findings):
            out.add("ledger", f"... and {report.findings_total - len(report.findings)} more")

    # (b) input-log rows against their ledger records
    cols = [T_INPUTS.c[n] for n in ("id", "instance_id", "seq", "kind", "body", "result",
                                    "state_hash", "at", "ledger_index")]
    for rows in _chunks(service.db.read, select(*cols), T_INPUTS.c.id, chunk):
        out.inputs += len(rows)
        logged = [r for r in rows if r["ledger_index"] is not None]
        if logged and ledger is None:
            out.add("inputs", "rows have ledger indexes but the store has no ledger")
            logged = []
        if logged and ledger is not None:
            lo = min(r["ledger_index"] for r in logged)
            hi = max(r["ledger_index"] for r in logged) + 2
            entries = {e.index: e for e in ledger.entries(lo, hi)}
            for r in logged:
                _compare(out, r, entries.get(r["ledger_index"]), transition_record)
                if r["kind"] == "migrate":
                    _compare(out, r, entries.get(r["ledger_index"] + 1), migration_record,
                             offset=1)
        say(f"inputs: {out.inputs} rows checked")

    # (c) replays and (d) document hashes
    icols = [T_INSTANCES.c.id, T_INSTANCES.c.document, T_INSTANCES.c.state_hash]
    for rows in _chunks(service.db.read, select(*icols), T_INSTANCES.c.id, chunk):
        for r in rows:
            iid = r["id"]
            where = f"instances[id={iid}]"
            digest = hashlib.sha256(r["document"].encode("utf-8")).hexdigest()
            if digest != r["state_hash"]:
                out.add(f"{where}.state_hash",
                        f"is {r['state_hash']}, but the document hashes to {digest}")
            try:
                rep = service.replay_report(iid)
            except Exception as exc:  # a tampered row may not even replay
                out.add(f"{where}.document", f"the logged inputs do not replay: {exc!r}")
                continue
            if not rep["equal"]:
                out.add(f"{where}.document", "differs from a replay of its logged inputs "
                        f"(replayed hash {rep['replayed_hash']})")
            if rep["first_divergent_seq"] is not None:
                out.add(f"inputs[instance_id={iid},seq={rep['first_divergent_seq']}].state_hash",
                        "differs from the state the replay reaches at this input")
        out.instances += len(rows)
        say(f"instances: {out.instances} replayed")
    return out


def _compare(out: StoreAudit, row: Any, entry: Any, build: Callable[[Any], Any],
             offset: int = 0) -> None:
    index = row["ledger_index"] + offset
    where = f"inputs[id={row['id']}]"
    if entry is None:
        out.add(f"{where}.ledger_index", f"ledger entry {index} does not exist")
        return
    try:
        want = build(row)
    except Exception as exc:
        out.add(where, f"the row does not make a valid {entry.record.kind} record: {exc}")
        return
    if entry.record == want:
        return
    if entry.record.kind != want.kind:
        out.add(f"{where}.ledger_index", f"ledger entry {index} is a {entry.record.kind} "
                f"record, expected {want.kind}")
        return
    have = dict(entry.record.fields)
    columns = sorted({_COLUMN.get(name, name) for name, value in want.fields
                      if have.get(name) != value})
    for column in columns:
        names = [n for n, v in want.fields if _COLUMN.get(n, n) == column and have.get(n) != v]
        out.add(f"{where}.{column}", f"disagrees with ledger entry {index} "
                f"({want.kind} field(s) {', '.join(names)})")


# --- the command ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, metavar="URL",
                        help="the store: sqlite:///FILE or postgresql://...")
    parser.add_argument("--key-file", metavar="FILE",
                        help="the log's signer key (not needed to audit: a throwaway key is "
                             "used when omitted, nothing is signed)")
    parser.add_argument("--chunk", type=int, default=1000, metavar="N",
                        help="rows read per query (default 1000)")


def _open_ledger(engine: Any, key_file: str | None) -> Any | None:
    from ledger_adapter.note import Ed25519Signer
    from ledger_adapter.sql import SqlLedger

    if not inspect(engine).has_table("ledger_head"):
        return None
    with engine.connect() as conn:
        origin = conn.exec_driver_sql("SELECT origin FROM ledger_head").scalar()
    if origin is None:
        return None
    if key_file:
        signer = Ed25519Signer.from_skey(Path(key_file).read_text(encoding="utf-8").strip())
    else:
        signer = Ed25519Signer.generate(origin)
    return SqlLedger(engine, origin, signer)


def run(args: argparse.Namespace) -> int:
    from engine.runtime.service import EngineService

    started = time.monotonic()
    last = [0.0]

    def progress(message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            print(f"audit: {message}", file=sys.stderr, flush=True)

    try:
        service = EngineService(args.db, mode="production", engine_lock=False, migrate=False)
    except Exception as exc:
        print(f"jrule audit: cannot open {args.db}: {exc}", file=sys.stderr)
        return 2
    try:
        ledger = _open_ledger(service.db.engine, args.key_file)
        result = audit_store(service, ledger, chunk=args.chunk, progress=progress)
    finally:
        service.close()
    if ledger is None:
        print("no ledger in this store: checked replays and state hashes only")
    elif result.ledger_text:
        print(result.ledger_text, end="")
    print(f"checked {result.inputs} input rows and {result.instances} instances "
          f"in {time.monotonic() - started:.1f} s")
    if result.ok:
        print("no disagreement found")
        return 0
    print(f"{len(result.findings)} finding(s):")
    for f in result.findings:
        print(f"  {f}")
    return 1
