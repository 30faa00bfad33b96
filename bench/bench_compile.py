"""Benchmark: ``jrule check`` of a generated ~5,000-line rule set.

Target: ``jrule check`` of 5,000 lines in under 1 second, end to end
(interpreter start-up included).  See bench/README.md.

    python bench/bench_compile.py [--lines 5000] [--runs 5] [--seed 2024]
                                  [--profile] [--strict]

Measures
  (a) ``jrule check FILE`` as a subprocess: wall time, best and median of N;
  (b) in-process time per stage (decode, parse, AST, check, IR lowering);
  (c) peak memory: tracemalloc peak in-process, max RSS of the subprocess.
The generated file is written to bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
TARGET_SECONDS = 1.0
TARGET_LINES = 5000


def _setup_path() -> None:
    for p in (REPO, REPO / "tests" / "rules_dsl"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def make_source(lines: int, seed: int) -> str:
    """The smallest generated rule set with at least ``lines`` lines."""
    from gen_programs import generate_ruleset

    n = max(1, lines // 400)
    text = generate_ruleset(n, seed)
    while text.count("\n") < lines:
        n += 1
        text = generate_ruleset(n, seed)
    return text


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def time_subprocess(argv: list[str], runs: int) -> tuple[list[float], int]:
    """Wall times of ``argv`` and the last exit status."""
    times: list[float] = []
    status = 0
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env=_child_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False)
        times.append(time.perf_counter() - started)
        status = proc.returncode
        if status not in (0, 1):
            sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
            raise SystemExit(f"{argv} exited with {status}")
    return times, status


def stage_times(data: bytes, name: str, runs: int) -> tuple[dict[str, list[float]], Any]:
    """Time each stage of the pipeline separately (same calls check_bytes makes)."""
    from rules_dsl import check, parse, to_ir

    stages: dict[str, list[float]] = {k: [] for k in
                                      ("decode", "parse", "check", "ir", "total")}
    result = None
    was_enabled = gc.isenabled()
    gc.disable()  # as rules_dsl.compiler does: the trees have no cycles
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            text, problem = parse.decode_source(data, name)
            assert text is not None, problem
            t1 = time.perf_counter()
            parsed = parse.parse_text(text, name)  # the parser builds the AST inline
            assert parsed.source is not None, parsed.diagnostics
            t2 = time.perf_counter()
            checked = check.check_file(parsed.source, text)
            t3 = time.perf_counter()
            result = to_ir.from_checked(checked)
            t4 = time.perf_counter()
            for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0),
                                  strict=True):
                stages[key].append(value)
    finally:
        if was_enabled:
            gc.enable()
    return stages, result


def peak_memory(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def profile(data: bytes, name: str, out: Path, top: int = 30) -> str:
    import cProfile
    import io
    import pstats

    from rules_dsl.compiler import check_bytes

    prof = cProfile.Profile()
    prof.enable()
    check_bytes(data, name)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    out.write_text(buf.getvalue(), encoding="utf-8")
    return buf.getvalue()


def _fmt(values: list[float]) -> tuple[str, str]:
    return f"{min(values) * 1000:8.1f}", f"{statistics.median(values) * 1000:8.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--lines", type=int, default=TARGET_LINES, help="lines to generate")
    ap.add_argument("--runs", type=int, default=5, help="repetitions per measurement")
    ap.add_argument("--seed", type=int, default=2024, help="generator seed")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile one in-process check (bench/out/profile.txt)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    ap.add_argument("--no-compile", action="store_true",
                    help="do not byte-compile the packages first (every run then compiles "
                         "them from source if PYTHONDONTWRITEBYTECODE is set)")
    args = ap.parse_args(argv)

    _setup_path()
    OUT.mkdir(exist_ok=True)
    text = make_source(args.lines, args.seed)
    path = OUT / f"generated_{args.lines}.jrule"
    path.write_text(text, encoding="utf-8")
    data = text.encode("utf-8")
    n_lines = text.count("\n")
    n_contracts = text.count("\ncontract ") + text.startswith("contract ")
    n_deadlines = text.count("\n  deadline ")
    n_guards = text.count(" when ")
    print(f"file: {path.relative_to(REPO)}: {n_lines} lines, {len(data):,} bytes, "
          f"{n_contracts} contracts, {n_deadlines} deadlines, {n_guards} guards")

    # (a) end to end, as a user runs it: an installed package has its bytecode
    # compiled (pip does it), so compile it first; with PYTHONDONTWRITEBYTECODE
    # set (as in some sandboxes) every run would otherwise compile the sources.
    if not args.no_compile:
        import compileall

        for package in ("rules_dsl", "contracts_lib"):
            compileall.compile_dir(str(REPO / package), quiet=1)
    bytecode = ("compiled first" if not args.no_compile else
                "not compiled" + (" (PYTHONDONTWRITEBYTECODE is set: every run compiles "
                                  "the sources)" if os.environ.get("PYTHONDONTWRITEBYTECODE")
                                  else ""))
    load_before = os.getloadavg()
    py = sys.executable
    e2e, status = time_subprocess([py, "-m", "rules_dsl.cli", "check", str(path)], args.runs)
    startup, _ = time_subprocess([py, "-c", "pass"], args.runs)
    imports, _ = time_subprocess([py, "-c", "import rules_dsl.commands.check"], args.runs)
    child_rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    load_after = os.getloadavg()
    if status != 0:
        print(f"warning: jrule check exited with {status}: the generated file has errors")

    # (b) in process, by stage (the first run also builds the parser's lexers)
    from rules_dsl.compiler import check_bytes
    from rules_dsl.parse import parse_text

    t = time.perf_counter()
    parse_text('contract c "t" version "1" {}', "warmup.jrule")
    parser_setup = time.perf_counter() - t
    stages, ir = stage_times(data, path.name, args.runs)
    check_total = [sum(vals) for vals in zip(stages["decode"], stages["parse"],
                                             stages["check"], strict=True)]
    # (c) memory
    peak = peak_memory(lambda: check_bytes(data, path.name))
    own_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    rows = [
        ("jrule check FILE (subprocess, end to end)", e2e),
        ("  python -c pass (interpreter start-up)", startup),
        ("  import rules_dsl.commands.check (start-up + imports)", imports),
        ("in-process check (decode+parse+AST+check)", check_total),
        ("  decode UTF-8", stages["decode"]),
        ("  parse -> AST (LALR on Lark's tables, AST built in reductions)", stages["parse"]),
        ("  check (names, types, structure)", stages["check"]),
        ("IR lowering (jrule compile only)", stages["ir"]),
        ("in-process compile (all stages)", stages["total"]),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement':<{width}}   best ms  median ms   (runs: {args.runs})")
    print("-" * (width + 22))
    for label, values in rows:
        best, median = _fmt(values)
        print(f"{label:<{width}}  {best}   {median}")
    print(f"{'parser set-up (grammar + first parse, once per process)':<{width}}  "
          f"{parser_setup * 1000:8.1f}")
    print(f"\nbytecode of rules_dsl and contracts_lib: {bytecode}; load average "
          f"{load_before[0]:.2f} before and {load_after[0]:.2f} after the subprocess runs "
          f"({os.cpu_count()} CPUs)")
    print(f"peak memory: tracemalloc peak of one in-process check {peak / 2**20:.1f} MiB; "
          f"max RSS: jrule check subprocess {child_rss_kb / 1024:.1f} MiB, "
          f"this process {own_rss_kb / 1024:.1f} MiB")
    if ir is not None:
        print(f"IR: {len(ir.canonical):,} bytes, id {ir.id[:16]}...")

    median_e2e = statistics.median(e2e)
    ok = median_e2e < TARGET_SECONDS
    print(f"\ntarget: jrule check of {TARGET_LINES:,} lines under {TARGET_SECONDS:.0f} s "
          f"(median end-to-end of {args.runs} runs, {n_lines} lines): "
          f"{median_e2e:.3f} s -> {'PASS' if ok else 'FAIL'}")
    if n_lines < TARGET_LINES:
        print(f"note: only {n_lines} lines were generated; the target is for {TARGET_LINES}")

    if args.profile:
        report = profile(data, path.name, OUT / "profile.txt")
        print("\ncProfile of one in-process check (top by cumulative time; full: "
              "bench/out/profile.txt)")
        print("\n".join(report.splitlines()[:45]))
    return 1 if (args.strict and not ok) else 0


if __name__ == "__main__":
    raise SystemExit(main())
