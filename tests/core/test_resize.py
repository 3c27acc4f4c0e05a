"""Resize Mirror: the bitmap grows crash-safely, the rules refuse by field, the lab grows
every copy (targets first) and resyncs the new space; SIGKILL at every step is all or
nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backends.lab import LabBackend
from core.errors import CheckFailed, PermissionDenied
from core.model import MirrorState, Role, ServerState
from core.operations import resize
from core.plan import GrowBitmap, GrowVolume, SetMirrorSize, StartResync
from core.replication.bitmap import Bitmap
from core.rules import resize as rules
from core.session import Session
from tests.core.labtools import digest, fill_source, set_server, settled_digest, wait_for_mirror
from tests.helpers import REPO, local_administrator, run_lkctl

MiB = 1024 * 1024
CS = 64 * 1024
ADMIN = local_administrator()
VOLUME = "/disks/datarep-data.img"
BITMAP = "/opt/LifeKeeper/bitmap_datarep-data"


# -- the bitmap ---------------------------------------------------------------------------
def test_bitmap_grow_keeps_the_bits_and_marks_the_new_space(tmp_path: Path) -> None:
    path = tmp_path / "bm"
    size = 10 * CS + 4096  # a partial last chunk: it grows too, so it is dirty after
    with Bitmap.create(path, volume_size=size, chunk_size=CS, targets=["t1", "t2"], dirty=False):
        pass
    bm = Bitmap.open(path, volume_size=size, chunk_size=CS)
    bm.mark_write(3, 4, unreplicated=["t1"])
    generation = bm.generation
    bm.resize(20 * CS)
    assert bm.volume_size == 20 * CS and bm.nchunks == 20
    assert bm.dirty_chunks("t1") == [3, *range(10, 20)]
    assert bm.dirty_chunks("t2") == list(range(10, 20))
    assert bm.generation == generation + 1
    bm.close()
    # Another process opening it sees the new size, every bit as said.
    again = Bitmap.open(path, volume_size=20 * CS, chunk_size=CS)
    assert again.dirty_chunks("t1") == [3, *range(10, 20)]
    # Back (undoing a grow that did not commit): the old chunks keep their bits.
    again.resize(size)
    assert again.nchunks == 11 and again.dirty_chunks("t1") == [3, 10]
    again.close()
    assert not list(tmp_path.glob(".bm.tmp*"))


def test_a_process_holding_the_bitmap_sees_the_grown_file(tmp_path: Path) -> None:
    path = tmp_path / "bm"
    writer = Bitmap.create(path, volume_size=8 * CS, chunk_size=CS, targets=["t"], dirty=False)
    other = Bitmap.open(path)
    other.resize(16 * CS)
    writer.mark_write(2, 3, unreplicated=["t"])  # it notices the new file under the lock
    assert writer.nchunks == 16
    assert Bitmap.open(path).dirty_chunks("t") == [2, *range(8, 16)]
    writer.close()
    other.close()


# -- the rules ------------------------------------------------------------------------------
@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    backend = LabBackend()
    fill_source(backend)
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait"])
    assert done.returncode == 0, done.stderr
    yield backend
    backend.close()


BAD = [
    ("", "128M", "tag", "required"),
    ("nosuch", "128M", "tag", "unknown_tag"),
    ("/data", "128M", "tag", "not_a_mirror"),
    ("datarep-data", "lots", "size", "not_a_size"),
    ("datarep-data", "-5M", "size", "not_a_size"),
    ("datarep-data", "1.5G", "size", "not_a_size"),
    ("datarep-data", "", "size", "not_a_size"),
    ("datarep-data", "32M", "size", "shrink_refused"),
    ("datarep-data", "64M", "size", "same_size"),
    ("datarep-data", str(64 * MiB + 100), "size", "not_whole_blocks"),
    ("datarep-data", "17T", "size", "too_large"),
    ("datarep-data", "100T", "size", "too_large"),
]


@pytest.mark.parametrize(("tag", "size", "field", "code"), BAD)
def test_bad_input_names_the_field_and_changes_nothing(
    lab: LabBackend, tag: str, size: str, field: str, code: str
) -> None:
    before = settled_digest(lab)
    with pytest.raises(CheckFailed) as caught:
        resize.resize(lab, resize.ResizeRequest(tag, size), ADMIN)
    (problem,) = caught.value.problems
    assert (problem.field, problem.code) == (field, code), problem.message
    assert settled_digest(lab) == before
    for server in ("lab1", "lab2"):
        assert lab.layout.server_path(server, VOLUME).stat().st_size == 64 * MiB


def test_shrinking_says_why_and_what_to_give(lab: LabBackend) -> None:
    found = rules.problems(lab.snapshot(), _facts(lab), rules.ResizeRequest("datarep-data", "32M"))
    assert found[0].message == (
        "32 MiB is smaller than datarep-data (64 MiB): a mirror cannot shrink (the end of its "
        "volume, and of the file system on it, would be lost). Give a size above 64 MiB."
    )


def test_a_server_down_or_a_full_disk_is_refused(lab: LabBackend) -> None:
    set_server(lab, "lab2", ServerState.DEAD)
    request = rules.ResizeRequest("datarep-data", "128M")
    (down,) = rules.problems(lab.snapshot(), _facts(lab), request)
    assert (down.field, down.code) == ("tag", "server_down")
    assert down.message.startswith("lab2 is DEAD: every copy of datarep-data must grow")
    set_server(lab, "lab2", ServerState.ALIVE)
    facts = _facts(lab)
    info = facts.path("lab1", VOLUME)
    tight = facts.merged(
        type(facts)({("lab1", VOLUME): dataclasses.replace(info, free_bytes=10 * MiB)})
    )
    (full,) = rules.problems(lab.snapshot(), tight, request)
    assert (full.field, full.code) == ("size", "no_disk_space")
    assert full.message.startswith("lab1 has 10 MiB free for /disks/datarep-data.img")


def test_the_plan_grows_the_targets_first_then_the_source(lab: LabBackend) -> None:
    plan = resize.plan(lab, resize.ResizeRequest("datarep-data", "128M"))
    kinds = [(type(s).__name__, getattr(s, "server", "")) for s in plan.steps]
    assert kinds == [
        ("GrowVolume", "lab2"),
        ("GrowVolume", "lab1"),
        ("GrowBitmap", "lab2"),
        ("GrowBitmap", "lab1"),
        ("SetMirrorSize", ""),
        ("StartResync", ""),
    ]
    assert isinstance(plan.steps[0], GrowVolume) and plan.steps[0].role == "target"
    assert isinstance(plan.steps[3], GrowBitmap)
    assert isinstance(plan.steps[4], SetMirrorSize) and plan.steps[4].targets == ("lab2",)
    assert isinstance(plan.steps[5], StartResync) and plan.steps[5].target == "lab2"
    assert plan.command == "lkctl mirror resize datarep-data --size 128M"


def test_grow_ends_with_both_volumes_the_new_size_and_equal(lab: LabBackend) -> None:
    source = lab.layout.server_path("lab1", VOLUME)
    target = lab.layout.server_path("lab2", VOLUME)
    # A target volume with old bytes past the mirror's end: the resync must replace them.
    with open(target, "r+b") as f:
        f.truncate(96 * MiB)
        f.seek(80 * MiB)
        f.write(b"stale" * 1000)
    message = resize.resize(lab, resize.ResizeRequest("datarep-data", "128M"), ADMIN)
    assert message.startswith("datarep-data is 128 MiB on every server")
    assert "The filesystem resource /data on top is a folder in the lab" in message
    h = lab.snapshot().hierarchies[0]
    assert h.mirrors[0].volume_size == 128 * MiB
    wait_for_mirror(lab, h.id, "lab2", MirrorState.TARGET)
    assert source.stat().st_size == target.stat().st_size == 128 * MiB
    assert digest(source) == digest(target)
    bitmap = Bitmap.open(lab.layout.server_path("lab1", BITMAP), volume_size=128 * MiB)
    assert bitmap.dirty_count("lab2") == 0
    bitmap.close()
    entry = lab.history()[-1]
    assert entry.operation == "resize mirror datarep-data to 128 MiB"
    assert entry.command == "lkctl mirror resize datarep-data --size 128M"
    assert entry.ok


def test_an_operator_is_refused_and_it_is_recorded(lab: LabBackend) -> None:
    with pytest.raises(PermissionDenied):
        resize.resize(
            lab, resize.ResizeRequest("datarep-data", "128M"), Session("op", Role.OPERATOR)
        )
    assert lab.history()[-1].result.startswith("refused: Resize Mirror needs the Administrator")
    assert lab.layout.server_path("lab1", VOLUME).stat().st_size == 64 * MiB


def _facts(lab: LabBackend):  # type: ignore[no-untyped-def]
    request = rules.ResizeRequest("datarep-data", "128M")
    return resize.facts_for(lab, lab.snapshot(), request)


# -- lkctl ----------------------------------------------------------------------------------
def test_lkctl_resize_json_and_refusals(lab: LabBackend, hermetic_env: Path) -> None:
    before = settled_digest(lab)
    refused = run_lkctl(["mirror", "resize", "datarep-data", "--size", "32M", "--json"])
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["problems"][0]["field"] == "size"
    assert refused.stderr.startswith("size: 32 MiB is smaller than datarep-data")
    assert len(refused.stderr.splitlines()) == 1
    dry = run_lkctl(["mirror", "resize", "datarep-data", "--size", "96M", "--dry-run", "--json"])
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["plan"][0].startswith("Grow the volume /disks/datarep-data.img")
    assert settled_digest(lab) == before
    done = run_lkctl(["mirror", "resize", "datarep-data", "--size", "96M", "--json"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True and data["message"].startswith("datarep-data is 96 MiB")
    status = json.loads(run_lkctl(["status", "--json"]).stdout)
    assert status["hierarchies"][0]["mirrors"][0]["volume_size"] == 96 * MiB


# -- SIGKILL at every step -------------------------------------------------------------------
KILL_SCRIPT = """
import os, signal, sys
from core import cli
from core.backends.lab import resize_files
from core.backends.lab.oplog import OperationLog
point = sys.argv[1]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if point.startswith("after-step-"):
    n = int(point.rsplit("-", 1)[1])
    original = OperationLog.say
    def say(self, level, text):
        original(self, level, text)
        if text.startswith(f"[{n}/"):
            die()
    OperationLog.say = say
