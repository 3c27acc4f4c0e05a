"""Resize Mirror…: grow a DataKeeper mirror on every server (the mirror context menus).

The new size is checked as it is typed: the rules, and the free space by each copy of
the volume, which a worker reads (the GUI thread does no I/O). A problem is shown under
its field and OK stays disabled; the plan (the same text as ``lkctl mirror resize …
--dry-run``) is shown once the size is good. OK runs the resize on a worker; a refusal
at that point (the cluster changed meanwhile) is shown under its field too.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import (
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
from core.errors import CheckFailed
from core.operations import resize
from core.session import Session
from core.status import format_size
from gui import jobs
from gui.checker import LatestOnly
from gui.field_messages import error_label, show_field_problems
from gui.jobs import Job, JobSignals
from gui.widgets import command_line, read_only_text, toggle_command


def _check(backend: Backend, request: resize.ResizeRequest) -> object:
    """On a worker: the dry-run text, or the problems."""
    try:
        return resize.dry_run_text(resize.plan(backend, request))
    except CheckFailed as exc:
        return list(exc.problems)


def _run(backend: Backend, request: resize.ResizeRequest, session: Session) -> object:
    """On a worker: the result message, or the problems of a refusal."""
    try:
        return resize.resize(backend, request, session)
    except CheckFailed as exc:
        return list(exc.problems)


class ResizeDialog(QDialog):
    """Resize Mirror: the new size, its problems under it, the plan, Show Command."""

    done = Signal(bool, str)  # ok, message (after the dialog closed on success)

    def __init__(
        self,
        backend: Backend,
        session: Session,
        tag: str,
        current_size: int,
        note: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.backend, self.session, self.tag = backend, session, tag
        self.setObjectName("resize_mirror_dialog")
        self.setWindowTitle("Resize Mirror")
        self.setAccessibleName("Resize Mirror")
        self._jobs: set[Job] = set()
        self._problems: list[Problem] = []
        self._build(current_size, note)
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self._validate)
        self.checker = LatestOnly(self)
        self.checker.answered.connect(self._checked)
        self.checker.failed.connect(self._check_failed)
        self.size.textChanged.connect(self._edited)
        self.setMinimumWidth(560)
        self._edited()

    def _build(self, current_size: int, note: str) -> None:
        text = QLabel(
            f"Grow <b>{self.tag}</b> (now {format_size(current_size)}) on every server: the "
            "targets first, then the source, and the bitmap to match. The new space is "
            "resynced to every target like any dirty region. A mirror cannot shrink."
            + (f"<p>{note}</p>" if note else ""),
            objectName="operation_text",
        )
        text.setWordWrap(True)
        self.size = QLineEdit(format_size(current_size).replace(" ", ""), objectName="size")
        self.size.setAccessibleName("New Size")
        self.size.setToolTip("Bytes, or K, M, G, T (powers of 1024), e.g. 128M; never smaller.")
        self.fields: dict[str, QWidget] = {"size": self.size}
        self.errors = {"size": error_label("size"), "tag": error_label("tag")}
        self.errors["size"].setAccessibleName("New Size problem")
        self.errors["tag"].setAccessibleName("Mirror problem")
        form = QFormLayout()
        label = QLabel("New &Size:")
        label.setBuddy(self.size)
        form.addRow(label, self.size)
        form.addRow("", self.errors["size"])
        form.addRow("", self.errors["tag"])
        self.plan = read_only_text("resize_plan", "The plan of the resize")
        self.command = command_line()
        self.error = error_label("operation")
        self.error.setObjectName("operation_error")
        self.error.setAccessibleName("Why the resize failed")
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addLayout(form)
        layout.addWidget(QLabel("Plan (the same text as lkctl … --dry-run):"))
        layout.addWidget(self.plan, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.command)
        layout.addWidget(self._build_buttons())

    def _build_buttons(self) -> QDialogButtonBox:
        buttons = QDialogButtonBox()
        self.ok = buttons.addButton("&Resize", QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok.setObjectName("operation_ok")
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setObjectName("operation_cancel")
        show = buttons.addButton("Show &Command", QDialogButtonBox.ButtonRole.HelpRole)
        show.setObjectName("show_command_button")
        show.setToolTip("The lkctl line that does the same (to copy into a script).")
        buttons.accepted.connect(self._resize)
        buttons.rejected.connect(self.reject)
        show.clicked.connect(self._toggle_command)
        return buttons

    def request(self) -> resize.ResizeRequest:
        return resize.ResizeRequest(self.tag, self.size.text())

    # -- checking as typed ----------------------------------------------------------------
    @Slot()
    def _edited(self) -> None:
        self.command.setText(commands.resize_mirror(self.tag, self.size.text().strip()))
        self.ok.setEnabled(False)
        self._timer.start()

    @Slot()
    def _validate(self) -> None:
        backend, request = self.backend, self.request()
        self.checker.submit(lambda: _check(backend, request))

    @Slot(object)
    def _checked(self, answer: object) -> None:
        if isinstance(answer, list) and answer and isinstance(answer[0], Problem):
            self._show_problems(answer)
            self.plan.clear()
        else:
            self._show_problems([])
            self.plan.setPlainText("\n".join(str(line) for line in answer))  # type: ignore[attr-defined]
        self._update_ok()

    @Slot(str)
    def _check_failed(self, message: str) -> None:
        self._show_problems([Problem("tag", "check_failed", message)])
        self._update_ok()

    def _show_problems(self, problems: list[Problem]) -> None:
        self._problems = problems
        show_field_problems(self.errors, self.fields, problems)

    def _update_ok(self) -> None:
        busy = self._timer.isActive() or self.checker.busy or bool(self._jobs)
        self.ok.setEnabled(not busy and not self._problems)

    @Slot()
    def _toggle_command(self) -> None:
        toggle_command(self.command)

    # -- running ----------------------------------------------------------------------------
    @Slot()
    def _resize(self) -> None:
        if self._jobs or not self.ok.isEnabled():
            return
        self.error.hide()
        self.ok.setEnabled(False)
        backend, request, session = self.backend, self.request(), self.session

        def work(_signals: JobSignals) -> object:
            return _run(backend, request, session)

        jobs.start(self._jobs, work, self._resized, self._failed)

    def _resized(self, result: object) -> None:
        self._jobs.clear()  # it reported (jobs.start forgets it just after this)
        if isinstance(result, list):  # refused: the cluster changed since the check
            self._show_problems(result)
            self._update_ok()
            return
        self.accept()
        self.done.emit(True, str(result))

    def _failed(self, message: str) -> None:
        self._jobs.clear()
        self.error.setText(f"The resize failed: {message}")
        self.error.show()
        self._update_ok()
