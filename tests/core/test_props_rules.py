"""The pure rules of comm paths, Server Properties and Resource Properties: a table of bad
input each (the message names the field), and what a server sees of its peers."""

from __future__ import annotations

import dataclasses

import pytest

from core.errors import CheckFailed
from core.model import (
    Cluster,
    CommPath,
    CommPathState,
    Equivalency,
    Hierarchy,
    Mirror,
    MirrorState,
    MirrorTarget,
    Resource,
    ResourceKind,
    ResourceState,
    Server,
    ServerState,
    SwitchbackType,
)
from core.plan import SetMirrorMode, SetPriorities, SetServerProperties, SetSpeedLimit
from core.rules import commpaths, resource_properties, server_properties
from core.rules.commpaths import CreateCommPathRequest, DeleteCommPathRequest
from core.rules.resource_properties import ResourcePropertiesRequest
from core.rules.server_properties import ServerPropertiesRequest

SERVERS = ("lab1", "lab2", "lab3")


def _paths(down: set[tuple[str, str, int]] = frozenset(), only: int = 2) -> tuple[CommPath, ...]:
    """Two paths (priorities 1, 2) per pair, from both sides; ``down``: (a, b, priority)."""
    found = []
    number = 0
    for i, a in enumerate(SERVERS):
        for b in SERVERS[i + 1 :]:
            for prio in range(1, only + 1):
                number += 1
                dead = (a, b, prio) in down
                state = CommPathState.DEAD if dead else CommPathState.ALIVE
                la, lb = f"10.21{2 + prio}.0.1{i + 1}", f"10.21{2 + prio}.0.1{SERVERS.index(b) + 1}"
                found.append(CommPath(a, b, la, lb, state, prio, number))
                found.append(CommPath(b, a, lb, la, state, prio, number))
    return tuple(found)


def _hierarchy(datakeeper: bool = True) -> Hierarchy:
    kind = ResourceKind.DATAKEEPER if datakeeper else ResourceKind.IP
    resources = tuple(
        Resource(1, 1, kind, s, "dk" if datakeeper else "ip1", st)
        for s, st in (("lab1", ResourceState.ISP), ("lab2", ResourceState.OSU))
    )
    mirrors = (
        (
            Mirror(
                1,
                "lab1",
                1 << 20,
                65536,
                500_000,
                False,
                (MirrorTarget("lab2", MirrorState.TARGET),),
            ),
        )
        if datakeeper
        else ()
    )
    return Hierarchy(
        1,
        SwitchbackType.INTELLIGENT,
        1,
        1,
        resources,
        (),
        (Equivalency("lab1", 1), Equivalency("lab2", 10)),
        mirrors,
    )


def _cluster(
    down: set[tuple[str, str, int]] = frozenset(),
    stopped: tuple[str, ...] = (),
    hierarchies: tuple[Hierarchy, ...] = (),
) -> Cluster:
    servers = tuple(
        Server(n, ServerState.DEAD if n in stopped else ServerState.ALIVE, i + 1)
        for i, n in enumerate(SERVERS)
    )
    paths = tuple(
        dataclasses.replace(p, state=CommPathState.DEAD)
        if p.server in stopped or p.peer in stopped
        else p
        for p in _paths(down)
    )
    return Cluster(servers, hierarchies, paths)


# -- what a server sees -----------------------------------------------------------------------
def test_a_peer_is_alive_with_a_warning_on_one_path_and_dead_on_none() -> None:
    c = _cluster({("lab1", "lab2", 1)})
    assert commpaths.peer_state(c, "lab1", "lab2") is ServerState.ALIVE_WARNING
    assert commpaths.peer_state(c, "lab2", "lab1") is ServerState.ALIVE_WARNING
    assert commpaths.peer_state(c, "lab1", "lab3") is ServerState.ALIVE
    c = _cluster({("lab1", "lab2", 1), ("lab1", "lab2", 2)})
    assert commpaths.peer_state(c, "lab1", "lab2") is ServerState.DEAD
    shown = {s.name: s.state for s in commpaths.shown_states(c.servers, c.comm_paths)}
    assert shown == {
        "lab1": ServerState.ALIVE_WARNING,
        "lab2": ServerState.ALIVE_WARNING,
        "lab3": ServerState.ALIVE,
    }
    view = commpaths.peers(c, "lab1")[0]
    assert view.text == "DEAD (0 of 2 paths ALIVE)"


def test_a_stopped_peer_is_dead_and_warns_nobody() -> None:
    c = _cluster(stopped=("lab3",))
    assert commpaths.peer_state(c, "lab1", "lab3") is ServerState.DEAD
    shown = {s.name: s.state for s in commpaths.shown_states(c.servers, c.comm_paths)}
    assert shown["lab1"] is ServerState.ALIVE and shown["lab3"] is ServerState.DEAD


