"""The Pacemaker watch's own resources: stopping it twice (the window, the backend and a
finalizer each do) closes its wake pipe once, never a file opened since."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core.backends.pacemaker.watch import PacemakerWatch
from core.events import EventHub


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def test_a_watch_stopped_again_leaves_files_opened_since_alone(tmp_path: Path) -> None:
    before = _open_fds()
    backend: Any = SimpleNamespace(name="unused")  # never started: its backend is not read
    watch = PacemakerWatch(backend, EventHub(), last_log_id=1)
    assert len(_open_fds() - before) == 2  # its wake pipe
    watch.stop()
    assert _open_fds() <= before

    # The numbers it had are handed out again: to a file of somebody else's.
    files = [os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT) for i in range(2)]
    try:
        watch.stop()
        watch.reload()  # writes to its wake pipe, if it still had one
        for fd in files:
            os.fstat(fd)  # still open
        assert [(tmp_path / f"f{i}").read_bytes() for i in range(2)] == [b"", b""]
    finally:
        for fd in files:
            os.close(fd)
