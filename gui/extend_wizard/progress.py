"""Pages 5 and 6: Extending (the plan's steps ticked as they run) and Finish."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from core import commands
from core.errors import OperationError
from core.events import EventHub, LogLine
from core.model import Cluster, Hierarchy
from core.operations import extend as operation
from gui import icons
from gui.field_messages import ERROR_STYLE, OK_STYLE
from gui.jobs import JobSignals

if TYPE_CHECKING:
    from gui.extend_wizard.wizard import ExtendWizard


class ProgressPage(QWizardPage):
    """The extend being performed, step by step."""

    def __init__(self, wizard: ExtendWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setObjectName("progress_page")
        self.setTitle("Extending")
        self.setSubTitle("The extend is being performed. Every step is undone if one fails.")
        self.steps = QListWidget(objectName="extend_steps")
        self.steps.setWordWrap(True)
        self.steps.setAccessibleName("Steps of the extend")
        self.bar = QProgressBar(objectName="extend_progress")
        self.bar.setAccessibleName("Extend progress")
        self.result = QLabel(objectName="extend_result")
        self.result.setWordWrap(True)
        self.result.setAccessibleName("Extend result")
        self.log = QPlainTextEdit(objectName="extend_log")
        self.log.setReadOnly(True)
        self.log.setAccessibleName("Extend log")
        self.log.setMaximumBlockCount(2000)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.log.setFont(mono)
        self.command = QLineEdit(objectName="show_command")
        self.command.setReadOnly(True)
        self.command.setAccessibleName("The lkctl command that does the same")
        self.command.setToolTip("The lkctl line that performs this same extend (copyable).")
        layout = QVBoxLayout(self)
        layout.addWidget(self.steps, 2)
        layout.addWidget(self.bar)
        layout.addWidget(self.result)
        layout.addWidget(QLabel("Log:"))
        layout.addWidget(self.log, 1)
        layout.addWidget(QLabel("The same from the command line:"))
        layout.addWidget(self.command)
        self.running = False
        self.succeeded = False
        self.cancel = threading.Event()
        self.setCommitPage(False)

    def initializePage(self) -> None:
        self.steps.clear()
        self.log.clear()
        self.result.clear()
        self.result.setStyleSheet("")
        self.running, self.succeeded = True, False
        self.cancel = threading.Event()
        self.bar.setRange(0, 0)
        request, backend, session = self.w.request(), self.w.backend, self.w.session
        cancel = self.cancel
        self.command.setText(commands.extend(request))

        def work(signals: JobSignals) -> object:
            hub = EventHub()
            hub.subscribe(lambda e: signals.log.emit(e.level, e.text), LogLine)  # type: ignore[attr-defined]
            try:
                the_plan = operation.plan(backend, request)
                signals.step.emit(-1, len(the_plan.steps), "\n".join(the_plan.titles), "plan")
                return operation.execute(
                    backend,
                    the_plan,
                    session,
                    cancel=cancel,
                    hub=hub,
                    on_step=lambda i, n, title, status: signals.step.emit(i, n, title, status),
                )
            except OperationError as exc:
                if exc.committed:  # it happened: not a rollback
                    return exc
                raise

        self.w.run_job(work, self._succeeded, self._failed, on_step=self._step, on_log=self._log)
        self._set_buttons()

    def _set_buttons(self) -> None:
        done = self.succeeded
        self.completeChanged.emit()  # QWizard updates its buttons here: ours come after
        self.w.button(QWizard.WizardButton.BackButton).setEnabled(not self.running and not done)
        self.w.button(QWizard.WizardButton.CancelButton).setEnabled(not done)

    @Slot(str, str)
    def _log(self, level: str, text: str) -> None:
        prefix = "" if level == "INFO" else f"{level}: "
        self.log.appendPlainText(prefix + text)

    @Slot(int, int, str, str)
    def _step(self, index: int, total: int, title: str, status: str) -> None:
        if status == "plan":
            for text in title.split("\n"):
                item = QListWidgetItem(icons.icon("state-standby"), text)
                self.steps.addItem(item)
            self.bar.setRange(0, total)
            self.bar.setValue(0)
            return
        item = self.steps.item(index)
        if item is None:
            return
        if status == "running":
            item.setIcon(icons.icon("state-resyncing"))
            self.steps.scrollToItem(item)
        elif status == "done":
            item.setIcon(icons.icon("state-active"))
            self.bar.setValue(index + 1)
        elif status == "failed":
            item.setIcon(icons.icon("state-failed"))
            f = item.font()
            f.setBold(True)
            item.setFont(f)

    def _succeeded(self, result: object) -> None:
        self.running, self.succeeded = False, True
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.setButtonText(QWizard.WizardButton.NextButton, "&Finish")
        if isinstance(result, OperationError):  # extended, then a later step failed
            self.result.setText(str(result))
            self.result.setStyleSheet(ERROR_STYLE)
            self._set_buttons()
            self.w.extended.emit(self.w.hierarchy().id, self.w.request().target_server)
            return
        assert isinstance(result, operation.ExtendResult)
        self.result.setText(result.message)
        self.result.setStyleSheet(OK_STYLE)
        self._set_buttons()
        self.w.extended.emit(result.hierarchy_id, result.target_server)

    def _failed(self, message: str) -> None:
        self.running, self.succeeded = False, False
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        h = self.w.hierarchy()
        self.result.setText(
            f"The extend failed: {message}\nEverything done so far was rolled back: "
            f"{h.root_tag} is exactly as it was. Go Back to change the settings, or Cancel."
        )
        self.result.setStyleSheet(ERROR_STYLE)
        self._set_buttons()

    def isComplete(self) -> bool:
        return self.succeeded

    def validatePage(self) -> bool:
        return self.succeeded


class FinishPage(QWizardPage):
    def __init__(self, wizard: ExtendWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setObjectName("finish_page")
        self.setTitle("Hierarchy Extended")
        self.setSubTitle("The target is a standby now.")
        self.text = QLabel(objectName="finish_text")
        self.text.setWordWrap(True)
        self.next_server = QPushButton("&Next Server", objectName="next_server")
        self.next_server.setAccessibleName("Next Server")
        self.next_server.clicked.connect(self._next_server)
        self.next_note = QLabel(objectName="next_server_note")
        self.next_note.setWordWrap(True)
        self.next_note.setAccessibleName("Why Next Server is not available")
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.next_server, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.next_note)
        layout.addStretch(1)
        self.setButtonText(QWizard.WizardButton.FinishButton, "&Done")

    def initializePage(self) -> None:
        request = self.w.request()
        h = self.w.hierarchy()
        self.text.setText(
            f"<p><b>{h.root_tag}</b> was extended from {request.template_server} to "
            f"<b>{request.target_server}</b> (priority {request.target_priority}).</p>"
            f"<p>The mirror is resyncing: the status table shows {request.target_server} as "
            "<i>Resyncing</i>, then <i>Target</i> once every byte is copied. Until then, "
            f"nothing can switch over to {request.target_server}.</p>"
            f"<p>Next, test a manual switchover to {request.target_server} (and back) once "
            "it is Target.</p>"
        )
        why = next_server_refusal(self.w.cluster, h, request.target_server)
        self.next_server.setEnabled(not why)
        self.next_server.setToolTip(
            why or f"Extend {h.root_tag} to one more server, with the defaults recomputed."
        )
        self.next_note.setText(why)
        self.next_note.setVisible(bool(why))

    @Slot()
    def _next_server(self) -> None:
        self.next_server.setEnabled(False)
        self.w.next_server()


def next_server_refusal(cluster: Cluster, h: Hierarchy, just_extended: str) -> str:
    """Why Next Server cannot extend ``h`` once more ("" when it can)."""
    has = {*h.servers, just_extended}
    if any(s.state.is_alive and s.name not in has for s in cluster.servers):
        return ""
    if all(s.name in has for s in cluster.servers):
        return f"Every server of the cluster has {h.root_tag} now."
    return f"Every server that does not have {h.root_tag} yet is down."


# -- the wizard ---------------------------------------------------------------------------
