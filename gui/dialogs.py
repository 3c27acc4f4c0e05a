"""Operation dialogs (confirm, choose a server or a value, Show Command) and File › Connect.

Every operation dialog says what will happen, lets the user choose what the operation
needs (a server, a speed), shows the exact ``lkctl`` line that does the same ("Show
Command"), and runs the core operation on a worker thread when confirmed. A refusal or a
failure is shown in the dialog, which stays open; success closes it and is reported
through :attr:`OperationDialog.done`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThreadPool, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from core import credentials
from core.backends.lab import users
from core.backend import LabBackend
from core.session import Session, local_session, local_user
from gui.extend_wizard import ERROR_STYLE, NOTE_STYLE
from gui.jobs import Job, JobSignals

Run = Callable[[LabBackend, dict[str, Any], Session], Any]


@dataclass(frozen=True)
class OperationSpec:
    """What one operation dialog shows and does."""

    name: str  # objectName suffix: "switchover"
    title: str  # "Switchover"
    text: str  # what will happen (rich text)
    run: Run  # the core call, on a worker
    command: Callable[[dict[str, Any]], str]  # the equivalent lkctl line
    server_label: str = ""  # shows a server choice when set
    servers: Sequence[str] = ()
    server: str | None = None  # preselected
    value_label: str = ""  # shows a number field when set (speed limit)
    value: int = 0
    value_range: tuple[int, int] = (0, 100_000_000)
    value_suffix: str = ""
    check_label: str = ""  # shows a yes/no choice when set
    checked: bool = False
    warning: bool = False  # a destructive or risky operation
    confirm: str = "OK"


class OperationDialog(QDialog):
    """Confirm an operation, see its lkctl line, run it off the GUI thread."""

    done = Signal(bool, str)  # ok, message (after the dialog closed on success)

    def __init__(
        self, spec: OperationSpec, home: Path, session: Session, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.spec = spec
        self.home = home
        self.session = session
        self.setObjectName(f"{spec.name}_dialog")
        self.setWindowTitle(spec.title)
        self.setAccessibleName(spec.title)
        self._job: Job | None = None
        icon = QLabel()
        style = self.style()
        pixmap = style.standardIcon(
            QStyle.StandardPixmap.SP_MessageBoxWarning
            if spec.warning
            else QStyle.StandardPixmap.SP_MessageBoxQuestion
        ).pixmap(32, 32)
        icon.setPixmap(pixmap)
        text = QLabel(spec.text, objectName="operation_text")
        text.setWordWrap(True)
        head = QHBoxLayout()
        head.addWidget(icon, 0)
        head.addWidget(text, 1)
        form = QFormLayout()
        self.server_box: QComboBox | None = None
        if spec.server_label:
            self.server_box = QComboBox(objectName="operation_server")
            self.server_box.addItems(list(spec.servers))
            if spec.server:
                self.server_box.setCurrentText(spec.server)
            self.server_box.setAccessibleName(spec.server_label.replace("&", "").rstrip(":"))
            label = QLabel(spec.server_label)
            label.setBuddy(self.server_box)
            form.addRow(label, self.server_box)
            self.server_box.currentTextChanged.connect(self._update_command)
        self.value_box: QSpinBox | None = None
        if spec.value_label:
            self.value_box = QSpinBox(objectName="operation_value")
            self.value_box.setRange(*spec.value_range)
            self.value_box.setValue(spec.value)
            self.value_box.setSuffix(spec.value_suffix)
            self.value_box.setAccessibleName(spec.value_label.replace("&", "").rstrip(":"))
            label = QLabel(spec.value_label)
            label.setBuddy(self.value_box)
            form.addRow(label, self.value_box)
            self.value_box.valueChanged.connect(self._update_command)
        self.check_box: QCheckBox | None = None
        if spec.check_label:
            self.check_box = QCheckBox(spec.check_label, objectName="operation_check")
            self.check_box.setChecked(spec.checked)
            form.addRow("", self.check_box)
            self.check_box.toggled.connect(self._update_command)
        self.error = QLabel(objectName="operation_error")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        self.command = QLineEdit(objectName="show_command")
        self.command.setReadOnly(True)
        self.command.setAccessibleName("The lkctl command that does the same")
        self.command.hide()
        self.buttons = QDialogButtonBox()
        self.ok = self.buttons.addButton(spec.confirm, QDialogButtonBox.ButtonRole.AcceptRole)
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
        layout.addLayout(head)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.command)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(520)
        self._update_command()

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.server_box is not None:
            values["server"] = self.server_box.currentText()
        if self.value_box is not None:
            values["value"] = self.value_box.value()
        if self.check_box is not None:
            values["check"] = self.check_box.isChecked()
        return values

    @Slot()
    def _update_command(self) -> None:
        self.command.setText(self.spec.command(self.values()))

    @Slot()
    def _toggle_command(self) -> None:
        self.command.setVisible(not self.command.isVisible())
        if self.command.isVisible():
            self.command.selectAll()
            self.command.setFocus()

    @Slot()
    def _run(self) -> None:
        if self._job is not None:
            return
        self.error.hide()
        self.ok.setEnabled(False)
        values, home, session, run = self.values(), self.home, self.session, self.spec.run

        def work(_signals: JobSignals) -> object:
            backend = LabBackend(home)
            try:
                return run(backend, values, session)
            finally:
                backend.close()

        job = Job(work)
        job.setAutoDelete(False)
        job.signals.result.connect(self._succeeded)
        job.signals.failed.connect(self._failed)
        self._job = job
        QThreadPool.globalInstance().start(job)

    def _succeeded(self, result: object) -> None:
        self._job = None
        if isinstance(result, list):
            message = " ".join(str(x) for x in result)
        else:
            message = str(result or f"{self.spec.title} done.")
        self.accept()
        self.done.emit(True, message)

    def _failed(self, message: str) -> None:
        self._job = None
        self.ok.setEnabled(True)
        self.error.setText(message)
        self.error.show()

    def reject(self) -> None:
        if self._job is not None:
            return  # running: wait for the result
        super().reject()


# -- File › Connect -----------------------------------------------------------------------
class ConnectDialog(QDialog):
    """Sign in to the lab as a user; optionally remember the password in the keyring."""

    connected = Signal(object)  # core.session.Session

    def __init__(self, home: Path, parent: QWidget | None = None, user: str = "") -> None:
        super().__init__(parent)
        self.home = home
        self.setObjectName("connect_dialog")
        self.setWindowTitle("Connect")
        self.server = QComboBox(objectName="connect_server")
        self.server.addItem("lab")
        self.server.setAccessibleName("Cluster")
        self.user = QLineEdit(user or local_user(), objectName="connect_user")
        self.user.setAccessibleName("User")
        self.password = QLineEdit(objectName="connect_password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        self.remember = QCheckBox("&Remember password", objectName="remember_password")
        self.keyring_note = QLabel(objectName="keyring_note")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.setStyleSheet(NOTE_STYLE)
        reason = credentials.unavailable_reason()
        self.keyring_note.setText(reason)
        self.keyring_note.setVisible(bool(reason))
        self.remember.setEnabled(not reason)
        self.forget = QPushButton("&Forget password", objectName="forget_password")
        self.forget.setEnabled(not reason)
        self.forget.clicked.connect(self._forget)
        self.error = QLabel(objectName="connect_error")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        form = QFormLayout()
        for text, widget in (
            ("&Cluster:", self.server),
            ("&User:", self.user),
            ("&Password:", self.password),
        ):
            label = QLabel(text)
            label.setBuddy(widget)
            form.addRow(label, widget)
        form.addRow("", self.remember)
        form.addRow("", self.keyring_note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setObjectName("connect_ok")
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("&Connect")
        buttons.addButton(self.forget, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self._connect)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.user.textChanged.connect(self._fill_remembered)
        self._fill_remembered()
        self._job: Job | None = None
        self.setMinimumWidth(420)

    @Slot()
    def _fill_remembered(self) -> None:
        remembered = credentials.recall(self.server.currentText(), self.user.text())
        if remembered is not None:
            self.password.setText(remembered)
            self.remember.setChecked(True)

    @Slot()
    def _forget(self) -> None:
        gone = credentials.forget(self.server.currentText(), self.user.text())
        self.password.clear()
        self.remember.setChecked(False)
        self.error.setStyleSheet(NOTE_STYLE)
        self.error.setText(
            "The remembered password was removed from the keyring."
            if gone
            else "No password was remembered for this user."
        )
        self.error.show()

    @Slot()
    def _connect(self) -> None:
        if self._job is not None:
            return
        home, user, password = self.home, self.user.text().strip(), self.password.text()
        server, remember = self.server.currentText(), self.remember.isChecked()

        def work(_signals: JobSignals) -> object:
            owner = local_session(home)
            backend = LabBackend(home)
            try:
                known = {u.name for u in users.list_users(backend.store)}
                if user in ("", owner.user) and user not in known and not password:
                    return owner, ""  # the data directory's owner: no password
                session = users.authenticate(backend.store, user, password)
            finally:
                backend.close()
            note = ""
            if remember:
                try:
                    credentials.remember(server, user, password)
                except credentials.KeyringUnavailable as exc:
                    note = str(exc)
            return session, note

        job = Job(work)
        job.setAutoDelete(False)
        job.signals.result.connect(self._connected)
        job.signals.failed.connect(self._failed)
        self._job = job
        QThreadPool.globalInstance().start(job)

    def _connected(self, result: object) -> None:
        self._job = None
        assert isinstance(result, tuple)
        session, note = result
        self.password.clear()
        self.accept()
        self.connected.emit(session)
        if note:
            self.keyring_note.setText(note)

    def _failed(self, message: str) -> None:
        self._job = None
        self.password.clear()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setText(message)
        self.error.show()
