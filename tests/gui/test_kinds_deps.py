"""Through the menus by their visible texts: Create Resource Hierarchy for an IP address
and a Generic Application (the recovery kit chosen first), Create Dependency and Delete
Dependency; the status table shows the result at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QMenu, QWidget, QWizard

from core.backends.lab import LabBackend, kits
from core.model import NodeStatus, Role
from core.operations import create_kinds
from core.rules.kinds import APP, IP, ResourceRequest
from gui import icons
from gui.actions import find_menu_action
from gui.bridge import finish_background
from gui.create_wizard import CreateWizard, Page
from gui.dependency_dialog import DependencyDialog
from gui.extend_wizard import ExtendWizard, prepare_now
from gui.extend_wizard import Page as ExtendPage
from gui.main_window import MainWindow
from tests.core.labtools import settled_digest
from tests.helpers import db_digest, local_administrator

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support grabbing the keyboard")


@pytest.fixture
def window(qtbot, hermetic_env: Path) -> Iterator[MainWindow]:
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model.rowCount() == 1, timeout=10_000)
    yield w


def _opened(qtbot, window: MainWindow, kind: type) -> object:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: isinstance(window.operations.last_dialog, kind), timeout=10_000)
    dialog = window.operations.last_dialog
    window.operations.last_dialog = None
    return dialog


def _menu(window: MainWindow, text: str):  # type: ignore[no-untyped-def]
    action = find_menu_action(window.menuBar(), "Edit", "Resource", text)
    assert action is not None, text
    return action


def _select(window: MainWindow, tag: str, server: str | None = None) -> None:
    r = window.cluster.find_tag(tag)
    assert r is not None
    assert window.tree.select_resource(r.hierarchy_id, r.resource_id, server)


def _create(qtbot, window: MainWindow, kind_label: str) -> CreateWizard:  # type: ignore[no-untyped-def]
    _menu(window, "Create Resource Hierarchy").trigger()
    wizard = _opened(qtbot, window, CreateWizard)
    assert isinstance(wizard, CreateWizard)
    assert wizard.currentId() == Page.KIND
    kind = wizard.currentPage().findChild(QComboBox, "kind")
    assert [kind.itemText(i) for i in range(kind.count())] == [
        "DataKeeper",
        "IP Address",
        "Generic Application",
    ]
    kind.setCurrentText(kind_label)
    wizard.next()
    return wizard


def _error(wizard: CreateWizard, field: str) -> str:
    label = wizard.currentPage().findChild(QLabel, f"{field}_error")
    return label.text() if label is not None and label.isVisible() else ""


def test_create_an_ip_address_with_the_proposed_defaults(qtbot, window: MainWindow) -> None:
    wizard = _create(qtbot, window, "IP Address")
    page = wizard.currentPage()
    assert page.objectName() == "create_ip_page"
    assert page.findChild(QLineEdit, "address").text() == "10.214.0.100/24"
    assert page.findChild(QLineEdit, "interface").text() == "eth0"
    assert page.findChild(QLineEdit, "tag").text() == "ip-10.214.0.100"
    assert "service network" in page.findChild(QLabel, "address_note").text()
    qtbot.waitUntil(page.isComplete, timeout=5000)
    wizard.next()
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=20_000)
    command = wizard.findChild(QLineEdit, "show_command").text()
    assert command == (
        "lkctl create --kind ip --server lab1 --tag ip-10.214.0.100 --switchback intelligent "
        "--address 10.214.0.100/24 --interface eth0 --accept-defaults"
    )
    wizard.next()
    assert "ip-10.214.0.100" in wizard.finish.text.text()
    wizard.accept()
    qtbot.waitUntil(lambda: window.model.index_of("ip-10.214.0.100").isValid(), timeout=10_000)
    assert window.model.index_of("ip-10.214.0.100", "lab1").data() == "Active"
    backend = LabBackend()
    assert kits.addresses_up(backend.layout, "lab1") == ["10.214.0.100"]
    backend.close()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("address", "10.214.0.12/24", "the address of server lab2"),
        ("address", "10.214.0.300/24", "not a valid IPv4 or IPv6 address"),
        ("address", "10.214.0.140", "needs its prefix length"),
        ("interface", "", "Network Interface is required"),
        ("tag", "/data", "already used on lab1"),
    ],
)
def test_a_bad_ip_value_is_refused_under_its_field(
    qtbot, window: MainWindow, field: str, value: str, message: str
) -> None:
    lab = LabBackend()
    before = settled_digest(lab)
    lab.close()
    wizard = _create(qtbot, window, "IP Address")
    wizard.currentPage().findChild(QLineEdit, field).setText(value)
    qtbot.waitUntil(lambda: message in _error(wizard, field), timeout=5000)
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.reject()
    window.close()
    finish_background()  # the window closes its backend off the GUI thread
    assert db_digest(window_home()) == before


def window_home() -> Path:
    import os

    return Path(os.environ["LKCONSOLE_HOME"])


def test_create_a_generic_application_whose_commands_run(qtbot, window: MainWindow) -> None:
    wizard = _create(qtbot, window, "Generic Application")
    page = wizard.currentPage()
    assert page.objectName() == "create_app_page"
    assert page.findChild(QComboBox, "restart_mode").currentText() == "yes"
    assert "Start Command is required" in _error(wizard, "start")
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    page.findChild(QLineEdit, "start").setText("echo serving > web.pid")
    page.findChild(QLineEdit, "stop").setText("rm -f web.pid")
    page.findChild(QLineEdit, "monitor").setText("test -f web.pid")
    page.findChild(QLineEdit, "tag").setText("web")
    qtbot.waitUntil(page.isComplete, timeout=5000)
    wizard.next()
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=20_000)
    assert "--kind app" in wizard.findChild(QLineEdit, "show_command").text()
    wizard.next()
    wizard.accept()
    qtbot.waitUntil(lambda: window.model.index_of("web").isValid(), timeout=10_000)
    assert (window_home() / "servers" / "lab1" / "web.pid").read_text() == "serving\n"
    qtbot.waitUntil(
        lambda: any("web: start command done on lab1" in line for line in _output(window)),
        timeout=10_000,
    )


def _output(window: MainWindow) -> list[str]:
    return window.output_panel.lines()


def _app(tag: str) -> None:
    backend = LabBackend()
    try:
        create_kinds.create(
            backend,
            ResourceRequest(APP, "lab1", tag, start=f"touch {tag}.run", stop=f"rm -f {tag}.run"),
            local_administrator(),
        )
    finally:
        backend.close()


def test_create_dependency_from_the_menu_shows_the_tree_at_once(qtbot, window: MainWindow) -> None:
    _app("web")
    qtbot.waitUntil(lambda: window.model.index_of("web").isValid(), timeout=10_000)
    _select(window, "web", "lab1")
    action = _menu(window, "Create Dependency")
    assert action.isEnabled(), action.toolTip()
    assert "Make web depend on another resource of lab1" in action.toolTip()
    action.trigger()
    dialog = _opened(qtbot, window, DependencyDialog)
    assert isinstance(dialog, DependencyDialog)
    assert dialog.findChild(QComboBox, "server").currentText() == "lab1"
    assert dialog.findChild(QComboBox, "parent").currentText() == "web"
    child = dialog.findChild(QComboBox, "child")
    child.setCurrentText("datarep-data")  # under /data already: refused, with the reason
    assert "already has a parent, /data" in dialog.findChild(QLabel, "child_error").text()
    assert not dialog.ok.isEnabled()
    child.setCurrentText("/data")
    assert dialog.ok.isEnabled()
    dialog.show_command.click()
    assert dialog.command.text() == "lkctl dependency create web /data --server lab1"
    dialog.ok.click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    qtbot.waitUntil(lambda: window.model.index_of("/data").parent().isValid(), timeout=10_000)
    assert window.model.index_of("/data").parent().data() == "web"
    assert window.model.rowCount() == 1
    assert "web now depends on /data" in window.message.text()


def test_delete_dependency_from_the_context_menu(qtbot, window: MainWindow) -> None:
    _app("web")
    backend = LabBackend()
    from core.operations import dependency
    from core.rules.dependency import DependencyRequest

    dependency.create(backend, DependencyRequest("lab1", "web", "/data"), local_administrator())
    backend.close()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: window.model.index_of("/data").parent().isValid(), timeout=10_000)
    _select(window, "datarep-data")  # a child only: the dependency on its parent
    menu = window.context_menu("resource")
    item = next(a for a in menu.actions() if a.objectName() == "delete_dependency")
    assert item.toolTip() == "/data no longer depends on datarep-data."
    menu.close()
    _select(window, "web")  # a parent: the dependency on one of its children
    menu = window.context_menu("resource")
    assert isinstance(menu, QMenu)
    item = next(a for a in menu.actions() if a.objectName() == "delete_dependency")
    assert item.isEnabled() and item.toolTip() == "web no longer depends on one of: /data."
    item.trigger()
    dialog = _opened(qtbot, window, DependencyDialog)
    assert isinstance(dialog, DependencyDialog)
    assert dialog.findChild(QComboBox, "parent").currentText() == "web"
    assert dialog.findChild(QComboBox, "child").currentText() == "/data"
    dialog.ok.click()
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=10_000)
    assert not window.model.index_of("/data").parent().isValid()


def test_an_operator_sees_both_dependency_items_disabled_with_the_reason(
    window: MainWindow,
) -> None:
    _select(window, "/data", "lab1")
    window.set_role(Role.OPERATOR)
    for text in ("Create Dependency", "Delete Dependency"):
        action = _menu(window, text)
        assert not action.isEnabled()
        assert action.toolTip() == (
            f"Your role is Operator; {text} needs the Administrator role. Reconnect with a "
            "role that allows it."
        )
    window.set_role(Role.ADMINISTRATOR)
    assert _menu(window, "Create Dependency").isEnabled()
    assert _menu(window, "Delete Dependency").isEnabled()  # /data depends on datarep-data


def test_accept_defaults_extends_an_app_on_ip_hierarchy(qtbot) -> None:  # type: ignore[no-untyped-def]
    from core.operations import dependency
    from core.rules.dependency import DependencyRequest

    lab = LabBackend()
    try:
        ip = create_kinds.defaults(lab, IP).request
        create_kinds.create(lab, ip, local_administrator())
        _app("web")
        dependency.create(lab, DependencyRequest("lab1", "web", ip.tag), local_administrator())
        wizard = ExtendWizard(
            prepare_now(lab, lab.snapshot(), tag="web"), lab, session=local_administrator()
        )
        qtbot.addWidget(wizard)
        wizard.show()
        wizard.button(QWizard.WizardButton.CustomButton1).click()  # Accept Defaults
        qtbot.waitUntil(lambda: wizard.currentId() == ExtendPage.PROGRESS, timeout=10_000)
        qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=30_000)
        on_lab2 = {r.tag: r for r in lab.snapshot().instances_on("lab2")}
        assert on_lab2[ip.tag].setting("address") == ip.address == "10.214.0.100/24"
        assert on_lab2[ip.tag].setting("interface") == "eth0"
        assert on_lab2["web"].setting("start") == "touch web.run"
        assert kits.addresses_up(lab.layout, "lab2") == []  # standby there: not up
        wizard.close()
    finally:
        lab.close()


def test_the_status_table_shows_each_kind_with_its_branch_status_as_a_badge(
    qtbot, window: MainWindow
) -> None:
    _app("web")
    qtbot.waitUntil(lambda: window.model.index_of("web").isValid(), timeout=10_000)

    def shown(tag: str) -> int:
        return window.model.index_of(tag).data(Qt.ItemDataRole.DecorationRole).cacheKey()

    assert shown("web") == icons.resource_icon("app", NodeStatus.NORMAL).cacheKey()
    assert shown("/data") == icons.resource_icon("filesystem", NodeStatus.NORMAL).cacheKey()
    assert shown("datarep-data") == icons.resource_icon("datakeeper", NodeStatus.NORMAL).cacheKey()
    # The badge, lower right, is the branch's status: green when normal, red when failed.
    normal = icons.resource_icon("ip", NodeStatus.NORMAL).pixmap(32, 32).toImage()
    failed = icons.resource_icon("ip", NodeStatus.FAILED).pixmap(32, 32).toImage()
    corner = (26, 29)
    assert normal.pixelColor(*corner).green() > normal.pixelColor(*corner).red()
    assert failed.pixelColor(*corner).red() > 200 > failed.pixelColor(*corner).green()
    assert normal.pixelColor(4, 12) == failed.pixelColor(4, 12)  # the kind's part: the same
    window.actions["documentation"].trigger()
    text = window.findChild(QWidget, "help_dialog").browser.toPlainText()
    assert "Generic Application" in text and "IP Address" in text


@pytest.mark.parametrize(
    ("mode", "shown"),
    [("3", "3 (3 restarts, then failover)"), ("yes", "yes (1 restart, then failover)"),
     ("no", "no (failover at once)")],
)  # fmt: skip
def test_the_restart_mode_is_shown_whole_in_the_properties_panel(
    qtbot, window: MainWindow, mode: str, shown: str
) -> None:
    backend = LabBackend()
    try:
        request = ResourceRequest(APP, "lab1", "web", start="true", stop="true", restart_mode=mode)
        create_kinds.create(backend, request, local_administrator())
    finally:
        backend.close()
    qtbot.waitUntil(lambda: window.cluster.find_tag("web") is not None, timeout=10_000)
    _select(window, "web")
    panel = window.properties_panel
    qtbot.waitUntil(lambda: panel.rows().get("Restart mode") == shown, timeout=10_000)
    tree = panel.tree
    item = next(
        tree.topLevelItem(i)
        for i in range(tree.topLevelItemCount())
        if tree.topLevelItem(i).text(0) == "Restart mode"
    )
    needed = tree.fontMetrics().horizontalAdvance(item.text(1))
    assert needed < tree.visualItemRect(item).width() - tree.columnWidth(0), (
        "the restart mode is cut off at the panel's default width"
    )
