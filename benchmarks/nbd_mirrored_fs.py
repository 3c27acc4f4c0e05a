"""ext4 on the mirrored device vs ext4 on a plain direct-I/O loop device, same disk.

The setting, in the same run (needs root): the mirrored device is the whole stack of
:mod:`core.replication.localdev`: nbdkit hosting the engine (synchronous mirror, bitmap
file) on a Unix socket, ``nbdfuse``, ``losetup --direct-io=on``; its one target is
``nbdkit file`` with TLS-PSK in another network namespace, over a veth pair
(``tests/core/replication/nbdlab.py``), its volume on the same disk as the source. The
baseline is ``losetup --direct-io=on`` over a plain file on that disk. Both get the same
``mkfs.ext4 -b 4096 -E nodiscard`` and are measured alternately:

* sequential write: ``dd if=/dev/zero of=MNT/seq bs=1M count=256 conv=fsync`` (MB/s);
* 4 KiB writes with ``fdatasync`` each: 1000 ``pwrite``s of 4 KiB, one after the other,
  into a file laid out (written and synced) beforehand, each followed by ``fdatasync``
  (what fio's ``--rw=write --bs=4k --fdatasync=1`` does; writes per second).

On the mirrored device every byte is written twice on the one disk (source and
target), and every ``fdatasync`` is a flush on both: 0.5 x is the ceiling here. For
reference the script also measures the link itself, ``nbdcopy --flush`` of 256 MiB to a
second export of the same target nbdkit setup (TLS-PSK, same namespaces): what the
sequential write through the mirror cannot exceed.

Goals: sequential >= 0.45 x the plain loop's, 4 KiB + fdatasync >= 0.30 x.

    sudo python benchmarks/nbd_mirrored_fs.py [--size-mib 512] [--repeat 3] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import record

MiB = 1024 * 1024
GOAL_SEQ = 0.45
GOAL_SYNC = 0.30
SEQ_MIB = 256
SYNC_WRITES = 1000


def run(*argv: str, timeout: float = 300) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def time_sequential(mnt: Path) -> float:
    target = mnt / "seq"
    target.unlink(missing_ok=True)
    os.sync()
    t0 = time.perf_counter()
    run("dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={SEQ_MIB}", "conv=fsync")
    elapsed = time.perf_counter() - t0
    target.unlink()
    return SEQ_MIB * MiB / elapsed / 1e6  # MB/s


def time_fdatasync(mnt: Path) -> float:
    path = mnt / "sync.dat"
    block = os.urandom(4096)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, os.urandom(SYNC_WRITES * 4096))  # laid out first, as fio does
        os.fsync(fd)
        os.sync()
        t0 = time.perf_counter()
        for i in range(SYNC_WRITES):
            os.pwrite(fd, block, i * 4096)
            os.fdatasync(fd)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink()
    return SYNC_WRITES / elapsed  # writes per second


def link_throughput(lab: object, work: Path) -> float:
    """MB/s of ``nbdcopy --flush`` of SEQ_MIB MiB to a second export like the target's."""
    data, other = work / "link-source.img", work / "link-target.img"
    data.write_bytes(os.urandom(SEQ_MIB * MiB))
    with open(other, "wb") as f:
        f.truncate(SEQ_MIB * MiB)
    lab.serve(other, port=10810)  # type: ignore[attr-defined]
    best = 0.0
    for _ in range(3):
        os.sync()
        t0 = time.perf_counter()
        done = lab.in_source("nbdcopy", "--flush", str(data), lab.uri(port=10810))  # type: ignore[attr-defined]
        if done.returncode != 0:
            raise SystemExit(f"nbdcopy: {done.stderr}")
        best = max(best, SEQ_MIB * MiB / (time.perf_counter() - t0) / 1e6)
    data.unlink()
    other.unlink()
    return best


