"""A benchmark's result rows for benchmarks/run_all.py (no effect when run alone).

When ``LKBENCH_SUMMARY`` names a file, :func:`record` appends one JSON line per row:
measure, baseline, ours, ratio, goal, met.
"""

from __future__ import annotations

import json
import os


def record(measure: str, baseline: str, ours: str, ratio: str, goal: str, met: bool) -> None:
    path = os.environ.get("LKBENCH_SUMMARY")
    if not path:
        return
    row = {
        "measure": measure,
        "baseline": baseline,
        "ours": ours,
        "ratio": ratio,
        "goal": goal,
        "met": met,
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
