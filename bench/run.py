"""Run every benchmark (``bench/bench_*.py``) and write ``bench/results.json``.

Usage: ``python -m bench.run [--quick] [--only NAME]``. ``--quick`` uses small
inputs (a smoke run); the figures quoted in the README come from full runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import time
from pathlib import Path

from bench.results import RESULTS_PATH, Result, write_results


def _modules(only: str | None) -> list[str]:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    return [n for n in names if only is None or only in n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small inputs, for a smoke run")
    parser.add_argument("--only", help="run only benchmark modules whose name contains this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results: list[Result] = []
    failed = []
    for name in _modules(args.only):
        module = importlib.import_module(f"bench.{name}")
        start = time.perf_counter()
        print(f"== {name} ({'quick' if args.quick else 'full'})", flush=True)
        try:
            got = module.run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            logging.exception("benchmark %s failed", name)
            failed.append(f"{name}: {exc}")
            continue
        results.extend(got)
        for res in got:
            verdict = {True: "meets goal", False: "MISSES goal", None: ""}[res.meets_goal]
            print(f"   {res.name} = {res.value:g} {res.unit} (goal {res.goal}) {verdict}")
        print(f"   ({time.perf_counter() - start:.1f} s)")
    if args.quick:
        print("quick run: results not written (run `make bench` for the recorded figures)")
    else:
        write_results(results, RESULTS_PATH)
        print(f"wrote {RESULTS_PATH}")
    if failed:
        print("failed benchmarks:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
