"""Edit › Resource › Extend Resource Hierarchy: the wizard.

Pages, as a LifeKeeper administrator knows them (DOMAIN.md):

1. **Extend Resource Hierarchy**: what the wizard does, and two ways on: *Next* walks
   through the prompts, *Accept Defaults* takes every default and extends at once (every
   check still runs; on a problem it stops on that page with the field highlighted).
2. **Pre-Extend**: Template Server, Tag to Extend (both only when opened from the menu),
   Target Server, Switchback Type, Template Priority (initial extend only), Target
   Priority. Every field is checked as it is edited, its message right under it.
3. **Pre-Extend Checks**: run on a worker; "Pre-extend checks were successful" or every
   problem; then the information boxes: each tag and what it becomes on the target.
4. **Extend** (one per DataKeeper resource): Mount Point and Root Tag (with a protected
   filesystem on top), DataKeeper Resource Tag, Bitmap File (path, Browse, or None),
   with the filesystem type of the chosen location shown as it is typed.
5. **Extending**: each step of the plan ticked as it completes, a progress bar, the log.
   It cannot be closed half way; Cancel asks, and a cancelled extend is rolled back.
6. **Finish**: the result; *Done* closes.

Every rule comes from :mod:`core.rules.extend` (pure) and every action from
:mod:`core.operations.extend`; this module only shows what core returns. What the rules
need to know about the target's disks is gathered on workers (the GUI thread never
probes a disk): before the wizard opens (:func:`prepare`), when the target changes, and
for each check of a page that names a path; the newest answer wins.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QFont, QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from core import commands
from core.backend import Backend
from core.checks import Problem
from core.errors import LkError, OperationError
from core.events import EventHub, LogLine
from core.facts import Facts, gather
from core.model import Cluster
from core.operations import extend as operation
from core.rules import extend
from core.rules.extend import DataKeeperExtend, ExtendDefaults, ExtendRequest
from core.session import Session
from gui import icons, jobs
from gui.checker import LatestOnly
from gui.jobs import Job, JobSignals

log = logging.getLogger(__name__)

ERROR_STYLE = "color: #c62828;"
OK_STYLE = "color: #2e7d32;"
NOTE_STYLE = "color: #5d4037;"
INVALID_FIELD = "border: 1px solid #c62828;"
MESSAGE_WIDTH = 460  # wrapped messages under fields: wide enough to read


class Page(enum.IntEnum):
    INTRO = 0
    PRE_EXTEND = 1
    CHECKS = 2
    EXTEND = 10  # + the index of the DataKeeper resource
    PROGRESS = 90
    FINISH = 91


def error_label(name: str) -> QLabel:
    label = QLabel(objectName=f"{name}_error")
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.setAccessibleName(f"{extend.LABELS.get(name, name)} problem")
    label.setMinimumWidth(MESSAGE_WIDTH)
    label.hide()
    return label


def show_field_problems(
    labels: dict[str, QLabel], fields: dict[str, QWidget], problems: list[Problem]
) -> None:
    """Each problem's message under its field, the field outlined; the rest cleared."""
    by_field: dict[str, list[str]] = {}
    for p in problems:
        by_field.setdefault(p.field, []).append(p.message)
    for name, label in labels.items():
        messages = by_field.get(name, [])
        label.setText("\n".join(messages))
        label.setVisible(bool(messages))
        widget = fields.get(name)
        if widget is not None:
            widget.setStyleSheet(INVALID_FIELD if messages else "")
            widget.setProperty("invalid", bool(messages))


# -- pages ------------------------------------------------------------------------------
class IntroPage(QWizardPage):
    def __init__(self, wizard: ExtendWizard) -> None:
        super().__init__()
        self.setObjectName("intro_page")
        self.setTitle("Extend Resource Hierarchy")
        self.setSubTitle(
            "Copy a hierarchy that is in service to another server, which then stands by for it."
        )
        text = QLabel(objectName="intro_text")
        text.setWordWrap(True)
        text.setText(
            "<p>This wizard extends the resource hierarchy "
            f"<b>{wizard.defaults.request.tag_to_extend}</b> from the server where it is in "
            "service (the <i>template server</i>) to a <i>target server</i>. The target "
            "becomes a standby: its DataKeeper mirror is created and resynchronised from the "
            "source.</p>"
            "<p><b>Next</b> walks you through every setting, each with its default.<br>"
            "<b>Accept Defaults</b> takes every default and extends at once; every check "
            "still runs, and on a problem the wizard stops at that setting.</p>"
        )
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addStretch(1)


