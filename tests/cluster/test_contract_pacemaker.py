"""The contract suite's life of a hierarchy on ``pacemaker-lab``, through the Backend
protocol and core.operations only, as tests/backends/test_contract.py does on the folder
lab: an application on an IP address (app → ip, made with Create Dependency), created
with what the backend proposes, extended (the Next request, then Accept Defaults),
switched over, failed over by a real node failure, its dependency deleted, unextended and
deleted; and the refusals, each leaving the CIB as it was. The checks are on the
console's snapshot and on the nodes themselves (the address on eth0, the application's
file), as crm_mon and the node see them."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import cast

import pytest

from core import capabilities
from core.backend import ServerPower
from core.backends.pacemaker import PacemakerBackend
from core.errors import CheckFailed, OperationError, PermissionDenied
from core.model import Hierarchy, ResourceState, Role, SwitchbackType
from core.operations import create_kinds, dependency, extend, hierarchy, properties, service
from core.rules.dependency import DependencyRequest
from core.rules.kinds import APP, IP, ResourceRequest
from core.rules.resource_properties import ResourcePropertiesRequest
from core.session import Session
from tests.cluster.labtools import Lab, wait_healthy
from tests.cluster.pcmk_plans import ADMIN
from tests.cluster.test_pacemaker_backend import addresses, running_on
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

GUEST = Session("gina", Role.GUEST)
NODES = ("lab1", "lab2", "lab3")
MARKER = "/tmp/c-app.running"  # a node's /tmp is its own: where the application ran
APP_START = f"sh -c 'echo serving > {MARKER}'"
APP_STOP = f"rm -f {MARKER}"
APP_MONITOR = f"test -f {MARKER}"


def _h(b: PacemakerBackend, tag: str) -> Hierarchy:
    cluster = b.snapshot()
    h = next((x for x in cluster.hierarchies if x.tag_of(x.root_id) == tag), None)
    assert h is not None, f"no hierarchy {tag}: {[x.root_tag for x in cluster.hierarchies]}"
    return h


def _serving(lab: Lab) -> dict[str, bool]:
    return {n: lab.run(n, "cat", MARKER, ok=False) == "serving\n" for n in NODES}


def _up(lab: Lab, address: str) -> dict[str, bool]:
    return {n: address in addresses(lab, n) for n in NODES}


def _in_service_on(b: PacemakerBackend, lab: Lab, node: str, address: str) -> None:
    """The console says so, crm_mon says so, and the node has the address and the app."""
    wait_until(lambda: _h(b, "c-app").in_service_server == node, 60, f"c-app on {node}")
    assert running_on(lab, node, "c-app") == {node}
    wait_until(lambda: _up(lab, address) == {n: n == node for n in NODES}, 30, "the address")
    wait_until(lambda: _serving(lab) == {n: n == node for n in NODES}, 30, "the application")


def test_the_life_of_an_app_on_ip_hierarchy(lab: Lab, backend: PacemakerBackend) -> None:
    b = backend
    proposed = create_kinds.defaults(b, IP, server="lab1").request  # the lab's bridge subnet
    assert proposed.address.startswith("10.213.0.") and proposed.interface == "eth0"
    address = proposed.address.split("/")[0]
    create_kinds.create(b, dataclasses.replace(proposed, tag="c-ip"), ADMIN)
    app = ResourceRequest(APP, "lab1", "c-app", start=APP_START, stop=APP_STOP, monitor=APP_MONITOR)
    create_kinds.create(b, app, ADMIN)
    dependency.create(b, DependencyRequest("lab1", "c-app", "c-ip"), ADMIN)
    h = _h(b, "c-app")
    assert [(h.tag_of(r), depth) for r, depth in h.walk()] == [("c-app", 0), ("c-ip", 1)]
    holding = [x for x in b.snapshot().hierarchies if any(r.tag == "c-ip" for r in x.resources)]
    assert holding == [h]  # one hierarchy now
    _in_service_on(b, lab, "lab1", address)

    # Extend with every field given (the Next walk), then with Accept Defaults.
    d = extend.defaults(b, tag="c-app", target_server="lab2")
    extend.extend(b, dataclasses.replace(d.request, target_priority="20"), ADMIN)
    d3 = extend.defaults(b, tag="c-app")
    assert d3.request.target_server == "lab3"
    extend.extend(b, d3.request, ADMIN)
    h = _h(b, "c-app")
    priorities = {e.server: e.priority for e in h.equivalencies}
    assert priorities["lab1"] == 1 and priorities["lab2"] == 20 and priorities["lab3"] > 20
    assert {r.server: r.state for r in h.resources if r.resource_id == h.root_id} == {
        "lab1": ResourceState.ISP, "lab2": ResourceState.OSU, "lab3": ResourceState.OSU
    }  # fmt: skip

    # Resource Properties: lab3 before lab2 (location scores), automatic switchback (no
    # stickiness); then back, as the rest of the walk expects.
    properties.set_resource(
        b,
        ResourcePropertiesRequest("c-app", "automatic", {"lab2": 40, "lab3": 30}),
        ADMIN,
    )
    h = _h(b, "c-app")
    assert {e.server: e.priority for e in h.equivalencies} == {"lab1": 1, "lab2": 40, "lab3": 30}
    assert h.switchback is SwitchbackType.AUTOMATIC
    assert h.in_service_server == "lab1"  # the best priority: nothing moved
    properties.set_resource(
        b, ResourcePropertiesRequest("c-app", "intelligent", {"lab2": 20, "lab3": 30}), ADMIN
    )
    assert _h(b, "c-app").switchback is SwitchbackType.INTELLIGENT

    service.switchover(b, "c-app", "lab2", ADMIN)  # children first in, parents first out
    _in_service_on(b, lab, "lab2", address)

    # A real failure of lab2: Pacemaker fences it, the best priority left takes over.
    assert capabilities.SERVER_POWER in b.capabilities
    power = cast(ServerPower, b)
    try:
        power.stop_server("lab2", ADMIN)
        wait_until(lambda: _h(b, "c-app").in_service_server == "lab1", 90, "c-app on lab1")
        assert running_on(lab, "lab1", "c-app") == {"lab1"}
        wait_until(lambda: address in addresses(lab, "lab1"), 30, "the address on lab1")
        wait_until(
            lambda: lab.run("lab1", "cat", MARKER, ok=False) == "serving\n", 30, "the app on lab1"
        )
    finally:
        power.start_server("lab2", ADMIN)
        wait_healthy(lab)
    # lab2's return settled (its probes, any move): an operation made from a snapshot
    # taken meanwhile is refused as a conflict, rightly ("reload and try again")
    lab.run("lab1", "crm_resource", "--wait", "--timeout", "120", timeout=130)

    dependency.delete(b, DependencyRequest("lab1", "c-app", "c-ip"), ADMIN)
    ip_h, app_h = _h(b, "c-ip"), _h(b, "c-app")
    assert ip_h.id != app_h.id and app_h.dependencies == ()
    assert {e.server for e in ip_h.equivalencies} == set(NODES)  # the same servers
    assert ip_h.in_service_server == "lab1"  # kept where it ran

    hierarchy.unextend(b, hierarchy.UnextendRequest("c-app", "lab3"), ADMIN)
    assert "lab3" not in _h(b, "c-app").servers
    for tag in ("c-app", "c-ip"):
        hierarchy.delete(b, hierarchy.DeleteRequest(tag), ADMIN)
    wait_until(
        lambda: all(x.root_tag not in ("c-app", "c-ip") for x in b.snapshot().hierarchies),
        30,
        "both gone",
    )
    wait_until(lambda: not any(_up(lab, address).values()), 30, "the address down everywhere")
    assert not any(_serving(lab).values())


def _ip(tag: str, address: str, server: str = "lab1", interface: str = "eth0") -> ResourceRequest:
    return ResourceRequest(IP, server, tag, address=address, interface=interface)


def _epoch(lab: Lab) -> tuple[str | None, str | None]:
    """The CIB's configuration version (admin_epoch, epoch): what a push would change."""
    out = lab.run("lab1", "cibadmin", "--query", "--xpath", "/cib", "--no-children")
    cib = ET.fromstring(out)
    return cib.get("admin_epoch"), cib.get("epoch")


