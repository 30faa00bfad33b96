"""``jrule test FILE...``: scenario tests, properties, determinism and coverage.

Exit status 0 when everything passes, 1 when a test or property fails, 2 when
the rules or tests do not check (the diagnostics are printed) or an option is
wrong.  ``--against-history DB`` instead replays the running instances stored
in a runtime database under the rule set and lists those whose outcome changes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from contracts_lib.calendar import CalendarError, load_calendar
from engine.testing.report import report_hash, to_junit, to_text
from engine.testing.runner import RunOptions, run_suite
from engine.testing.target import LoadError, load_targets

__all__ = ["HELP", "add_arguments", "run"]

HELP = "run a rule set's scenario tests and check its properties"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="NAME.jrule (its NAME.test.jrule is read too) or NAME.test.jrule")
    parser.add_argument("--seed", type=int, help="re-run exactly (printed by every run)")
    parser.add_argument("--examples", type=int, default=300,
                        help="generated timelines per property (default 300)")
    parser.add_argument("--max-lines", type=int, default=10,
                        help="longest generated timeline, in lines (default 10)")
    parser.add_argument("--explore", action="store_true",
                        help="bounded exhaustive exploration instead of generated timelines")
    parser.add_argument("--depth", type=int, default=5, help="steps explored (default 5)")
    parser.add_argument("--max-states", type=int, default=20_000,
                        help="stop exploring after this many distinct states")
    parser.add_argument("--calendar", default="cn", help="calendar id or file (default cn)")
    parser.add_argument("--format", choices=("text", "json", "junit"), default="text")
    parser.add_argument("--output", metavar="PATH", help="write the report here, not stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--against-history", metavar="DATABASE_URL",
                        help="replay the running instances stored there under this rule set "
                             "and list every instance whose outcome would change")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    for name, value in (("--examples", args.examples), ("--depth", args.depth),
                        ("--max-lines", args.max_lines), ("--max-states", args.max_states)):
        if value < 1:
            err.write(f"jrule test: error: {name} must be at least 1\n")
            return 2
    try:
        calendar = load_calendar(args.calendar)
    except CalendarError as exc:
        err.write(f"jrule test: error: {exc}\n")
        return 2
    if args.against_history:
        from engine.testing.history import run_against_history

        return run_against_history(args.files, args.against_history, args.format, out, err)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    options = RunOptions(seed=seed, examples=args.examples, max_lines=args.max_lines,
                         explore=args.explore, depth=args.depth, max_states=args.max_states)

    def progress(text: str) -> None:
        if not args.quiet:
            err.write(f"[jrule test] {text}\n")
            err.flush()

    progress(f"seed {seed}")
    reports = []
    for path in args.files:
        if not Path(path).is_file():
            err.write(f"jrule test: error: no file {path}\n")
            return 2
        try:
            targets, ir, files = load_targets(path)
        except LoadError as exc:
            err.write(f"{path}: the rules or their tests have errors:\n{exc.report}\n")
            return 2
        report = run_suite(targets, ir.id, [Path(f).name for f in files], calendar, options,
                           progress)
        reports.append(report)
    passed = all(r["passed"] for r in reports)
    if args.format == "json":
        text = json.dumps([{**r, "hash": report_hash(r)} for r in reports], ensure_ascii=False,
                          indent=2) + "\n"
    elif args.format == "junit":
        text = to_junit(reports)
    else:
        text = "".join(f"== {', '.join(r['files'])}\n{to_text(r)}report "
                       f"{report_hash(r)}\n" for r in reports)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        out.write(text)
    return 0 if passed else 1
