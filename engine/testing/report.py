"""The test report as text for people, JSON for tools, JUnit XML for CI, and its hash.

The report's hash is the SHA-256 of its canonical JSON (keys sorted, compact,
UTF-8): the same rule set, tests, seed and settings give the same report and
the same hash on any machine.  It holds no wall-clock times for that reason.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from xml.etree import ElementTree as ET

__all__ = ["canonical_report", "report_hash", "to_junit", "to_text"]


def canonical_report(report: dict[str, Any]) -> bytes:
    return json.dumps(report, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def report_hash(report: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_report(report)).hexdigest()


def _ratio(entry: dict[str, Any]) -> str:
    return f"{entry['covered']}/{entry['total']}"


def to_text(report: dict[str, Any]) -> str:
    out: list[str] = []
    for c in report["contracts"]:
        out.append(f"contract {c['name']} ({c['contract_id'][:12]})")
        for s in c["scenarios"]:
            out.append(f"  {'ok  ' if s['passed'] else 'FAIL'} scenario \"{s['name']}\"")
            for f in s["failures"]:
                out.append(f"       {f['span']}: {f['message']}")
        for p in [*c["properties"], c["builtin"]]:
            how = f"{p['timelines']} timelines" if report["mode"] == "generate" \
                or p is c["builtin"] else f"{p['timelines']} paths"
            out.append(f"  {'ok  ' if p['passed'] else 'FAIL'} property \"{p['name']}\" "
                       f"({how})")
            if not p["passed"]:
                where = f"{p['span']}: " if p.get("span") else ""
                out.append(f"       {where}{p['message']}")
                out.append(f"       minimal counterexample ({p['counterexample_lines']} "
                           "line(s)); paste it into a .test.jrule file to keep it:")
                out += ["         " + line for line in p["counterexample"].splitlines()]
        ex = c.get("exploration")
        if ex:
            full = "all paths explored" if ex["complete"] else \
                f"stopped at {ex['states']} states (raise --max-states)"
            out.append(f"  exploration: depth {ex['depth']}, {ex['paths']} paths, "
                       f"{ex['states']} distinct states, {ex['state_names']} of "
                       f"{ex['state_names_total']} named states reached; {full}")
        cov = c["coverage"]
        out.append("  coverage: " + ", ".join(f"{k}s {_ratio(v)}" for k, v in cov.items()))
        for kind, v in cov.items():
            for item in v["uncovered"]:
                out.append(f"    not covered: {kind} {item['name']} at {item['span']}")
    verdict = "PASSED" if report["passed"] else "FAILED"
    out.append(f"{verdict}  (seed {report['seed']}: re-run exactly with --seed {report['seed']})")
    return "\n".join(out) + "\n"


def to_junit(reports: dict[str, Any] | list[dict[str, Any]]) -> str:
    """One JUnit XML document for one or several reports (one testsuite per contract)."""
    suites = ET.Element("testsuites", name="jrule test")
    for report in reports if isinstance(reports, list) else [reports]:
        _junit_suites(suites, report)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _junit_suites(suites: ET.Element, report: dict[str, Any]) -> None:
    for c in report["contracts"]:
        cases: list[ET.Element] = []
        for s in c["scenarios"]:
            case = ET.Element("testcase", classname=c["name"], name=f"scenario: {s['name']}")
            if not s["passed"]:
                failure = ET.SubElement(case, "failure", message=s["failures"][0]["message"])
                failure.text = "\n".join(f"{f['span']}: {f['message']}" for f in s["failures"])
            cases.append(case)
        for p in [*c["properties"], c["builtin"]]:
            case = ET.Element("testcase", classname=c["name"], name=f"property: {p['name']}")
            if not p["passed"]:
                failure = ET.SubElement(case, "failure", message=p["message"])
                failure.text = p["counterexample"]
            cases.append(case)
        suite = ET.SubElement(suites, "testsuite", name=c["name"], tests=str(len(cases)),
                              failures=str(sum(1 for x in cases if x.find("failure")
                                               is not None)))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="seed", value=str(report["seed"]))
        ET.SubElement(props, "property", name="ruleset", value=report["ruleset"])
        suite.extend(cases)
