"""SIGKILL the resync process at random points, restart it: nothing is ever lost.

The resync runs as ``python -m core.replication.resync`` in a child process. While it
runs, this process writes to the source through a Mirror that sees the target as not
connected (so its writes only mark the shared bitmap file), as a second process would.
After every kill, every chunk where the target differs from the source must still be
marked in the bitmap (the bitmap never under-reports), and a run that printed TARGET
must have left the target equal to the source (when no write came after it started).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.model import MirrorState
from core.replication.bitmap import Bitmap
from core.replication.mirror import Mirror, TargetSpec
from core.replication.volume import Volume

MiB = 1024 * 1024
CS = 65536
SIZE = 4 * MiB
REPO = Path(__file__).resolve().parents[3]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "core.replication.resync",
        "--source",
        str(tmp_path / "src"),
        "--target",
        str(tmp_path / "tgt"),
        "--target-name",
        "t1",
        "--speed-limit",
        "12000",  # 12 MB/s: a full run takes ~0.35 s, long enough to be killed mid-way
        "--io-size",
        str(CS),
        "--commit-interval",
        "0.02",
        *extra,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def diverging_chunks(tmp_path: Path) -> list[int]:
    if not (tmp_path / "tgt").exists() or os.path.getsize(tmp_path / "tgt") == 0:
        return list(range(SIZE // CS))
    s = (tmp_path / "src").read_bytes()
    t = (tmp_path / "tgt").read_bytes()
    return [c for c in range(SIZE // CS) if s[c * CS : (c + 1) * CS] != t[c * CS : (c + 1) * CS]]


def first_total(out: str) -> int | None:
    for line in out.splitlines():
        if line.startswith("PROGRESS"):
            return int(line.split()[3])
    return None


def kill_and_restart(tmp_path: Path, trials: int, seed: int, with_bitmap: bool = True) -> None:
    rng = random.Random(seed)
    with Volume.create(tmp_path / "src", SIZE) as v:
        v.write(0, rng.randbytes(SIZE))
    bitmap_args: tuple[str, ...] = ()
    writer: Mirror | None = None
    if with_bitmap:
        Bitmap.create(tmp_path / "bm", volume_size=SIZE, chunk_size=CS, targets=["t1"]).close()
        bitmap_args = ("--bitmap", str(tmp_path / "bm"))
        # a writer that does not replicate to t1 (not connected): it only marks the bitmap
        writer = Mirror(
            tmp_path / "src",
            [TargetSpec("t1", tmp_path / "tgt", connected=False)],
            tmp_path / "bm",
            chunk_size=CS,
            auto_resync=False,
        )
        assert writer.state("t1") is MirrorState.OUT_OF_SYNC
    resumed = 0
    try:
        for trial in range(trials):
            extra = ("--full",) if trial == 0 else ()
            proc = start(tmp_path, *bitmap_args, *extra)
            assert proc.stdout is not None
            line = proc.stdout.readline()  # START: the child is up
            assert line.startswith(("START", "NOTE", "BITMAP")), line
            delay = rng.uniform(0.0, 0.3)
            wrote_during_run = False
            if writer is not None and trial % 2 == 1:
                # writes from this process while the child copies
                for _ in range(rng.randrange(1, 20)):
                    n = rng.randrange(1, 3 * CS)
                    writer.write(rng.randrange(SIZE - n), rng.randbytes(n))
                    wrote_during_run = True
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            out = line + proc.stdout.read()
            proc.stdout.close()
            assert proc.stderr is not None
            err = proc.stderr.read()
            proc.stderr.close()
            printed_target = any(ln.startswith("TARGET") for ln in out.splitlines())
            if proc.returncode == 0:
                assert printed_target, out + err
            else:  # killed (possibly after it printed TARGET, while closing)
                assert proc.returncode == -signal.SIGKILL, out + err
            if printed_target and not wrote_during_run:
                assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
            if with_bitmap:
                # the bitmap never under-reports: every differing chunk is marked
                with Bitmap.open(tmp_path / "bm") as bm:
                    dirty = set(bm.dirty_chunks("t1"))
                missing = set(diverging_chunks(tmp_path)) - dirty
                assert not missing, f"trial {trial}: chunks {sorted(missing)} lost"
                total = first_total(out)
                if trial > 0 and total is not None and total < SIZE:
                    resumed += 1
            else:
                total = first_total(out)
                assert total is None or total == SIZE  # no bitmap: from zero every time
            if writer is not None:
                # writes between runs: dirty a good part of the volume again, so that
                # most runs have enough to copy to be killed in the middle
                for c in rng.sample(range(SIZE // CS), rng.randrange(8, SIZE // CS)):
                    writer.write(c * CS, rng.randbytes(CS))
        # the last run, not killed, must finish and say so
        proc = start(tmp_path, *bitmap_args, "--quiet")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        assert out.strip().splitlines()[-1].startswith("TARGET")
        assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
        if with_bitmap:
            with Bitmap.open(tmp_path / "bm") as bm:
                assert bm.dirty_count("t1") == 0
            assert resumed > 0 or trials < 3, "no restart ever resumed from the bitmap"
    finally:
        if writer is not None:
            writer.close()


def test_sigkill_resync_5_trials(tmp_path: Path) -> None:
    kill_and_restart(tmp_path, trials=5, seed=1234)


def test_sigkill_without_bitmap_restarts_from_zero(tmp_path: Path) -> None:
    kill_and_restart(tmp_path, trials=2, seed=99, with_bitmap=False)


@pytest.mark.slow
def test_sigkill_resync_50_trials(tmp_path: Path) -> None:
    kill_and_restart(tmp_path, trials=50, seed=4321)


def test_a_second_resync_process_of_the_same_target_is_busy(tmp_path: Path) -> None:
    with Volume.create(tmp_path / "src", SIZE) as v:
        v.write(0, random.Random(8).randbytes(SIZE))
    Bitmap.create(tmp_path / "bm", volume_size=SIZE, chunk_size=CS, targets=["t1"]).close()
    first = start(tmp_path, "--bitmap", str(tmp_path / "bm"), "--speed-limit", "2000")
    assert first.stdout is not None
    assert first.stdout.readline().startswith("START")
    second = start(tmp_path, "--bitmap", str(tmp_path / "bm"))
    out, err = second.communicate(timeout=60)
    assert second.returncode == 4, out + err  # BUSY
    assert "BUSY" in err
    first.send_signal(signal.SIGTERM)  # a clean cancel: exit 3, what was copied is kept
    rest, _err = first.communicate(timeout=60)
    assert first.returncode == 3, rest
    assert "CANCELLED" in rest


def test_invalid_bitmap_makes_the_process_do_a_full_resync(tmp_path: Path) -> None:
    with Volume.create(tmp_path / "src", SIZE) as v:
        v.write(0, random.Random(9).randbytes(SIZE))
    with Volume.create(tmp_path / "tgt", SIZE) as t:
        t.write(0, (tmp_path / "src").read_bytes())
        t.write(CS * 7, b"differs, and the bitmap cannot say so")
    Bitmap.create(
        tmp_path / "bm", volume_size=SIZE, chunk_size=CS, targets=["t1"], dirty=False
    ).close()
    data = bytearray((tmp_path / "bm").read_bytes())
    data[0:8] = b"garbage!"
    (tmp_path / "bm").write_bytes(bytes(data[: len(data) - 10]))
    proc = start(tmp_path, "--bitmap", str(tmp_path / "bm"), "--speed-limit", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "BITMAP-INVALID" in out and "truncated" in out
    assert "full=1" in out
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
