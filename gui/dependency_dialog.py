"""Edit › Resource › Create Dependency / Delete Dependency: the dialog.

The server, then the parent and the child chosen from that server's resources (for
Delete, the child from the parent's own children). Every change is checked by core's
rules on the cluster shown (pure: no I/O), the problem under its field and the button
disabled until it is resolved; Show Command gives the ``lkctl dependency`` line. The
operation runs on a worker; a failure stays in the dialog, success closes it.
"""

from __future__ import annotations

from PySide6.QtCore import QThreadPool, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from core import commands
from core.backend import Backend
from core.checks import Problem
from core.model import Cluster
from core.operations import dependency
from core.rules import dependency as rules
from core.rules.dependency import DependencyRequest
from core.session import Session
from gui.field_messages import ERROR_STYLE, MESSAGE_WIDTH, show_field_problems
from gui.jobs import Job, JobSignals

FIELDS = ("server", "parent", "child")
_LABELS = {"server": "&Server:", "parent": "&Parent Resource Tag:", "child": "C&hild Resource Tag:"}


def _error(name: str) -> QLabel:
    label = QLabel(objectName=f"{name}_error")
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.setAccessibleName(f"{rules.LABELS[name]} problem")
    label.setMinimumWidth(MESSAGE_WIDTH)
    label.hide()
    return label


