"""``jrule graph FILE``: draw a contract's state machine for a reviewer.

Mermaid (paste into a Markdown file or https://mermaid.live), Graphviz DOT, or
SVG through Graphviz's ``dot`` program when it is installed.  Exit status: 0
drawn, 1 the file has errors (printed to stderr) or drawing failed, 2 a usage
mistake (unknown contract, SVG without Graphviz).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from rules_dsl.compiler import compile_path
from rules_dsl.diagnostics import has_errors, render_all
from rules_dsl.graph import to_dot_all, to_mermaid_all

__all__ = ["HELP", "add_arguments", "run"]

HELP = "draw a contract's state machine"

FORMATS = ("mermaid", "dot", "svg")
_SUFFIXES = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot",
             ".svg": "svg"}
_NO_DOT = ("--format svg needs Graphviz (the `dot` program); install it "
           "(apt-get install graphviz) or use --format dot")
_DOT_TIMEOUT = 120


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help=".jrule file to draw")
    parser.add_argument("--contract", metavar="NAME",
                        help="draw only this contract (default: every contract in the file)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="mermaid (default, or guessed from -o's suffix), dot, or svg "
                        "(needs Graphviz)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="write here instead of standard output")


def _error(message: str) -> None:
    print(f"jrule graph: error: {message}", file=sys.stderr)


def _format(args: argparse.Namespace) -> str:
    if args.format is not None:
        return str(args.format)
    if args.output:
        return _SUFFIXES.get(Path(args.output).suffix.lower(), "mermaid")
    return "mermaid"


def _svg(dot_text: str, dot_program: str) -> bytes | str:
    """SVG bytes, or an error message."""
    try:
        done = subprocess.run([dot_program, "-Tsvg"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=_DOT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"`dot` took more than {_DOT_TIMEOUT} seconds"
    except OSError as exc:
        return f"cannot run `{dot_program}`: {exc.strerror or exc}"
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()
        return f"`dot` failed (exit {done.returncode})" + (f": {detail}" if detail else "")
    return done.stdout


def _write(data: bytes, output: str | None) -> str | None:
    """Write the bytes to OUT or standard output; an error message on failure."""
    if output is None:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a text-only stream stood in for stdout
            sys.stdout.write(data.decode("utf-8"))
        else:
            sys.stdout.flush()
            buffer.write(data)
            buffer.flush()
        return None
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        return f"cannot write {output}: {exc.strerror or exc}"
    return None


def _run(args: argparse.Namespace) -> int:
    fmt = _format(args)
    dot_program = None
    if fmt == "svg":
        dot_program = shutil.which("dot")
        if dot_program is None:
            _error(_NO_DOT)
            return 2
    result = compile_path(args.file)
    if result.ir is None or has_errors(result.check.diagnostics):
        print(render_all(result.check.diagnostics, result.check.sources), file=sys.stderr)
        return 1
    contracts: list[Any] = list(result.ir.to_data().get("contracts") or ())
    names = [str(c.get("name")) for c in contracts]
    if not contracts:
        _error(f"{args.file} has no contract to draw")
        return 1
    if args.contract is not None:
        contracts = [c for c in contracts if c.get("name") == args.contract]
        if not contracts:
            _error(f"no contract named `{args.contract}` in {args.file}; "
                   f"available: {', '.join(names)}")
            return 2
    if fmt == "mermaid":
        data = to_mermaid_all(contracts).encode("utf-8")
    else:
        dot_text = to_dot_all(contracts)
        data = dot_text.encode("utf-8")
        if dot_program is not None:
            svg = _svg(dot_text, dot_program)
            if isinstance(svg, str):
                _error(svg)
                return 1
            data = svg
    problem = _write(data, args.output)
    if problem is not None:
        _error(problem)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as exc:  # no traceback for the user, ever
        _error(f"internal error while drawing ({type(exc).__name__}: {exc}); "
               "please report it with the .jrule file")
        return 1
