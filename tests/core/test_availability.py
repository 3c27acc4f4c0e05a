"""When each console action applies, and the reason it gives when it does not."""

from __future__ import annotations

import dataclasses

import pytest

from core import availability as av
from core.availability import Connection, Selection
from core.backends.lab import LabBackend
from core.model import Cluster, MirrorState, ResourceState, Role, ServerState
from tests.gui import clusters as c

ADMIN = Connection()


@pytest.fixture
def lab() -> Cluster:
    backend = LabBackend()
    try:
        return backend.snapshot()
    finally:
        backend.close()


def ids(cluster: Cluster, tag: str) -> tuple[int, int]:
    r = cluster.find_tag(tag)
    assert r is not None
    return r.hierarchy_id, r.resource_id


def resource(cluster: Cluster, tag: str = "/data", server: str | None = None) -> Selection:
    hid, rid = ids(cluster, tag)
    return Selection(server=server, hierarchy_id=hid, resource_id=rid)


def rule(
    name: str, cluster: Cluster | None, selection: Selection, conn: Connection = ADMIN
) -> av.Availability:
    return av.availability(cluster, selection, conn)[name]


def with_server_state(cluster: Cluster, name: str, state: ServerState) -> Cluster:
    servers = tuple(
        dataclasses.replace(s, state=state) if s.name == name else s for s in cluster.servers
    )
    return dataclasses.replace(cluster, servers=servers)


def test_every_action_has_a_rule_and_a_sentence(lab: Cluster) -> None:
    result = av.availability(lab, Selection(), ADMIN)
    assert set(result) == set(av.ACTIONS)
    assert all(r.reason.endswith(".") for r in result.values())


def test_nothing_selected(lab: Cluster) -> None:
    nothing = Selection()
    assert rule("create_hierarchy", lab, nothing).enabled
    server = rule("server_properties", lab, nothing)
    assert not server.enabled and "column header" in server.reason


def test_extend_with_nothing_selected_asks_in_the_wizard(lab: Cluster) -> None:
    # From the menu, the wizard offers Template Server and Tag to Extend itself.
    for nothing in (Selection(), Selection(server="lab2")):
        extend = rule("extend_hierarchy", lab, nothing)
        assert extend.enabled
        assert "asks for the template server and the tag" in extend.reason
    empty = dataclasses.replace(lab, hierarchies=())
    refused = rule("extend_hierarchy", empty, Selection())
    assert not refused.enabled and "create one first" in refused.reason
    both = c.extended(c.extended(lab, "lab2", MirrorState.TARGET), "lab3", MirrorState.TARGET)
    refused = rule("extend_hierarchy", both, Selection())
    assert not refused.enabled and "no server left to extend /data to" in refused.reason
    two = dataclasses.replace(both, hierarchies=both.hierarchies * 2)
    refused = rule("extend_hierarchy", two, Selection())
    assert not refused.enabled
    assert refused.reason == (
        "None of the 2 resource hierarchies can be extended now; select one to see why."
    )


def test_not_connected_disables_everything_but_connect(lab: Cluster) -> None:
    offline = Connection(connected=False)
    result = av.availability(None, resource(lab), offline)
    assert result["connect"].enabled
    for name, value in result.items():
        if name != "connect":
            assert not value.enabled, name
    assert "File › Connect" in result["extend_hierarchy"].reason
    assert not rule("connect", lab, Selection()).enabled
    assert rule("disconnect", lab, Selection()).enabled


def test_the_lab_seed_can_be_extended_to_either_free_server(lab: Cluster) -> None:
    extend = rule("extend_hierarchy", lab, resource(lab))
    assert extend.enabled
    assert extend.reason == "Extend /data from lab1 to one of lab2, lab3."
    cell = rule("extend_hierarchy", lab, resource(lab, "datarep-data", "lab3"))
    assert cell.enabled and cell.reason == "Extend /data from lab1 to lab3."


def test_extend_is_disabled_when_no_server_is_left(lab: Cluster) -> None:
    both = c.extended(c.extended(lab, "lab2", MirrorState.TARGET), "lab3", MirrorState.TARGET)
    extend = rule("extend_hierarchy", both, resource(both))
    assert not extend.enabled
    assert "no server left to extend /data to" in extend.reason
    assert "lab1, lab2, lab3" in extend.reason


def test_extend_is_disabled_when_the_free_server_is_down(lab: Cluster) -> None:
    cluster = with_server_state(
        c.extended(lab, "lab2", MirrorState.TARGET), "lab3", ServerState.DEAD
    )
    extend = rule("extend_hierarchy", cluster, resource(cluster))
    assert not extend.enabled
    assert "lab3 is not running" in extend.reason and "Start one" in extend.reason


