"""``jrule witness``: run a witness that cosigns a court's ledger checkpoints.

Subcommands::

    jrule witness init STATE --name NAME [--key-file FILE]
        create a witness (state file and private key); prints its public key
    jrule witness add-log STATE ORIGIN VKEY...
        trust these log keys for the log ORIGIN (add the new key after a rotation)
    jrule witness cosign STATE REQUEST...
        handle add-checkpoint requests (files, or - for standard input); prints
        the cosignature lines; exit 1 if a request is refused
    jrule witness serve STATE [--listen HOST:PORT]
        serve POST /add-checkpoint and GET /<origin hash>/checkpoint over HTTP
    jrule witness show STATE
        the witness's public key and, per log, the last size it cosigned
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ledger_adapter.errors import LedgerError
from ledger_adapter.witness import Witness, WitnessError, serve

__all__ = ["HELP", "add_arguments", "run"]

HELP = "run a witness that checks and cosigns ledger checkpoints"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="witness_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("init", help="create a witness and its key")
    p.add_argument("state", metavar="STATE")
    p.add_argument("--name", required=True, help="the witness's name, e.g. witness.example/w1")
    p.add_argument("--key-file", help="where to write the private key (default STATE.key)")
    p = sub.add_parser("add-log", help="trust a log's public keys")
    p.add_argument("state", metavar="STATE")
    p.add_argument("origin", metavar="ORIGIN")
    p.add_argument("vkeys", nargs="+", metavar="VKEY")
    p = sub.add_parser("cosign", help="cosign add-checkpoint requests given as files")
    p.add_argument("state", metavar="STATE")
    p.add_argument("requests", nargs="+", metavar="REQUEST")
    p.add_argument("--key-file")
    p = sub.add_parser("serve", help="serve the witness over HTTP")
    p.add_argument("state", metavar="STATE")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.add_argument("--key-file")
    p = sub.add_parser("show", help="show the witness's key and logs")
    p.add_argument("state", metavar="STATE")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except WitnessError as e:
        if e.status >= 500:  # the witness's own files, not a refused checkpoint
            print(f"jrule witness: error: {e.message}", file=sys.stderr)
            return 2
        print(f"jrule witness: refused ({e.status}): {e.message}", file=sys.stderr)
        return 1
    except (LedgerError, OSError, ValueError) as e:
        print(f"jrule witness: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    cmd = args.witness_command
    if cmd == "init":
        w = Witness.create(args.state, args.name, args.key_file)
        print(w.vkey)
        return 0
    if cmd == "show":
        w = Witness.open(args.state)
        print(f"witness {w.vkey}")
        for origin, log in sorted(w.logs().items()):
            print(f"log {origin}: cosigned up to size {log['size']}; keys {', '.join(log['keys'])}")
        return 0
    if cmd == "add-log":
        w = Witness.open(args.state)
        w.add_log(args.origin, args.vkeys)
        return 0
    if cmd == "cosign":
        w = Witness.open(args.state, args.key_file)
        failed = False
        for name in args.requests:
            body = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            try:
                sys.stdout.write(w.add_checkpoint(body).decode())
            except WitnessError as e:
                print(f"jrule witness: {name}: refused ({e.status}): {e.message}",
                      file=sys.stderr)
                failed = True
        return 1 if failed else 0
    if cmd == "serve":
        w = Witness.open(args.state, args.key_file)
        host, _, port = args.listen.rpartition(":")
        server = serve(w, host or "127.0.0.1", int(port))
        print(f"witness {w.vkey} listening on http://{host}:{server.server_address[1]}/",
              file=sys.stderr)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return 0
    raise ValueError(f"unknown subcommand {cmd}")  # pragma: no cover
