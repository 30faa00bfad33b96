"""``jrule verify RECEIPT [--key KEY]... [--witness KEY]... [--require-witnesses K]``.

Checks a receipt (a C2SP tlog-proof issued by the court's ledger) offline,
with nothing but the receipt and public keys, and says in plain words what
was proven or exactly what failed.  Exit status: 0 verified, 1 not verified,
2 a usage problem (unreadable file, malformed key).

``--key`` takes a log verifier key (``name+id+base64``, optionally followed by
``sizes=FROM-TO``) or a file listing such keys, one per line (the court's
published key list, retired keys included).  ``--witness`` takes a witness
verifier key (type 0x04) or a file of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ledger_adapter.cosign import CosignatureVerifier
from ledger_adapter.errors import FormatError
from ledger_adapter.keys import LogKey, parse_key_list, parse_log_key
from ledger_adapter.verify import verify_receipt

__all__ = ["HELP", "add_arguments", "run"]

HELP = "check a ledger receipt offline with the log's public keys"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("receipt", metavar="RECEIPT",
                        help="the receipt file (.tlog-proof), or - for standard input")
    parser.add_argument("--key", action="append", default=[], metavar="KEY",
                        help="a log public key (vkey [sizes=FROM-TO]) or a file of them; "
                             "repeatable")
    parser.add_argument("--witness", action="append", default=[], metavar="KEY",
                        help="a witness public key or a file of them; repeatable")
    parser.add_argument("--require-witnesses", type=int, default=0, metavar="K",
                        help="how many listed witnesses must have cosigned (default 0)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


class _UsageError(Exception):
    """A file given on the command line that cannot be used (exit status 2)."""


def _read_text(path: Path, what: str) -> str:
    """A key file's text, or a usage error naming the file and what is wrong with it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise _UsageError(f"cannot read {what} {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise _UsageError(f"{what} {path} is not a text file of keys "
                          f"(byte {e.start} is not UTF-8)") from e


def _lines(arg: str) -> list[str]:
    path = Path(arg)
    if "+" not in arg or path.is_file():
        text = _read_text(path, "witness key file")
        return [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    return [arg]


def _log_keys(args: list[str]) -> list[LogKey]:
    keys: list[LogKey] = []
    for arg in args:
        path = Path(arg)
        if "+" not in arg or path.is_file():
            try:
                keys.extend(parse_key_list(_read_text(path, "log key file")))
            except FormatError as e:
                raise _UsageError(f"log key file {path}: {e}") from e
        else:
            keys.append(parse_log_key(arg))
    return keys


def run(args: argparse.Namespace) -> int:
    try:
        data = (sys.stdin.buffer.read() if args.receipt == "-"
                else Path(args.receipt).read_bytes())
    except OSError as e:
        print(f"jrule verify: cannot read receipt {args.receipt}: {e.strerror or e}",
              file=sys.stderr)
        return 2
    try:
        keys = _log_keys(args.key)
        witnesses = [CosignatureVerifier.from_vkey(v) for a in args.witness for v in _lines(a)]
    except (_UsageError, FormatError) as e:
        print(f"jrule verify: {e}", file=sys.stderr)
        return 2
    if args.require_witnesses < 0:
        print("jrule verify: --require-witnesses must not be negative", file=sys.stderr)
        return 2
    report = verify_receipt(data, keys, witnesses, args.require_witnesses)
    if args.format == "json":
        json.dump(report.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        sys.stdout.write(report.text())
    return 0 if report.ok else 1
