"""Run every benchmark (``bench/bench_*.py``) and write ``bench/results.json``.

Usage: ``python -m bench.run [--quick] [--only NAME]``. ``--quick`` uses small
inputs (a smoke run); the figures quoted in the README come from full runs.

Each benchmark runs in a fresh Python process: peak-memory figures must not
include what an earlier benchmark loaded, and speed figures must not depend
on which modules happened to be imported (or warmed up) before.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.results import RESULTS_PATH, Result, read_results, write_results


def _modules(only: str | None) -> list[str]:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    return [n for n in names if only is None or only in n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs, for a smoke run")
    parser.add_argument("--only", help="run only benchmark modules whose name contains this")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one module here
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.child:
        got = importlib.import_module(f"bench.{args.child}").run(quick=args.quick)
        write_results(got, args.out)
        return 0
    results: list[Result] = []
    ran: list[str] = []
    failed = []
    for name in _modules(args.only):
        start = time.perf_counter()
        print(f"== {name} ({'quick' if args.quick else 'full'})", flush=True)
        with tempfile.TemporaryDirectory(prefix="yuqing-bench-") as tmp:
            out = Path(tmp) / "results.json"
            command = [sys.executable, "-m", "bench.run", "--child", name, "--out", str(out)]
            code = subprocess.call(command + (["--quick"] if args.quick else []))
            # One broken benchmark must not hide the others' figures.
            if code != 0 or not out.exists():
                logging.error("benchmark %s failed (exit code %s)", name, code)
                failed.append(f"{name}: exit code {code} (its traceback is above)")
                continue
            got = [replace(res, source=name) for res in read_results(out)]
        results.extend(got)
        ran.append(name)
        for res in got:
            verdict = {True: "meets goal", False: "MISSES goal", None: ""}[res.meets_goal]
            print(f"   {res.name} = {res.value:g} {res.unit} (goal {res.goal}) {verdict}")
        print(f"   ({time.perf_counter() - start:.1f} s)")
    if args.quick:
        print("quick run: results not written (run `make bench` for the recorded figures)")
    else:
        write_results(results, RESULTS_PATH, rerun=frozenset(ran))
        print(f"wrote {RESULTS_PATH}")
    if failed:
        print("failed benchmarks:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
