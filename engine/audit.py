"""``jrule audit --db URL [--key-file FILE] [--chunk N]``: check a whole store.

Seven checks, each streaming over the store in chunks (memory does not grow
with the log):

a. the ledger's own audit (leaves, tiles, checkpoints, keys, head);
b. every input-log row with a ``ledger_index``: its records are recomputed from
   the rows they are made of (the input itself, the ``outbox`` rows of the
   actions it triggered, the ``approvals`` rows it changed; see
   ``engine/runtime/ledger.py``) and compared with the entries from its
   ``ledger_index`` on; a row the records need but the store lacks is named;
c. every ``outbox`` row with a ``ledger_index``: its ``delivery`` record;
d. every ledger entry about an off-chain row finds that row: a ``transition``
   its ``inputs`` row (same instance and seq, pointing back at the entry), an
   ``action`` or ``delivery`` its ``outbox`` row, an ``approval`` or
   ``approval_decision`` its ``approvals`` row, a ``deployment`` its
   ``contract_versions`` row (and equals the record made from it): a deleted
   or renumbered row is named;
e. every ``contract_versions`` row: its IR hashes to its id (and its rule set
   to its ``ruleset_id``), and the ledger has its deployment record;
f. every instance's stored document equals a replay of its logged inputs;
g. every instance's ``state_hash`` is the SHA-256 of its document;
h. every ``signed_event`` record against its ``event_signatures`` row, both ways;
i. every ``admin`` record against the rows it is about (test reports of gated
   deployments, courts, principals, roles, keys, incident resolutions), both
   ways (``engine/audit_service.py``).

Every finding names its location (``table[key].column``).  Progress goes to
stderr.  Exit status: 0 clean, 1 any finding, 2 a usage problem.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, inspect, select

from engine.runtime.ledger import (
    MissingRow,
    delivery_record,
    deployment_record,
    input_records,
    result_keys,
)
from engine.runtime.models import (
    T_APPROVALS,
    T_INCIDENTS,
    T_INPUTS,
    T_INSTANCES,
    T_OUTBOX,
    T_VERSIONS,
)
from engine.runtime.results import canonical_json

__all__ = ["HELP", "KeyFileError", "StoreAudit", "add_arguments", "audit_store", "run"]

HELP = "check the whole store against the ledger and replays"


#: record field -> the column it is made from, per kind (None: the input row's column)
_INPUT_COLUMN = {"instance": "instance_id", "seq": "seq", "contract": "result", "input": "body",
                 "state": "state_hash", "effects": "result", "at": "at",
                 "from": "body", "to": "body", "by": "body", "decision": "result",
                 "outcome": "result"}
_ROW_COLUMN: dict[str, dict[str, str | None]] = {
    "action": {"instance": "instance_id", "seq": None, "key": "key", "action": "action",
               "args": "args", "outcome": "status", "at": None},
    "approval": {"instance": "instance_id", "seq": None, "approval": "id",
                 "decision": "status", "by": "decided_by", "at": "decided_at"},
    "approval_decision": {"instance": "instance_id", "seq": None, "approval": "id",
                          "decision": "status", "by": "decided_by", "reason": "reason",
                          "at": "decided_at"},
    "delivery": {"instance": "instance_id", "key": "key", "action": "action",
                 "attempt": "attempts", "outcome": "status", "reply": "receipt",
                 "error": "last_error", "reference": "receipt", "at": "delivered_at"},
    "deployment": {"contract": "id", "ruleset": "ruleset_id", "name": "name",
                   "version": "version", "by": "deployed_by", "at": "deployed_at"},
}


@dataclass
class StoreAudit:
    """What :func:`audit_store` checked and found (``findings``: ``location: message``)."""

    findings: list[str] = field(default_factory=list)
    ledger_text: str = ""
    inputs: int = 0
    instances: int = 0
    entries: int = 0
    outbox: int = 0
    service_records: int = 0
    versions: int = 0
    _seen: set[str] = field(default_factory=set, repr=False)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, location: str, message: str) -> None:
        text = f"{location}: {message}"
        if text not in self._seen:  # two checks may meet the same row
            self._seen.add(text)
            self.findings.append(text)

    def diff(self, want: Any, entry: Any, row: str, columns: Mapping[str, str | None]) -> None:
        """Report how ``want`` (made from ``row``) differs from ledger ``entry``; each
        record field is located at ``row.<columns[field]>``."""
        _diff(self, want, entry, _Locate(row, columns))


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


def _by(conn_factory: Any, table: Table, column: str, values: Sequence[Any]
        ) -> dict[Any, Any]:
    """Rows of ``table`` whose ``column`` is one of ``values`` (a few hundred at a time)."""
    out: dict[Any, Any] = {}
    wanted = sorted(set(values))
    with conn_factory() as conn:
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            for row in conn.execute(select(table).where(table.c[column].in_(part))).mappings():
                out[row[column]] = row
    return out


def _entries(ledger: Any, start: int, stop: int) -> dict[int, Any]:
    """Entries ``start <= index < stop`` that decode (the ledger audit names the others)."""
    from ledger_adapter.errors import LedgerError

    stop = min(stop, ledger.size())
    if start >= stop:
        return {}
    try:
        return {e.index: e for e in ledger.entries(start, stop)}
    except LedgerError:
        out = {}
        for i in range(start, stop):
            try:
                out[i] = ledger.entry(i)
            except LedgerError:
                pass
        return out


def audit_store(service: Any, ledger: Any | None, *, chunk: int = 1000,
                progress: Callable[[str], None] | None = None) -> StoreAudit:
    """Run checks (a)-(g) on ``service``'s store (``ledger``: its SqlLedger, or None)."""
    out = StoreAudit()
    say = progress or (lambda _msg: None)
    read = service.db.read

    # (a) the ledger itself
    if ledger is not None:
        say("auditing the ledger")
        report = ledger.audit(progress=lambda done, total: say(f"ledger: {done}/{total} entries"))
        out.ledger_text = report.text()
        for f in report.findings:
            out.add(f.location, f"{f.message} [{f.code}]")
        if report.findings_total > len(report.findings):
            out.add("ledger", f"... and {report.findings_total - len(report.findings)} more")

    # (b) input-log rows (and the outbox and approval rows they made) against their records
    cols = [T_INPUTS.c[n] for n in ("id", "instance_id", "seq", "kind", "body", "result",
                                    "state_hash", "at", "ledger_index")]
    for rows in _chunks(read, select(*cols), T_INPUTS.c.id, chunk):
        out.inputs += len(rows)
        logged = [r for r in rows if r["ledger_index"] is not None]
        if logged and ledger is None:
            out.add("inputs", "rows have ledger indexes but the store has no ledger")
            logged = []
        if logged and ledger is not None:
            _check_inputs(out, read, ledger, logged)
        say(f"inputs: {out.inputs} rows checked")

    if ledger is not None:
        # (c) delivery outcomes
        ocols = select(T_OUTBOX).where(T_OUTBOX.c.ledger_index.is_not(None))
        for rows in _chunks(read, ocols, T_OUTBOX.c.id, chunk):
            out.outbox += len(rows)
            _check_deliveries(out, read, ledger, rows)
        say(f"outbox: {out.outbox} delivery outcomes checked")
        # (d) ledger entries against the rows they record; (h), (i) the service's records
        from engine.audit_service import check_rows

        service_records = check_rows(out.add, out.diff)
        deployed = _check_entries(out, read, ledger, chunk, say, service_records)
        service_records.finish(read, ledger, chunk, _chunks)
        out.service_records = service_records.signed + len(service_records.admin)
        say(f"service records: {out.service_records} matched with their rows")
    else:
        deployed = None

    # (e) contract versions
    for rows in _chunks(read, select(T_VERSIONS), T_VERSIONS.c.deploy_seq, chunk):
        out.versions += len(rows)
        for r in rows:
            _check_version(out, r, deployed)

    # (f) replays and (g) document hashes
    icols = [T_INSTANCES.c.id, T_INSTANCES.c.document, T_INSTANCES.c.state_hash]
    for rows in _chunks(read, select(*icols), T_INSTANCES.c.id, chunk):
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


