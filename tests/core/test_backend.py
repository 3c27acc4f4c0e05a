"""The lab backend: state, steps on servers, and noticing other writers."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.backend import Backend, LabBackend
from core.errors import OperationError
from core.events import ClusterChanged, EventHub
from core.model import ServerState
from core.backends.lab.store import Store


def test_steps_run_in_the_server_folder_and_not_on_a_dead_server(hermetic_env: Path) -> None:
    backend: Backend = LabBackend()
    assert backend.run_step("lab2", lambda root: root) == hermetic_env / "servers" / "lab2"
    with Store().transaction() as txn:
        txn.set_server_state("lab2", ServerState.DEAD)
    with pytest.raises(OperationError, match="lab2 is not reachable"):
        backend.run_step("lab2", lambda root: root)
    with pytest.raises(OperationError, match="no server 'lab9'"):
        backend.run_step("lab9", lambda root: root)
    backend.close()


def test_poll_publishes_when_someone_else_changed_the_cluster() -> None:
    backend = LabBackend()
    hub = EventHub()
    seen: list[object] = []
    hub.subscribe(seen.append, ClusterChanged)
    assert backend.poll(hub) is False
    with Store().transaction() as txn:
        txn.set_server_state("lab3", ServerState.DEAD)
    assert backend.poll(hub) is True
    assert len(seen) == 1
    assert backend.poll(hub) is False
    assert backend.cluster().server("lab3").state is ServerState.DEAD  # type: ignore[union-attr]
    backend.close()