class PreExtendPage(QWizardPage):
    """The Pre-Extend fields, checked as they are edited."""

    def __init__(self, wizard: ExtendWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setObjectName("pre_extend_page")
        self.setTitle("Pre-Extend")
        self.setSubTitle("Where the hierarchy comes from, where it goes, and its priorities.")
        d = wizard.defaults
        self.template_server = QComboBox(objectName="template_server")
        self.template_server.addItems(d.choices["template_server"])
        self.tag_to_extend = QComboBox(objectName="tag_to_extend")
        self.target_server = QComboBox(objectName="target_server")
        self.switchback_type = QComboBox(objectName="switchback_type")
        self.switchback_type.addItems(d.choices["switchback_type"])
        self.template_priority = QComboBox(objectName="template_priority")
        self.target_priority = QComboBox(objectName="target_priority")
        for combo in (self.template_priority, self.target_priority):
            combo.setEditable(True)
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.fields: dict[str, QWidget] = {
            "template_server": self.template_server,
            "tag_to_extend": self.tag_to_extend,
            "target_server": self.target_server,
            "switchback_type": self.switchback_type,
            "template_priority": self.template_priority,
            "target_priority": self.target_priority,
        }
        self.errors = {name: error_label(name) for name in self.fields}
        self.notes: dict[str, QLabel] = {}
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        mnemonic = {
            "template_server": "Te&mplate Server:",
            "tag_to_extend": "T&ag to Extend:",
            "target_server": "&Target Server:",
            "switchback_type": "&Switchback Type:",
            "template_priority": "Template &Priority:",
            "target_priority": "Target P&riority:",
        }
        for name, widget in self.fields.items():
            widget.setAccessibleName(extend.LABELS[name])
            widget.setToolTip(_TIPS[name])
            widget.setMinimumWidth(260)
            label = QLabel(mnemonic[name])
            label.setBuddy(widget)
            label.setObjectName(f"{name}_label")
            form.addRow(label, widget)
            form.addRow("", self.errors[name])
            note = QLabel(objectName=f"{name}_note")
            note.setStyleSheet(NOTE_STYLE)
            note.setWordWrap(True)
            note.setMinimumWidth(MESSAGE_WIDTH)
            note.hide()
            self.notes[name] = note
            form.addRow("", note)
            shown = name in d.shown
            label.setVisible(shown)
            widget.setVisible(shown)
        self._fill(d)
        self._problems: list[Problem] = []
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.validate)
        self.template_server.currentTextChanged.connect(self._template_changed)
        self.target_server.currentTextChanged.connect(self._target_changed)
        for combo in (self.tag_to_extend, self.switchback_type):
            combo.currentTextChanged.connect(self._edited)
        for combo in (self.template_priority, self.target_priority):
            combo.editTextChanged.connect(self._edited)

    def initializePage(self) -> None:
        self.validate()

    def refill(self, d: ExtendDefaults) -> None:
        """New defaults (another template server): every field shows them."""
        self._fill(d)
        self._edited()

    def _fill(self, d: ExtendDefaults) -> None:
        r = d.request
        for w in self.fields.values():
            w.blockSignals(True)
        self.template_server.setCurrentText(r.template_server)
        self.tag_to_extend.clear()
        self.tag_to_extend.addItems(d.choices["tag_to_extend"])
        self.tag_to_extend.setCurrentText(r.tag_to_extend)
        self.target_server.clear()
        self.target_server.addItems(d.choices["target_server"])
        self.target_server.setCurrentText(r.target_server)
        self.switchback_type.setCurrentText(r.switchback_type)
        self.template_priority.clear()
        if r.template_priority is not None:
            self.template_priority.addItem(str(r.template_priority))
        self.template_priority.setCurrentText(
            "" if r.template_priority is None else str(r.template_priority)
        )
        self.target_priority.clear()
        self.target_priority.addItems(_priority_choices(d))
        self.target_priority.setCurrentText(str(r.target_priority))
        show_template_priority = "template_priority" in d.shown
        for w in (self.template_priority, self.findChild(QLabel, "template_priority_label")):
            if w is not None:
                w.setVisible(show_template_priority)
        for w in self.fields.values():
            w.blockSignals(False)
        note = d.notes.get("target_server", "")
        self.notes["target_server"].setText(note)
        self.notes["target_server"].setVisible(bool(note))

    @Slot(str)
    def _template_changed(self, server: str) -> None:
        """A new template server: its resources fill Tag to Extend, defaults follow."""
        self.w.reset_defaults(refill=True, template_server=server, tag=None)
        self._edited()

    @Slot(str)
    def _target_changed(self, server: str) -> None:
        self.w.reset_defaults(target_server=server)
        self._edited()

    @Slot()
    def _edited(self) -> None:
        self.w.pre_extend_changed()
        self._timer.start()

    def request(self) -> ExtendRequest:
        """The request as the fields say, on top of the defaults of the other pages."""
        base = self.w.defaults.request
        template_priority: int | str | None = self.template_priority.currentText()
        if "template_priority" not in self.w.defaults.shown:
            template_priority = None
        return dataclasses.replace(
            base,
            template_server=self.template_server.currentText(),
            tag_to_extend=self.tag_to_extend.currentText(),
            target_server=self.target_server.currentText(),
            switchback_type=self.switchback_type.currentText(),
            template_priority=template_priority,
            target_priority=self.target_priority.currentText(),
        )

    @Slot()
    def validate(self) -> None:
        """Check every field now (cheap, in memory) and show each message under it."""
        self.show_problems(extend.pre_extend_field_problems(self.w.cluster, self.w.request()))

    def show_problems(self, problems: list[Problem]) -> None:
        self._problems = [p for p in problems if p.field in self.fields]
        show_field_problems(self.errors, self.fields, self._problems)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        if self._timer.isActive() or self.w.defaults_pending:
            return False
        return not self._problems and bool(self.target_server.currentText())


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


