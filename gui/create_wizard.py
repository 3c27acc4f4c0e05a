"""Edit › Resource › Create Resource Hierarchy: the wizard.

First the recovery kit (DataKeeper, IP Address, Generic Application). For DataKeeper, two
pages of fields (where the data is; what protects it); for an IP address or an
application, one page of its settings (:mod:`gui.create_kit_page`). Each is checked by
core as it is edited, then the steps as they run, then the result with **Extend this
hierarchy now**, which opens the Extend wizard without Template Server and Tag to Extend.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from core import commands
from core.backend import Backend
from core.checks import Problem
from core.events import EventHub, LogLine
from core.facts import Facts, VolumeInfo, gather
from core.model import Cluster, ResourceKind
from core.operations import create as operation
from core.operations import create_kinds
from core.plan import Plan
from core.rules import create
from core.rules import kinds as kind_rules
from core.rules.create import CreateRequest
from core.session import Session
from gui import icons, jobs
from gui.checker import LatestOnly
from gui.create_kit_page import KitPage
from gui.field_messages import (
    ERROR_STYLE,
    MESSAGE_WIDTH,
    NOTE_STYLE,
    OK_STYLE,
    error_label,
    show_field_problems,
)
from gui.jobs import Job, JobSignals

WHERE_FIELDS = ("switchback_type", "server", "hierarchy_type", "source_disk", "disk_size_mib")
WHAT_FIELDS = ("mount_point", "root_tag", "fs_type", "dk_tag", "bitmap_file", "asynchronous")
_MNEMONIC = {
    "switchback_type": "&Switchback Type:",
    "server": "Se&rver:",
    "hierarchy_type": "&Hierarchy Type:",
    "source_disk": "Source &Disk:",
    "disk_size_mib": "New Disk Si&ze (MiB):",
    "mount_point": "&Mount Point:",
    "root_tag": "R&oot Tag:",
    "fs_type": "&File System Type:",
    "dk_tag": "Data Re&plication Resource Tag:",
    "bitmap_file": "&Bitmap File:",
    "asynchronous": "",
}


class _FieldsPage(QWizardPage):
    """A form of create fields, each validated by core as it changes."""

    def __init__(
        self, wizard: CreateWizard, names: tuple[str, ...], title: str, subtitle: str
    ) -> None:
        super().__init__()
        self.w = wizard
        self.names = names
        self.setTitle(title)
        self.setSubTitle(subtitle)
        self.form = QFormLayout(self)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.fields: dict[str, QWidget] = {}
        self.errors = {name: error_label(name) for name in names}
        self.labels: dict[str, QLabel] = {}
        self._problems: list[Problem] = []
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.validate)
        self.checker = LatestOnly(self)
        self.checker.answered.connect(self._checked)
        self.checker.failed.connect(self._check_failed)

    def add(self, name: str, widget: QWidget, row: QWidget | None = None) -> None:
        widget.setObjectName(name)
        widget.setAccessibleName(create.LABELS[name])
        widget.setMinimumWidth(260)
        self.fields[name] = widget
        label = QLabel(_MNEMONIC[name], objectName=f"{name}_label")
        label.setBuddy(widget)
        self.labels[name] = label
        self.form.addRow(label, row or widget)
        self.form.addRow("", self.errors[name])

    def show_field(self, name: str, shown: bool) -> None:
        self.labels[name].setVisible(shown)
        self.fields[name].setVisible(shown)
        if not shown:
            self.errors[name].hide()

    @Slot()
    def edited(self) -> None:
        self._timer.start()
        self.completeChanged.emit()

    @Slot()
    def validate(self) -> None:
        """Check the page: the rules here, the server's disks probed on a worker."""
        request, backend = self.w.request(), self.w.backend
        needs = create.needs(self.w.cluster, request)
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
        problems = create.check_request(self.w.cluster, self.w.facts, request)
        shown = create.shown_fields(request.hierarchy_type)
        self._problems = [p for p in problems if p.field in self.names and p.field in shown]
        show_field_problems(self.errors, self.fields, self._problems)
        self.after_validate(request)
        self.completeChanged.emit()

    def _check_failed(self, message: str) -> None:
        self._problems = [Problem(self.names[0], "probe_failed", message)]
        show_field_problems(self.errors, self.fields, self._problems)
        self.completeChanged.emit()

    def after_validate(self, request: CreateRequest) -> None:
        """Page-specific hints shown after each check."""

    def initializePage(self) -> None:
        self.validate()

    def isComplete(self) -> bool:
        if self._timer.isActive() or self.checker.busy or self.w.defaults_pending:
            return False
        return not self._problems


