"""A server's log: the filter (pure), Backend.server_log, and lkctl log (--follow, --json)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core import serverlog
from core.backends.lab import LabBackend
from core.errors import CheckFailed
from core.history import LogRow
from core.serverlog import LogFilter
from tests.core.labtools import settled_digest
from tests.helpers import REPO, local_administrator, run_lkctl


def row(operation: str, text: str, level: str = "INFO", ts: float = 100.0) -> LogRow:
    return LogRow(1, ts, operation, level, text)


@pytest.mark.parametrize(
    ("text", "name", "named"),
    [
        ("/data in service on lab2 (datarep-data, then /data)", "lab2", True),
        ("/data in service on lab2 (datarep-data, then /data)", "/data", True),
        ("Server lab1 stopped (DEAD).", "lab1", True),
        ("copied to lab10", "lab1", False),
        ("volume /disks/datarep-data.img kept", "datarep-data", False),
        ("volume /disks/datarep-data.img kept", "/data", False),
        ("bitmap /opt/LifeKeeper/bitmap_datarep-data", "datarep-data", False),
        ("Resync of datarep-data to lab2 complete.", "datarep-data", True),
        ("mirror datarep-data: lab1 → lab2", "lab1", True),
    ],
)
def test_a_name_counts_as_a_whole_word(text: str, name: str, named: bool) -> None:
    assert serverlog.names(text, name) is named


def test_the_filter_by_server_level_resource_and_time() -> None:
    rows = [
        row("extend /data to lab2", "Command: lkctl extend /data ...", ts=10),
        row("stop server lab1", "Server lab1 stopped (DEAD).", "INFO", ts=20),
        row("stop server lab1", "/data fails over from lab1 to lab2 (priority 10).", ts=21),
        row("resync webrep to lab3", "bitmap unusable", "ERROR", ts=30),
        row("verify mirror datarep-data", "2 chunks differ on lab2", "WARNING", ts=40),
    ]
    texts = [r.text for r in serverlog.select(rows, LogFilter("lab2"))]
    assert texts == [
        "Command: lkctl extend /data ...",
        "/data fails over from lab1 to lab2 (priority 10).",
        "2 chunks differ on lab2",
    ]
    assert [r.ts for r in serverlog.select(rows, LogFilter("lab2", "WARNING"))] == [40]
    assert [r.ts for r in serverlog.select(rows, LogFilter("lab3", "ERROR"))] == [30]
    assert [r.ts for r in serverlog.select(rows, LogFilter("lab2", resource="/data"))] == [10, 21]
    assert [r.ts for r in serverlog.select(rows, LogFilter("lab1", since=21))] == [21]


@pytest.fixture
def lab(hermetic_env: Path):  # type: ignore[no-untyped-def]
    backend = LabBackend()
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait"])
    assert done.returncode == 0, done.stderr
    yield backend
    backend.close()


BAD = [
    (dict(server="lab9"), ["server"]),
    (dict(server=""), ["server"]),
    (dict(server="lab1", level="DEBUG"), ["level"]),
    (dict(server="lab1", level="warn"), ["level"]),
    (dict(server="lab1", resource="/nope"), ["resource"]),
    (dict(server="nosuch", level="X", resource="nope"), ["server", "level", "resource"]),
]


@pytest.mark.parametrize(("given", "fields"), BAD)
def test_bad_input_names_each_field_and_changes_nothing(
    lab: LabBackend, given: dict[str, str], fields: list[str]
) -> None:
    before = settled_digest(lab)
    with pytest.raises(CheckFailed) as caught:
        serverlog.check(lab.snapshot(), **given)
    assert [p.field for p in caught.value.problems] == fields
    assert settled_digest(lab) == before


def test_the_backend_reads_a_server_s_lines(lab: LabBackend) -> None:
    lab2 = lab.server_log("lab2")
    assert any(
        r.text.startswith("[1/5] Create DataKeeper resource datarep-data on lab2") for r in lab2
    )
    assert all(serverlog.names(r.text, "lab2") or "lab2" in r.operation for r in lab2)
    assert not any("lab3" in r.text and "lab2" not in r.text + r.operation for r in lab2)
    assert [r.text for r in lab.server_log("lab3")] == [
        "Created the lab cluster: servers lab1, lab2, lab3"
    ]
    newest = lab2[-1].id
    assert lab.server_log("lab2", after=newest) == []


def test_lkctl_log_text_and_json(lab: LabBackend) -> None:
    done = run_lkctl(["log", "lab2", "--resource", "datarep-data", "--json"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["server"] == "lab2" and data["resource"] == "datarep-data"
    assert data["lines"] and all(
        "datarep-data" in x["text"] + x["operation"] for x in data["lines"]
    )
    text = run_lkctl(["log", "lab2", "--since", "1h"])
    assert text.returncode == 0
    assert "INFO     extend /data to lab2 [1/5] Create DataKeeper resource" in text.stdout
    none = run_lkctl(["log", "lab3", "--level", "error"])
    assert none.stdout == "No lines in the log of lab3 (level ERROR and above).\n"
    bad = run_lkctl(["log", "lab9", "--level", "LOUD", "--json"])
    assert bad.returncode == 2
    assert [p["field"] for p in json.loads(bad.stdout)["problems"]] == ["server", "level"]
    assert bad.stderr.splitlines()[0].startswith("server: Server 'lab9' is not a server")
    since = run_lkctl(["log", "lab2", "--since", "yesterday-ish"])
    assert since.returncode == 2 and since.stderr.startswith("since: ")


def test_lkctl_log_follow_prints_new_lines_as_they_come(lab: LabBackend) -> None:
    follow = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "log", "lab3", "--follow", "--json"],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[dict[str, object]] = []
    got = threading.Event()

    def read() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            seen.append(json.loads(line))
            if "Server lab3 stopped (DEAD)." in str(seen[-1]["text"]):
                got.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stop = threading.Timer(1.0, lambda: lab.stop_server("lab3", local_administrator()))
        stop.start()
        assert got.wait(30), seen
        stop.join()
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(30)
    assert follow.returncode == 130
    assert follow.stderr is not None and follow.stderr.read() == "lkctl: interrupted\n"
    assert all("lab3" in str(x["text"]) + str(x["operation"]) for x in seen)