def _check_inputs(out: StoreAudit, read: Any, ledger: Any, logged: list[Any]) -> None:
    keys: list[str] = []
    ids: list[str] = []
    for r in logged:
        try:
            k, a = result_keys(r["result"])
        except (ValueError, KeyError, TypeError):
            continue  # reported when its records are built
        keys += k
        ids += a
    outbox = _by(read, T_OUTBOX, "key", keys) if keys else {}
    approvals = _by(read, T_APPROVALS, "id", ids) if ids else {}
    lo = min(r["ledger_index"] for r in logged)
    hi = max(r["ledger_index"] for r in logged) + 2 + (len(keys) + len(ids))
    entries = _entries(ledger, lo, hi)
    for r in logged:
        where = f"inputs[id={r['id']}]"
        try:
            want = input_records(r, outbox, approvals)
        except Exception as exc:
            out.add(where, f"the row does not make valid ledger records: {exc}")
            continue
        for offset, rec in enumerate(want):
            index = r["ledger_index"] + offset
            if isinstance(rec, MissingRow):
                out.add(rec.location, f"missing, but ledger entry {index} records it")
                continue
            entry = entries.get(index)
            if entry is None:
                out.add(f"{where}.ledger_index", f"ledger entry {index} ({rec.kind} record "
                        "of this input) does not exist")
                continue
            if offset == 0 or rec.kind == "migration":
                _diff(out, rec, entry, _Locate(where, _INPUT_COLUMN))
                continue
            columns = dict(_ROW_COLUMN[rec.kind])
            if rec.kind == "approval" and rec.get("decision") == "requested":
                columns.update(at="requested_at", decision=None)
            row_where = (f"outbox[key={rec.get('key')}]" if rec.kind == "action"
                         else f"approvals[id={rec.get('approval')}]")
            elsewhere = {name: f"{where}.{_INPUT_COLUMN.get(name, name)}"
                         for name, column in columns.items() if column is None}
            _diff(out, rec, entry, _Locate(row_where, columns, elsewhere))