class ExtendPage(QWizardPage):
    """The Extend page of one DataKeeper resource."""

    def __init__(self, wizard: ExtendWizard, index: int) -> None:
        super().__init__()
        self.w = wizard
        self.index = index
        page = wizard.defaults.pages[index]
        self.resource_id = page.resource_id
        self.setObjectName(f"extend_page_{index}")
        self.setTitle(f"Extend {page.template_dk_tag}")
        self.setSubTitle("The DataKeeper resource on the target, and its intent log (bitmap).")
        self.mount_point = QLineEdit(objectName="mount_point")
        self.root_tag = QLineEdit(objectName="root_tag")
        self.dk_tag = QLineEdit(objectName="dk_tag")
        self.bitmap_file = QLineEdit(objectName="bitmap_file")
        self.bitmap_none = QCheckBox("&None: no bitmap", objectName="bitmap_none")
        self.bitmap_none.setToolTip("No intent log: every resync will be a full resync.")
        self.browse = QPushButton("&Browse…", objectName="bitmap_browse")
        self.browse.setToolTip("Choose the bitmap file's folder on the target server.")
        self.fs_type = QLabel(objectName="bitmap_fs_type")
        self.fs_type.setAccessibleName("File system of the bitmap location")
        self.none_note = QLabel(extend.NO_BITMAP_NOTE, objectName="bitmap_none_note")
        self.none_note.setStyleSheet(NOTE_STYLE)
        self.none_note.setWordWrap(True)
        self.none_note.hide()
        self.bitmap_note = QLabel(objectName="bitmap_note")
        self.bitmap_note.setStyleSheet(NOTE_STYLE)
        self.bitmap_note.setWordWrap(True)
        self.bitmap_note.setMinimumWidth(MESSAGE_WIDTH)
        self.none_note.setMinimumWidth(MESSAGE_WIDTH)
        self.fields: dict[str, QWidget] = {
            "mount_point": self.mount_point,
            "root_tag": self.root_tag,
            "dk_tag": self.dk_tag,
            "bitmap_file": self.bitmap_file,
        }
        self.errors = {name: error_label(name) for name in self.fields}
        bitmap_row = QWidget()
        row = QHBoxLayout(bitmap_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bitmap_file, 1)
        row.addWidget(self.browse)
        row.addWidget(self.bitmap_none)
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        labels = {
            "mount_point": "&Mount Point:",
            "root_tag": "R&oot Tag:",
            "dk_tag": "&DataKeeper Resource Tag:",
            "bitmap_file": "&Bitmap File:",
        }
        for name, widget in self.fields.items():
            widget.setAccessibleName(extend.LABELS[name])
            widget.setToolTip(_TIPS[name])
            label = QLabel(labels[name], objectName=f"{name}_label")
            label.setBuddy(widget)
            form.addRow(label, bitmap_row if name == "bitmap_file" else widget)
            form.addRow("", self.errors[name])
            if name not in page.shown:
                label.hide()
                widget.hide()
        form.addRow("", self.fs_type)
        form.addRow("", self.none_note)
        form.addRow("", self.bitmap_note)
        self._problems: list[Problem] = []
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.validate)
        self.checker = LatestOnly(self)
        self.checker.answered.connect(self._checked)
        self.checker.failed.connect(self._check_failed)
        for edit in (self.mount_point, self.root_tag, self.dk_tag, self.bitmap_file):
            edit.textChanged.connect(self._edited)
        self.bitmap_none.toggled.connect(self._none_toggled)
        self.browse.clicked.connect(self._browse)
        self.fill()

    def initializePage(self) -> None:
        self.validate()

    def fill(self) -> None:
        """The defaults for the current target (it may have changed since)."""
        page = self.w.defaults.pages[self.index]
        dk = page.defaults
        for edit, value in (
            (self.mount_point, dk.mount_point),
            (self.root_tag, dk.root_tag),
            (self.dk_tag, dk.dk_tag),
            (self.bitmap_file, dk.bitmap_file),
        ):
            edit.blockSignals(True)
            edit.setText(value or "")
            edit.blockSignals(False)
        self.bitmap_none.blockSignals(True)
        self.bitmap_none.setChecked(dk.bitmap_file is None)
        self.bitmap_none.blockSignals(False)
        self.bitmap_file.setEnabled(dk.bitmap_file is not None)
        self.browse.setEnabled(dk.bitmap_file is not None)
        self.none_note.setVisible(dk.bitmap_file is None)
        self.bitmap_note.setText(page.bitmap_note)
        self.bitmap_note.setVisible(bool(page.bitmap_note))
        # Browse needs the target's folders on this machine (the lab has them).
        target = self.w.defaults.request.target_server
        self.browse.setVisible(bool(target) and self.w.backend.local_folder(target) is not None)
        if self.w.currentId() == Page.EXTEND + self.index:
            self.validate()

    def entry(self) -> DataKeeperExtend:
        page = self.w.defaults.pages[self.index]
        shown = page.shown
        return DataKeeperExtend(
            resource_id=self.resource_id,
            dk_tag=self.dk_tag.text(),
            bitmap_file=None if self.bitmap_none.isChecked() else self.bitmap_file.text(),
            mount_point=self.mount_point.text() if "mount_point" in shown else None,
            root_tag=self.root_tag.text() if "root_tag" in shown else None,
        )

    @Slot()
    def _edited(self) -> None:
        self._timer.start()
        self.completeChanged.emit()

    @Slot(bool)
    def _none_toggled(self, none: bool) -> None:
        self.bitmap_file.setEnabled(not none)
        self.browse.setEnabled(not none)
        self.none_note.setVisible(none)
        self._edited()

    @Slot()
    def _browse(self) -> None:
        """Pick a folder on the target (its folder in the lab); the file name is kept."""
        request = self.w.request()
        root = self.w.backend.local_folder(request.target_server)
        if root is None:
            return
        current = self.bitmap_file.text() or "/opt/LifeKeeper/"
        parts = [p for p in Path(current).parent.parts[1:] if p not in ("", ".", "..")]
        folder = QFileDialog.getExistingDirectory(
            self, f"Bitmap folder on {request.target_server}", str(root.joinpath(*parts))
        )
        if not folder:
            return
        try:
            relative = Path(folder).resolve().relative_to(root.resolve())
        except ValueError:
            QMessageBox.warning(
                self, "Bitmap File", f"Choose a folder of {request.target_server} (under {root})."
            )
            return
        name = Path(current).name or f"bitmap_{self.dk_tag.text()}"
        self.bitmap_file.setText(f"/{relative}/{name}".replace("//", "/"))

    @Slot()
    def validate(self) -> None:
        """Check the page: the rules here, the target's disks probed on a worker."""
        request, backend, cluster = self.w.request(), self.w.backend, self.w.cluster
        needs = extend.needs(cluster, request)
        if self.w.facts.has(needs):
            self._checked((request, self.w.facts))
            return
        known = self.w.facts
        self.checker.submit(lambda: (request, gather(backend, needs, known)))
        self.completeChanged.emit()

    def _checked(self, answer: object) -> None:
        assert isinstance(answer, tuple)
        request, facts = answer
        self.w.learn(facts)
        problems = extend.check_page(
            self.w.cluster, self.w.facts, request, extend.EXTEND_PAGE, self.resource_id
        )
        self.show_problems(problems)
        self._show_fs_type(request)

    def _check_failed(self, message: str) -> None:
        self.show_problems([Problem("bitmap_file", "probe_failed", message, self.resource_id)])

    def _show_fs_type(self, request: ExtendRequest) -> None:
        target = request.target_server
        path = self.bitmap_file.text()
        info = self.w.facts.paths.get((target, path))
        if self.bitmap_none.isChecked() or not path.startswith("/") or info is None:
            self.fs_type.hide()
            return
        if info.error or not info.fs_type:
            self.fs_type.hide()
            return
        refused = info.is_btrfs
        self.fs_type.setText(
            f"On {target} this location is on <b>{info.fs_type}</b>"
            + (" — refused: DataKeeper cannot keep a bitmap on btrfs." if refused else ".")
        )
        self.fs_type.setStyleSheet(ERROR_STYLE if refused else "")
        self.fs_type.show()

    def show_problems(self, problems: list[Problem]) -> None:
        self._problems = [
            p
            for p in problems
            if p.field in self.fields and p.resource_id in (None, self.resource_id)
        ]
        show_field_problems(self.errors, self.fields, self._problems)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return not self._timer.isActive() and not self.checker.busy and not self._problems

    def nextId(self) -> int:
        if self.index + 1 < len(self.w.defaults.pages):
            return Page.EXTEND + self.index + 1
        return Page.PROGRESS


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
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
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


