"""Synchronous mirrored writes vs plain writes to one volume, in the same run.

Durability semantics, the same on both sides: every write returns only once it is on
disk (``durable=True``: ``pwrite`` + ``fdatasync``):

* baseline: ``Volume.write(offset, data, durable=True)`` on one volume;
* ours: ``Mirror.write(offset, data, durable=True)``, synchronous mode, one target in
  sync: the bitmap bit is made durable first (when not already set), then the source
  gets ``pwrite`` + ``fdatasync`` and the target ``pwrite`` + ``fdatasync`` (in
  parallel), and the write returns when both are on disk.

Volumes start as fresh sparse files of the same size on the same filesystem (so both
sides allocate the same blocks); the bitmap lives there too. Two patterns, each with
the same write size and the same offsets on both sides: sequential 64 KiB writes over
the volume, and random 4 KiB writes in it. The two sides run interleaved, 50 writes at
a time, so that drifts of the disk's speed hit both alike. Throughput = bytes /
seconds; ratio = ours / baseline.

Goal: ratio >= 0.45 (for every pattern).

    python benchmarks/mirrored_write.py [--size-mib 256] [--dir /tmp] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import record

from core.model import MirrorState
from core.replication.bitmap import Bitmap
from core.replication.mirror import Mirror, TargetSpec
from core.replication.volume import Volume

MiB = 1024 * 1024
GOAL = 0.45


def offsets(pattern: str, size: int, bs: int, n: int, seed: int) -> list[int]:
    if pattern == "sequential":
        return [(i * bs) % size for i in range(n)]
    rng = random.Random(seed)
    return [rng.randrange(size // bs) * bs for _ in range(n)]


def measure(work: Path, pattern: str, size: int, bs: int, n: int, seed: int) -> tuple[float, float]:
    """(plain seconds, mirrored seconds) for the same ``n`` writes on each side.

    The two sides run interleaved, 50 writes at a time, alternating which goes first,
    so that drifts of the disk's speed (frequent on shared machines) hit both alike.
    """
    data = os.urandom(bs)
    offs = offsets(pattern, size, bs, n, seed)
    for name in ("plain", "src", "tgt", "bitmap"):
        p = work / name
        if p.exists():
            p.unlink()
    plain_vol = Volume.create(work / "plain", size)
    Volume.create(work / "src", size).close()
    Volume.create(work / "tgt", size).close()  # both all zeros: in sync
    Bitmap.create(work / "bitmap", volume_size=size, targets=["t"], dirty=False).close()
    os.sync()
    m = Mirror(
        work / "src",
        [TargetSpec("t", work / "tgt", MirrorState.TARGET)],
        work / "bitmap",
        speed_limit_kbps=0,
    )
    assert m.state("t") is MirrorState.TARGET
    plain = mirrored = 0.0
    try:
        for i in range(0, n, 50):
            block = offs[i : i + 50]
            sides: list[tuple[str, Callable[[int, bytes], None]]] = [
                ("plain", lambda off, d: plain_vol.write(off, d, durable=True)),
                ("mirror", lambda off, d: m.write(off, d, durable=True)),
            ]
            if (i // 50) % 2:
                sides.reverse()
            for name, write in sides:
                t0 = time.perf_counter()
                for off in block:
                    write(off, data)
                dt = time.perf_counter() - t0
                if name == "plain":
                    plain += dt
                else:
                    mirrored += dt
    finally:
        m.close()
        plain_vol.close()
    assert (work / "src").read_bytes() == (work / "tgt").read_bytes()
    return plain, mirrored


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--writes", type=int, default=4000, help="writes per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="lk-bench-", dir=args.dir))
    failed = False
    try:
        print(f"volume {args.size_mib} MiB, {args.writes} durable writes per run, medians")
        print(f"{'pattern':22}{'baseline MB/s':>15}{'ours MB/s':>11}{'ratio':>8}  goal")
        for pattern, bs in (("sequential", 64 * 1024), ("random", 4096)):
            plains: list[float] = []
            mirrors: list[float] = []
            for i in range(args.repeat):
                p, m = measure(work, pattern, size, bs, args.writes, seed=i)
                plains.append(p)
                mirrors.append(m)
            total = args.writes * bs
            p_mbs = total / statistics.median(plains) / 1e6
            m_mbs = total / statistics.median(mirrors) / 1e6
            ratio = m_mbs / p_mbs
            ok = ratio >= GOAL
            failed |= not ok
            label = f"{pattern} {bs // 1024} KiB"
            record(
                f"mirrored writes, {label} durable",
                f"{p_mbs:.1f} MB/s",
                f"{m_mbs:.1f} MB/s",
                f"{ratio:.2f}",
                f">= {GOAL}",
                ok,
            )
            print(
                f"{label:22}{p_mbs:15.1f}{m_mbs:11.1f}{ratio:8.3f}  >= {GOAL} "
                + ("MET" if ok else "NOT MET")
            )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
