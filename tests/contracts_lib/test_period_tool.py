"""``jrule period``: the command's output and its error handling."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from contracts_lib import load_calendar
from contracts_lib.period_tool import HELP, add_arguments, run

CN = load_calendar("cn")
NATIONAL_DAY_2025 = "国庆节、中秋节 National Day and Mid-Autumn Festival"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jrule period", description=HELP)
    add_arguments(parser)
    return parser


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(_parser().parse_args(list(argv)), out, err)
    return status, out.getvalue(), err.getvalue()


def test_text_output() -> None:
    status, out, err = _run("--from", "2025-09-20", "--days", "15")
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "last day: 2025-10-09",
        f"calendar: {CN.version}",
        f"15 days from 2025-09-20 (start day not counted) end on 2025-10-05, a rest day "
        f"({NATIONAL_DAY_2025}), so the period ends on the next working day, 2025-10-09 "
        f"(calendar {CN.version}).",
        f"自2025-09-20起算15日（起算日不计入），期间届满日为2025-10-05，该日为休息日"
        f"（{NATIONAL_DAY_2025}），顺延至其后第一个工作日2025-10-09（日历 {CN.version}）。",
    ]


@pytest.mark.parametrize(
    ("option", "amount", "expected"),
    [
        # from Saturday 2025-09-20: 15 days -> 10-05 (National Day) -> 10-09
        ("--days", "15", "2025-10-09"),
        # 09-21 is an ordinary Sunday: 09-22, 09-23, 09-24, 09-25
        ("--working-days", "4", "2025-09-25"),
        ("--months", "1", "2025-10-20"),
        # 2026-09-20 is a make-up Sunday, a working day
        ("--years", "1", "2026-09-20"),
        # the Saturday itself, extended over Sunday to Monday
        ("--days", "0", "2025-09-22"),
    ],
)
def test_units(option: str, amount: str, expected: str) -> None:
    status, out, _ = _run("--from", "2025-09-20", option, amount)
    assert status == 0
    assert out.splitlines()[0] == f"last day: {expected}"


def test_json_output() -> None:
    status, out, err = _run("--from", "2025-09-20", "--days", "15", "--format", "json")
    assert (status, err) == (0, "")
    obj = json.loads(out)
    assert obj == {
        "direction": "after",
        "from": "2025-09-20",
        "amount": 15,
        "unit": "days",
        "nominal_date": "2025-10-05",
        "date": "2025-10-09",
        "nominal_rest_reason": NATIONAL_DAY_2025,
        "skipped": [{"date": f"2025-10-0{d}", "reason": NATIONAL_DAY_2025} for d in (5, 6, 7, 8)],
        "month_end_clamped": False,
        "calendar": CN.version,
        "explain_en": obj["explain_en"],
        "explain_zh": obj["explain_zh"],
    }
    assert obj["explain_en"].startswith("15 days from 2025-09-20")
    assert obj["explain_zh"].startswith("自2025-09-20起算15日")


def test_before_json() -> None:
    status, out, _ = _run("--from", "2025-10-12", "--days", "7", "--before", "--format", "json")
    assert status == 0
    obj = json.loads(out)
    assert (obj["direction"], obj["nominal_date"], obj["date"]) == (
        "before",
        "2025-10-05",
        "2025-09-30",
    )
    assert [s["date"] for s in obj["skipped"]] == [f"2025-10-0{d}" for d in (5, 4, 3, 2, 1)]


def test_before_text() -> None:
    status, out, _ = _run("--from", "2025-10-09", "--working-days", "3", "--before")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "date: 2025-09-28"
    assert lines[2].startswith("Counting 3 working days back from 2025-10-09")


def test_month_end_clamp_in_json() -> None:
    status, out, _ = _run("--from", "2025-01-31", "--months", "1", "--format", "json")
    assert status == 0
    obj = json.loads(out)
    assert (obj["date"], obj["month_end_clamped"], obj["skipped"]) == ("2025-02-28", True, [])


def test_court_calendar_file(tmp_path: Path) -> None:
    path = tmp_path / "court.json"
    path.write_text(
        json.dumps(
            {
                "format": "jrule-calendar/1",
                "id": "court",
                "title": "Court",
                "extends": "cn",
                "closures": [{"date": "2025-09-16", "name": "闭院"}],
            }
        ),
        encoding="utf-8",
    )
    status, out, _ = _run("--from", "2025-09-01", "--days", "15", "--calendar", str(path))
    assert status == 0
    assert out.splitlines()[0] == "last day: 2025-09-17"
    assert out.splitlines()[1].startswith("calendar: court@")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--from", "2025-13-01", "--days", "1"],
            "--from '2025-13-01' is not a valid date",
        ),
        (
            ["--from", "2025/09/20", "--days", "1"],
            "--from '2025/09/20' is not a date in the form YYYY-MM-DD",
        ),
        (["--from", "2025-09-20", "--days", "-3"], "--days must be 0 or more, got -3"),
        (["--from", "2025-09-20", "--months", "two"], "--months 'two' is not a whole number"),
        (
            ["--from", "2025-09-20", "--working-days", "1.5"],
            "--working-days '1.5' is not a whole number",
        ),
        (
            ["--from", "2026-12-20", "--days", "15"],
            f"2027-01-04 is outside calendar {CN.version} (covers 2025–2026); "
            "add that year's holiday notice",
        ),
        (
            ["--from", "2025-01-02", "--days", "1", "--before"],
            f"2024-12-31 is outside calendar {CN.version} (covers 2025–2026); "
            "add that year's holiday notice",
        ),
        (
            ["--from", "2025-09-20", "--days", "1", "--calendar", "/nonexistent/court.json"],
            "calendar file /nonexistent/court.json not found (built-in calendars: cn)",
        ),
        (
            ["--from", "2025-09-20", "--years", "99999999"],
            "2025-09-20 + 1199999988 months is outside the years 1..9999",
        ),
    ],
)
def test_errors_are_one_line_and_status_2(argv: list[str], message: str) -> None:
    status, out, err = _run(*argv)
    assert (status, out) == (2, "")
    assert err == f"jrule period: error: {message}\n"


def test_invalid_calendar_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"format": "jrule-calendar/1", "id": "x"}', encoding="utf-8")
    status, _, err = _run("--from", "2025-09-20", "--days", "1", "--calendar", str(path))
    assert status == 2
    expected = f"{path}: missing key 'holidays' in a standalone calendar"
    assert err == f"jrule period: error: {expected}\n"


def test_defaults_write_to_stdout_and_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_parser().parse_args(["--from", "2025-09-20", "--days", "15"])) == 0
    assert run(_parser().parse_args(["--from", "bad", "--days", "15"])) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("last day: 2025-10-09\n")
    assert captured.err == (
        "jrule period: error: --from 'bad' is not a date in the form YYYY-MM-DD\n"
    )


def test_argparse_requires_from_and_exactly_one_amount() -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["--days", "1"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        _parser().parse_args(["--from", "2025-09-20", "--days", "1", "--months", "1"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["--from", "2025-09-20"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["--from", "2025-09-20", "--days", "1", "--format", "xml"])
