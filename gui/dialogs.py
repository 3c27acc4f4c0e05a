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
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from core import connection, credentials
from core.backend import Backend
from core.errors import AuthenticationFailed, UnknownHostKey
from core.session import Session, local_user
from gui.bridge import BackendOpener, Opened
from gui.checker import LatestOnly
from gui.field_messages import ERROR_STYLE, NOTE_STYLE
from gui.jobs import Job, JobSignals
from gui.widgets import read_only_text

Run = Callable[[Backend, dict[str, Any], Session], Any]


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
    # What the operation will do, for the plan page (on a worker: it may ask the cluster).
    what_if: Callable[[Backend, dict[str, Any]], list[str]] | None = None


class OperationDialog(QDialog):
    """Confirm an operation, see what it will do and its lkctl line, run it off the GUI
    thread."""

    done = Signal(bool, str)  # ok, message (after the dialog closed on success)

    def __init__(
        self, spec: OperationSpec, backend: Backend, session: Session, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.spec = spec
        self.backend = backend
        self.session = session
        self.setObjectName(f"{spec.name}_dialog")
        self.setWindowTitle(spec.title)
        self.setAccessibleName(spec.title)
        self._job: Job | None = None
        form = self._build_form()
        self._build_what_if()
        self.error = QLabel(objectName="operation_error")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        self.command = QLineEdit(objectName="show_command")
        self.command.setReadOnly(True)
        self.command.setAccessibleName("The lkctl command that does the same")
        self.command.hide()
        self._build_buttons()
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_head())
        layout.addLayout(form)
        if self.what_if is not None:
            layout.addWidget(self.what_if_label)
            layout.addWidget(self.what_if, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.command)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(520)
        self._update_command()

    def _build_head(self) -> QHBoxLayout:
        """The icon and what will happen, in words."""
        icon = QLabel()
        pixmap = (
            self.style()
            .standardIcon(
                QStyle.StandardPixmap.SP_MessageBoxWarning
                if self.spec.warning
                else QStyle.StandardPixmap.SP_MessageBoxQuestion
            )
            .pixmap(32, 32)
        )
        icon.setPixmap(pixmap)
        text = QLabel(self.spec.text, objectName="operation_text")
        text.setWordWrap(True)
        head = QHBoxLayout()
        head.addWidget(icon, 0)
        head.addWidget(text, 1)
        return head

    def _build_form(self) -> QFormLayout:
        """The choices the operation needs: a server, a value, a yes/no."""
        spec = self.spec
        form = QFormLayout()
        self.server_box: QComboBox | None = None
        if spec.server_label:
            self.server_box = QComboBox(objectName="operation_server")
            self.server_box.addItems(list(spec.servers))
            if spec.server:
                self.server_box.setCurrentText(spec.server)
            self._add_row(form, spec.server_label, self.server_box)
            self.server_box.currentTextChanged.connect(self._update_command)
        self.value_box: QSpinBox | None = None
        if spec.value_label:
            self.value_box = QSpinBox(objectName="operation_value")
            self.value_box.setRange(*spec.value_range)
            self.value_box.setValue(spec.value)
            self.value_box.setSuffix(spec.value_suffix)
            self._add_row(form, spec.value_label, self.value_box)
            self.value_box.valueChanged.connect(self._update_command)
        self.check_box: QCheckBox | None = None
        if spec.check_label:
            self.check_box = QCheckBox(spec.check_label, objectName="operation_check")
            self.check_box.setChecked(spec.checked)
            form.addRow("", self.check_box)
            self.check_box.toggled.connect(self._update_command)
        return form

    @staticmethod
    def _add_row(form: QFormLayout, text: str, widget: QWidget) -> None:
        widget.setAccessibleName(text.replace("&", "").rstrip(":"))
        label = QLabel(text)
        label.setBuddy(widget)
        form.addRow(label, widget)

    def _build_what_if(self) -> None:
        """The plan page: the plan's steps and what they do to every hierarchy, computed
        by core on a worker (the same text as ``lkctl … --dry-run``)."""
        self.what_if: QPlainTextEdit | None = None
        self._what_if_check: LatestOnly | None = None
        if self.spec.what_if is None:
            return
        self.what_if_label = QLabel(
            "Before you confirm (the same text as lkctl … --dry-run):", objectName="what_if_label"
        )
        self.what_if = read_only_text("what_if", "What will happen: the plan, and every hierarchy")
        self.what_if.setPlaceholderText("Computing what will happen…")
        self.what_if.setMinimumHeight(140)
        self.what_if_label.setBuddy(self.what_if)
        self._what_if_check = LatestOnly(self)
        self._what_if_check.answered.connect(self._what_if_answered)
        self._what_if_check.failed.connect(self._what_if_failed)

    def _build_buttons(self) -> None:
        self.buttons = QDialogButtonBox()
        self.ok = self.buttons.addButton(self.spec.confirm, QDialogButtonBox.ButtonRole.AcceptRole)
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

    def _refresh_what_if(self) -> None:
        what_if, checker = self.spec.what_if, self._what_if_check
        if what_if is None or checker is None or self.what_if is None:
            return
        self.what_if.clear()
        backend, values = self.backend, self.values()
        checker.submit(lambda: what_if(backend, values))

    @Slot(object)
    def _what_if_answered(self, lines: object) -> None:
        if self.what_if is not None:
            self.what_if.setPlainText("\n".join(str(line) for line in lines))  # type: ignore[attr-defined]

    @Slot(str)
    def _what_if_failed(self, message: str) -> None:
        if self.what_if is not None:
            self.what_if.setPlainText(f"Cannot tell what will happen: {message}")

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
        self._refresh_what_if()

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
        values, backend, session, run = self.values(), self.backend, self.session, self.spec.run

        def work(_signals: JobSignals) -> object:
            return run(backend, values, session)

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


