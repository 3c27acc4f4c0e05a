"""The mirror operations on the Pacemaker lab, from lkctl and core.operations as a user
runs them: the seed's /data (ext4 on the mirror datarep-data, in service on lab1)
extended to lab2, then pause, resume, speed limit, full resync, verify (bytes flipped on
lab2 behind the mirror's back) with repair, a target's mode, Resize (the ext4 on /data
grown with it, /data out of service meanwhile), and Force
Online of a copy that waits for the previous source. The volumes are compared byte for
byte on the nodes' disks; /data is never restarted by any of them but Resize.

A lab of its own (two nodes, seeded): the session lab is not seeded."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.backends.pacemaker import PacemakerBackend, connect, nslab
from core.errors import PermissionDenied
from core.model import Role
from core.operations import properties
from core.permissions import Op
from core.plan import PauseMirror, Plan, SetSpeedLimit
from core.rules.resource_properties import ResourcePropertiesRequest
from core.session import Session
from tests.cluster.labtools import Lab, same_bytes
from tests.helpers import REPO, run_lkctl, wait_until

pytestmark = pytest.mark.cluster

RID = "datarep-data"
DISK = "servers/{node}/disks/datarep-data.img"
STATUS = f"/run/lkdr/{RID}/status.json"
CHUNK = 64 * 1024
MIB = 1024 * 1024
ADMIN = Session("root", Role.ADMINISTRATOR)


def _lkctl(lab: Lab, *args: str) -> tuple[int, str, str]:
    done = run_lkctl(
        ["--cluster", "pacemaker-lab", *args],
        env={"LKCONSOLE_HOME": str(lab.home), "LKCONSOLE_CLUSTER": ""},
    )
    return done.returncode, done.stdout, done.stderr


def _lkctl_started(lab: Lab, *args: str, output: bool = False) -> subprocess.Popen[str]:
    """lkctl started as a user runs it, left running (to be stopped or killed mid-way);
    ``output``: its stdout and stderr are kept (``communicate``)."""
    env = {**os.environ, "LKCONSOLE_HOME": str(lab.home), "LKCONSOLE_CLUSTER": ""}
    into = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--cluster", "pacemaker-lab", *args], cwd=REPO,
        env=env, stdout=into, stderr=into, text=True,
    )  # fmt: skip


def _pending_resize(lab: Lab) -> str:
    """The mirror's ``lk-resize`` meta attribute ("OLD NEW" while a resize is pending)."""
    return lab.run("lab1", "crm_resource", "--resource", RID, "--meta",
                   "--get-parameter", "lk-resize", "--quiet").strip()  # fmt: skip


def _ok(lab: Lab, *args: str) -> str:
    rc, out, err = _lkctl(lab, *args)
    assert rc == 0, f"lkctl {' '.join(args)}: {err or out}"
    return out


def _target(lab: Lab) -> dict[str, Any]:
    """lab2's line of ``lkctl mirror status`` (--json)."""
    [mirror] = json.loads(_ok(lab, "mirror", "status", RID, "--json"))
    return next(t for t in mirror["targets"] if t["server"] == "lab2")


def _engine(lab: Lab) -> dict[str, Any]:
    """The source's engine status on lab1 (its status file)."""
    return dict(json.loads(lab.run("lab1", "cat", STATUS)))


def _starts_of_data(lab: Lab) -> int:
    log = lab.run("lab1", "cat", "/var/log/pacemaker/pacemaker.log")
    return len(re.findall(r"executing - rsc:_2f_data action:start", log))


def _disk(lab: Lab, node: str) -> Path:
    return lab.home / DISK.format(node=node)


def _same(lab: Lab) -> bool:
    return same_bytes(_disk(lab, "lab1"), _disk(lab, "lab2"))


def _equal_once_settled(lab: Lab) -> None:
    lab.run("lab1", "sync")
    wait_until(lambda: _same(lab), 30, "lab1's and lab2's volumes to be equal")


def _in_sync(lab: Lab, timeout: float = 120) -> None:
    wait_until(lambda: _target(lab)["state"] == "Target", timeout, "lab2 to be a Target")


@pytest.fixture(scope="module")
def mirrored(seeded: Lab) -> Iterator[Lab]:
    """/data extended to lab2 (Accept Defaults), lab2 a Target; a payload on /data."""
    lab = seeded
    wait_until(lambda: _row(lab, "/data").startswith("/data | filesystem | ISP"), 120, "/data")
    lab.run("lab1", "sh", "-c", "head -c 4000000 /dev/urandom > /data/payload && sync")
    _ok(lab, "extend", "/data", "--target", "lab2", "--accept-defaults")
    _in_sync(lab)
    yield lab


