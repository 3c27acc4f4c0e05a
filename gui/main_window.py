"""The LK Console main window: status table, panels, menus, toolbar, message bar.

Wiring (see gui/bridge.py)::

    backend.watch (its thread) ─┐
    operations (any thread) ────┴─▶ EventHub ──EventBridge──▶ batch (≤ 10/s) ──▶ _apply
    OperationRunner (QThreadPool) ──log/progress/finished──▶ output panel, message bar

``MainWindow(backend=None, hub=None, initial=None, spec=None)``: ``backend`` the cluster
it shows (it then belongs to the window, which closes it), else the one ``spec`` names
(default: ``$LKCONSOLE_CLUSTER``, else the lab), opened on a worker; ``hub`` the
in-process :class:`~core.events.EventHub` (default: a new one, :attr:`MainWindow.hub`);
``initial`` the cluster and log lines already read (:func:`gui.bridge.read_initial_state`),
shown from the first paint on; without it the window shows "Connecting…" until the
first snapshot.

Dialogs built elsewhere plug in through :attr:`MainWindow.actions`::

    window.actions.register("extend_hierarchy", handler)  # handler(preselection)

and run their operation off the GUI thread with :meth:`MainWindow.run_operation`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QPoint, QSettings, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QFontMetrics
from PySide6.QtWidgets import (
    QLineEdit,
    QMainWindow,
    QMenu,
    QSizePolicy,
    QToolBar,
    QWidget,
)

from core import availability as av
from core import connection, paths
from core.availability import Connection, Preselection, Selection
from core.backend import Backend, Watch
from core.events import EventHub
from core.files import make_private, private_dir
from core.model import Cluster, Hierarchy, Role
from core.properties import properties
from core.session import Session, local_user
from core.status import mirror_text
from gui import actions as act
from gui import icons, operations
from gui.actions import ActionRegistry
from gui.bridge import (
    BackendOpener,
    EventBatch,
    EventBridge,
    InitialState,
    Opened,
    close_in_background,
)
from gui.message_bar import MessageBar
from gui.output_panel import OutputPanel
from gui.properties_panel import PropertiesPanel
from gui.status_model import StatusModel
from gui.status_view import ICON_SIZE, StatusView
from gui.workers import OperationRunner, OperationWorker, Work

if TYPE_CHECKING:
    from core.errors import UnknownHostKey
    from gui.help_dialog import HelpDialog
    from gui.history_view import HistoryDialog

log = logging.getLogger(__name__)

APP_TITLE = "LK Console"
SETTINGS_VERSION = 1


def settings() -> QSettings:
    """User settings (window geometry, last choices) in user_config_dir (see save_settings)."""
    path = paths.config_dir() / "lkconsole.ini"
    return QSettings(str(path), QSettings.Format.IniFormat)


def sync_private(s: QSettings) -> None:
    """Write ``s`` to its file, and keep that file and its folder the owner's only."""
    s.sync()
    path = Path(s.fileName())
    if path.exists():
        private_dir(path.parent)
        make_private(path)


