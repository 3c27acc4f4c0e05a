"""Page 3: the Pre-Extend Checks (on a worker), then what each resource becomes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QLabel,
    QProgressBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from core.backend import Backend
from core.checks import Problem
from core.facts import Facts, gather
from core.model import Cluster
from core.rules import extend
from core.rules.extend import ExtendRequest
from gui.field_messages import ERROR_STYLE, OK_STYLE
from gui.jobs import JobSignals

if TYPE_CHECKING:
    from gui.extend_wizard.wizard import ExtendWizard


class ChecksPage(QWizardPage):
    """The pre-extend checks (on a worker), then the information boxes."""

    def __init__(self, wizard: ExtendWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setObjectName("checks_page")
        self.setTitle("Pre-Extend Checks")
        self.setSubTitle("Is the target ready? Then: what each resource becomes on it.")
        self.status = QLabel(objectName="pre_extend_status")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Pre-extend checks result")
        self.problems = QLabel(objectName="pre_extend_problems")
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet(ERROR_STYLE)
        self.problems.hide()
        self.info = QTreeWidget(objectName="extend_info")
        self.info.setAccessibleName("Resources that will be extended")
        self.info.setHeaderLabels(["Resource", "Tag on template", "Tag on target"])
        self.info.setRootIsDecorated(False)
        self.info.setUniformRowHeights(True)
        self.busy = QProgressBar(objectName="pre_extend_busy")
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(8)
        layout = QVBoxLayout(self)
        layout.addWidget(self.busy)
        layout.addWidget(self.status)
        layout.addWidget(self.problems)
        caption = QLabel("Resource tags that will be extended (grey: cannot change):")
        layout.addWidget(caption)
        layout.addWidget(self.info, 1)
        self._ok = False
        self._running = False

    def initializePage(self) -> None:
        self._ok = False
        self.problems.hide()
        self.info.clear()
        if self.w.fast_forward:
            self._show([])
            return
        self._running = True
        self.busy.show()
        self.status.setText("Running the pre-extend checks…")
        self.status.setStyleSheet("")
        request, backend, known = self.w.request(), self.w.backend, self.w.facts

        def work(_signals: JobSignals) -> object:
            return fresh_checks(backend, request, extend.PRE_EXTEND_PAGE, known)

        self.w.run_job(work, self._checked, self._failed)
        self.completeChanged.emit()

    def _checked(self, result: object) -> None:
        assert isinstance(result, tuple)
        self.w.cluster, facts, problems = result
        self.w.learn(facts)
        self._show(problems)

    def _show(self, problems: list[Problem]) -> None:
        self._running = False
        self.busy.hide()
        self._ok = not problems
        if problems:
            self.status.setText(
                "The pre-extend checks found problems: go Back and change the fields named below."
            )
            self.status.setStyleSheet(ERROR_STYLE)
            self.problems.setText(
                "\n".join(f"• {extend.LABELS.get(p.field, p.field)}: {p.message}" for p in problems)
            )
            self.problems.show()
            self.w.pre_extend.show_problems(problems)
        else:
            self.status.setText("Pre-extend checks were successful.")
            self.status.setStyleSheet(OK_STYLE)
        request = self.w.request()
        h = self.w.hierarchy()
        for box in extend.info_boxes(h, request.template_server, request):
            item = QTreeWidgetItem([box.kind.label, box.template_tag, box.target_tag])
            if box.read_only:
                for col in range(3):
                    item.setForeground(col, Qt.GlobalColor.gray)
                item.setToolTip(2, "This tag cannot change: the target uses the same tag.")
            else:
                item.setToolTip(2, "Set on the Extend page.")
            self.info.addTopLevelItem(item)
        for col in range(3):
            self.info.resizeColumnToContents(col)
        self.completeChanged.emit()

    def _failed(self, message: str) -> None:
        self._running = False
        self.busy.hide()
        self.status.setText(f"The pre-extend checks could not run: {message}")
        self.status.setStyleSheet(ERROR_STYLE)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self._ok and not self._running


def fresh_checks(
    backend: Backend, request: ExtendRequest, page: str | None, known: Facts
) -> tuple[Cluster, Facts, list[Problem]]:
    """On a worker: the cluster as it is now, what the rules need to know, and the
    problems of ``page`` (None: of the whole request)."""
    cluster = backend.snapshot()
    facts = gather(backend, extend.needs(cluster, request), known)
    if page is None:
        return cluster, facts, extend.check_request(cluster, facts, request)
    return cluster, facts, extend.check_page(cluster, facts, request, page)
