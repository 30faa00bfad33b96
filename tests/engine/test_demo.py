"""`jrule run`, the README's main job: it must work from a fresh data directory."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

from engine.demo import run

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(data=str(tmp_path / "data"), examples=str(ROOT / "examples"),
                              days=40, lang="en")
    assert run(args, out, err) == 0, err.getvalue()
    text = out.getvalue()
    assert "file_enforcement_case delivered -> (2025)京0105执1号" in text
    assert "file_trial_case delivered -> (2025)京0105民初1号" in text
    assert "med-paid: 履行完毕" in text
    assert "fired" not in text  # every deadline fired on time
    # the party's notice of the automatic filing comes with a receipt that verifies
    assert "VERIFIED: this record is entry" in text
    assert "case_number=(2025)京0105执1号" in text
    proof = tmp_path / "data" / "sandbox" / "enforcement-filed.tlog-proof"
    keys = tmp_path / "data" / "sandbox" / "log-keys.txt"
    from rules_dsl.cli import main

    assert main(["verify", str(proof), "--key", str(keys)]) == 0
    # a second run starts again from nothing
    assert run(args, io.StringIO(), io.StringIO()) == 0


def test_demo_without_examples_says_so(tmp_path: Path) -> None:
    err = io.StringIO()
    args = argparse.Namespace(data=str(tmp_path), examples=str(tmp_path / "none"), days=1,
                              lang="en")
    assert run(args, io.StringIO(), err) == 2
    assert "no examples folder" in err.getvalue()


def test_demo_arguments_and_data_directory_mistakes(tmp_path: Path) -> None:
    from rules_dsl.cli import main

    afile = tmp_path / "a-file"
    afile.write_text("not a directory")
    base = ["run", "--examples", str(ROOT / "examples"), "--no-serve"]
    for extra, says in [(["--days", "-1"], "--days must not be negative"),
                        (["--port", "99999"], "--port must be from 1 to 65535"),
                        (["--serve-seconds", "-2"], "--serve-seconds must not be negative"),
                        (["--data", str(afile)], f"cannot make the sandbox directory {afile}/")]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main([*base, "--data", str(tmp_path / "d"), *extra]) == 2, extra
        assert f"jrule run: error: {says}" in err.getvalue(), err.getvalue()


def test_a_sandbox_in_use_is_not_deleted(tmp_path: Path) -> None:
    """A second `jrule run` on the same --data must not delete the store a first one serves."""
    from engine.runtime.db import open_database

    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    db = open_database(f"sqlite:///{sandbox / 'jrule.sqlite3'}")  # holds the engine lock
    try:
        err = io.StringIO()
        args = argparse.Namespace(data=str(tmp_path), examples=str(ROOT / "examples"), days=1,
                                  lang="en")
        assert run(args, io.StringIO(), err) == 2
        assert "another jrule engine" in err.getvalue() and "another --data" in err.getvalue()
        assert (sandbox / "jrule.sqlite3").exists()
    finally:
        db.close()
    assert run(args, io.StringIO(), io.StringIO()) == 0  # once it is free, it starts afresh