def test_extend_needs_the_hierarchy_in_service(lab: Cluster) -> None:
    down = c.with_states(
        lab, {("/data", "lab1"): ResourceState.OSU, ("datarep-data", "lab1"): ResourceState.OSU}
    )
    extend = rule("extend_hierarchy", down, resource(down))
    assert not extend.enabled and "not in service on any server" in extend.reason
    dead = with_server_state(lab, "lab1", ServerState.DEAD)
    assert "template server lab1 is DEAD" in rule("extend_hierarchy", dead, resource(dead)).reason


def test_in_service_is_disabled_where_already_in_service(lab: Cluster) -> None:
    result = rule("in_service", lab, resource(lab))
    assert not result.enabled
    assert result.reason.startswith("/data is already in service on lab1")
    cell = rule("in_service", lab, resource(lab, "/data", "lab1"))
    assert cell.reason == "/data is already in service on lab1."
    undefined = rule("in_service", lab, resource(lab, "/data", "lab3"))
    assert not undefined.enabled and "extend the hierarchy to lab3 first" in undefined.reason


def test_no_switchover_to_a_mirror_that_is_not_target(lab: Cluster) -> None:
    size = lab.hierarchies[0].mirrors[0].volume_size
    resyncing = c.extended(lab, "lab2", done=c.part(size, 43))
    refused = rule("in_service", resyncing, resource(resyncing, "/data", "lab2"))
    assert not refused.enabled
    assert "still resyncing to lab2 (43 %)" in refused.reason
    assert "until its state is Target" in refused.reason

    synced = c.in_sync(resyncing, "lab2")
    ok = rule("in_service", synced, resource(synced, "/data", "lab2"))
    assert ok.enabled and ok.reason == "Switch /data over from lab1 to lab2."

    out = c.extended(lab, "lab2", MirrorState.OUT_OF_SYNC)
    assert "Out of Sync on lab2" in rule("in_service", out, resource(out, "/data", "lab2")).reason
    wait = c.extended(lab, "lab2", MirrorState.WAIT_FOR_PREVIOUS_SOURCE)
    stale = rule("in_service", wait, resource(wait, "datarep-data", "lab2"))
    assert not stale.enabled and "may be stale" in stale.reason


def test_in_service_needs_an_alive_server(lab: Cluster) -> None:
    cluster = with_server_state(
        c.extended(lab, "lab2", MirrorState.TARGET), "lab2", ServerState.DEAD
    )
    result = rule("in_service", cluster, resource(cluster, "/data", "lab2"))
    assert not result.enabled and result.reason == "lab2 is DEAD; start it first."


def test_out_of_service(lab: Cluster) -> None:
    cluster = c.extended(lab, "lab2", MirrorState.TARGET)
    assert rule("out_of_service", cluster, resource(cluster)).reason == (
        "Take /data out of service on lab1 (the resources that depend on it first)."
    )
    standby = rule("out_of_service", cluster, resource(cluster, "/data", "lab2"))
    assert not standby.enabled and standby.reason == "/data is not in service on lab2 (Standby)."
    down = c.with_states(lab, {("/data", "lab1"): ResourceState.OSU})
    nowhere = rule("out_of_service", down, resource(down))
    assert not nowhere.enabled and "not in service on any server" in nowhere.reason


def test_unextend(lab: Cluster) -> None:
    only = rule("unextend_hierarchy", lab, resource(lab))
    assert not only.enabled and "Delete Resource Hierarchy" in only.reason
    cluster = c.extended(lab, "lab2", MirrorState.TARGET)
    assert rule("unextend_hierarchy", cluster, resource(cluster)).reason == (
        "Remove /data from one of lab2."
    )
    active = rule("unextend_hierarchy", cluster, resource(cluster, "/data", "lab1"))
    assert not active.enabled and "in service on lab1" in active.reason
    standby = rule("unextend_hierarchy", cluster, resource(cluster, "datarep-data", "lab2"))
    assert standby.enabled and "the data volume is kept" in standby.reason
    free = rule("unextend_hierarchy", cluster, resource(cluster, "/data", "lab3"))
    assert not free.enabled and "not defined on lab3" in free.reason


def test_delete(lab: Cluster) -> None:
    result = rule("delete_hierarchy", lab, resource(lab, "datarep-data"))
    assert (
        result.enabled
        and result.reason == "Remove /data and its resources from every server (lab1)."
    )


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.GUEST, {"resource_properties", "server_properties", "show_log"}),
        (
            Role.OPERATOR,
            {"resource_properties", "server_properties", "out_of_service", "show_log"},
        ),
        (
            Role.ADMINISTRATOR,
            {
                "resource_properties",
                "server_properties",
                "out_of_service",
                "extend_hierarchy",
                "delete_hierarchy",
                "create_hierarchy",
                "stop_server",
                "create_dependency",
                "delete_dependency",
                "show_log",
            },
        ),
    ],
)
def test_roles(lab: Cluster, role: Role, allowed: set[str]) -> None:
    result = av.availability(lab, resource(lab, "/data", "lab1"), Connection(role=role))
    enabled = {n for n, r in result.items() if r.enabled} - {"connect", "disconnect"}
    assert enabled == allowed
    if role is Role.GUEST:
        assert result["extend_hierarchy"].reason.startswith(
            "Your role is Guest; Extend Resource Hierarchy needs the Administrator role."
        )


