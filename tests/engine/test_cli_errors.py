"""``jrule simulate`` on the shipped example, and bad input to the commands that touch files
and stores: every mistake ends in one clear line and a non-zero status, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runtime.db import open_database
from engine.runtime.errors import StoreUnavailable
from rules_dsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "mediation_agreement.jrule")
TERMS = str(ROOT / "examples" / "timelines" / "mediation_terms.json")
EVENTS = str(ROOT / "examples" / "timelines" / "mediation_events.json")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- jrule simulate on the README's example ------------------------------------------------


def test_simulate_prints_states_deadlines_and_actions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["simulate", EXAMPLE, "--terms", TERMS, "--events", EVENTS,
                           "--lang", "en"], capsys)
    assert code == 0, err
    # how each deadline was computed: start, period, holiday extension, calendar version
    assert ("30 days from 2025-09-01 (start day not counted) end on 2025-10-01, a rest day "
            "(国庆节、中秋节 National Day and Mid-Autumn Festival), so the period ends on the "
            "next working day, 2025-10-09 (calendar cn@") in out
    assert "Deadline '到期提醒' fell due at 2025-09-26 00:00 Asia/Shanghai" in out
    assert "Triggered remind(party=义务人, due=2025-09-30, amount=3000.00)" in out
    assert "REFUSED role_not_allowed" in out  # the last entry is sent by the wrong party
    assert "== final state: 履行中" in out and "已付 = 4000.00" in out


def test_simulate_json_is_one_record_per_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["simulate", EXAMPLE, "--terms", TERMS, "--events", EVENTS,
                         "--format", "json"], capsys)
    assert code == 0
    records = json.loads(out)
    steps = [(r["input"], [e.get("action") for e in r.get("effects", [])]) for r in records[:-1]]
    assert steps[0] == ("create", [])
    assert ("time passes", ["remind"]) in steps
    assert records[-2]["refused"].startswith("role_not_allowed:")
    assert records[-1]["final"]["vars"][0] == ["已付", "4000.00"]
    # deterministic: the same inputs print the same bytes
    assert _run(["simulate", EXAMPLE, "--terms", TERMS, "--events", EVENTS,
                 "--format", "json"], capsys)[1] == out


@pytest.mark.parametrize(("terms", "events", "message"), [
    ("{bad", "[]", "terms file T is not JSON: line 1, column 2"),
    ("{}", "{bad", "timeline file E is not JSON: line 1, column 2"),
    ("[1]", '[{"at": "2025-09-05T10:00:00Z"}]',
     "the terms were refused: terms must be a JSON object"),
    ("{}", "{}", "the timeline must be a JSON list of entries"),
    ("{}", "[1, 2]", "timeline entry 0: each entry is a JSON object"),
    ("{}", '[{"at": "soon"}]', "entry 0: 'soon' is not an ISO 8601 date and time"),
    ("{}", '[{"at": "2025-09-05T10:00:00"}]', "has no time zone offset"),
])
def test_simulate_bad_files_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             terms: str, events: str, message: str) -> None:
    t, e = tmp_path / "T", tmp_path / "E"
    t.write_text(terms)
    e.write_text(events)
    code, _, err = _run(["simulate", EXAMPLE, "--terms", str(t), "--events", str(e)], capsys)
    assert code == 2
    assert message.replace(" T ", f" {t} ").replace(" E ", f" {e} ") in err, err
    assert "Traceback" not in err


def test_simulate_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["simulate", EXAMPLE, "--terms", str(tmp_path / "no.json")], capsys)
    assert code == 2 and f"cannot read terms file {tmp_path / 'no.json'}" in err
    code, _, err = _run(["simulate", str(tmp_path / "no.jrule"), "--terms", TERMS], capsys)
    assert code == 1 and "E004" in err and "Traceback" not in err


# --- database URLs -------------------------------------------------------------------------


def _not_a_database(tmp_path: Path) -> str:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the rows you are looking for\n" * 200)
    return f"sqlite:///{path}"


def test_open_database_refuses_by_name(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="'notaurl' is not a database URL"):
        open_database("notaurl")
    with pytest.raises(StoreUnavailable, match=r"notes\.txt: file is not a database"):
        open_database(_not_a_database(tmp_path), engine_lock=False)
    # a server that is not there, and its password kept out of the message
    with pytest.raises(StoreUnavailable, match=r"nobody:\*\*\*@127\.0\.0\.1:1/x: .*refused"):
        open_database("postgresql://nobody:secret@127.0.0.1:1/x")


@pytest.mark.parametrize("command", [
    ["admin", "list"], ["admin", "upgrade"], ["serve", "--port", "1"], ["audit"],
    ["deploy", EXAMPLE, "--by", "a", "--reviewer", "b", "--examples", "1"],
])
def test_bad_database_urls_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch,
                                        command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)  # the default data directory is ./jrule-data
    for url, says in [("notaurl", "'notaurl' is not a database URL"),
                      (_not_a_database(tmp_path), "file is not a database")]:
        argv = ([command[0], "--db", url, *command[1:]])
        code, _, err = _run(argv, capsys)
        assert code in (1, 2), (argv, err)
        assert says in err and "Traceback" not in err, (argv, err)


# --- jrule audit's own arguments -------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'jrule.sqlite3'}"
    open_database(url).close()
    return url


def test_audit_arguments(tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.sqlite3"
    code, _, err = _run(["audit", "--db", f"sqlite:///{missing}"], capsys)
    assert code == 2 and f"no store at {missing}" in err
    assert not missing.exists()  # an audit reads: it never creates the store it was asked about
    code, _, err = _run(["audit", "--db", store, "--chunk", "0"], capsys)
    assert code == 2 and "--chunk must be at least 1" in err
    assert _run(["audit", "--db", store], capsys)[0] == 0


def test_audit_bad_key_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ledger_adapter.note import Ed25519Signer
    from ledger_adapter.sql import SqlLedger

    url = f"sqlite:///{tmp_path / 'ledgered.sqlite3'}"
    db = open_database(url)
    SqlLedger(db.engine, "audit.example/log", Ed25519Signer.generate("audit.example/log")
              ).initialize()
    db.close()
    binary, garbage = tmp_path / "binary.key", tmp_path / "garbage.key"
    binary.write_bytes(bytes(range(128, 256)))
    garbage.write_text("not a key\n")
    for key, says in [(tmp_path / "none.key", "cannot read the key file"),
                      (binary, "is not a ledger signing key"),
                      (garbage, "is not a ledger signing key")]:
        code, _, err = _run(["audit", "--db", url, "--key-file", str(key)], capsys)
        assert code == 2 and says in err and "Traceback" not in err, err


def test_deploy_ledger_key_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing, foreign or unregistered --ledger-key is one line, and nothing is deployed."""
    from engine.runtime.service import EngineService
    from ledger_adapter.note import Ed25519Signer, generate_skey
    from ledger_adapter.sql import SqlLedger

    origin = "deploy.example/log"
    url = f"sqlite:///{tmp_path / 'ledgered.sqlite3'}"
    db = open_database(url)
    SqlLedger(db.engine, origin, Ed25519Signer.generate(origin)).initialize()
    db.close()
    foreign, unregistered = tmp_path / "foreign.key", tmp_path / "unregistered.key"
    foreign.write_text(generate_skey("elsewhere.example/log") + "\n")
    unregistered.write_text(generate_skey(origin) + "\n")  # the right name, not the log's key
    deploy = ["deploy", EXAMPLE, "--db", url, "--by", "a", "--reviewer", "b", "--examples", "1"]
    for key, says in [(None, "this store has a ledger; give --ledger-key"),
                      (tmp_path / "none.key", "cannot read the key file"),
                      (foreign, "is named 'elsewhere.example/log'"),
                      (unregistered, "the ledger refused the deployment: the log is now signed "
                                     "by key")]:
        argv = deploy if key is None else [*deploy, "--ledger-key", str(key)]
        code, _, err = _run(argv, capsys)
        assert code == 2 and says in err and "Traceback" not in err, err
    service = EngineService(url, engine_lock=False)
    try:
        assert service.versions() == []  # the refused deployment left nothing behind
    finally:
        service.close()


@pytest.mark.parametrize(("settings", "says"), [
    ('calendars = ["nowhere.json"]', "calendars: calendar file nowhere.json not found"),
    ('witnesses = ["garbage"]', "witnesses: 'garbage' is not a witness key"),
    ('delivery = "binary.bin"', "binary.bin: the delivery file is not UTF-8 text"),
    ('delivery = "targets.toml"\nwebhook_key = "binary.bin"',
     "webhook_key: cannot use binary.bin as the webhook signing key"),
    ('port = "eighty"', "serve.toml: `port` must be a whole number: got 'eighty'"),
])
def test_serve_configuration_mistakes_are_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        settings: str, says: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("binary.bin").write_bytes(bytes(range(128, 256)))
    Path("targets.toml").write_text('[default]\nurl = "http://127.0.0.1:9"\n')
    Path("serve.toml").write_text(settings + "\n")
    code, _, err = _run(["serve", "--config", "serve.toml", "--data", "data"], capsys)
    assert code == 2 and f"jrule serve: error: {says}" in err and "Traceback" not in err, err