@dataclass(frozen=True)
class _Locate:
    """Where a record field comes from: ``row.column``, or a location ``elsewhere``."""

    row: str
    columns: Mapping[str, str | None]
    elsewhere: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, name: str) -> str:
        if name in self.elsewhere:
            return self.elsewhere[name]
        return f"{self.row}.{self.columns.get(name) or name}"


def _diff(out: StoreAudit, want: Any, entry: Any, locate: _Locate) -> None:
    """Report how ``want`` (made from rows) differs from ledger ``entry``."""
    index = entry.index
    if entry.record == want:
        return
    if entry.record.kind != want.kind:
        out.add(locate.row,
                f"the rows make a {want.kind} record, but ledger entry {index} is a "
                f"{entry.record.kind} record")
        return
    have = dict(entry.record.fields)
    wrong: dict[str, list[str]] = {}
    for name, value in want.fields:
        if have.get(name) != value:
            wrong.setdefault(locate(name), []).append(name)
    for location, names in wrong.items():
        out.add(location, f"disagrees with ledger entry {index} "
                          f"({want.kind} field(s) {', '.join(names)})")


def _check_deliveries(out: StoreAudit, read: Any, ledger: Any, rows: list[Any]) -> None:
    failed = [r["id"] for r in rows if r["status"] != "delivered"]
    opened: dict[int, Any] = {}
    if failed:
        with read() as conn:
            i = T_INCIDENTS
            for oid, at in conn.execute(
                    select(i.c.outbox_id, func.max(i.c.created_at))
                    .where(i.c.outbox_id.in_(failed)).group_by(i.c.outbox_id)):
                opened[oid] = at
    lo = min(r["ledger_index"] for r in rows)
    hi = max(r["ledger_index"] for r in rows) + 1
    entries = _entries(ledger, lo, hi)
    for r in rows:
        where = f"outbox[key={r['key']}]"
        entry = entries.get(r["ledger_index"])
        if entry is None:
            out.add(f"{where}.ledger_index", f"ledger entry {r['ledger_index']} does not exist")
            continue
        if entry.kind != "delivery":
            out.add(f"{where}.ledger_index", f"ledger entry {entry.index} is a {entry.kind} "
                    "record, not this row's delivery outcome")
            continue
        if r["status"] in ("pending", "delivering"):
            # retried after an incident: the entry is the earlier failure
            row = {**r, "status": "incident"}
            if entry.record.get("outcome") != "failed":
                out.add(f"{where}.status", f"is {r['status']}, but ledger entry {entry.index} "
                        "says it was delivered")
                continue
        else:
            row = r
        try:
            want = delivery_record(row, opened.get(r["id"]) or r["delivered_at"])
        except Exception as exc:
            out.add(where, f"the row does not make a valid delivery record: {exc}")
            continue
        elsewhere = ({} if row["status"] == "delivered"
                     else {"at": f"incidents[outbox_id={r['id']}].created_at"})
        _diff(out, want, entry, _Locate(where, _ROW_COLUMN["delivery"], elsewhere))


