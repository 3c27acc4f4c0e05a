"""status.py: crm_mon's XML and the CIB, as captured on the lab, in LifeKeeper's words."""

from __future__ import annotations

import pytest

from core.backends.pacemaker import status
from core.model import Cluster, CommPathState, Hierarchy, ResourceState, ServerState
from tests.core.backends.pacemaker_fixtures import XML, cluster_of, crm_mon_of


def _h(cluster: Cluster, tag: str) -> Hierarchy:
    return next(h for h in cluster.hierarchies if h.root_tag == tag)


def _states(h: Hierarchy) -> dict[str, ResourceState]:
    return {r.server: r.state for r in h.resources if r.resource_id == h.root_id}


def _reason(h: Hierarchy, server: str) -> str:
    return next(r.reason for r in h.resources if r.server == server)


def test_a_steady_cluster() -> None:
    c = cluster_of("steady")
    assert [(s.name, s.state, s.position) for s in c.servers] == [
        ("lab1", ServerState.ALIVE, 0),
        ("lab2", ServerState.ALIVE, 1),
        ("lab3", ServerState.ALIVE, 2),
    ]
    ip = _h(c, "web-ip")
    assert ip.servers == ("lab1", "lab2")
    assert _states(ip) == {"lab1": ResourceState.ISP, "lab2": ResourceState.OSU}
    assert ip.in_service_server == "lab1"
    root = ip.instance(ip.root_id, "lab1")
    assert root is not None
    assert root.setting("address") == "10.213.0.100/24" and root.setting("interface") == "eth0"
    app = _h(c, "/data/app")
    assert [
        (e.server, e.priority) for e in sorted(app.equivalencies, key=lambda e: e.priority)
    ] == [
        ("lab2", 1),
        ("lab1", 10),
        ("lab3", 20),
    ]
    assert _states(app) == {
        "lab2": ResourceState.ISP,
        "lab1": ResourceState.OSU,
        "lab3": ResourceState.OSU,
    }
    assert app.dependencies == () and app.resource_ids() == [app.root_id]


def test_comm_paths_are_the_knet_links_of_the_node_seen_from() -> None:
    c = cluster_of("steady")
    assert [(p.server, p.peer, p.local_address, p.peer_address, p.state) for p in c.comm_paths] == [
        ("lab1", "lab2", "10.213.0.11", "10.213.0.12", CommPathState.ALIVE),
        ("lab1", "lab3", "10.213.0.11", "10.213.0.13", CommPathState.ALIVE),
    ]


def test_failed_operations_are_out_of_service_failed_with_the_reason() -> None:
    c = cluster_of("failed")
    bad = _h(c, "bad-app")
    assert _states(bad) == {"lab3": ResourceState.OSF}
    assert "start failed on lab3" in _reason(bad, "lab3")
    assert "start command exited 3: cannot start" in _reason(bad, "lab3")
    app = _h(c, "/data/app")  # its monitor failed once; Pacemaker restarted it in place
    assert _states(app)["lab2"] is ResourceState.ISP
    assert _reason(app, "lab2").startswith("recovered after: monitor failed on lab2")


def test_a_node_in_standby_is_alive_standby_and_out_of_service_is_standby() -> None:
    c = cluster_of("stopped_standby")
    assert c.server("lab3").state is ServerState.ALIVE_STANDBY  # type: ignore[union-attr]
    assert c.server("lab3").state.label == "ALIVE (standby)"  # type: ignore[union-attr]
    ip = _h(c, "web-ip")
    assert _states(ip) == {"lab1": ResourceState.OSU, "lab2": ResourceState.OSU}
    assert ip.in_service_server is None
    assert "target-role Stopped" in _reason(ip, "lab1")


def test_a_node_just_lost_is_dead_and_its_resources_failed() -> None:
    c = cluster_of("node_lost")
    assert c.server("lab2").state is ServerState.DEAD  # type: ignore[union-attr]
    app = _h(c, "/data/app")
    assert _states(app)["lab2"] is ResourceState.OSF  # crm_mon still lists it there
    assert "unclean" in _reason(app, "lab2")
    assert app.in_service_server is None
    down = [p for p in c.comm_paths if p.peer == "lab2"]
    assert [p.state for p in down] == [CommPathState.DEAD]


