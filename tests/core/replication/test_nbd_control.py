"""The hosted engine's control channel and hooks, for real: nbdkit hosting the engine on
the source (its own network namespace), a target's nbdkit over TLS in another, the
mirrored volume a loop device; requests over the engine's private Unix socket.

- pause, resume, a speed limit and ``mark_dirty`` (a returning former source's last
  chunks) act on the running mirror; a target that waits to be told it is ready is
  connected only then;
- the socket is private (0600 in a 0700 folder) and refuses another user;
- the hooks hear "in sync" when a target is Target, and "outdated" *before* a write the
  target missed is acknowledged: a write waits for it, and fails when it fails;
- verify finds bytes flipped on the target behind the mirror's back; repair equalises.
"""

from __future__ import annotations

import mmap
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.replication import control
from core.replication.hosted import STATUS_REFRESH, EngineConfig, EngineTarget, read_status
from tests.core.replication.engine_hooks import recorded
from tests.core.replication.nbdlab import NbdLab, leftovers, sha256, skip_reason, wait_until
from tests.helpers import holds_for

MiB = 1024 * 1024
CHUNK = 64 * 1024

_why = skip_reason(fuse=True)
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


class Up:
    """A mirrored device with a control socket and recording hooks."""

    def __init__(self, lab: NbdLab, work: Path, *, connected: bool = True, **extra: Any) -> None:
        self.work = work
        self.src, self.tgt = work / "source.img", work / "target.img"
        for p in (self.src, self.tgt):
            with open(p, "wb") as f:
                f.truncate(32 * MiB)
        self.record = work / "hooks.jsonl"
        self.socket = work / "ctl" / "control.sock"
        config = EngineConfig(
            source=str(self.src),
            bitmap=str(work / "bitmap"),
            targets=(
                EngineTarget(
                    "t1", lab.uri(), deadline=3.0, connect_deadline=3.0, connected=connected
                ),
            ),
            status_file=str(work / "status.json"),
            speed_limit_kbps=0,
            reconnect_interval=0.3,
            clear_delay=0.2,
            control_socket=str(self.socket),
            hooks="tests.core.replication.engine_hooks:Recorder",
            extra={"record": str(self.record), **extra},
        )
        self.target = lab.serve(self.tgt)
        self.dev = lab.device_up(config.save(work / "engine.json"), work / "dev")

    def state(self) -> str:
        return str(self.target_status()["state"])

    def target_status(self) -> dict[str, Any]:
        return dict(control.request(self.socket, "status")["targets"]["t1"])

    def ask(self, op: str, **fields: Any) -> dict[str, Any]:
        return control.request(self.socket, op, timeout=60, **fields)

    def write(self, offset: int, data: bytes) -> float:
        """Write through the mirrored device (direct I/O, then fsync); seconds taken."""
        began = time.monotonic()
        fd = os.open(self.dev.device, os.O_WRONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, len(data))  # page-aligned, as O_DIRECT needs
        try:
            buf[:] = data
            os.pwrite(fd, buf, offset)
            os.fsync(fd)
        finally:
            buf.close()
            os.close(fd)
        return time.monotonic() - began

    def hooks(self, name: str) -> list[dict[str, Any]]:
        return [e for e in recorded(self.record) if e["hook"] == name]


def _block(seed: int, size: int = CHUNK) -> bytes:
    return bytes([seed % 251]) * size