def test_the_refusals_leave_the_cib_as_it_was(lab: Lab, backend: PacemakerBackend) -> None:
    b = backend
    create_kinds.create(b, _ip("r-ip", "10.213.0.181/24"), ADMIN)
    d = extend.defaults(b, tag="r-ip", target_server="lab2")
    extend.extend(b, dataclasses.replace(d.request, target_priority="20"), ADMIN)
    before = _epoch(lab)
    cases: list[tuple[object, type[Exception], str]] = [
        (  # a priority in use
            lambda: extend.extend(
                b,
                dataclasses.replace(
                    extend.defaults(b, tag="r-ip", target_server="lab3").request,
                    target_priority="20",
                ),
                ADMIN,
            ),
            CheckFailed,
            "20",
        ),
        (  # not an IP address
            lambda: create_kinds.create(b, _ip("bad", "10.213.0.999/24", "lab1", "eth0"), ADMIN),
            CheckFailed,
            "address",
        ),
        (  # a node that is not in the cluster
            lambda: create_kinds.create(b, _ip("bad", "10.213.0.182/24", "lab9", "eth0"), ADMIN),
            CheckFailed,
            "lab9",
        ),
        (  # a Guest
            lambda: service.switchover(b, "r-ip", "lab2", GUEST),
            PermissionDenied,
            "Guest",
        ),
        (  # an interface the node does not have: the agent's validate refuses it
            lambda: create_kinds.create(b, _ip("bad-if", "10.213.0.183/24", "lab1", "eth7"), ADMIN),
            OperationError,
            "eth7",
        ),
    ]
    for run, kind, said in cases:
        with pytest.raises(kind) as caught:
            run()  # type: ignore[operator]
        assert said in str(caught.value)
    assert _epoch(lab) == before
    assert [x.root_tag for x in b.snapshot().hierarchies if x.root_tag.startswith("bad")] == []
