"""The one home of benchmark figures: ``bench/results.json``.

Each benchmark module ``bench/bench_*.py`` defines ``run(quick: bool) -> list[Result]``;
``bench/run.py`` runs them all and writes the list of objects
``{"name", "value", "unit", "goal", "better", "detail", "source"}`` (``source``:
the module that measured it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

RESULTS_PATH = Path(__file__).with_name("results.json")


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    goal: float | None
    better: Literal["higher", "lower"]
    detail: str = ""
    source: str = ""

    @property
    def meets_goal(self) -> bool | None:
        if self.goal is None:
            return None
        return self.value >= self.goal if self.better == "higher" else self.value <= self.goal


def write_results(
    results: list[Result], path: Path = RESULTS_PATH, rerun: frozenset[str] = frozenset()
) -> None:
    """Merge ``results`` into ``path`` by name.

    Figures of other benchmarks are kept; those of a module in ``rerun`` (a
    ``source`` that has just run in full) are replaced as a whole, so a figure
    it no longer measures (a validation file moved into training) does not
    linger in the README beside the fresh ones.
    """
    existing: dict[str, dict[str, object]] = {}
    if path.exists():
        for row in json.loads(path.read_text(encoding="utf-8")):
            if row.get("source") not in rerun:
                existing[row["name"]] = row
    for res in results:
        existing[res.name] = asdict(res)
    rows = sorted(existing.values(), key=lambda r: str(r["name"]))
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def read_results(path: Path) -> list[Result]:
    """The results stored in ``path`` (as written by :func:`write_results`)."""
    return [Result(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
