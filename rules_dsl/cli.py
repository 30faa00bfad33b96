"""The ``jrule`` command line.

Each subcommand lives in its own module exposing ``HELP``, ``add_arguments``
and ``run(args) -> int``; modules are imported only when their command runs,
so ``jrule check`` does not pay for what ``jrule serve`` needs.  User mistakes
end in a message and a non-zero status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

__all__ = ["main"]

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "admin": ("engine.api.admin_cli", "administer courts, users and organisations, roles, keys"),
    "audit": ("engine.audit", "check the whole store against the ledger and replays"),
    "check": ("rules_dsl.commands.check", "report every error and warning in .jrule files"),
    "compile": ("rules_dsl.commands.compile", "compile a .jrule file to its canonical IR"),
    "deploy": ("engine.testing.deploy_command",
               "test a rule set, then deploy it (refused if any test or property fails)"),
    "fmt": ("rules_dsl.commands.fmt", "format .jrule files in the one canonical layout"),
    "graph": ("rules_dsl.commands.graph", "draw a contract's state machine"),
    "period": ("contracts_lib.period_tool", "compute a legal period's last day"),
    "run": ("engine.demo", "the sandbox demo: examples deployed, cases on a virtual clock"),
    "serve": ("engine.api.serve", "run the engine as an HTTP service (SQLite in ./jrule-data)"),
    "simulate": ("engine.simulate", "run a contract on a timeline of events, without a database"),
    "test": ("engine.testing.command", "run a rule set's scenario tests and check its properties"),
    "verify": ("ledger_adapter.commands.verify", "check a ledger receipt offline"),
    "witness": ("ledger_adapter.commands.witness", "check and cosign ledger checkpoints"),
}


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> _Command:
    return cast(_Command, importlib.import_module(COMMANDS[name][0]))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="jrule", description="jrule: court rules compiled into deterministic contracts"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    for name, (_module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(p)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    command = _load(args.command)
    try:
        return command.run(args)
    except KeyboardInterrupt:
        print("jrule: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
