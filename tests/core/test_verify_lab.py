"""Online verify of the lab's mirrors, through lkctl: real bytes flipped behind the
mirror's back are found, exactly, and repaired."""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.backends.lab import LabBackend
from core.operations import mirror as mirror_ops
from tests.core.labtools import digest, fill_source, wait_for_mirror
from tests.helpers import local_administrator, run_lkctl

CHUNK = 64 * 1024


def _flip(path: Path, chunks: list[int]) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        for c in chunks:
            offset = c * CHUNK + 123
            old = os.pread(fd, 1, offset)
            os.pwrite(fd, bytes([old[0] ^ 0xFF]), offset)
    finally:
        os.close(fd)


def test_verify_finds_exactly_the_flipped_chunks_and_repairs_them(hermetic_env: Path) -> None:
    backend = LabBackend()
    fill_source(backend)
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
    done = run_lkctl(["mirror", "verify", "datarep-data"])
    assert done.returncode == 0, done.stderr
    assert "1024 chunks checked, 0 differing." in done.stdout

    target = hermetic_env / "servers/lab2/disks/datarep-data.img"
    source = hermetic_env / "servers/lab1/disks/datarep-data.img"
    _flip(target, [3, 400, 1023])
    done = run_lkctl(["mirror", "verify", "datarep-data"])
    assert "3 differing (chunks 3, 400, 1023)." in done.stdout
    (m,) = json.loads(run_lkctl(["mirror", "status", "--json"]).stdout)
    lab2 = next(t for t in m["targets"] if t["server"] == "lab2")
    assert lab2["state"] == "Out of Sync" and lab2["dirty_chunks"] >= 3
    assert "verify found 3 differing chunks" in lab2["reason"]
    # A resume repairs exactly those (a partial resync), and the copies are equal again.
    assert run_lkctl(["mirror", "resume", "datarep-data"]).returncode == 0
    wait_for_mirror(backend, backend.snapshot().hierarchies[0].id, "lab2")
    assert digest(target) == digest(source)
    h = backend.snapshot().hierarchies[0]
    t = h.mirrors[0].target("lab2")
    assert t is not None and t.last_differences == 3 and t.last_verified is not None

    _flip(target, [10, 11])
    done = run_lkctl(["mirror", "verify", "datarep-data", "--repair", "--json"])
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)["steps"]
    assert steps[0].endswith("2 differing (chunks 10, 11).")
    assert steps[1] == (
        "Repaired lab2: 131072 bytes (2 chunks) copied again from the source, and read back equal."
    )
    assert digest(target) == digest(source)
    backend.close()


def test_verify_is_refused_while_a_resync_runs(hermetic_env: Path) -> None:
    backend = LabBackend()
    fill_source(backend)
    mirror_ops.set_speed_limit(backend, "datarep-data", 2000, local_administrator())
    assert run_lkctl(["extend", "/data", "--accept-defaults"]).returncode == 0
    done = run_lkctl(["mirror", "verify", "datarep-data"])
    assert done.returncode == 2
    assert done.stderr.startswith("target: A resync of datarep-data to lab2 is running")
    mirror_ops.set_speed_limit(backend, "datarep-data", 0, local_administrator())
    wait_for_mirror(backend, backend.snapshot().hierarchies[0].id, "lab2")
    backend.close()


def test_verify_by_bytes_finds_the_same_chunks(hermetic_env: Path) -> None:
    backend = LabBackend()
    fill_source(backend)
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
    _flip(hermetic_env / "servers/lab2/disks/datarep-data.img", [42])
    done = run_lkctl(["mirror", "verify", "datarep-data", "--method", "bytes"])
    assert "1 differing (chunks 42)." in done.stdout
    bad = run_lkctl(["mirror", "verify", "datarep-data", "--method", "md5"])
    assert bad.returncode == 2 and bad.stderr.startswith("method: ")
    backend.close()