@pytest.fixture(scope="module")
def backend(mirrored: Lab) -> Iterator[PacemakerBackend]:
    old = os.environ.get("LKCONSOLE_HOME")
    os.environ["LKCONSOLE_HOME"] = str(mirrored.home)
    b = connect("pacemaker-lab")
    try:
        yield b
    finally:
        b.close()
        if old is None:
            os.environ.pop("LKCONSOLE_HOME", None)
        else:
            os.environ["LKCONSOLE_HOME"] = old


def test_pause_marks_writes_dirty_and_resume_resyncs_them(
    mirrored: Lab, backend: PacemakerBackend
) -> None:
    lab = mirrored
    starts = _starts_of_data(lab)
    out = _ok(lab, "mirror", "pause", RID, "--target", "lab2")
    assert "Paused the mirror of datarep-data to lab2" in out
    wait_until(lambda: _target(lab)["reason"] == "paused by the administrator", 20, "paused")
    assert _target(lab)["state"] == "Out of Sync"
    lab.run("lab1", "sh", "-c", "head -c 3000000 /dev/urandom > /data/while-paused && sync")
    wait_until(lambda: _target(lab)["dirty_chunks"] > 10, 20, "the writes marked dirty")
    assert not _same(lab)  # lab2 missed them
    out = _ok(lab, "mirror", "resume", RID, "--target", "lab2")
    assert "Resumed the mirror of datarep-data to lab2" in out
    _in_sync(lab)
    progress = _engine(lab)["targets"]["lab2"]["progress"]
    assert progress["full"] is False and 0 < progress["chunks_copied"] < 1024  # partial
    _equal_once_settled(lab)
    assert _starts_of_data(lab) == starts
    done = [e.operation for e in backend.history() if e.ok]
    assert "pause mirror datarep-data" in done and "resume mirror datarep-data" in done


def test_the_speed_limit_bounds_a_full_resync_without_restarting_data(mirrored: Lab) -> None:
    lab = mirrored
    starts = _starts_of_data(lab)
    out = _ok(lab, "mirror", "speed", RID, "3000")
    assert "The resync speed limit of datarep-data is 3000 KB/s" in out
    meta = lab.run("lab1", "crm_resource", "--resource", RID, "--meta", "--get-parameter",
                   "lk-speed-limit", "--quiet")  # fmt: skip
    assert meta.strip() == "3000"
    wait_until(  # sent to the running engine at once (its status file says so soon)
        lambda: _engine(lab)["speed_limit_kbps"] == 3000, 10, "the engine's speed limit"
    )
    assert (
        _target(lab)
        and json.loads(_ok(lab, "mirror", "status", RID, "--json"))[0]["speed_limit_kbps"] == 3000
    )
    _ok(lab, "mirror", "fullresync", RID, "--target", "lab2", "--yes")

    def rate() -> float:
        p = _engine(lab)["targets"]["lab2"].get("progress") or {}
        return float(p.get("rate") or 0) if p.get("full") and p.get("bytes_done") else 0.0

    wait_until(lambda: rate() > 0, 30, "the full resync to run")
    wait_until(lambda: _engine(lab)["targets"]["lab2"]["progress"]["bytes_done"] > 4 * 10**6,
               30, "some bytes copied")  # fmt: skip
    assert rate() <= 3000 * 1000 * 1.3, rate()
    _ok(lab, "mirror", "speed", RID, "0")  # unlimited: the rest goes fast
    _in_sync(lab)
    progress = _engine(lab)["targets"]["lab2"]["progress"]
    # a full resync (its counts vary: holes on both sides are skipped, and a resync
    # resumed from its last commit counts from there); the bytes are compared below
    assert progress["full"] is True and progress["chunks_copied"] > 0
    _equal_once_settled(lab)
    assert _starts_of_data(lab) == starts  # /data was never restarted


def test_the_agent_puts_a_speed_limit_the_engine_missed_right(mirrored: Lab) -> None:
    """The CIB's lk-speed-limit changed behind the console's back (as when the engine
    was down when the console sent it): the source's agent applies it at its monitor."""
    lab = mirrored
    lab.run("lab1", "crm_resource", "--resource", RID, "--meta", "--set-parameter",
            "lk-speed-limit", "--parameter-value", "1234")  # fmt: skip
    wait_until(lambda: _engine(lab)["speed_limit_kbps"] == 1234, 30, "the agent's monitor")
    _ok(lab, "mirror", "speed", RID, "0")
    wait_until(lambda: _engine(lab)["speed_limit_kbps"] == 0, 10, "unlimited again")


