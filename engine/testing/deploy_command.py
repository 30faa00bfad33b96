"""``jrule deploy FILE --db URL --by NAME --reviewer NAME``: test, then deploy.

The rule set's scenario tests and properties (``NAME.test.jrule`` beside it)
run first with the gate's fixed seed; any failure refuses the deployment and
prints the report.  A pass stores the version with the report, its hash and
the reviewer, and logs them on the store's ledger (``--ledger-key``: the log's
signing key, needed when the store has a ledger).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["HELP", "add_arguments", "run"]

HELP = "test a rule set, then deploy it (refused if any test or property fails)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the .jrule rule set")
    parser.add_argument("--db", required=True, metavar="URL", help="the runtime database")
    parser.add_argument("--by", required=True, help="who deploys")
    parser.add_argument("--reviewer", required=True, help="who reviewed and approved it")
    parser.add_argument("--examples", type=int, default=200,
                        help="generated timelines per property (default 200)")
    parser.add_argument("--ledger-key", metavar="FILE",
                        help="the ledger's signing key (when the store has a ledger)")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import inspect

    from engine.audit import KeyFileError, _open_ledger
    from engine.runtime.errors import DeployRefused, EngineError
    from engine.runtime.service import EngineService
    from engine.testing.gate import make_gate
    from ledger_adapter.errors import LedgerError
    from rules_dsl.compiler import tests_file_of

    path = Path(args.file)
    if not path.is_file():
        print(f"jrule deploy: error: no file {path}", file=sys.stderr)
        return 2
    tests_path = tests_file_of(path)
    tests = tests_path.read_bytes() if tests_path is not None else None
    try:
        service = EngineService(args.db, engine_lock=False,
                                deploy_gate=make_gate(examples=args.examples))
    except EngineError as exc:
        print(f"jrule deploy: error: {exc.message}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"jrule deploy: cannot open {args.db}: {exc}", file=sys.stderr)
        return 2
    try:
        if inspect(service.db.engine).has_table("ledger_head"):
            if not args.ledger_key:
                print("jrule deploy: error: this store has a ledger; give --ledger-key",
                      file=sys.stderr)
                return 2
            service.ledger = _open_ledger(service.db.engine, args.ledger_key)
        ids = service.deploy(path.read_bytes(), path.name, args.by, tests=tests,
                             reviewer=args.reviewer)
        latest = [v for v in service.versions() if v.id in ids]
    except DeployRefused as exc:
        print(f"jrule deploy: refused: {exc}", file=sys.stderr)
        return 1
    except KeyFileError as exc:
        print(f"jrule deploy: error: {exc}", file=sys.stderr)
        return 2
    except LedgerError as exc:  # e.g. a key the log does not (or no longer) accept
        print(f"jrule deploy: error: the ledger refused the deployment: {exc.message}",
              file=sys.stderr)
        return 2
    finally:
        service.close()
    for v in latest:
        print(f"deployed {v.name} {v.version} as {v.id} (tests report {v.report_hash})")
    return 0