# -- the wizard ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """What the wizard opens with: the cluster, and what its defaults need to know."""

    cluster: Cluster
    facts: Facts
    template_server: str | None = None
    tag: str | None = None
    target_server: str | None = None
    from_create: bool = False


def prepare_now(backend: Backend, cluster: Cluster | None = None, **choices: Any) -> Prepared:
    """Gather what the wizard needs, in the calling thread (a worker; or a test)."""
    cluster = cluster if cluster is not None else backend.snapshot()
    wanted = {k: choices.get(k) for k in ("template_server", "tag", "target_server")}
    facts = operation.facts_for(backend, cluster, **wanted)
    extend.defaults(cluster, facts, **wanted)  # CheckFailed now when nothing can be extended
    return Prepared(cluster, facts, from_create=bool(choices.get("from_create")), **wanted)


def prepare(
    backend: Backend,
    cluster: Cluster | None,
    choices: dict[str, Any],
    on_ready: Callable[[Prepared], object],
    on_failed: Callable[[str], None],
) -> Job:
    """Gather what the wizard needs on a worker, then ``on_ready(prepared)``."""
    return jobs.start(
        _PREPARING,
        lambda _signals: prepare_now(backend, cluster, **choices),
        lambda prepared: on_ready(prepared),  # type: ignore[arg-type]
        on_failed,
    )


