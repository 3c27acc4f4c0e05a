"""Faults on the Pacemaker lab, each real: a partition (a node's switch port down), a node
put in standby, an application whose monitor fails. In each the console's status is what
crm_mon says, and the console's records (the output panel, ``lkctl log``) say what
Pacemaker did."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.backends.pacemaker import PacemakerBackend, nslab
from core.events import EventHub
from core.model import ResourceState, ServerState
from tests.cluster.labtools import Lab, wait_healthy
from tests.cluster.pcmk_plans import ADMIN, app, extend, find, ip
from tests.cluster.test_pacemaker_backend import running_on
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def watched(backend: PacemakerBackend) -> Iterator[PacemakerBackend]:
    """The backend with its watch running, as a console has it (the watch writes what the
    cluster does into the records)."""
    watch = backend.watch(EventHub())
    try:
        yield backend
    finally:
        watch.stop()


def _lines(b: PacemakerBackend, after: int) -> list[str]:
    return [f"{row.level} {row.text}" for row in b.log_lines(after)]


def _last_id(b: PacemakerBackend) -> int:
    rows = b.log_lines(0, 100_000)
    return rows[-1].id if rows else 0


def _server_state(b: PacemakerBackend, name: str) -> ServerState | None:
    server = b.snapshot().server(name)
    return server.state if server is not None else None


def test_a_partition_fences_the_cut_node_and_the_console_shows_what_crm_mon_shows(
    lab: Lab, watched: PacemakerBackend
) -> None:
    b = watched
    b.apply(ip("cut-ip", "10.213.0.171", server="lab3"), ADMIN)
    extend(b, "cut-ip", ("lab2", 2))
    wait_until(lambda: running_on(lab, "lab1", "cut-ip") == {"lab3"}, 30, "cut-ip on lab3")
    after = _last_id(b)
    try:
        nslab.cut(lab.home, "lab3")
        wait_until(lambda: running_on(lab, "lab1", "cut-ip") == {"lab2"}, 90, "cut-ip on lab2")
        wait_until(lambda: find(b, "cut-ip").in_service_server == "lab2", 10, "shown on lab2")
        assert _server_state(b, "lab3") is ServerState.DEAD
        assert lab.view("lab1") == (True, {"lab1", "lab2"})

        def failover_recorded() -> bool:
            return any("INFO cut-ip is in service on lab2" in x for x in _lines(b, after))

        wait_until(failover_recorded, 10, "the failover in the records")
        assert any(line.startswith("WARNING lab3 is DEAD") for line in _lines(b, after))
    finally:
        nslab.mend(lab.home, "lab3")
        wait_healthy(lab)


def test_a_node_in_standby_is_alive_standby_and_its_hierarchy_moves(
    lab: Lab, watched: PacemakerBackend
) -> None:
    b = watched
    b.apply(ip("sb-ip", "10.213.0.172"), ADMIN)
    extend(b, "sb-ip", ("lab2", 2))
    wait_until(lambda: running_on(lab, "lab2", "sb-ip") == {"lab1"}, 30, "sb-ip on lab1")
    after = _last_id(b)
    standby = ["crm_attribute", "--node", "lab1", "--name", "standby"]
    lab.run("lab2", *standby, "--update", "on")
    try:
        wait_until(lambda: running_on(lab, "lab2", "sb-ip") == {"lab2"}, 60, "sb-ip on lab2")
        wait_until(lambda: _server_state(b, "lab1") is ServerState.ALIVE_STANDBY, 10, "standby")
        h = find(b, "sb-ip")
        assert h.in_service_server == "lab2"
        root = {r.server: r.state for r in h.resources if r.resource_id == h.root_id}
        assert root == {"lab1": ResourceState.OSU, "lab2": ResourceState.ISP}
        wait_until(
            lambda: "WARNING lab1 is ALIVE (standby) (was ALIVE)" in _lines(b, after),
            10,
            "the standby in the records",
        )
        wait_until(  # the watch writes it when it sees the move: maybe after the snapshot
            lambda: any("INFO sb-ip is in service on lab2" in x for x in _lines(b, after)),
            10,
            "the move in the records",
        )
    finally:
        lab.run("lab2", *standby, "--delete")
    wait_until(lambda: _server_state(b, "lab1") is ServerState.ALIVE, 30, "lab1 back")


def test_an_application_whose_monitor_fails_is_recovered_in_place_and_says_why(
    lab: Lab, watched: PacemakerBackend
) -> None:
    b = watched
    b.apply(app("mon-app"), ADMIN)
    marker = "/data/mon-app.running"  # the app's monitor checks that its start made it
    wait_until(lambda: running_on(lab, "lab2", "mon-app") == {"lab1"}, 30, "mon-app on lab1")
    wait_until(lambda: lab.run("lab1", "cat", marker, ok=False) == "started\n", 30, "started")
    after = _last_id(b)
    lab.run("lab1", "rm", "-f", marker)  # behind Pacemaker's back: the next monitor fails
    wait_until(
        lambda: any(
            "WARNING mon-app was recovered on lab1 after: monitor failed on lab1" in line
            for line in _lines(b, after)
        ),
        60,
        "the monitor's failure in the records",
    )
    # Pacemaker restarts it where it was (local recovery), as LifeKeeper would.
    wait_until(lambda: lab.run("lab1", "cat", marker, ok=False) == "started\n", 60, "restarted")
    wait_until(lambda: running_on(lab, "lab2", "mon-app") == {"lab1"}, 30, "still on lab1")
    h = find(b, "mon-app")
    root = next(r for r in h.resources if r.resource_id == h.root_id and r.server == "lab1")
    assert root.state is ResourceState.ISP
    assert "monitor failed on lab1" in (root.reason or "")
