"""Menus, toolbar and context menus: what is shown, enabled, and what a handler gets."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractButton, QMenu, QMessageBox, QToolBar, QWidget

from core.availability import Preselection
from core.backends.lab.store import Store
from core.model import MirrorState, Role
from gui.actions import find_menu_action, plain_text
from gui.main_window import MainWindow
from tests.gui.lab_states import extend_seed, seed

# Showing a context menu asks for a keyboard grab, which the offscreen platform lacks.
pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support grabbing the keyboard")

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
NEED_HANDLERS = (
    "stop_server",
    "start_server",
    "create_hierarchy",
    "extend_hierarchy",
    "unextend_hierarchy",
    "delete_hierarchy",
    "in_service",
    "out_of_service",
    "create_dependency",
    "delete_dependency",
)


@pytest.fixture
def window(qtbot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model.rowCount() == 1, timeout=10_000)
    return w


def _menu_texts(menu: QMenu) -> list[str]:
    return [plain_text(a.text()) for a in menu.actions() if a.isVisible() and not a.isSeparator()]


def _select(window: MainWindow, tag: str, server: str | None = None) -> None:
    r = window.cluster.find_tag(tag)
    assert r is not None
    assert window.tree.select_resource(r.hierarchy_id, r.resource_id, server)


def test_every_operation_has_its_dialog_and_none_is_dead(qtbot, window: MainWindow) -> None:
    for name in NEED_HANDLERS:
        assert window.actions.is_registered(name), name
        assert window.actions[name].isVisible(), name
    resource_menu = window.findChild(QMenu, "menu_resource")
    assert "Extend Resource Hierarchy" in _menu_texts(resource_menu)
    # An action whose dialog is taken away is hidden, never left dead.
    window.actions.unregister("extend_hierarchy")
    assert not window.actions["extend_hierarchy"].isVisible()
    assert "Extend Resource Hierarchy" not in _menu_texts(resource_menu)
    window.actions.register("extend_hierarchy", lambda pre: None)
    assert window.actions["extend_hierarchy"].isVisible()
    toolbar = window.findChild(QToolBar, "main_toolbar")
    button = toolbar.widgetForAction(window.actions["extend_hierarchy"])
    assert button.objectName() == "extend_hierarchy_button"
    qtbot.waitUntil(button.isVisible)
    with pytest.raises(KeyError, match="not an action with a handler"):
        window.actions.register("expand_all", lambda pre: None)


def test_the_menus_of_lifekeeper(window: MainWindow) -> None:
    for name in NEED_HANDLERS:
        window.actions.register(name, lambda pre: None)
    bar = window.menuBar()
    assert [plain_text(a.text()) for a in bar.actions()] == ["File", "Edit", "View", "Help"]
    assert _menu_texts(window.findChild(QMenu, "menu_file")) == ["Connect", "Disconnect", "Exit"]
    edit = window.findChild(QMenu, "menu_edit")
    assert _menu_texts(edit) == ["Server", "Resource"]
    assert _menu_texts(window.findChild(QMenu, "menu_server")) == [
        "Properties",
        "Create Comm Path",
        "Delete Comm Path",
        "Stop Server",
        "Start Server",
        "Confirm Failover",
    ]
    assert _menu_texts(window.findChild(QMenu, "menu_resource")) == [
        "Create Resource Hierarchy",
        "Extend Resource Hierarchy",
        "Unextend Resource Hierarchy",
        "Delete Resource Hierarchy",
        "Create Dependency",
        "Delete Dependency",
        "In Service",
        "Out of Service",
        "Mirror",
        "Properties",
    ]
    assert _menu_texts(window.findChild(QMenu, "menu_mirror")) == [
        "Pause Mirror",
        "Resume Mirror",
        "Full Resync",
        "Verify Mirror",
        "Force Online",
        "Set Speed Limit",
        "Resize Mirror",
    ]
    assert _menu_texts(window.findChild(QMenu, "menu_view")) == [
        "Output Panel",
        "Properties Panel",
        "Toolbar",
        "Expand All",
        "Collapse All",
        "Filter by Tag",
        "Refresh",
        "History",
        "Log",
    ]
    assert _menu_texts(window.findChild(QMenu, "menu_help")) == [
        "LK Console Documentation",
        "About LK Console",
    ]


def test_extend_is_reachable_by_visible_texts_and_by_object_name(window: MainWindow) -> None:
    window.actions.register("extend_hierarchy", lambda pre: None)
    by_text = find_menu_action(window.menuBar(), "Edit", "Resource", "Extend Resource Hierarchy")
    by_name = window.findChild(QAction, "extend_hierarchy")
    assert by_text is not None and by_text is by_name
    assert by_text.text() == "&Extend Resource Hierarchy…"  # mnemonic E, opens a dialog
    assert by_text.shortcut().toString() == "Ctrl+E"
    assert find_menu_action(window.menuBar(), "&Edit", "&Resource", "Extend…") is None
    assert window.findChild(QMenu, "menu_edit").title() == "&Edit"
    assert window.findChild(QMenu, "menu_resource").title() == "&Resource"


def test_mnemonics_and_shortcuts_of_the_frequent_actions(window: MainWindow) -> None:
    shortcuts = {
        "create_hierarchy": "Ctrl+N",
        "extend_hierarchy": "Ctrl+E",
        "in_service": "Ctrl+I",
        "out_of_service": "Ctrl+O",
        "resource_properties": "Alt+Return",
        "exit": "Ctrl+Q",
        "refresh": "F5",
        "find_tag": "Ctrl+F",
        "documentation": "F1",
        "toggle_output_panel": "Ctrl+Shift+O",
        "toggle_properties_panel": "Ctrl+Shift+P",
    }
    for name, keys in shortcuts.items():
        assert window.actions[name].shortcut().toString() == keys, name
    for menu in window.findChildren(QMenu):
        if not menu.objectName().startswith("menu_"):
            continue
        keys = [a.text().split("&")[1][0].lower() for a in menu.actions() if a.text()]
        assert all(keys), menu.objectName()
        assert len(keys) == len(set(keys)), f"mnemonic clash in {menu.objectName()}: {keys}"


def test_in_service_is_disabled_for_a_resource_already_in_service(window: MainWindow) -> None:
    window.actions.register("in_service", lambda pre: None)
    window.actions.register("out_of_service", lambda pre: None)
    action = window.actions["in_service"]
    assert not action.isEnabled()
    assert action.toolTip().startswith("Select a resource first")
    _select(window, "/data")
    assert not action.isEnabled()
    assert action.toolTip().startswith("/data is already in service on lab1")
    assert action.statusTip() == action.toolTip()
    out = window.actions["out_of_service"]
    assert out.isEnabled() and out.toolTip().startswith("Take /data out of service on lab1")


def test_extend_is_disabled_when_no_server_is_left(qtbot, window: MainWindow) -> None:
    window.actions.register("extend_hierarchy", lambda pre: None)
    action = window.actions["extend_hierarchy"]
    _select(window, "/data")
    assert action.isEnabled()
    assert action.toolTip() == "Extend /data from lab1 to one of lab2, lab3."
    with Store() as store:
        extend_seed(store, "lab2", 10, MirrorState.TARGET)
        extend_seed(store, "lab3", 20, MirrorState.TARGET)
    qtbot.waitUntil(lambda: not action.isEnabled(), timeout=5_000)
    assert "no server left to extend /data to" in action.toolTip()


def test_a_guest_may_only_look(window: MainWindow) -> None:
    for name in NEED_HANDLERS:
        window.actions.register(name, lambda pre: None)
    _select(window, "/data", "lab1")
    window.set_role(Role.GUEST)
    assert window.session.role is Role.GUEST
    enabled = {a.objectName() for a in window.actions() if a.isEnabled() and a.isVisible()}
    assert not enabled & set(NEED_HANDLERS)
    assert "resource_properties" in enabled
    assert window.actions["delete_hierarchy"].toolTip().startswith("Your role is Guest")
    window.set_role(Role.ADMINISTRATOR)
    assert window.actions["delete_hierarchy"].isEnabled()


def test_right_click_a_resource_preselects_template_server_and_tag(
    qtbot, window: MainWindow
) -> None:
    got: list[Preselection] = []
    window.actions.register("extend_hierarchy", got.append)
    tree = window.tree
    index = tree.model().index(0, 0, tree.model().index(0, 0))  # datarep-data
    tree.customContextMenuRequested.emit(tree.visualRect(index).center())
    menu = window.last_context_menu
    assert menu is not None and menu.objectName() == "resource_menu"
    assert "Extend Resource Hierarchy" in _menu_texts(menu)
    extend = next(a for a in menu.actions() if a.objectName() == "extend_hierarchy")
    assert extend.isEnabled()
    extend.trigger()
    assert len(got) == 1
    pre = got[0]
    assert (pre.template_server, pre.tag, pre.root_tag, pre.target_server) == (
        "lab1",
        "datarep-data",
        "/data",
        None,
    )
    assert pre.hierarchy_id == seed_ids().hierarchy_id
    menu.close()


def test_right_click_an_empty_cell_preselects_the_target_server(window: MainWindow) -> None:
    got: list[Preselection] = []
    window.actions.register("extend_hierarchy", got.append)
    window.actions.register("in_service", got.append)
    tree = window.tree
    index = tree.model().index(0, 3)  # /data on lab3: not defined there
    tree.scrollTo(index)
    tree.customContextMenuRequested.emit(tree.visualRect(index).center())
    menu = window.last_context_menu
    assert menu is not None and menu.objectName() == "cell_menu"
    in_service = next(a for a in menu.actions() if a.objectName() == "in_service")
    assert not in_service.isEnabled()
    assert "not defined on lab3" in in_service.toolTip()
    next(a for a in menu.actions() if a.objectName() == "extend_hierarchy").trigger()
    assert (got[0].template_server, got[0].tag, got[0].target_server) == ("lab1", "/data", "lab3")
    server_menu = menu.findChild(QMenu, "cell_server_menu")
    assert plain_text(server_menu.title()) == "Server lab3"
    assert _menu_texts(server_menu) == ["Properties", "Stop Server", "Start Server"]
    menu.close()


def test_right_click_a_server_header(qtbot, window: MainWindow) -> None:
    got: list[Preselection] = []
    window.actions.register("stop_server", got.append)
    header = window.tree.header()
    x = header.sectionViewportPosition(2) + 10
    header.customContextMenuRequested.emit(QPoint(x, 5))
    menu = window.last_context_menu
    assert menu is not None and menu.objectName() == "server_menu"
    assert _menu_texts(menu) == [
        "Properties",
        "Create Comm Path",
        "Delete Comm Path",
        "Stop Server",
        "Start Server",
        "Confirm Failover",
        "Create Resource Hierarchy",
        "Sort Rows by State on lab2",
    ]
    assert window.properties_panel.heading.text() == "Server lab2"
    next(a for a in menu.actions() if a.objectName() == "stop_server").trigger()
    assert got[0].server == "lab2"
    sort = next(a for a in menu.actions() if a.objectName() == "sort_by_server_state")
    sort.trigger()
    assert window.tree.sort_state == (2, Qt.SortOrder.AscendingOrder)
    menu.close()


def test_clicking_a_server_header_selects_the_server(window: MainWindow) -> None:
    window.tree.header().sectionClicked.emit(3)
    assert window.selection().server == "lab3" and window.selection().kind == "server"
    assert window.properties_panel.heading.text() == "Server lab3"
    assert window.model.headerData(3, Qt.Orientation.Horizontal, Qt.ItemDataRole.FontRole).bold()
    assert window.actions["server_properties"].isEnabled()
    window.tree.header().sectionClicked.emit(0)  # the tag column sorts
    assert window.tree.sort_state == (0, Qt.SortOrder.DescendingOrder)


def test_right_click_empty_space_offers_create_and_expand(window: MainWindow) -> None:
    window.actions.register("create_hierarchy", lambda pre: None)
    tree = window.tree
    tree.customContextMenuRequested.emit(QPoint(10, tree.viewport().height() - 5))
    menu = window.last_context_menu
    assert menu.objectName() == "empty_menu"
    assert _menu_texts(menu) == ["Create Resource Hierarchy", "Expand All", "Collapse All"]
    menu.close()


def test_properties_actions_show_the_panel(window: MainWindow) -> None:
    window.properties_panel.hide()
    _select(window, "datarep-data", "lab1")
    window.actions["server_properties"].trigger()
    assert window.properties_panel.isVisible()
    assert window.properties_panel.heading.text() == "Server lab1"
    _select(window, "datarep-data", "lab1")
    window.actions["resource_properties"].trigger()
    assert window.properties_panel.heading.text() == "datarep-data"
    assert window.selection().kind == "resource"


def test_expand_and_collapse_all(window: MainWindow) -> None:
    root = window.tree.model().index(0, 0)
    window.actions["collapse_all"].trigger()
    assert not window.tree.isExpanded(root)
    window.actions["expand_all"].trigger()
    assert window.tree.isExpanded(root)


def test_panel_toggles(window: MainWindow) -> None:
    toggle = window.actions["toggle_output_panel"]
    assert toggle.isChecked() and window.output_panel.isVisible()
    toggle.trigger()
    assert not window.output_panel.isVisible()
    toggle.trigger()
    assert window.output_panel.isVisible()


def test_documentation_works_offline(window: MainWindow) -> None:
    window.actions["documentation"].trigger()
    dialog = window.findChild(QWidget, "help_dialog")
    assert dialog is not None and dialog.isVisible()
    text = dialog.browser.toPlainText()
    assert "Status table" in text and "Resyncing 43 % · 180 MB/s · 2 min left" in text
    assert "Wait for Previous Source" in text
    dialog.close()


def test_about(monkeypatch, window: MainWindow) -> None:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    window.actions["about"].trigger()
    assert shown and "DataKeeper" in shown[0]


def test_a_handler_that_fails_says_why(window: MainWindow) -> None:
    from core.errors import OperationError

    def broken(pre: Preselection) -> None:
        raise OperationError("lab2 is not reachable")

    window.actions.register("extend_hierarchy", broken)
    _select(window, "/data")
    window.actions["extend_hierarchy"].trigger()
    assert window.message.text() == "lab2 is not reachable"


def test_everything_has_an_object_name_and_an_accessible_name(window: MainWindow) -> None:
    for name in NEED_HANDLERS:
        window.actions.register(name, lambda pre: None)
    names = [a.objectName() for a in window.findChildren(QAction) if a.text()]
    assert all(SNAKE.match(n) for n in names), names
    assert len(names) == len(set(names))
    for widget in window.findChildren(QWidget):
        name = widget.objectName()
        if not name or name.startswith("qt_"):
            continue  # Qt's own pieces (viewports, scroll bars, extension buttons)
        assert SNAKE.match(name), name
        if widget.isVisibleTo(window) and not isinstance(widget, QMenu):
            assert widget.accessibleName(), name
    for menu in window.findChildren(QMenu):
        if menu.objectName():
            assert menu.accessibleName(), menu.objectName()
    for button in window.findChild(QToolBar, "main_toolbar").findChildren(QAbstractButton):
        if button.objectName().endswith("_button") and not button.objectName().startswith("qt_"):
            assert button.accessibleName()


def seed_ids():
    with Store() as store:
        return seed(store)


@pytest.mark.parametrize("role", [Role.GUEST, Role.OPERATOR])
def test_the_menus_follow_the_permission_table_and_core_refuses_too(
    qtbot, window: MainWindow, role: Role
) -> None:
    from core import permissions
    from core.backends.lab import LabBackend
    from core.errors import PermissionDenied
    from core.operations import mirror as mirror_ops
    from core.operations import service
    from core.permissions import Op
    from core.session import Session

    with Store() as store:
        extend_seed(store, state=MirrorState.TARGET)
    window.request_reload()
    qtbot.waitUntil(lambda: window.cluster is not None and len(window.cluster.servers) == 3)
    qtbot.waitUntil(lambda: len(window.cluster.hierarchies[0].equivalencies) == 2)
    for name in NEED_HANDLERS:
        window.actions.register(name, lambda pre: None)
    _select(window, "datarep-data", "lab2")

    def enabled() -> set[str]:
        return {a.objectName() for a in window.actions() if a.isEnabled() and a.isVisible()}

    as_admin = enabled()
    assert {"in_service", "pause_mirror", "full_resync", "unextend_hierarchy"} <= as_admin
    window.set_role(role)
    ops = {a: Op(a) for a in as_admin if a in {o.value for o in Op}}
    assert enabled() & set(ops) == {a for a, op in ops.items() if permissions.allowed(role, op)}
    for name, op in ops.items():
        if not permissions.allowed(role, op):
            assert window.actions[name].toolTip().startswith(f"Your role is {role.label}")
    # Core refuses them too when called directly with that session (recorded).
    session = Session("someone", role)
    backend = LabBackend()
    try:
        with pytest.raises(PermissionDenied, match="needs the Administrator role"):
            mirror_ops.full_resync(backend, "datarep-data", "lab2", session)
        with pytest.raises(PermissionDenied, match="needs the Administrator role"):
            backend.stop_server("lab3", session)
        if role is Role.GUEST:
            with pytest.raises(PermissionDenied, match="needs the Operator role"):
                service.switchover(backend, "/data", "lab2", session)
            with pytest.raises(PermissionDenied, match="needs the Operator role"):
                backend.write("datarep-data", 0, 4096, session)
    finally:
        backend.close()
