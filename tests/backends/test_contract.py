"""The contract every backend keeps, run on each (tests/backends/conftest.py).

The whole life of a DataKeeper hierarchy through the Backend protocol and
core.operations only: create → extend (the Next request, then Accept Defaults) → resync
to Target (bytes compared) → switchover → failover where the backend can fail a server
→ unextend → delete; and the refusals: a priority in use, a switchover to a resyncing
target, a bitmap on btrfs, automatic switchback with DataKeeper, a Guest. And a mixed
hierarchy, app → ip → filesystem → datakeeper, made with Create Dependency, through the
same life: its application's commands and its address followed on the servers.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import cast

import pytest

from core import capabilities
from core.backend import Backend, CommPathFaults, ServerPower
from core.errors import CheckFailed, PermissionDenied
from core.model import Cluster, Hierarchy, MirrorState, Role
from core.operations import create, create_kinds, dependency, extend, hierarchy, mirror, service
from core.rules.dependency import DependencyRequest
from core.rules.kinds import APP, IP, ResourceRequest
from core.session import Session
from tests.backends.conftest import LabAdapter
from tests.helpers import wait_until

ADMIN = Session("contract", Role.ADMINISTRATOR)
GUEST = Session("visitor", Role.GUEST)
DISK = "/disks/web.img"


def _hierarchy(backend: Backend, root: str) -> Hierarchy:
    found = backend.snapshot().find_tag(root)
    assert found is not None, f"{root} is not in the cluster"
    h = backend.snapshot().hierarchy(found.hierarchy_id)
    assert h is not None
    return h


def _wait_target(backend: Backend, root: str, server: str, timeout: float = 60.0) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        h = _hierarchy(backend, root)
        t = h.mirrors[0].target(server)
        if t is not None and t.state is MirrorState.TARGET:
            return
        assert time.monotonic() < deadline, f"{server} never became Target ({t})"
        pause.wait(0.05)


def _codes(exc: pytest.ExceptionInfo[CheckFailed]) -> list[str]:
    return [p.code for p in exc.value.problems]


def _create_web(adapter: LabAdapter) -> create.CreateResult:
    backend = adapter.backend
    d = create.defaults(backend, server="lab1", hierarchy_type="new_fs")
    request = dataclasses.replace(
        d.request,
        source_disk=DISK,
        disk_size_mib=8,
        mount_point="/web",
        root_tag="/web",
        dk_tag="datarep-web",
        bitmap_file="/opt/LifeKeeper/bitmap_datarep-web",
    )
    return create.create(backend, request, ADMIN)


def test_the_life_of_a_datakeeper_hierarchy(adapter: LabAdapter) -> None:
    backend = adapter.backend
    created = _create_web(adapter)
    h = _hierarchy(backend, "/web")
    assert h.id == created.hierarchy_id and h.in_service_server == "lab1"
    assert [(e.server, e.priority) for e in h.equivalencies] == [("lab1", 1)]
    data = os.urandom(300_000)
    adapter.write_source("lab1", DISK, 1 << 20, data)

    # Extend with every field given (the wizard's Next walk) ...
    d = extend.defaults(backend, tag="/web", target_server="lab2")
    walked = dataclasses.replace(d.request, target_priority="20", template_priority="1")
    extend.extend(backend, walked, ADMIN)
    _wait_target(backend, "/web", "lab2")
    assert adapter.volume_digest("lab2", DISK) == adapter.volume_digest("lab1", DISK)
    # ... and with Accept Defaults: every default, to the next free server.
    d3 = extend.defaults(backend, tag="/web")
    assert d3.request.target_server == "lab3" and d3.request.target_priority == 30
    extend.extend(backend, d3.request, ADMIN)
    _wait_target(backend, "/web", "lab3")
    assert adapter.volume_digest("lab3", DISK) == adapter.volume_digest("lab1", DISK)
    h = _hierarchy(backend, "/web")
    assert {e.server: e.priority for e in h.equivalencies} == {"lab1": 1, "lab2": 20, "lab3": 30}

    # The documented switchover test.
    lines = service.switchover(backend, "/web", "lab2", ADMIN)
    assert lines[-1].startswith("/web in service on lab2")
    h = _hierarchy(backend, "/web")
    assert h.in_service_server == "lab2" and h.mirrors[0].source == "lab2"
    _wait_target(backend, "/web", "lab1")
    _wait_target(backend, "/web", "lab3")

    if capabilities.SERVER_POWER in backend.capabilities:  # a failure, and a return
        power = cast(ServerPower, backend)
        power.stop_server("lab2", ADMIN)
        h = _hierarchy(backend, "/web")
        assert h.in_service_server == "lab1"  # the best priority whose mirror is Target
        power.start_server("lab2", ADMIN)
        _wait_target(backend, "/web", "lab2")
        assert adapter.volume_digest("lab2", DISK) == adapter.volume_digest("lab1", DISK)

    hierarchy.unextend(backend, hierarchy.UnextendRequest("/web", "lab3"), ADMIN)
    h = _hierarchy(backend, "/web")
    assert "lab3" not in h.servers and h.mirrors[0].target("lab3") is None
    hierarchy.delete(backend, hierarchy.DeleteRequest("/web"), ADMIN)
    assert backend.snapshot().find_tag("/web") is None
    assert backend.snapshot().find_tag("/data") is not None  # the others are untouched


def test_the_refusals(adapter: LabAdapter) -> None:
    backend = adapter.backend
    _create_web(adapter)
    d = extend.defaults(backend, tag="/web", target_server="lab2")
    with pytest.raises(CheckFailed) as taken:
        extend.plan(backend, dataclasses.replace(d.request, target_priority="1"))
    assert _codes(taken) == ["same_as_template_priority"]
    with pytest.raises(CheckFailed) as automatic:
        extend.plan(backend, dataclasses.replace(d.request, switchback_type="automatic"))
    assert _codes(automatic) == ["automatic_with_datakeeper"]
    with adapter.btrfs("lab2", "/opt/LifeKeeper"):
        on_btrfs = dataclasses.replace(
            d.request,
            datakeeper=(
                dataclasses.replace(
                    d.request.datakeeper[0], bitmap_file="/opt/LifeKeeper/bitmap_datarep-web"
                ),
            ),
        )
        with pytest.raises(CheckFailed) as btrfs:
            extend.plan(backend, on_btrfs)
        assert _codes(btrfs) == ["bitmap_on_btrfs"]
    before = backend.snapshot()
    with pytest.raises(PermissionDenied, match="needs the Administrator role"):
        extend.extend(backend, d.request, GUEST)
    _unchanged(before, backend.snapshot())
    # A target still resyncing cannot take the hierarchy over.
    mirror.set_speed_limit(backend, "datarep-web", 1000, ADMIN)
    extend.extend(backend, d.request, ADMIN)
    with pytest.raises(CheckFailed) as resyncing:
        service.switchover(backend, "/web", "lab2", ADMIN)
    assert _codes(resyncing) == ["mirror_not_target"]
    assert _hierarchy(backend, "/web").in_service_server == "lab1"
    with pytest.raises(PermissionDenied, match="needs the Operator role"):
        service.out_of_service(backend, "/web", GUEST)
    mirror.set_speed_limit(backend, "datarep-web", 0, ADMIN)
    _wait_target(backend, "/web", "lab2")


def _unchanged(before: Cluster, after: Cluster) -> None:
    assert before.servers == after.servers
    assert [h.version for h in before.hierarchies] == [h.version for h in after.hierarchies]


# The application writes where its commands run: its server (the lab: the server's folder).
APP_START = "echo serving > app.run; echo started on $LKCONSOLE_SERVER"
APP_STOP = "rm -f app.run"


def _app_state(adapter: LabAdapter) -> dict[str, bool]:
    return {s: adapter.server_file(s, "/app.run") is not None for s in ("lab1", "lab2", "lab3")}


def _ips(adapter: LabAdapter) -> dict[str, list[str]]:
    return {s: adapter.addresses_up(s) for s in ("lab1", "lab2", "lab3")}


def test_the_life_of_an_app_on_ip_on_datakeeper_hierarchy(adapter: LabAdapter) -> None:
    backend = adapter.backend
    _create_web(adapter)
    data = os.urandom(200_000)
    adapter.write_source("lab1", DISK, 2 << 20, data)
    ip = create_kinds.defaults(backend, IP, server="lab1").request  # what the backend proposes
    assert ip.address and ip.interface
    create_kinds.create(backend, dataclasses.replace(ip, tag="web-ip"), ADMIN)
    app = ResourceRequest(APP, "lab1", "web-app", start=APP_START, stop=APP_STOP)
    create_kinds.create(backend, app, ADMIN)
    address = ip.address.split("/")[0]
    assert _app_state(adapter) == {"lab1": True, "lab2": False, "lab3": False}
    dependency.create(backend, DependencyRequest("lab1", "web-app", "web-ip"), ADMIN)
    dependency.create(backend, DependencyRequest("lab1", "web-ip", "/web"), ADMIN)
    h = _hierarchy(backend, "web-app")
    assert [(h.tag_of(r), d) for r, d in h.walk()] == [
        ("web-app", 0), ("web-ip", 1), ("/web", 2), ("datarep-web", 3)
    ]  # fmt: skip

    # Extend to lab2: every kind (the same address, the same commands), the mirror resyncs.
    d = extend.defaults(backend, tag="web-app", target_server="lab2")
    extend.extend(backend, d.request, ADMIN)
    _wait_target(backend, "web-app", "lab2")
    assert adapter.volume_digest("lab2", DISK) == adapter.volume_digest("lab1", DISK)
    h = _hierarchy(backend, "web-app")
    on_lab2 = {r.tag: r for r in h.instances_on("lab2")}
    assert on_lab2["web-ip"].setting("address") == ip.address
    assert on_lab2["web-app"].setting("start") == APP_START
    assert _ips(adapter) == {"lab1": [address], "lab2": [], "lab3": []}
    # Next Server: the defaults again, without a target: lab3, the next priority.
    d3 = extend.defaults(backend, tag="web-app")
    assert d3.request.target_server == "lab3"
    extend.extend(backend, d3.request, ADMIN)
    _wait_target(backend, "web-app", "lab3")
    assert adapter.volume_digest("lab3", DISK) == adapter.volume_digest("lab1", DISK)

    # Switchover: parents out first on lab1 (the app stops, then the address goes down),
    # children in first on lab2.
    lines = service.switchover(backend, "web-app", "lab2", ADMIN)
    assert lines.index("web-app: stop command done on lab1") < lines.index(
        f"web-ip: address {ip.address} is down on lab1"
    )
    assert lines.index(f"web-ip: address {ip.address} is up on lab2 ({ip.interface})") < (
        lines.index("web-app: start command done on lab2")
    )
    assert "web-app: start: started on lab2" in lines
    assert _app_state(adapter) == {"lab1": False, "lab2": True, "lab3": False}
    assert _ips(adapter) == {"lab1": [], "lab2": [address], "lab3": []}
    _wait_target(backend, "web-app", "lab1")

    if capabilities.SERVER_POWER in backend.capabilities:  # lab2 fails: back on lab1
        power = cast(ServerPower, backend)
        power.stop_server("lab2", ADMIN)
        h = _hierarchy(backend, "web-app")
        assert h.in_service_server == "lab1" and h.mirrors[0].source == "lab1"
        assert adapter.server_file("lab1", "/app.run") == b"serving\n"
        assert _ips(adapter) == {"lab1": [address], "lab2": [], "lab3": []}
        power.start_server("lab2", ADMIN)
        # lab1 the source again: lab3 (in sync with lab2) resyncs what changed, lab2 too.
        for server in ("lab2", "lab3"):
            _wait_target(backend, "web-app", server)
            assert adapter.volume_digest(server, DISK) == adapter.volume_digest("lab1", DISK)

    home = _hierarchy(backend, "web-app").in_service_server
    if capabilities.COMM_PATH_FAULTS in backend.capabilities and home == "lab1":
        # Every comm path of lab1 down. To lab2 first: lab3 still reaches lab1, so nothing
        # moves, and lab2 misses writes (Out of Sync). Then to lab3: lab2 and lab3 are the
        # majority; lab1 steps down (its app stopped, its address down) and the hierarchy
        # fails over to the one whose mirror is Target, lab3.
        faults = cast(CommPathFaults, backend)
        faults.set_comm_path("lab1", "lab2", "", False, ADMIN)
        assert _hierarchy(backend, "web-app").in_service_server == "lab1"
        faults.set_comm_path("lab1", "lab3", "", False, ADMIN)
        wait_until(lambda: _hierarchy(backend, "web-app").in_service_server == "lab3", 30)
        # (lab2's app.run is the one its crash left: a crash runs no stop command)
        assert [_app_state(adapter)[s] for s in ("lab1", "lab3")] == [False, True]
        assert _ips(adapter) == {"lab1": [], "lab2": [], "lab3": [address]}
        for peer in ("lab2", "lab3"):
            faults.set_comm_path("lab1", peer, "", True, ADMIN)
        for server in ("lab1", "lab2"):
            _wait_target(backend, "web-app", server)
            assert adapter.volume_digest(server, DISK) == adapter.volume_digest("lab3", DISK)
        home = "lab3"

    for server in ("lab1", "lab2", "lab3"):
        if server != home:
            hierarchy.unextend(backend, hierarchy.UnextendRequest("web-app", server), ADMIN)
    h = _hierarchy(backend, "web-app")
    assert h.servers == (home,) and not h.mirrors[0].targets
    hierarchy.delete(backend, hierarchy.DeleteRequest("web-app"), ADMIN)
    cluster = backend.snapshot()
    assert all(cluster.find_tag(t) is None for t in ("web-app", "web-ip", "/web", "datarep-web"))
    assert not _app_state(adapter)[home]  # its stop command ran before it went
    assert _ips(adapter) == {"lab1": [], "lab2": [], "lab3": []}
    assert cluster.find_tag("/data") is not None


def test_what_if_and_the_server_log(adapter: LabAdapter) -> None:
    """Issue 16: a switchover's what-if says what happens to every hierarchy and changes
    nothing; a server's log has the lines that name it, oldest first."""
    from core import serverlog
    from core.operations import whatif

    backend = adapter.backend
    _create_web(adapter)
    extend.extend(
        backend, extend.defaults(backend, tag="/web", target_server="lab2").request, ADMIN
    )
    _wait_target(backend, "/web", "lab2")
    before = backend.snapshot()
    the_plan = service.plan_switchover(before, "/web", "lab2")
    text = whatif.dry_run(backend, the_plan)
    assert text[0] == f"Plan: {the_plan.name}"
    said = "\n".join(text)
    assert "/web: stops on lab1" in said and "starts on lab2" in said
    assert "datarep-web: lab2 becomes the source" in said
    assert "/data" in said  # every hierarchy is named, the untouched ones too
    assert backend.snapshot().hierarchy(_hierarchy(backend, "/web").id) == before.hierarchy(
        _hierarchy(backend, "/web").id
    )
    rows = backend.server_log("lab2")
    assert rows and [r.id for r in rows] == sorted(r.id for r in rows)
    assert any("datarep-web" in r.text and "lab2" in r.text for r in rows)
    assert all(
        serverlog.names(r.text, "lab2") or serverlog.names(r.operation, "lab2") for r in rows
    )
    assert backend.server_log("lab2", after=rows[-1].id) == []
