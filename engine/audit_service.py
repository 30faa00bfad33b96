"""``jrule audit``, checks (h) and (i): the HTTP service's ledger records against their rows.

(h) ``signed_event`` records (``engine/api/signatures.py``): every
    ``event_signatures`` row's signature verifies with the organisation's
    registered key, its message is the event the input log holds at (instance,
    seq), and, if it has a ``ledger_index``, the record at that index equals the
    one recomputed from the row (:func:`check_signature_rows`, which ``jrule
    admin check-signatures`` runs too); every ``signed_event`` entry finds its
    row (same instance and seq, pointing back at the entry).
(i) ``admin`` records, matched with the rows they are about:

    - ``test_report``: every ``contract_versions`` row with a
      ``report_ledger_index`` equals the record at that index (rule set,
      ``report_hash``, ``reviewed_by``, ``deployed_at``), and its stored
      ``test_report`` hashes to ``report_hash``; every ``test_report`` entry is
      pointed at by a row;
    - ``create_court``, ``add_principal``, ``grant_role``/``revoke_role``,
      ``deactivate_principal``, ``issue_key``/``revoke_key``,
      ``register_org_key``/``revoke_org_key`` (``engine/api/admin.py``): the
      row each names exists and still makes the record's digest; the roles a
      principal holds are the ones its records granted and did not revoke; a
      revoked key or a deactivated principal is still so; and every row of
      ``courts``, ``principals``, ``principal_roles``, ``api_keys`` and
      ``org_keys`` has the record that created it;
    - ``retry_incident``/``resolve_incident`` (``engine/runtime/ledger.py``):
      the ``incidents`` row exists and makes the same record; every resolved
      incident has one.

The admin tables are small (people and keys, not cases): they are read whole.
Signed events and test reports are read in chunks, like the rest of the audit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select

from engine.runtime.ledger import incident_record, test_report_record
from engine.runtime.models import (
    T_COURTS,
    T_INCIDENTS,
    T_INPUTS,
    T_KEYS,
    T_ORG_KEYS,
    T_OUTBOX,
    T_PRINCIPALS,
    T_ROLES,
    T_SIGNATURES,
    T_VERSIONS,
)
from engine.runtime.results import canonical_json

__all__ = ["ServiceRecords", "check_rows", "check_signature_rows"]


Add = Callable[[str, str], None]
#: report how a record made from rows differs from a ledger entry: (want, entry, row, columns)
Diff = Callable[[Any, Any, str, dict[str, str]], None]

_SIGNATURE_COLUMN = {"instance": "instance_id", "seq": "seq", "org": "principal",
                     "key": "key_id", "message": "message", "signature": "signature",
                     "at": "created_at"}
_REPORT_COLUMN = {"subject": "ruleset_id", "digest": "report_hash", "by": "reviewed_by",
                  "at": "deployed_at"}
_INCIDENT_COLUMN = {"action": "resolution", "subject": "id", "digest": "resolution",
                    "by": "resolved_by", "at": "resolved_at"}
_INCIDENT_ACTIONS = frozenset({"retry_incident", "resolve_incident"})


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest(change: dict[str, Any]) -> str:
    """The ``digest`` of an admin record: SHA-256 of the change's canonical JSON."""
    return _sha(canonical_json(change))


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


@dataclass
class ServiceRecords:
    """Collects the service's entries while the audit streams over the ledger (check d),
    then matches them with their rows (:meth:`finish`)."""

    add: Add
    diff: Diff
    admin: list[Any] = field(default_factory=list)
    signed: int = 0

    def entries(self, read: Any, by_kind: dict[str, list[Any]]) -> None:
        """One chunk of ledger entries: signed events now, admin records for later."""
        found = by_kind.get("signed_event", [])
        if found:
            self.signed += len(found)
            _signed_entries(self.add, read, found)
        self.admin += by_kind.get("admin", [])

    def finish(self, read: Any, ledger: Any, chunk: int, chunks: Any) -> None:
        _admin_entries(self.add, read, self.admin)
        for rows in chunks(read, select(T_SIGNATURES), T_SIGNATURES.c.id, chunk):
            check_signature_rows(self.add, self.diff, read, ledger, rows)
        for rows in chunks(read, select(T_VERSIONS).where(
                T_VERSIONS.c.report_ledger_index.is_not(None)), T_VERSIONS.c.deploy_seq, chunk):
            _report_rows(self.add, self.diff, ledger, rows)


def check_rows(add: Add, diff: Diff) -> ServiceRecords:
    return ServiceRecords(add, diff)