class HostKeyQuestion(QObject):
    """A node's SSH host key the console has not seen: its fingerprints are shown and the
    user is asked (No is the default). On yes the key is stored on a worker, then
    :attr:`answered` says (True, ""); otherwise (False, why): nothing was sent."""

    answered = Signal(bool, str)

    def __init__(self, error: UnknownHostKey, parent: QWidget) -> None:
        super().__init__(parent)
        self.error = error
        yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Unknown host key", str(error), yes | no, parent
        )
        box.setObjectName("trust_host_key")
        box.setAccessibleName("Unknown host key")
        box.setInformativeText("Trust this host key and connect?")
        box.setDefaultButton(no)
        box.setEscapeButton(no)
        for button, text, name in ((yes, "&Trust and connect", "trust_yes"),
                                   (no, "&Do not connect", "trust_no")):  # fmt: skip
            widget = box.button(button)
            widget.setText(text)
            widget.setObjectName(name)
            widget.setAccessibleName(text.replace("&", ""))
        box.finished.connect(self._finished)
        self.box = box
        self._job: Job | None = None
        box.open()

    @Slot(int)
    def _finished(self, _result: int) -> None:
        if self.box.clickedButton() is not self.box.button(QMessageBox.StandardButton.Yes):
            self._answer(False, "The host key was not trusted: nothing was sent to the host.")
            return
        trust = self.error.trust

        def work(_signals: JobSignals) -> object:
            trust()
            return True

        job = Job(work)
        job.setAutoDelete(False)
        job.signals.result.connect(self._stored)
        job.signals.failed.connect(self._not_stored)
        self._job = job
        QThreadPool.globalInstance().start(job)

    def _stored(self, _result: object) -> None:
        self._answer(True, "")

    def _not_stored(self, message: str) -> None:
        self._answer(False, f"The host key could not be stored: {message}")

    def _answer(self, trusted: bool, message: str) -> None:
        self._job = None
        self.box.deleteLater()
        self.deleteLater()
        self.answered.emit(trusted, message)


