"""``jrule fmt [--check] FILE...``: rewrite .jrule files in the canonical layout.

Exit status: 0 when every file is (now) canonical; 1 when a file has a syntax
error or, with ``--check``, would change; 2 when a file cannot be read or
written (checked last, so it wins).  ``-`` reads standard input and writes the
result to standard output.  A file is only rewritten when its text changes,
and then atomically (temporary file + ``os.replace``), so a reader never sees
half a file.  Before anything is written the result is parsed again and must
give the same tree and the same comments; otherwise nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rules_dsl.diagnostics import Diagnostic, has_errors, render_all
from rules_dsl.fmt import format_source
from rules_dsl.parse import decode_source
from rules_dsl.syntax import parse_source

__all__ = ["HELP", "add_arguments", "run"]

HELP = "format .jrule files in the one canonical layout"

_STDIN = "-"
_STDIN_NAME = "<stdin>"

_OK, _FAILED, _BROKEN = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE",
        help="the .jrule files to format; - reads standard input and writes standard output",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="write nothing; list the files that would change and exit 1 if there are any",
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What formatting one text produced: the new text, or why there is none."""

    formatted: str | None
    diagnostics: tuple[Diagnostic, ...] = ()
    internal_error: str | None = None


def _format(text: str, name: str) -> _Outcome:
    """Format and prove the result means the same; never raises."""
    source, diagnostics = parse_source(text, name)
    if source is None or has_errors(diagnostics):
        return _Outcome(None, diagnostics)
    try:
        formatted = format_source(source)
    except Exception as exc:  # a formatter bug must not cost the other files
        return _Outcome(None, internal_error=f"{type(exc).__name__}: {exc}")
    again, again_diagnostics = parse_source(formatted, name)
    if again is None or has_errors(again_diagnostics) or again != source:
        return _Outcome(None, internal_error="the formatted text would not mean the same")
    if sorted(c.text.rstrip() for c in again.comments) != sorted(
        c.text.rstrip() for c in source.comments
    ):
        return _Outcome(None, internal_error="the formatted text would lose a comment")
    return _Outcome(formatted)


def _write_out(text: str) -> None:
    """Standard output as UTF-8 whatever the locale says."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
    else:
        sys.stdout.flush()
        buffer.write(text.encode("utf-8", "surrogateescape"))
    sys.stdout.flush()


def _error(path: str, reason: str) -> None:
    print(f"jrule fmt: error: {path}: {reason}", file=sys.stderr)


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it over ``path``."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Run:
    def __init__(self, check: bool) -> None:
        self.check = check
        self.status = _OK

    def _fail(self, status: int) -> None:
        self.status = max(self.status, status)

    def _outcome(self, data: bytes, name: str, shown: str) -> tuple[str, str] | None:
        """Decode and format; report problems.  Returns (original, formatted)."""
        text, problem = decode_source(data, name)
        if text is None:
            assert problem is not None
            print(render_all((problem,), {}), file=sys.stderr)
            self._fail(_FAILED)
            return None
        outcome = _format(text, name)
        if outcome.internal_error is not None:
            _error(shown, f"internal error, left unchanged: {outcome.internal_error}")
            self._fail(_BROKEN)
            return None
        if outcome.formatted is None:
            print(render_all(outcome.diagnostics, {name: text}), file=sys.stderr)
            self._fail(_FAILED)
            return None
        return text, outcome.formatted

    def stdin(self) -> None:
        try:
            data = sys.stdin.buffer.read()
        except OSError as exc:
            _error(_STDIN, exc.strerror or str(exc))
            self._fail(_BROKEN)
            return
        result = self._outcome(data, _STDIN_NAME, _STDIN)
        if result is None:
            return
        formatted = result[1]
        if self.check:
            if formatted.encode("utf-8") != data:
                _write_out(_STDIN + "\n")
                self._fail(_FAILED)
        else:
            _write_out(formatted)

    def file(self, name: str) -> None:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            _error(name, exc.strerror or str(exc))
            self._fail(_BROKEN)
            return
        result = self._outcome(data, name, name)
        if result is None:
            return
        encoded = result[1].encode("utf-8")
        if encoded == data:
            return
        if self.check:
            _write_out(name + "\n")
            self._fail(_FAILED)
            return
        try:
            _replace_atomically(path, encoded)
        except OSError as exc:
            _error(name, f"cannot write: {exc.strerror or exc}")
            self._fail(_BROKEN)


def run(args: argparse.Namespace) -> int:
    state = _Run(check=bool(args.check))
    for name in args.files:
        if name == _STDIN:
            state.stdin()
        else:
            state.file(name)
    return state.status
