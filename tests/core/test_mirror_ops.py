"""Mirror actions and writes through the mirror, on the lab, with real bytes and faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backends.lab import LabBackend
from core.model import MirrorState
from tests.core.labtools import add_hierarchy, digest, fill_source, wait_for_mirror
from tests.helpers import mounted_image, run_lkctl

SOURCE = "servers/lab1/disks/datarep-data.img"
TARGET = "servers/lab2/disks/datarep-data.img"


@pytest.fixture
def extended(hermetic_env: Path) -> Iterator[LabBackend]:
    """The seed hierarchy with real data, extended to lab2 and in sync."""
    backend = LabBackend()
    fill_source(backend)
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait"])
    assert done.returncode == 0, done.stderr
    yield backend
    backend.close()


def _lk(*args: str) -> str:
    done = run_lkctl(list(args))
    assert done.returncode == 0, done.stderr
    return done.stdout


def _status(backend: LabBackend) -> dict[str, object]:
    (mirror,) = json.loads(_lk("mirror", "status", "datarep-data", "--json"))
    return {t["server"]: t for t in mirror["targets"]}


def _resync_lines(home: Path) -> list[str]:
    log = home / "logs"
    return [line for f in sorted(log.glob("resync-*.log")) for line in f.read_text().splitlines()]


def test_pause_write_resume_copies_only_the_dirty_chunks(
    extended: LabBackend, hermetic_env: Path
) -> None:
    _lk("mirror", "pause", "datarep-data")
    assert _status(extended)["lab2"]["state"] == "Out of Sync"
    assert "Wrote 300000 bytes (5 chunks)" in _lk(
        "lab", "write", "datarep-data", "--offset", "1M", "--length", "300000"
    )
    _lk("lab", "write", "datarep-data", "--offset", "40M", "--length", "1")
    lab2 = _status(extended)["lab2"]
    assert lab2["dirty_chunks"] >= 6
    assert lab2["reason"] == "paused by the administrator"
    assert digest(hermetic_env / TARGET) != digest(hermetic_env / SOURCE)

    _lk("mirror", "resume", "datarep-data")
    h = extended.snapshot().hierarchies[0]
    wait_for_mirror(extended, h.id, "lab2")
    assert digest(hermetic_env / TARGET) == digest(hermetic_env / SOURCE)
    partial = [line for line in _resync_lines(hermetic_env) if "started (partial" in line]
    assert partial, _resync_lines(hermetic_env)
    dirty = int(partial[-1].split("partial, ")[1].split(" dirty")[0])
    assert 6 <= dirty <= 6 + 2 * 16  # the written chunks (and a few marked ahead), not 1024


def test_writes_to_an_in_sync_target_are_replicated_at_once(
    extended: LabBackend, hermetic_env: Path
) -> None:
    assert "Wrote" in _lk("lab", "workload", "datarep-data", "--seconds", "0.5", "--rate", "20")
    assert _status(extended)["lab2"]["state"] == "Target"
    assert digest(hermetic_env / TARGET) == digest(hermetic_env / SOURCE)


def test_full_resync_copies_everything(extended: LabBackend, hermetic_env: Path) -> None:
    _lk("mirror", "fullresync", "datarep-data", "--target", "lab2", "--yes")
    wait_for_mirror(extended, extended.snapshot().hierarchies[0].id, "lab2")
    assert any("started (full, 1024 dirty chunks" in line for line in _resync_lines(hermetic_env))
    assert digest(hermetic_env / TARGET) == digest(hermetic_env / SOURCE)


def test_speed_limit_is_kept_and_bad_values_refused(extended: LabBackend) -> None:
    assert "20000 KB/s" in _lk("mirror", "speed", "datarep-data", "20000")
    (mirror,) = json.loads(_lk("mirror", "status", "--json"))
    assert mirror["speed_limit_kbps"] == 20000
    bad = run_lkctl(["mirror", "speed", "datarep-data", "-1"])
    assert bad.returncode == 2 and bad.stderr.startswith("kbps: ")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--offset", "70M", "--length", "1"], "offset"),
        (["--offset", "0", "--length", "65M"], "length"),
        (["--offset", "0", "--length", "0"], "length"),
        (["--offset", "0", "--length", "1", "--pattern", "stripes"], "pattern"),
    ],
)
def test_bad_writes_are_refused(extended: LabBackend, args: list[str], field: str) -> None:
    done = run_lkctl(["lab", "write", "datarep-data", *args])
    assert done.returncode == 2
    assert done.stderr.startswith(f"{field}: ")


def test_mirror_commands_name_bad_tags_and_targets(extended: LabBackend) -> None:
    for args, start in (
        (["mirror", "pause", "/data"], "tag: '/data' is a File System resource"),
        (["mirror", "resume", "nope"], "tag: There is no resource tagged 'nope'"),
        (["mirror", "pause", "datarep-data", "--target", "lab3"], "target: 'lab3' is not a"),
    ):
        done = run_lkctl(args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(start), done.stderr


def test_no_bitmap_means_a_full_resync_every_time(hermetic_env: Path) -> None:
    backend = LabBackend()
    add_hierarchy(backend, "lab1", "datarep-raw", size=8 * 1024 * 1024, bitmap=None)
    fill_source(backend, "/disks/datarep-raw.img", every=1024 * 1024, length=100_000)
    done = run_lkctl(["extend", "datarep-raw", "--accept-defaults", "--bitmap", "none", "--wait"])
    assert done.returncode == 0, done.stderr
    _lk("mirror", "pause", "datarep-raw")
    _lk("lab", "write", "datarep-raw", "--offset", "2M", "--length", "4096")
    _lk("mirror", "resume", "datarep-raw")
    hid = next(h.id for h in backend.snapshot().hierarchies if h.root_tag == "datarep-raw")
    wait_for_mirror(backend, hid, "lab2")
    raw = "servers/{}/disks/datarep-raw.img"
    assert digest(hermetic_env / raw.format("lab2")) == digest(hermetic_env / raw.format("lab1"))
    starts = [line for line in _resync_lines(hermetic_env) if "started (" in line]
    assert len(starts) == 2 and all("started (full, 128 dirty chunks" in s for s in starts)
    backend.close()


def test_a_full_target_disk_makes_it_out_of_sync_and_spares_the_source(
    hermetic_env: Path,
) -> None:
    backend = LabBackend()
    fill_source(backend, every=8 * 1024 * 1024)
    disks = backend.layout.server_path("lab2", "/disks")
    with mounted_image(disks, "ext4", 100):
        assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
        filler = disks / "filler"
        with open(filler, "wb") as f:  # fill the target's disk up
            chunk = b"\xff" * (1 << 20)
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
        source_before = digest(hermetic_env / SOURCE)
        done = run_lkctl(["lab", "write", "datarep-data", "--offset", "20M", "--length", "4M"])
        assert done.returncode == 0, done.stderr  # the source write succeeds
        lab2 = _status(backend)["lab2"]
        assert lab2["state"] == "Out of Sync"
        assert "No space left on device" in lab2["reason"]
        assert digest(hermetic_env / SOURCE) != source_before  # the new data is there
        filler.unlink()
        _lk("mirror", "resume", "datarep-data")
        wait_for_mirror(backend, backend.snapshot().hierarchies[0].id, "lab2")
        assert digest(hermetic_env / TARGET) == digest(hermetic_env / SOURCE)
        assert MirrorState.TARGET.label == _status(backend)["lab2"]["state"]
    backend.close()