def _check_entries(out: StoreAudit, read: Any, ledger: Any, chunk: int,
                   say: Callable[[str], None], service_records: Any = None) -> set[str]:
    """(d): every entry about an off-chain row finds it; returns the deployed contract ids."""
    deployed: set[str] = set()
    size = ledger.size()
    for start in range(0, size, chunk):
        entries = _entries(ledger, start, start + chunk)
        out.entries += len(entries)
        by_kind: dict[str, list[Any]] = {}
        for e in entries.values():
            by_kind.setdefault(e.kind, []).append(e)
        if service_records is not None:
            service_records.entries(read, by_kind)
        moves = by_kind.get("transition", []) + by_kind.get("migration", [])
        if moves:
            _check_moves(out, read, moves)
        for kind, table, column, name in (("action", T_OUTBOX, "key", "key"),
                                          ("delivery", T_OUTBOX, "key", "key"),
                                          ("approval", T_APPROVALS, "id", "approval"),
                                          ("approval_decision", T_APPROVALS, "id", "approval")):
            found = by_kind.get(kind, [])
            if not found:
                continue
            rows = _by(read, table, column, [e.record.get(name) for e in found])
            for e in found:
                key = e.record.get(name)
                row = rows.get(key)
                where = f"{table.name}[{column}={key}]"
                if row is None:
                    out.add(where, f"missing, but ledger entry {e.index} records it")
                elif row["instance_id"] != e.record.get("instance"):
                    out.add(f"{where}.instance_id", f"is {row['instance_id']}, but ledger "
                            f"entry {e.index} records it for {e.record.get('instance')}")
        found = by_kind.get("deployment", [])
        if found:
            rows = _by(read, T_VERSIONS, "id", [e.record.get("contract") for e in found])
            for e in found:
                cid = e.record.get("contract")
                deployed.add(cid)
                row = rows.get(cid)
                where = f"contract_versions[id={cid}]"
                if row is None:
                    out.add(where, f"missing, but ledger entry {e.index} records its "
                                   "deployment")
                    continue
                try:
                    want = deployment_record(row)
                except Exception as exc:
                    out.add(where, f"the row does not make a valid deployment record: {exc}")
                    continue
                _diff(out, want, e, _Locate(where, _ROW_COLUMN["deployment"]))
        say(f"ledger entries: {out.entries}/{size} matched with their rows")
    return deployed


def _check_moves(out: StoreAudit, read: Any, entries: list[Any]) -> None:
    """Transition and migration entries: their input rows exist and point back at them."""
    instances = sorted({e.record.get("instance") for e in entries})
    seqs = sorted({int(e.record.get("seq")) for e in entries})
    found: dict[tuple[str, int], Any] = {}
    with read() as conn:
        n = T_INPUTS
        for i in range(0, len(instances), 500):
            q = select(n.c.id, n.c.instance_id, n.c.seq, n.c.kind, n.c.ledger_index).where(
                n.c.instance_id.in_(instances[i:i + 500]), n.c.seq.in_(seqs))
            for row in conn.execute(q).mappings():
                found[(row["instance_id"], row["seq"])] = row
    for e in entries:
        iid, seq = e.record.get("instance"), int(e.record.get("seq"))
        where = f"inputs[instance_id={iid},seq={seq}]"
        row = found.get((iid, seq))
        if row is None:
            out.add(where, f"missing, but ledger entry {e.index} records it ({e.kind})")
            continue
        want = e.index if e.kind == "transition" else e.index - 1
        if row["ledger_index"] != want:
            out.add(f"{where}.ledger_index", f"is {row['ledger_index']}, but ledger entry "
                    f"{e.index} records this input's {e.kind}: rows were renumbered or "
                    "moved")


def _check_version(out: StoreAudit, row: Any, deployed: set[str] | None) -> None:
    cid = row["id"]
    where = f"contract_versions[id={cid}]"
    try:
        ir = json.loads(row["ir"])
        body = {k: v for k, v in ir.items() if k != "id"}
        digest = hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()
    except (ValueError, AttributeError) as exc:
        out.add(f"{where}.ir", f"is not the IR of a contract: {exc}")
    else:
        if digest != cid or ir.get("id") != cid:
            out.add(f"{where}.ir", f"hashes to {digest}, not to its contract id: the IR was "
                                   "changed after deployment")
    ruleset = hashlib.sha256(row["ruleset_ir"].encode("utf-8")).hexdigest()
    if ruleset != row["ruleset_id"]:
        out.add(f"{where}.ruleset_ir", f"hashes to {ruleset}, not to ruleset_id "
                                       f"{row['ruleset_id']}")
    if deployed is not None and cid not in deployed:
        out.add(where, "has no deployment record in the ledger (a version the log does not "
                       "know)")


