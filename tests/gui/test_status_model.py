"""The status tree model: structure, roles, and small updates (never a reset)."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import QModelIndex, Qt

from core.events import MirrorProgress
from core.model import Cluster, MirrorState, ResourceState, ServerState, share_unchanged
from gui.status_filter import StatusFilterModel
from gui.status_model import Role, StatusModel
from tests.gui import clusters as c

H = Qt.Orientation.Horizontal


class Recorder:
    """Every structural signal and every changed cell of a model (source or proxy)."""

    def __init__(self, model) -> None:
        self.cells: list[tuple[int, int, str | None]] = []
        self.structure: list[str] = []
        model.dataChanged.connect(self._changed)
        model.modelReset.connect(lambda: self.structure.append("reset"))
        model.layoutChanged.connect(lambda *a: self.structure.append("layout"))
        model.rowsInserted.connect(lambda *a: self.structure.append("inserted"))
        model.rowsRemoved.connect(lambda *a: self.structure.append("removed"))

    def _changed(self, a, b, roles=()) -> None:
        for row in range(a.row(), b.row() + 1):
            for column in range(a.column(), b.column() + 1):
                index = a.sibling(row, column)
                self.cells.append((row, column, index.data()))

    @property
    def resets(self) -> int:
        return self.structure.count("reset")


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
    assert model.headerData(1, H) == "lab1 — ALIVE"
    assert not model.headerData(1, H, Qt.ItemDataRole.DecorationRole).isNull()


def test_a_state_change_touches_exactly_its_cell(qtbot, qtmodeltester, lab_cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    seen = Recorder(model)

    model.set_cluster(c.with_states(lab_cluster, {("datarep-data", "lab1"): ResourceState.OSF}))
    # The DataKeeper cell on lab1, and the status icons of it and of the root above it.
    assert (0, 1, "Failed") in seen.cells
    assert seen.structure == []
    cells = [x for x in seen.cells if x[1] > 0]
    assert cells == [(0, 1, "Failed")]
    top = model.index(0, 0)
    assert top.data(Role.NODE_STATUS) == "FAILED"
    assert model.index(0, 1).data() == "Active"  # /data itself is still Active
    qtmodeltester.check(model)


def test_an_unchanged_snapshot_changes_nothing(lab_cluster: Cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    seen = Recorder(model)
    fresh = dataclasses.replace(lab_cluster, hierarchies=tuple(lab_cluster.hierarchies))
    model.set_cluster(fresh)  # equal values, other objects
    model.set_cluster(share_unchanged(lab_cluster, fresh))  # the same objects
    assert seen.cells == [] and seen.structure == []


def test_server_state_changes_the_header_only(qtbot, lab_cluster: Cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    seen = Recorder(model)
    with qtbot.waitSignal(model.headerDataChanged) as blocker:
        servers = tuple(
            dataclasses.replace(s, state=ServerState.DEAD) if s.name == "lab3" else s
            for s in lab_cluster.servers
        )
        model.set_cluster(dataclasses.replace(lab_cluster, servers=servers))
    assert blocker.args[1:] == [3, 3]
    assert model.headerData(3, H) == "lab3 — DEAD"
    assert seen.cells == [] and seen.structure == []


def test_extend_resync_and_delete_keep_the_model_valid(qtmodeltester, lab_cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    inserted: list[int] = []
    model.rowsInserted.connect(lambda parent, first, last: inserted.append(first))

    size = lab_cluster.hierarchies[0].mirrors[0].volume_size
    resyncing = c.extended(lab_cluster, done=c.part(size, 43))
    model.set_cluster(resyncing)
    qtmodeltester.check(model)
    top = model.index(0, 0)
    dk = model.index(0, 2, top)
    assert dk.data() == "Resyncing 43 % · 180 MB/s · 2 min left"
    assert dk.data(Role.PERCENT) == 43
    assert model.index(0, 2).data() == "Standby"
    assert model.index(0, 1, top).data() == "Source"

    model.set_cluster(c.in_sync(resyncing, "lab2"))
    assert model.index(0, 2, model.index(0, 0)).data() == "Target"
    [h] = c.in_sync(resyncing, "lab2").hierarchies
    [target] = h.mirrors[0].targets
    paused = dataclasses.replace(
        target, state=MirrorState.OUT_OF_SYNC, reason="paused by the administrator"
    )
    mirror = dataclasses.replace(h.mirrors[0], targets=(paused,))
    model.set_cluster(c.replace_hierarchy(resyncing, dataclasses.replace(h, mirrors=(mirror,))))
    dk = model.index(0, 2, model.index(0, 0))
    assert dk.data() == "Out of Sync"  # the tooltip says why
    assert dk.data(Qt.ItemDataRole.ToolTipRole) == (
        "datarep-data on lab2: Out of Service, Unimpaired (Out of Sync)\n"
        "paused by the administrator"
    )
    qtmodeltester.check(model)

    model.set_cluster(dataclasses.replace(lab_cluster, hierarchies=()))
    assert model.rowCount() == 0
    qtmodeltester.check(model)
    model.set_cluster(lab_cluster)
    assert model.rowCount() == 1 and inserted[-1] == 0
    assert model.index_of("datarep-data", "lab1").data() == "Active"
    assert model.index_of("nope") == QModelIndex()


def test_the_whole_life_of_a_hierarchy_passes_the_model_tester(
    qtmodeltester, lab_cluster: Cluster
) -> None:
    """create → extend → resync progress → Target → switchover → unextend → delete."""
    model = StatusModel()
    proxy = StatusFilterModel(model)
    proxy.sort(0, Qt.SortOrder.AscendingOrder)
    model.set_cluster(lab_cluster)
    qtmodeltester.check(model)
    qtmodeltester.check(proxy)  # both stay under the tester's eye from now on
    seen, seen_proxy = Recorder(model), Recorder(proxy)

    cluster = c.created(lab_cluster)  # /web on lab1
    model.set_cluster(cluster)
    assert model.rowCount() == 2 and seen.structure == ["inserted"]
    assert proxy.index(1, 0).data() == "/web"  # sorted by tag: /data, /web

    cluster = c.extended(cluster, "lab2", done=0)
    model.set_cluster(cluster)
    size = cluster.hierarchies[0].mirrors[0].volume_size
    for percent in (10, 50, 90):
        cluster = c.progressed(cluster, "lab2", c.part(size, percent))
        model.set_cluster(cluster)
        assert model.index_of("datarep-data", "lab2").data().startswith(f"Resyncing {percent} %")
    cluster = c.in_sync(cluster, "lab2")
    model.set_cluster(cluster)
    assert model.index_of("datarep-data", "lab2").data() == "Target"

    cluster = c.switched_over(cluster, "lab2")
    model.set_cluster(cluster)
    assert model.index_of("/data", "lab2").data() == "Active"
    assert model.index_of("datarep-data", "lab2").data() == "Source"
    assert model.index_of("datarep-data", "lab1").data() == "Target"

    cluster = c.unextended(cluster, "lab1")
    model.set_cluster(cluster)
    assert model.index_of("/data", "lab1").data() is None
    assert model.index_of("datarep-data", "lab2").data() == "Active"  # no target left

    cluster = c.deleted(cluster)
    model.set_cluster(cluster)
    assert model.rowCount() == 1 and model.index(0, 0).data() == "/web"
    assert seen.structure == ["inserted", "removed"]
    assert seen.resets == 0 and seen_proxy.resets == 0
    assert "layout" not in seen_proxy.structure  # no re-sort: the tags did not change
    qtmodeltester.check(model)
    qtmodeltester.check(proxy)


def test_live_progress_shows_and_a_stale_snapshot_does_not_go_back(lab_cluster) -> None:
    model = StatusModel()
    size = lab_cluster.hierarchies[0].mirrors[0].volume_size
    cluster = c.extended(lab_cluster, done=c.part(size, 10))
    model.set_cluster(cluster)
    seen = Recorder(model)
    event = MirrorProgress("datarep-data", "lab2", c.part(size, 50), size, 200e6, 3.0)
    assert model.apply_progress(event)
    cell = model.index_of("datarep-data", "lab2")
    assert cell.data() == "Resyncing 50 % · 200 MB/s · 3 s left"
    assert [x[1:] for x in seen.cells] == [(2, cell.data())]  # that cell, nothing else
    assert not model.apply_progress(event)  # the same again: no change

    model.set_cluster(c.progressed(cluster, "lab2", c.part(size, 25)))  # older than the event
    assert model.index_of("datarep-data", "lab2").data().startswith("Resyncing 50 %")
    model.set_cluster(c.progressed(cluster, "lab2", c.part(size, 75)))  # the store caught up
    assert model.index_of("datarep-data", "lab2").data().startswith("Resyncing 75 %")
    model.set_cluster(c.in_sync(cluster, "lab2"))
    assert model.index_of("datarep-data", "lab2").data() == "Target"
    # Progress of a mirror the model does not know, or of a target not resyncing.
    assert not model.apply_progress(MirrorProgress("nope", "lab2", 1, 2, 1.0, None))
    assert not model.apply_progress(event)
    assert model.index_of("datarep-data", "lab2").data() == "Target"


def test_model_cluster_is_what_is_shown(lab_cluster) -> None:
    model = StatusModel()
    size = lab_cluster.hierarchies[0].mirrors[0].volume_size
    model.set_cluster(c.extended(lab_cluster, done=0))
    model.apply_progress(MirrorProgress("datarep-data", "lab2", c.part(size, 20), size, 1e6, 50.0))
    shown = model.cluster()
    assert shown is not None
    target = shown.hierarchies[0].mirrors[0].target("lab2")
    assert target is not None and target.percent == 20


@pytest.mark.parametrize(
    ("text", "rows"),
    [("", ["/data", "/web"]), ("WEB", ["/web"]), ("datarep-d", ["/data"]), ("zzz", [])],
)
def test_the_tag_filter_keeps_whole_hierarchies(qtmodeltester, lab_cluster, text, rows) -> None:
    model = StatusModel()
    model.set_cluster(c.created(lab_cluster))
    proxy = StatusFilterModel(model)
    proxy.sort(0, Qt.SortOrder.AscendingOrder)
    proxy.set_tag_filter(text)
    qtmodeltester.check(proxy)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == rows
    if text == "datarep-d":  # a child matches: its root stays, with it below
        assert proxy.index(0, 0, proxy.index(0, 0)).data() == "datarep-data"


def test_sorting_by_tag_and_by_the_states_on_a_server(lab_cluster) -> None:
    model = StatusModel()
    cluster = c.extended(c.created(lab_cluster), "lab2", MirrorState.TARGET, hierarchy_index=1)
    cluster = c.switched_over(cluster, "lab2", hierarchy_index=1)  # /web active on lab2
    model.set_cluster(cluster)
    proxy = StatusFilterModel(model)
    proxy.sort(0, Qt.SortOrder.DescendingOrder)
    assert [proxy.index(r, 0).data() for r in range(2)] == ["/web", "/data"]
    proxy.sort(model.column_of("lab2"), Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, 0).data() for r in range(2)] == ["/web", "/data"]  # Active first
    proxy.sort(model.column_of("lab1"), Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, 0).data() for r in range(2)] == ["/data", "/web"]


def test_a_new_server_resets_the_model_once(lab_cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    seen = Recorder(model)
    fewer = dataclasses.replace(lab_cluster, servers=lab_cluster.servers[:2])
    model.set_cluster(fewer)
    assert seen.resets == 1 and model.columnCount() == 3


def test_highlighted_server_header_is_bold(lab_cluster) -> None:
    model = StatusModel()
    model.set_cluster(lab_cluster)
    font = Qt.ItemDataRole.FontRole
    assert model.headerData(2, H, font) is None
    model.set_highlighted_server("lab2")
    assert model.headerData(2, H, font).bold()
    model.set_highlighted_server(None)
    assert model.headerData(2, H, font) is None
