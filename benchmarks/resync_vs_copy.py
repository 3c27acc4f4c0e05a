"""Full resync of a volume vs ``shutil.copyfile`` of the same file on the same disk.

Both sides, in the same run, on the same filesystem, from the same page-cache state:

* before every measurement: the previous destination is deleted, ``sync()`` flushes
  everything dirty, and the source is read once (warm-up), so both read it from cache;
* both end durable: ``copyfile`` is followed by an ``fsync`` of the copy, the resync
  flushes (``fdatasync``) the target before it declares it in sync (it must);
* the resync is the whole job: create the bitmap file, mark every chunk dirty durably,
  copy, commit the bits, flush; speed limit 0 (unlimited: the default 500000 KB/s
  would cap it at 500 MB/s, which is policy, not engine speed).

Goal: resync throughput >= 0.95 x copy throughput (medians of ``--repeat`` runs).

    python benchmarks/resync_vs_copy.py [--size-mib 1024] [--dir /tmp] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import record

from core.replication.bitmap import Bitmap
from core.replication.resync import Resync
from core.replication.volume import Volume

MiB = 1024 * 1024
GOAL = 0.95


def make_source(path: Path, size: int) -> None:
    block = os.urandom(16 * MiB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())


def prepare(src: Path, *stale: Path) -> None:
    for p in stale:
        if p.exists():
            p.unlink()
    os.sync()
    with open(src, "rb") as f:  # warm-up: the source is read from the page cache
        while f.readinto(bytearray(16 * MiB)):
            pass


def time_copy(src: Path, dst: Path) -> float:
    prepare(src, dst)
    t0 = time.perf_counter()
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t0


def time_resync(src: Path, dst: Path, bitmap: Path) -> float:
    prepare(src, dst, bitmap)
    t0 = time.perf_counter()
    with Volume.open(src, readonly=True) as s, Volume.create(dst, s.size) as t:
        bm = Bitmap.create(bitmap, volume_size=s.size, targets=["t"], dirty=False)
        result = Resync(s, t, bm, "t", full=True, speed_limit_kbps=0).run()
        bm.close()
    elapsed = time.perf_counter() - t0
    assert result.in_sync and result.bytes_copied == src.stat().st_size
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    args = ap.parse_args()
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="lk-bench-", dir=args.dir))
    try:
        src = work / "source.img"
        make_source(src, size)
        for _ in range(args.warmup):  # untimed: the first runs pay for cold metadata
            time_copy(src, work / "copy.img")
            time_resync(src, work / "target.img", work / "bitmap")
        copies: list[float] = []
        resyncs: list[float] = []
        for i in range(args.repeat):  # alternate the order to share any drift
            if i % 2 == 0:
                copies.append(time_copy(src, work / "copy.img"))
                resyncs.append(time_resync(src, work / "target.img", work / "bitmap"))
            else:
                resyncs.append(time_resync(src, work / "target.img", work / "bitmap"))
                copies.append(time_copy(src, work / "copy.img"))
        c, r = statistics.median(copies), statistics.median(resyncs)
        c_mbs, r_mbs = size / c / 1e6, size / r / 1e6
        ratio = r_mbs / c_mbs
        print(f"volume {args.size_mib} MiB in {work} ({args.repeat} runs each, medians)")
        print(f"{'':24}{'time s':>9}{'MB/s':>9}")
        print(f"{'baseline copyfile+fsync':24}{c:9.3f}{c_mbs:9.0f}")
        print(f"{'ours full resync':24}{r:9.3f}{r_mbs:9.0f}")
        print(f"{'ratio (throughput)':24}{ratio:9.3f}   goal >= {GOAL}  ", end="")
        print("MET" if ratio >= GOAL else "NOT MET")
        record(
            f"full resync of {args.size_mib} MiB vs copyfile",
            f"{c_mbs:.0f} MB/s",
            f"{r_mbs:.0f} MB/s",
            f"{ratio:.2f}",
            f">= {GOAL}",
            ratio >= GOAL,
        )
        print("runs copy:  " + " ".join(f"{x:.3f}" for x in copies))
        print("runs resync: " + " ".join(f"{x:.3f}" for x in resyncs))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
