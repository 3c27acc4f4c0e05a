"""lkctl never lies, hangs or shows a traceback: each case a real fault, nothing mocked."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core import paths
from core.backends.lab import LabBackend, mirrors
from tests.core.labtools import digest, wait_for_mirror
from tests.helpers import REPO, db_tables, run_lkctl, wait_until

DESTRUCTIVE = [
    ["delete", "/data"],
    ["unextend", "/data", "--server", "lab2"],
    ["mirror", "force", "datarep-data", "--on", "lab2"],
    ["mirror", "fullresync", "datarep-data"],
    ["lab", "reset"],
    ["lab", "stop", "lab3"],
]


@pytest.fixture
def extended(hermetic_env: Path) -> Path:
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
    return hermetic_env


@pytest.mark.parametrize("argv", DESTRUCTIVE, ids=lambda a: " ".join(a[:2]))
def test_destructive_commands_need_yes_without_a_terminal(extended: Path, argv: list[str]) -> None:
    before = db_tables(extended)
    volumes = {p: digest(p) for p in extended.glob("servers/*/disks/*")}
    refused = run_lkctl(argv, input_text="")  # stdin is not a terminal
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and "add --yes to confirm" in refused.stderr
    assert db_tables(extended) == before  # not even a history row: nothing was tried
    assert {p: digest(p) for p in extended.glob("servers/*/disks/*")} == volumes


def test_with_yes_the_destructive_commands_are_done(extended: Path) -> None:
    assert run_lkctl(["lab", "stop", "lab3", "--yes"]).returncode == 0
    assert run_lkctl(["lab", "start", "lab3"]).returncode == 0
    assert run_lkctl(["mirror", "fullresync", "datarep-data", "--yes"]).returncode == 0
    backend = LabBackend()
    hid = backend.snapshot().hierarchies[0].id
    wait_for_mirror(backend, hid, "lab2")
    backend.close()
    assert run_lkctl(["unextend", "/data", "--server", "lab2", "--yes"]).returncode == 0
    assert run_lkctl(["delete", "/data", "--yes"]).returncode == 0
    status = json.loads(run_lkctl(["status", "--json"]).stdout)
    assert status["hierarchies"] == []
    assert run_lkctl(["lab", "reset", "--yes"]).returncode == 0
    status = json.loads(run_lkctl(["status", "--json"]).stdout)
    assert [h["root"] for h in status["hierarchies"]] == ["/data"]


def _resync_pid(home: Path) -> int | None:
    for lock in (home / "run").glob("resync-*-lab2.lock"):
        text = lock.read_text().strip()
        if text and mirrors.resync_running(home, int(lock.name.split("-")[1]), "lab2"):
            return int(text)
    return None


def test_wait_gives_up_when_the_resync_process_is_gone(hermetic_env: Path) -> None:
    run_lkctl(["status"])
    assert run_lkctl(["mirror", "speed", "datarep-data", "2000"]).returncode == 0  # ~30 s
    child = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "extend", "/data", "--accept-defaults", "--wait"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid: list[int] = []
        wait_until(lambda: bool(pid.extend(filter(None, [_resync_pid(hermetic_env)])) or pid))
        os.kill(pid[0], signal.SIGKILL)
        _out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 1
    assert "the resync process to lab2 is gone" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("lkctl: the resync process to lab2 is gone")


def test_wait_gives_up_after_the_timeout_and_the_resync_goes_on(hermetic_env: Path) -> None:
    run_lkctl(["status"])
    assert run_lkctl(["mirror", "speed", "datarep-data", "2000"]).returncode == 0
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait", "--timeout", "1"])
    assert done.returncode == 1
    assert "still resyncing to lab2 after 1 s" in done.stderr
    assert _resync_pid(hermetic_env) is not None  # it goes on
    assert run_lkctl(["mirror", "speed", "datarep-data", "0"]).returncode == 0


def test_an_unexpected_error_is_one_line_and_exit_70(hermetic_env: Path) -> None:
    run_lkctl(["status"])
    with sqlite3.connect(hermetic_env / "lkconsole.db") as conn:  # a row no code expects
        conn.execute("UPDATE servers SET state='EXPLODED' WHERE name='lab2'")
    done = run_lkctl(["status"])
    assert done.returncode == 70
    assert done.stderr.count("\n") == 1, done.stderr
    log_file = paths.log_dir() / "lkctl.log"
    assert done.stderr.startswith("lkctl: internal error: KeyError")
    assert f"details in {log_file}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "Traceback (most recent call last)" in log_file.read_text()


def test_a_corrupt_journal_is_moved_aside_and_the_rest_goes_on(hermetic_env: Path) -> None:
    run_lkctl(["status"])
    pending = hermetic_env / "pending"
    pending.mkdir(exist_ok=True)
    (pending / "0badc0de.json").write_text('{"operation": "extend /x", "actions": [')  # cut
    (pending / "0ddba11.json").write_text('{"operation": "y", "actions": [{"frob": 1}]}')
    done = run_lkctl(["status"])
    assert done.returncode == 0, done.stderr
    assert "Hierarchy /data" in done.stdout
    assert not list(pending.glob("*.json"))
    assert sorted(p.name for p in (pending / "damaged").iterdir()) == [
        "0badc0de.json",
        "0ddba11.json",
    ]
    backend = LabBackend()
    lines = [r.text for r in backend.store.log_lines_after(0) if r.operation == "recovery"]
    backend.close()
    assert len(lines) == 2 and all("could not be used" in line for line in lines)
    assert any("unknown undo action" in line for line in lines)
    assert run_lkctl(["extend", "/data", "--accept-defaults"]).returncode == 0


def test_a_failure_after_the_commit_says_what_was_done(hermetic_env: Path) -> None:
    run_lkctl(["status"])
    logs = hermetic_env / "logs"
    logs.mkdir(exist_ok=True)
    logs.rmdir()
    logs.write_text("not a folder")  # the resync process cannot get its log file
    done = run_lkctl(["extend", "/data", "--accept-defaults"])
    assert done.returncode == 1
    assert "/data was extended to lab2 (every step up to the commit was done)" in done.stderr
    assert "but step 5 failed: Start resync of datarep-data" in done.stderr
    assert "Rolled back" not in done.stdout + done.stderr
    status = json.loads(run_lkctl(["status", "--json"]).stdout)
    assert status["hierarchies"][0]["priorities"] == {"lab1": 1, "lab2": 10}
    history = json.loads(run_lkctl(["history", "--json"]).stdout)
    last = history[-1]
    assert last["operation"] == "extend /data to lab2" and last["ok"] is False
    assert "was extended to lab2" in last["result"]