class WherePage(_FieldsPage):
    def __init__(self, wizard: CreateWizard) -> None:
        super().__init__(
            wizard,
            WHERE_FIELDS,
            "Create Resource Hierarchy",
            "Where the data to protect is: the server and its disk.",
        )
        self.setObjectName("create_where_page")
        d = wizard.defaults
        self.switchback_type = QComboBox()
        self.switchback_type.addItems(d.choices["switchback_type"])
        self.server = QComboBox()
        self.server.addItems(d.choices["server"])
        self.hierarchy_type = QComboBox()
        for key, text in create.HIERARCHY_TYPES.items():
            self.hierarchy_type.addItem(text, key)
        self.source_disk = QComboBox()
        self.source_disk.setEditable(True)
        self.disk_size_mib = QLineEdit()
        self.add("switchback_type", self.switchback_type)
        self.add("server", self.server)
        self.add("hierarchy_type", self.hierarchy_type)
        self.add("source_disk", self.source_disk)
        self.add("disk_size_mib", self.disk_size_mib)
        self.disk_note = QLabel(objectName="source_disk_note")
        self.disk_note.setStyleSheet(NOTE_STYLE)
        self.disk_note.setWordWrap(True)
        self.disk_note.setMinimumWidth(MESSAGE_WIDTH)
        self.form.addRow("", self.disk_note)
        self.fill(d.request)
        self.switchback_type.currentTextChanged.connect(self.edited)
        self.server.currentTextChanged.connect(self._server_changed)
        self.hierarchy_type.currentIndexChanged.connect(self._type_changed)
        self.source_disk.editTextChanged.connect(self.edited)
        self.disk_size_mib.textChanged.connect(self.edited)

    def fill(self, r: CreateRequest) -> None:
        for w in self.fields.values():
            w.blockSignals(True)
        self.switchback_type.setCurrentText(r.switchback_type)
        self.server.setCurrentText(r.server)
        self.hierarchy_type.setCurrentIndex(self.hierarchy_type.findData(r.hierarchy_type))
        self.source_disk.clear()
        self.source_disk.addItems(self.w.defaults.choices["source_disk"])
        self.source_disk.setEditText(r.source_disk)
        self.disk_size_mib.setText("" if r.disk_size_mib is None else str(r.disk_size_mib))
        for w in self.fields.values():
            w.blockSignals(False)

    @Slot()
    def _server_changed(self) -> None:
        self.w.reset_defaults()
        self.edited()

    @Slot()
    def _type_changed(self) -> None:
        self.w.reset_defaults()
        self.edited()

    def after_validate(self, request: CreateRequest) -> None:
        volume = self.w.volume(request.server, request.source_disk)
        exists = volume is not None
        self.show_field("disk_size_mib", not exists)
        if not request.source_disk.startswith("/"):
            self.disk_note.hide()
            return
        if volume is not None:
            label = volume.fs_label
            has = f"it has an {label} file system" if label else "it has no file system"
            erase = (
                " (Replicate New File System erases it)"
                if (label and request.hierarchy_type == create.NEW_FS)
                else ""
            )
            self.disk_note.setText(
                f"{request.source_disk} exists on {request.server}: {has}{erase}."
            )
        else:
            self.disk_note.setText(
                f"{request.source_disk} does not exist yet: it will be created with the size below."
            )
        self.disk_note.show()