_PREPARING: set[Job] = set()


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
        self.setStartId(Page.INTRO)
        self.currentIdChanged.connect(self._page_changed)
        self.resize(760, 600)
        self._page_changed(Page.INTRO)

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


def _priority_choices(d: ExtendDefaults) -> list[str]:
    """The default target priority first, then other free multiples of ten."""
    h_used = {e for e in (d.request.template_priority,) if e is not None}
    first = int(d.request.target_priority)
    choices = [first, *[p for p in range(10, 1000, 10) if p != first][:9]]
    return [str(p) for p in choices if p not in h_used]


_TIPS = {
    "template_server": "The server where the hierarchy is in service now.",
    "tag_to_extend": "Any resource of the hierarchy; the whole hierarchy is extended.",
    "target_server": "An alive server that does not have this hierarchy yet.",
    "switchback_type": "DataKeeper hierarchies support intelligent switchback only.",
    "template_priority": "The template server's priority (1-999, lower is preferred).",
    "target_priority": "The target server's priority (1-999, unique for this hierarchy).",
    "mount_point": "Where the filesystem is mounted on the target (absolute path).",
    "root_tag": "The filesystem resource's tag on the target.",
    "dk_tag": "The DataKeeper resource's tag on the target.",
    "bitmap_file": "The intent log's file on the target; not on btrfs. Or None.",
}
