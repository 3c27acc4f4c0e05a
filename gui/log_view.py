"""A server's log (View › Log), live: :class:`LogView` is the reusable widget (Server
Properties' Log tab can embed it), :class:`LogDialog` the window View › Log opens.

The lines already kept are read on a worker (``Backend.server_log``); new ones come as
the watch writes them, through the window's :class:`~gui.bridge.EventBridge` batches
(the ``LogRows`` events), so the view follows without asking the backend again. The
filters (least level, resource) are core's (:mod:`core.serverlog`), applied to the lines
in memory: changing them does no I/O. Changing the server reads its lines again.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core import serverlog
from core.backend import Backend
from core.history import LogRow
from core.model import Cluster
from gui.bridge import EventBatch, EventBridge
from gui.checker import LatestOnly
from gui.widgets import command_line, read_only_text, toggle_command

EVERY_RESOURCE = "(every resource)"
MAX_LINES = 5000  # kept in the view; older ones drop off the top


class LogView(QWidget):
    """The log of one server, filterable by level and resource, following new lines.

    ``bridge``: the window's event bridge (new lines live); without one the view shows
    the lines kept when it opened (and when the server is changed).
    """

    def __init__(
        self,
        backend: Backend,
        cluster: Cluster,
        server: str,
        bridge: EventBridge | None = None,
        parent: QWidget | None = None,
        *,
        fixed_server: bool = False,
    ) -> None:
        """``fixed_server``: the view shows ``server`` only (no server chooser), as Server
        Properties' Log tab does."""
        super().__init__(parent)
        self.setObjectName("log_view")
        self.setAccessibleName("Server log")
        self.backend, self.cluster = backend, cluster
        self._rows: list[LogRow] = []  # every line of the server, oldest first
        self._early: list[LogRow] = []  # live lines that came while the server's were read
        self._loading = False
        self._build(server, fixed_server)
        self._reader = LatestOnly(self)
        self._reader.answered.connect(self._loaded)
        self._reader.failed.connect(self._load_failed)
        if bridge is not None:
            bridge.batch.connect(self._on_batch)
        self._load()

    def _build(self, server: str, fixed_server: bool) -> None:
        self.server = QComboBox(objectName="log_server")
        self.server.addItems([s.name for s in self.cluster.servers])
        self.server.setCurrentText(server)
        self.server.setAccessibleName("Server")
        self.level = QComboBox(objectName="log_level")
        self.level.addItems(list(serverlog.LEVELS))
        self.level.setAccessibleName("Least level shown")
        self.level.setToolTip("INFO: everything; WARNING: warnings and errors; ERROR: errors.")
        self.resource = QComboBox(objectName="log_resource")
        self.resource.setAccessibleName("Resource")
        self.resource.setToolTip("Only the lines that name this resource's tag.")
        tags = sorted({r.tag for h in self.cluster.hierarchies for r in h.resources})
        self.resource.addItems([EVERY_RESOURCE, *tags])
        bar = QHBoxLayout()
        for text, widget in (
            ("&Server:", self.server),
            ("&Level:", self.level),
            ("&Resource:", self.resource),
        ):
            if fixed_server and widget is self.server:
                widget.hide()
                continue
            label = QLabel(text)
            label.setBuddy(widget)
            bar.addWidget(label)
            bar.addWidget(widget)
        bar.addStretch(1)
        self.text = read_only_text("log_text", "The log's lines")
        self.text.setMaximumBlockCount(MAX_LINES)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.status = QLabel(objectName="log_status")
        self.status.setAccessibleName("Log status")
        self.command = command_line("The lkctl line that follows this same log (copyable).")
        self.show_command = QPushButton("Show &Command", objectName="show_command_button")
        self.show_command.setAccessibleName("Show Command")
        if fixed_server:  # inside a dialog that has a Show Command of its own
            self.show_command.setText("Show Log Co&mmand")
            self.show_command.setObjectName("log_show_command_button")
            self.show_command.setAccessibleName("Show Log Command")
        self.show_command.clicked.connect(self._toggle_command)
        refresh = QPushButton("&Refresh", objectName="refresh_log")
        refresh.setAccessibleName("Refresh the log")
        refresh.setToolTip("Read the server's lines again (new lines appear by themselves).")
        refresh.clicked.connect(self.reload)
        foot = QHBoxLayout()
        foot.addWidget(self.status, 1)
        foot.addWidget(refresh)
        foot.addWidget(self.show_command)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.text, 1)
        layout.addLayout(foot)
        layout.addWidget(self.command)
        self.server.currentTextChanged.connect(self._server_changed)
        self.level.currentTextChanged.connect(self._refilter)
        self.resource.currentTextChanged.connect(self._refilter)

    # -- what is shown ------------------------------------------------------------------------
    def log_filter(self) -> serverlog.LogFilter:
        resource = self.resource.currentText()
        return serverlog.LogFilter(
            self.server.currentText(),
            self.level.currentText(),
            "" if resource == EVERY_RESOURCE else resource,
        )

    def lines(self) -> list[str]:
        """The lines shown now, as lkctl log prints them."""
        text = self.text.toPlainText()
        return text.split("\n") if text else []

    @Slot()
    def _refilter(self) -> None:
        f = self.log_filter()
        self.command.setText(serverlog.command(f.server, f.level, f.resource))
        shown = serverlog.select(self._rows, f)
        self.text.setPlainText("\n".join(serverlog.format_row(r) for r in shown))
        self._follow()
        self._say(len(shown))

    def _follow(self) -> None:
        """Show the newest line from its start (not scrolled to the end of a long one)."""
        self.text.moveCursor(QTextCursor.MoveOperation.End)
        self.text.moveCursor(QTextCursor.MoveOperation.StartOfBlock)

    def _say(self, shown: int) -> None:
        if self._loading:
            self.status.setText("Reading the log…")
            return
        total = len(self._rows)
        self.status.setText(
            f"{shown} of {total} lines of {self.server.currentText()}'s log"
            + (" (filtered)" if shown != total else "")
        )

    # -- reading ----------------------------------------------------------------------------
    @Slot(str)
    def _server_changed(self, _server: str) -> None:
        self._load()

    @Slot()
    def reload(self) -> None:
        """Read the server's lines again (on a worker)."""
        self._load()

    def _load(self) -> None:
        self._loading = True
        self._rows, self._early = [], []
        self._refilter()
        backend, server = self.backend, self.server.currentText()
        self._reader.submit(lambda: (server, backend.server_log(server)))

    @Slot(object)
    def _loaded(self, answer: object) -> None:
        assert isinstance(answer, tuple)
        server, rows = answer
        if server != self.server.currentText():
            return
        last = rows[-1].id if rows else 0
        self._rows = [*rows, *(r for r in self._early if r.id > last)]
        self._early = []
        self._loading = False
        self._refilter()

    @Slot(str)
    def _load_failed(self, message: str) -> None:
        self._loading = False
        self.status.setText(f"Cannot read the log: {message}")

    @Slot(object)
    def _on_batch(self, batch: EventBatch) -> None:
        if not batch.log_rows:
            return
        mine = serverlog.for_server(batch.log_rows, self.server.currentText())
        if not mine:
            return
        if self._loading:
            self._early.extend(mine)
            return
        self._rows.extend(mine)
        if len(self._rows) > MAX_LINES:
            del self._rows[: len(self._rows) - MAX_LINES]
        f = self.log_filter()
        for row in serverlog.select(mine, f):
            self.text.appendPlainText(serverlog.format_row(row))
        self._follow()
        self._say(len(serverlog.select(self._rows, f)))

    @Slot()
    def _toggle_command(self) -> None:
        toggle_command(self.command)


class LogDialog(QDialog):
    """View › Log: a server's log in its own window (not modal: it follows the cluster)."""

    def __init__(
        self,
        backend: Backend,
        cluster: Cluster,
        server: str,
        bridge: EventBridge | None = None,
        parent: QWidget | None = None,
        *,
        fixed_server: bool = False,
    ) -> None:
        """``fixed_server``: the view shows ``server`` only (no server chooser), as Server
        Properties' Log tab does."""
        super().__init__(parent)
        self.setObjectName("log_dialog")
        self.setAccessibleName("Log")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.view = LogView(backend, cluster, server, bridge, self)
        self.view.server.currentTextChanged.connect(self._retitle)
        self._retitle(server)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Close).setObjectName("log_close")
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self.resize(900, 480)

    @Slot(str)
    def _retitle(self, server: str) -> None:
        self.setWindowTitle(f"Log of {server}")

    def open(self) -> None:
        self.setModal(False)
        self.show()