class DependencyDialog(QDialog):
    """Create Dependency (``action`` "create") or Delete Dependency ("delete")."""

    done = Signal(bool, str)  # ok, message (after the dialog closed on success)

    def __init__(
        self,
        action: str,
        cluster: Cluster,
        backend: Backend,
        session: Session,
        *,
        server: str | None = None,
        tag: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.action = action
        self.cluster = cluster
        self.backend = backend
        self.session = session
        self._job: Job | None = None
        title = "Create Dependency" if action == "create" else "Delete Dependency"
        self.setObjectName(f"{action}_dependency_dialog")
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        text = (
            "The parent depends on the child: the child comes in service first and goes "
            "out of service last. The dependency is made on every server where both are "
            "defined; the child's hierarchy joins the parent's."
            if action == "create"
            else "The parent no longer depends on the child: the child, and what it depends "
            "on, become a hierarchy of their own on the same servers."
        )
        intro = QLabel(text, objectName="dependency_text")
        intro.setWordWrap(True)
        form = QFormLayout()
        self.fields: dict[str, QComboBox] = {}
        self.errors = {name: _error(name) for name in FIELDS}
        for name in FIELDS:
            box = QComboBox(objectName=name)
            box.setAccessibleName(rules.LABELS[name])
            box.setMinimumWidth(300)
            label = QLabel(_LABELS[name], objectName=f"{name}_label")
            label.setBuddy(box)
            form.addRow(label, box)
            form.addRow("", self.errors[name])
            self.fields[name] = box
        self.server, self.parent_box, self.child = (self.fields[n] for n in FIELDS)
        self.error = QLabel(objectName="operation_error")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        self.command = QLineEdit(objectName="show_command")
        self.command.setReadOnly(True)
        self.command.setAccessibleName("The lkctl command that does the same")
        self.command.hide()
        self.buttons = QDialogButtonBox()
        self.ok = self.buttons.addButton(
            "Create &Dependency" if action == "create" else "&Delete Dependency",
            QDialogButtonBox.ButtonRole.AcceptRole,
        )
        self.ok.setObjectName("operation_ok")
        cancel = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setObjectName("operation_cancel")
        self.show_command = self.buttons.addButton(
            "Show &Command", QDialogButtonBox.ButtonRole.HelpRole
        )
        self.show_command.setObjectName("show_command_button")
        self.show_command.setToolTip("The lkctl line that does the same (to copy into a script).")
        self.buttons.accepted.connect(self._run)
        self.buttons.rejected.connect(self.reject)
        self.show_command.clicked.connect(self._toggle_command)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.command)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)
        self.problems: list[Problem] = []
        self._fill(server, tag)
        self.server.currentTextChanged.connect(self._server_changed)
        self.parent_box.currentTextChanged.connect(self._parent_changed)
        self.child.currentTextChanged.connect(self._check)
        self._check()

    # -- the choices ----------------------------------------------------------------------
    def _fill(self, server: str | None, tag: str | None) -> None:
        names = [s.name for s in self.cluster.servers]
        self.server.addItems(names)
        self.server.setCurrentText(server if server in names else rules.default_server(
            self.cluster, tag
        ))  # fmt: skip
        self._fill_parents(tag)

    def _fill_parents(self, tag: str | None) -> None:
        server = self.server.currentText()
        tags = list(rules.tags_on(self.cluster, server))
        if self.action == "delete":
            with_children = [t for t in tags if rules.children_of(self.cluster, server, t)]
            if tag and tag not in with_children:  # the child was clicked: its parent
                r = self.cluster.find_tag(tag, server)
                h = self.cluster.hierarchy(r.hierarchy_id) if r is not None else None
                above = h.parent(r.resource_id) if h is not None and r is not None else None
                if h is not None and above is not None:
                    inst = h.instance(above, server)
                    self._child_wanted = tag
                    tag = inst.tag if inst is not None else tag
            tags = with_children
        self.parent_box.blockSignals(True)
        self.parent_box.clear()
        self.parent_box.addItems(tags)
        if tag in tags:
            self.parent_box.setCurrentText(tag)
        self.parent_box.blockSignals(False)
        self._fill_children()

    _child_wanted: str | None = None

    def _fill_children(self) -> None:
        server, parent = self.server.currentText(), self.parent_box.currentText()
        if self.action == "delete":
            tags = list(rules.children_of(self.cluster, server, parent))
        else:
            tags = [t for t in rules.tags_on(self.cluster, server) if t != parent]
        self.child.blockSignals(True)
        self.child.clear()
        self.child.addItems(tags)
        if self._child_wanted in tags:
            self.child.setCurrentText(self._child_wanted)
        self.child.blockSignals(False)

    @Slot()
    def _server_changed(self) -> None:
        self._fill_parents(self.parent_box.currentText())
        self._check()

    @Slot()
    def _parent_changed(self) -> None:
        self._fill_children()
        self._check()

    # -- checks, the command, the run -----------------------------------------------------
    def request(self) -> DependencyRequest:
        return DependencyRequest(
            self.server.currentText(), self.parent_box.currentText(), self.child.currentText()
        )

    @Slot()
    def _check(self) -> None:
        request = self.request()
        check = rules.check_create if self.action == "create" else rules.check_delete
        self.problems = check(self.cluster, request)
        show_field_problems(self.errors, dict(self.fields), self.problems)
        self.ok.setEnabled(not self.problems and self._job is None)
        self.command.setText(commands.dependency(self.action, request))

    @Slot()
    def _toggle_command(self) -> None:
        self.command.setVisible(not self.command.isVisible())
        if self.command.isVisible():
            self.command.selectAll()
            self.command.setFocus()

    @Slot()
    def _run(self) -> None:
        if self._job is not None or self.problems:
            return
        self.error.hide()
        self.ok.setEnabled(False)
        request, backend, session = self.request(), self.backend, self.session
        run = dependency.create if self.action == "create" else dependency.delete

        def work(_signals: JobSignals) -> object:
            return run(backend, request, session).message

        job = Job(work)
        job.signals.result.connect(self._succeeded)
        job.signals.failed.connect(self._failed)
        self._job = job
        QThreadPool.globalInstance().start(job)

    @Slot(object)
    def _succeeded(self, message: object) -> None:
        self._job = None
        self.accept()
        self.done.emit(True, str(message))

    @Slot(str)
    def _failed(self, message: str) -> None:
        self._job = None
        self.ok.setEnabled(True)
        self.error.setText(message)
        self.error.show()

    def reject(self) -> None:
        if self._job is not None:
            return  # running: wait for the result
        super().reject()


__all__ = ["DependencyDialog"]