class ConnectDialog(QDialog):
    """File › Connect: which cluster, and who (the local user, or a user with a password).

    The keyring is read once, on a worker, when the dialog opens; the cluster is opened
    and the user signed in on a worker too: the GUI thread never waits for either."""

    connected = Signal(object)  # gui.bridge.Opened

    def __init__(self, spec: str, parent: QWidget | None = None, user: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("connect_dialog")
        self.setWindowTitle("Connect")
        self._build_fields(spec, user)
        self._build_notes()
        buttons = self._build_buttons()
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_form())
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._job: Job | None = None
        self._opener: BackendOpener | None = None
        self.question: HostKeyQuestion | None = None  # while a host key is asked about
        self.keyring_read = False  # True once the keyring answered (tests wait for it)
        self._keyring_reason: str | None = None  # None: not answered yet
        self._keyring_job = self._read_keyring()
        self.server.currentTextChanged.connect(self._kind_changed)
        self._kind_changed(self.server.currentText())
        self.setMinimumWidth(420)

    def _build_fields(self, spec: str, user: str) -> None:
        self.server = QComboBox(objectName="connect_server")
        self.server.setEditable(True)
        self.server.addItems(list(dict.fromkeys([spec, connection.DEFAULT])))
        self.server.setCurrentText(spec)
        self.server.setAccessibleName("Cluster")
        self.server.setToolTip(
            "lab: the embedded lab cluster; lab:/path/to/home: the lab in that folder; "
            "pacemaker: this node's Pacemaker cluster; pacemaker-lab: the Pacemaker lab on "
            "this machine; ssh://root@node: a node of a Pacemaker cluster, over SSH."
        )
        self.user = QLineEdit(user or local_user(), objectName="connect_user")
        self.user.setAccessibleName("User")
        self.password = QLineEdit(objectName="connect_password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        self.remember = QCheckBox("&Remember password", objectName="remember_password")
        self.remember.setEnabled(False)  # until the keyring has answered

    def _build_notes(self) -> None:
        self.keyring_note = QLabel(objectName="keyring_note")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.setStyleSheet(NOTE_STYLE)
        self.keyring_note.hide()
        self.identity_note = QLabel(
            "On a Pacemaker cluster you act as the SSH user (root on the Pacemaker lab); "
            "your role comes from the node's lkadmin, lkoper or lkguest group.",
            objectName="identity_note",
        )
        self.identity_note.setAccessibleName("Who you are on this cluster")
        self.identity_note.setWordWrap(True)
        self.identity_note.setStyleSheet(NOTE_STYLE)
        self.error = QLabel(objectName="connect_error")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()

    def _build_form(self) -> QFormLayout:
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
        form.addRow("", self.identity_note)
        return form

    def _build_buttons(self) -> QDialogButtonBox:
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setObjectName("connect_ok")
        self.ok.setText("&Connect")
        self.forget = QPushButton("&Forget password", objectName="forget_password")
        self.forget.setEnabled(False)
        self.forget.clicked.connect(self._forget)
        buttons.addButton(self.forget, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self._connect)
        buttons.rejected.connect(self.reject)
        return buttons

    def _signs_in(self) -> bool:
        """Does the chosen cluster sign users in (the lab), or is one the SSH user?"""
        spec = self.server.currentText().strip()
        return spec == connection.DEFAULT or spec.startswith("lab:")

    @Slot(str)
    def _kind_changed(self, _text: str) -> None:
        lab = self._signs_in()
        self.user.setEnabled(lab)
        self.password.setEnabled(lab)
        keyring = lab and self._keyring_reason == ""
        self.remember.setEnabled(keyring)
        self.forget.setEnabled(keyring)
        self.identity_note.setVisible(not lab)

    def _read_keyring(self) -> Job:
        """Once, on a worker: can passwords be remembered, and is one remembered."""
        cluster, user = self.server.currentText(), self.user.text()

        def work(_signals: JobSignals) -> object:
            return credentials.unavailable_reason(), credentials.recall(cluster, user)

        job = Job(work)
        job.setAutoDelete(False)
        job.signals.result.connect(self._keyring_answered)
        QThreadPool.globalInstance().start(job)
        return job

    def _keyring_answered(self, result: object) -> None:
        assert isinstance(result, tuple)
        reason, remembered = result
        self.keyring_note.setText(reason)
        self.keyring_note.setVisible(bool(reason))
        self._keyring_reason = reason or ""
        self._kind_changed(self.server.currentText())
        if remembered is not None and not self.password.text():
            self.password.setText(remembered)
            self.remember.setChecked(True)
        self.keyring_read = True

    @Slot()
    def _forget(self) -> None:
        cluster, user = self.server.currentText(), self.user.text()
        self.password.clear()
        self.remember.setChecked(False)

        def work(_signals: JobSignals) -> object:
            return credentials.forget(cluster, user)

        job = Job(work)
        job.setAutoDelete(False)
        job.signals.result.connect(self._forgotten)
        job.signals.failed.connect(self._failed)
        self._job = job
        QThreadPool.globalInstance().start(job)

    def _forgotten(self, gone: object) -> None:
        self._job = None
        self.error.setStyleSheet(NOTE_STYLE)
        self.error.setText(
            "The remembered password was removed from the keyring."
            if gone
            else "No password was remembered for this user."
        )
        self.error.show()

    @Slot()
    def _connect(self) -> None:
        if self._opener is not None:
            return
        spec, user = self.server.currentText().strip(), self.user.text().strip()
        password, remember = self.password.text(), self.remember.isChecked()
        if not self._signs_in():
            user, password, remember = "", "", False  # the SSH user: no sign-in here
        notes: list[str] = []

        def sign_in(backend: Backend) -> Session:
            owner = backend.local_session()
            if user in ("", owner.user) and not password:
                return owner  # the local user: no password
            try:
                session = backend.authenticate(user, password)
            except AuthenticationFailed as exc:
                backend.record_refusal(user, "not signed in", "sign in (console)", "", str(exc))
                raise
            if remember:
                try:
                    credentials.remember(backend.name, user, password)
                except credentials.KeyringUnavailable as exc:
                    notes.append(str(exc))
            return session

        self.ok.setEnabled(False)
        self.error.hide()
        opener = BackendOpener(spec, sign_in)
        opener.signals.opened.connect(lambda opened: self._connected(opened, notes))
        opener.signals.failed.connect(self._failed)
        opener.signals.host_key.connect(self._host_key)
        self._opener = opener.start()

    def _host_key(self, error: UnknownHostKey) -> None:
        """Ask about the host key; on yes connect again (the password is still here)."""
        self.question = HostKeyQuestion(error, self)
        self.question.answered.connect(self._trust_answered)

    def _trust_answered(self, trusted: bool, message: str) -> None:
        self.question = None
        self._opener = None
        if trusted:
            self._connect()
        else:
            self._failed(message)

    def _connected(self, opened: Opened, notes: list[str]) -> None:
        self._opener = None
        self.password.clear()
        self.accept()
        self.connected.emit(opened)
        if notes:
            self.keyring_note.setText(notes[0])

    def _failed(self, message: str) -> None:
        self._job = None
        self._opener = None
        self.ok.setEnabled(True)
        self.password.clear()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setText(message)
        self.error.show()
