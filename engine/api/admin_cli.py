"""``jrule admin``: courts, principals, roles and API keys from the command line.

Works on the store the service uses (same ``--config``/``--data``/``--db`` and
``JRULE_*`` settings), also while servers run; every change is recorded on
the ledger as an ``admin`` record.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any, TextIO

__all__ = ["HELP", "add_arguments", "run"]

HELP = "administer courts, users and organisations, roles and API keys"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="TOML configuration file")
    parser.add_argument("--data", default=None, help="data directory (default jrule-data)")
    parser.add_argument("--db", default=None, help="database URL")
    parser.add_argument("--by", default=None, help="who is acting (default cli:$USER)")
    sub = parser.add_subparsers(dest="admin_command", metavar="ACTION")
    p = sub.add_parser("court", help="create a court")
    p.add_argument("code")
    p.add_argument("name")
    p = sub.add_parser("user", help="add a user or organisation (prints its first API key)")
    p.add_argument("name")
    p.add_argument("--role", action="append", default=[], required=True,
                   help="a role (repeat for several)")
    p.add_argument("--court", default=None, help="its court (omit: every court)")
    p.add_argument("--party", default=None, help="party id named in instances' parties")
    p.add_argument("--org", action="store_true", help="an external organisation")
    p = sub.add_parser("key", help="issue another API key for a principal")
    p.add_argument("name")
    p = sub.add_parser("revoke-key", help="revoke an API key by its key id")
    p.add_argument("key_id")
    p = sub.add_parser("grant", help="grant a role")
    p.add_argument("name")
    p.add_argument("role")
    p = sub.add_parser("revoke", help="revoke a role")
    p.add_argument("name")
    p.add_argument("role")
    p = sub.add_parser("org-key", help="register an organisation's Ed25519 public key")
    p.add_argument("name")
    p.add_argument("public_key", help="base64 of the 32-byte key, or a PEM file path")
    p = sub.add_parser("revoke-org-key", help="revoke an organisation's signing key")
    p.add_argument("key_id")
    sub.add_parser("list", help="list courts and principals (JSON)")
    sub.add_parser("upgrade", help="bring the database schema to the newest Alembic revision")
    sub.add_parser("check-signatures",
                   help="check every kept event signature against its key, event and ledger")
    p = sub.add_parser("ledger-key", help="make a ledger signing key file (production)")
    p.add_argument("file")
    p.add_argument("--origin", default=None, help="the log's origin (ledger_origin)")
    p = sub.add_parser("rotate-ledger-key",
                       help="sign the log with a new key from now on (a key_rotation entry; "
                            "the boundary checkpoint is signed by both keys)")
    p.add_argument("new_key_file", metavar="NEW_KEY_FILE",
                   help="made with `jrule admin ledger-key NEW_KEY_FILE --origin ORIGIN`")


def _public_key(text: str) -> str:
    import base64
    from pathlib import Path

    path = Path(text)
    if path.is_file():
        from cryptography.hazmat.primitives import serialization

        from engine.runtime.webhook import load_public_key

        raw = load_public_key(path).public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")
    return text


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from engine.api.config import load_config
    from engine.runtime.errors import EngineError
    from ledger_adapter.errors import LedgerError

    command = getattr(args, "admin_command", None)
    if command is None:
        err.write("jrule admin: say what to do (jrule admin --help)\n")
        return 2
    try:
        config = load_config(args.config, data_dir=args.data, database_url=args.db)
        if command == "ledger-key":
            return _ledger_key(args, config, out, err)
        if command == "upgrade":
            from engine.runtime.db import HEAD_REVISION, upgrade

            upgrade(config.url)
            out.write(f"database schema at revision {HEAD_REVISION}\n")
            return 0
        admin, db = _open(config)
        try:
            if command == "check-signatures":
                from engine.api.signatures import audit_signatures

                findings = audit_signatures(db, admin.ledger)
                for f in findings:
                    out.write(f"{f}\n")
                out.write(f"{len(findings)} disagreement(s)\n" if findings
                          else "every kept signature agrees with its key, event and ledger\n")
                return 1 if findings else 0
            if command == "rotate-ledger-key":
                return _rotate_ledger_key(args, admin, out, err)
            return _dispatch(command, args, admin, out)
        finally:
            db.close()
    except EngineError as exc:
        err.write(f"jrule admin: error: {exc.message}\n")
        return 1
    except LedgerError as exc:  # e.g. ledger_key is not (or no longer) the log's key
        err.write(f"jrule admin: error: the ledger refused: {exc.message}\n")
        return 1


def _ledger_key(args: argparse.Namespace, config: Any, out: TextIO, err: TextIO) -> int:
    import os

    from ledger_adapter.note import Ed25519Signer, generate_skey

    origin = args.origin or config.ledger_origin
    try:
        fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        err.write(f"jrule admin: error: {args.file} exists; never overwrite a ledger key\n")
        return 1
    skey = generate_skey(origin)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(skey + "\n")
    out.write(f"ledger signing key written to {args.file}\npublic key (publish it): "
              f"{Ed25519Signer.from_skey(skey).vkey}\n")
    return 0


def _rotate_ledger_key(args: argparse.Namespace, admin: Any, out: TextIO, err: TextIO) -> int:
    from pathlib import Path

    from ledger_adapter.errors import LedgerError
    from ledger_adapter.keys import format_key_list
    from ledger_adapter.note import Ed25519Signer

    try:
        new = Ed25519Signer.from_skey(
            Path(args.new_key_file).read_text(encoding="utf-8").strip())
    except OSError as exc:
        err.write(f"jrule admin: error: cannot read {args.new_key_file}: "
                  f"{exc.strerror or exc}\n")
        return 1
    except (UnicodeDecodeError, LedgerError, ValueError) as exc:
        err.write(f"jrule admin: error: {args.new_key_file} is not a ledger signing key: "
                  f"{exc}\n")
        return 1
    try:
        entry = admin.ledger.rotate_key(new)
    except LedgerError as exc:
        err.write(f"jrule admin: error: the ledger refused the rotation: {exc.message}\n")
        return 1
    out.write(f"the log is signed by {new.vkey} from tree size {entry.index + 1} "
              f"(key_rotation at entry {entry.index}).\nNow set ledger_key (JRULE_LEDGER_KEY) "
              f"to {args.new_key_file} on every server and restart them one by one; keep the "
              "old key file offline.\nThe key list to publish:\n"
              f"{format_key_list(admin.ledger.log_keys())}")
    return 0


def _open(config: Any) -> tuple[Any, Any]:
    from engine.api.admin import Administration
    from engine.api.runtime import load_ledger_signer
    from engine.runtime.db import open_database
    from ledger_adapter.sql import SqlLedger

    if not config.production:
        from pathlib import Path

        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    signer = load_ledger_signer(config)
    db = open_database(config.url, engine_lock=False)
    try:
        ledger = SqlLedger(db.engine, config.ledger_origin, signer)
        ledger.initialize()
    except BaseException:
        db.close()
        raise
    return Administration(db, ledger), db


def _dispatch(command: str, args: argparse.Namespace, admin: Any, out: TextIO) -> int:
    by = args.by or f"cli:{getpass.getuser()}"
    result: Any
    if command == "court":
        result = admin.create_court(args.code, args.name, by)
    elif command == "user":
        result = admin.add_principal(args.name, "org" if args.org else "user", args.court,
                                     args.role, by, args.party)
        key, _ = admin.issue_key(args.name, by)
        out.write(f"API key for {args.name} (shown only now):\n{key}\n")
    elif command == "key":
        key, result = admin.issue_key(args.name, by)
        out.write(f"API key for {args.name} (shown only now):\n{key}\n")
    elif command == "revoke-key":
        result = admin.revoke_key(args.key_id, by)
    elif command == "grant":
        result = admin.grant(args.name, args.role, by)
    elif command == "revoke":
        result = admin.revoke(args.name, args.role, by)
    elif command == "org-key":
        result = admin.register_org_key(args.name, _public_key(args.public_key), by)
    elif command == "revoke-org-key":
        result = admin.revoke_org_key(args.key_id, by)
    else:
        result = admin.listing()
    out.write(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
    return 0
