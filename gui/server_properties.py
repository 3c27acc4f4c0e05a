"""Edit › Server › Properties: the Server Properties dialog (General, Comm Paths, Log).

General: the Shutdown Strategy and the Failover Confirmation per peer (with its timeout
and default action), and the failovers waiting for a confirmation. Comm Paths: every
path of the server, per peer, with its state. Log: the server's lines of the cluster's
log (:class:`gui.log_view.LogView`: read on a worker, then live through the window's
event bridge, filterable as View › Log is). OK / Apply / Cancel (see
:mod:`gui.form_dialog`).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSpinBox,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core import commands
from core.backend import Backend
from core.capabilities import SERVER_SETTINGS
from core.model import Cluster, ConfirmDefault, Server, ShutdownStrategy
from core.operations import properties as props
from core.permissions import Op
from core.rules import commpaths
from core.rules.server_properties import CONFIRM_TIMEOUT_MAX, CONFIRM_TIMEOUT_MIN
from core.session import Session
from gui.bridge import EventBridge
from gui.field_messages import NOTE_STYLE
from gui.form_dialog import FormDialog
from gui.log_view import LogView


def _apply(backend: Backend, request: Any, session: Session) -> str:
    return props.set_server(backend, request, session)


class ServerPropertiesDialog(FormDialog):
    """The properties of one server (objectName ``server_properties_dialog``)."""

    def __init__(
        self,
        cluster: Cluster,
        server: str,
        backend: Backend,
        session: Session,
        parent: QWidget | None = None,
        bridge: EventBridge | None = None,
    ) -> None:
        super().__init__(
            "server_properties", f"Server Properties: {server}", backend, session, _apply, parent
        )
        self.server_name = server
        self.cluster = cluster
        self._bridge = bridge
        self.peers = [s.name for s in cluster.servers if s.name != server]
        self.tabs = QTabWidget(objectName="server_properties_tabs")
        self.tabs.setAccessibleName("Server Properties")
        self.body.addWidget(self.tabs)
        self._build_general()
        self._build_comm_paths()
        self._build_log()
        fields: list[QWidget] = [self.strategy, self.timeout, self.default]
        fields += self.confirm.values()
        if SERVER_SETTINGS not in backend.capabilities:
            self.show_only(
                fields,
                f"The {backend.kind} cluster keeps these settings itself: they are shown, "
                "not changed, here.",
            )
        elif why := self.may_not(Op.SET_SERVER_PROPERTIES, "They are shown, not changed, here."):
            self.show_only(fields, why)
        self.refresh(cluster, initial=True)
        self.resize(640, 520)

    # -- tabs --------------------------------------------------------------------------------
    def _build_general(self) -> None:
        page = QWidget(objectName="general_tab")
        page.setAccessibleName("General")
        layout = QVBoxLayout(page)
        form = QFormLayout()
        self.state = QLabel(objectName="server_state")
        self.state.setAccessibleName("State")
        form.addRow("State:", self.state)
        self.strategy = QComboBox()
        self.strategy.addItems([s.value for s in ShutdownStrategy])
        self.strategy.setToolTip(
            "What a clean stop of this server does to the hierarchies in service on it: "
            "switch them over to the best standby, or take them out of service."
        )
        self.field_row(form, "Shutdown &Strategy:", self.strategy, "shutdown_strategy")
        layout.addLayout(form)
        box = QGroupBox("Failover Confirmation", objectName="confirm_failover_group")
        box.setAccessibleName("Failover Confirmation")
        inner = QFormLayout(box)
        note = QLabel(
            f"When on for a peer, a failover of a hierarchy from that peer to "
            f"{self.server_name} waits for your confirmation (Edit › Server › Confirm "
            f"Failover, or lkctl confirm-failover {self.server_name})."
        )
        note.setObjectName("confirm_failover_note")
        note.setAccessibleName("About Failover Confirmation")
        note.setWordWrap(True)
        note.setStyleSheet(NOTE_STYLE)
        inner.addRow(note)
        self.confirm: dict[str, QCheckBox] = {}
        for peer in self.peers:
            check = QCheckBox(f"Confirm failovers from {peer}")
            check.setObjectName(f"confirm_failover_{peer}")
            check.setAccessibleName(f"Confirm failovers from {peer}")
            inner.addRow("", check)
            self.watch(check)
            self.confirm[peer] = check
        inner.addRow("", self.error_for("confirm_failover"))
        self.timeout = QSpinBox()
        self.timeout.setRange(CONFIRM_TIMEOUT_MIN, CONFIRM_TIMEOUT_MAX)
        self.timeout.setSuffix(" s")
        self.field_row(inner, "Confirmation &timeout:", self.timeout, "confirm_timeout")
        self.default = QComboBox()
        self.default.addItems([d.value for d in ConfirmDefault])
        self.default.setToolTip("What happens when nobody answers within the timeout.")
        self.field_row(inner, "&Default action:", self.default, "confirm_default")
        layout.addWidget(box)
        self.pending = QLabel(objectName="pending_failovers")
        self.pending.setAccessibleName("Failovers waiting for a confirmation")
        self.pending.setWordWrap(True)
        layout.addWidget(self.pending)
        layout.addStretch(1)
        self.tabs.addTab(page, "&General")

    def _build_comm_paths(self) -> None:
        page = QWidget(objectName="comm_paths_tab")
        page.setAccessibleName("Comm Paths")
        layout = QVBoxLayout(page)
        self.paths = QTreeWidget(objectName="comm_paths_table")
        self.paths.setAccessibleName("Comm paths")
        self.paths.setColumnCount(5)
        self.paths.setHeaderLabels(
            ["Peer / path", "Local address", "Remote address", "Priority", "State"]
        )
        self.paths.setRootIsDecorated(True)
        layout.addWidget(self.paths)
        self.tabs.addTab(page, "&Comm Paths")

    def _build_log(self) -> None:
        page = QWidget(objectName="log_tab")
        page.setAccessibleName("Log")
        layout = QVBoxLayout(page)
        self.log_view = LogView(
            self.backend, self.cluster, self.server_name, self._bridge, page, fixed_server=True
        )
        self.log = self.log_view.text  # the lines shown, live
        self.log.setObjectName("server_log")
        self.log.setAccessibleName(f"LifeKeeper log of {self.server_name}")
        layout.addWidget(self.log_view)
        self.tabs.addTab(page, "&Log")

    # -- contents ----------------------------------------------------------------------------
    def _server(self, cluster: Cluster) -> Server | None:
        return cluster.server(self.server_name)

    def refresh(self, cluster: Cluster | None, *, initial: bool = False) -> None:
        """Show ``cluster``'s view of the server (the fields only when first shown or
        just applied: what the user is editing is kept)."""
        if cluster is None:
            return
        self.cluster = cluster
        server = self._server(cluster)
        if server is None:
            self.state.setText("not in the cluster any more")
            return
        self.state.setText(server.state.value)
        if initial:
            self.set_fields(server)
        waiting = [p for p in cluster.pending_failovers if p.to_server == self.server_name]
        self.pending.setText(
            "\n".join(
                f"Waiting for your confirmation: failover of {p.root_tag} from "
                f"{p.from_server} ({p.reason}); {p.default.value} at the timeout."
                for p in waiting
            )
        )
        self.pending.setVisible(bool(waiting))
        self._fill_paths(cluster)

    def set_fields(self, server: Server) -> None:
        self.strategy.setCurrentText(server.shutdown_strategy.value)
        for peer, check in self.confirm.items():
            check.setChecked(peer in server.confirm_failover_from)
        self.timeout.setValue(server.confirm_timeout)
        self.default.setCurrentText(server.confirm_default.value)
        self.update_command()

    def _fill_paths(self, cluster: Cluster) -> None:
        self.paths.clear()
        for view in commpaths.peers(cluster, self.server_name):
            top = QTreeWidgetItem([view.peer, "", "", "", view.text])
            self.paths.addTopLevelItem(top)
            for p in view.paths:
                top.addChild(
                    QTreeWidgetItem(
                        [
                            f"path {p.priority}",
                            p.local_address,
                            p.peer_address,
                            str(p.priority),
                            p.state.value,
                        ]
                    )
                )
        self.paths.expandAll()
        for column in range(self.paths.columnCount()):
            self.paths.resizeColumnToContents(column)

    def path_rows(self) -> list[list[str]]:
        """What the Comm Paths tab shows, row by row (peers, then their paths)."""
        rows = []
        for i in range(self.paths.topLevelItemCount()):
            top = self.paths.topLevelItem(i)
            rows.append([top.text(c) for c in range(5)])
            for j in range(top.childCount()):
                rows.append([top.child(j).text(c) for c in range(5)])
        return rows

    @Slot()
    def load_log(self) -> None:
        """Read the server's log lines again, on a worker."""
        self.log_view.reload()

    # -- the form ----------------------------------------------------------------------------
    def values(self) -> props.ServerPropertiesRequest:
        return props.ServerPropertiesRequest(
            self.server_name,
            self.strategy.currentText(),
            tuple(peer for peer, check in self.confirm.items() if check.isChecked()),
            self.timeout.value(),
            self.default.currentText(),
        )

    def command_line(self, values: Any) -> str:
        return commands.server_set(
            values.server,
            values.shutdown_strategy,
            list(values.confirm_failover_from),
            values.confirm_timeout,
            values.confirm_default,
            self.peers,
        )

    def after_apply(self, message: str) -> None:
        self.load_log()

    def _reveal(self, widget: QWidget) -> None:
        self.tabs.setCurrentIndex(0)


__all__ = ["ServerPropertiesDialog"]
