"""lkctl extend / unextend / delete: the same core, as a script or a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.backends.lab import LabBackend
from core.model import MirrorState
from core.operations import extend
from tests.core.labtools import digest, fill_source, settled_digest, wait_for_mirror
from tests.helpers import REPO, db_digest, local_administrator, run_lkctl


def _settled(home: Path) -> str:
    backend = LabBackend(home)
    try:
        return settled_digest(backend)
    finally:
        backend.close()


def _status(home: Path) -> dict[str, object]:
    done = run_lkctl(["status", "--json"], env={"LKCONSOLE_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    for h in data["hierarchies"]:
        for m in h["mirrors"]:
            for t in m["targets"]:
                t.pop("percent")
    return data


def test_accept_defaults_extends_and_waits_for_target(hermetic_env: Path) -> None:
    backend = LabBackend()
    fill_source(backend)
    backend.close()
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait"])
    assert done.returncode == 0, done.stderr
    assert "[1/5] Create DataKeeper resource datarep-data on lab2" in done.stdout
    assert "/data was extended to lab2" in done.stdout
    assert "lab2: Target (in sync)" in done.stderr
    source = hermetic_env / "servers/lab1/disks/datarep-data.img"
    assert digest(hermetic_env / "servers/lab2/disks/datarep-data.img") == digest(source)


def test_core_and_lkctl_give_the_same_result(tmp_path: Path) -> None:
    via_core, via_cli = tmp_path / "core", tmp_path / "cli"
    backend = LabBackend(via_core)
    d = extend.defaults(backend, target_server="lab3")
    request = d.request
    extend.extend(backend, request, local_administrator())
    wait_for_mirror(backend, d.hierarchy_id, "lab3")
    backend.close()

    env = {"LKCONSOLE_HOME": str(via_cli)}
    done = run_lkctl(
        ["extend", "/data", "--target", "lab3", "--accept-defaults", "--json", "--wait"], env=env
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert extend.ExtendRequest.from_json(result["request"]) == request
    assert _status(via_core) == _status(via_cli)


def test_dry_run_changes_nothing_and_shows_plan(hermetic_env: Path) -> None:
    run_lkctl(["status"])
    before = _settled(hermetic_env)
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--dry-run"])
    assert done.returncode == 0, done.stderr
    assert "Pre-extend checks were successful." in done.stdout
    assert "  5. Start resync of datarep-data from lab1 to lab2" in done.stdout
    assert db_digest(hermetic_env) == before
    assert not (hermetic_env / "servers/lab2/disks/datarep-data.img").exists()


def test_without_accept_defaults_a_script_must_say_everything() -> None:
    done = run_lkctl(["extend", "/data", "--target", "lab2"], input_text="")
    assert done.returncode == 2
    assert "target_priority: no value given (default 10); pass --target-priority 10" in done.stderr
    assert "Traceback" not in done.stderr


BAD_OPTIONS = [
    (["--template", "lab9"], "template_server"),
    (["--template", "lab2"], "tag_to_extend"),
    (["--target", "lab1"], "target_server"),
    (["--target", "nosuch"], "target_server"),
    (["--switchback", "automatic"], "switchback_type"),
    (["--switchback", "never"], "switchback_type"),
    (["--target-priority", "0"], "target_priority"),
    (["--target-priority", "1000"], "target_priority"),
    (["--target-priority", "-5"], "target_priority"),
    (["--target-priority", "abc"], "target_priority"),
    (["--target-priority", ""], "target_priority"),
    (["--target-priority", "2.5"], "target_priority"),
    (["--target-priority", "1"], "target_priority"),
    (["--template-priority", "1000"], "template_priority"),
    (["--dk-tag", ""], "dk_tag"),
    (["--dk-tag", "x" * 300], "dk_tag"),
    (["--dk-tag", "has space"], "dk_tag"),
    (["--root-tag", 'q"uote'], "root_tag"),
    (["--mount-point", "relative"], "mount_point"),
    (["--mount-point", "/"], "mount_point"),
    (["--bitmap", "bitmap_here"], "bitmap_file"),
    (["--bitmap", "/opt/LifeKeeper"], "bitmap_file"),
]


@pytest.mark.parametrize(("options", "field"), BAD_OPTIONS)
def test_bad_options_are_refused_by_field_and_change_nothing(
    hermetic_env: Path, options: list[str], field: str
) -> None:
    if not (hermetic_env / "lkconsole.db").exists():
        run_lkctl(["status"])
    before = _settled(hermetic_env)
    done = run_lkctl(["extend", "/data", *options, "--accept-defaults"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert any(line.startswith(f"{field}: ") for line in done.stderr.splitlines()), done.stderr
    assert "Traceback" not in done.stderr
    assert db_digest(hermetic_env) == before
    assert not (hermetic_env / "servers/lab2/disks/datarep-data.img").exists()


def test_unknown_tag_and_json_problems() -> None:
    done = run_lkctl(["extend", "/nope", "--accept-defaults", "--json"])
    assert done.returncode == 2
    problems = json.loads(done.stdout)["problems"]
    assert [p["field"] for p in problems] == ["tag_to_extend"]


KILL_SCRIPT = """
import os, signal, sys
from core import cli
from core.operations import extend
from core.backends.lab import mirrors
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
    name = point.split(":", 1)[1]
    original = getattr(mirrors, name)
    def dying(*a, **k):
        original(*a, **k)
        die()
    setattr(mirrors, name, dying)
