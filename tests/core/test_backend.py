"""The lab as a Backend: snapshot, probes, its watch, and steps refused on a dead server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core import connection
from core.backends.lab import LabBackend
from core.backends.lab.store import Store
from core.errors import OperationError
from core.events import ClusterChanged, EventHub, LogRows
from core.model import ServerState
from core.operations import extend
from tests.helpers import local_administrator, mounted_image, wait_until


def test_a_dead_server_refuses_the_steps_that_need_it(hermetic_env: Path) -> None:
    backend = LabBackend()
    backend.require_alive("lab2")
    with Store().transaction() as txn:
        txn.set_server_state("lab2", ServerState.DEAD)
    with pytest.raises(OperationError, match="lab2 is not reachable"):
        backend.require_alive("lab2")
    with pytest.raises(OperationError, match="no server 'lab9'"):
        backend.require_alive("lab9")
    request = extend.defaults(backend, target_server="lab3").request
    plan = extend.plan(backend, request)
    with Store().transaction() as txn:  # the target dies between the checks and the extend
        txn.set_server_state("lab3", ServerState.DEAD)
    with pytest.raises(OperationError, match="lab3 is not reachable"):
        extend.execute(backend, plan, local_administrator())
    backend.close()


def test_the_watch_publishes_what_someone_else_changed() -> None:
    backend = LabBackend()
    hub = EventHub()
    seen: list[ClusterChanged] = []
    rows: list[LogRows] = []
    hub.subscribe(seen.append, ClusterChanged)
    hub.subscribe(rows.append, LogRows)
    watch = backend.watch(hub, shown=backend.snapshot(), last_log_id=0)
    try:
        wait_until(lambda: len(seen) == 1)  # the first look: what it shows already
        first = seen[0].cluster
        assert first is not None and first.server("lab3").state is ServerState.ALIVE  # type: ignore[union-attr]
        with Store().transaction() as txn:  # another process, as far as it knows
            txn.set_server_state("lab3", ServerState.DEAD)
            txn.add_log_line("test", "INFO", "lab3 went away")
        wait_until(lambda: len(seen) == 2, 5)
        second = seen[1].cluster
        assert second is not None and second.server("lab3").state is ServerState.DEAD  # type: ignore[union-attr]
        assert second.hierarchies[0] is first.hierarchies[0]  # unchanged: the same object
        wait_until(lambda: any(r.text == "lab3 went away" for e in rows for r in e.rows), 5)
        watch.reload()
        wait_until(lambda: len(seen) == 3, 5)
    finally:
        watch.stop()
        backend.close()


def test_probes_answer_in_server_paths(hermetic_env: Path) -> None:
    backend = LabBackend()
    info = backend.probe("lab2", "/opt/LifeKeeper/bitmap_x")
    assert not info.exists and info.writable and info.checked == "/opt/LifeKeeper"
    assert info.fs_type and not info.is_btrfs and info.free_bytes
    assert backend.probe("lab2", "/../etc").error
    volumes = backend.volumes("lab1")
    assert [(v.path, v.size) for v in volumes] == [("/disks/datarep-data.img", 64 << 20)]
    assert backend.volumes("lab2") == ()
    with mounted_image(hermetic_env / "servers/lab2/opt/LifeKeeper", "btrfs", 120):
        info = backend.probe("lab2", "/opt/LifeKeeper/bitmap_x")
        assert info.is_btrfs and info.mount_point == "/opt/LifeKeeper"
    backend.close()


def test_connection_opens_the_lab_and_names_what_it_knows(tmp_path: Path) -> None:
    default = connection.open()
    assert default.kind == "lab" and default.name == "lab"
    default.close()
    other = connection.open(f"lab:{tmp_path / 'other'}")
    assert other.snapshot().hierarchies[0].root_tag == "/data"
    assert (tmp_path / "other" / "lkconsole.db").exists()
    other.close()
    with pytest.raises(connection.UnknownCluster, match="the known kinds are lab, lab:/path"):
        connection.open("frobnicate")
    with pytest.raises(connection.UnknownCluster, match="absolute path"):
        connection.open("lab:relative/path")


def test_a_backend_serves_several_threads_at_once() -> None:
    backend = LabBackend()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                assert backend.snapshot().hierarchies
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backend.close()
    assert not errors
