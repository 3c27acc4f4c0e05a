"""The Pacemaker backend on the lab: a snapshot of 3 nodes × 50 hierarchies, and the watch.

* snapshot: ``PacemakerBackend.snapshot()`` (crm_mon + cibadmin --query + corosync-cfgtool
  side by side, parsed into a Cluster) of a 3-node lab with 50 hierarchies (25 IP
  addresses, 25 Generic Applications, each extended to all three nodes). Baseline in the
  same run: the bare ``crm_mon --one-shot --output-as=xml`` call it makes, through the
  same runner. Goals: ≤ 0.3 s, and ≤ 2× the crm_mon call. Medians of ``--runs``.
* watch: CPU time of the watch (the console process, all its threads, and the crm_mon
  stream it keeps on a node, with its nsenter) over ``--idle`` seconds with nothing
  changing. Baseline in the same run: the cheapest polling watcher (``cibadmin --query
  --xpath /cib --no-children`` twice a second, which would notice a change within 0.5 s).
  Goal: ≤ 2 % of one core.

Needs root. ``python benchmarks/pacemaker_backend.py [--runs 20] [--idle 30]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._summary import record
from core.backends.pacemaker import cib, connect, nslab
from core.backends.pacemaker.backend import CRM_MON, PacemakerBackend
from core.events import ClusterChanged, EventHub
from core.model import ResourceKind, SwitchbackType

HIERARCHIES = 50
NODES = ("lab1", "lab2", "lab3")
TICKS = os.sysconf("SC_CLK_TCK")


def populate(backend: PacemakerBackend) -> None:
    """50 hierarchies in one CIB change, each on all 3 nodes; wait until all run."""
    current = cib.parse(backend.runner.run(["cibadmin", "--query"]).stdout)
    work = cib.copy_of(current)
    for i in range(HIERARCHIES):
        home = NODES[i % 3]
        if i % 2 == 0:
            tag = f"bench-ip-{i}"
            settings: tuple[tuple[str, str], ...] = (
                ("address", f"10.213.0.{100 + i}/24"),
                ("interface", "eth0"),
            )
            kind = ResourceKind.IP
        else:
            tag = f"/bench/app-{i}"
            settings = (("start", "true"), ("stop", "true"))
            kind = ResourceKind.APP
        top = cib.new_hierarchy(
            work, tag=tag, kind=kind, settings=settings, server=home,
            switchback=SwitchbackType.INTELLIGENT,
        )  # fmt: skip
        for n, other in enumerate(x for x in NODES if x != home):
            cib.set_priority(work, top, other, 10 * (n + 1))
    done = backend.runner.run(["cibadmin", "--replace", "--xml-pipe"], input_text=cib.to_text(work))
    if not done.ok:
        raise SystemExit(f"cannot push the hierarchies: {done.detail}")
    began = time.monotonic()
    pause = threading.Event()
    while True:
        cluster = backend.snapshot()
        running = sum(1 for h in cluster.hierarchies if h.in_service_server)
        if running == HIERARCHIES:
            break
        if time.monotonic() - began > 180:
            raise SystemExit(f"only {running} of {HIERARCHIES} hierarchies run after 180 s")
        pause.wait(0.5)
    print(f"  {HIERARCHIES} hierarchies in service after {time.monotonic() - began:.1f} s")


def median_time(call: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure_snapshot(backend: PacemakerBackend, runs: int) -> None:
    crm_mon = median_time(lambda: backend.runner.run(CRM_MON), runs)
    snapshot = median_time(backend.snapshot, runs)
    cluster = backend.snapshot()
    size = len(backend.runner.run(CRM_MON).stdout) + len(
        backend.runner.run(["cibadmin", "--query"]).stdout
    )
    ratio = snapshot / crm_mon
    met = snapshot <= 0.3 and ratio <= 2.0
    print(
        f"snapshot of {len(cluster.servers)} nodes × {len(cluster.hierarchies)} hierarchies "
        f"({size // 1024} KiB of XML): {snapshot * 1000:.0f} ms; crm_mon alone "
        f"{crm_mon * 1000:.0f} ms; ratio {ratio:.2f} (goal ≤ 0.3 s and ≤ 2×): "
        f"{'met' if met else 'NOT met'}"
    )
    record(
        "Pacemaker snapshot, 3 nodes × 50 hierarchies",
        f"crm_mon --output-as=xml {crm_mon * 1000:.0f} ms",
        f"{snapshot * 1000:.0f} ms",
        f"{ratio:.2f}×",
        "≤ 0.3 s and ≤ 2×",
        met,
    )


def _tree(root: int) -> list[int]:
    """``root`` and every process below it (host PIDs)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parents[int(name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _cpu_of(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _own_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_watch(backend: PacemakerBackend, idle: float) -> None:
    pause = threading.Event()
    # Baseline: the cheapest poller that notices a change within 0.5 s.
    argv = ["cibadmin", "--query", "--xpath", "/cib", "--no-children"]
    began_cpu, began = _own_cpu(), time.monotonic()
    while time.monotonic() - began < idle:
        ET.fromstring(backend.runner.run(argv).stdout)
        pause.wait(0.5)
    poller = (_own_cpu() - began_cpu) / (time.monotonic() - began)

    hub = EventHub()
    seen: list[object] = []
    hub.subscribe(seen.append, ClusterChanged)
    watch = backend.watch(hub)
    while not seen:
        pause.wait(0.05)
    pause.wait(2.0)  # the first snapshot's work is done
    stream = watch.stream_pid
    stream_pids = _tree(stream) if stream is not None else []
    snapshots = watch.snapshots
    began_cpu, began_stream, began = _own_cpu(), _cpu_of(stream_pids), time.monotonic()
    pause.wait(idle)
    elapsed = time.monotonic() - began
    ours = (_own_cpu() - began_cpu + _cpu_of(stream_pids) - began_stream) / elapsed
    extra = watch.snapshots - snapshots
    watch.stop()
    met = ours <= 0.02
    print(
        f"watch, {elapsed:.0f} s with nothing changing: {ours * 100:.3f} % of one core "
        f"({extra} snapshots; the crm_mon stream: {len(stream_pids)} processes); polling "
        f"baseline {poller * 100:.2f} %; ratio {ours / poller if poller else 0:.3f} "
        f"(goal ≤ 2 %): {'met' if met else 'NOT met'}"
    )
    record(
        "Pacemaker watch CPU, idle",
        f"poll 2/s {poller * 100:.2f} %",
        f"{ours * 100:.3f} %",
        f"{ours / poller if poller else 0:.3f}×",
        "≤ 2 % of one core",
        met,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("pacemaker_backend: needs root (the Pacemaker lab); skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="lkbench-pcmk-") as tmp:
        home = Path(tmp)
        nslab.up(home, 3, seed=False)  # the cluster alone, without the seed's /data
        try:
            backend = connect("pacemaker-lab", home=home)
            try:
                populate(backend)
                measure_snapshot(backend, args.runs)
                measure_watch(backend, args.idle)
            finally:
                backend.close()
        finally:
            nslab.down(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
