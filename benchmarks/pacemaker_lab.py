"""The Pacemaker lab: time to quorate, failover after a node kill vs a move, memory, idle CPU.

* quorate: ``nslab.up`` of a 3-node lab until every node is online and the cluster has
  quorum, ``--runs`` times (each followed by ``down``, timed too). Goal: each <= 10 s.
* failover: a Dummy resource on lab1 (opt-in scores lab1 300, lab2 200, lab3 100);
  ``nslab.stop(lab1)`` → the others fence lab1 → Started on lab2, polled in ``crm_mon``
  (every 0.1 s). Baseline in the same run: Pacemaker's own move of the same resource
  (``crm_resource --move`` to lab2, the same polling). ``--failovers`` times.
* memory: PSS of every process of the lab (in its network namespaces), by program.
* idle CPU: the lab's processes' CPU time over 10 s with nothing happening.

Needs root. ``python benchmarks/pacemaker_lab.py [--runs 10] [--failovers 5]``
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._summary import record
from core.backends.pacemaker import nslab
from core.backends.pacemaker.nslab_files import LabPaths
from core.backends.pacemaker.nslab_proc import netns_inode, pids_in_netns

RESOURCE = "bench-dummy"


def run(home: Path, node: str, *argv: str) -> str:
    rc, out, err = nslab.exec(home, node, list(argv), 30)
    if rc != 0:
        raise SystemExit(f"{' '.join(argv)} on {node}: {err.strip()}")
    return out


def started_on(home: Path, viewer: str) -> set[str]:
    rc, out, _err = nslab.exec(home, viewer, ["crm_mon", "-1", "--output-as=xml"], 30)
    if rc != 0:
        return set()
    for item in ET.fromstring(out).iterfind(".//resources/resource"):
        if item.get("id") == RESOURCE and item.get("role") == "Started":
            return {n.get("name", "") for n in item.iterfind("node")}
    return set()


def until(check: Callable[[], bool], timeout: float = 120.0) -> float:
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise SystemExit("timed out")
        time.sleep(0.1)
    return time.monotonic() - began


def all_online(home: Path) -> bool:
    for node in ("lab1", "lab2", "lab3"):
        rc, out, _err = nslab.exec(home, node, ["crm_mon", "-1", "--output-as=xml"], 30)
        if rc != 0 or out.count('online="true"') != 3 or 'with_quorum="true"' not in out:
            return False
    return True


def measure_quorate(home: Path, runs: int) -> list[float]:
    times = []
    for i in range(runs):
        began = time.monotonic()
        nslab.up(home, 3, seed=False)  # the cluster alone, without the seed's /data
        times.append(time.monotonic() - began)
        line = f"  up {i + 1}: quorate after {times[-1]:.2f} s"
        if i < runs - 1:
            began = time.monotonic()
            nslab.down(home)
            line += f", down {time.monotonic() - began:.2f} s"
        print(line)
    return times


def add_resource(home: Path) -> None:
    run(home, "lab1", "cibadmin", "--create", "-o", "resources", "--xml-text",
        f'<primitive id="{RESOURCE}" class="ocf" provider="heartbeat" type="Dummy">'
        f'<operations><op id="{RESOURCE}-mon" name="monitor" interval="5s"/></operations>'
        "</primitive>")  # fmt: skip
    for node, score in (("lab1", 300), ("lab2", 200), ("lab3", 100)):
        run(home, "lab1", "cibadmin", "--create", "-o", "constraints", "--xml-text",
            f'<rsc_location id="{RESOURCE}-{node}" rsc="{RESOURCE}" node="{node}" '
            f'score="{score}"/>')  # fmt: skip
    until(lambda: started_on(home, "lab2") == {"lab1"})


def measure_failovers(home: Path, count: int) -> tuple[list[float], list[float]]:
    failovers, moves = [], []
    for i in range(count):
        # Baseline: Pacemaker's own move lab1 → lab2, then back.
        began = time.monotonic()
        run(home, "lab2", "crm_resource", "--resource", RESOURCE, "--move", "--node", "lab2")
        until(lambda: started_on(home, "lab2") == {"lab2"})
        moves.append(time.monotonic() - began)
        run(home, "lab2", "crm_resource", "--resource", RESOURCE, "--clear")
        until(lambda: started_on(home, "lab2") == {"lab1"})
        # A node kill.
        began = time.monotonic()
        nslab.stop(home, "lab1")
        until(lambda: started_on(home, "lab2") == {"lab2"})
        failovers.append(time.monotonic() - began)
        print(f"  run {i + 1}: failover after stop {failovers[-1]:.2f} s, move {moves[-1]:.2f} s")
        nslab.start(home, "lab1")
        until(lambda: all_online(home))
        until(lambda: started_on(home, "lab2") == {"lab1"})
    return failovers, moves


def lab_processes(home: Path) -> list[int]:
    paths = LabPaths(home)
    names = [paths.switch_netns, *(paths.node_netns(n) for n in ("lab1", "lab2", "lab3"))]
    inodes = [i for i in (netns_inode(Path("/run/netns") / n) for n in names) if i]
    return pids_in_netns(inodes)


def memory(home: Path) -> tuple[float, dict[str, float]]:
    by_program: dict[str, float] = collections.defaultdict(float)
    for pid in lab_processes(home):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                by_program[comm] += int(line.split()[1]) / 1024
    return sum(by_program.values()), dict(by_program)


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--failovers", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("pacemaker_lab.py needs root", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pcmk-bench-") as tmp:
        home = Path(tmp)
        try:
            print(f"quorate, 3 nodes, {args.runs} runs:")
            times = measure_quorate(home, args.runs)
            until(lambda: all_online(home))
            total, by_program = memory(home)
            pids = lab_processes(home)
            before = cpu_seconds(pids)
            time.sleep(10)
            idle = (cpu_seconds(pids) - before) / 10 * 100
            add_resource(home)
            print(f"failover vs move, {args.failovers} runs:")
            failovers, moves = measure_failovers(home, args.failovers)
        finally:
            nslab.down(home)
    print()
    print(f"quorate: min {min(times):.2f} s, median {statistics.median(times):.2f} s,"
          f" max {max(times):.2f} s (goal <= 10 s)")  # fmt: skip
    record("Pacemaker lab quorate (3 nodes, max of runs)", "-", f"{max(times):.2f} s", "-",
           "<= 10 s", max(times) <= 10)  # fmt: skip
    ratio = statistics.median(failovers) / statistics.median(moves)
    print(f"failover after stop: median {statistics.median(failovers):.2f} s"
          f" (min {min(failovers):.2f}, max {max(failovers):.2f});"
          f" move: median {statistics.median(moves):.2f} s; ratio {ratio:.1f}x")  # fmt: skip
    record("failover after a node kill vs a move", f"{statistics.median(moves):.2f} s",
           f"{statistics.median(failovers):.2f} s", f"{ratio:.1f}x", "a few seconds",
           statistics.median(failovers) <= 5)  # fmt: skip
    print(f"memory (PSS): {total:.0f} MiB: " + ", ".join(
        f"{name} {mib:.0f}" for name, mib in sorted(by_program.items(), key=lambda x: -x[1])
    ))  # fmt: skip
    print(f"idle CPU: {idle:.1f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