def _entry(add: Add, ledger: Any, where: str, index: int, kind: str,
           column: str = "ledger_index") -> Any:
    from ledger_adapter.errors import LedgerError

    try:
        entry = ledger.entry(int(index))
    except (LedgerError, IndexError, ValueError):
        add(f"{where}.{column}", f"ledger entry {index} does not exist")
        return None
    if entry.kind != kind:
        add(f"{where}.{column}", f"ledger entry {index} is a {entry.kind} record, not "
                                     f"this row's {kind} record")
        return None
    return entry


# --- (h) signed events ---------------------------------------------------------------

def _signed_entries(add: Add, read: Any, entries: list[Any]) -> None:
    """Every ``signed_event`` entry finds its ``event_signatures`` row, pointing back."""
    s = T_SIGNATURES.c
    instances = sorted({e.record.get("instance") for e in entries})
    rows: dict[tuple[str, int], Any] = {}
    with read() as conn:
        for i in range(0, len(instances), 500):
            for r in conn.execute(select(s.id, s.instance_id, s.seq, s.ledger_index)
                                  .where(s.instance_id.in_(instances[i:i + 500]))):
                rows[(r.instance_id, r.seq)] = r
    for e in entries:
        iid, seq = e.record.get("instance"), int(e.record.get("seq"))
        row = rows.get((iid, seq))
        if row is None:
            add(f"event_signatures[instance_id={iid},seq={seq}]",
                f"missing, but ledger entry {e.index} records this signed event")
        elif row.ledger_index != e.index:
            add(f"event_signatures[id={row.id}].ledger_index",
                f"is {row.ledger_index}, but ledger entry {e.index} records this signed "
                "event: rows were renumbered or moved")


def check_signature_rows(add: Add, diff: Diff, read: Any, ledger: Any,
                         rows: list[Any]) -> None:
    """Check kept signatures (``event_signatures`` rows, as mappings): each verifies
    with its organisation's registered key over the stored message; the message is
    the event the input log holds at (instance, seq); and, with ``ledger`` and a
    ``ledger_index``, the ``signed_event`` record there is the one made from the row.

    The one check of kept signatures: ``jrule audit`` runs it chunk by chunk,
    ``jrule admin check-signatures`` (``audit_signatures``) on every row."""
    from engine.api.signatures import (
        message_is_logged_event,
        signature_verifies,
        signed_event_record,
    )

    if not rows:
        return
    k, n = T_ORG_KEYS.c, T_INPUTS.c
    wanted = {(r["instance_id"], r["seq"]) for r in rows}
    with read() as conn:
        keys = {(r.principal, r.key_id): r.public_key
                for r in conn.execute(select(k.principal, k.key_id, k.public_key))}
        bodies = {(r.instance_id, r.seq): r.body for r in conn.execute(
            select(n.instance_id, n.seq, n.body).where(
                n.instance_id.in_(sorted({iid for iid, _ in wanted})),
                n.seq.in_(sorted({seq for _, seq in wanted}))))}
    for r in rows:
        where = f"event_signatures[id={r['id']}]"
        if not signature_verifies(keys.get((r["principal"], r["key_id"])), r["signature"],
                                  r["message"]):
            add(f"{where}.signature", f"does not verify with {r['principal']}'s key "
                                      f"{r['key_id']}")
        if not message_is_logged_event(r["message"], r["instance_id"],
                                       bodies.get((r["instance_id"], r["seq"]))):
            add(f"{where}.message", f"is not the event logged at inputs"
                                    f"[{r['instance_id']}, seq {r['seq']}]")
        if ledger is None or r["ledger_index"] is None:
            continue
        entry = _entry(add, ledger, where, r["ledger_index"], "signed_event")
        if entry is None:
            continue
        try:
            want = signed_event_record(r["instance_id"], r["seq"], r["principal"], r["key_id"],
                                       r["message"], r["signature"], _utc(r["created_at"]))
        except Exception as exc:
            add(where, f"the row does not make a valid signed_event record: {exc}")
            continue
        diff(want, entry, where, _SIGNATURE_COLUMN)


# --- (i) test reports ---------------------------------------------------------------

def _report_rows(add: Add, diff: Diff, ledger: Any, rows: list[Any]) -> None:
    for r in rows:
        where = f"contract_versions[id={r['id']}]"
        if r["test_report"] is None or _sha(r["test_report"]) != r["report_hash"]:
            add(f"{where}.test_report", "does not hash to report_hash (the report the "
                                        "ledger records)")
        entry = _entry(add, ledger, where, r["report_ledger_index"], "admin",
                       "report_ledger_index")
        if entry is None:
            continue
        try:
            want = test_report_record(r["ruleset_id"], r["report_hash"] or "",
                                      r["reviewed_by"] or "", r["deployed_at"])
        except Exception as exc:
            add(where, f"the row does not make a valid test_report record: {exc}")
            continue
        diff(want, entry, where, _REPORT_COLUMN)


