"""SIGKILL the lab's resync process at random points: it resumes, and never says
"Target" before every byte matches."""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path

import pytest

from core.backends.lab import LabBackend, mirrors
from core.model import MirrorState
from core.operations import mirror as mirror_ops
from tests.core.labtools import digest, fill_source
from tests.helpers import local_administrator, run_lkctl, wait_until


def _pid(home: Path, rid: int, target: str) -> int | None:
    try:
        text = mirrors.lock_path(home, rid, target).read_text().strip()
    except OSError:
        return None
    return int(text) if text else None


def _trials(hermetic_env: Path, count: int) -> int:
    backend = LabBackend()
    fill_source(backend, every=256 * 1024, length=200_000)  # ~50 MiB of real data
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
    h = backend.snapshot().hierarchies[0]
    rid = h.mirrors[0].resource_id
    source = backend.layout.server_path("lab1", "/disks/datarep-data.img")
    target = backend.layout.server_path("lab2", "/disks/datarep-data.img")
    mirror_ops.set_speed_limit(backend, "datarep-data", 100_000, local_administrator())
    rng = random.Random(1234)
    early = 0
    killed = 0
    pause = threading.Event()

    def _target() -> bool:  # the copy may be done already (then there is nothing to kill)
        row = backend.store.hierarchy(h.id).mirrors[0].target("lab2")  # type: ignore[union-attr]
        return row is not None and row.state is MirrorState.TARGET

    for trial in range(count):
        mirror_ops.full_resync(backend, "datarep-data", "lab2", local_administrator())
        # Its process may take a while to start on a loaded machine: kill it once it runs,
        # somewhere in the ~0.5 s the copy takes.
        wait_until(lambda: mirrors.resync_running(backend.store.home, rid, "lab2") or _target(), 30)
        pause.wait(rng.uniform(0.0, 0.4))
        pid = _pid(backend.store.home, rid, "lab2")
        if pid and mirrors.resync_running(backend.store.home, rid, "lab2"):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        wait_until(lambda: not mirrors.resync_running(backend.store.home, rid, "lab2"), 30)
        state = backend.store.hierarchy(h.id).mirrors[0].target("lab2").state  # type: ignore[union-attr]
        if state is MirrorState.TARGET and digest(target) != digest(source):
            early += 1
        # Restart, as opening the lab after a crash does: the resync resumes from the bitmap.
        LabBackend().close()
        wait_until(_target, 60, f"trial {trial}: Target again")
        if digest(target) != digest(source):
            early += 1
    print(
        f"\nresync SIGKILL trials: {count}, killed mid-copy: {killed}, "
        f"Target before the data matched: {early}"
    )
    backend.close()
    assert early == 0
    return killed


def test_five_kills(hermetic_env: Path) -> None:
    assert _trials(hermetic_env, 5) >= 1


@pytest.mark.slow
def test_fifty_kills(hermetic_env: Path) -> None:
    assert _trials(hermetic_env, 50) >= 10
