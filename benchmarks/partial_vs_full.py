"""Partial resync with 1 % of the chunks dirty vs a full resync of the same volume.

Same volume, same target file, same run. Before every measurement ``sync()`` flushes
everything dirty and the source is read once, so both read it from the page cache.

* full: every chunk marked dirty durably (``Bitmap.set_all``), then everything copied,
  the target flushed, the bits committed clear;
* partial: the target is in sync, then 1 % of the chunks (chosen at random, scattered
  over the volume) are rewritten on the source through the bitmap (marked first, as
  the mirror does), and the resync copies only those.

Goal: partial time <= 0.03 x full time (medians of ``--repeat`` runs). Speed limit 0.

    python benchmarks/partial_vs_full.py [--size-mib 1024] [--dir /tmp] [--dirty 0.01]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import record

from core.replication.bitmap import DEFAULT_CHUNK_SIZE, Bitmap
from core.replication.resync import Resync
from core.replication.volume import Volume

MiB = 1024 * 1024
GOAL = 0.03


def warm(path: Path) -> None:
    os.sync()
    buf = bytearray(16 * MiB)
    with open(path, "rb") as f:
        while f.readinto(buf):
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--dirty", type=float, default=0.01, help="fraction of chunks dirty")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    size = args.size_mib * MiB
    cs = DEFAULT_CHUNK_SIZE
    nchunks = size // cs
    rng = random.Random(42)
    work = Path(tempfile.mkdtemp(prefix="lk-bench-", dir=args.dir))
    try:
        block = os.urandom(16 * MiB)
        with Volume.create(work / "source.img", size) as s:
            for off in range(0, size, len(block)):
                s.write(off, block[: min(len(block), size - off)])
            s.fsync()
        src = Volume.open(work / "source.img")
        tgt = Volume.create(work / "target.img", size)
        bm = Bitmap.create(work / "bitmap", volume_size=size, targets=["t"])
        Resync(src, tgt, bm, "t", speed_limit_kbps=0).run()  # untimed: start in sync

        fulls: list[float] = []
        partials: list[float] = []
        copied = 0
        for _ in range(args.repeat):
            warm(work / "source.img")
            t0 = time.perf_counter()
            r = Resync(src, tgt, bm, "t", full=True, speed_limit_kbps=0).run()
            fulls.append(time.perf_counter() - t0)
            assert r.in_sync and r.bytes_copied == size

            dirty = rng.sample(range(nchunks), max(1, int(nchunks * args.dirty)))
            for c in dirty:  # as the mirror writes while the target is away
                bm.mark_write(c, c + 1, unreplicated=["t"])
                src.write(c * cs, os.urandom(cs))
            warm(work / "source.img")
            t0 = time.perf_counter()
            r = Resync(src, tgt, bm, "t", speed_limit_kbps=0).run()
            partials.append(time.perf_counter() - t0)
            assert r.in_sync and r.chunks_copied == len(dirty)
            copied = r.bytes_copied
        bm.close()
        src.close()
        tgt.close()

        f, p = statistics.median(fulls), statistics.median(partials)
        ratio = p / f
        print(
            f"volume {args.size_mib} MiB, {nchunks} chunks of {cs // 1024} KiB, "
            f"{args.dirty:.1%} dirty ({copied // cs} chunks), {args.repeat} runs, medians"
        )
        print(f"{'':26}{'time s':>9}{'MB copied':>11}")
        print(f"{'baseline full resync':26}{f:9.3f}{size / 1e6:11.1f}")
        print(f"{'ours partial resync':26}{p:9.4f}{copied / 1e6:11.1f}")
        print(f"{'ratio (partial / full)':26}{ratio:9.4f}   goal <= {GOAL}  ", end="")
        print("MET" if ratio <= GOAL else "NOT MET")
        record(
            f"partial resync ({args.dirty:.0%} dirty) vs full",
            f"{f:.3f} s",
            f"{p:.4f} s",
            f"{ratio:.3f}",
            f"<= {GOAL}",
            ratio <= GOAL,
        )
        print("runs full:    " + " ".join(f"{x:.3f}" for x in fulls))
        print("runs partial: " + " ".join(f"{x:.4f}" for x in partials))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