def test_after_the_failover_it_is_in_service_on_the_next_priority() -> None:
    c = cluster_of("failed_over")
    app = _h(c, "/data/app")
    assert app.in_service_server == "lab1"
    assert _states(app) == {
        "lab2": ResourceState.UNKNOWN,
        "lab1": ResourceState.ISP,
        "lab3": ResourceState.OSU,
    }
    assert _reason(app, "lab2") == "lab2 is down"


def test_a_resource_being_started_is_not_in_service_yet() -> None:
    slow = _h(cluster_of("starting"), "slow-app")
    assert _states(slow) == {"lab2": ResourceState.OSU}
    assert _reason(slow, "lab2") == "coming in service (starting)"
    assert slow.in_service_server is None


def test_the_version_changes_when_the_hierarchy_moves_not_when_it_recovers() -> None:
    steady, failed, moved = (
        _h(cluster_of(n), "/data/app").version for n in ("steady", "failed", "failed_over")
    )
    assert steady == failed  # restarted in place: same configuration, same place
    assert steady != moved  # failed over: someone else (Pacemaker) changed it


def test_ids_are_the_same_in_every_snapshot() -> None:
    ids = [
        {
            (h.root_tag, h.id, h.root_id)
            for h in cluster_of(n).hierarchies
            if h.root_tag != "bad-app"
        }
        for n in ("steady", "failed", "stopped_standby", "node_lost", "failed_over")
    ]
    assert all(i == ids[0] for i in ids)


def test_what_pacemaker_did_in_lifekeepers_words() -> None:
    steady, lost, over = (cluster_of(n) for n in ("steady", "node_lost", "failed_over"))
    assert status.changes(steady, lost) == [
        ("WARNING", "lab2 is DEAD (was ALIVE)"),
        ("WARNING", "lab3 is ALIVE (standby) (was ALIVE)"),  # put in standby meanwhile
        ("WARNING", "web-ip is out of service (was in service on lab1)"),
        ("WARNING", "/data/app is out of service (was in service on lab2)"),
        ("WARNING", "/data/app failed on lab2: lab2 is unclean: Pacemaker is fencing it"),
    ]  # bad-app is new since "steady": its creation is the operation's to tell
    assert status.changes(lost, over) == [
        ("INFO", "/data/app is in service on lab1 (was out of service)")
    ]
    assert status.changes(over, over) == []
    # Restarted in place after its monitor failed: still in service, but it is said.
    assert status.changes(steady, cluster_of("failed")) == [
        ("WARNING", "/data/app was recovered on lab2 after: monitor failed on lab2 at "
         "2026-12-01 22:57:27Z: monitor command exited 1 (exit 1: error)"),
    ]  # fmt: skip


def test_failures_and_fail_counts() -> None:
    found = status.failures(crm_mon_of("failed"))
    assert {(f.xml_id, f.node, f.task) for f in found} == {
        ("_2f_data_2f_app", "lab2", "monitor"),
        ("bad-app", "lab3", "start"),
    }
    counts = status.fail_counts(crm_mon_of("failed"))
    assert counts[("bad-app", "lab3")] == 1_000_000  # a failed start: INFINITY
    assert counts[("_2f_data_2f_app", "lab2")] == 1


def test_placements_and_quorum() -> None:
    root = crm_mon_of("failed_over")
    assert status.placements(root.find("resources"))["_2f_data_2f_app"] == ("lab1",)
    assert status.quorate(root)


def test_cfgtool_and_nodelist_parsing() -> None:
    local, links = status.parse_cfgtool((XML / "node_lost.cfgtool.txt").read_text())
    assert local == "1"
    assert [(lk.link, lk.local_address) for lk in links] == [(0, "10.213.0.11")]
    assert links[0].peers == (("1", "localhost"), ("2", "disconnected"), ("3", "connected"))
    nodes = status.parse_nodelist((XML / "nodelist.txt").read_text())
    assert nodes["2"] == {"name": "lab2", "nodeid": "2", "ring0_addr": "10.213.0.12"}


def test_crm_mon_output_that_is_not_its_xml() -> None:
    with pytest.raises(status.StatusError, match="not XML"):
        status.parse_crm_mon("Cluster Summary:")
    with pytest.raises(status.StatusError, match="not crm_mon's XML"):
        status.parse_crm_mon("<cib/>")
