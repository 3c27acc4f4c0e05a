"""Online verify of a mirror vs reading both of its volume files once.

Source and target hold the same random content (written, not sparse, flushed). In the
same run, for each page-cache state, alternating the order of the measurements:

* baseline: read the source, then the target, once each (4 MiB ``readinto`` into one
  reused buffer, one thread): throughput = 2 x size / time;
* ours: a :class:`~core.replication.verify.Verify` of the target (speed limit 0, a real
  bitmap file, nothing to mark since nothing differs), for each comparison method:
  throughput = 2 x size / time (it reads both files too).

Page cache, the same for both sides before every measurement:

* ``cold``: ``posix_fadvise(DONTNEED)`` on both (clean) files: read from the disk;
* ``warm``: both files read once first: read from the page cache.

Goal: ours >= 0.8 x baseline throughput (medians of ``--repeat`` runs; the ``best``
column compares the best runs, less sensitive to a noisy disk).

    python benchmarks/verify_vs_read.py [--size-mib 1024] [--dir /tmp] [--repeat 7]
        [--cache cold,warm] [--methods blake2b,bytes]
"""

from __future__ import annotations

import argparse
import mmap
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
from core.replication.verify import DEFAULT_METHOD, METHODS, Method, Verify
from core.replication.volume import Volume

MiB = 1024 * 1024
GOAL = 0.8
IO = 4 * MiB


def make_pair(src: Path, tgt: Path, size: int) -> None:
    block = os.urandom(16 * MiB)
    for p in (src, tgt):
        with open(p, "wb") as f:
            left = size
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
            f.flush()
            os.fsync(f.fileno())


def read_file(path: Path, buf: mmap.mmap) -> None:
    mv = memoryview(buf)
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while True:
            n = os.preadv(fd, [mv], off)
            if n == 0:
                break
            off += n
    finally:
        os.close(fd)


def set_cache(cache: str, files: list[Path], buf: mmap.mmap) -> None:
    if cache == "warm":
        for p in files:
            read_file(p, buf)
        return
    os.sync()
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def time_read(src: Path, tgt: Path, cache: str, buf: mmap.mmap) -> float:
    set_cache(cache, [src, tgt], buf)
    t0 = time.perf_counter()
    read_file(src, buf)
    read_file(tgt, buf)
    return time.perf_counter() - t0


def time_verify(
    src: Path, tgt: Path, bitmap: Path, cache: str, buf: mmap.mmap, method: Method
) -> float:
    set_cache(cache, [src, tgt], buf)
    with Volume.open(src, readonly=True) as s, Volume.open(tgt, readonly=True) as t:
        bm = Bitmap.open(bitmap, volume_size=s.size)
        try:
            t0 = time.perf_counter()
            result = Verify(s, t, bm, "t", speed_limit_kbps=0, method=method).run()
            elapsed = time.perf_counter() - t0
        finally:
            bm.close()
    assert result.chunks_checked == bm.nchunks and result.chunks_differing == 0, result
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the files go")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--cache", default="cold,warm", help="cold, warm or both (comma list)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of methods")
    args = ap.parse_args()
    caches = [c for c in args.cache.split(",") if c]
    methods: list[Method] = []
    for m in args.methods.split(","):
        if m not in METHODS:
            ap.error(f"unknown method {m!r} (one of {', '.join(METHODS)})")
        methods.append(m)
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="lk-verify-bench-", dir=args.dir))
    buf = mmap.mmap(-1, IO)  # page aligned, like the verify's buffers (see verify._Buffer)
    try:
        src, tgt, bitmap = work / "source.img", work / "target.img", work / "bitmap"
        make_pair(src, tgt, size)
        Bitmap.create(bitmap, volume_size=size, targets=["t"], dirty=False).close()
        print(
            f"volume {args.size_mib} MiB x 2 in {work}, {args.repeat} runs each (medians), "
            f"{os.cpu_count()} CPUs, default method {DEFAULT_METHOD}"
        )
        for cache in caches:
            time_read(src, tgt, cache, buf)  # untimed: the first runs pay for metadata
            reads: list[float] = []
            ours: dict[Method, list[float]] = {m: [] for m in methods}
            for i in range(args.repeat):  # alternate the order to share any drift
                if i % 2 == 0:
                    reads.append(time_read(src, tgt, cache, buf))
                for m in methods:
                    ours[m].append(time_verify(src, tgt, bitmap, cache, buf, m))
                if i % 2 == 1:
                    reads.append(time_read(src, tgt, cache, buf))
            base = statistics.median(reads)
            base_mbs = 2 * size / base / 1e6
            print(f"\npage cache: {cache}")
            print(f"{'':32}{'time s':>9}{'MB/s':>9}{'ratio':>8}{'best':>7}{'goal':>8}  met")
            print(f"{'baseline: read both once':32}{base:9.3f}{base_mbs:9.0f}")
            for m in methods:
                t = statistics.median(ours[m])
                mbs = 2 * size / t / 1e6
                ratio = mbs / base_mbs
                best = min(reads) / min(ours[m])  # best run against best run
                met = ratio >= GOAL
                label = f"ours: verify {m}" + (" (default)" if m == DEFAULT_METHOD else "")
                print(
                    f"{label:32}{t:9.3f}{mbs:9.0f}{ratio:8.2f}{best:7.2f}{'>= ' + str(GOAL):>8}  "
                    + ("yes" if met else "NO")
                )
                default = " (default)" if m == DEFAULT_METHOD else ""
                record(
                    f"verify {m}{default} of {args.size_mib} MiB vs reading both files, "
                    f"{cache} cache",
                    f"{base_mbs:.0f} MB/s",
                    f"{mbs:.0f} MB/s",
                    f"{ratio:.2f}",
                    f">= {GOAL}",
                    met,
                )
            print("runs read:    " + " ".join(f"{x:.3f}" for x in reads))
            for m in methods:
                print(f"runs {m + ':':9}" + " ".join(f"{x:.3f}" for x in ours[m]))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