def test_control_pause_resume_speed_and_chunks_of_a_returning_source(
    lab: NbdLab, tmp_path: Path
) -> None:
    up = Up(lab, tmp_path)
    wait_until(lambda: up.hooks("in_sync"), 60, "the first resync")
    assert up.state() == "TARGET" and [e["target"] for e in up.hooks("in_sync")] == ["t1"]
    # the socket is the owner's only: 0600 in a 0700 folder
    assert stat.S_IMODE(up.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(up.socket.parent.stat().st_mode) == 0o700
    other = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
         "import socket; s = socket.socket(socket.AF_UNIX); s.connect(" + repr(str(up.socket))
         + ")"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert other.returncode != 0 and "Permission denied" in other.stderr

    up.ask("pause", target="t1")
    st = up.target_status()
    assert (st["state"], st["reason"]) == ("OUT_OF_SYNC", "paused by the administrator")
    # no longer confirmed in sync: told by the engine's event thread, soon after
    wait_until(lambda: up.hooks("outdated"), 10, "the outdated hook after the pause")
    assert up.hooks("outdated")[-1]["target"] == "t1"
    up.write(5 * CHUNK, _block(5))  # only the bitmap learns of it
    assert up.target_status()["dirty_chunks"] >= 1
    # the status file (what the node's agent and console see) says so too, soon, though
    # no state changed: it is refreshed every STATUS_REFRESH
    wait_until(
        lambda: read_status(up.work / "status.json")["targets"]["t1"]["dirty_chunks"] >= 1,
        3 * STATUS_REFRESH,
        "the status file to show the dirty chunk",
    )
    with open(up.tgt, "rb") as f:
        f.seek(5 * CHUNK)
        assert f.read(CHUNK) != _block(5)
    up.ask("speed", kbps=1000, min_kbps=0)
    up.ask("resume", target="t1")
    wait_until(lambda: len(up.hooks("in_sync")) == 2, 60, "the resync after resume")
    assert up.state() == "TARGET"
    assert sha256(up.src) == sha256(up.tgt)

    # chunks a returning former source may hold: marked, and copied again (exactly them)
    with open(up.tgt, "r+b") as f:  # as a crashed source's last writes would be
        for c in (3, 4, 200):
            f.seek(c * CHUNK)
            f.write(_block(c + 1))
    answer = up.ask("mark_dirty", target="t1", runs=[[3, 5], [200, 201]], reason="old source")
    assert answer == {"marked": 3}
    # the answer to ``wait`` comes when the partial resync of the marked chunks is over
    assert up.ask("wait", target="t1", state="TARGET", seconds=60) == {"reached": True}
    assert up.state() == "TARGET"
    progress = up.target_status()["progress"]
    assert progress["full"] is False and progress["chunks_copied"] == 3
    assert sha256(up.src) == sha256(up.tgt)

    with pytest.raises(control.ControlError, match="no target named 'nope'"):
        up.ask("pause", target="nope")
    with pytest.raises(control.ControlError, match="unknown control request"):
        up.ask("explode")
    assert up.ask("wait", target="t1", state="RESYNCING", seconds=0.3) == {"reached": False}
    with pytest.raises(control.ControlError, match="unknown mirror state 'INSYNC'"):
        up.ask("wait", target="t1", state="INSYNC")


def test_control_mode_switches_a_target_and_status_says_the_speed_limit(
    lab: NbdLab, tmp_path: Path
) -> None:
    up = Up(lab, tmp_path)
    wait_until(lambda: up.state() == "TARGET", 60, "the first resync")
    assert up.target_status()["asynchronous"] is None
    up.ask("mode", target="t1", asynchronous=True)
    assert up.target_status()["asynchronous"] is True
    up.write(7 * CHUNK, _block(7))  # queued for t1, then sent
    up.ask("mode", target="t1", asynchronous=False)  # what was queued is sent first
    assert up.target_status()["asynchronous"] is False
    up.write(9 * CHUNK, _block(9))
    assert up.state() == "TARGET"
    assert sha256(up.src) == sha256(up.tgt)
    assert control.request(up.socket, "status")["speed_limit_kbps"] == 0
    up.ask("speed", kbps=2500)
    assert control.request(up.socket, "status")["speed_limit_kbps"] == 2500
    with pytest.raises(control.ControlError, match="no target named 'nope'"):
        up.ask("mode", target="nope", asynchronous=True)


def test_a_target_that_is_not_ready_is_connected_only_when_told(
    lab: NbdLab, tmp_path: Path
) -> None:
    up = Up(lab, tmp_path, connected=False)

    def left_alone() -> bool:
        st = up.target_status()
        return (st["state"], st["connected"]) == ("OUT_OF_SYNC", False)

    holds_for(left_alone, 1.5, "the target left unconnected")  # several reconnect intervals
    up.ask("connect", target="t1")
    wait_until(lambda: up.state() == "TARGET", 60, "the resync once connected")
    assert sha256(up.src) == sha256(up.tgt)


def test_outdated_is_recorded_before_a_missed_write_is_acknowledged(
    lab: NbdLab, tmp_path: Path
) -> None:
    up = Up(lab, tmp_path, outdated_delay=1.5)
    wait_until(lambda: up.hooks("in_sync"), 60, "the first resync")
    os.kill(up.target.pid, signal.SIGSTOP)  # the target stalls
    try:
        taken = up.write(7 * CHUNK, _block(7))
        done_at = time.time()
    finally:
        os.kill(up.target.pid, signal.SIGCONT)
    outdated = up.hooks("outdated")
    assert [e["target"] for e in outdated] == ["t1"]
    assert outdated[0]["time"] < done_at  # recorded before the write returned
    assert 3.0 <= taken < 3.0 + 1.5 + 8  # the deadline, then the hook, then the reply
    assert "no reply" in outdated[0]["reason"] or "stalled" in outdated[0]["reason"]
    wait_until(lambda: len(up.hooks("in_sync")) == 2, 60, "the partial resync once it answers")
    assert up.state() == "TARGET"
    assert sha256(up.src) == sha256(up.tgt)


def test_a_missed_write_fails_when_the_outdate_cannot_be_recorded(
    lab: NbdLab, tmp_path: Path
) -> None:
    up = Up(lab, tmp_path, outdated_fails=True)
    wait_until(lambda: up.hooks("in_sync"), 60, "the first resync")
    os.kill(up.target.pid, signal.SIGSTOP)
    try:
        with pytest.raises(OSError):
            up.write(9 * CHUNK, _block(9))
    finally:
        os.kill(up.target.pid, signal.SIGCONT)
    assert up.hooks("outdated_failed")


def test_verify_finds_bytes_flipped_on_the_target_and_repair_equalises(
    lab: NbdLab, tmp_path: Path
) -> None:
    up = Up(lab, tmp_path)
    up.write(0, _block(1, 4 * MiB))
    wait_until(lambda: up.state() == "TARGET", 60, "the first resync")
    with open(up.tgt, "r+b") as f:  # behind the mirror's back
        f.seek(10 * CHUNK + 17)
        f.write(b"\xff\x00\xff")
    assert sha256(up.src) != sha256(up.tgt)
    found = up.ask("verify", target="t1", repair=False)
    assert (found["chunks_differing"], found["differing"]) == (1, [10])
    st = up.target_status()
    assert st["state"] == "OUT_OF_SYNC" and st["verify"]["differences"] == 1
    repaired = up.ask("verify", target="t1", repair=True)
    assert (repaired["chunks_differing"], repaired["repaired"]) == (1, True)
    assert repaired["still_differing"] == []
    assert up.state() == "TARGET"
    assert sha256(up.src) == sha256(up.tgt)