def _flip(lab: Lab, chunks: list[int]) -> None:
    """Bytes of lab2's volume changed behind the mirror's back (unused space of ext4)."""
    with _disk(lab, "lab2").open("r+b") as f:
        for c in chunks:
            f.seek(c * CHUNK + 100)
            old = f.read(16)
            f.seek(c * CHUNK + 100)
            f.write(bytes(b ^ 0xFF for b in old))
            f.flush()
            os.fsync(f.fileno())


def test_verify_finds_flipped_bytes_and_repair_makes_the_copies_equal(mirrored: Lab) -> None:
    lab = mirrored
    _in_sync(lab)
    _flip(lab, [1000, 1001, 1017])
    out = _ok(lab, "mirror", "verify", RID, "--target", "lab2")
    assert "Verified datarep-data on lab2: 1024 chunks checked, 3 differing (chunks 1000, " \
        "1001, 1017)." in out, out  # fmt: skip
    assert not _same(lab)
    _ok(lab, "mirror", "resume", RID, "--target", "lab2")  # copies exactly what differs
    _in_sync(lab)
    assert _engine(lab)["targets"]["lab2"]["progress"]["chunks_copied"] == 3
    _equal_once_settled(lab)

    _flip(lab, [1010, 1020])
    out = _ok(lab, "mirror", "verify", RID, "--target", "lab2", "--repair")
    assert "2 differing (chunks 1010, 1020)" in out
    assert "Repaired lab2: 2 chunks copied again from the source, and read back equal." in out
    _equal_once_settled(lab)


def test_a_target_mode_changes_on_the_running_engine(
    mirrored: Lab, backend: PacemakerBackend
) -> None:
    lab = mirrored
    starts = _starts_of_data(lab)
    request = ResourcePropertiesRequest(RID, asynchronous={"lab2": True})
    message = properties.set_resource(backend, request, ADMIN)
    assert "asynchronous replication" in message
    wait_until(lambda: _engine(lab)["targets"]["lab2"]["asynchronous"] is True, 10, "async")
    [h] = backend.snapshot().hierarchies
    assert h.mirrors[0].is_asynchronous("lab2")
    lab.run("lab1", "sh", "-c", "head -c 1000000 /dev/urandom > /data/async && sync")
    properties.set_resource(
        backend, ResourcePropertiesRequest(RID, asynchronous={"lab2": False}), ADMIN
    )
    wait_until(lambda: _engine(lab)["targets"]["lab2"]["asynchronous"] is False, 10, "sync")
    assert _target(lab)["state"] == "Target"
    _equal_once_settled(lab)
    assert _starts_of_data(lab) == starts


def test_an_operator_may_pause_but_not_set_the_speed_limit(
    mirrored: Lab, backend: PacemakerBackend
) -> None:
    """The permission table holds for the steps too: a plan of speed limit under the
    Operator's own op is refused (recorded), and nothing changes."""
    lab = mirrored
    operator = Session("oper", Role.OPERATOR)
    before = _engine(lab)["speed_limit_kbps"]
    sneaky = Plan(Op.PAUSE_MIRROR, "pause mirror datarep-data", "lkctl mirror pause",
                  (SetSpeedLimit(_dk_id(backend), RID, 777),))  # fmt: skip
    with pytest.raises(PermissionDenied):
        backend.apply(sneaky, operator)
    assert _engine(lab)["speed_limit_kbps"] == before
    refused = [e for e in backend.history() if not e.ok and e.user == "oper"]
    assert refused and refused[-1].result.startswith("refused")
    pause = Plan(Op.PAUSE_MIRROR, "pause mirror datarep-data", "lkctl mirror pause",
                 (PauseMirror(_dk_id(backend), RID, "lab2"),))  # fmt: skip
    backend.apply(pause, operator)
    wait_until(lambda: _target(lab)["reason"] == "paused by the administrator", 20, "paused")
    _ok(lab, "mirror", "resume", RID, "--target", "lab2")
    _in_sync(lab)


def _dk_id(backend: PacemakerBackend) -> int:
    found = backend.snapshot().find_tag(RID)
    assert found is not None
    return found.resource_id


