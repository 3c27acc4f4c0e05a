"""Run every benchmark and print one table: measure, baseline, ours, ratio, goal, met.

    .venv/bin/python benchmarks/run_all.py [--quick] [--nbd] [--pacemaker] [--datakeeper]

Each benchmark measures its baseline in the same run (see each script's docstring).
``--quick`` uses smaller volumes (256 MiB instead of 1 GiB) for a fast look. ``--nbd``
adds the mirror over NBD (root: network namespaces, nbdkit, nbdfuse; about two minutes
more), which is left out by default. ``--pacemaker`` adds the Pacemaker lab and backend
(root: a 3-node Corosync + Pacemaker lab in namespaces, brought up and taken down by each
script; about three minutes more). ``--datakeeper`` adds DataKeeper on the Pacemaker lab
(root: a seeded 2-node lab whose /data is extended to lab2; ext4 on the mirrored device vs
a plain direct-I/O loop, the full resync vs nbdcopy, a partial resync vs the full one;
about five minutes more).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    ("resync_vs_copy.py", ["--size-mib", "{size}"]),
    ("partial_vs_full.py", ["--size-mib", "{size}"]),
    ("mirrored_write.py", []),
    ("verify_vs_read.py", ["--size-mib", "{size}"]),
    ("status_model_scale.py", []),
    ("event_loop_latency.py", []),
    ("startup.py", []),
)
NBD_BENCHMARKS = (
    ("nbd_resync.py", ["--size-mib", "{size}"]),
    ("nbd_mirrored_fs.py", []),
)
PACEMAKER_BENCHMARKS = (
    ("pacemaker_lab.py", []),
    ("pacemaker_backend.py", []),
)
DATAKEEPER_BENCHMARKS = (("pacemaker_datakeeper.py", []),)  # 1 GiB: the goals are for it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB volumes instead of 1 GiB")
    parser.add_argument("--nbd", action="store_true", help="also the mirror over NBD (root)")
    parser.add_argument(
        "--pacemaker", action="store_true", help="also the Pacemaker lab and backend (root)"
    )
    parser.add_argument(
        "--datakeeper",
        action="store_true",
        help="also DataKeeper on the Pacemaker lab: mirrored ext4, full and partial resync (root)",
    )
    args = parser.parse_args()
    size = "256" if args.quick else "1024"
    rows: list[dict[str, object]] = []
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    chosen = BENCHMARKS + (NBD_BENCHMARKS if args.nbd else ())
    chosen += PACEMAKER_BENCHMARKS if args.pacemaker else ()
    for script, options in chosen + (DATAKEEPER_BENCHMARKS if args.datakeeper else ()):
        path = HERE / script
        if not path.exists():
            continue
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as summary:
            env["LKBENCH_SUMMARY"] = summary.name
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, str(path), *(o.format(size=size) for o in options)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            took = time.monotonic() - started
            found = [json.loads(line) for line in Path(summary.name).read_text().splitlines()]
        print(f"--- {script} ({took:.0f} s)")
        print(done.stdout.rstrip())
        if not found:
            print(done.stderr.rstrip()[-2000:])
            rows.append(
                {
                    "measure": f"{script}: no result (exit {done.returncode})",
                    "baseline": "",
                    "ours": "",
                    "ratio": "",
                    "goal": "",
                    "met": False,
                }
            )
        rows.extend(found)
    print()
    print(
        f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", {platform.system()} {platform.release()}"
    )
    header = ("measure", "baseline", "ours", "ratio", "goal", "met")
    table = [header] + [
        tuple(str(r[k]) if k != "met" else ("yes" if r["met"] else "NO") for k in header)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
