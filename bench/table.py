"""Print ``bench/results.json`` as the Markdown table quoted in the README."""

from __future__ import annotations

import json
import sys

from bench.results import RESULTS_PATH


def render(rows: list[dict[str, object]]) -> str:
    """A Markdown table: figure, value, goal, whether it is met, and how it was measured."""
    lines = ["| figure | value | goal | met | how measured |", "|---|---|---|---|---|"]
    for row in rows:
        value, goal, better = row["value"], row["goal"], row["better"]
        if goal is None:
            met, goal_text = "", "—"
        else:
            ok = value >= goal if better == "higher" else value <= goal  # type: ignore[operator]
            met = "yes" if ok else "**no**"
            goal_text = f"{'≥' if better == 'higher' else '≤'} {goal:g} {row['unit']}"
        # Ratios (F1, recall) need three decimals; rates and latencies one.
        number = f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"  # type: ignore[arg-type]
        shown = f"{number} {row['unit']}".strip()
        lines.append(f"| `{row['name']}` | {shown} | {goal_text} | {met} | {row['detail']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render(json.loads(RESULTS_PATH.read_text(encoding="utf-8"))) + "\n")
