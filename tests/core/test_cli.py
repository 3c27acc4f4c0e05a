"""lkctl as a user runs it: text and JSON status, lab reset, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from core.backends.lab.store import DB_NAME
from tests.helpers import file_digest, run_lkctl


def test_status_text_lists_servers_and_the_seed_hierarchy() -> None:
    done = run_lkctl(["status"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "lab1      ALIVE" in lines
    assert "lab3      ALIVE" in lines
    assert any(line.startswith("Hierarchy /data  (in service on lab1") for line in lines)
    row = next(line for line in lines if line.strip().startswith("datarep-data"))
    assert row.split() == ["datarep-data", "datakeeper", "ISP", "Active", "-", "-"]


def test_status_json_has_the_same_facts() -> None:
    done = run_lkctl(["status", "--json"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [s["name"] for s in data["servers"]] == ["lab1", "lab2", "lab3"]
    (h,) = data["hierarchies"]
    assert h["root"] == "/data" and h["in_service_on"] == "lab1"
    assert h["priorities"] == {"lab1": 1}
    fs, dk = h["resources"]
    assert fs["tag"] == "/data" and fs["kind"] == "filesystem" and fs["depth"] == 0
    assert fs["servers"]["lab1"] == {
        "tag": "/data",
        "state": "ISP",
        "text": "Active",
        "mount_point": "/data",
    }
    assert dk["tag"] == "datarep-data" and dk["parent"] == fs["id"]
    assert set(dk["servers"]) == {"lab1"}


def test_lab_reset_needs_confirmation(hermetic_env: Path) -> None:
    run_lkctl(["status"])
    before = file_digest(hermetic_env / DB_NAME)
    refused = run_lkctl(["lab", "reset"], input_text="")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert file_digest(hermetic_env / DB_NAME) == before
    done = run_lkctl(["lab", "reset", "--yes"])
    assert done.returncode == 0, done.stderr
    assert "reset" in done.stdout


def test_errors_are_one_line_without_traceback(hermetic_env: Path) -> None:
    unknown = run_lkctl(["frobnicate"])
    assert unknown.returncode == 2
    assert unknown.stderr.count("\n") == 1 and "invalid choice" in unknown.stderr

    hermetic_env.mkdir(parents=True)
    (hermetic_env / DB_NAME).write_bytes(b"garbage" * 1000)
    broken = run_lkctl(["status"])
    assert broken.returncode == 1
    assert "Traceback" not in broken.stderr
    assert broken.stderr.count("\n") == 1
    assert str(hermetic_env / DB_NAME) in broken.stderr