# --- the command ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, metavar="URL",
                        help="the store: sqlite:///FILE or postgresql://...")
    parser.add_argument("--key-file", metavar="FILE",
                        help="the log's signer key (not needed to audit: a throwaway key is "
                             "used when omitted, nothing is signed)")
    parser.add_argument("--chunk", type=int, default=1000, metavar="N",
                        help="rows read per query (default 1000)")
    parser.add_argument("--calendar", action="append", default=[], metavar="NAME_OR_FILE",
                        help="a further calendar version instances may run on (a court's "
                             "own, or next year's notice they were moved to), as the engine "
                             "is configured (repeatable; the built-in cn is always loaded)")


class KeyFileError(Exception):
    """``--key-file`` / ``--ledger-key`` names no readable ledger signing key (exit status 2)."""


def _open_ledger(engine: Any, key_file: str | None) -> Any | None:
    from ledger_adapter.errors import LedgerError
    from ledger_adapter.note import Ed25519Signer
    from ledger_adapter.sql import SqlLedger

    if not inspect(engine).has_table("ledger_head"):
        return None
    with engine.connect() as conn:
        origin = conn.exec_driver_sql("SELECT origin FROM ledger_head").scalar()
    if origin is None:
        return None
    if key_file:
        try:
            signer = Ed25519Signer.from_skey(Path(key_file).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise KeyFileError(f"cannot read the key file {key_file}: "
                               f"{exc.strerror or exc}") from None
        except (UnicodeDecodeError, LedgerError, ValueError) as exc:
            raise KeyFileError(f"{key_file} is not a ledger signing key "
                         f"(PRIVATE+KEY+name+id+base64): {exc}") from None
    else:
        signer = Ed25519Signer.generate(origin)
    try:
        return SqlLedger(engine, origin, signer)
    except LedgerError as exc:  # a key of another log
        raise KeyFileError(f"{key_file}: {exc.message}") from None


def run(args: argparse.Namespace) -> int:
    from engine.runtime.service import EngineService

    started = time.monotonic()
    last = [0.0]

    def progress(message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            print(f"audit: {message}", file=sys.stderr, flush=True)

    from engine.runtime.db import HEAD_REVISION, normalize_url
    from engine.runtime.errors import EngineError

    if args.chunk < 1:
        print(f"jrule audit: --chunk must be at least 1, not {args.chunk}", file=sys.stderr)
        return 2
    from contracts_lib.calendar import CalendarError, load_calendar

    try:
        calendars = [load_calendar(c) for c in getattr(args, "calendar", [])]
    except CalendarError as exc:
        print(f"jrule audit: --calendar: {exc}", file=sys.stderr)
        return 2
    try:
        url = normalize_url(args.db)
        # an audit only reads: a missing SQLite file is a mistyped path, not a store to create
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
                and not Path(url.database).is_file():
            print(f"jrule audit: no store at {url.database} (no such file)", file=sys.stderr)
            return 2
        service = EngineService(args.db, mode="production", engine_lock=False, migrate=False,
                                calendars=calendars)
    except EngineError as exc:
        print(f"jrule audit: {exc.message}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"jrule audit: cannot open {args.db}: {exc}", file=sys.stderr)
        return 2
    revision = service.db.schema_revision()
    if revision != HEAD_REVISION:
        service.close()
        print(f"jrule audit: {args.db} is at schema revision {revision or 'none'}, not "
              f"{HEAD_REVISION}: bring it up to date first (jrule admin --db URL upgrade)",
              file=sys.stderr)
        return 2
    try:
        ledger = _open_ledger(service.db.engine, args.key_file)
        result = audit_store(service, ledger, chunk=args.chunk, progress=progress)
    except KeyFileError as exc:
        print(f"jrule audit: {exc}", file=sys.stderr)
        return 2
    finally:
        service.close()
    if ledger is None:
        print("no ledger in this store: checked replays and state hashes only")
    elif result.ledger_text:
        print(result.ledger_text, end="")
    print(f"checked {result.inputs} input rows and {result.instances} instances "
          f"in {time.monotonic() - started:.1f} s")
    if ledger is not None:
        print(f"matched {result.entries} ledger entries with their rows, "
              f"{result.outbox} delivery outcomes and {result.versions} contract versions "
              f"({result.service_records} signed-event and admin records)")
    if result.ok:
        print("no disagreement found")
        return 0
    print(f"{len(result.findings)} finding(s):")
    for f in result.findings:
        print(f"  {f}")
    return 1
