"""DataKeeper on the Pacemaker lab: the mirrored file system and the resyncs, vs baselines.

The setting (needs root): a seeded 2-node Pacemaker lab of its own (``nslab.up``, the
seed's ``/data`` on the mirror ``datarep-data``, in service on lab1), the volume made
``--size-mib`` large (1 GiB by default instead of the seed's 64 MiB), then extended to
lab2 as a user does it (``lkctl extend /data --target lab2 --accept-defaults``). Every
write to ``/data`` then goes through the whole stack: ext4, the loop device, nbdfuse,
the engine hosted in nbdkit on lab1, lab1's volume and, over NBD with TLS, lab2's
volume. Everything is measured on lab1 (inside its namespaces), baselines in the same
run, alternately with ours:

* sequential write: ``dd if=/dev/zero of=FILE bs=1M count=256 conv=fsync`` on ``/data``
  vs on ext4 (made as the agent makes it) on ``losetup --direct-io=on`` over a plain file
  on the same disk; goal >= 0.45 x. The same, first, before the extend (the mirror has no
  target: ext4, the loop device, nbdfuse, the engine and lab1's volume, nothing sent),
  printed as the sequential row's ceiling here (no target can make a write faster);
* 4 KiB writes with ``fdatasync`` each (fio is not installed here: a loop of ``pwrite``
  + ``fdatasync`` into a file laid out beforehand, what ``fio --rw=write --bs=4k
  --fdatasync=1`` does), same two file systems; goal >= 0.30 x;
* full resync: the engine's own (``full_resync`` on its control socket, speed limit 0
  (``lkctl mirror speed datarep-data 0``) and no floor: the default 500000 KB/s, and
  20000 KB/s while writes compete, are policy, not engine speed) until lab2 is Target
  again, vs
  ``nbdcopy --flush`` of lab1's volume to lab2's target export (the same nbdkit, TLS, the
  mirror's key), the target paused meanwhile; goal >= 0.8 x nbdcopy's throughput;
* partial resync: 1 % of the chunks (every 100th: scattered, the hard case) marked dirty
  (``mark_dirty``) while lab2 is paused, then ``resume`` until Target; goal <= 0.03 x
  the full resync's time.

Before the resyncs ``/data`` is filled with random data (so nbdcopy cannot skip zeros
the engine copies). The lab is taken down at the end and nothing of it may be left (no
namespace, process, mount or loop device: ``tests.cluster.labtools.leftovers``).

What bounds the sequential row on this 2-core machine (measured on 2026-12-04, perf and
py-spy during the rounds): without any target the local path alone reaches 0.28, 0.42
and 0.48 x of the plain loop (medians of three runs; rounds 0.18-0.52); with the target,
less than half of that: the engine's process takes 1.7 ms of CPU per MiB (kernel 63 %:
the source's page-cache writes, the socket copies, TCP over the veth pair; Python 17 %;
GnuTLS 13 %), lab2's nbdkit 0.8 ms, nbdfuse 0.4 ms, and the CPUs are still a third idle:
a connection sends for one writer at a time, one 16 KiB TLS record per libnbd call made
from Python (most writers wait for the connection's send lock). Without the cluster, 1 MiB
``O_DIRECT`` writes into nbdfuse's file over a 30-line nbdkit Python plugin (``pwrite``
and nothing else) ran at 1.1 GB/s against 1.5-2.1 GB/s into a plain file, and ``nbdcopy`` to
lab2's target (TLS) runs at about 1 GB/s: each alone is near half of a plain loop at
1.3-2.1 GB/s, and a mirrored write needs both. Earlier tries that changed nothing:
nbdkit's threads (``-t 1/2/4``), nbdfuse's connections (``-C 1/8``), the NBD connections
per target (1/2/4), larger hot extents.

Each sequential row also prints the machine's CPU time per MiB written (``/proc/stat``:
user, nice, system, irq, softirq) and the rate that much CPU allows with every CPU busy:
on 2026-12-04 plain 0.3-0.5 ms, ours 4.0-4.4 ms per MiB, so at most 475-526 MB/s, a ratio
of at most 0.31-0.32 against a plain loop at 1.5-1.6 GB/s: the 0.45 goal would need under
2.8 ms per MiB for everything a mirrored write costs on this 2-core machine.

    sudo .venv/bin/python benchmarks/pacemaker_datakeeper.py [--size-mib 1024] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import record

MiB = 1024 * 1024
GOAL_SEQ = 0.45
GOAL_SYNC = 0.30
GOAL_FULL = 0.8
GOAL_PARTIAL = 0.03
SEQ_MIB = 256
SYSTEM_PYTHON = "/usr/bin/python3"
RID = "datarep-data"
NODE = "lab1"
TARGET = "lab2"
POLL = 0.001


# -- inside lab1, under the system python3 (what the agent runs under) ---------------------


def _control(op: str, timeout: float = 60.0, **fields: object) -> dict[str, object]:
    from core.backends.pacemaker import dk_names as names
    from core.replication import control

    sock = Path(names.run_dir(RID)) / "ctl" / "control.sock"
    return control.request(sock, op, timeout=timeout, **fields)


def _until_target(timeout: float = 900.0) -> float:
    """Until lab2 is Target; when it was (``perf_counter``). The engine answers ``wait``
    the moment it is: no polling interval and no status request in the measure (a status
    takes 1-4 ms, a tenth of a partial resync); then, unmeasured, its resync thread has
    ended (within milliseconds)."""
    deadline = time.monotonic() + timeout
    _control("wait", timeout + 10, target=TARGET, seconds=timeout)
    reached = time.perf_counter()
    while True:
        state = _control("status")["targets"][TARGET]  # type: ignore[index]
        if state["state"] == "TARGET" and not state["resyncing"]:
            return reached
        if time.monotonic() > deadline:
            raise SystemExit(f"{TARGET} did not get in sync: {state}")
        time.sleep(POLL)


def _busy() -> float:
    """Seconds the machine's CPUs have been busy (user, nice, system, irq and softirq of
    all of them, from ``/proc/stat``, which no namespace hides): every process of the
    path counts, on either node, the kernel's share included."""
    with open("/proc/stat", encoding="ascii") as f:
        user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def inner_sequential(folder: str) -> dict[str, float]:
    """The dd's rate (MB/s) and the machine's CPU time it took (ms per MiB written)."""
    target = Path(folder) / "lk-bench-seq"
    target.unlink(missing_ok=True)
    os.sync()
    busy, t0 = _busy(), time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={SEQ_MIB}", "conv=fsync"],
        capture_output=True, timeout=600, check=True,
    )  # fmt: skip
    elapsed, busy = time.perf_counter() - t0, _busy() - busy
    target.unlink()
    return {"rate": SEQ_MIB * MiB / elapsed / 1e6, "cpu": busy * 1000 / SEQ_MIB}