# --- (i) administration -----------------------------------------------------------------

def _read_all(read: Any, table: Table) -> list[Any]:
    with read() as conn:
        return list(conn.execute(select(table)).mappings())


def _role_of(digest: str) -> str | None:
    from engine.api.policy import ROLES

    for role in ROLES:
        if _digest({"role": role}) == digest:
            return role
    return None


def _roles_subsets() -> Iterator[list[str]]:
    from engine.api.policy import ROLES

    names = sorted(ROLES)
    for n in range(len(names) + 1):
        for combo in itertools.combinations(names, n):
            yield list(combo)


def _admin_entries(add: Add, read: Any, entries: list[Any]) -> None:
    """Every admin record matched with the rows it is about, and every row with its record."""
    courts = {r["code"]: r for r in _read_all(read, T_COURTS)}
    principals = {r["name"]: r for r in _read_all(read, T_PRINCIPALS)}
    roles = {(r["principal"], r["role"]): r for r in _read_all(read, T_ROLES)}
    key_rows = _read_all(read, T_KEYS)
    keys = {_digest({"key_id": r["key_id"]}): r for r in key_rows}  # revocations
    # issues: key id and secret hash (records made before the hash was covered: id only)
    issues = {**keys, **{_digest({"key_id": r["key_id"], "secret_hash": r["secret_hash"]}): r
                         for r in key_rows}}
    org_keys = {_digest({"key_id": r["key_id"], "public_key": r["public_key"]}): r
                for r in _read_all(read, T_ORG_KEYS)}
    org_ids = {_digest({"key_id": r["key_id"]}): r for r in org_keys.values()}

    recorded_courts: set[str] = set()
    added: set[str] = set()
    deactivated: set[str] = set()
    unmatched: set[str] = set()
    held: dict[tuple[str, str], int] = {}  # (principal, role) -> the entry granting it
    issued: set[str] = set()
    revoked: set[str] = set()
    registered: set[str] = set()
    org_revoked: set[str] = set()
    incidents: list[Any] = []
    reports: list[Any] = []
    for e in sorted(entries, key=lambda e: e.index):
        action, subject, digest = (e.record.get("action"), e.record.get("subject"),
                                   e.record.get("digest"))
        n = e.index
        if action == "create_court":
            recorded_courts.add(subject)
            row = courts.get(subject)
            if row is None:
                add(f"courts[code={subject}]", f"missing, but ledger entry {n} records its "
                                               "creation")
            elif _digest({"name": row["name"]}) != digest:
                add(f"courts[code={subject}].name", f"disagrees with ledger entry {n}")
        elif action == "add_principal":
            added.add(subject)
            row = principals.get(subject)
            if row is None:
                add(f"principals[name={subject}]", f"missing, but ledger entry {n} records "
                                                   "its creation")
                continue
            base = {"kind": row["kind"], "court": row["court"], "party_id": row["party_id"]}
            initial = next((s for s in _roles_subsets()
                            if _digest({**base, "roles": s}) == digest), None)
            if initial is None:
                add(f"principals[name={subject}].kind/court/party_id",
                    f"disagrees with ledger entry {n}")
                unmatched.add(subject)  # its first roles are unknown: not compared
                continue
            for first in initial:
                held[(subject, first)] = n
        elif action in ("grant_role", "revoke_role"):
            granted = _role_of(digest)
            if granted is None:
                add(f"ledger_entries[{n}]", f"{action} record of {subject} names no known "
                                            "role")
            elif action == "grant_role":
                held[(subject, granted)] = n
            else:
                held.pop((subject, granted), None)
        elif action == "deactivate_principal":
            deactivated.add(subject)
        elif action in ("issue_key", "revoke_key"):
            key = (issues if action == "issue_key" else keys).get(digest)
            if key is None:
                add(f"api_keys[principal={subject}]", f"missing the key ledger entry {n} "
                    f"records ({action}; or its key_id or secret_hash was changed)")
                continue
            if key["principal"] != subject:
                add(f"api_keys[key_id={key['key_id']}].principal",
                    f"is {key['principal']}, but ledger entry {n} records it for {subject}")
            (issued if action == "issue_key" else revoked).add(key["key_id"])
        elif action == "register_org_key":
            org = org_keys.get(digest)
            if org is None:
                add(f"org_keys[principal={subject}]", f"missing the key ledger entry {n} "
                    "registers (or its key_id or public_key was changed)")
                continue
            if org["principal"] != subject:
                add(f"org_keys[key_id={org['key_id']}].principal",
                    f"is {org['principal']}, but ledger entry {n} records it for {subject}")
            registered.add(org["key_id"])
        elif action == "revoke_org_key":
            org = org_ids.get(digest)
            if org is None:
                add(f"org_keys[principal={subject}]", f"missing the key ledger entry {n} "
                                                      "revokes")
                continue
            org_revoked.add(org["key_id"])
        elif action in _INCIDENT_ACTIONS:
            incidents.append(e)
        elif action == "test_report":
            reports.append(e)

    for code in courts:
        if code not in recorded_courts:
            add(f"courts[code={code}]", "has no create_court record on the ledger")
    for name, row in principals.items():
        if name not in added:
            add(f"principals[name={name}]", "has no add_principal record on the ledger")
        elif (name in deactivated) == bool(row["active"]):
            add(f"principals[name={name}].active",
                f"is {bool(row['active'])}, but the ledger records "
                f"{'its deactivation' if name in deactivated else 'no deactivation'}")
    for (name, role), n in held.items():
        if (name, role) not in roles and name in principals and name not in unmatched:
            add(f"principal_roles[principal={name},role={role}]",
                f"missing, but ledger entry {n} grants it (and no later record revokes it)")
    for (name, role) in roles:
        if (name, role) not in held and name not in unmatched:
            add(f"principal_roles[principal={name},role={role}]",
                "is not granted by the ledger's records")
    _key_rows(add, "api_keys", keys.values(), issued, revoked, "issue_key", "secret_hash")
    _key_rows(add, "org_keys", org_keys.values(), registered, org_revoked, "register_org_key",
              "public_key")
    _incidents(add, read, incidents)
    if reports:
        with read() as conn:
            pointed = set(conn.scalars(select(T_VERSIONS.c.report_ledger_index).distinct()))
        for e in reports:
            if e.index not in pointed:
                add(f"contract_versions[ruleset_id={e.record.get('subject')}]",
                    f"missing, or its report_ledger_index renumbered: ledger entry {e.index} "
                    "records its test report")