def test_servers(lab: Cluster) -> None:
    lab2 = Selection(server="lab2")
    assert rule("stop_server", lab, lab2).enabled
    start = rule("start_server", lab, lab2)
    assert not start.enabled and start.reason == "lab2 is already running (ALIVE)."
    dead = with_server_state(lab, "lab2", ServerState.DEAD)
    assert rule("start_server", dead, lab2).enabled
    assert "not running (DEAD)" in rule("stop_server", dead, lab2).reason
    real = Connection(capabilities=frozenset())
    assert "servers are real machines" in rule("stop_server", lab, lab2, real).reason
    assert rule("server_properties", lab, lab2).reason == "Show the properties of server lab2."
    gone = rule("server_properties", lab, Selection(server="lab9"))
    assert not gone.enabled and "no server lab9" in gone.reason


def test_create_needs_an_alive_server(lab: Cluster) -> None:
    everything_down = lab
    for s in lab.servers:
        everything_down = with_server_state(everything_down, s.name, ServerState.DEAD)
    result = rule("create_hierarchy", everything_down, Selection())
    assert not result.enabled and "No server is alive" in result.reason
    assert rule("create_hierarchy", lab, Selection(server="lab3")).reason == (
        "Create a new resource hierarchy (on lab3)."
    )


def test_a_selection_of_a_deleted_hierarchy(lab: Cluster) -> None:
    gone = Selection(hierarchy_id=999, resource_id=1)
    result = rule("extend_hierarchy", lab, gone)
    assert not result.enabled and "no longer exists" in result.reason


def test_selection_kinds() -> None:
    assert Selection().kind == "none"
    assert Selection(server="lab1").kind == "server"
    assert Selection(hierarchy_id=1, resource_id=2).kind == "resource"
    assert Selection("lab1", 1, 2).kind == "cell"
    with pytest.raises(ValueError, match="both"):
        Selection(hierarchy_id=1)


def test_preselection_of_a_resource_and_of_an_empty_cell(lab: Cluster) -> None:
    pre = av.preselection(lab, resource(lab, "datarep-data"), "extend_hierarchy")
    assert (pre.template_server, pre.tag, pre.root_tag, pre.target_server) == (
        "lab1",
        "datarep-data",
        "/data",
        None,
    )
    assert pre.hierarchy_id == lab.hierarchies[0].id and pre.version == lab.hierarchies[0].version
    cell = av.preselection(lab, resource(lab, "/data", "lab3"), "extend_hierarchy")
    assert (cell.template_server, cell.tag, cell.target_server) == ("lab1", "/data", "lab3")
    taken = av.preselection(lab, resource(lab, "/data", "lab1"), "extend_hierarchy")
    assert taken.target_server is None  # lab1 has the hierarchy: no target to preselect
    unextend = av.preselection(lab, resource(lab, "/data", "lab2"), "unextend_hierarchy")
    assert unextend.server == "lab2"
    in_service = av.preselection(lab, resource(lab), "in_service")
    assert in_service.server == "lab1"  # the best-priority server
    assert av.preselection(lab, Selection(server="lab3"), "create_hierarchy").server == "lab3"
    assert av.preselection(None, Selection(server="lab3"), "stop_server").server == "lab3"


def test_resize_mirror_and_show_log(lab: Cluster) -> None:
    """Resize Mirror: a DataKeeper resource with every copy's server up, Administrator."""
    dk = resource(lab, "datarep-data", "lab1")
    assert rule("resize_mirror", lab, dk).enabled
    assert "the new space is resynced" in rule("resize_mirror", lab, dk).reason
    fs = rule("resize_mirror", lab, resource(lab, "/data", "lab1"))
    assert not fs.enabled and "/data is not a DataKeeper resource" in fs.reason
    operator = rule("resize_mirror", lab, dk, Connection(role=Role.OPERATOR))
    assert not operator.enabled and "needs the Administrator role" in operator.reason
    log = rule("show_log", lab, Selection(server="lab2"), Connection(role=Role.GUEST))
    assert log.enabled and log.reason.startswith("Show the log of lab2")
    assert not rule("show_log", None, Selection(), Connection(connected=False)).enabled