def inner_fdatasync(folder: str, writes: int) -> float:
    path = Path(folder) / "lk-bench-sync"
    block = os.urandom(4096)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, os.urandom(writes * 4096))  # laid out first, as fio does
        os.fsync(fd)
        os.sync()
        t0 = time.perf_counter()
        for i in range(writes):
            os.pwrite(fd, block, i * 4096)
            os.fdatasync(fd)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink()
    return writes / elapsed  # writes per second


def inner_nbdcopy(volume: str, uri: str) -> float:
    _control("pause", target=TARGET)
    try:
        os.sync()
        t0 = time.perf_counter()
        subprocess.run(
            ["nbdcopy", "--flush", volume, uri], capture_output=True, timeout=900, check=True
        )
        elapsed = time.perf_counter() - t0
    finally:
        _control("resume", target=TARGET)
    _until_target()
    return elapsed


def inner_full() -> float:
    os.sync()
    t0 = time.perf_counter()
    _control("full_resync", target=TARGET)
    return _until_target() - t0


def inner_partial(every: int) -> tuple[float, int]:
    status = _control("status")
    chunks = -(-int(status["size"]) // int(status["chunk_size"]))  # type: ignore[call-overload]
    _control("pause", target=TARGET)
    runs = [(c, c + 1) for c in range(0, chunks, every)]
    marked = int(_control("mark_dirty", target=TARGET, runs=runs, reason="benchmark")["marked"])  # type: ignore[call-overload]
    os.sync()
    t0 = time.perf_counter()
    _control("resume", target=TARGET)
    return _until_target() - t0, marked


def inner(argv: list[str]) -> int:
    kind, rest = argv[0], argv[1:]
    if kind == "seq":
        value: object = inner_sequential(rest[0])
    elif kind == "sync":
        value = inner_fdatasync(rest[0], int(rest[1]))
    elif kind == "nbdcopy":
        value = inner_nbdcopy(rest[0], rest[1])
    elif kind == "full":
        value = inner_full()
    elif kind == "partial":
        value = inner_partial(int(rest[0]))
    elif kind == "speed":
        value = _control("speed", kbps=int(rest[0]), min_kbps=int(rest[1]))
    elif kind == "drops":
        value = inner_drops()
    elif kind == "state":
        value = _control("status")["targets"]
    else:
        raise SystemExit(f"unknown inner step {kind}")
    print(json.dumps(value))
    return 0


# -- the outer script (the venv's python, root) ------------------------------------------------


def on_node(home: Path, *args: str, timeout: float = 900.0) -> object:
    """One inner step on lab1; its JSON answer."""
    from core.backends.pacemaker import nslab

    argv = [SYSTEM_PYTHON, str(Path(__file__).resolve()), "--inner", *args]
    rc, out, err = nslab.exec(home, NODE, argv, timeout)
    if rc != 0:
        raise SystemExit(f"{args[0]} on {NODE} failed (exit {rc}): {err.strip()[-1500:]}")
    return json.loads(out.strip().splitlines()[-1])


def node_run(home: Path, *argv: str, timeout: float = 300.0) -> str:
    from core.backends.pacemaker import nslab

    rc, out, err = nslab.exec(home, NODE, list(argv), timeout)
    if rc != 0:
        raise SystemExit(f"{' '.join(argv)} on {NODE} failed (exit {rc}): {err.strip()}")
    return out


def host_run(*argv: str, timeout: float = 300.0) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def lkctl(home: Path, *args: str) -> str:
    """``lkctl --cluster pacemaker-lab ARGS`` as a user runs it; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "--cluster", "pacemaker-lab", *args],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300,
        env={**os.environ, "LKCONSOLE_HOME": str(home), "LKCONSOLE_CLUSTER": ""}, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"lkctl {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def bring_up(home: Path, size: int) -> set[int]:
    """The seeded 2-node lab with a ``size`` volume, extended to lab2 (Target); the
    nodes' init PIDs."""
    pids = lab_up(home, size)
    extend(home)
    return pids


def lab_up(home: Path, size: int) -> set[int]:
    """The seeded 2-node lab with a ``size`` volume, not extended; the nodes' init PIDs."""
    from core.backends.pacemaker import nslab, nslab_seed

    nslab_seed.SIZE = size  # the seed reads it when it makes the volume and its CIB
    t0 = time.monotonic()
    status = nslab.up(home, nodes=2)
    print(f"lab up, /data in service on {NODE}: {time.monotonic() - t0:.1f} s")
    return {n.init_pid for n in status.nodes if n.init_pid}


def extend(home: Path) -> None:
    """Extend ``/data`` to lab2 as a user does, until lab2 is Target; no speed limit."""
    t0 = time.monotonic()
    lkctl(home, "extend", "/data", "--target", TARGET, "--accept-defaults")
    deadline = time.monotonic() + 600
    while True:
        try:
            state = on_node(home, "state", timeout=60)[TARGET]  # type: ignore[index]
        except (SystemExit, KeyError):
            state = {}
        if state.get("state") == "TARGET" and not state.get("resyncing"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{TARGET} did not become a Target: {state}")
        time.sleep(0.2)
    print(f"extended to {TARGET}, in sync: {time.monotonic() - t0:.1f} s")
    # no limit, no floor: the engine's speed, not policy. The limit as a user sets it
    # (the CIB keeps it: the source's agent puts the CIB's back at its monitor, and a
    # limit set on the engine alone was the default 500000 KB/s again within seconds);
    # the floor while writes compete (20000 KB/s by default) on the engine itself
    lkctl(home, "mirror", "speed", RID, "0")
    on_node(home, "speed", "0", "0")


def plain_fs(home: Path, size: int) -> tuple[str, Path]:
    """ext4 (made as the agent makes it) on a direct-I/O loop over a plain file on the
    same disk, mounted in lab1; the loop device and the mount point."""
    image = home / "plain.img"
    with open(image, "wb") as f:
        f.truncate(size)
    # as the agent makes it, initialised at once (no lazy init writing during the runs)
    init = "nodiscard,lazy_itable_init=0,lazy_journal_init=0"
    host_run("mkfs.ext4", "-q", "-F", "-E", init, str(image))
    loop = host_run("losetup", "--direct-io=on", "--find", "--show", str(image)).strip()
    mnt = home / "mnt-plain"
    mnt.mkdir()
    node_run(home, "mount", "-t", "ext4", loop, str(mnt))
    return loop, mnt


def measure_fs(
    home: Path, plain: Path, repeat: int, writes: int
) -> dict[str, dict[str, list[float]]]:
    """Both file systems, alternately (the order swapped every round)."""
    got: dict[str, dict[str, list[float]]] = {
        "seq": {"plain": [], "ours": []},
        "sync": {"plain": [], "ours": []},
        "cpu": {"plain": [], "ours": []},
    }
    order = [("plain", str(plain)), ("ours", "/data")]
    for i in range(repeat):
        for name, folder in order if i % 2 == 0 else order[::-1]:
            _seq(home, folder, got["seq"][name], got["cpu"][name])
        for name, folder in order if i % 2 == 0 else order[::-1]:
            got["sync"][name].append(float(on_node(home, "sync", folder, str(writes))))  # type: ignore[arg-type]
        still_in_sync(home)
        print(f"  round {i + 1}: " + ", ".join(
            f"{k} {n} {got[k][n][-1]:.0f}" for k in ("seq", "sync") for n in ("plain", "ours")
        ))  # fmt: skip
    return got


def measure_alone(home: Path, plain: Path, repeat: int) -> dict[str, list[float]]:
    """The sequential write before the extend: ``/data`` on the mirrored device with no
    target (ext4, the loop device, nbdfuse, the engine and lab1's volume, nothing sent),
    alternately with the plain loop. No target can make the mirrored write faster than
    this: it is the sequential row's ceiling on this machine. The cluster's start-up
    (probes, first monitors) is over first."""
    node_run(home, "crm_resource", "--wait", "--timeout=300", timeout=330)
    got: dict[str, list[float]] = {"plain": [], "ours": [], "cpu plain": [], "cpu ours": []}
    order = [("plain", str(plain)), ("ours", "/data")]
    for i in range(repeat):
        for name, folder in order if i % 2 == 0 else order[::-1]:
            _seq(home, folder, got[name], got[f"cpu {name}"])
        print(f"  round {i + 1}: seq plain {got['plain'][-1]:.0f}, "
              f"seq without a target {got['ours'][-1]:.0f}")  # fmt: skip
    return got


def _seq(home: Path, folder: str, rates: list[float], cpu: list[float]) -> None:
    got = on_node(home, "seq", folder)
    rates.append(float(got["rate"]))  # type: ignore[index]
    cpu.append(float(got["cpu"]))  # type: ignore[index]


def cpu_bound(plain: list[float], cpu_plain: list[float], cpu_ours: list[float]) -> str:
    """What the CPU time per MiB allows: with every CPU of the machine busy all the time,
    the mirrored write cannot go faster than ``CPUs / (CPU time per MiB)``."""
    cpus = os.cpu_count() or 1
    per_plain, per_ours = statistics.median(cpu_plain), statistics.median(cpu_ours)
    most = cpus * 1000 / per_ours * MiB / 1e6  # MB/s
    ratio = most / statistics.median(plain)
    return (f"    CPU time of the machine per MiB written: plain {per_plain:.2f} ms, ours"
            f" {per_ours:.2f} ms; with all {cpus} CPUs busy, ours could reach at most"
            f" {most:.0f} MB/s: a ratio of at most {ratio:.2f}")  # fmt: skip


def still_in_sync(home: Path) -> None:
    """lab2 is Target and never left: the engine's log has no "Out of Sync" since the
    extend's resync, so every write of the rounds went to both nodes."""
    state = on_node(home, "state", timeout=60)[TARGET]  # type: ignore[index]
    drops = int(on_node(home, "drops", timeout=60))  # type: ignore[call-overload]
    if state["state"] != "TARGET" or state["resyncing"] or drops:
        raise SystemExit(f"{TARGET} dropped out of the mirror during the run: {state}")


def inner_drops() -> int:
    """Times a target went Out of Sync after being Target, by the engine's log."""
    from core.backends.pacemaker import dk_names as names

    log = Path(names.run_dir(RID)) / "dev" / "engine.log"
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    first = next((i for i, line in enumerate(lines) if f"{TARGET}: Target" in line), len(lines))
    return sum(f"{TARGET}: Out of Sync" in line for line in lines[first:])


def fill(home: Path) -> None:
    """``/data`` nearly full of random data (its free space less 32 MiB)."""
    free = int(node_run(home, "df", "--output=avail", "-B1M", "/data").split()[-1])
    node_run(
        home, "dd", "if=/dev/urandom", "of=/data/lk-bench-fill", "bs=1M",
        f"count={max(1, free - 32)}", "conv=fsync", timeout=900,
    )  # fmt: skip


def target_uri() -> str:
    from core.backends.pacemaker import dk_names as names
    from core.backends.pacemaker.nslab_files import node_address
    from core.replication.nbd import NbdEndpoint

    return NbdEndpoint(
        host=str(node_address(TARGET)),
        port=names.PORT_BASE,
        psk_file=Path(names.state_dir(RID)) / "psk",
        psk_user=names.PSK_USER,
    ).uri()


def measure_resync(home: Path, repeat: int, every: int) -> dict[str, list[float]]:
    """nbdcopy, the full resync and the partial one, in an order that turns every round."""
    from core.backends.pacemaker import nslab_seed

    uri = target_uri()
    got: dict[str, list[float]] = {"nbdcopy": [], "full": [], "partial": [], "marked": []}
    for i in range(repeat):
        steps = ["nbdcopy", "full", "partial"]
        for step in steps[i % 3 :] + steps[: i % 3]:
            if step == "nbdcopy":
                got[step].append(float(on_node(home, "nbdcopy", nslab_seed.VOLUME, uri)))  # type: ignore[arg-type]
            elif step == "full":
                got[step].append(float(on_node(home, "full")))  # type: ignore[arg-type]
            else:
                elapsed, marked = on_node(home, "partial", str(every))  # type: ignore[misc]
                got["partial"].append(float(elapsed))
                got["marked"].append(float(marked))
        print("  round {}: nbdcopy {:.2f} s, full {:.2f} s, partial {:.3f} s".format(
            i + 1, got["nbdcopy"][-1], got["full"][-1], got["partial"][-1]))  # fmt: skip
    return got


def _spread(values: list[float], fmt: str) -> str:
    return " ".join(format(v, fmt) for v in values)


def _runs(plain: list[float], ours: list[float]) -> str:
    pairs = [o / b for o, b in zip(ours, plain, strict=True)]
    return (f"    runs plain: {_spread(plain, '.0f')}; ours: {_spread(ours, '.0f')}; "
            f"ratio of each round: {_spread(pairs, '.2f')}")  # fmt: skip


def report_alone(alone: dict[str, list[float]]) -> None:
    base, ours = statistics.median(alone["plain"]), statistics.median(alone["ours"])
    print(f"the same dd before the extend (no target: the local path alone, the ceiling of"
          f" the sequential row here): plain {base:.0f} MB/s, ours {ours:.0f} MB/s, ratio"
          f" {ours / base:.2f}")  # fmt: skip
    print(_runs(alone["plain"], alone["ours"]))
    print(cpu_bound(alone["plain"], alone["cpu plain"], alone["cpu ours"]))


def report_fs(fs: dict[str, dict[str, list[float]]]) -> None:
    rows = (
        ("seq", f"ext4 on /data, dd {SEQ_MIB} MiB conv=fsync vs plain loop", "MB/s", GOAL_SEQ),
        ("sync", "ext4 on /data, 4 KiB writes + fdatasync vs plain loop", "/s", GOAL_SYNC),
    )
    for key, measure, unit, goal in rows:
        base, ours = statistics.median(fs[key]["plain"]), statistics.median(fs[key]["ours"])
        ratio = ours / base
        met = ratio >= goal
        print(f"{measure}: plain {base:.0f} {unit}, ours {ours:.0f} {unit}, ratio {ratio:.2f}"
              f" (goal >= {goal}: {'MET' if met else 'NOT MET'})")  # fmt: skip
        print(_runs(fs[key]["plain"], fs[key]["ours"]))
        if key == "seq":
            print(cpu_bound(fs["seq"]["plain"], fs["cpu"]["plain"], fs["cpu"]["ours"]))
        record(f"Pacemaker lab: {measure}", f"{base:.0f} {unit}", f"{ours:.0f} {unit}",
               f"{ratio:.2f}", f">= {goal}", met)  # fmt: skip


def report_resync(rs: dict[str, list[float]], size: int) -> None:
    copy, full = statistics.median(rs["nbdcopy"]), statistics.median(rs["full"])
    part = statistics.median(rs["partial"])
    mib = size // MiB
    ratio_full, ratio_part = copy / full, part / full
    met_full, met_part = ratio_full >= GOAL_FULL, ratio_part <= GOAL_PARTIAL
    print(f"full resync of {mib} MiB: nbdcopy {mib / copy:.0f} MiB/s, ours {mib / full:.0f}"
          f" MiB/s, ratio {ratio_full:.2f} (goal >= {GOAL_FULL}: "
          f"{'MET' if met_full else 'NOT MET'})")  # fmt: skip
    print(f"partial resync ({int(rs['marked'][0])} chunks dirty): {part:.3f} s vs full"
          f" {full:.2f} s, ratio {ratio_part:.3f} (goal <= {GOAL_PARTIAL}: "
          f"{'MET' if met_part else 'NOT MET'})")  # fmt: skip
    runs = [_spread(rs[k], f) for k, f in (("nbdcopy", ".2f"), ("full", ".2f"), ("partial", ".3f"))]
    print("    runs nbdcopy: {} s; full: {} s; partial: {} s".format(*runs))
    record(f"Pacemaker lab: full resync of {mib} MiB vs nbdcopy to lab2", f"{mib / copy:.0f} MiB/s",
           f"{mib / full:.0f} MiB/s", f"{ratio_full:.2f}", f">= {GOAL_FULL}", met_full)  # fmt: skip
    record("Pacemaker lab: partial resync (1 % dirty) vs full", f"{full:.2f} s", f"{part:.3f} s",
           f"{ratio_part:.3f}", f"<= {GOAL_PARTIAL}", met_part)  # fmt: skip


def take_down(home: Path, loop: str, mnt: Path | None, pids: set[int]) -> list[str]:
    """The plain file system, then the lab; what is left of either (nothing, normally)."""
    from core.backends.pacemaker import nslab
    from tests.cluster.labtools import leftovers

    problems: list[str] = []
    if mnt is not None:
        rc, _out, err = nslab.exec(home, NODE, ["umount", str(mnt)], 120)
        if rc != 0:
            problems.append(f"umount {mnt} on {NODE}: {err.strip()}")
    if loop:
        done = subprocess.run(["losetup", "-d", loop], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        if done.returncode != 0:
            problems.append(f"losetup -d {loop}: {done.stderr.strip()}")
    nslab.down(home)
    return problems + leftovers(home, pids)


def unavailable() -> str:
    """Why the lab cannot run here, or ''."""
    if os.geteuid() != 0:
        return "needs root (the Pacemaker lab: namespaces, mounts, loop devices)"
    for tool in ("pacemakerd", "corosync", "nbdkit", "nbdfuse", "nbdcopy", SYSTEM_PYTHON):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return ""


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="the mirror's volume")
    ap.add_argument("--repeat", type=int, default=5, help="rounds of each measure")
    ap.add_argument("--sync-writes", type=int, default=1000, help="4 KiB writes per round")
    ap.add_argument("--dir", default="/var/tmp", help="where the lab lives (a real disk)")
    ap.add_argument("--inner", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        return inner(args.inner)
    why = unavailable()
    if why:
        print(f"SKIPPED: {why}")
        return 2
    size = args.size_mib * MiB
    home = Path(tempfile.mkdtemp(prefix="lk-bench-dk-", dir=args.dir))
    loop, mnt, pids = "", None, set()
    load_before = _load()
    try:
        pids = lab_up(home, size)
        loop, mnt = plain_fs(home, size)
        alone = measure_alone(home, mnt, args.repeat)
        extend(home)
        fs = measure_fs(home, mnt, args.repeat, args.sync_writes)
        fill(home)
        rs = measure_resync(home, args.repeat, 100)
        print(f"Pacemaker lab, {args.size_mib} MiB volumes on {args.dir}, "
              f"{args.repeat} rounds, medians:")  # fmt: skip
        # the machine is shared: the rounds' spread follows its load, say what it was
        print(f"load average (1, 5, 15 min): before {load_before}, after {_load()}")
        report_alone(alone)
        report_fs(fs)
        report_resync(rs, size)
        return 0
    finally:
        left = take_down(home, loop, mnt, pids)
        shutil.rmtree(home, ignore_errors=True)
        if left:
            print("LEFT BEHIND: " + "; ".join(left), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
