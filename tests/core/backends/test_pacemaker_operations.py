"""operations.py and the transition check: a plan's steps as one change of a CIB copy."""

from __future__ import annotations

import pytest

from core.backends.pacemaker import cib, operations
from core.backends.pacemaker.backend import Simulation, check_transition, describe_actions
from core.errors import OperationError
from core.model import Resource, ResourceKind, ResourceState, SwitchbackType
from core.plan import (
    AddResource,
    BringInService,
    BringNewInService,
    CreateDependency,
    CreateResource,
    DeleteDependency,
    DeleteHierarchy,
    GrowVolume,
    MakeSource,
    RemovePriority,
    RemoveResources,
    SetPriorities,
    TakeOutOfService,
)
from tests.core.backends.pacemaker_fixtures import cib_of

RUNNING = {"web-ip": ("lab1",), "_2f_data_2f_app": ("lab2",), "lab-fence": ("lab1",)}
WEB = cib.hierarchy_id("web-ip-hierarchy")
APP = cib.hierarchy_id("_2f_data_2f_app-hierarchy")
IP = (("address", "10.213.0.102/24"), ("interface", "eth0"))


def _create(tag: str = "db-ip", server: str = "lab3") -> CreateResource:
    return CreateResource("new", server, ResourceKind.IP, tag, IP, SwitchbackType.INTELLIGENT)


def test_create_makes_a_group_and_wants_it_in_service_on_its_server() -> None:
    current = cib_of("steady")
    change = operations.build(current, [_create(), BringNewInService("lab3", "db-ip")], RUNNING)
    assert change.created == ["db-ip-hierarchy"]
    assert [(i.top_id, i.where) for i in change.intents] == [("db-ip-hierarchy", "lab3")]
    assert [f.kind for f in change.follow_ups] == ["check-started"]
    assert len(cib.hierarchies(current)) == 2  # built on a copy
    assert len(cib.hierarchies(change.cib)) == 3


def test_a_resize_step_is_not_one_change_of_the_cib() -> None:
    """Resize Mirror is made in phases by the backend (resize_dk.py), never built as one
    change: a plan that mixes a resize step into one is refused, naming the step."""
    step = GrowVolume(1, "datarep", "lab2", "/disks/d.img", 1 << 20, 2 << 20, "target")
    with pytest.raises(operations.Unsupported, match="GrowVolume is not available") as caught:
        operations.build(cib_of("steady"), [step], RUNNING)
    assert caught.value.step == step.title


def test_extend_sets_priorities_and_switchback() -> None:
    steps = [
        SetPriorities(WEB, "web-ip", (("lab1", 1), ("lab3", 20)), SwitchbackType.AUTOMATIC),
    ]
    change = operations.build(cib_of("steady"), steps, RUNNING)
    h = cib.find(change.cib, WEB)
    assert h is not None
    assert h.priorities == (("lab1", 1), ("lab2", 10), ("lab3", 20))
    assert h.switchback is SwitchbackType.AUTOMATIC
    assert change.intents == []  # it must stay where it is


def test_add_resource_without_priorities_gets_the_next_multiple_of_ten() -> None:
    resource = Resource(
        cib.resource_id("web-ip"), WEB, ResourceKind.IP, "lab3", "web-ip", ResourceState.OSU
    )
    change = operations.build(cib_of("steady"), [AddResource(resource)], RUNNING)
    h = cib.find(change.cib, WEB)
    assert h is not None and h.priority_of("lab3") == 20


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (SetPriorities(WEB, "web-ip", (("lab3", 10),)), "priority 10 is already in use"),
        (SetPriorities(WEB, "web-ip", (("lab9", 30),)), "lab9 is not a node"),
        (RemovePriority(WEB, "web-ip", "lab1"), "in service on lab1: switch it over"),
        (RemovePriority(WEB, "web-ip", "lab3"), "not extended to lab3"),
        (BringInService(WEB, "web-ip", "lab3", ("web-ip",)), "not extended to lab3"),
        (RemoveResources(APP, "lab3", ("other",)), "as a whole"),
        (DeleteHierarchy(12345, "gone", ("lab1",)), "no longer in the cluster"),
        (_create("web-ip"), "already used"),
    ],
)
def test_bad_steps_are_refused_naming_the_step(step: object, message: str) -> None:
    with pytest.raises(OperationError, match=message) as caught:
        operations.build(cib_of("steady"), [step], RUNNING)  # type: ignore[list-item]
    assert caught.value.step == step.title  # type: ignore[attr-defined]


def test_add_resource_must_keep_the_tag() -> None:
    resource = Resource(
        cib.resource_id("web-ip"), WEB, ResourceKind.IP, "lab3", "web-ip-2", ResourceState.OSU
    )
    with pytest.raises(OperationError, match="one tag on every server"):
        operations.build(cib_of("steady"), [AddResource(resource)], RUNNING)


def test_switchover_is_a_move_and_the_preference_is_cleared_after() -> None:
    steps = [
        TakeOutOfService(WEB, "web-ip", "lab1", ("web-ip",)),
        BringInService(WEB, "web-ip", "lab2", ("web-ip",)),
    ]
    change = operations.build(cib_of("steady"), steps, RUNNING)
    h = cib.find(change.cib, WEB)
    assert h is not None and not h.stopped and h.preferred == "lab2"
    assert [(i.where, i.gone) for i in change.intents] == [("lab2", False)]
    assert [(f.kind, f.node) for f in change.follow_ups] == [("clear-preference", "lab2")]
    again = operations.follow_up_change(change.cib, change.follow_ups[0])
    assert again is not None
    h = cib.find(again, WEB)
    assert h is not None and h.preferred is None


