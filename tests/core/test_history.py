"""Operation history, and the lkctl line behind every operation."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

from core import commands
from core.backends.lab import LabBackend, history
from core.errors import OperationError
from core.model import Role
from core.operations import create, extend
from core.session import Session
from tests.core.labtools import wait_for_mirror
from tests.helpers import local_administrator, read_only_dir, run_lkctl


def _status(home: Path) -> dict[str, object]:
    done = run_lkctl(["status", "--json"], env={"LKCONSOLE_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    for h in data["hierarchies"]:
        for m in h["mirrors"]:
            for t in m["targets"]:
                t.pop("percent")
                t["state"] = "settled"  # compared once both have settled, not the timing
    return data


def test_every_operation_is_recorded_with_who_what_and_how(hermetic_env: Path) -> None:
    backend = LabBackend()
    d = extend.defaults(backend)
    extend.extend(backend, d.request, Session("ann", Role.ADMINISTRATOR))
    # A failing one is recorded too, with its reason.
    p = extend.plan(backend, extend.defaults(backend).request)
    with (
        read_only_dir(backend.layout.server_path("lab3", "/opt/LifeKeeper")),
        pytest.raises(OperationError),
    ):
        extend.execute(backend, p, local_administrator())
    found = history.entries(backend.store)
    assert [(e.user, e.role, e.operation, e.ok) for e in found] == [
        ("ann", "Administrator", "extend /data to lab2", True),
        (local_administrator().user, "Administrator", "extend /data to lab3", False),
    ]
    first = found[0]
    assert first.command == commands.extend(d.request)
    assert first.steps[0] == f"Command: {first.command}"
    assert any(s.startswith("[5/5] Start resync") for s in first.steps)
    assert first.duration >= 0
    assert "Read-only file system" in found[1].result
    backend.close()


def test_history_is_capped_by_count_and_age(hermetic_env: Path) -> None:
    backend = LabBackend()
    history.set_limits(backend.store, max_entries=3)
    for _ in range(5):
        with backend.store.transaction() as txn:
            history.record(
                txn,
                started=1e9 + 1,
                user="u",
                role="Guest",
                operation="op",
                command="",
                steps=[],
                ok=True,
                result="",
            )
    assert len(history.entries(backend.store)) == 0  # 2001: older than 90 days
    with backend.store.transaction() as txn:
        for i in range(5):
            history.record(
                txn,
                started=__import__("time").time(),
                user="u",
                role="Guest",
                operation=f"op{i}",
                command="",
                steps=[],
                ok=True,
                result="",
            )
    assert [e.operation for e in history.entries(backend.store)] == ["op2", "op3", "op4"]
    backend.close()


def test_lkctl_history(hermetic_env: Path) -> None:
    assert run_lkctl(["extend", "/data", "--accept-defaults"]).returncode == 0
    done = run_lkctl(["history", "--since", "1h", "--json"])
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)
    assert entry["operation"] == "extend /data to lab2" and entry["ok"] is True
    text = run_lkctl(["history"]).stdout
    assert "extend /data to lab2  ok in" in text
    assert "    lkctl extend /data --template lab1 --target lab2" in text
    bad = run_lkctl(["history", "--since", "last week"])
    assert bad.returncode == 2 and bad.stderr.startswith("since: ")


def test_the_extend_command_line_does_what_core_did(tmp_path: Path) -> None:
    via_core = LabBackend(tmp_path / "core")
    d = extend.defaults(via_core, target_server="lab3")
    dk = dataclasses.replace(
        d.request.datakeeper[0], mount_point="/srv/my data", dk_tag="dk-mine", bitmap_file=None
    )
    request = dataclasses.replace(d.request, target_priority=30, datakeeper=(dk,))
    extend.extend(via_core, request, local_administrator())
    wait_for_mirror(via_core, d.hierarchy_id, "lab3")
    via_core.close()
    line = commands.extend(request)
    assert "'/srv/my data'" in line and "--bitmap none" in line
    args = shlex.split(line)
    assert args[0] == "lkctl"
    done = run_lkctl([*args[1:], "--wait"], env={"LKCONSOLE_HOME": str(tmp_path / "cli")})
    assert done.returncode == 0, done.stderr
    assert _status(tmp_path / "core") == _status(tmp_path / "cli")


def test_the_create_command_line_does_what_core_did(tmp_path: Path) -> None:
    via_core = LabBackend(tmp_path / "core")
    d = create.defaults(via_core, server="lab2")
    request = dataclasses.replace(d.request, disk_size_mib=16, fs_type="xfs", asynchronous=True)
    create.create(via_core, request, local_administrator())
    via_core.close()
    args = shlex.split(commands.create(request))
    done = run_lkctl(args[1:], env={"LKCONSOLE_HOME": str(tmp_path / "cli")})
    assert done.returncode == 0, done.stderr
    assert _status(tmp_path / "core") == _status(tmp_path / "cli")
