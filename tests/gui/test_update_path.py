"""One update redoes only what depends on what changed, and all of that still follows.

The status model finds the hierarchies a snapshot changed by identity and names them
(``take_changes``); the window measures the mirror texts of those only, the message bar
adds up their resyncs, and the actions' rules and the properties panel run again only
when the selection or what they read of the cluster changed. The window's tests drive
the real window over the real store (changes written as another process would) and
check that everything that depends on a change still shows it. The properties panel
changes only the rows whose value or icon changed.
"""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QStatusBar, QToolButton, QWidget

from core import availability as av
from core.availability import Connection, Selection
from core.backends.lab.store import Store
from core.events import MirrorProgress
from core.model import Cluster, MirrorState, ResourceState, Role, share_unchanged
from core.properties import NOTHING, Properties, Row, Section, properties
from gui import actions as act
from gui import icons
from gui.main_window import MainWindow
from gui.message_bar import MessageBar
from gui.properties_panel import PropertiesPanel
from gui.status_model import Role as ModelRole
from gui.status_model import StatusModel
from tests.gui import clusters as c
from tests.gui.lab_states import extend_seed, seed


def test_the_model_names_the_hierarchies_it_shows_differently(lab_cluster) -> None:
    model = StatusModel()
    assert model.take_changes() is None  # nothing shown yet: everything is new
    model.set_cluster(lab_cluster)
    assert model.take_changes() is None
    assert model.take_changes() == set()
    shown = model.cluster()
    hid = lab_cluster.hierarchies[0].id

    model.set_cluster(share_unchanged(lab_cluster, dataclasses.replace(lab_cluster)))
    equal = tuple(dataclasses.replace(h) for h in lab_cluster.hierarchies)  # other objects
    model.set_cluster(dataclasses.replace(lab_cluster, hierarchies=equal))
    assert model.take_changes() == set() and model.cluster() is shown

    failed = c.with_states(lab_cluster, {("datarep-data", "lab1"): ResourceState.OSF})
    model.set_cluster(failed)
    assert model.take_changes() == {hid}
    assert model.cluster() is not shown and model.cluster().servers is shown.servers

    both = c.created(failed)
    model.set_cluster(both)
    new = both.hierarchies[1].id
    assert model.take_changes() == {new}
    assert [h.id for h in model.cluster().hierarchies] == [hid, new]

    size = lab_cluster.hierarchies[0].mirrors[0].volume_size
    resyncing = c.extended(both, "lab2", done=0)
    model.set_cluster(resyncing)
    model.take_changes()
    assert model.apply_progress(MirrorProgress("datarep-data", "lab2", size // 2, size, 1e6, 9.0))
    assert model.take_changes() == {hid}
    assert model.cluster().hierarchies[0].mirrors[0].target("lab2").percent == 50

    model.set_cluster(c.deleted(resyncing))
    assert model.take_changes() == {hid}
    model.set_cluster(dataclasses.replace(lab_cluster, servers=lab_cluster.servers[:2]))
    assert model.take_changes() is None  # a server left: a reset


def test_a_hierarchy_that_gains_a_resource_is_shown_again(qtmodeltester, lab_cluster) -> None:
    """Same hierarchies, one of them reshaped: its row is taken out and put back."""
    model = StatusModel()
    both = c.created(lab_cluster)
    model.set_cluster(both)
    qtmodeltester.check(model)
    events: list[str] = []
    model.rowsRemoved.connect(lambda *a: events.append("removed"))
    model.rowsInserted.connect(lambda *a: events.append("inserted"))
    model.modelReset.connect(lambda: events.append("reset"))
    web = both.hierarchies[1]
    dk = next(r for r in web.resources if r.tag == "datarep-web")
    app = dataclasses.replace(
        dk, resource_id=dk.resource_id + 1, tag="webapp", kind=web.kind_of(web.root_id)
    )
    grown = dataclasses.replace(
        web,
        resources=(*web.resources, app),
        dependencies=(
            *web.dependencies,
            dataclasses.replace(
                web.dependencies[0], parent_id=dk.resource_id, child_id=app.resource_id
            ),
        ),
    )
    model.set_cluster(c.replace_hierarchy(both, grown))
    assert events == ["removed", "inserted"]
    assert model.index_of("webapp", "lab1").data() == "Active"
    assert model.index_of("datarep-data", "lab1").data() == "Active"
    qtmodeltester.check(model)


def test_ids_at_says_what_the_roles_say(lab_cluster) -> None:
    model = StatusModel()
    model.set_cluster(c.extended(c.created(lab_cluster), "lab2", done=0))
    stack = [model.index(r, 0) for r in range(model.rowCount())]
    seen = 0
    while stack:
        first = stack.pop()
        stack.extend(model.index(r, 0, first) for r in range(model.rowCount(first)))
        for column in range(model.columnCount()):
            index = first.siblingAtColumn(column)
            server = index.data(ModelRole.SERVER) if column > 0 else None
            wanted = (index.data(ModelRole.HIERARCHY_ID), index.data(ModelRole.RESOURCE_ID), server)
            assert model.ids_at(index) == wanted
            seen += 1
    assert seen == 4 * 4  # 4 resources x (tag + 3 servers)


def _window(qtbot) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    return window


def test_the_resyncs_in_the_message_bar_add_up_the_changed_hierarchies(qtbot, lab_cluster) -> None:
    bar = QStatusBar()
    qtbot.addWidget(bar)
    messages = MessageBar(bar)
    size = lab_cluster.hierarchies[0].mirrors[0].volume_size
    both = c.extended(c.created(lab_cluster), "lab2", done=c.part(size, 40))
    both = c.extended(both, "lab3", done=c.part(size, 60), hierarchy_index=1)
    messages.show_resyncs(both)
    assert messages.resync_label.text() == "2 mirrors" and messages.resync.value() == 50
    assert "datarep-data → lab2, datarep-web → lab3" in messages.resync.toolTip()

    first, second = both.hierarchies
    done = c.in_sync(both, "lab2")
    messages.show_resyncs(done, {first.id: done.hierarchies[0]})
    assert messages.resync_label.text() == "datarep-web → lab3"
    assert messages.resync.value() == 60

    gone = c.deleted(done, hierarchy_index=1)
    messages.show_resyncs(gone, {second.id: None})
    assert messages.resync.isHidden() and messages.resync_label.isHidden()

    messages.show_resyncs(both, {first.id: first, second.id: second})  # back, in id order
    assert "datarep-data → lab2, datarep-web → lab3" in messages.resync.toolTip()
    messages.show_resyncs(None)
    assert messages.resync.isHidden()


def test_a_longer_mirror_text_widens_its_column_and_other_updates_keep_it(qtbot) -> None:
    window = _window(qtbot)
    column = window.model.column_of("lab2")
    assert column is not None and column < window.model.columnCount() - 1  # not stretched
    with Store() as store:
        ids = extend_seed(store, "lab2", 10, MirrorState.TARGET)
        qtbot.waitUntil(
            lambda: window.model.index_of("datarep-data", "lab2").data() == "Target",
            timeout=5_000,
        )
        window.tree.setColumnWidth(column, 95)  # the user narrows it: kept while "Target"
        with store.transaction() as txn:
            txn.set_instance_state(ids.root_id, "lab1", ResourceState.ISU)  # another cell
        qtbot.waitUntil(
            lambda: window.model.index_of("/data", "lab1").data() == "Degraded", timeout=5_000
        )
        assert window.tree.columnWidth(column) == 95
        with store.transaction() as txn:
            txn.set_mirror_target(
                ids.dk_id,
                dataclasses.replace(
                    window.model.hierarchy(ids.hierarchy_id).mirrors[0].targets[0],
                    state=MirrorState.RESYNCING,
                    bytes_done=1 << 20,
                    rate=180e6,
                    eta=90.0,
                ),
            )
    qtbot.waitUntil(lambda: window.tree.columnWidth(column) > 95, timeout=5_000)
    text = window.model.index_of("datarep-data", "lab2").data()
    assert text.startswith("Resyncing") and "MB/s" in text
    width = window.tree.fontMetrics().horizontalAdvance(text)
    assert window.tree.columnWidth(column) >= width


def _row(window: MainWindow, section: str, label: str) -> str | None:
    """The value of ``label`` in ``section`` of the properties panel (None: not shown)."""
    tree = window.properties_panel.tree
    current = ""
    for i in range(tree.topLevelItemCount()):
        item = tree.topLevelItem(i)
        assert item is not None
        if item.isFirstColumnSpanned():
            current = item.text(0)
        elif current == section and item.text(0) == label:
            return item.text(1)
    return None


def test_the_properties_panel_follows_a_change_of_the_selected_resource(qtbot) -> None:
    window = _window(qtbot)
    with Store() as store:
        ids = seed(store)
        assert window.tree.select_resource(ids.hierarchy_id, ids.dk_id)
        assert _row(window, "State per server", "lab1") == "Active (ISP)"
        with store.transaction() as txn:
            txn.set_instance_state(ids.dk_id, "lab1", ResourceState.OSF)
    qtbot.waitUntil(
        lambda: _row(window, "State per server", "lab1") == "Failed (OSF)", timeout=5_000
    )
    panel = window.properties_panel
    assert panel.current is not None and panel.current.icon == "node-failed"
    assert _row(window, "Resource", "Overall state") == "Failed"


def test_the_actions_follow_a_change_of_the_selected_resource(qtbot) -> None:
    window = _window(qtbot)
    in_service, out_of_service = window.actions["in_service"], window.actions["out_of_service"]
    with Store() as store:
        ids = seed(store)
        assert window.tree.select_resource(ids.hierarchy_id, ids.root_id, "lab1")
        assert not in_service.isEnabled() and out_of_service.isEnabled()
        with store.transaction() as txn:
            txn.set_instance_state(ids.root_id, "lab1", ResourceState.OSU)
    qtbot.waitUntil(lambda: in_service.isEnabled(), timeout=5_000)
    assert not out_of_service.isEnabled()
    assert in_service.toolTip().startswith("Bring /data in service on lab1")
    assert in_service.statusTip() == in_service.toolTip()


class _LayoutRequests(QObject):
    """Notes each LayoutRequest event ``widget`` gets in ``seen``."""

    def __init__(self, widget: QWidget, seen: list[int]) -> None:
        super().__init__(widget)
        self.seen = seen
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.seen.append(1)
        return False


def test_the_toolbar_buttons_follow_their_actions(qtbot) -> None:
    """The registry hands a toolbar button its action's state and tips itself."""
    window = _window(qtbot)
    action = window.actions["in_service"]
    button = window.toolbar.findChild(QToolButton, "in_service_button")
    assert button is not None and button.defaultAction() is action

    def same() -> bool:
        return (button.isEnabled(), button.toolTip(), button.statusTip()) == (
            action.isEnabled(),
            action.toolTip(),
            action.statusTip(),
        )

    with Store() as store:
        ids = seed(store)
        assert window.tree.select_resource(ids.hierarchy_id, ids.root_id, "lab1")
        assert not button.isEnabled() and same()
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)  # pending ones
        layouts: list[int] = []
        counter = _LayoutRequests(window.toolbar, layouts)
        with store.transaction() as txn:
            txn.set_instance_state(ids.root_id, "lab1", ResourceState.OSU)
    qtbot.waitUntil(button.isEnabled, timeout=5_000)
    assert same() and button.toolTip().startswith("Bring /data in service on lab1")
    QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)
    assert layouts == []  # the toolbar (and so the window) was not laid out again
    handler = window.actions.handler("in_service")
    assert handler is not None
    window.actions.unregister("in_service")  # not a state or a tip: the toolbar lays out
    qtbot.waitUntil(lambda: not button.isVisible(), timeout=5_000)
    assert layouts and counter is not None
    window.actions.register("in_service", handler)
    qtbot.waitUntil(button.isVisible, timeout=5_000)
    assert same()