@pytest.mark.parametrize(
    ("down", "candidate", "allowed", "why"),
    [
        # lab1 cut off from everyone: lab2 and lab3 are the majority, nobody sees lab1
        ({("lab1", "lab2", 1), ("lab1", "lab2", 2), ("lab1", "lab3", 1), ("lab1", "lab3", 2)},
         "lab2", True, ""),
        # only lab1-lab2 cut: lab3 still reaches lab1 (the witness vetoes)
        ({("lab1", "lab2", 1), ("lab1", "lab2", 2)}, "lab2", False, "lab3 still reaches lab1"),
        # one path left: nothing is cut
        ({("lab1", "lab2", 1)}, "lab2", False, "lab2 still reaches lab1"),
    ],
)  # fmt: skip
def test_take_over_only_when_every_path_is_down_with_quorum_and_no_witness(
    down: set[tuple[str, str, int]], candidate: str, allowed: bool, why: str
) -> None:
    c = _cluster(down)
    assert commpaths.may_take_over(c, "lab1", candidate) is allowed
    if why:
        assert commpaths.why_not(c, "lab1", candidate) == why


def test_an_even_split_moves_nothing() -> None:
    c = _cluster({("lab1", "lab2", 1), ("lab1", "lab2", 2)}, stopped=("lab3",))
    assert not commpaths.has_quorum(c, "lab2") and not commpaths.has_quorum(c, "lab1")
    assert not commpaths.may_take_over(c, "lab1", "lab2")
    assert "no majority" in commpaths.why_not(c, "lab1", "lab2")


# -- create and delete: bad input, each problem under its field -------------------------------
CREATE_BAD = [
    (("", "lab2", "10.9.0.1", "10.9.0.2", ""), "server", "Choose the server"),
    (("lab9", "lab2", "10.9.0.1", "10.9.0.2", ""), "server", "'lab9' is not a server"),
    (("lab1", "lab1", "10.9.0.1", "10.9.0.2", ""), "peer", "choose a peer other than lab1"),
    (("lab1", "lab2", "", "10.9.0.2", ""), "local_address", "Local Address is required"),
    (("lab1", "lab2", "10.9.0.300", "10.9.0.2", ""), "local_address", "not an IPv4 or IPv6"),
    (("lab1", "lab2", "10.9.0.1", "fe80::1", ""), "remote_address", "is IPv6 but the Local"),
    (("lab1", "lab2", "10.9.0.1", "10.9.0.1", ""), "remote_address", "is the Local Address"),
    (("lab1", "lab2", "10.213.0.12", "10.9.0.2", ""), "local_address", "an address of lab2"),
    (("lab1", "lab2", "10.213.0.11", "10.213.0.12", ""), "remote_address", "already a comm"),
    (("lab1", "lab2", "10.9.0.1", "10.9.0.2", "x"), "priority", "whole number from 1 to 99"),
    (("lab1", "lab2", "10.9.0.1", "10.9.0.2", "100"), "priority", "out of range"),
    (("lab1", "lab2", "10.9.0.1", "10.9.0.2", "2"), "priority", "use 3"),
]


@pytest.mark.parametrize(("values", "field", "says"), CREATE_BAD)
def test_create_comm_path_refusals(values: tuple[str, ...], field: str, says: str) -> None:
    c = _cluster()
    problems = commpaths.create_problems(c, CreateCommPathRequest(*values))
    assert [p.field for p in problems] == [field], problems
    assert says in problems[0].message
    with pytest.raises(CheckFailed):
        commpaths.checked_create(c, CreateCommPathRequest(*values))


def test_create_comm_path_chooses_the_next_priority() -> None:
    done = commpaths.checked_create(
        _cluster(), CreateCommPathRequest("lab1", "lab2", " 10.9.0.1", "10.9.0.2")
    )
    assert (done.local_address, done.remote_address, done.priority) == ("10.9.0.1", "10.9.0.2", 3)


DELETE_BAD = [
    (("lab1", "lab9", ""), "peer", "'lab9' is not a server"),
    (("lab1", "lab2", ""), "path", "choose which one"),
    (("lab1", "lab2", "7"), "path", "no comm path '7'"),
]


@pytest.mark.parametrize(("values", "field", "says"), DELETE_BAD)
def test_delete_comm_path_refusals(values: tuple[str, ...], field: str, says: str) -> None:
    problems = commpaths.delete_problems(_cluster(), DeleteCommPathRequest(*values))
    assert [p.field for p in problems] == [field] and says in problems[0].message


def test_the_last_path_between_servers_sharing_a_hierarchy_is_kept() -> None:
    one = tuple(p for p in _paths() if p.priority == 1)
    c = Cluster(_cluster().servers, (_hierarchy(),), one)
    problems = commpaths.delete_problems(c, DeleteCommPathRequest("lab1", "lab2", "1"))
    assert [p.code for p in problems] == ["last_path"]
    assert "split brain" in problems[0].message
    assert commpaths.delete_problems(c, DeleteCommPathRequest("lab1", "lab3", "1")) == []


