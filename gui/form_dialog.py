"""A dialog of fields, each with its error label, Show Command, and OK / Apply / Cancel
(or one confirming button), whose core call runs on a worker.

A refused change (``CheckFailed``) shows each problem under the field it names (the
widget whose objectName is the problem's field) and changes nothing; Apply applies and
keeps the dialog open, OK applies and closes, Cancel discards. Subclasses build their
fields with :meth:`FormDialog.field_row` and say what the values are, which lkctl line
does the same, and which core call applies them (a plain function, run on a worker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThreadPool, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core import permissions
from core.backend import Backend
from core.checks import Problem
from core.errors import CheckFailed
from core.permissions import Op
from core.session import Session
from gui.actions import plain_text
from gui.field_messages import ERROR_STYLE, NOTE_STYLE
from gui.jobs import Job, JobSignals

Run = Callable[[Backend, Any, Session], str]


class FormDialog(QDialog):
    """See the module docstring."""

    done = Signal(bool, str)  # after a successful apply: ok, message

    def __init__(
        self,
        name: str,
        title: str,
        backend: Backend,
        session: Session,
        run: Run,
        parent: QWidget | None = None,
        *,
        confirm: str = "",
    ) -> None:
        super().__init__(parent)
        self.setObjectName(f"{name}_dialog")
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        self.backend = backend
        self.session = session
        self._run = run
        self._job: Job | None = None
        self._close_after = False
        self._errors: dict[str, QLabel] = {}
        self.last_message = ""
        self.body = QVBoxLayout()
        self.general_error = self._error_label(f"{name}_error", "Problem")
        self.status = QLabel(objectName=f"{name}_status")
        self.status.setAccessibleName("Result")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(NOTE_STYLE)
        self.status.hide()
        self.command = QLineEdit(objectName="show_command")
        self.command.setReadOnly(True)
        self.command.setAccessibleName("The lkctl command that does the same")
        self.command.hide()
        self._build_buttons(confirm)
        self.buttons.accepted.connect(self.accept_and_close)
        self.buttons.rejected.connect(self.reject)
        self.show_command.clicked.connect(self._toggle_command)
        layout = QVBoxLayout(self)
        layout.addLayout(self.body, 1)
        layout.addWidget(self.general_error)
        layout.addWidget(self.status)
        layout.addWidget(self.command)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)

    # -- building --------------------------------------------------------------------------
    def _build_buttons(self, confirm: str) -> None:
        """OK / Apply / Cancel, or ``confirm`` / Cancel; and Show Command."""
        self.buttons = QDialogButtonBox()
        self.apply_button: QPushButton | None = None
        if confirm:
            self.ok = self.buttons.addButton(confirm, QDialogButtonBox.ButtonRole.AcceptRole)
            self.ok.setObjectName("operation_ok")
            self.ok.setAccessibleName(plain_text(confirm))
            cancel = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        else:
            ok = self.buttons.addButton(QDialogButtonBox.StandardButton.Ok)
            apply = self.buttons.addButton(QDialogButtonBox.StandardButton.Apply)
            cancel = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
            assert ok is not None and apply is not None
            self.ok, self.apply_button = ok, apply
            self.ok.setObjectName("ok_button")
            self.ok.setAccessibleName("OK")
            apply.setObjectName("apply_button")
            apply.setAccessibleName("Apply")
            apply.clicked.connect(self.apply)
        assert cancel is not None
        cancel.setObjectName("cancel_button")
        cancel.setAccessibleName("Cancel")
        self.show_command = self.buttons.addButton(
            "Show &Command", QDialogButtonBox.ButtonRole.HelpRole
        )
        self.show_command.setObjectName("show_command_button")
        self.show_command.setAccessibleName("Show Command")
        self.show_command.setToolTip("The lkctl line that does the same (to copy into a script).")

    def show_only(self, widgets: list[QWidget], reason: str) -> None:
        """The values are shown, not changed (``reason`` says why, above the buttons)."""
        for widget in widgets:
            widget.setEnabled(False)
        self._set_buttons(False)
        self.general_error.setText(reason)
        self.general_error.show()

    def may_not(self, op: Op, what: str) -> str:
        """Why this session may not run ``op`` (empty when it may)."""
        if permissions.allowed(self.session.role, op):
            return ""
        return f"{permissions.refusal(self.session.user, self.session.role, op)} {what}"

    def _error_label(self, name: str, what: str) -> QLabel:
        label = QLabel(objectName=name)
        label.setAccessibleName(what)
        label.setStyleSheet(ERROR_STYLE)
        label.setWordWrap(True)
        label.hide()
        return label

    def field_row(self, form: QFormLayout, text: str, widget: QWidget, field: str) -> QWidget:
        """Add ``widget`` (objectName ``field``) with its label and its error label."""
        widget.setObjectName(field)
        shown = plain_text(text).rstrip(":")
        if not shown and isinstance(widget, QAbstractButton):
            shown = plain_text(widget.text())  # a check box labelled by its own text
        if not widget.accessibleName():
            widget.setAccessibleName(shown)
        error = self._error_label(f"{field}_error", f"{shown}: problem")
        self._errors[field] = error
        if isinstance(widget, QCheckBox) and not text:
            form.addRow("", widget)
        else:
            label = QLabel(text)
            label.setBuddy(widget)
            form.addRow(label, widget)
        form.addRow("", error)
        self.watch(widget)
        return widget

    def error_for(self, field: str, label: QLabel | None = None) -> QLabel:
        """The error label of ``field`` (made when a field has several widgets)."""
        if field not in self._errors:
            self._errors[field] = label or self._error_label(f"{field}_error", field)
        return self._errors[field]

    def watch(self, widget: QWidget) -> None:
        """Update the command line when ``widget``'s value changes."""
        if isinstance(widget, QComboBox):
            widget.currentTextChanged.connect(self.update_command)
        elif isinstance(widget, QSpinBox):
            widget.valueChanged.connect(self.update_command)
        elif isinstance(widget, QLineEdit):
            widget.textChanged.connect(self.update_command)
        elif isinstance(widget, QAbstractButton):
            widget.toggled.connect(self.update_command)

    # -- what subclasses say ---------------------------------------------------------------
    # Qt's metaclass rules out abc here: a subclass that lacks one is told when built.
    def values(self) -> Any:
        raise TypeError(f"{type(self).__name__} must say its values()")

    def command_line(self, values: Any) -> str:
        raise TypeError(f"{type(self).__name__} must say its command_line()")

    def after_apply(self, message: str) -> None:
        """After a successful apply (the dialog stays open after Apply)."""

    def refresh(self, cluster: Any) -> None:
        """The window shows a new snapshot of the cluster (``cluster``, or None)."""

    @Slot()
    def on_cluster_shown(self) -> None:
        if self.isVisible():
            self.refresh(getattr(self.parentWidget(), "cluster", None))

    # -- running ---------------------------------------------------------------------------
    @Slot()
    def update_command(self, *_args: object) -> None:
        self.command.setText(self.command_line(self.values()))

    @Slot()
    def _toggle_command(self) -> None:
        self.update_command()
        self.command.setVisible(not self.command.isVisible())
        if self.command.isVisible():
            self.command.selectAll()

    @Slot()
    def apply(self) -> None:
        self._start(close_after=False)

    @Slot()
    def accept_and_close(self) -> None:
        self._start(close_after=True)

    @property
    def running(self) -> bool:
        return self._job is not None

    def _start(self, *, close_after: bool) -> None:
        if self._job is not None:
            return
        self._clear_problems()
        self.status.hide()
        self._close_after = close_after
        self._set_buttons(False)
        values, backend, session, run = self.values(), self.backend, self.session, self._run

        def work(_signals: JobSignals) -> object:
            try:
                return run(backend, values, session)
            except CheckFailed as exc:
                return exc

        job = Job(work)
        job.signals.result.connect(self._finished)
        job.signals.failed.connect(self._failed)
        self._job = job
        QThreadPool.globalInstance().start(job)

    def _set_buttons(self, enabled: bool) -> None:
        self.ok.setEnabled(enabled)
        if self.apply_button is not None:
            self.apply_button.setEnabled(enabled)

    def _finished(self, result: object) -> None:
        self._job = None
        self._set_buttons(True)
        if isinstance(result, CheckFailed):
            self.show_problems(result.problems)
            return
        message = str(result)
        self.last_message = message
        self.status.setText(message)
        self.status.show()
        self.after_apply(message)
        self.done.emit(True, message)
        if self._close_after:
            self.accept()

    def _failed(self, message: str) -> None:
        self._job = None
        self._set_buttons(True)
        self.general_error.setText(message)
        self.general_error.show()

    def _clear_problems(self) -> None:
        for label in (*self._errors.values(), self.general_error):
            label.clear()
            label.hide()

    def show_problems(self, problems: list[Problem]) -> None:
        """Each problem under its field (the others below the form)."""
        general = []
        for p in problems:
            label = self._errors.get(p.field)
            if label is None:
                general.append(p.message)
                continue
            label.setText(" ".join(filter(None, [label.text(), p.message])))
            label.show()
            shown = self.findChild(QWidget, p.field)
            if shown is not None:
                self._reveal(shown)
        if general:
            self.general_error.setText(" ".join(general))
            self.general_error.show()

    def _reveal(self, widget: QWidget) -> None:
        """Show the tab holding ``widget`` (a tabbed dialog overrides it)."""

    def problem_text(self, field: str) -> str:
        label = self._errors.get(field)
        return label.text() if label is not None and not label.isHidden() else ""

    def reject(self) -> None:
        if self._job is not None:
            return  # running: wait for the result
        super().reject()


__all__ = ["FormDialog", "Run"]