def test_resize_grows_every_copy_and_the_ext4_on_it_and_lab2_resyncs_the_new_space(
    mirrored: Lab, backend: PacemakerBackend
) -> None:
    """``lkctl mirror resize`` to 96 MiB: /data out of service meanwhile, both volumes 96
    MiB, the ext4 on /data grown (df), the payload kept, lab2 resynced from the grown
    bitmap (a partial resync: the new space and what the file system wrote), then
    Target with lab1's bytes; /data back in service on lab1."""
    lab = mirrored
    _in_sync(lab)
    payload = lab.run("lab1", "sha256sum", "/data/payload").split()[0]
    df_before = int(lab.run("lab1", "df", "--output=size", "-B1", "/data").split()[-1])
    out = _ok(lab, "mirror", "resize", RID, "--size", "96M")
    assert "datarep-data is 96 MiB on every server" in out
    assert "/data goes out of service while the mirror grows" in out
    for node in ("lab1", "lab2"):
        assert _disk(lab, node).stat().st_size == 96 * MIB
    assert _row(lab, "/data").startswith("/data | filesystem | ISP")
    df_after = int(lab.run("lab1", "df", "--output=size", "-B1", "/data").split()[-1])
    assert df_after > df_before + 24 * MIB  # the ext4 fills the grown mirror
    assert lab.run("lab1", "sha256sum", "/data/payload").split()[0] == payload
    _in_sync(lab)
    progress = _engine(lab)["targets"]["lab2"]["progress"]
    new_chunks = 32 * MIB // CHUNK
    print(f"\nresize to 96 MiB: {progress['chunks_copied']} chunks copied to lab2 "
          f"({new_chunks} new), df {df_before} -> {df_after} bytes")  # fmt: skip
    assert not progress["full"]
    assert new_chunks <= progress["chunks_copied"] < 96 * MIB // CHUNK // 2
    _equal_once_settled(lab)
    [h] = backend.snapshot().hierarchies
    assert h.mirrors[0].volume_size == 96 * MIB  # what the console's tree and dialogs show


def test_a_resize_whose_console_was_killed_is_finished_by_running_it_again(
    mirrored: Lab,
) -> None:
    """lkctl SIGKILLed once both volumes have grown to 128 MiB: the resize is pending
    (``lk-resize``), In Service of /data is refused saying what to do; the same resize
    run again finishes it: /data in service on lab1 with its ext4 grown, the payload
    kept, lab2 Target with lab1's bytes."""
    lab = mirrored
    _in_sync(lab)
    payload = lab.run("lab1", "sha256sum", "/data/payload").split()[0]
    df = ("df", "--output=size", "-B1", "/data")
    before = int(lab.run("lab1", *df).split()[-1])
    console = _lkctl_started(lab, "mirror", "resize", RID, "--size", "128M")
    try:
        wait_until(lambda: all(_disk(lab, n).stat().st_size == 128 * MIB
                               for n in ("lab1", "lab2")) or console.poll() is not None,
                   120, "both volumes grown")  # fmt: skip
    finally:
        console.kill()
        console.wait(30)
    assert console.returncode == -signal.SIGKILL  # killed mid-resize, not finished
    assert _pending_resize(lab) == f"{96 * MIB} {128 * MIB}"
    rc, out, err = _lkctl(lab, "inservice", "/data", "--on", "lab1")
    assert rc != 0 and not out
    assert (
        f"a resize of {RID} from {96 * MIB} to {128 * MIB} bytes did not finish: run "
        f"`lkctl mirror resize {RID} --size {128 * MIB}` again to finish it"
    ) in err
    out = _ok(lab, "mirror", "resize", RID, "--size", "128M")
    assert "datarep-data is 128 MiB on every server" in out
    wait_until(lambda: _row(lab, "/data").startswith("/data | filesystem | ISP"), 60, "/data")
    after = int(lab.run("lab1", *df).split()[-1])
    assert after > before + 24 * MIB
    assert lab.run("lab1", "sha256sum", "/data/payload").split()[0] == payload
    _in_sync(lab)
    assert not (_engine(lab)["targets"]["lab2"].get("progress") or {}).get("full")
    _equal_once_settled(lab)
    assert not _pending_resize(lab)


