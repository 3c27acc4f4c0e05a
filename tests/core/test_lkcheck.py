"""The lab's local monitor: a failing monitor makes the application Failed, restarts it in
place (local recovery) and then fails its hierarchy over, as LifeKeeper does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backends.lab import LabBackend, kits, lkcheck
from core.model import ResourceState
from core.operations import create_kinds, dependency, extend, service
from core.rules.dependency import DependencyRequest
from core.rules.kinds import APP, IP, ResourceRequest
from tests.helpers import local_administrator, wait_until

ADMIN = local_administrator()
# The start command fails once a file "broken" is in the server's folder.
START = "test ! -f broken || { echo disk full; exit 1; }; touch web.run; echo start >> starts"
MONITOR = "test -f web.run || { echo web.run is gone; exit 1; }"


@pytest.fixture
def lab(hermetic_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LabBackend]:
    monkeypatch.setenv(lkcheck.INTERVAL_ENV, "0.2")
    backend = LabBackend()
    yield backend
    lkcheck.stop(backend.home)
    backend.close()


def _web(lab: LabBackend, restart: str = "yes") -> None:
    request = ResourceRequest(
        APP, "lab1", "web", start=START, stop="rm -f web.run", monitor=MONITOR,
        restart_mode=restart,
    )  # fmt: skip
    create_kinds.create(lab, request, ADMIN)
    ip = ResourceRequest(IP, "lab1", "vip", address="10.214.0.120/24", interface="eth0")
    create_kinds.create(lab, ip, ADMIN)
    dependency.create(lab, DependencyRequest("lab1", "web", "vip"), ADMIN)
    extend.extend(lab, extend.defaults(lab, tag="web").request, ADMIN)


def _state(lab: LabBackend, server: str, tag: str = "web") -> ResourceState:
    r = lab.snapshot().find_tag(tag, server)
    assert r is not None
    return r.state


def _starts(lab: LabBackend, server: str) -> int:
    path = lab.layout.server_root(server) / "starts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_the_monitor_starts_with_an_application_and_ends_without_one(lab: LabBackend) -> None:
    assert not lkcheck.running(lab.home)
    _web(lab)
    assert lkcheck.running(lab.home)
    service.out_of_service(lab, "web", ADMIN)
    wait_until(lambda: not lkcheck.running(lab.home), 10, "lkcheck to end by itself")


def test_a_failing_monitor_restarts_the_application_in_place(lab: LabBackend) -> None:
    _web(lab)
    assert _starts(lab, "lab1") == 1
    (lab.layout.server_root("lab1") / "web.run").unlink()  # the application died
    wait_until(lambda: _starts(lab, "lab1") == 2, 20, "the restart in place")
    wait_until(lambda: _state(lab, "lab1") is ResourceState.ISP, 20, "web Active again")
    assert _state(lab, "lab2") is ResourceState.OSU and _starts(lab, "lab2") == 0
    entry = next(e for e in lab.history() if e.operation == "local recovery of web on lab1")
    assert entry.ok and entry.user == "lkcheck"
    assert any("web.run is gone" in s for s in entry.steps)
    assert "web recovered on lab1: restarted in place (1 of 1)." in entry.result


def test_when_the_restart_fails_the_hierarchy_fails_over(lab: LabBackend) -> None:
    _web(lab)
    lab1 = lab.layout.server_root("lab1")
    (lab1 / "broken").touch()
    (lab1 / "web.run").unlink()
    wait_until(lambda: _state(lab, "lab2") is ResourceState.ISP, 30, "web in service on lab2")
    assert _state(lab, "lab2", "vip") is ResourceState.ISP
    failed = lab.snapshot().find_tag("web", "lab1")
    assert failed is not None and failed.state is ResourceState.OSF
    assert "quickCheck failed" in failed.reason and "web.run is gone" in failed.reason
    assert _state(lab, "lab1", "vip") is ResourceState.OSU
    assert kits.addresses_up(lab.layout, "lab1") == []
    assert kits.addresses_up(lab.layout, "lab2") == ["10.214.0.120"]
    assert _starts(lab, "lab1") == 1 and _starts(lab, "lab2") == 1  # one failed restart
    entry = next(e for e in lab.history() if e.operation == "local recovery of web on lab1")
    assert not entry.ok
    assert any("restarting it on lab1 (local recovery, try 1 of 1)" in s for s in entry.steps)
    assert any("disk full" in s for s in entry.steps)
    assert "web fails over from lab1 to lab2 (priority 10)." in entry.result


def test_restart_mode_no_fails_over_at_once(lab: LabBackend) -> None:
    _web(lab, restart="no")
    (lab.layout.server_root("lab1") / "web.run").unlink()
    wait_until(lambda: _state(lab, "lab2") is ResourceState.ISP, 30, "web in service on lab2")
    assert _starts(lab, "lab1") == 1  # never restarted in place
    entry = next(e for e in lab.history() if e.operation == "local recovery of web on lab1")
    assert any("restart mode no" in s for s in entry.steps)
