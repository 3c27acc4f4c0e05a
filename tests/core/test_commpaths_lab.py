"""Comm paths, failover confirmation, Shutdown Strategy and Resource Properties in the lab,
through lkctl as a user types it (--json read back), with real resyncs and bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.backends.lab import LabBackend
from core.model import MirrorState, ResourceState
from tests.core.labtools import digest, fill_source, wait_for_mirror
from tests.helpers import db_tables, run_lkctl, wait_until


def ok(*argv: str) -> Any:
    """Run lkctl with --json; it must succeed; its JSON."""
    done = run_lkctl([*argv, "--json"])
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return json.loads(done.stdout)


def refused(*argv: str, code: int = 2) -> str:
    done = run_lkctl(list(argv))
    assert done.returncode == code, (argv, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


def status() -> Any:
    return ok("status")


def cells(data: Any, tag: str = "datarep-data") -> dict[str, str]:
    for h in data["hierarchies"]:
        for r in h["resources"]:
            if r["tag"] == tag:
                return {s: v.get("mirror_state", v["state"]) for s, v in r["servers"].items()}
    raise AssertionError(tag)


def where(data: Any) -> str | None:
    return data["hierarchies"][0]["in_service_on"]


def servers(data: Any) -> dict[str, str]:
    return {s["name"]: s["state"] for s in data["servers"]}


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    """/data extended to lab2 (10) and lab3 (20), both Target, with data on the source."""
    backend = LabBackend()
    fill_source(backend)
    for _ in range(2):
        done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait"])
        assert done.returncode == 0, done.stderr
    yield backend
    backend.close()


def _volumes(lab: LabBackend) -> set[str]:
    return {
        digest(lab.layout.server_path(s, "/disks/datarep-data.img"))
        for s in ("lab1", "lab2", "lab3")
    }


def _settled(lab: LabBackend) -> None:
    h = lab.snapshot().hierarchies[0]
    for m in h.mirrors:
        for t in m.targets:
            wait_for_mirror(lab, h.id, t.server)


# -- lkctl commpath ---------------------------------------------------------------------------
def test_a_new_lab_has_two_alive_paths_between_every_pair(hermetic_env: Path) -> None:
    data = ok("commpath", "list")
    pairs = [(p["server"], p["peer"], p["priority"], p["state"]) for p in data["paths"]]
    assert pairs == [
        ("lab1", "lab2", 1, "ALIVE"),
        ("lab1", "lab2", 2, "ALIVE"),
        ("lab1", "lab3", 1, "ALIVE"),
        ("lab1", "lab3", 2, "ALIVE"),
        ("lab2", "lab3", 1, "ALIVE"),
        ("lab2", "lab3", 2, "ALIVE"),
    ]
    assert {(v["server"], v["peer"], v["state"]) for v in data["peers"]} == {
        ("lab1", "lab2", "ALIVE"),
        ("lab1", "lab3", "ALIVE"),
        ("lab2", "lab3", "ALIVE"),
    }
    text = run_lkctl(["commpath", "list", "lab2"]).stdout
    assert "lab2    lab1  10.213.0.12  10.213.0.11  1         ALIVE" in text
    assert "lab2 sees lab1: ALIVE (2 of 2 paths ALIVE)" in text


def test_create_and_delete_a_comm_path_are_in_the_history(hermetic_env: Path) -> None:
    made = ok(
        "commpath", "create", "lab1", "lab2", "--local", "10.215.0.11", "--remote", "10.215.0.12"
    )
    assert made["message"] == "Comm path created: lab1 10.215.0.11 → lab2 10.215.0.12 (priority 3)."
    mine = [p for p in ok("commpath", "list", "lab2")["paths"] if p["priority"] == 3]
    assert mine == [
        {
            "server": "lab2",
            "peer": "lab1",
            "local_address": "10.215.0.12",
            "remote_address": "10.215.0.11",
            "priority": 3,
            "state": "ALIVE",
        }
    ]
    gone = ok("commpath", "delete", "lab2", "lab1", "--path", "3", "--yes")
    assert gone["message"] == "Comm path deleted: lab2 10.215.0.12 → lab1 10.215.0.11 (priority 3)."
    history = ok("history")
    assert [e["command"] for e in history[-2:]] == [
        "lkctl commpath create lab1 lab2 --local 10.215.0.11 --remote 10.215.0.12 --priority 3",
        "lkctl commpath delete lab2 lab1 --path 3 --yes",
    ]
    assert all(e["ok"] for e in history[-2:])


def test_bad_comm_path_input_names_the_field_and_changes_nothing(hermetic_env: Path) -> None:
    run_lkctl(["status"])
    before = db_tables(hermetic_env)
    for argv, line in (
        (["commpath", "create", "lab1", "lab2", "--local", "10.0.0.300", "--remote", "10.0.0.2"],
         "local_address: Local Address '10.0.0.300' is not an IPv4 or IPv6 address"),
        (["commpath", "create", "lab1", "lab1", "--local", "10.0.0.1", "--remote", "10.0.0.2"],
         "peer: A comm path joins two servers"),
        (["commpath", "delete", "lab1", "lab2", "--yes"], "path: lab1 and lab2 have 2 comm paths"),
        (["commpath", "delete", "lab1", "lab2", "--path", "9", "--yes"],
         "path: There is no comm path '9'"),
        (["lab", "commpath-up", "lab1", "lab2"],
         "path: The comm paths between lab1 and lab2 are already ALIVE"),
    ):  # fmt: skip
        stderr = refused(*argv)
        assert stderr.startswith(line), stderr
        assert stderr.count("\n") == 1
    done = run_lkctl(["commpath", "delete", "lab1", "lab2", "--json"])
    assert json.loads(done.stdout)["problems"][0]["field"] == "path"
    assert "refused: " not in json.dumps(db_tables(hermetic_env)["history"])
    assert db_tables(hermetic_env) == before
    # Without a terminal a delete needs --yes.
    stderr = refused("commpath", "delete", "lab1", "lab2", "--path", "2")
    assert "add --yes to confirm" in stderr


# -- failover after a comm-path loss ----------------------------------------------------------
def test_losing_every_path_to_the_holder_fails_over_and_the_holder_steps_down(
    lab: LabBackend,
) -> None:
    source = _volumes(lab)
    assert len(source) == 1
    down = ok("lab", "commpath-down", "lab1", "lab2", "--path", "1")
    assert down["steps"][-1] == "lab1 sees lab2 as ALIVE (warning)."
    data = status()
    assert servers(data) == {"lab1": "ALIVE_WARNING", "lab2": "ALIVE_WARNING", "lab3": "ALIVE"}
    assert where(data) == "lab1"
    # The last path to lab2: lab3 still reaches lab1, so nothing moves; lab2 misses writes.
    lines = ok("lab", "commpath-down", "lab1", "lab2")["steps"]
    assert "/data stays on lab1: lab2 does not take it over (lab3 still reaches lab1)." in lines
    data = status()
    assert where(data) == "lab1"
    assert cells(data) == {"lab1": "ISP", "lab2": "OUT_OF_SYNC", "lab3": "TARGET"}
    # And every path to lab3: lab1 is alone; lab2 and lab3 are the majority.
    lines = ok("lab", "commpath-down", "lab1", "lab3")["steps"]
    assert any("lab1 lost its quorum, so it steps down" in line for line in lines)
    assert "/data fails over from lab1 to lab3 (priority 20)." in lines
    data = status()
    assert where(data) == "lab3"
    fs = cells(data, "/data")
    assert fs == {"lab1": "OSF", "lab2": "OSU", "lab3": "ISP"}
    # The paths come back: lab1 and lab2 resync from lab3 and are standbys again.
    ok("lab", "commpath-up", "lab1", "lab2")
    ok("lab", "commpath-up", "lab1", "lab3")
    _settled(lab)
    data = status()
    assert servers(data) == {"lab1": "ALIVE", "lab2": "ALIVE", "lab3": "ALIVE"}
    assert cells(data) == {"lab1": "TARGET", "lab2": "TARGET", "lab3": "ISP"}
    assert cells(data, "/data")["lab1"] == "OSU"
    assert _volumes(lab) == source  # every copy has the same bytes


def test_an_even_split_moves_nothing(lab: LabBackend) -> None:
    assert run_lkctl(["lab", "stop", "lab3", "--yes"]).returncode == 0
    lines = ok("lab", "commpath-down", "lab1", "lab2")["steps"]
    assert any("(lab2 reaches only 1 of the 2 running servers (no majority))" in x for x in lines)
    data = status()
    assert where(data) == "lab1"
    assert cells(data)["lab2"] == "OUT_OF_SYNC"
    ok("lab", "commpath-up", "lab1", "lab2")
    wait_for_mirror(lab, lab.snapshot().hierarchies[0].id, "lab2")


# -- failover confirmation --------------------------------------------------------------------
def test_a_failover_waits_for_confirmation_then_proceeds(lab: LabBackend) -> None:
    ok("server", "set", "lab2", "--confirm-failover", "lab1=on")
    lines = ok("lab", "stop", "lab1", "--yes")["steps"]
    assert (
        "Failover of /data from lab1 to lab2 waits for the administrator's confirmation: "
        "lkctl confirm-failover lab2 (or --deny). With no answer within 600 s it will proceed."
    ) in lines
    assert where(status()) is None
    props = ok("server", "properties", "lab2")
    assert props["confirm_failover_from"] == ["lab1"]
    assert [(p["hierarchy"], p["from"], p["reason"]) for p in props["pending_failovers"]] == [
        ("/data", "lab1", "lab1 stopped")
    ]
    lines = ok("confirm-failover", "lab2")["steps"]
    assert lines[0].startswith("Failover of /data from lab1 to lab2 confirmed by ")
    assert "/data in service on lab2 (datarep-data, then /data)" in lines
    assert where(status()) == "lab2"
    assert ok("server", "properties", "lab2")["pending_failovers"] == []
    stderr = refused("confirm-failover", "lab2")
    assert stderr == "server: No failover waits for a confirmation on lab2.\n"


def test_a_denied_failover_stays_down_and_a_timeout_takes_the_default(lab: LabBackend) -> None:
    ok("server", "set", "lab2", "--confirm-failover", "lab1=on", "--confirm-default", "block")
    ok("lab", "stop", "lab1", "--yes")
    lines = ok("confirm-failover", "lab2", "--deny")["steps"]
    assert any("blocked by " in x and "/data stays out of service" in x for x in lines)
    assert where(status()) is None
    ok("lab", "start", "lab1")
    _settled(lab)
    assert where(status()) == "lab1"  # it had stayed down: it comes back where it was
    # Now a timeout of 1 s that proceeds: whoever reads the lab next fails it over.
    ok("server", "set", "lab2", "--confirm-timeout", "1", "--confirm-default", "proceed")
    ok("lab", "stop", "lab1", "--yes")
    wait_until(lambda: where(status()) == "lab2", 10, "the timeout's default action")
    entry = ok("history")[-1]
    assert entry["user"] == "LifeKeeper (confirmation timeout)"
    assert "confirmed by its default action, with no answer within 1 s" in entry["result"]


# -- Shutdown Strategy ------------------------------------------------------------------------
def test_a_clean_stop_follows_the_shutdown_strategy(lab: LabBackend) -> None:
    lines = ok("lab", "stop", "lab1", "--clean", "--yes")["steps"]
    assert "/data switches over from lab1 to lab2 (Shutdown Strategy)." in lines
    assert where(status()) == "lab2"
    ok("lab", "start", "lab1")
    _settled(lab)
    ok("server", "set", "lab2", "--shutdown-strategy", "do-not-switchover")
    assert ok("server", "properties", "lab2")["shutdown_strategy"] == "do-not-switchover"
    lines = ok("lab", "stop", "lab2", "--clean", "--yes")["steps"]
    assert any("stays out of service (do not switchover)" in x for x in lines)
    assert where(status()) is None
    ok("lab", "start", "lab2")
    assert where(status()) == "lab2"
    _settled(lab)


def test_bad_server_properties_change_nothing(lab: LabBackend) -> None:
    home = lab.home
    before = db_tables(home)
    for argv, line in (
        (["--shutdown-strategy", "later"], "shutdown_strategy: Shutdown Strategy 'later'"),
        (["--confirm-failover", "lab2=on"],
         "confirm_failover: Failover Confirmation is set per peer"),
        (["--confirm-failover", "lab1=maybe"], "confirm_failover: --confirm-failover lab1='maybe'"),
        (["--confirm-timeout", "0"], "confirm_timeout: Confirmation Timeout 0 s is out of range"),
    ):  # fmt: skip
        assert refused("server", "set", "lab2", *argv).startswith(line)
    assert db_tables(home) == before


# -- Resource Properties ----------------------------------------------------------------------
def test_resource_properties_priorities_switchback_and_mirror(lab: LabBackend) -> None:
    home = lab.home
    before = db_tables(home)
    stderr = refused("resource", "set", "/data", "--priority", "lab2=20")
    assert stderr.startswith("priority_lab2: Priority 20 is also lab3's for /data")
    stderr = refused("resource", "set", "/data", "--switchback", "automatic")
    assert "DataKeeper supports only intelligent" in stderr
    assert refused("resource", "set", "datarep-data", "--compression", "3").startswith(
        "compression_level: The mirror engine of this cluster does not compress"
    )
    assert db_tables(home) == before
    # Trading places is fine (lab2 and lab3 swap).
    ok("resource", "set", "/data", "--priority", "lab2=20", "--priority", "lab3=10")
    assert ok("resource", "properties", "/data")["priorities"] == {
        "lab1": 1,
        "lab2": 20,
        "lab3": 10,
    }
    assert ok("resource", "set", "/data", "--priority", "lab2=20")["message"].startswith(
        "Nothing changed"
    )
    ok("resource", "set", "datarep-data", "--async", "lab3=on", "--speed-limit", "20000")
    mirror = ok("resource", "properties", "datarep-data")["mirror"]
    assert mirror["speed_limit_kbps"] == 20000
    assert {t["server"]: t["asynchronous"] for t in mirror["targets"]} == {
        "lab2": False,
        "lab3": True,
    }
    # Writes still reach both targets (lab3's queued), byte for byte.
    assert (
        run_lkctl(["lab", "write", "datarep-data", "--offset", "1M", "--length", "256K"]).returncode
        == 0
    )
    _settled(lab)
    assert len(_volumes(lab)) == 1
    assert lab.snapshot().hierarchies[0].mirrors[0].target("lab3").state is MirrorState.TARGET  # type: ignore[union-attr]


def test_a_servers_log_holds_its_lines(lab: LabBackend) -> None:
    ok("lab", "commpath-down", "lab2", "lab3", "--path", "2")
    lines = [r.text for r in lab.server_log("lab3")]
    assert "Comm path lab2 10.214.0.12 → lab3 10.214.0.13 (priority 2) is DEAD." in lines
    assert all("lab1 sees" not in t or "lab3" in t for t in lines)
    only_lab1 = [r.text for r in lab.server_log("lab1")]
    assert "Comm path lab2 10.214.0.12 → lab3 10.214.0.13 (priority 2) is DEAD." not in only_lab1
    assert (
        lab.snapshot().hierarchies[0].instance(lab.snapshot().hierarchies[0].root_id, "lab1").state
        is ResourceState.ISP
    )  # type: ignore[union-attr]
