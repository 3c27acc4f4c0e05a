"""After the first paint the GUI thread does no I/O: proved with an audit hook.

``sys.addaudithook`` sees every ``open`` (files, and module imports), directory listing,
process start and database connection Python makes. Installed once the window has
painted (and loaded what its dialogs import, off the GUI thread), it records those made
on the GUI thread while the test walks every wizard and dialog: Extend with Next and with
Accept Defaults, Create, each operation dialog, Server and Resource Properties, the
comm paths' dialogs, Connect, History. It must record none.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableView,
)

from core.backends.lab import LabBackend
from core.backends.lab.store import Store
from core.model import MirrorState
from gui.commpath_dialogs import CreateCommPathDialog, DeleteCommPathDialog
from gui.create_wizard import CreateWizard
from gui.dependency_dialog import DependencyDialog
from gui.dialogs import ConnectDialog, OperationDialog
from gui.extend_wizard import ExtendWizard, Page
from gui.log_view import LogDialog
from gui.main_window import MainWindow
from gui.resize_dialog import ResizeDialog
from gui.resource_properties import ResourcePropertiesDialog
from gui.server_properties import ServerPropertiesDialog
from tests.gui.lab_states import extend_seed

WATCHED = {"open", "os.listdir", "os.scandir", "subprocess.Popen", "sqlite3.connect"}
pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support grabbing the keyboard")


class GuiThreadIO:
    """The watched audit events raised on the GUI thread while recording."""

    def __init__(self) -> None:
        self.gui = threading.get_ident()
        self.recording = False
        self.events: list[tuple[str, str]] = []

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        if self.recording and event in WATCHED and threading.get_ident() == self.gui:
            self.events.append((event, repr(args)[:200]))


_HOOK = GuiThreadIO()
sys.addaudithook(_HOOK)  # a hook cannot be removed: it records only when asked


@pytest.fixture
def recording() -> Iterator[GuiThreadIO]:
    _HOOK.gui = threading.get_ident()
    _HOOK.events.clear()
    _HOOK.recording = True
    yield _HOOK
    _HOOK.recording = False


def _window(qtbot) -> MainWindow:  # type: ignore[no-untyped-def]
    LabBackend().close()  # the lab, made
    with Store() as store:  # extended and in sync: every dialog has something to do
        extend_seed(store, state=MirrorState.TARGET)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.cluster is not None, timeout=10_000)
    qtbot.waitUntil(window.warmed_up.is_set, timeout=20_000)
    return window


def _opened(qtbot, window: MainWindow, kind: type) -> object:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: isinstance(window.operations.last_dialog, kind), timeout=10_000)
    dialog = window.operations.last_dialog
    window.operations.last_dialog = None
    return dialog


def _select(window: MainWindow, tag: str, server: str | None = None) -> None:
    r = window.cluster.find_tag(tag)
    assert r is not None
    assert window.tree.select_resource(r.hierarchy_id, r.resource_id, server)


def _walk_extend(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    _select(window, "/data")
    window.actions["extend_hierarchy"].trigger()
    wizard = _opened(qtbot, window, ExtendWizard)
    assert isinstance(wizard, ExtendWizard)
    wizard.next()  # Pre-Extend
    page = wizard.currentPage()
    page.findChild(QComboBox, "target_server").setCurrentText("lab3")  # new defaults
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
    wizard.next()  # the checks, on a worker
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
    wizard.next()  # the Extend page: the bitmap location probed on a worker
    assert wizard.currentId() == Page.EXTEND
    wizard.currentPage().findChild(QCheckBox, "bitmap_none").setChecked(True)
    wizard.currentPage().findChild(QCheckBox, "bitmap_none").setChecked(False)
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
    wizard.back()
    wizard.back()
    wizard.reject()
    # Accept Defaults: every check and the extend itself, in one click.
    window.actions["extend_hierarchy"].trigger()
    fast = _opened(qtbot, window, ExtendWizard)
    assert isinstance(fast, ExtendWizard)
    fast.accept_defaults()
    qtbot.waitUntil(lambda: fast.progress.succeeded, timeout=30_000)
    fast.next()
    fast.accept()


def _walk_create(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.actions["create_hierarchy"].trigger()
    wizard = _opened(qtbot, window, CreateWizard)
    assert isinstance(wizard, CreateWizard)
    wizard.where.server.setCurrentText("lab2")  # new defaults, from that server's disks
    for _ in range(3):  # the recovery kit (DataKeeper), where, what
        qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
        wizard.next()
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=20_000)
    wizard.next()
    wizard.accept()


def _walk_dialogs(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    walks = [
        ("/data", None, "unextend_hierarchy"),
        ("/data", None, "delete_hierarchy"),
        ("/data", "lab2", "in_service"),
        ("/data", None, "out_of_service"),
        ("datarep-data", "lab2", "pause_mirror"),
        ("datarep-data", "lab2", "full_resync"),
        ("datarep-data", "lab3", "full_resync"),
        ("datarep-data", "lab3", "speed_limit"),
        ("datarep-data", "lab2", "verify_mirror"),
    ]
    for tag, server, action in walks:
        _select(window, tag, server)
        assert window.actions[action].isEnabled(), action
        window.actions[action].trigger()
        dialog = _opened(qtbot, window, OperationDialog)
        assert isinstance(dialog, OperationDialog)
        dialog.findChild(QPushButton, "show_command_button").click()
        _wait_for_what_if(qtbot, dialog)
        dialog.reject()
    # One of them for real: the speed limit, run on a worker.
    _select(window, "datarep-data", "lab3")
    window.actions["speed_limit"].trigger()
    dialog = _opened(qtbot, window, OperationDialog)
    assert isinstance(dialog, OperationDialog)
    dialog.findChild(QPushButton, "operation_ok").click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=20_000)
    window.tree.select_server("lab3")
    for action in ("stop_server",):
        window.actions[action].trigger()
        server_dialog = _opened(qtbot, window, OperationDialog)
        assert isinstance(server_dialog, OperationDialog)
        _wait_for_what_if(qtbot, server_dialog)
        server_dialog.reject()


def _walk_kits(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    # An IP address through the wizard, for real (its create runs on a worker).
    window.actions["create_hierarchy"].trigger()
    wizard = _opened(qtbot, window, CreateWizard)
    assert isinstance(wizard, CreateWizard)
    wizard.kind_page.kind.setCurrentIndex(1)
    wizard.next()
    wizard.currentPage().findChild(QComboBox, "server").setCurrentText("lab2")
    wizard.currentPage().findChild(QComboBox, "server").setCurrentText("lab1")
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
    wizard.next()
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=20_000)
    wizard.next()
    wizard.accept()
    # The Generic Application page: typed, checked, left.
    window.actions["create_hierarchy"].trigger()
    wizard = _opened(qtbot, window, CreateWizard)
    assert isinstance(wizard, CreateWizard)
    wizard.kind_page.kind.setCurrentIndex(2)
    wizard.next()
    wizard.currentPage().findChild(QLineEdit, "start").setText("true")
    wizard.currentPage().findChild(QComboBox, "restart_mode").setCurrentText("no")
    wizard.reject()
    # Create Dependency and Delete Dependency: every choice checked, nothing run.
    qtbot.waitUntil(lambda: window.model.index_of("ip-10.214.0.100").isValid(), timeout=10_000)
    for tag, action in (("ip-10.214.0.100", "create_dependency"), ("/data", "delete_dependency")):
        _select(window, tag, "lab1")
        window.actions[action].trigger()
        dialog = _opened(qtbot, window, DependencyDialog)
        assert isinstance(dialog, DependencyDialog)
        child = dialog.findChild(QComboBox, "child")
        for i in range(child.count()):
            child.setCurrentIndex(i)
        dialog.findChild(QComboBox, "server").setCurrentText("lab2")
        dialog.show_command.click()
        dialog.reject()


def _walk_properties(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """Server Properties (its log read, a change applied), Resource Properties, the comm
    paths' dialogs: what they read and write runs on workers."""
    window.tree.select_server("lab2")
    window.actions["server_properties"].trigger()
    server = _opened(qtbot, window, ServerPropertiesDialog)
    assert isinstance(server, ServerPropertiesDialog)
    qtbot.waitUntil(lambda: "lab2" in server.log.toPlainText(), timeout=10_000)
    for index in range(server.tabs.count()):
        server.tabs.setCurrentIndex(index)
    server.findChild(QComboBox, "shutdown_strategy").setCurrentText("do not switchover")
    server.findChild(QPushButton, "apply_button").click()
    qtbot.waitUntil(lambda: not server.running and server.last_message != "", timeout=20_000)
    server.reject()
    _select(window, "datarep-data", "lab1")
    window.actions["resource_properties"].trigger()
    resource = _opened(qtbot, window, ResourcePropertiesDialog)
    assert isinstance(resource, ResourcePropertiesDialog)
    resource.findChild(QPushButton, "show_command_button").click()
    resource.reject()
    for action, kind in (
        ("create_comm_path", CreateCommPathDialog),
        ("delete_comm_path", DeleteCommPathDialog),
    ):
        assert window.actions[action].isEnabled(), window.actions[action].toolTip()
        window.actions[action].trigger()
        dialog = _opened(qtbot, window, kind)
        assert isinstance(dialog, kind)
        dialog.findChild(QComboBox, "peer").setCurrentIndex(1)
        dialog.reject()


