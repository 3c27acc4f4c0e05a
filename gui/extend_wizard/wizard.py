"""The Extend Resource Hierarchy wizard: its pages, Accept Defaults, navigation, closing."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QMessageBox,
    QWidget,
    QWizard,
)

from core.backend import Backend
from core.checks import Problem
from core.errors import LkError
from core.facts import Facts, gather
from core.rules import extend
from core.rules.extend import ExtendRequest
from core.session import Session
from gui import icons, jobs
from gui.checker import LatestOnly
from gui.extend_wizard.checks import ChecksPage, fresh_checks
from gui.extend_wizard.common import Page
from gui.extend_wizard.datakeeper import ExtendPage
from gui.extend_wizard.pre_extend import IntroPage, PreExtendPage
from gui.extend_wizard.prepare import Prepared, prepare_now
from gui.extend_wizard.progress import FinishPage, ProgressPage
from gui.jobs import Job, JobSignals

log = logging.getLogger(__name__)


class ExtendWizard(QWizard):
    """Extend Resource Hierarchy. ``from_create``: Template Server and Tag are not shown."""

    extended = Signal(int, str)  # hierarchy id, target server

    def __init__(
        self,
        prepared: Prepared,
        backend: Backend,
        *,
        session: Session,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("extend_wizard")
        self.setWindowTitle("Extend Resource Hierarchy")
        self.setAccessibleName("Extend Resource Hierarchy wizard")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setWindowIcon(icons.app_icon())
        self.cluster = prepared.cluster
        self.backend = backend
        self.facts = prepared.facts
        self.session = session
        self.from_create = prepared.from_create
        self.fast_forward = False
        self.defaults_pending = False  # new defaults are being gathered (target changed)
        self._jobs: set[Job] = set()
        self._refresh = LatestOnly(self)
        self._refresh.answered.connect(self._refreshed)
        self._refresh.failed.connect(self._refresh_failed)
        self.defaults = extend.defaults(
            self.cluster,
            self.facts,
            template_server=prepared.template_server,
            tag=prepared.tag,
            target_server=prepared.target_server,
            from_create=prepared.from_create,
        )
        self._name_buttons()
        self._add_pages()
        self.setStartId(Page.INTRO)
        self.currentIdChanged.connect(self._page_changed)
        self.resize(760, 600)
        self._page_changed(Page.INTRO)

    def _name_buttons(self) -> None:
        """Accept Defaults (a custom button) and names for the standard ones."""
        self.setOption(QWizard.WizardOption.HaveCustomButton1, True)
        self.setButtonText(QWizard.WizardButton.CustomButton1, "&Accept Defaults")
        accept = self.button(QWizard.WizardButton.CustomButton1)
        accept.setObjectName("accept_defaults")
        accept.setAccessibleName("Accept Defaults")
        accept.setToolTip("Take every default, run every check and extend without more questions.")
        self.customButtonClicked.connect(self._custom_button)
        for which, name in (
            (QWizard.WizardButton.NextButton, "next_button"),
            (QWizard.WizardButton.BackButton, "back_button"),
            (QWizard.WizardButton.CancelButton, "cancel_button"),
            (QWizard.WizardButton.FinishButton, "finish_button"),
        ):
            self.button(which).setObjectName(name)

    def _add_pages(self) -> None:
        self.intro = IntroPage(self)
        self.pre_extend = PreExtendPage(self)
        self.checks = ChecksPage(self)
        self.extend_pages = [ExtendPage(self, i) for i in range(len(self.defaults.pages))]
        self.progress = ProgressPage(self)
        self.finish = FinishPage(self)
        self.setPage(Page.INTRO, self.intro)
        self.setPage(Page.PRE_EXTEND, self.pre_extend)
        self.setPage(Page.CHECKS, self.checks)
        for i, page in enumerate(self.extend_pages):
            self.setPage(Page.EXTEND + i, page)
        self.setPage(Page.PROGRESS, self.progress)
        self.setPage(Page.FINISH, self.finish)

    # -- state --------------------------------------------------------------------------
    def hierarchy(self) -> Any:
        h = self.cluster.hierarchy(self.defaults.hierarchy_id)
        assert h is not None
        return h

    def request(self) -> ExtendRequest:
        """What every page says now."""
        request = self.pre_extend.request()
        entries = tuple(page.entry() for page in getattr(self, "extend_pages", ()))
        return dataclasses.replace(request, datakeeper=entries or request.datakeeper)

    def learn(self, facts: Facts) -> None:
        """What a worker found out about the servers' disks, for the next defaults."""
        self.facts = self.facts.merged(facts)

    def reset_defaults(self, *, refill: bool = False, **changes: str | None) -> None:
        """New defaults after the template or target server changed (what they need to
        know about the target's disks is gathered on a worker first, if not known)."""
        current = self.defaults.request
        args: dict[str, str | None] = {
            "template_server": current.template_server,
            "tag": current.tag_to_extend,
            "target_server": current.target_server or None,
        }
        args.update(changes)
        needs = extend.needs(self.cluster, **args)  # type: ignore[arg-type]
        if self.facts.has(needs):
            self._use_defaults(args, refill)
            return
        self.defaults_pending = True
        self.pre_extend.completeChanged.emit()
        backend, known = self.backend, self.facts
        self._refresh.submit(lambda: (args, refill, gather(backend, needs, known)))

    def _refreshed(self, answer: object) -> None:
        assert isinstance(answer, tuple)
        args, refill, facts = answer
        self.learn(facts)
        self.defaults_pending = False
        self._use_defaults(args, refill)
        self.pre_extend.completeChanged.emit()

    def _refresh_failed(self, message: str) -> None:
        self.defaults_pending = False
        self.pre_extend.show_problems([Problem("target_server", "probe_failed", message)])

    def _use_defaults(self, args: dict[str, str | None], refill: bool = False) -> None:
        try:
            new = extend.defaults(self.cluster, self.facts, from_create=self.from_create, **args)  # type: ignore[arg-type]
        except LkError as exc:
            log.warning("no defaults: %s", exc)
            return
        if new.hierarchy_id != self.defaults.hierarchy_id or len(new.pages) != len(
            self.defaults.pages
        ):
            # Another hierarchy: its Extend pages differ; keep the page objects, refill.
            log.info("extend wizard: hierarchy changed to %s", new.hierarchy_id)
        self.defaults = new
        if refill:  # the Pre-Extend page shows the new template's tags and defaults
            self.pre_extend.refill(new)
        for page in getattr(self, "extend_pages", []):
            if page.index < len(new.pages):
                page.resource_id = new.pages[page.index].resource_id
                page.fill()

    def pre_extend_changed(self) -> None:
        for page in getattr(self, "extend_pages", []):
            page._timer.start()

    # -- Next Server --------------------------------------------------------------------
    def next_server(self) -> None:
        """The same hierarchy to one more server: a fresh snapshot and the facts its new
        defaults need, gathered on a worker; then the Pre-Extend page with those defaults."""
        request, backend = self.request(), self.backend
        template, tag = request.template_server, request.tag_to_extend
        self.run_job(
            lambda _s: prepare_now(backend, None, template_server=template, tag=tag),
            self._next_prepared,
            self._next_failed,
        )

    def _next_prepared(self, prepared: object) -> None:
        assert isinstance(prepared, Prepared)
        self.cluster, self.facts = prepared.cluster, prepared.facts
        self.defaults = extend.defaults(
            self.cluster, self.facts, template_server=prepared.template_server, tag=prepared.tag
        )
        self.pre_extend.refill(self.defaults)
        for page in self.extend_pages:
            page.fill()
        self.restart()
        self.button(QWizard.WizardButton.BackButton).setEnabled(True)
        self.button(QWizard.WizardButton.CancelButton).setEnabled(True)
        self._fast_forward_to(Page.PRE_EXTEND)

    def _next_failed(self, message: str) -> None:
        self.finish.next_server.setEnabled(True)
        QMessageBox.warning(self, "Next Server", f"Cannot extend to another server: {message}")

    # -- jobs ---------------------------------------------------------------------------
    def run_job(
        self,
        work: Callable[[JobSignals], object],
        on_result: Callable[[object], None],
        on_failed: Callable[[str], None],
        on_step: Callable[[int, int, str, str], None] | None = None,
        on_log: Callable[[str, str], None] | None = None,
    ) -> Job:
        return jobs.start(self._jobs, work, on_result, on_failed, on_step, on_log)

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    # -- Accept Defaults ----------------------------------------------------------------
    @Slot(int)
    def _custom_button(self, which: int) -> None:
        if QWizard.WizardButton(which) is QWizard.WizardButton.CustomButton1:
            self.accept_defaults()

    def accept_defaults(self) -> None:
        """Every check on a worker; then straight to the extend, or to the first problem."""
        self.button(QWizard.WizardButton.CustomButton1).setEnabled(False)
        request, backend, known = self.request(), self.backend, self.facts
        self.run_job(
            lambda _s: fresh_checks(backend, request, None, known),
            self._accept_checked,
            self._accept_failed,
        )

    def _accept_checked(self, result: object) -> None:
        assert isinstance(result, tuple)
        self.cluster, facts, problems = result
        self.learn(facts)
        self.button(QWizard.WizardButton.CustomButton1).setEnabled(True)
        if not problems:
            self._fast_forward_to(Page.PROGRESS)
            return
        first = problems[0]
        if first.field in extend.PRE_EXTEND_FIELDS or first.resource_id is None:
            self._fast_forward_to(Page.PRE_EXTEND)
            self.pre_extend.show_problems([p for p in problems if p.resource_id is None])
            widget = self.pre_extend.fields.get(first.field)
        else:
            index = next(
                i for i, p in enumerate(self.extend_pages) if p.resource_id == first.resource_id
            )
            self._fast_forward_to(Page.EXTEND + index)
            page = self.extend_pages[index]
            page.show_problems(problems)
            widget = page.fields.get(first.field)
        if widget is not None:
            widget.setFocus()

    def _accept_failed(self, message: str) -> None:
        self.button(QWizard.WizardButton.CustomButton1).setEnabled(True)
        QMessageBox.warning(self, "Accept Defaults", f"The checks could not run: {message}")

    def _fast_forward_to(self, page_id: int) -> None:
        """Walk forward to ``page_id`` without running each page's own checks again."""
        self.fast_forward = True
        try:
            while self.currentId() != page_id:
                before = self.currentId()
                if before in (Page.PRE_EXTEND, Page.CHECKS) or before >= Page.EXTEND:
                    page = self.currentPage()
                    if page is not None and hasattr(page, "_timer"):
                        page._timer.stop()
                self._forced_next()
                if self.currentId() == before:
                    break
        finally:
            self.fast_forward = False

    def _forced_next(self) -> None:
        self._forcing = True
        try:
            self.next()
        finally:
            self._forcing = False

    def validateCurrentPage(self) -> bool:
        if getattr(self, "_forcing", False):
            return True
        return super().validateCurrentPage()

    # -- navigation ---------------------------------------------------------------------
    def nextId(self) -> int:
        current = self.currentId()
        if current == Page.INTRO:
            return Page.PRE_EXTEND
        if current == Page.PRE_EXTEND:
            return Page.CHECKS
        if current == Page.CHECKS:
            return Page.EXTEND if self.extend_pages else Page.PROGRESS
        if current == Page.PROGRESS:
            return Page.FINISH
        if current == Page.FINISH:
            return -1
        return super().nextId()

    @Slot(int)
    def _page_changed(self, page_id: int) -> None:
        accept = self.button(QWizard.WizardButton.CustomButton1)
        accept.setVisible(page_id in (Page.INTRO, Page.PRE_EXTEND))
        if page_id == Page.FINISH:
            self.button(QWizard.WizardButton.BackButton).setEnabled(False)
            self.button(QWizard.WizardButton.CancelButton).setEnabled(False)

    # -- closing ------------------------------------------------------------------------
    def reject(self) -> None:
        """Cancel: while the extend runs, ask; a cancelled extend is rolled back."""
        if self.currentId() == Page.PROGRESS and self.progress.running:
            answer = QMessageBox.question(
                self,
                "Cancel the extend?",
                "The extend is running. Cancel it? Every step done so far will be rolled back.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer == QMessageBox.StandardButton.Yes:
                self.progress.cancel.set()
                self.progress.result.setText("Cancelling: rolling back…")
            return
        if self.currentId() == Page.FINISH:
            self.accept()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.currentId() == Page.PROGRESS and self.progress.running:
            event.ignore()
            self.reject()
            return
        super().closeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.progress.running:
            self.reject()
            return
        super().keyPressEvent(event)