def test_a_resize_whose_target_died_after_its_volume_grew_is_finished_once_it_returns(
    mirrored: Lab,
) -> None:
    """lab2 killed for real once its volume has grown (lkctl held still meanwhile, so the
    kill lands between two steps of the node work): the resize stops, what grew on lab2
    cannot be undone, so it stays pending with /data out of service, saying to run it
    again once every node is up; lab2 booted again, the same resize finishes: both
    volumes at the new size, the ext4 grown, the payload kept, lab2 Target with lab1's
    bytes."""
    lab = mirrored
    _in_sync(lab)
    old = _disk(lab, "lab1").stat().st_size
    new = old + 32 * MIB
    payload = lab.run("lab1", "sha256sum", "/data/payload").split()[0]
    df = ("df", "--output=size", "-B1", "/data")
    before = int(lab.run("lab1", *df).split()[-1])
    console = _lkctl_started(lab, "mirror", "resize", RID, "--size", str(new), output=True)
    try:
        # Polled without a pause: lkctl's next steps (lab1's grow, then lab2's bitmap) take
        # a few process starts, a 50 ms poll could miss them all (CI: lkctl finished).
        deadline = time.monotonic() + 120
        while _disk(lab, "lab2").stat().st_size != new and console.poll() is None:
            assert time.monotonic() < deadline, "lab2's volume did not grow within 120 s"
        console.send_signal(signal.SIGSTOP)  # between two steps: lab2's and the next
        try:
            nslab.stop(lab.home, "lab2")
        finally:
            console.send_signal(signal.SIGCONT)
        out, err = console.communicate(timeout=300)
    finally:
        if console.poll() is None:
            console.kill()
            console.wait(30)
    try:
        assert console.returncode != 0, out
        assert "what grew could not all be undone, so /data stays out of service" in err
        assert f"once every node is up, run `lkctl mirror resize {RID} --size {new}` again" in err
        assert _pending_resize(lab) == f"{old} {new}"
        assert _disk(lab, "lab2").stat().st_size == new  # kept: lab2 was down for the undo
    finally:
        nslab.start(lab.home, "lab2")
    wait_until(lambda: "lab2" in lab.view("lab1")[1], 120, "lab2 back in the cluster")
    out = _ok(lab, "mirror", "resize", RID, "--size", str(new))
    assert f"datarep-data is {new // MIB} MiB on every server" in out
    for node in ("lab1", "lab2"):
        assert _disk(lab, node).stat().st_size == new
    wait_until(lambda: _row(lab, "/data").startswith("/data | filesystem | ISP"), 60, "/data")
    assert int(lab.run("lab1", *df).split()[-1]) > before + 24 * MIB
    assert lab.run("lab1", "sha256sum", "/data/payload").split()[0] == payload
    _in_sync(lab, 180)
    _equal_once_settled(lab)


def test_force_online_promotes_a_copy_that_waits_for_the_previous_source(
    mirrored: Lab,
) -> None:
    """lab2 paused (its copy outdated), then lab1 dies: lab2 waits for the previous
    source; forced online, it becomes the source with /data; lab1 returns a target and is
    resynced from it (in full, or what lab1 may have written: the bytes end equal)."""
    lab = mirrored
    _ok(lab, "mirror", "pause", RID, "--target", "lab2")
    wait_until(lambda: _target(lab)["reason"] == "paused by the administrator", 20, "paused")
    lab.run("lab1", "sh", "-c", "echo lost > /data/only-on-lab1 && sync")
    nslab.stop(lab.home, "lab1")
    try:
        wait_until(
            lambda: _target_of(lab, "lab2") == "Out of Sync (Wait for Previous Source)",
            120,
            "lab2 to wait for the previous source",
        )
        rc, out, err = _lkctl(lab, "mirror", "force", "/data", "--on", "lab2", "--yes")
        assert rc == 0, err or out
        assert "lab2's copy forced online" in out
        wait_until(
            lambda: _row(lab, "/data").endswith("| ISP Active"), 120, "/data in service on lab2"
        )
        files = lab.run("lab2", "ls", "/data").split()
        assert "payload" in files and "only-on-lab1" not in files  # lab2's copy, as it was
    finally:
        nslab.start(lab.home, "lab1")
    wait_until(lambda: _target_of(lab, "lab1") == "Target", 180, "lab1 resynced from lab2")
    status = json.loads(lab.run("lab2", "cat", STATUS))
    progress = status["targets"]["lab1"]["progress"]
    assert progress["chunks_copied"] > 0, progress  # (full, or what lab1 may have written)
    lab.run("lab2", "sync")
    wait_until(lambda: _same(lab), 30, "lab1's copy to equal lab2's")
    assert "only-on-lab1" not in lab.run("lab2", "ls", "/data").split()
    assert "ISP Active" in _row(lab, "/data")


def _row(lab: Lab, tag: str) -> str:
    out = _ok(lab, "status")
    line = next((x for x in out.splitlines() if x.strip().startswith(f"{tag} ")), "")
    return re.sub(r"\s{2,}", " | ", line.strip())


def _target_of(lab: Lab, server: str) -> str:
    """``server``'s state in ``lkctl mirror status`` ('' while there is no mirror to show:
    no source, and no copy waits)."""
    rc, out, _err = _lkctl(lab, "mirror", "status", RID, "--json")
    if rc != 0:
        return ""
    [mirror] = json.loads(out)
    return str(next((t["state"] for t in mirror["targets"] if t["server"] == server), ""))