def test_with_nothing_selected_extend_follows_every_hierarchy(qtbot) -> None:
    window = _window(qtbot)
    extend = window.actions["extend_hierarchy"]
    assert window.tree.selection() == Selection()
    assert extend.isEnabled()
    with Store() as store:
        extend_seed(store, "lab2", 10, MirrorState.TARGET)
        extend_seed(store, "lab3", 20, MirrorState.TARGET)
    qtbot.waitUntil(lambda: not extend.isEnabled(), timeout=5_000)
    assert "no server left to extend /data to" in extend.toolTip()


def test_a_selected_server_shows_what_changed_in_a_hierarchy(qtbot) -> None:
    window = _window(qtbot)
    window.tree.select_server("lab1")
    assert _row(window, "Server", "Hierarchies in service") == "/data"
    with Store() as store:
        ids = seed(store)
        with store.transaction() as txn:
            for rid in (ids.root_id, ids.dk_id):
                txn.set_instance_state(rid, "lab1", ResourceState.OSU)
    qtbot.waitUntil(lambda: _row(window, "Server", "Hierarchies in service") == "—", timeout=5_000)
    assert _row(window, "Server", "Standby hierarchies") == "/data"


def _selections(cluster: Cluster) -> list[Selection]:
    found = [Selection(), Selection(server="lab2"), Selection(server="nope")]
    for h in cluster.hierarchies:
        for rid in h.resource_ids():
            found.append(Selection(hierarchy_id=h.id, resource_id=rid))
            found.extend(
                Selection(server=s.name, hierarchy_id=h.id, resource_id=rid)
                for s in cluster.servers
            )
    found.append(Selection(hierarchy_id=999, resource_id=1))  # gone
    return found