def _walk_resize_and_log(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """Resize Mirror (its checks on a worker as the size is typed) and View › Log."""
    _select(window, "datarep-data")
    window.actions["resize_mirror"].trigger()
    resize = window.operations.last_dialog
    assert isinstance(resize, ResizeDialog)
    resize.findChild(QLineEdit, "size").setText("32M")  # refused under the field
    qtbot.waitUntil(lambda: "cannot shrink" in resize.findChild(QLabel, "size_error").text())
    resize.findChild(QLineEdit, "size").setText("128M")
    qtbot.waitUntil(resize.ok.isEnabled, timeout=10_000)
    resize.reject()
    window.tree.select_server("lab2")
    window.actions["show_log"].trigger()
    log_dialog = window.operations.last_dialog
    assert isinstance(log_dialog, LogDialog)
    status = log_dialog.view.findChild(QLabel, "log_status")
    qtbot.waitUntil(lambda: "lines of lab2's log" in status.text(), timeout=10_000)
    log_dialog.view.findChild(QComboBox, "log_level").setCurrentText("WARNING")
    log_dialog.view.findChild(QComboBox, "log_server").setCurrentText("lab3")  # read again
    qtbot.waitUntil(lambda: "lines of lab3's log" in status.text(), timeout=10_000)
    log_dialog.close()


def _wait_for_what_if(qtbot, dialog: OperationDialog) -> None:  # type: ignore[no-untyped-def]
    """A confirmation with a plan page: its what-if is computed (on a worker)."""
    box = dialog.findChild(QPlainTextEdit, "what_if")
    if box is not None:
        qtbot.waitUntil(lambda: box.toPlainText() != "", timeout=10_000)


def _walk_connect_and_history(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.actions["disconnect"].trigger()
    window.actions["connect"].trigger()
    dialog = window.operations.last_dialog
    assert isinstance(dialog, ConnectDialog)
    qtbot.waitUntil(lambda: dialog.keyring_read, timeout=10_000)
    dialog.findChild(QPushButton, "connect_ok").click()
    qtbot.waitUntil(lambda: window.cluster is not None, timeout=10_000)
    history = window.show_history()
    assert history is not None
    table = history.findChild(QTableView, "history_table")
    qtbot.waitUntil(lambda: table.model().rowCount() > 0, timeout=10_000)
    history.close()


def test_walking_every_wizard_and_dialog_does_no_io_on_the_gui_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    window = _window(qtbot)
    _HOOK.gui = threading.get_ident()
    _HOOK.events.clear()
    _HOOK.recording = True
    try:
        _walk_extend(qtbot, window)
        _walk_create(qtbot, window)
        _walk_dialogs(qtbot, window)
        _walk_kits(qtbot, window)
        _walk_properties(qtbot, window)
        _walk_resize_and_log(qtbot, window)
        _walk_connect_and_history(qtbot, window)
    finally:
        _HOOK.recording = False
    assert _HOOK.events == [], "\n".join(map(str, _HOOK.events))


def test_the_hook_does_see_io_on_the_gui_thread(qtbot, recording: GuiThreadIO) -> None:  # type: ignore[no-untyped-def]
    with open(__file__, "rb"):
        pass
    assert recording.events and recording.events[0][0] == "open"
