"""Resync over NBD: a full resync vs ``nbdcopy`` of the same volume to the same target,
and a partial resync of 1 % dirty chunks vs the full one.

The setting, the same for both sides and in the same run (needs root): two network
namespaces of our own joined by a veth pair (``tests/core/replication/nbdlab.py``); in
one, the target: ``nbdkit file`` with ``--tls=require --tls-psk`` (the mirror's key), on
a file on the same disk as the source; in the other, the source side:

* baseline: ``nbdcopy --flush SOURCE nbds://...`` (its defaults: up to 4 connections,
  several requests in flight on each, as many threads as cores), TLS with the key;
* ours: :class:`~core.replication.resync.Resync` to an
  :class:`~core.replication.nbd.NbdVolume`, the whole job: connect, create the bitmap
  file, mark every chunk dirty durably, copy, commit the bits, flush; speed limit 0
  (the default 500000 KB/s is policy, not engine speed);
* partial: 1 % of the chunks dirty in the bitmap (every 100th: scattered, the hard
  case), then a partial resync of just those (connect, copy, commit, flush).

Before every run: ``sync``, and the source read once (both read it from the page cache).
The target file is overwritten in place by every run. Ours runs in a helper process
under the system ``python3`` (the only interpreter with libnbd's bindings) inside the
source's namespace: this script starts itself again there with ``--inner``.

Goals: full resync throughput >= 0.8 x nbdcopy's; partial <= 0.03 x the full one's time.

    sudo python benchmarks/nbd_resync.py [--size-mib 1024] [--repeat 3] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import record

MiB = 1024 * 1024
CS = 65536
GOAL_FULL = 0.8
GOAL_PARTIAL = 0.03
SYSTEM_PYTHON = "/usr/bin/python3"


# -- inside the source's namespace, under the system python3 ------------------------------


def inner(args: argparse.Namespace) -> int:
    from core.replication.bitmap import Bitmap
    from core.replication.nbd import NbdEndpoint
    from core.replication.resync import Resync
    from core.replication.volume import Volume

    bitmap = Path(args.bitmap)
    with Volume.open(args.source, readonly=True) as src:
        nchunks = -(-src.size // CS)
        if args.inner == "partial":  # the dirty chunks are marked before the clock starts
            with Bitmap.open(bitmap) as bm:
                for c in range(0, nchunks, args.dirty_every):
                    bm.mark_write(c, c + 1, unreplicated=["t"])
        t0 = time.perf_counter()
        with NbdEndpoint.from_uri(args.uri).open_volume(src.size) as tgt:
            if args.inner == "full":
                bitmap.unlink(missing_ok=True)
                bm = Bitmap.create(bitmap, volume_size=src.size, targets=["t"], dirty=False)
            else:
                bm = Bitmap.open(bitmap)
            result = Resync(src, tgt, bm, "t", full=args.inner == "full", speed_limit_kbps=0).run()
            bm.close()
        elapsed = time.perf_counter() - t0
    assert result.in_sync
    print(json.dumps({"elapsed": elapsed, "chunks": result.chunks_copied}))
    return 0


# -- the outer script -------------------------------------------------------------------------


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


def prepare(src: Path) -> None:
    os.sync()
    with open(src, "rb") as f:  # warm-up: the source is read from the page cache
        while f.readinto(bytearray(16 * MiB)):
            pass


def time_nbdcopy(lab: object, src: Path) -> float:
    prepare(src)
    t0 = time.perf_counter()
    done = lab.in_source("nbdcopy", "--flush", str(src), lab.uri())  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"nbdcopy failed: {done.stderr}")
    return elapsed


def run_inner(lab: object, kind: str, src: Path, bitmap: Path, dirty_every: int = 100) -> dict:
    prepare(src)
    done = lab.in_source(  # type: ignore[attr-defined]
        SYSTEM_PYTHON,
        str(Path(__file__).resolve()),
        "--inner",
        kind,
        "--source",
        str(src),
        "--uri",
        lab.uri(),  # type: ignore[attr-defined]
        "--bitmap",
        str(bitmap),
        "--dirty-every",
        str(dirty_every),
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"resync ({kind}) failed: {done.stderr}")
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def outer(args: argparse.Namespace) -> int:
    from tests.core.replication.nbdlab import NbdLab, sha256, skip_reason

    why = skip_reason()
    if why:
        print(f"SKIPPED: {why}")
        return 2
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="lk-bench-nbd-", dir=args.dir))
    lab = NbdLab(work)
    try:
        src, tgt, bitmap = work / "source.img", work / "target.img", work / "bitmap"
        make_source(src, size)
        with open(tgt, "wb") as f:
            f.truncate(size)
        lab.serve(tgt)
        for _ in range(args.warmup):
            time_nbdcopy(lab, src)
            run_inner(lab, "full", src, bitmap)
        copies: list[float] = []
        fulls: list[float] = []
        partials: list[float] = []
        partial_chunks = 0
        for i in range(args.repeat):  # alternate the order to share any drift
            if i % 2 == 0:
                copies.append(time_nbdcopy(lab, src))
                fulls.append(run_inner(lab, "full", src, bitmap)["elapsed"])
            else:
                fulls.append(run_inner(lab, "full", src, bitmap)["elapsed"])
                copies.append(time_nbdcopy(lab, src))
            part = run_inner(lab, "partial", src, bitmap)
            partials.append(part["elapsed"])
            partial_chunks = part["chunks"]
        assert sha256(src) == sha256(tgt)
        c, r, p = statistics.median(copies), statistics.median(fulls), statistics.median(partials)
        c_mbs, r_mbs = size / c / 1e6, size / r / 1e6
        ratio, pratio = r_mbs / c_mbs, p / r
        nchunks = size // CS
        print(f"volume {args.size_mib} MiB, NBD + TLS on a veth pair ({args.repeat} runs, medians)")
        print(f"{'':30}{'time s':>9}{'MB/s':>9}")
        print(f"{'baseline nbdcopy --flush':30}{c:9.3f}{c_mbs:9.0f}")
        print(f"{'ours full resync':30}{r:9.3f}{r_mbs:9.0f}")
        print(f"{'ours partial, 1 % dirty':30}{p:9.3f}   ({partial_chunks} of {nchunks} chunks)")
        print(f"full vs nbdcopy (throughput) {ratio:6.3f}   goal >= {GOAL_FULL}  ", end="")
        print("MET" if ratio >= GOAL_FULL else "NOT MET")
        print(f"partial vs full (time)       {pratio:6.3f}   goal <= {GOAL_PARTIAL}  ", end="")
        print("MET" if pratio <= GOAL_PARTIAL else "NOT MET")
        print("runs nbdcopy: " + " ".join(f"{x:.3f}" for x in copies))
        print("runs full:    " + " ".join(f"{x:.3f}" for x in fulls))
        print("runs partial: " + " ".join(f"{x:.3f}" for x in partials))
        record(
            f"full resync of {args.size_mib} MiB over NBD vs nbdcopy",
            f"{c_mbs:.0f} MB/s",
            f"{r_mbs:.0f} MB/s",
            f"{ratio:.2f}",
            f">= {GOAL_FULL}",
            ratio >= GOAL_FULL,
        )
        record(
            "partial resync over NBD, 1 % dirty, vs full",
            f"{r:.2f} s",
            f"{p:.3f} s",
            f"{pratio:.3f}",
            f"<= {GOAL_PARTIAL}",
            pratio <= GOAL_PARTIAL,
        )
        return 0
    finally:
        problems = lab.close()
        shutil.rmtree(work, ignore_errors=True)
        if problems:
            print("cleanup problems: " + "; ".join(problems), file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", default="/var/tmp", help="where the volumes go (a real disk)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    ap.add_argument("--inner", choices=("full", "partial"), help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    ap.add_argument("--uri", help=argparse.SUPPRESS)
    ap.add_argument("--bitmap", help=argparse.SUPPRESS)
    ap.add_argument("--dirty-every", type=int, default=100, help=argparse.SUPPRESS)
    args = ap.parse_args()
    return inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    sys.exit(main())
