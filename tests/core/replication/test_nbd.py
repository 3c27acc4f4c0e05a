"""The mirror over NBD, for real: nbdkit targets with TLS-PSK in a network namespace of
the test's own, the engine under the system python3 in another, joined by a veth pair.

Nothing is mocked: targets stall (SIGSTOP), die (SIGKILL) and come back; the resync
process is SIGKILLed; bytes are flipped on a target behind the mirror's back; a wrong
key and a plain client knock. Every test leaves no process, namespace, mount or loop
device behind (the ``lab`` fixture checks it, a failing test included).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.replication.bitmap import Bitmap
from core.replication.nbdkit import make_psk_file
from tests.core.replication.nbdlab import (
    PSK_USER,
    REPO,
    SYSTEM_PYTHON,
    Engine,
    NbdLab,
    leftovers,
    sha256,
    skip_reason,
)

MiB = 1024 * 1024
CS = 65536
DEADLINE = 1.5  # seconds: every remote call of the engine

_why = skip_reason()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[NbdLab]:
    the_lab = NbdLab(tmp_path)
    try:
        yield the_lab
    finally:
        problems = the_lab.close()
        left = leftovers(the_lab)
        assert not problems, problems
        assert not left, f"left behind: {left}"


def data_for(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def random_volume(path: Path, size: int, seed: int = 1) -> Path:
    path.write_bytes(data_for(seed, size))
    return path


def blank_volume(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def open_mirror(lab: NbdLab, eng: Engine, src: Path, bitmap: Path, **options: object) -> None:
    targets = options.pop("targets", None) or [
        {"name": "t1", "uri": lab.uri(), "deadline": DEADLINE, "connect_deadline": DEADLINE}
    ]
    eng.call("open", source=str(src), bitmap=str(bitmap), targets=targets, **options)


def in_sync(eng: Engine, timeout: float = 60.0) -> dict[str, Any]:
    st = eng.call("wait_state", target="t1", state="TARGET", timeout=timeout)
    assert st["reached"], st
    return st


# -- writes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True], ids=["synchronous", "asynchronous"])
def test_mirrored_writes_reach_the_target_byte_for_byte(
    lab: NbdLab, tmp_path: Path, asynchronous: bool
) -> None:
    size = 32 * MiB
    src = random_volume(tmp_path / "source.img", size)
    tgt = blank_volume(tmp_path / "target.img", size)
    lab.serve(tgt)
    eng = lab.engine()
    open_mirror(lab, eng, src, tmp_path / "bitmap", asynchronous=asynchronous)
    st = in_sync(eng)  # a new target: every chunk copied first
    assert st["progress"]["chunks_copied"] == size // CS
    assert sha256(src) == sha256(tgt)
    writes = [(0, 4096), (5 * MiB + 123, 200_000), (31 * MiB, MiB), (12 * MiB, 9 * MiB)]
    for i, (offset, n) in enumerate(writes):  # 9 MiB: more than one NBD request
        eng.call("write", offset=offset, size=n, seed=100 + i, durable=i % 2 == 0)
    eng.call("flush")  # asynchronous: the queue drained
    assert sha256(src) == sha256(tgt)
    with open(tgt, "rb") as f:
        for i, (offset, n) in enumerate(writes[:3]):
            f.seek(offset)
            assert f.read(n) == data_for(100 + i, n)
    assert eng.call("status", target="t1")["state"] == "TARGET"


def _file_writes(pid: int) -> int:
    """Write system calls the process made so far (``syscw``: pwrite and write; a
    socket's ``send`` is not one)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError(f"no syscw in /proc/{pid}/io")


def test_a_target_writes_its_volume_one_chunk_at_a_time(lab: NbdLab, tmp_path: Path) -> None:
    """The target's nbdkit hands its file at most one chunk per pwrite (the page cache of
    a target's volume is then made of chunk-sized folios, which a partial resync's chunk
    writes find cheap), and a write of many chunks still lands whole."""
    size = 16 * MiB
    src = random_volume(tmp_path / "source.img", size)
    tgt = blank_volume(tmp_path / "target.img", size)
    target = lab.serve(tgt)
    eng = lab.engine()
    open_mirror(lab, eng, src, tmp_path / "bitmap")
    in_sync(eng)
    eng.call("flush")
    before = _file_writes(target.pid)
    eng.call("write", offset=3 * MiB, size=MiB, seed=7, durable=True)  # one NBD request
    after = _file_writes(target.pid)
    assert after - before >= MiB // CS, (before, after)
    assert sha256(src) == sha256(tgt)
    with open(tgt, "rb") as f:
        f.seek(3 * MiB)
        assert f.read(MiB) == data_for(7, MiB)


# -- a target that stalls, a target that dies ---------------------------------------------


def _mirror_in_sync(lab: NbdLab, tmp_path: Path, size: int = 16 * MiB) -> tuple[Engine, Path, Path]:
    src = random_volume(tmp_path / "source.img", size)
    tgt = blank_volume(tmp_path / "target.img", size)
    lab.serve(tgt)
    eng = lab.engine()
    # one chunk per hot extent: the bits then say exactly which chunks were missed
    open_mirror(lab, eng, src, tmp_path / "bitmap", extent_chunks=1, clear_delay=0.1)
    in_sync(eng)
    assert eng.call("wait_clean", target="t1", timeout=10)["dirty_chunks"] == 0
    return eng, src, tgt


def test_a_stalled_target_is_dropped_within_the_deadline_then_resynced_partially(
    lab: NbdLab, tmp_path: Path
) -> None:
    eng, src, tgt = _mirror_in_sync(lab, tmp_path)
    call = eng.call
    server = lab.servers[0]
    call("write", offset=3 * CS, size=CS, seed=3)  # replicated ...
    assert call("wait_clean", target="t1", timeout=10)["dirty_chunks"] == 0  # ... and clean
    os.kill(server.pid, signal.SIGSTOP)
    try:
        stalled = call("write", offset=10 * CS, size=CS, seed=10)
        assert DEADLINE * 0.9 <= stalled["elapsed"] < DEADLINE + 0.5  # returned, at the deadline
        st = call("status", target="t1")
        assert st["state"] == "OUT_OF_SYNC" and not st["replicating"]
        assert "no reply to a write within 1.5 s" in st["reason"], st["reason"]
        assert lab.target_ip in st["reason"]
        for offset, n, seed in ((20 * CS, 2 * CS, 20), (40 * CS, 100, 40)):
            assert call("write", offset=offset, size=n, seed=seed)["elapsed"] < 0.5
        # the chunks the target missed, and only those, are dirty
        assert call("status", target="t1")["dirty_chunks"] == 4  # 10, 20, 21, 40
        assert sha256(src) != sha256(tgt)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    st = in_sync(eng)
    progress = st["progress"]
    assert progress["chunks_copied"] == 4 and not progress["full"], progress
    assert sha256(src) == sha256(tgt)
    states = [s for name, s, _ in call("events")["events"] if name == "t1"]
    assert states[-3:] == ["OUT_OF_SYNC", "RESYNCING", "TARGET"]


def test_a_killed_target_is_dropped_and_resynced_partially_when_it_returns(
    lab: NbdLab, tmp_path: Path
) -> None:
    eng, src, tgt = _mirror_in_sync(lab, tmp_path)
    call = eng.call
    server = lab.servers.pop()
    os.kill(server.pid, signal.SIGKILL)
    assert server.stop(timeout=5)  # gone (init reaps it)
    for offset, n, seed in ((7 * CS, CS, 7), (100 * CS, 3 * CS, 100)):
        assert call("write", offset=offset, size=n, seed=seed)["elapsed"] < DEADLINE + 0.5
    st = call("status", target="t1")
    assert st["state"] == "OUT_OF_SYNC" and st["dirty_chunks"] == 4, st
    assert lab.target_ip in st["reason"]
    lab.serve(tgt)  # the target node is back
    st = in_sync(eng)
    assert st["progress"]["chunks_copied"] == 4
    assert sha256(src) == sha256(tgt)


# -- the resync process, killed -----------------------------------------------------------


def _resync_command(lab: NbdLab, src: Path, bitmap: Path, *extra: str) -> list[str]:
    return [
        "ip",
        "netns",
        "exec",
        lab.source_ns,
        SYSTEM_PYTHON,
        "-m",
        "core.replication.resync",
        "--source",
        str(src),
        "--target",
        lab.uri(),
        "--bitmap",
        str(bitmap),
        "--target-name",
        "t1",
        "--deadline",
        str(DEADLINE),
        *extra,
    ]


def test_sigkill_of_the_resync_process_resumes_from_the_bitmap(lab: NbdLab, tmp_path: Path) -> None:
    size = 48 * MiB
    src = random_volume(tmp_path / "source.img", size)
    tgt = blank_volume(tmp_path / "target.img", size)
    bitmap = tmp_path / "bitmap"
    Bitmap.create(bitmap, volume_size=size, chunk_size=CS, targets=["t1"], dirty=True).close()
    lab.serve(tgt)
    slow = _resync_command(lab, src, bitmap, "--speed-limit", "20000", "--commit-interval", "0.2")
    proc = subprocess.Popen(slow, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("PROGRESS") and int(line.split()[2]) >= size * 0.5:
                break
        os.kill(proc.pid, signal.SIGKILL)  # ip netns exec execs: this is the resync itself
    finally:
        rest, _ = proc.communicate(timeout=30)
    seen += rest.splitlines()
    assert proc.returncode == -signal.SIGKILL
    assert not [line for line in seen if line.startswith("TARGET")]  # never "Target" early
    with Bitmap.open(bitmap) as bm:
        dirty = bm.dirty_chunks("t1")
    assert 0 < len(dirty) <= size // CS * 0.75, len(dirty)  # some commits were made
    clean = sorted(set(range(size // CS)) - set(dirty))
    with open(src, "rb") as s, open(tgt, "rb") as t:  # every chunk the bitmap says is
        for c in clean:  # copied is on the target
            s.seek(c * CS)
            t.seek(c * CS)
            assert s.read(CS) == t.read(CS), c
    done = subprocess.run(
        _resync_command(lab, src, bitmap, "--speed-limit", "0"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    match = re.match(r"TARGET t1 in sync: copied (\d+) bytes \((\d+) chunks", last)
    assert match, last
    assert int(match.group(2)) == len(dirty)  # only what the bitmap still had
    assert sha256(src) == sha256(tgt)


def test_a_partial_resync_has_the_target_write_back_while_it_copies(
    lab: NbdLab, tmp_path: Path
) -> None:
    """Scattered dirty chunks (every 8th): the target is told to flush while the copy goes
    on (a flush nobody waits for, between the copy's writes), so the last flush, which
    the copy waits for, finds little to write; exactly the dirty chunks are copied."""
    size = 32 * MiB
    src = random_volume(tmp_path / "source.img", size)
    tgt = blank_volume(tmp_path / "target.img", size)
    bitmap = tmp_path / "bitmap"
    dirty = list(range(0, size // CS, 8))
    bm = Bitmap.create(bitmap, volume_size=size, chunk_size=CS, targets=["t1"], dirty=False)
    try:
        for c in dirty:
            bm.mark_write(c, c + 1, unreplicated=["t1"])
    finally:
        bm.close()
    requests = tmp_path / "target-requests.log"
    lab.serve(tgt, log_requests=requests)
    done = subprocess.run(
        # 256 KiB copies: a lock group spans 64 chunks, 8 dirty ones, 8 groups in all
        _resync_command(lab, src, bitmap, "--speed-limit", "0", "--io-size", str(4 * CS)),
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"({len(dirty)} chunks" in done.stdout.strip().splitlines()[-1]
    with open(src, "rb") as s, open(tgt, "rb") as t:
        for c in range(size // CS):
            s.seek(c * CS)
            t.seek(c * CS)
            assert (s.read(CS) == t.read(CS)) is (c in dirty), c
    log = requests.read_text().splitlines()
    writes = [i for i, line in enumerate(log) if " Write id=" in line]  # requests, not replies
    flushes = [i for i, line in enumerate(log) if " Flush id=" in line]
    assert len(writes) == len(dirty)
    assert flushes and flushes[0] < writes[-1], "no flush before the copy's last write"
    assert flushes[-1] > writes[-1]  # and the one that makes the copy durable


# -- security ---------------------------------------------------------------------------------


def test_only_the_mirrors_key_opens_a_target(lab: NbdLab, tmp_path: Path) -> None:
    size = 8 * MiB
    tgt = random_volume(tmp_path / "target.img", size, seed=5)
    before = sha256(tgt)
    server = lab.serve(tgt)
    wrong = make_psk_file(tmp_path / "wrong" / "mirror.psk", PSK_USER)
    plain = f"nbd://{lab.target_ip}:10809/"

    right = lab.in_source("nbdinfo", "--size", lab.uri())
    assert right.returncode == 0 and int(right.stdout) == size, right.stderr
    refused = lab.in_source("nbdinfo", "--size", lab.uri(key=wrong))
    assert refused.returncode != 0 and "tls" in refused.stderr.lower(), refused.stderr
    no_tls = lab.in_source("nbdinfo", "--size", plain)
    assert no_tls.returncode != 0 and "TLS" in no_tls.stderr, no_tls.stderr
    # a foreign process can neither read nor write it
    zeros = blank_volume(tmp_path / "zeros.img", size)
    stolen = tmp_path / "stolen.img"
    for uri in (plain, lab.uri(key=wrong)):
        assert lab.in_source("nbdcopy", str(zeros), uri).returncode != 0
        assert lab.in_source("nbdcopy", uri, str(stolen)).returncode != 0
        assert not stolen.exists() or sha256(stolen) != before
    assert sha256(tgt) == before
    # the engine's own client: refused with the reason, the target Out of Sync
    eng = lab.engine()
    src = random_volume(tmp_path / "source.img", size)
    bad = [{"name": "t1", "uri": lab.uri(key=wrong), "deadline": 2, "connect_deadline": 2}]
    open_mirror(lab, eng, src, tmp_path / "bitmap", targets=bad)
    st = eng.call("status", target="t1")
    assert st["state"] == "OUT_OF_SYNC" and "cannot connect" in st["reason"], st
    eng.call("close")
    assert sha256(tgt) == before
    # the key is only in its file (0600): not in nbdkit's argv, nor in any log
    key = lab.key.read_text().split(":")[1].strip()
    assert (lab.key.stat().st_mode & 0o777) == 0o600
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
    assert str(lab.key) in cmdline and key not in cmdline
    for log in [*tmp_path.rglob("*.log")]:
        assert key not in log.read_text(errors="replace"), log


# -- verify -----------------------------------------------------------------------------------


def _flip(path: Path, chunks: list[int]) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        for c in chunks:
            old = os.pread(fd, 16, c * CS + 777)
            os.pwrite(fd, bytes(b ^ 0xFF for b in old), c * CS + 777)
        os.fsync(fd)
    finally:
        os.close(fd)


def test_verify_over_nbd_finds_flipped_bytes_and_a_resync_repairs_them(
    lab: NbdLab, tmp_path: Path
) -> None:
    eng, src, tgt = _mirror_in_sync(lab, tmp_path)
    call = eng.call
    _flip(tgt, [5, 77, 200])  # behind the mirror's back
    result = call("verify", target="t1")
    assert result["chunks_differing"] == 3 and list(result["differing"]) == [5, 77, 200]
    assert result["chunks_marked"] == 3 and not result["cancelled"]
    call("action", action="pause", target="t1")
    call("action", action="resume", target="t1")
    st = in_sync(eng)
    assert st["progress"]["chunks_copied"] == 3
    assert sha256(src) == sha256(tgt)
    call("close")

    # the same from the command line, each a process of its own over its own connection
    _flip(tgt, [9])
    verify = lab.in_source(
        SYSTEM_PYTHON,
        "-m",
        "core.replication.verify",
        "--source",
        str(src),
        "--target",
        lab.uri(),
        "--bitmap",
        str(tmp_path / "bitmap"),
        "--target-name",
        "t1",
        "--quiet",
    )
    assert verify.returncode == 0, verify.stderr
    assert "DIFFERING 9" in verify.stdout and "VERIFIED checked=256 differing=1" in verify.stdout
    repair = lab.in_source(*_resync_command(lab, src, tmp_path / "bitmap", "--quiet")[4:])
    assert repair.returncode == 0, repair.stderr
    assert "copied 65536 bytes (1 chunks" in repair.stdout, repair.stdout
    assert sha256(src) == sha256(tgt)


def test_the_engine_and_its_tools_need_only_the_system_python() -> None:
    """core.replication imports only the standard library (and nbd, where asked)."""
    script = (
        "import sys, sysconfig\n"
        "before = set(sys.modules)  # what site's .pth files loaded: not ours\n"
        "import core.replication, core.replication.nbd, core.replication.nbdkit\n"
        "import core.replication.hosted, core.replication.localdev\n"
        "import core.replication.resync, core.replication.verify\n"
        "core.replication.nbd.load_libnbd()\n"
        "std = sysconfig.get_paths()['stdlib']\n"
        "bad = sorted(n for n, m in list(sys.modules.items())\n"
        "    if n not in before and getattr(m, '__file__', None)\n"
        "    and not m.__file__.startswith((std, sys.argv[1]))\n"
        "    and n not in ('nbd', 'libnbdmod'))\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", script, str(REPO)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_connecting_takes_no_longer_than_the_handshake(lab: NbdLab, tmp_path: Path) -> None:
    """libnbd may negotiate inside aio_connect_tcp already (a fast, near target): the
    volume is ready then, not after a poll that waits for its deadline."""
    lab.serve(blank_volume(tmp_path / "target.img", MiB))
    script = (
        "import sys, time\n"
        "from core.replication.nbd import NbdEndpoint\n"
        "ep = NbdEndpoint.from_uri(sys.argv[1], connect_deadline=2)\n"
        "worst = 0.0\n"
        "for _ in range(300):\n"
        "    t0 = time.monotonic()\n"
        "    ep.open_volume().close()\n"
        "    worst = max(worst, time.monotonic() - t0)\n"
        "print(worst)\n"
    )
    done = lab.in_source(SYSTEM_PYTHON, "-c", script, lab.uri())
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.5  # the deadline is 2 s