def wait_in_sync(status: Path, timeout: float = 300) -> None:
    from core.replication.hosted import read_status

    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while read_status(status).get("targets", {}).get("t1", {}).get("state") != "TARGET":
        if time.monotonic() > deadline:
            raise SystemExit(f"the target did not get in sync: {read_status(status)}")
        tick.wait(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=512, help="both volumes")
    ap.add_argument("--dir", default="/var/tmp", help="where the volumes go (a real disk)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from core.replication import localdev
    from core.replication.hosted import EngineConfig, EngineTarget, read_status
    from tests.core.replication.nbdlab import NbdLab, skip_reason

    why = skip_reason(fuse=True)
    if why:
        print(f"SKIPPED: {why}")
        return 2
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="lk-bench-fs-", dir=args.dir))
    lab = NbdLab(work)
    plain_loop = ""
    mounts: list[Path] = []
    try:
        src, tgt, plain = work / "source.img", work / "target.img", work / "plain.img"
        for p in (src, tgt, plain):
            with open(p, "wb") as f:
                f.truncate(size)
        lab.serve(tgt)
        link = link_throughput(lab, work)
        status = work / "status.json"
        config = EngineConfig(
            source=str(src),
            bitmap=str(work / "bitmap"),
            targets=(EngineTarget("t1", lab.uri(), deadline=10.0, connect_deadline=10.0),),
            status_file=str(status),
            speed_limit_kbps=0,
        ).save(work / "engine.json")
        dev = lab.device_up(config, work / "dev")
        wait_in_sync(status)
        plain_loop = run("losetup", "--direct-io=on", "--find", "--show", str(plain)).strip()
        ours_mnt, plain_mnt = work / "mnt-mirrored", work / "mnt-plain"
        for device, mnt in ((dev.device, ours_mnt), (plain_loop, plain_mnt)):
            localdev.make_filesystem(device)
            localdev.mount(device, mnt)
            mounts.append(mnt)

        seq: dict[str, list[float]] = {"plain": [], "ours": []}
        syn: dict[str, list[float]] = {"plain": [], "ours": []}
        order = [("plain", plain_mnt), ("ours", ours_mnt)]
        for i in range(args.repeat):  # alternate the order to share any drift
            for name, mnt in order if i % 2 == 0 else order[::-1]:
                seq[name].append(time_sequential(mnt))
            for name, mnt in order if i % 2 == 0 else order[::-1]:
                syn[name].append(time_fdatasync(mnt))
        state = read_status(status)["targets"]["t1"]
        if state["state"] != "TARGET":
            raise SystemExit(f"the target dropped out during the run: {state}")

        sb, so = statistics.median(seq["plain"]), statistics.median(seq["ours"])
        yb, yo = statistics.median(syn["plain"]), statistics.median(syn["ours"])
        rs, ry = so / sb, yo / yb
        print(f"ext4, {args.size_mib} MiB volumes on {args.dir} ({args.repeat} runs, medians)")
        print(f"the link: nbdcopy --flush of {SEQ_MIB} MiB, best of 3: {link:.0f} MB/s")
        print(f"{'':34}{'plain loop':>12}{'mirrored':>12}{'ratio':>8}")
        print(f"{'dd 256 MiB conv=fsync, MB/s':34}{sb:12.0f}{so:12.0f}{rs:8.2f}", end="")
        print(f"   goal >= {GOAL_SEQ}  {'MET' if rs >= GOAL_SEQ else 'NOT MET'}")
        print(f"{'4 KiB + fdatasync, writes/s':34}{yb:12.0f}{yo:12.0f}{ry:8.2f}", end="")
        print(f"   goal >= {GOAL_SYNC}  {'MET' if ry >= GOAL_SYNC else 'NOT MET'}")
        for name in ("plain", "ours"):
            print(f"runs {name:6} seq: " + " ".join(f"{x:.0f}" for x in seq[name]), end="")
            print("   4k: " + " ".join(f"{x:.0f}" for x in syn[name]))
        record(
            "ext4 seq write (dd 256 MiB conv=fsync) mirrored vs plain loop",
            f"{sb:.0f} MB/s",
            f"{so:.0f} MB/s",
            f"{rs:.2f}",
            f">= {GOAL_SEQ}",
            rs >= GOAL_SEQ,
        )
        record(
            "ext4 4 KiB writes + fdatasync mirrored vs plain loop",
            f"{yb:.0f}/s",
            f"{yo:.0f}/s",
            f"{ry:.2f}",
            f">= {GOAL_SYNC}",
            ry >= GOAL_SYNC,
        )
        return 0
    finally:
        for mnt in mounts:
            subprocess.run(["umount", str(mnt)], capture_output=True, timeout=120, check=False)
        if plain_loop:
            subprocess.run(["losetup", "-d", plain_loop], capture_output=True, check=False)
        problems = lab.close()
        shutil.rmtree(work, ignore_errors=True)
        if problems:
            print("cleanup problems: " + "; ".join(problems), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
