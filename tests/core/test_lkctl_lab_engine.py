"""lkctl lab up/status/down on the folder lab, and lkctl cluster forget-host (no cluster
needed): what each says, and that it changes nothing it should not."""

from __future__ import annotations

import json
from pathlib import Path

from core.backends.pacemaker import hostkeys
from tests.helpers import run_lkctl


def test_lab_up_on_the_folder_lab_creates_it_and_status_lists_its_servers(
    hermetic_env: Path,
) -> None:
    done = run_lkctl(["lab", "up"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"The folder lab in {hermetic_env} is up: lab1, lab2, lab3."
    done = run_lkctl(["lab", "status", "--json"])
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["engine"] == "folder"
    assert [(n["name"], n["state"]) for n in shown["nodes"]] == [
        ("lab1", "alive"),
        ("lab2", "alive"),
        ("lab3", "alive"),
    ]


def test_pacemaker_lab_commands_on_the_folder_lab_say_how_to_reach_the_pacemaker_lab() -> None:
    for argv in (
        ["lab", "down", "--yes"],
        ["lab", "exec", "lab1", "--", "true"],
        ["lab", "shell", "lab1"],
        ["lab", "cut", "lab1", "--yes"],
        ["lab", "mend", "lab1"],
    ):
        done = run_lkctl(argv)
        assert done.returncode == 2, argv
        assert done.stderr.strip() == (
            f"lkctl: lkctl lab {argv[1]} is for the Pacemaker lab (the folder lab has no "
            "nodes to run or cut): add --engine pacemaker, or use --cluster pacemaker-lab"
        )
        assert done.stdout == ""


def test_forget_host_forgets_only_that_hosts_keys(hermetic_env: Path) -> None:
    known = hostkeys.known_hosts_file(hermetic_env)
    known.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    known.write_text(
        "lab1,10.213.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne\n"
        "[lab2]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo\n"
    )
    done = run_lkctl(["cluster", "forget-host", "lab9"])
    assert done.returncode == 1
    assert done.stdout.strip() == "No host key of lab9 was trusted: nothing changed."
    done = run_lkctl(["cluster", "forget-host", "lab1"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Forgot 1 host key(s) of lab1; the next connection asks again."
    assert known.read_text() == "[lab2]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo\n"
    assert known.stat().st_mode & 0o077 == 0