else:
    name, count = point.split(":", 1)[1].split("#")
    original = getattr(resize_files, name)
    calls = [0]
    def dying(*a, **k):
        original(*a, **k)
        calls[0] += 1
        if calls[0] == int(count):
            die()
    setattr(resize_files, name, dying)
    from core.backends.lab import steps_resize
    setattr(steps_resize, name, dying)
sys.exit(cli.main(["mirror", "resize", "datarep-data", "--size", "128M"]))
"""

KILL_POINTS = [
    "in:grow_volume#1",  # the target grown, the source not
    "in:grow_volume#2",  # both volumes grown, no bitmap
    "in:resize_bitmap#1",  # the target's own bitmap grown
    "in:resize_bitmap#2",  # the source's bitmap grown, the size not committed
    "after-step-4",
    "after-step-5",  # the mirror's new size written, not committed
]


def _sizes(lab: LabBackend) -> list[int]:
    return [lab.layout.server_path(s, VOLUME).stat().st_size for s in ("lab1", "lab2")]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_before_the_commit_leaves_the_mirror_as_it_was(lab: LabBackend, point: str) -> None:
    source_digest = digest(lab.layout.server_path("lab1", VOLUME))
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, point],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    lab.close()
    backend = LabBackend()  # recovery runs here: what was grown is undone
    try:
        h = backend.snapshot().hierarchies[0]
        assert h.mirrors[0].volume_size == 64 * MiB
        assert h.mirrors[0].target("lab2").state is MirrorState.TARGET  # type: ignore[union-attr]
        assert _sizes(backend) == [64 * MiB, 64 * MiB]
        for server in ("lab1", "lab2"):
            bm = Bitmap.open(backend.layout.server_path(server, BITMAP), volume_size=64 * MiB)
            assert bm.nchunks == 64 * MiB // CS
            bm.close()
        assert digest(backend.layout.server_path("lab1", VOLUME)) == source_digest
        assert not list((backend.home / "pending").glob("*.json"))
        assert backend.history()[-1].operation.startswith("extend")  # it never happened
    finally:
        backend.close()
    # And the resize then works.
    done = run_lkctl(["mirror", "resize", "datarep-data", "--size", "128M"])
    assert done.returncode == 0, done.stderr


def test_sigkill_after_the_commit_keeps_the_resize_and_resyncs(lab: LabBackend) -> None:
    script = KILL_SCRIPT.replace('if point.startswith("after-step-"):', "if False:")
    script = script.replace(
        "from core.backends.lab import resize_files",
        "from core.backends.lab import mirrors as resize_files",
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, "in:start_resync#1"],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    lab.close()
    backend = LabBackend()  # restarts the resync whose starter died
    try:
        h = backend.snapshot().hierarchies[0]
        assert h.mirrors[0].volume_size == 128 * MiB
        wait_for_mirror(backend, h.id, "lab2", MirrorState.TARGET)
        assert _sizes(backend) == [128 * MiB, 128 * MiB]
        assert digest(backend.layout.server_path("lab1", VOLUME)) == digest(
            backend.layout.server_path("lab2", VOLUME)
        )
    finally:
        backend.close()