# -- Server Properties ------------------------------------------------------------------------
SERVER_BAD = [
    (("lab9", "switchover", (), 600, "proceed"), "server", "not a server"),
    (("lab2", "sometimes", (), 600, "proceed"), "shutdown_strategy", "not one of switchover"),
    (("lab2", "switchover", ("lab2",), 600, "proceed"), "confirm_failover", "from itself"),
    (("lab2", "switchover", ("lab7",), 600, "proceed"), "confirm_failover", "'lab7'"),
    (("lab2", "switchover", (), "ten", "proceed"), "confirm_timeout", "whole number"),
    (("lab2", "switchover", (), 0, "proceed"), "confirm_timeout", "out of range"),
    (("lab2", "switchover", (), 90000, "proceed"), "confirm_timeout", "out of range"),
    (("lab2", "switchover", (), 600, "maybe"), "confirm_default", "proceed, block"),
]


@pytest.mark.parametrize(("values", "field", "says"), SERVER_BAD)
def test_server_properties_refusals(values: tuple[object, ...], field: str, says: str) -> None:
    request = ServerPropertiesRequest(*values)  # type: ignore[arg-type]
    problems = server_properties.problems(_cluster(), request)
    assert [p.field for p in problems] == [field] and says in problems[0].message
    with pytest.raises(CheckFailed):
        server_properties.step(_cluster(), request)


def test_server_properties_step_and_no_change() -> None:
    c = _cluster()
    same = server_properties.request_of(c.servers[1])
    assert server_properties.step(c, same) is None
    step = server_properties.step(
        c, ServerPropertiesRequest("lab2", "do-not-switchover", ("lab3", "lab1"), "30", "block")
    )
    assert isinstance(step, SetServerProperties)
    assert step.confirm_failover_from == ("lab1", "lab3")
    assert step.title == (
        "Server lab2: Shutdown Strategy do not switchover; failovers from lab1, lab3 wait "
        "for confirmation (30 s, then block)"
    )


# -- Resource Properties ----------------------------------------------------------------------
RESOURCE_BAD = [
    ({"tag": "nothing"}, "tag", "no resource tagged"),
    ({"switchback_type": "sometimes"}, "switchback_type", "not one of intelligent"),
    ({"switchback_type": "automatic"}, "switchback_type", "DataKeeper supports only intelligent"),
    ({"priorities": {"lab2": "0"}}, "priority_lab2", "out of range"),
    ({"priorities": {"lab2": "ten"}}, "priority_lab2", "whole number"),
    ({"priorities": {"lab2": "1"}}, "priority_lab2", "also lab1's"),
    ({"priorities": {"lab3": "5"}}, "priority_lab3", "not defined on lab3"),
    ({"asynchronous": {"lab3": True}}, "asynchronous_lab3", "not a target"),
    ({"speed_limit_kbps": "-5"}, "speed_limit", "whole number"),
    ({"speed_limit_kbps": 100_000_001}, "speed_limit", "out of range"),
    ({"compression_level": 5}, "compression_level", "does not compress"),
]


@pytest.mark.parametrize(("changes", "field", "says"), RESOURCE_BAD)
def test_resource_properties_refusals(changes: dict[str, object], field: str, says: str) -> None:
    c = Cluster(_cluster().servers, (_hierarchy(),))
    request = ResourcePropertiesRequest(**{"tag": "dk", **changes})  # type: ignore[arg-type]
    problems = resource_properties.problems(c, request)
    assert [p.field for p in problems] == [field], problems
    assert says in problems[0].message
    with pytest.raises(CheckFailed):
        resource_properties.steps(c, request)


def test_automatic_switchback_is_fine_without_datakeeper() -> None:
    c = Cluster(_cluster().servers, (_hierarchy(datakeeper=False),))
    _h, steps = resource_properties.steps(
        c, ResourcePropertiesRequest("ip1", "automatic", {"lab1": 20, "lab2": "5"})
    )
    assert steps == (
        SetPriorities(1, "ip1", (("lab2", 5), ("lab1", 20)), SwitchbackType.AUTOMATIC),
    )
    problems = resource_properties.problems(
        c, ResourcePropertiesRequest("ip1", asynchronous={"lab2": True})
    )
    assert [p.code for p in problems] == ["not_datakeeper"]


def test_resource_properties_steps_only_for_what_changed() -> None:
    c = Cluster(_cluster().servers, (_hierarchy(),))
    assert (
        resource_properties.steps(c, ResourcePropertiesRequest("dk", "intelligent", {"lab2": 10}))[
            1
        ]
        == ()
    )
    _h, steps = resource_properties.steps(
        c,
        ResourcePropertiesRequest(
            "dk",
            priorities={"lab1": 10, "lab2": 1},
            asynchronous={"lab2": True},
            speed_limit_kbps="0",
        ),
    )
    assert steps == (
        SetPriorities(1, "dk", (("lab2", 1), ("lab1", 10)), None),
        SetMirrorMode(1, "dk", "lab2", True),
        SetSpeedLimit(1, "dk", 0),
    )