def test_unextend_removes_that_servers_constraint() -> None:
    steps = [RemoveResources(APP, "lab3", ("/data/app",)), RemovePriority(APP, "/data/app", "lab3")]
    change = operations.build(cib_of("steady"), steps, RUNNING)
    h = cib.find(change.cib, APP)
    assert h is not None and h.priorities == (("lab2", 1), ("lab1", 10))


def test_delete_stops_first_when_running_and_removes_at_once_when_not() -> None:
    running = operations.build(
        cib_of("steady"), [DeleteHierarchy(WEB, "web-ip", ("lab1",))], RUNNING
    )
    assert [(i.where, i.gone) for i in running.intents] == [(None, False)]
    assert [f.kind for f in running.follow_ups] == ["remove"]
    assert cib.find(running.cib, WEB) is not None
    stopped = operations.build(cib_of("steady"), [DeleteHierarchy(WEB, "web-ip", ("lab1",))], {})
    assert [(i.where, i.gone) for i in stopped.intents] == [(None, True)]
    assert cib.find(stopped.cib, WEB) is None


def test_the_transition_must_do_what_the_plan_says_and_nothing_else() -> None:
    steps = [
        TakeOutOfService(WEB, "web-ip", "lab1", ("web-ip",)),
        BringInService(WEB, "web-ip", "lab2", ("web-ip",)),
    ]
    current = cib_of("steady")
    change = operations.build(current, steps, RUNNING)
    base = Simulation(RUNNING, RUNNING, ())
    good = Simulation(
        RUNNING,
        {**RUNNING, "web-ip": ("lab2",)},
        (("web-ip", "stop", "lab1"), ("web-ip", "start", "lab2")),
    )
    check_transition(current, change, base, good)
    assert describe_actions(good.actions, change) == (
        "web-ip out of service on lab1, web-ip in service on lab2"
    )
    stuck = Simulation(RUNNING, RUNNING, ())
    with pytest.raises(OperationError, match="would not get web-ip in service on lab2"):
        check_transition(current, change, base, stuck)
    side = Simulation(RUNNING, {**RUNNING, "web-ip": ("lab2",), "_2f_data_2f_app": ()}, ())
    with pytest.raises(OperationError, match="also change /data/app: now on lab2"):
        check_transition(current, change, base, side)


def test_every_step_needs_its_own_operations_role() -> None:
    from core.permissions import Op

    assert operations.STEP_OPS[DeleteHierarchy] is Op.DELETE_HIERARCHY
    assert operations.STEP_OPS[BringInService] is Op.IN_SERVICE
    assert operations.STEP_OPS[MakeSource] is Op.IN_SERVICE  # Force Online's plan: its own op
    assert operations.STEP_OPS[GrowVolume] is Op.RESIZE_MIRROR  # Resize Mirror (resize_dk)


def _depend(version: int = 0) -> CreateDependency:
    web, app = cib.resource_id("web-ip"), cib.resource_id("_2f_data_2f_app")
    return CreateDependency(APP, app, "/data/app", WEB, version, web, "web-ip", ("lab1", "lab2"))


def test_create_dependency_joins_the_child_where_the_parent_runs() -> None:
    together = {**RUNNING, "web-ip": ("lab2",)}
    change = operations.build(cib_of("steady"), [_depend()], together)
    h = cib.find(change.cib, APP)
    assert h is not None and h.member_ids == ("web-ip", "_2f_data_2f_app")
    assert cib.find(change.cib, WEB) is None  # one hierarchy now
    assert [(i.top_id, i.where) for i in change.intents] == [("_2f_data_2f_app-hierarchy", "lab2")]
    assert "/data/app: /data/app depends on web-ip (web-ip joined the hierarchy)" in change.lines
    # In service on two servers: refused, naming both, and nothing is built.
    with pytest.raises(OperationError, match="in service on lab2 and web-ip on lab1"):
        operations.build(cib_of("steady"), [_depend()], RUNNING)


def test_delete_dependency_keeps_the_child_running_where_it_runs() -> None:
    together = {**RUNNING, "web-ip": ("lab2",)}
    joined = operations.build(cib_of("steady"), [_depend()], together).cib
    web, app = cib.resource_id("web-ip"), cib.resource_id("_2f_data_2f_app")
    step = DeleteDependency(APP, app, "/data/app", web, "web-ip", ("lab1", "lab2"))
    change = operations.build(joined, [step], together)
    child = next(h for h in cib.hierarchies(change.cib) if h.member_ids == ("web-ip",))
    assert child.preferred == "lab2"  # kept there until it runs there, then cleared
    assert [(f.kind, f.top_id) for f in change.follow_ups] == [("clear-preference", child.top_id)]
    assert {(i.top_id, i.where) for i in change.intents} == {
        ("_2f_data_2f_app-hierarchy", "lab2"),
        (child.top_id, "lab2"),
    }
    assert operations.STEP_OPS[DeleteDependency].value == "delete_dependency"
