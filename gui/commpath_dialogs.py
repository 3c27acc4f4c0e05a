"""Edit › Server › Create Comm Path and Delete Comm Path."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from core import commands
from core.backend import Backend
from core.model import Cluster
from core.operations import commpath as commpath_ops
from core.session import Session
from gui.form_dialog import FormDialog, Run


def _create(backend: Backend, request: Any, session: Session) -> str:
    return commpath_ops.create(backend, request, session)


def _delete(backend: Backend, request: Any, session: Session) -> str:
    return commpath_ops.delete(backend, request, session)


class _PairDialog(FormDialog):
    """A server and a peer (the peer list follows the server), below a note."""

    def __init__(
        self,
        name: str,
        title: str,
        note: str,
        run: Run,
        confirm: str,
        backend: Backend,
        session: Session,
        parent: QWidget | None,
    ) -> None:
        super().__init__(name, title, backend, session, run, parent, confirm=confirm)
        text = QLabel(note, objectName=f"{name}_text")
        text.setAccessibleName(f"About {title}")
        text.setWordWrap(True)
        self.body.addWidget(text)

    def _pair(self, form: QFormLayout, cluster: Cluster, server: str | None) -> None:
        self.cluster = cluster
        names = [s.name for s in cluster.servers]
        self.server = QComboBox()
        self.server.addItems(names)
        if server in names:
            self.server.setCurrentText(server)
        self.field_row(form, "&Server:", self.server, "server")
        self.peer = QComboBox()
        self.field_row(form, "&Peer server:", self.peer, "peer")
        self.server.currentTextChanged.connect(self._peers)
        self.peer.currentTextChanged.connect(self._peer_chosen)
        self._peers()

    @Slot()
    def _peers(self, *_args: object) -> None:
        chosen = self.server.currentText()
        before = self.peer.currentText()
        self.peer.blockSignals(True)
        self.peer.clear()
        self.peer.addItems([s.name for s in self.cluster.servers if s.name != chosen])
        if before and before != chosen:
            self.peer.setCurrentText(before)
        self.peer.blockSignals(False)
        self.peer_changed()

    @Slot()
    def _peer_chosen(self, *_args: object) -> None:
        self.peer_changed()

    def peer_changed(self) -> None:
        self.update_command()


class CreateCommPathDialog(_PairDialog):
    def __init__(
        self,
        cluster: Cluster,
        server: str | None,
        backend: Backend,
        session: Session,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(
            "create_comm_path",
            "Create Comm Path",
            "A comm path is a pair of addresses, one on each server, over which LifeKeeper's "
            "heartbeat runs. Give each pair of servers two or more (one per network): with "
            "only one ALIVE the servers show ALIVE (warning); with none they lose sight of "
            "each other and the hierarchies fail over.",
            _create,
            "&Create",
            backend,
            session,
            parent,
        )
        form = QFormLayout()
        self.local = QLineEdit()
        self.local.setPlaceholderText("an address of the server, e.g. 10.215.0.11")
        self.remote = QLineEdit()
        self.remote.setPlaceholderText("an address of the peer, e.g. 10.215.0.12")
        self.priority = QLineEdit()
        self.priority.setPlaceholderText("1-99; empty: the next free one")
        self._pair(form, cluster, server)
        self.field_row(form, "&Local address:", self.local, "local_address")
        self.field_row(form, "&Remote address:", self.remote, "remote_address")
        self.field_row(form, "P&riority:", self.priority, "priority")
        self.body.addLayout(form)
        self.update_command()

    def values(self) -> commpath_ops.CreateCommPathRequest:
        return commpath_ops.CreateCommPathRequest(
            self.server.currentText(),
            self.peer.currentText(),
            self.local.text(),
            self.remote.text(),
            self.priority.text(),
        )

    def command_line(self, values: Any) -> str:
        return commands.commpath_create(
            values.server, values.peer, values.local_address, values.remote_address, values.priority
        )


class DeleteCommPathDialog(_PairDialog):
    def __init__(
        self,
        cluster: Cluster,
        server: str | None,
        backend: Backend,
        session: Session,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(
            "delete_comm_path",
            "Delete Comm Path",
            "Delete a comm path between two servers. The last path between two servers "
            "that share a hierarchy cannot be deleted (each would think the other dead).",
            _delete,
            "&Delete",
            backend,
            session,
            parent,
        )
        form = QFormLayout()
        self.path = QComboBox()
        with_paths = [p.server for p in cluster.comm_paths]
        if server not in with_paths and with_paths:
            server = with_paths[0]
        self._pair(form, cluster, server)
        self.field_row(form, "&Comm path:", self.path, "path")
        self.body.addLayout(form)
        self.peer_changed()

    def peer_changed(self) -> None:
        if not hasattr(self, "path"):
            return
        self.path.blockSignals(True)
        self.path.clear()
        for p in self.cluster.paths_between(self.server.currentText(), self.peer.currentText()):
            self.path.addItem(
                f"{p.priority}: {p.local_address} → {p.peer_address} ({p.state.value})", p.priority
            )
        self.path.blockSignals(False)
        self.update_command()

    def values(self) -> commpath_ops.DeleteCommPathRequest:
        data = self.path.currentData()
        return commpath_ops.DeleteCommPathRequest(
            self.server.currentText(), self.peer.currentText(), "" if data is None else str(data)
        )

    def command_line(self, values: Any) -> str:
        return commands.commpath_delete(values.server, values.peer, values.path)


__all__ = ["CreateCommPathDialog", "DeleteCommPathDialog"]
