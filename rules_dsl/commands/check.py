"""``jrule check FILES...``: every error and warning, exit 1 on any error."""

from __future__ import annotations

import argparse
import json
import sys

from rules_dsl.compiler import check_path
from rules_dsl.diagnostics import has_errors, render_all

__all__ = ["HELP", "add_arguments", "run"]

HELP = "report every error and warning in .jrule files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help=".jrule files to check")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people, json for editors and CI")
    parser.add_argument("--no-warnings", action="store_true", help="show errors only")


def run(args: argparse.Namespace) -> int:
    failed = False
    report: list[dict[str, object]] = []
    for path in args.files:
        result = check_path(path)
        diagnostics = [d for d in result.diagnostics
                       if not (args.no_warnings and d.severity == "warning")]
        failed = failed or has_errors(result.diagnostics)
        if args.format == "json":
            report.append({
                "file": path,
                "ok": not has_errors(result.diagnostics),
                "diagnostics": [
                    d.to_json() for d in sorted(diagnostics, key=lambda d: d.sort_key())
                ],
            })
        elif diagnostics:
            print(f"{path}:", file=sys.stdout)
            print(render_all(diagnostics, result.sources), file=sys.stdout)
        else:
            print(f"{path}: ok", file=sys.stdout)
    if args.format == "json":
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
        print()
    return 1 if failed else 0