class WhatPage(_FieldsPage):
    def __init__(self, wizard: CreateWizard) -> None:
        super().__init__(
            wizard,
            WHAT_FIELDS,
            "DataKeeper Resource",
            "The file system to protect, and how its volume is replicated.",
        )
        self.setObjectName("create_what_page")
        self.mount_point = QLineEdit()
        self.root_tag = QLineEdit()
        self.fs_type = QComboBox()
        self.fs_type.addItems(create.FS_TYPES)
        self.dk_tag = QLineEdit()
        self.bitmap_file = QLineEdit()
        self.bitmap_none = QCheckBox("&None: no bitmap", objectName="bitmap_none")
        self.asynchronous = QCheckBox("Enable &Asynchronous Replication")
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.bitmap_file, 1)
        box.addWidget(self.bitmap_none)
        self.add("mount_point", self.mount_point)
        self.add("root_tag", self.root_tag)
        self.add("fs_type", self.fs_type)
        self.add("dk_tag", self.dk_tag)
        self.add("bitmap_file", self.bitmap_file, row)
        self.add("asynchronous", self.asynchronous)
        self.fs_type_label = QLabel(objectName="bitmap_fs_type")
        self.none_note = QLabel(
            "No bitmap: no intent log is kept, so every resync will be a full resync.",
            objectName="bitmap_none_note",
        )
        self.bitmap_note = QLabel(objectName="bitmap_note")
        for note in (self.none_note, self.bitmap_note):
            note.setStyleSheet(NOTE_STYLE)
            note.setWordWrap(True)
            note.setMinimumWidth(MESSAGE_WIDTH)
        self.form.addRow("", self.fs_type_label)
        self.form.addRow("", self.none_note)
        self.form.addRow("", self.bitmap_note)
        self.fill(wizard.defaults.request)
        for edit in (self.mount_point, self.root_tag, self.dk_tag, self.bitmap_file):
            edit.textChanged.connect(self.edited)
        self.fs_type.currentTextChanged.connect(self.edited)
        self.asynchronous.toggled.connect(self.edited)
        self.bitmap_none.toggled.connect(self._none_toggled)

    def fill(self, r: CreateRequest) -> None:
        for w in (*self.fields.values(), self.bitmap_none):
            w.blockSignals(True)
        self.mount_point.setText(r.mount_point or "")
        self.root_tag.setText(r.root_tag or "")
        self.fs_type.setCurrentText(r.fs_type or "ext4")
        self.dk_tag.setText(r.dk_tag)
        self.bitmap_file.setText(r.bitmap_file or "")
        self.bitmap_none.setChecked(r.bitmap_file is None)
        self.bitmap_file.setEnabled(r.bitmap_file is not None)
        self.asynchronous.setChecked(r.asynchronous)
        for w in (*self.fields.values(), self.bitmap_none):
            w.blockSignals(False)
        self.bitmap_note.setText(self.w.defaults.bitmap_note)
        self.bitmap_note.setVisible(bool(self.w.defaults.bitmap_note))

    @Slot(bool)
    def _none_toggled(self, none: bool) -> None:
        self.bitmap_file.setEnabled(not none)
        self.edited()

    def after_validate(self, request: CreateRequest) -> None:
        fs = request.hierarchy_type != create.DK_ONLY
        for name in ("mount_point", "root_tag", "fs_type"):
            self.show_field(name, fs)
        self.fs_type.setEnabled(request.hierarchy_type == create.NEW_FS)
        self.none_note.setVisible(request.bitmap_file is None)
        self.fs_type_label.hide()
        if request.bitmap_file and request.bitmap_file.startswith("/"):
            info = self.w.facts.paths.get((request.server, request.bitmap_file))
            if info is None or info.error or not info.fs_type:
                return
            refused = info.is_btrfs
            self.fs_type_label.setText(
                f"On {request.server} this location is on <b>{info.fs_type}</b>"
                + (" — refused: DataKeeper cannot keep a bitmap on btrfs." if refused else ".")
            )
            self.fs_type_label.setStyleSheet(ERROR_STYLE if refused else "")
            self.fs_type_label.show()