def _key_rows(add: Add, table: str, rows: Iterable[Any], made: Container[str],
              revoked: Container[str], record: str, secret: str) -> None:
    """Every row of a key table (``api_keys``, ``org_keys``) has the ``record`` that
    made it (a changed ``secret`` column makes another key) and is revoked exactly
    when the ledger records its revocation."""
    for row in rows:
        kid = row["key_id"]
        if kid not in made:
            add(f"{table}[key_id={kid}]", f"has no {record} record on the ledger (or its "
                                          f"{secret} was changed)")
        elif (kid in revoked) != (row["revoked_at"] is not None):
            add(f"{table}[key_id={kid}].revoked_at",
                f"is {row['revoked_at'] or 'empty'}, but the ledger records "
                f"{'its revocation' if kid in revoked else 'no revocation'}")


def _incident_id(subject: str) -> int | None:
    head = subject.split(" ", 1)[0]
    if not head.startswith("incident="):
        return None
    try:
        return int(head.removeprefix("incident="))
    except ValueError:
        return None


def _incidents(add: Add, read: Any, entries: list[Any]) -> None:
    """Incident resolutions against their ``incidents`` rows (and every resolved row)."""
    i, t = T_INCIDENTS.c, T_OUTBOX.c
    with read() as conn:
        rows = {r["id"]: r for r in conn.execute(
            select(T_INCIDENTS).where(i.status == "resolved")).mappings()}
        wanted = sorted({r["outbox_id"] for r in rows.values() if r["outbox_id"] is not None})
        keys = {r.id: r.key for r in conn.execute(
            select(t.id, t.key).where(t.id.in_(wanted)))} if wanted else {}
    recorded: set[int] = set()
    for e in entries:
        iid = _incident_id(str(e.record.get("subject")))
        if iid is None:
            add(f"ledger_entries[{e.index}]", "an incident record that names no incident")
            continue
        recorded.add(iid)
        where = f"incidents[id={iid}]"
        row = rows.get(iid)
        if row is None:
            add(where, f"missing or not resolved, but ledger entry {e.index} records its "
                       "resolution")
            continue
        try:
            want = incident_record(row, keys.get(row["outbox_id"]))
        except Exception as exc:
            add(where, f"the row does not make a valid incident record: {exc}")
            continue
        if want != e.record:
            have = dict(e.record.fields)
            wrong = sorted({_INCIDENT_COLUMN.get(name, name) for name, value in want.fields
                            if have.get(name) != value})
            if "id" in wrong and row["outbox_id"] is not None:
                wrong[wrong.index("id")] = "outbox_id"
            add(f"{where}.{'/'.join(wrong)}", f"disagrees with ledger entry {e.index}")
    for iid in rows:
        if iid not in recorded:
            add(f"incidents[id={iid}]", "is resolved, but the ledger has no record of who "
                                        "resolved it")