sys.exit(cli.main(["extend", "/data", "--accept-defaults"]))
"""

KILL_POINTS = [
    "in:prepare_target_volume",
    "after-step-1",
    "in:create_bitmap",
    "in:add_bitmap_target",
    "after-step-2",
    "after-step-3",
    "after-step-4",
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_every_step_is_all_or_nothing(hermetic_env: Path, point: str) -> None:
    run_lkctl(["status"])
    before = _status(hermetic_env)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, point],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    backend = LabBackend()  # recovery runs here
    try:
        assert backend.store.integrity_check() == "ok"
        h = backend.snapshot().hierarchies[0]
        assert h.servers == ("lab1",)
        assert h.mirrors[0].targets == ()
        layout = backend.layout
        assert not layout.server_path("lab2", "/disks/datarep-data.img").exists()
        assert not layout.server_path("lab2", "/opt/LifeKeeper/bitmap_datarep-data").exists()
        source_bitmap = layout.server_path("lab1", "/opt/LifeKeeper/bitmap_datarep-data")
        assert not source_bitmap.exists()
        assert not list((hermetic_env / "pending").glob("*.json"))
    finally:
        backend.close()
    assert _status(hermetic_env) == before
    # And the extend then works.
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait"])
    assert done.returncode == 0, done.stderr


def test_sigkill_after_commit_keeps_the_extension(hermetic_env: Path) -> None:
    """Killed between the commit and the resync start: extended, and the resync resumes."""
    script = KILL_SCRIPT.replace('if point.startswith("after-step-"):', "if False:")
    killed = subprocess.run(
        [sys.executable, "-c", script, "in:start_resync"],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9
    backend = LabBackend()  # restarts the resync whose starter died
    try:
        h = backend.snapshot().hierarchies[0]
        assert h.servers == ("lab1", "lab2")
        wait_for_mirror(backend, h.id, "lab2", MirrorState.TARGET)
    finally:
        backend.close()


def test_unextend_and_delete_keep_the_volumes(hermetic_env: Path) -> None:
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
    refused = run_lkctl(["unextend", "/data", "--server", "lab1"])
    assert refused.returncode == 2
    assert "server: /data is in service on lab1" in refused.stderr
    done = run_lkctl(["unextend", "/data", "--server", "lab2", "--json", "--yes"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    status = _status(hermetic_env)
    (h,) = status["hierarchies"]  # type: ignore[misc]
    assert h["priorities"] == {"lab1": 1}
    assert h["mirrors"][0]["targets"] == []
    assert (hermetic_env / "servers/lab2/disks/datarep-data.img").exists()
    assert not (hermetic_env / "servers/lab2/opt/LifeKeeper/bitmap_datarep-data").exists()

    done = run_lkctl(["delete", "/data", "--yes"])
    assert done.returncode == 0, done.stderr
    assert _status(hermetic_env)["hierarchies"] == []
    assert (hermetic_env / "servers/lab1/disks/datarep-data.img").exists()
    assert not (hermetic_env / "servers/lab1/opt/LifeKeeper/bitmap_datarep-data").exists()
    again = run_lkctl(["delete", "/data"])
    assert again.returncode == 2 and "tag: There is no resource tagged '/data'" in again.stderr