@pytest.mark.parametrize("role", [Role.GUEST, Role.OPERATOR, Role.ADMINISTRATOR])
def test_the_context_says_what_the_whole_cluster_says(lab_cluster, role) -> None:
    """What the window gives the rules and the panel (act.context) changes no answer."""
    size = lab_cluster.hierarchies[0].mirrors[0].volume_size
    cluster = c.extended(c.created(lab_cluster), "lab2", done=c.part(size, 30))
    cluster = c.with_states(cluster, {("/web", "lab1"): ResourceState.OSF})
    by_id = {h.id: h for h in cluster.hierarchies}
    connection = Connection(role=role)
    for selection in _selections(cluster):
        seen = act.context(cluster, selection, by_id.get)
        assert av.availability(seen, selection, connection) == av.availability(
            cluster, selection, connection
        ), selection
        assert properties(seen, selection) == properties(cluster, selection), selection
        for name in av.ACTIONS:
            assert av.preselection(seen, selection, name) == av.preselection(
                cluster, selection, name
            )


def test_the_properties_panel_changes_only_the_rows_that_changed(qtbot) -> None:
    panel = PropertiesPanel()
    qtbot.addWidget(panel)
    rows = (Row("State", "Active (ISP)", "state-active"), Row("Priority", "1"))
    panel.show_properties(Properties("/data", "node-normal", (Section("Resource", rows),)))
    items = [panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())]
    # The icon alone changes (a value that stays, a state shown by its icon only).
    rows = (Row("State", "Active (ISP)", "state-failed"), Row("Priority", "10"))
    panel.show_properties(Properties("/data", "node-failed", (Section("Resource", rows),)))
    assert [panel.tree.topLevelItem(i) for i in range(3)] == items  # updated in place
    state, priority = items[1], items[2]
    assert state.icon(1).cacheKey() == icons.icon("state-failed").cacheKey()
    assert priority.text(1) == "10" and priority.toolTip(1) == "10"
    assert panel.heading.text() == "/data" and panel.heading_icon.pixmap() is not None
    panel.show_properties(NOTHING)
    assert panel.hint.isVisibleTo(panel) and not panel.tree.isVisibleTo(panel)
    assert panel.heading.text() == "No selection"