class CreateProgressPage(QWizardPage):
    def __init__(self, wizard: CreateWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setObjectName("create_progress_page")
        self.setTitle("Creating")
        self.setSubTitle("Every step is undone if one fails.")
        self.steps = QListWidget(objectName="create_steps")
        self.steps.setWordWrap(True)
        self.bar = QProgressBar(objectName="create_progress")
        self.result = QLabel(objectName="create_result")
        self.result.setWordWrap(True)
        self.command = QLineEdit(objectName="show_command")
        self.command.setReadOnly(True)
        self.command.setAccessibleName("The lkctl command that does the same")
        layout = QVBoxLayout(self)
        layout.addWidget(self.steps, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.result)
        layout.addWidget(QLabel("The same from the command line:"))
        layout.addWidget(self.command)
        self.running = False
        self.succeeded = False
        self.hierarchy_root = ""

    def initializePage(self) -> None:
        self.steps.clear()
        self.result.clear()
        self.running, self.succeeded = True, False
        backend, session = self.w.backend, self.w.session
        if self.w.kind == DATAKEEPER:
            request = self.w.request()
            self.command.setText(commands.create(request))

            def make_plan() -> Plan:
                return operation.plan(backend, request)
        else:
            kit_request = self.w.kind_request()
            self.command.setText(commands.create_resource(kit_request))

            def make_plan() -> Plan:
                return create_kinds.plan(backend, kit_request)

        self.bar.setRange(0, 0)

        def work(signals: JobSignals) -> object:
            hub = EventHub()
            hub.subscribe(lambda e: signals.log.emit(e.level, e.text), LogLine)  # type: ignore[attr-defined]
            plan = make_plan()
            signals.step.emit(-1, len(plan.steps), "\n".join(plan.titles), "plan")
            return operation.execute(
                backend,
                plan,
                session,
                hub=hub,
                on_step=lambda i, n, t, s: signals.step.emit(i, n, t, s),
            )

        self.w.run_job(work, self._done, self._failed, self._step)
        self.completeChanged.emit()

    @Slot(int, int, str, str)
    def _step(self, index: int, total: int, title: str, status: str) -> None:
        if status == "plan":
            for text in title.split("\n"):
                self.steps.addItem(QListWidgetItem(icons.icon("state-standby"), text))
            self.bar.setRange(0, total)
            return
        item = self.steps.item(index)
        if item is None:
            return
        name = {"running": "state-resyncing", "done": "state-active", "failed": "state-failed"}[
            status
        ]
        item.setIcon(icons.icon(name))
        if status == "done":
            self.bar.setValue(index + 1)

    def _done(self, result: object) -> None:
        assert isinstance(result, operation.CreateResult)
        self.running, self.succeeded = False, True
        self.hierarchy_root = result.root_tag
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.result.setText(result.message)
        self.result.setStyleSheet(OK_STYLE)
        self.w.created.emit(result.hierarchy_id, result.root_tag)
        self.completeChanged.emit()
        self.w.button(QWizard.WizardButton.BackButton).setEnabled(False)

    def _failed(self, message: str) -> None:
        self.running, self.succeeded = False, False
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.result.setText(
            f"The create failed: {message}\nEverything done so far was rolled "
            "back. Go Back to change the settings, or Cancel."
        )
        self.result.setStyleSheet(ERROR_STYLE)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.succeeded


class CreateFinishPage(QWizardPage):
    def __init__(self, wizard: CreateWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setObjectName("create_finish_page")
        self.setTitle("Hierarchy Created")
        self.setSubTitle("It is in service, and not protected yet.")
        self.text = QLabel(objectName="create_finish_text")
        self.text.setWordWrap(True)
        self.extend_now = QPushButton("&Extend this hierarchy now…", objectName="extend_now")
        self.extend_now.setIcon(icons.icon("action-extend"))
        self.extend_now.clicked.connect(self._extend_now)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.extend_now, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        self.setButtonText(QWizard.WizardButton.FinishButton, "&Done")

    def initializePage(self) -> None:
        server = self.w.chosen_server()
        self.text.setText(
            f"<p><b>{self.w.progress.hierarchy_root}</b> is in service on {server} with "
            "priority 1.</p><p>It is not protected until it is extended to another server: "
            "extend it now, with the Extend wizard.</p>"
        )

    @Slot()
    def _extend_now(self) -> None:
        self.w.extend_requested.emit(self.w.progress.hierarchy_root, self.w.chosen_server())
        self.w.accept()


@dataclass(frozen=True)
class Prepared:
    """What the wizard opens with: the cluster, and what its defaults need to know."""

    cluster: Cluster
    facts: Facts
    server: str | None = None


def prepare_now(backend: Backend, cluster: Cluster, server: str | None = None) -> Prepared:
    """Gather what the wizard needs, in the calling thread (a worker; or a test): the
    server's volumes and bitmap location, and every server's network (IP resources)."""
    needs = create.defaults_needs(cluster, server) | kind_rules.needs(cluster)
    return Prepared(cluster, gather(backend, needs), server)


def prepare(
    backend: Backend,
    cluster: Cluster,
    server: str | None,
    on_ready: Callable[[Prepared], object],
    on_failed: Callable[[str], None],
) -> Job:
    """Gather what the wizard needs on a worker, then ``on_ready(prepared)``."""
    return jobs.start(
        _PREPARING,
        lambda _signals: prepare_now(backend, cluster, server),
        lambda prepared: on_ready(prepared),  # type: ignore[arg-type]
        on_failed,
    )


_PREPARING: set[Job] = set()

DATAKEEPER = "datakeeper"


class Page(enum.IntEnum):
    KIND = 0
    WHERE = 1
    WHAT = 2
    IP = 3
    APP = 4
    PROGRESS = 5
    FINISH = 6


class KindPage(QWizardPage):
    """The first page: which recovery kit (LifeKeeper's "Please Select Recovery Kit")."""

    KITS = (
        (DATAKEEPER, "DataKeeper", "A replicated volume (a mirror), with or without a file "
         "system on it."),
        (kind_rules.IP, ResourceKind.IP.label, "A virtual IP address that moves with the "
         "hierarchy: clients reach the service on it wherever it runs."),
        (kind_rules.APP, ResourceKind.APP.label, "Your own application, started, stopped and "
         "checked by your commands; restarted in place, then failed over when it fails."),
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("create_kind_page")
        self.setTitle("Create Resource Hierarchy")
        self.setSubTitle("Select the recovery kit: what the new hierarchy protects.")
        self.kind = QComboBox(objectName="kind")
        self.kind.setAccessibleName("Recovery Kit")
        for key, label, _about in self.KITS:
            self.kind.addItem(icons.icon(f"kind-{key}"), label, key)
        label = QLabel("&Recovery Kit:", objectName="kind_label")
        label.setBuddy(self.kind)
        self.about = QLabel(objectName="kind_note")
        self.about.setStyleSheet(NOTE_STYLE)
        self.about.setWordWrap(True)
        self.about.setMinimumWidth(MESSAGE_WIDTH)
        form = QFormLayout(self)
        form.addRow(label, self.kind)
        form.addRow("", self.about)
        self.kind.currentIndexChanged.connect(self._about)
        self._about()

    @Slot()
    def _about(self) -> None:
        self.about.setText(self.KITS[self.kind.currentIndex()][2])


class CreateWizard(QWizard):
    """Create Resource Hierarchy: DataKeeper, IP Address or Generic Application."""

    created = Signal(int, str)  # hierarchy id, root tag
    extend_requested = Signal(str, str)  # root tag, server: open Extend (from_create)

    def __init__(
        self,
        prepared: Prepared,
        backend: Backend,
        *,
        session: Session,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("create_wizard")
        self.setWindowTitle("Create Resource Hierarchy")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setWindowIcon(icons.app_icon())
        self.cluster = prepared.cluster
        self.backend = backend
        self.facts = prepared.facts
        self.session = session
        self.defaults_pending = False  # new defaults are being gathered (server changed)
        self._jobs: set[Job] = set()
        self._refresh = LatestOnly(self)
        self._refresh.answered.connect(self._refreshed)
        self.defaults = create.defaults(self.cluster, self.facts, server=prepared.server)
        self.kind_page = KindPage()
        self.where = WherePage(self)
        self.what = WhatPage(self)
        self.kits = {
            kind: KitPage(self, kind, prepared.server) for kind in (kind_rules.IP, kind_rules.APP)
        }
        self.progress = CreateProgressPage(self)
        self.finish = CreateFinishPage(self)
        for page_id, page in (
            (Page.KIND, self.kind_page),
            (Page.WHERE, self.where),
            (Page.WHAT, self.what),
            (Page.IP, self.kits[kind_rules.IP]),
            (Page.APP, self.kits[kind_rules.APP]),
            (Page.PROGRESS, self.progress),
            (Page.FINISH, self.finish),
        ):
            self.setPage(page_id, page)
        self.setStartId(Page.KIND)
        for which, name in (
            (QWizard.WizardButton.NextButton, "next_button"),
            (QWizard.WizardButton.BackButton, "back_button"),
            (QWizard.WizardButton.CancelButton, "cancel_button"),
            (QWizard.WizardButton.FinishButton, "finish_button"),
        ):
            self.button(which).setObjectName(name)
        self.resize(760, 600)
        self.currentIdChanged.connect(self._page_changed)

    def nextId(self) -> int:
        """Kind → (Where → What | the kit's page) → Progress → Finish."""
        current = self.currentId()
        if current == Page.KIND:
            return {kind_rules.IP: Page.IP, kind_rules.APP: Page.APP}.get(self.kind, Page.WHERE)
        return {
            Page.WHERE: Page.WHAT,
            Page.WHAT: Page.PROGRESS,
            Page.IP: Page.PROGRESS,
            Page.APP: Page.PROGRESS,
            Page.PROGRESS: Page.FINISH,
        }.get(current, -1)

    @property
    def kind(self) -> str:
        """The recovery kit chosen on the first page: datakeeper, ip or app."""
        return str(self.kind_page.kind.currentData())

    def kind_request(self) -> kind_rules.ResourceRequest:
        """The request of the IP or Generic Application page."""
        return self.kits[self.kind].request()

    def chosen_server(self) -> str:
        return self.request().server if self.kind == DATAKEEPER else self.kind_request().server

    @Slot(int)
    def _page_changed(self, _page_id: int) -> None:
        if self.currentPage() is self.finish:
            self.button(QWizard.WizardButton.BackButton).setEnabled(False)
            self.button(QWizard.WizardButton.CancelButton).setEnabled(False)

    def request(self) -> CreateRequest:
        w, x = self.where, getattr(self, "what", None)
        disk = w.source_disk.currentText().strip()
        size: int | str | None = w.disk_size_mib.text().strip()
        if self.volume(w.server.currentText(), disk) is not None:
            size = None
        base = dataclasses.replace(
            self.defaults.request,
            switchback_type=w.switchback_type.currentText(),
            server=w.server.currentText(),
            hierarchy_type=w.hierarchy_type.currentData(),
            source_disk=disk,
            disk_size_mib=size,
        )
        if x is None:
            return base
        fs = base.hierarchy_type != create.DK_ONLY
        return dataclasses.replace(
            base,
            mount_point=x.mount_point.text() if fs else None,
            root_tag=x.root_tag.text() if fs else None,
            fs_type=x.fs_type.currentText() if fs else None,
            dk_tag=x.dk_tag.text(),
            bitmap_file=None if x.bitmap_none.isChecked() else x.bitmap_file.text(),
            asynchronous=x.asynchronous.isChecked(),
        )

    def learn(self, facts: Facts) -> None:
        """What a worker found out about the servers' disks, for the next defaults."""
        self.facts = self.facts.merged(facts)

    def volume(self, server: str, disk: str) -> VolumeInfo | None:
        """The volume ``disk`` of ``server``, as far as it is known (None: no such one)."""
        return next((v for v in self.facts.volumes.get(server, ()) if v.path == disk), None)

    def reset_defaults(self) -> None:
        """New defaults for a new server or hierarchy type (the second page follows);
        what they need to know about that server is gathered on a worker first."""
        w = self.where
        server, kind = w.server.currentText(), w.hierarchy_type.currentData()
        needs = create.defaults_needs(self.cluster, server)
        if self.facts.has(needs):
            self._use_defaults(server, kind)
            return
        self.defaults_pending = True
        backend, known = self.backend, self.facts
        self._refresh.submit(lambda: (server, kind, gather(backend, needs, known)))

    def _refreshed(self, answer: object) -> None:
        assert isinstance(answer, tuple)
        server, kind, facts = answer
        self.learn(facts)
        self.defaults_pending = False
        self._use_defaults(server, kind)

    def _use_defaults(self, server: str, kind: str) -> None:
        self.defaults = create.defaults(
            self.cluster, self.facts, server=server, hierarchy_type=kind
        )
        self.where.fill(self.defaults.request)
        if hasattr(self, "what"):
            self.what.fill(self.defaults.request)
        self.where.edited()

    def run_job(
        self,
        work: Callable[[JobSignals], object],
        on_result: Callable[[object], None],
        on_failed: Callable[[str], None],
        on_step: Callable[[int, int, str, str], None],
    ) -> Job:
        return jobs.start(self._jobs, work, on_result, on_failed, on_step)

    def reject(self) -> None:
        if self.progress.running:
            return  # a create is quick and cannot be interrupted half way
        super().reject()


__all__ = ["CreateWizard", "KindPage", "KitPage", "Page"]