class MainWindow(QMainWindow):
    """The console of one cluster (the embedded lab), kept live from the store."""

    cluster_shown = Signal()  # after each snapshot reached the model
    batch_applied = Signal()  # after each update (snapshot, progress, log lines)

    def __init__(
        self,
        backend: Backend | None = None,
        hub: EventHub | None = None,
        initial: InitialState | None = None,
        spec: str | None = None,
        session: Session | None = None,
    ) -> None:
        super().__init__()
        self.setObjectName("main_window")
        self.setAccessibleName(APP_TITLE)
        self.spec = spec or (backend.name if backend is not None else connection.default_spec())
        self.setWindowTitle(f"{APP_TITLE} — {self.cluster_label}")
        self.setWindowIcon(icons.app_icon())
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
        )
        self._init_state(hub, session)
        self._make_bridge()
        self._make_widgets()
        self._build_actions()
        operations.install(self)  # every operation's dialog, on its action
        self._build_toolbar()
        self._build_menus()

        self.tree.selection_changed.connect(self._on_selection)
        self.tree.menu_requested.connect(self._on_menu_requested)
        self.tree.properties_requested.connect(self._on_properties_requested)
        self.actions.failed.connect(self._on_action_failed)

        self.resize(1024, 768)
        self.resizeDocks([self.properties_panel], [340], Qt.Orientation.Horizontal)
        self.resizeDocks([self.output_panel], [170], Qt.Orientation.Vertical)
        self._restore_settings()
        self._update_empty_text()
        self._update_context()
        self.message_bar.show_connection(self.connection)
        if backend is not None:
            self._adopt(backend, session or backend.local_session(), initial)
        else:  # open it on a worker: the window shows "Connecting…" meanwhile
            self._open(self.spec, None)

    def _init_state(self, hub: EventHub | None, session: Session | None) -> None:
        """What the window knows before it is connected."""
        self.hub = hub if hub is not None else EventHub()
        self.cluster: Cluster | None = None
        self.backend: Backend | None = None
        self._watch: Watch | None = None
        # Who works at the console (core.session): what wizards and operations check.
        # Until the backend says who the local user is there, nobody may change anything.
        self.session: Session = session or Session(local_user(), Role.GUEST)
        self.connection = Connection(connected=False, role=self.session.role)
        self._first_load = True
        self._showing_summary = False  # the message bar shows the connection's summary
        # The mirror texts the column widths were fitted to, by hierarchy id; whether the
        # next update looks at every hierarchy (the message bar forgot what it showed).
        self._mirror_texts: dict[int, dict[tuple[int, str], str]] = {}
        self._redo_all = True
        self._properties_key: object = None  # what the properties panel shows from
        self.connection_wanted = True  # connecting or connected (False after Disconnect)
        self._help: HelpDialog | None = None
        self.warmed_up = threading.Event()  # the dialogs' modules are loaded
        self._warming = False
        self.last_context_menu: QMenu | None = None
        self._waiting_told: set[tuple[int, float]] = set()  # failovers waiting, said already

    def _make_bridge(self) -> None:
        """The hub's events reach the GUI thread in batches."""
        self.bridge = EventBridge(self.hub, self)
        self.bridge.batch.connect(self._apply)
        # Stop listening to the hub even if the window is dropped without closing it.
        weakref.finalize(self, self.bridge.close)

    def _make_widgets(self) -> None:
        """The status table, the docks, the message bar, the operation runner."""
        self.model = StatusModel(self)
        self.tree = StatusView(self.model, self)
        self.proxy = self.tree.proxy
        self.setCentralWidget(self.tree)

        # Named "actions" as the other consoles' code expects; calling it still returns
        # QWidget.actions().
        self.actions = ActionRegistry(self)
        self.properties_panel = PropertiesPanel(self)
        self.output_panel = OutputPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.properties_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.output_panel)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)

        self.message_bar = MessageBar(self.statusBar())
        self.message = self.message_bar.message  # the last result (a QLabel)

        self.runner = OperationRunner(self)
        self.runner.busy_changed.connect(self._on_busy)

    # -- actions, menus, toolbar -----------------------------------------------------------
    def _build_actions(self) -> None:
        a = self.actions
        a.adopt(
            "toggle_output_panel", self.output_panel.toggleViewAction(), "Ctrl+Shift+O"
        ).setText("&Output Panel")
        a.adopt(
            "toggle_properties_panel", self.properties_panel.toggleViewAction(), "Ctrl+Shift+P"
        ).setText("&Properties Panel")
        a["exit"].triggered.connect(self.close)
        a["expand_all"].triggered.connect(self.tree.expandAll)
        a["collapse_all"].triggered.connect(self.tree.collapseAll)
        a["refresh"].triggered.connect(self.request_reload)
        a["find_tag"].triggered.connect(self._focus_filter)
        a["documentation"].triggered.connect(self.show_documentation)
        a["show_history"].triggered.connect(self.show_history)
        a["about"].triggered.connect(self._about)
        a.register(av.SERVER_PROPERTIES, self._show_server_properties)
        a.register(av.RESOURCE_PROPERTIES, self._show_resource_properties)
        a.register(av.DISCONNECT, self._disconnect_handler)
        for name, short in (
            (av.CREATE_HIERARCHY, "Create"),
            (av.EXTEND_HIERARCHY, "Extend"),
            (av.IN_SERVICE, "In Service"),
            (av.OUT_OF_SERVICE, "Out of Service"),
        ):
            a[name].setIconText(short)
        for name in (
            av.CONNECT,
            av.DISCONNECT,
            av.UNEXTEND_HIERARCHY,
            av.DELETE_HIERARCHY,
            av.RESOURCE_PROPERTIES,
            "refresh",
        ):
            a[name].setPriority(QAction.Priority.LowPriority)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        bar.setObjectName("menu_bar")
        bar.setAccessibleName("Menu bar")
        for name, title, entries in act.MENUS:
            menu = bar.addMenu(title)
            menu.setObjectName(name)
            menu.setAccessibleName(act.plain_text(title))
            menu.setToolTipsVisible(True)
            self.actions.fill_menu(menu, entries)

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main Toolbar", self)
        bar.setObjectName("main_toolbar")
        bar.setAccessibleName("Main toolbar")
        bar.setIconSize(QSize(20, 20))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        bar.setMovable(True)
        for entry in act.TOOLBAR:
            if entry is None:
                bar.addSeparator()
            else:
                action = self.actions[entry]
                bar.addAction(action)
                button = bar.widgetForAction(action)
                if button is not None:
                    button.setObjectName(f"{entry}_button")
                    button.setAccessibleName(act.plain_text(action.text()))
        spacer = QWidget(bar)
        spacer.setObjectName("toolbar_spacer")
        spacer.setAccessibleName("Spacer")
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        self.tag_filter = QLineEdit(bar)
        self.tag_filter.setObjectName("tag_filter")
        self.tag_filter.setAccessibleName("Filter by tag")
        self.tag_filter.setPlaceholderText("Filter by tag (Ctrl+F)")
        self.tag_filter.setToolTip("Show the hierarchies with a resource tag containing this text.")
        self.tag_filter.setClearButtonEnabled(True)
        self.tag_filter.addAction(
            icons.icon("action-verify"), QLineEdit.ActionPosition.LeadingPosition
        )
        self.tag_filter.setFixedWidth(220)
        self.tag_filter.textChanged.connect(self._on_filter)
        bar.addWidget(self.tag_filter)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.toolbar = bar
        toggle = self.actions.adopt("toggle_toolbar", bar.toggleViewAction())
        toggle.setText("&Toolbar")

    @property
    def operations(self) -> Any:
        """The operations' handlers (gui.operations), e.g. ``.last_dialog`` for tests."""
        return operations.of(self)

    @property
    def cluster_label(self) -> str:
        """What the console calls the cluster it shows ("the lab cluster")."""
        return connection.describe(self.spec).removeprefix("the ")

    # -- connection ------------------------------------------------------------------------
    def _open(self, spec: str, sign_in: object) -> None:
        """Open the cluster of ``spec`` on a worker (``sign_in(backend)`` gives the
        session there); :meth:`_adopt` shows it once it is open."""
        self.connection_wanted = True
        # Nothing that refers back to the window is kept on it (a cycle through a Python
        # object lets the garbage collector clear a window Qt still paints): the opener
        # lives in gui.bridge until it reports, and reaches the window through a weakref.
        window = weakref.ref(self)
        opener = BackendOpener(spec, sign_in)  # type: ignore[arg-type]
        opener.signals.opened.connect(lambda opened: _call(window, "_opened", opened))
        opener.signals.failed.connect(lambda message: _call(window, "_open_failed", message))
        opener.signals.host_key.connect(
            lambda error: _call(window, "_host_key_unknown", (error, spec, sign_in))
        )
        opener.start()

    def _host_key_unknown(self, asked: tuple[UnknownHostKey, str, object]) -> None:
        """The cluster's node showed a host key never seen: ask; on yes, open again."""
        from gui.dialogs import HostKeyQuestion

        error, spec, sign_in = asked
        question = HostKeyQuestion(error, self)
        window = weakref.ref(self)

        def answered(trusted: bool, message: str) -> None:
            target = window()
            if target is None or not target.connection_wanted:
                return
            if trusted:
                target._open(spec, sign_in)
            else:
                target._open_failed(message)

        question.answered.connect(answered)

    @Slot(object)
    def _opened(self, opened: Opened) -> None:
        if not self.connection_wanted:  # disconnected meanwhile
            close_in_background(opened.backend)
            return
        self.spec = opened.spec
        self._adopt(opened.backend, opened.session, opened.initial)

    @Slot(str)
    def _open_failed(self, message: str) -> None:
        self._show_failure(message)

    def _adopt(self, backend: Backend, session: Session, initial: InitialState | None) -> None:
        """Show ``backend`` (the window owns it from now on), as ``session``."""
        self._stop_watch()
        old, self.backend = self.backend, backend
        if old is not None and old is not backend:
            close_in_background(old)
        self.bridge.discard()
        self.session = session
        self.connection = self._connection(False)
        self.setWindowTitle(f"{APP_TITLE} — {self.cluster_label}")
        self._first_load = True
        shown = initial.cluster if initial is not None else None
        last_log = initial.log_rows[-1].id if initial is not None and initial.log_rows else 0
        if initial is not None:
            self._apply(EventBatch(cluster=initial.cluster))
            self.output_panel.add_rows(initial.log_rows)
        # The window shows that state already: watch once the event loop runs, so that
        # the watch's thread does not take the interpreter from building the window.
        QTimer.singleShot(0, self, functools.partial(self._start_watch, backend, shown, last_log))
        self.message_bar.show_connection(self.connection)
        self._update_empty_text()
        self._update_context()

    def _connection(self, connected: bool) -> Connection:
        backend = self.backend
        return Connection(
            connected=connected and backend is not None,
            role=self.session.role,
            cluster_name=connection.short_name(self.spec),
            capabilities=backend.capabilities if backend is not None else frozenset(),
        )

    def _start_watch(self, backend: Backend, shown: Cluster | None, last_log: int) -> None:
        if self.backend is not backend or not self.connection_wanted or self._watch is not None:
            return  # replaced, disconnected or closed meanwhile
        self._watch = backend.watch(self.hub, shown=shown, last_log_id=last_log)
        weakref.finalize(self, self._watch.stop)

    def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    def connect_cluster(self, spec: str | None = None, sign_in: object = None) -> None:
        """Connect to the cluster of ``spec`` (default: the one shown), as the user
        ``sign_in(backend)`` says (default: the local user), opened on a worker."""
        spec = spec or self.spec
        self.show_result(f"Connecting to {connection.describe(spec)}…", ok=None)
        self.connection = Connection(connected=False, role=self.connection.role)
        self.message_bar.show_connection(self.connection)
        self._open(spec, sign_in)
        self._update_empty_text()
        self._update_context()

    def adopt(self, opened: Opened) -> None:
        """Show a cluster opened elsewhere (File › Connect opened it, signed in)."""
        self.connection_wanted = True
        self.spec = opened.spec
        self._adopt(opened.backend, opened.session, opened.initial)

    def disconnect_cluster(self) -> None:
        """Stop watching the cluster, close it, and empty the window."""
        if not self.connection_wanted:
            return
        self.connection_wanted = False
        self._stop_watch()
        self.bridge.discard()
        if self.backend is not None:
            close_in_background(self.backend)
            self.backend = None
        self.connection = Connection(connected=False, role=self.connection.role)
        self.model.set_cluster(Cluster((), ()))
        self.cluster = None
        self.message_bar.show_connection(self.connection)
        self.message_bar.show_resyncs(None)
        self.show_result(f"Disconnected from {connection.describe(self.spec)}.", ok=None)
        self._update_empty_text()
        self._update_context()

    def set_role(self, role: Role) -> None:
        """The session's role (Guest, Operator, Administrator): what may be done."""
        self.connection = dataclasses.replace(self.connection, role=role)
        self.session = Session(self.session.user, role)
        self.message_bar.show_connection(self.connection)
        self._update_context()

    def request_reload(self) -> None:
        """Read the cluster again now (after this process changed it)."""
        if self.connection_wanted and self._watch is not None:
            self._watch.reload()

    # -- operations ------------------------------------------------------------------------
    def run_operation(
        self,
        operation: str,
        work: Work,
        success: str | None = None,
        prepare: Callable[[OperationWorker], object] | None = None,
    ) -> OperationWorker:
        """Run ``work(reporter)`` on a worker thread, showing its log and result.

        While it runs, a busy indicator shows; its log lines go to the output panel; at
        the end the message bar shows the result and the store is read again.
        ``prepare(worker)`` runs before the worker starts (connect to it there).
        """
        panel = self.output_panel  # not self: a lambda must not keep the window alive
        bar = self.message_bar

        def connect(worker: OperationWorker) -> None:
            signals = worker.signals
            signals.log.connect(lambda level, text, op=operation: panel.add_live(op, level, text))
            signals.progress.connect(bar.set_progress)
            signals.finished.connect(self._on_operation_finished)
            if prepare is not None:
                prepare(worker)

        return self.runner.start(operation, work, success, connect)

    @Slot(bool, str)
    def _on_operation_finished(self, ok: bool, message: str) -> None:
        self.show_result(message, ok)
        self.request_reload()

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        names = ", ".join(w.operation for w in self.runner.running())
        self.message_bar.set_busy(busy, f"Running: {names}" if names else "")

    @Slot(str)
    def _on_action_failed(self, message: str) -> None:
        self.show_result(message, ok=False)

    def show_result(self, text: str, ok: bool | None = True) -> None:
        """The message bar's last result."""
        self._showing_summary = False
        self.message_bar.show_result(text, ok)

    def _show_summary(self, cluster: Cluster) -> None:
        """The connection's result, kept current until another result replaces it."""
        alive = sum(1 for s in cluster.servers if s.state.is_alive)
        count = len(cluster.hierarchies)
        noun = "hierarchy" if count == 1 else "hierarchies"
        self.show_result(
            f"Connected to the {self.cluster_label}: {alive} of {len(cluster.servers)} servers "
            "alive, "
            f"{count} resource {noun}.",
            ok=True if alive == len(cluster.servers) else None,
        )
        self._showing_summary = True

    # -- updates ---------------------------------------------------------------------------
    @Slot(object)
    def _apply(self, batch: EventBatch) -> None:
        """One coalesced update: snapshot, live progress, log lines, results."""
        if batch.cluster is not None and self.connection_wanted:
            self.model.set_cluster(batch.cluster)
            if not self.connection.connected:
                self.connection = self._connection(True)
                self.message_bar.show_connection(self.connection)
        for event in batch.progress.values():
            self.model.apply_progress(event)
        for line in batch.log_lines:
            self.output_panel.add_live(line.operation, line.level, line.text)
        if batch.log_rows and self.connection_wanted:
            self.output_panel.add_rows(batch.log_rows)
        for message in batch.failures:
            self._show_failure(message)
        for finished in batch.finished:
            self.show_result(finished.message, finished.ok)
        if batch.reload:
            self.request_reload()
        self.cluster = self.model.cluster() if self.connection.connected else None
        if batch.cluster is not None and self.cluster is not None:
            if self._first_load:
                self._first_show(self.cluster)
            elif self._showing_summary:
                self._show_summary(self.cluster)
        if batch.cluster is not None and self.cluster is not None:
            self._tell_waiting_failovers(self.cluster)
        changed = self._take_changes()
        self._fit_resync_columns(changed)
        self.message_bar.show_resyncs(self.cluster, changed)
        self._update_empty_text()
        self._update_context()
        if batch.cluster is not None:
            self.cluster_shown.emit()
        self.batch_applied.emit()

    def _tell_waiting_failovers(self, cluster: Cluster) -> None:
        """A failover newly waiting for the administrator's confirmation: the message bar
        says so (the output panel has the lines too)."""
        waiting = {(p.hierarchy_id, p.asked): p for p in cluster.pending_failovers}
        new = [p for key, p in waiting.items() if key not in self._waiting_told]
        self._waiting_told = set(waiting)
        if new:
            p = new[-1]
            self.show_result(
                f"Failover of {p.root_tag} from {p.from_server} to {p.to_server} waits for your "
                f"confirmation: Edit › Server › Confirm Failover (lkctl confirm-failover "
                f"{p.to_server}); at the timeout it will {p.default.value}.",
                ok=False,
            )

    def _take_changes(self) -> dict[int, Hierarchy | None] | None:
        """The hierarchies shown differently since the last update, by id (None: gone),
        or None when any may have changed: what depends on them is redone for those."""
        if self.cluster is None:
            self._redo_all = True  # the message bar forgets what it showed
            return None
        ids = self.model.take_changes()
        if ids is None or self._redo_all:
            self._redo_all = False
            return None
        return {i: self.model.hierarchy(i) for i in ids}

    def _first_show(self, cluster: Cluster) -> None:
        if not self.warmed_up.is_set() and not self._warming:
            # What the dialogs import, loaded meanwhile off the GUI thread.
            self._warming = True
            threading.Thread(target=_warm_up, args=(self.warmed_up,), name="warm_up").start()
        self._first_load = False
        self.tree.expandAll()
        self._size_columns()
        self._show_summary(cluster)

    def _size_columns(self) -> None:
        header = self.tree.header()
        names = ",".join(s.name for s in self.model.servers)
        saved = settings().value("status_tree/header")
        if (
            isinstance(saved, QByteArray)
            and settings().value("status_tree/servers") == names
            and header.restoreState(saved)
        ):
            self.tree.sort_by(header.sortIndicatorSection(), header.sortIndicatorOrder())
            return
        metrics = QFontMetrics(self.tree.font())
        self.tree.resizeColumnToContents(0)
        self.tree.setColumnWidth(0, min(max(self.tree.columnWidth(0) + 12, 150), 320))
        for column in range(1, self.model.columnCount()):
            title = str(self.model.headerData(column, Qt.Orientation.Horizontal))
            width = metrics.horizontalAdvance(title) + ICON_SIZE + 24
            self.tree.setColumnWidth(column, max(width, 120))

    def _fit_resync_columns(self, changed: dict[int, Hierarchy | None] | None) -> None:
        """Widen a server column whose mirror text (a resync's progress, "Out of Sync (Wait
        for Previous Source)") would be cut (never narrows).

        Only the texts that changed are measured: those of the ``changed`` hierarchies
        (every hierarchy when None) that differ from what was measured last.
        """
        if self.cluster is None:
            return
        if changed is None:
            self._mirror_texts.clear()
            changed = {h.id: h for h in self.cluster.hierarchies}
        metrics: QFontMetrics | None = None
        last = self.tree.header().count() - 1  # the last column stretches
        for hid, h in changed.items():
            measured = self._mirror_texts.pop(hid, {})
            if h is None:
                continue
            texts = {
                (m.resource_id, t.server): mirror_text(t) for m in h.mirrors for t in m.targets
            }
            if texts:
                self._mirror_texts[hid] = texts
            for (rid, server), text in texts.items():
                column = self.model.column_of(server)
                if measured.get((rid, server)) == text or column is None or column == last:
                    continue
                if metrics is None:
                    metrics = QFontMetrics(self.tree.font())
                needed = metrics.horizontalAdvance(text) + ICON_SIZE + 16
                if self.tree.columnWidth(column) < needed:
                    self.tree.setColumnWidth(column, needed)

    @Slot(str)
    def _show_failure(self, message: str) -> None:
        self.show_result(f"Error: {message}", ok=False)
        log.error("%s", message)

    # -- selection and context -------------------------------------------------------------
    @Slot(object)
    def _on_selection(self, _selection: Selection) -> None:
        self._update_context()

    def selection(self) -> Selection:
        return self.tree.selection()

    def _update_context(self) -> None:
        """The actions' enabled state and the properties panel, for the selection.

        Each is redone only when what it reads changed: the selection, the connection,
        or the part of the cluster it reads for that selection (:func:`act.context`).
        """
        self.actions["show_history"].setEnabled(self.backend is not None)
        selection = self.tree.selection()
        seen = act.context(self.cluster, selection, self.model.hierarchy)
        self.actions.update_context(seen, selection, self.connection)
        key = (None if seen is None else (seen.servers, seen.hierarchies), selection)
        if key != self._properties_key:
            self._properties_key = key
            self.properties_panel.show_properties(properties(seen, selection))

    @Slot(str, QPoint)
    def _on_menu_requested(self, kind: str, pos: QPoint) -> None:
        menu = self.context_menu(kind)
        self.last_context_menu = menu
        menu.popup(pos)

    @Slot(str)
    def _on_properties_requested(self, kind: str) -> None:
        """A double-click: Server Properties on a header, Resource Properties on a cell."""
        name = av.SERVER_PROPERTIES if kind == "server" else av.RESOURCE_PROPERTIES
        self.actions.trigger(name)

    def context_menu(self, kind: str) -> QMenu:
        """The context menu for ``kind`` ("cell", "resource", "server", "empty", ...)."""
        entries = {
            "cell": act.CELL_MENU,
            "resource": act.RESOURCE_MENU,
            "server": act.SERVER_MENU,
            "empty": act.EMPTY_MENU,
            "tag_header": (),
        }[kind]
        menu = self.actions.context_menu(self, f"{kind}_menu", entries)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if kind in ("server", "tag_header"):
            self._add_sort_actions(menu, kind)
        server = self.tree.selection().server
        sub = menu.findChild(QMenu, "cell_server_menu")
        if sub is not None and server is not None:
            sub.setTitle(f"&Server {server}")
            sub.setAccessibleName(f"Server {server}")
        return menu

    def _add_sort_actions(self, menu: QMenu, kind: str) -> None:
        if kind == "server":
            server = self.tree.selection().server
            column = self.model.column_of(server) if server else None
            if column is None:
                return
            menu.addSeparator()
            sort = menu.addAction(f"Sort Rows by State on {server}")
            sort.setObjectName("sort_by_server_state")
            tree = self.tree
            sort.triggered.connect(lambda _c=False, c=column: tree.sort_by(c))
            return
        for name, text, order in (
            ("sort_by_tag", "Sort by Tag (A to Z)", Qt.SortOrder.AscendingOrder),
            ("sort_by_tag_descending", "Sort by Tag (Z to A)", Qt.SortOrder.DescendingOrder),
        ):
            action = menu.addAction(text)
            action.setObjectName(name)
            action.triggered.connect(lambda _c=False, o=order, t=self.tree: t.sort_by(0, o))

    @Slot(str)
    def _on_filter(self, text: str) -> None:
        self.proxy.set_tag_filter(text)
        self._update_empty_text()

    def _update_empty_text(self) -> None:
        """What the status table says when it has no row to show."""
        text = self.tag_filter.text().strip()
        if not self.connection_wanted:
            message = "Not connected. Use File › Connect to see the cluster."
        elif not self.connection.connected:
            message = f"Connecting to the {self.cluster_label}…"
        elif text:
            message = f"No resource tag contains “{text}”."
        else:
            message = "No resource hierarchy yet: Edit › Resource › Create Resource Hierarchy."
        self.tree.set_empty_text(message)

    @Slot()
    def _focus_filter(self) -> None:
        self.toolbar.show()
        self.tag_filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.tag_filter.selectAll()

    # -- built-in handlers -----------------------------------------------------------------
    def _disconnect_handler(self, _pre: Preselection) -> None:
        self.disconnect_cluster()

    def _show_server_properties(self, pre: Preselection) -> None:
        if pre.server is not None and self.tree.selection() != Selection(server=pre.server):
            self.tree.select_server(pre.server)
        self._raise_dock(self.properties_panel)

    def _show_resource_properties(self, pre: Preselection) -> None:
        if pre.hierarchy_id is not None and pre.resource_id is not None:
            self.tree.select_resource(pre.hierarchy_id, pre.resource_id)
        self._raise_dock(self.properties_panel)

    def _raise_dock(self, dock: QWidget) -> None:
        dock.show()
        dock.raise_()

    @Slot()
    def show_history(self) -> HistoryDialog | None:
        """View › History: the operations run on this cluster."""
        from gui.history_view import HistoryDialog  # on demand: not needed to start

        if self.backend is None:
            self.show_result("Not connected to a cluster: use File › Connect first.", ok=False)
            return None
        dialog = HistoryDialog(self.backend, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.history_dialog = dialog
        dialog.show()
        return dialog

    @Slot()
    def show_documentation(self) -> HelpDialog:
        from gui.help_dialog import HelpDialog  # on demand: not needed to start

        if self._help is None:
            self._help = HelpDialog(self)
        self._help.show()
        self._help.raise_()
        return self._help

    @Slot()
    def _about(self) -> None:
        from importlib import metadata  # only here: it is slow to import

        from PySide6.QtWidgets import QMessageBox

        try:
            version = metadata.version("lkconsole")
        except metadata.PackageNotFoundError:
            version = "development"
        QMessageBox.about(
            self,
            f"About {APP_TITLE}",
            f"<b>{APP_TITLE}</b> {version}<p>A console for high-availability clusters "
            "protecting DataKeeper replicated volumes, in the image of the LifeKeeper for "
            "Linux GUI.</p>"
            f"<p>Data directory: {paths.data_dir()}<br>Settings: {paths.config_dir()}</p>"
            "<p>MIT licence.</p>",
        )

    # -- settings --------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = settings()
        geometry = s.value("main_window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = s.value("main_window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state, SETTINGS_VERSION)

    def _save_settings(self) -> None:
        s = settings()
        s.setValue("main_window/geometry", self.saveGeometry())
        s.setValue("main_window/state", self.saveState(SETTINGS_VERSION))
        if not self._first_load and self.model.servers:
            s.setValue("status_tree/header", self.tree.header().saveState())
            s.setValue("status_tree/servers", ",".join(x.name for x in self.model.servers))
        sync_private(s)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._save_settings()
        self.bridge.close()
        self._stop_watch()
        self.connection_wanted = False
        if self.backend is not None:
            close_in_background(self.backend)
            self.backend = None
        if self._help is not None:
            self._help.close()
        self.finish_warm_up()
        super().closeEvent(event)

    def finish_warm_up(self, timeout: float = 10.0) -> None:
        """Wait for the warm-up thread: one still importing while the process exits can
        crash it."""
        if self._warming:
            self.warmed_up.wait(timeout)


def _call(window: weakref.ref[MainWindow], method: str, value: object) -> None:
    """``window.method(value)``, if the window is still there."""
    target = window()
    if target is not None:
        getattr(target, method)(value)


def _warm_up(done: threading.Event) -> None:
    try:
        operations.preload()
    finally:
        done.set()


__all__ = ["APP_TITLE", "MainWindow", "settings"]
