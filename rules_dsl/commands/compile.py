"""``jrule compile FILE [-o out.json]``: the canonical IR and its id."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rules_dsl.compiler import compile_path
from rules_dsl.diagnostics import render_all

__all__ = ["HELP", "add_arguments", "run"]

HELP = "compile a .jrule file to its canonical IR"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the .jrule file")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="write the canonical IR here (default: standard output)")
    parser.add_argument("--pretty", action="store_true",
                        help="indent the JSON for reading (not the canonical form)")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    result = compile_path(args.file)
    warnings = [d for d in result.check.diagnostics if d.severity == "warning"]
    if result.ir is None:
        print(render_all(result.check.diagnostics, result.check.sources), file=sys.stderr)
        return 1
    if warnings:
        print(render_all(warnings, result.check.sources), file=sys.stderr)
    data = result.ir.pretty().encode("utf-8") + b"\n" if args.pretty else result.ir.canonical
    if args.output:
        try:
            _write_atomically(Path(args.output), data)
        except OSError as exc:
            print(f"jrule compile: error: cannot write {args.output}: {exc.strerror}",
                  file=sys.stderr)
            return 2
        print(f"ir sha256:{result.ir.id}", file=sys.stderr)
        for name, cid in result.ir.contract_ids().items():
            print(f"  contract {name} sha256:{cid}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        print(f"\nir sha256:{result.ir.id}", file=sys.stderr)
    return 0
