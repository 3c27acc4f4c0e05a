"""The status tree model: structure, roles, and small updates (never a reset)."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QModelIndex, Qt

from core.model import (
    Cluster,
    Hierarchy,
    MirrorState,
    MirrorTarget,
    ResourceState,
    ServerState,
)
from gui.status_model import Role, StatusModel


def _with_states(cluster: Cluster, changes: dict[tuple[str, str], ResourceState]) -> Cluster:
    """The same cluster with the state of (tag, server) instances changed."""
    hierarchies = []
    for h in cluster.hierarchies:
        resources = tuple(
            dataclasses.replace(r, state=changes.get((r.tag, r.server), r.state))
            for r in h.resources
        )
        hierarchies.append(dataclasses.replace(h, resources=resources))
    return dataclasses.replace(cluster, hierarchies=tuple(hierarchies))


def _extended(cluster: Cluster, state: MirrorState, done: int) -> Cluster:
    """The seed hierarchy as if extended to lab2, its mirror target in ``state``."""
    (h,) = cluster.hierarchies
    standby = tuple(
        dataclasses.replace(r, server="lab2", state=ResourceState.OSU) for r in h.resources
    )
    mirror = dataclasses.replace(
        h.mirrors[0],
        targets=(
            MirrorTarget("lab2", state, bytes_done=done, bytes_total=100, rate=180e6, eta=120.0),
        ),
    )
    equivalencies = (
        *h.equivalencies,
        dataclasses.replace(h.equivalencies[0], server="lab2", priority=10),
    )
    new: Hierarchy = dataclasses.replace(
        h, resources=h.resources + standby, mirrors=(mirror,), equivalencies=equivalencies
    )
    return dataclasses.replace(cluster, hierarchies=(new,))


def test_lab_tree_passes_the_model_tester(qtmodeltester, lab_cluster: Cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    qtmodeltester.check(model)
    assert model.columnCount() == 4
    assert model.rowCount() == 1
    top = model.index(0, 0)
    assert top.data() == "/data"
    assert model.rowCount(top) == 1
    assert model.index(0, 0, top).data() == "datarep-data"
    assert model.index(0, 1).data() == "Active"
    assert model.index(0, 1).data(Role.STATE) == "ISP"
    assert model.index(0, 2).data() is None  # not defined on lab2
    assert model.headerData(1, Qt.Orientation.Horizontal) == "lab1  (ALIVE)"


def test_a_state_change_touches_exactly_its_cell(qtbot, qtmodeltester, lab_cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    changed: list[tuple[int, int, str | None]] = []
    model.dataChanged.connect(
        lambda a, b, roles=(): changed.append((a.row(), a.column(), a.data()))
    )
    model.modelReset.connect(lambda: changed.append((-1, -1, "reset")))
    model.rowsRemoved.connect(lambda *a: changed.append((-1, -1, "removed")))

    model.set_cluster(_with_states(lab_cluster, {("datarep-data", "lab1"): ResourceState.OSF}))
    # The DataKeeper cell on lab1, and the status icons of it and of the root above it.
    assert (0, 1, "Failed") in changed
    assert all(entry[2] not in ("reset", "removed") for entry in changed)
    cells = [c for c in changed if c[1] > 0]
    assert cells == [(0, 1, "Failed")]
    top = model.index(0, 0)
    assert top.data(Role.NODE_STATUS) == "FAILED"
    assert model.index(0, 1).data() == "Active"  # /data itself is still Active
    qtmodeltester.check(model)


def test_server_state_changes_the_header_only(qtbot, lab_cluster: Cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    with qtbot.waitSignal(model.headerDataChanged) as blocker:
        servers = tuple(
            dataclasses.replace(s, state=ServerState.DEAD) if s.name == "lab3" else s
            for s in lab_cluster.servers
        )
        model.set_cluster(dataclasses.replace(lab_cluster, servers=servers))
    assert blocker.args[1:] == [3, 3]
    assert model.headerData(3, Qt.Orientation.Horizontal) == "lab3  (DEAD)"


def test_extend_resync_and_delete_keep_the_model_valid(qtmodeltester, lab_cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    inserted: list[int] = []
    model.rowsInserted.connect(lambda parent, first, last: inserted.append(first))

    resyncing = _extended(lab_cluster, MirrorState.RESYNCING, 43)
    model.set_cluster(resyncing)
    qtmodeltester.check(model)
    top = model.index(0, 0)
    dk = model.index(0, 2, top)
    assert dk.data() == "Resyncing 43 % · 180 MB/s · 2 min left"
    assert dk.data(Role.PERCENT) == 43
    assert model.index(0, 2).data() == "Standby"
    assert model.index(0, 1, top).data() == "Source"

    model.set_cluster(_extended(lab_cluster, MirrorState.TARGET, 100))
    assert model.index(0, 2, model.index(0, 0)).data() == "Target"
    qtmodeltester.check(model)

    model.set_cluster(dataclasses.replace(lab_cluster, hierarchies=()))
    assert model.rowCount() == 0
    qtmodeltester.check(model)
    model.set_cluster(lab_cluster)
    assert model.rowCount() == 1 and inserted[-1] == 0
    assert model.index_of("datarep-data", "lab1").data() == "Active"
    assert model.index_of("nope") == QModelIndex()
