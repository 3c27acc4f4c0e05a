"""Page 4, one per DataKeeper resource: the Extend page (mount point, tags, bitmap file
with the file system of its location)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QWidget,
    QWizardPage,
)

from core.checks import Problem
from core.facts import gather
from core.rules import extend
from core.rules.extend import DataKeeperExtend, ExtendRequest
from gui.checker import LatestOnly
from gui.extend_wizard.common import TIPS, Page
from gui.field_messages import (
    ERROR_STYLE,
    MESSAGE_WIDTH,
    NOTE_STYLE,
    error_label,
    show_field_problems,
)

if TYPE_CHECKING:
    from gui.extend_wizard.wizard import ExtendWizard


REPLICATION = ("Synchronous", "Asynchronous")  # the index is the mode: 1 = asynchronous


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
        self._make_widgets()
        self.fields: dict[str, QWidget] = {
            "mount_point": self.mount_point,
            "root_tag": self.root_tag,
            "dk_tag": self.dk_tag,
            "bitmap_file": self.bitmap_file,
        }
        self._lay_out(page.shown)
        self._problems: list[Problem] = []
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.validate)
        self.checker = LatestOnly(self)
        self.checker.answered.connect(self._checked)
        self.checker.failed.connect(self._check_failed)
        for edit in (self.mount_point, self.root_tag, self.dk_tag, self.bitmap_file):
            edit.textChanged.connect(self._edited)
        self.bitmap_none.toggled.connect(self._none_toggled)
        self.replication.currentIndexChanged.connect(self._edited)
        self.browse.clicked.connect(self._browse)
        self.fill()

    def _make_widgets(self) -> None:
        self.mount_point = QLineEdit(objectName="mount_point")
        # This target's mirror mode (each target has its own; the mirror's is the default).
        self.replication = QComboBox(objectName="replication")
        self.replication.addItems(list(REPLICATION))
        self.replication.setAccessibleName(extend.LABELS["asynchronous"])
        self.replication.setToolTip(
            "Synchronous: a write returns once this target has it. Asynchronous: writes "
            "to this target are queued and sent behind (faster writes over a slow link)."
        )
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

    def _lay_out(self, shown: Collection[str]) -> None:
        """The form: each field, its message under it; the bitmap's row with Browse and None."""
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
            widget.setToolTip(TIPS[name])
            label = QLabel(labels[name], objectName=f"{name}_label")
            label.setBuddy(widget)
            form.addRow(label, bitmap_row if name == "bitmap_file" else widget)
            form.addRow("", self.errors[name])
            if name not in shown:
                label.hide()
                widget.hide()
        form.addRow("", self.fs_type)
        label = QLabel("Re&plication:", objectName="replication_label")
        label.setBuddy(self.replication)
        form.addRow(label, self.replication)
        form.addRow("", self.none_note)
        form.addRow("", self.bitmap_note)

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
        self.replication.blockSignals(True)
        mode = page.mirror_asynchronous if dk.asynchronous is None else dk.asynchronous
        self.replication.setCurrentIndex(int(mode))
        self.replication.blockSignals(False)
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
            asynchronous=self.asynchronous(),
        )

    def asynchronous(self) -> bool | None:
        """The mode chosen for this target; None when it is the mirror's own."""
        chosen = self.replication.currentIndex() == 1
        return None if chosen == self.w.defaults.pages[self.index].mirror_asynchronous else chosen

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
