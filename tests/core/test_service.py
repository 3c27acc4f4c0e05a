"""In/Out of Service, Switchover, and failover in the lab: real processes, real bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backends.lab import LabBackend
from core.errors import CheckFailed, PermissionDenied
from core.model import MirrorState, ResourceState, Role, ServerState
from core.operations import mirror as mirror_ops
from core.operations import service
from core.session import Session
from tests.core.labtools import digest, fill_source, wait_for_mirror
from tests.helpers import local_administrator, run_lkctl

ADMIN = local_administrator()
OPERATOR = Session("operator", Role.OPERATOR)
GUEST = Session("guest", Role.GUEST)


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    backend = LabBackend()
    fill_source(backend)
    for _ in range(2):  # extend to lab2 (priority 10), then lab3 (priority 20)
        done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait"])
        assert done.returncode == 0, done.stderr
    yield backend
    backend.close()


def _h(lab: LabBackend):  # type: ignore[no-untyped-def]
    return lab.snapshot().hierarchies[0]


def _volumes(lab: LabBackend) -> list[str]:
    return [
        digest(lab.layout.server_path(s, "/disks/datarep-data.img"))
        for s in ("lab1", "lab2", "lab3")
    ]


def _cells(lab: LabBackend, server: str) -> list[ResourceState]:
    return [r.state for r in _h(lab).instances_on(server)]


def test_switchover_moves_the_source_and_resyncs_only_what_changed(lab: LabBackend) -> None:
    lines = service.switchover(lab, "/data", "lab2", OPERATOR)
    assert lines[0] == "/data out of service on lab1 (/data, then datarep-data)"
    assert lines[-1] == "/data in service on lab2 (datarep-data, then /data)"
    h = _h(lab)
    assert h.in_service_server == "lab2"
    assert _cells(lab, "lab1") == [ResourceState.OSU, ResourceState.OSU]
    assert h.mirrors[0].source == "lab2"
    assert {t.server for t in h.mirrors[0].targets} == {"lab1", "lab3"}
    wait_for_mirror(lab, h.id, "lab1")
    wait_for_mirror(lab, h.id, "lab3")
    lab.write("datarep-data", 3 << 20, 100_000, ADMIN)  # written on the new source
    assert len(set(_volumes(lab))) == 1  # replicated synchronously to both targets


def test_no_switchover_to_a_target_that_is_not_in_sync(lab: LabBackend) -> None:
    mirror_ops.pause(lab, "datarep-data", "lab2", ADMIN)
    with pytest.raises(CheckFailed) as err:
        service.switchover(lab, "/data", "lab2", OPERATOR)
    (problem,) = err.value.problems
    assert problem.field == "to" and problem.code == "mirror_not_target"
    assert "datarep-data on lab2 is Out of Sync" in problem.message
    assert "nor /data, which depends on it" in problem.message
    assert _h(lab).in_service_server == "lab1"


def test_no_switchover_while_resyncing(lab: LabBackend) -> None:
    mirror_ops.set_speed_limit(lab, "datarep-data", 2000, ADMIN)  # 2 MB/s: it takes a while
    mirror_ops.full_resync(lab, "datarep-data", "lab3", ADMIN)
    wait_for_mirror(lab, _h(lab).id, "lab3", MirrorState.RESYNCING)
    with pytest.raises(CheckFailed, match=r"datarep-data on lab3 is Resyncing \(\d+ %\)"):
        service.in_service(lab, "datarep-data", "lab3", OPERATOR)
    done = run_lkctl(["switchover", "/data", "--to", "lab3"])
    assert done.returncode == 2 and done.stderr.startswith("to: datarep-data on lab3 is Resync")
    mirror_ops.set_speed_limit(lab, "datarep-data", 0, ADMIN)
    wait_for_mirror(lab, _h(lab).id, "lab3")


def test_out_of_service_and_back_in(lab: LabBackend) -> None:
    assert service.out_of_service(lab, "/data", OPERATOR) == [
        "/data out of service on lab1 (/data, then datarep-data)"
    ]
    assert _h(lab).in_service_server is None
    with pytest.raises(CheckFailed, match="not in service anywhere"):
        service.out_of_service(lab, "/data", OPERATOR)
    service.in_service(lab, "/data", "lab1", OPERATOR)
    assert _cells(lab, "lab1") == [ResourceState.ISP, ResourceState.ISP]
    with pytest.raises(CheckFailed, match="already in service on lab1"):
        service.in_service(lab, "/data", "lab1", OPERATOR)


def test_roles_are_enforced_in_core(lab: LabBackend) -> None:
    with pytest.raises(PermissionDenied, match="needs the Operator role"):
        service.switchover(lab, "/data", "lab2", GUEST)
    with pytest.raises(PermissionDenied, match="needs the Operator role"):
        mirror_ops.pause(lab, "datarep-data", None, GUEST)
    with pytest.raises(PermissionDenied, match="needs the Administrator role"):
        lab.stop_server("lab1", OPERATOR)
    with pytest.raises(PermissionDenied, match="needs the Administrator role"):
        mirror_ops.full_resync(lab, "datarep-data", None, OPERATOR)
    assert _h(lab).in_service_server == "lab1"


def test_failover_and_return_end_to_end(lab: LabBackend) -> None:
    h = _h(lab)
    lines = lab.stop_server("lab1", ADMIN)
    assert "/data fails over from lab1 to lab2 (priority 10)." in lines
    h = _h(lab)
    assert h.in_service_server == "lab2"
    assert lab.snapshot().server("lab1").state is ServerState.DEAD  # type: ignore[union-attr]
    assert _cells(lab, "lab1") == [ResourceState.OSF, ResourceState.OSF]
    lab1 = h.mirrors[0].target("lab1")
    assert lab1 is not None and lab1.state is MirrorState.OUT_OF_SYNC
    assert lab1.reason == "target server lab1 is down"

    lab.write("datarep-data", 7 << 20, 200_000, ADMIN)  # the application goes on
    lab.start_server("lab1", ADMIN)
    wait_for_mirror(lab, h.id, "lab1")
    assert len(set(_volumes(lab))) == 1
    log = (lab.store.home / "logs" / f"resync-{h.mirrors[0].resource_id}-lab1.log").read_text()
    assert "started (partial" in log

    service.switchover(lab, "/data", "lab1", OPERATOR)  # the documented switch back
    wait_for_mirror(lab, h.id, "lab2")
    assert _h(lab).in_service_server == "lab1"
    assert len(set(_volumes(lab))) == 1


def test_no_target_in_sync_means_it_stays_down_and_waits(lab: LabBackend) -> None:
    for target in ("lab2", "lab3"):
        mirror_ops.pause(lab, "datarep-data", target, ADMIN)
    lab.write("datarep-data", 9 << 20, 65536, ADMIN)
    lines = lab.stop_server("lab1", ADMIN)
    assert any(line.startswith("/data stays down") for line in lines)
    h = _h(lab)
    assert h.in_service_server is None
    assert {t.state for t in h.mirrors[0].targets if t.server != "lab1"} == {
        MirrorState.WAIT_FOR_PREVIOUS_SOURCE
    }
    with pytest.raises(CheckFailed, match="Wait for Previous Source"):
        service.in_service(lab, "/data", "lab2", ADMIN)

    lines = service.force_online(lab, "/data", "lab2", ADMIN)
    assert "is lost" in lines[-1]
    assert _h(lab).in_service_server == "lab2"
    wait_for_mirror(lab, h.id, "lab3")
    lab.start_server("lab1", ADMIN)
    wait_for_mirror(lab, h.id, "lab1")
    assert len(set(_volumes(lab))) == 1  # lab1's last write lost, as the warning said


def test_the_previous_source_returning_takes_it_back(lab: LabBackend) -> None:
    for target in ("lab2", "lab3"):
        mirror_ops.pause(lab, "datarep-data", target, ADMIN)
    lab.write("datarep-data", 11 << 20, 65536, ADMIN)
    source_before = digest(lab.layout.server_path("lab1", "/disks/datarep-data.img"))
    lab.stop_server("lab1", ADMIN)
    lines = lab.start_server("lab1", ADMIN)
    assert any("comes back in service there" in line for line in lines)
    h = _h(lab)
    assert h.in_service_server == "lab1"
    wait_for_mirror(lab, h.id, "lab2")
    wait_for_mirror(lab, h.id, "lab3")
    assert _volumes(lab) == [source_before] * 3  # nothing lost


def test_lkctl_commands_for_service(lab: LabBackend) -> None:
    assert run_lkctl(["switchover", "/data", "--to", "lab3"]).returncode == 0
    assert _h(lab).in_service_server == "lab3"
    # lab1, the source until now, is a target that catches up first: a failover goes
    # only to a mirror that is Target.
    wait_for_mirror(lab, _h(lab).id, "lab1")
    done = run_lkctl(["lab", "stop", "lab3", "--json", "--yes"])
    assert done.returncode == 0, done.stderr
    assert "/data fails over from lab3 to lab1 (priority 1)." in done.stdout
    assert run_lkctl(["lab", "start", "lab3"]).returncode == 0
    bad = run_lkctl(["lab", "start", "lab3"])
    assert bad.returncode == 2 and "server: lab3 is already running." in bad.stderr
    assert run_lkctl(["outofservice", "/data"]).returncode == 0
    assert run_lkctl(["inservice", "/data", "--on", "lab1"]).returncode == 0
    assert _h(lab).in_service_server == "lab1"
