"""Edit › Resource › Properties: the Resource Properties dialog.

General: the Switchback Type and the priority of every server of the hierarchy (the same
rules as Extend: 1-999, unique). Mirror (a DataKeeper resource only): asynchronous
replication per target, the resync speed limit, the bitmap file (shown). The engine has
no compression, so DataKeeper's compression level is not shown. OK / Apply / Cancel.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.backend import Backend
from core.model import PRIORITY_MAX, PRIORITY_MIN, Cluster, Hierarchy, SwitchbackType
from core.operations import properties as props
from core.permissions import Op
from core.rules.mirror import MAX_SPEED_KBPS
from core.rules.resource_properties import asynchronous_field, priority_field
from core.session import Session
from gui.field_messages import NOTE_STYLE
from gui.form_dialog import FormDialog


def _apply(backend: Backend, request: Any, session: Session) -> str:
    return props.set_resource(backend, request, session)


class ResourcePropertiesDialog(FormDialog):
    """The properties of one resource (objectName ``resource_properties_dialog``)."""

    def __init__(
        self,
        h: Hierarchy,
        resource_id: int,
        backend: Backend,
        session: Session,
        parent: QWidget | None = None,
    ) -> None:
        self.tag = h.tag_of(resource_id)
        super().__init__(
            "resource_properties",
            f"Resource Properties: {self.tag}",
            backend,
            session,
            _apply,
            parent,
        )
        self.hierarchy = h
        self.resource_id = resource_id
        self.tabs = QTabWidget(objectName="resource_properties_tabs")
        self.tabs.setAccessibleName("Resource Properties")
        self.body.addWidget(self.tabs)
        self._build_general(h)
        self.mirror = h.mirror(resource_id)
        self.asynchronous: dict[str, QCheckBox] = {}
        self.speed: QSpinBox | None = None
        if self.mirror is not None:
            self._build_mirror(h)
        self.set_fields(h)
        why = self.may_not(Op.SET_RESOURCE_PROPERTIES, "They are shown, not changed, here.")
        if why:
            fields: list[QWidget] = [self.switchback, *self.priorities.values()]
            fields += [*self.asynchronous.values(), *([self.speed] if self.speed else [])]
            self.show_only(fields, why)
        self.resize(560, 460)

    def _build_general(self, h: Hierarchy) -> None:
        page = QWidget(objectName="resource_general_tab")
        page.setAccessibleName("General")
        layout = QVBoxLayout(page)
        form = QFormLayout()
        for label, value, name in (
            ("Tag:", self.tag, "resource_tag"),
            ("Kind:", h.kind_of(self.resource_id).label, "resource_kind"),
            ("Hierarchy:", h.root_tag, "resource_hierarchy"),
        ):
            shown = QLabel(value, objectName=name)
            shown.setAccessibleName(label.rstrip(":"))
            form.addRow(label, shown)
        self.switchback = QComboBox()
        self.switchback.addItems([t.value for t in SwitchbackType])
        if h.depends_on_datakeeper():
            self.switchback.setToolTip(
                "DataKeeper supports only intelligent switchback, and so does every "
                "resource of its hierarchy."
            )
        self.field_row(form, "Switchback &Type:", self.switchback, "switchback_type")
        layout.addLayout(form)
        heading = QLabel("Priorities (1 = preferred; 1-999, each server its own):")
        heading.setObjectName("priorities_heading")
        heading.setAccessibleName("Priorities")
        layout.addWidget(heading)
        prio = QFormLayout()
        self.priorities: dict[str, QSpinBox] = {}
        for server in h.servers:
            box = QSpinBox()
            box.setRange(PRIORITY_MIN, PRIORITY_MAX)
            self.field_row(prio, f"{server}:", box, priority_field(server))
            box.setAccessibleName(f"Priority of {server}")
            self.priorities[server] = box
        layout.addLayout(prio)
        layout.addStretch(1)
        self.tabs.addTab(page, "&General")

    def _build_mirror(self, h: Hierarchy) -> None:
        mirror = self.mirror
        assert mirror is not None
        page = QWidget(objectName="mirror_tab")
        page.setAccessibleName("Mirror")
        form = QFormLayout(page)
        source = QLabel(mirror.source, objectName="mirror_source")
        source.setAccessibleName("Source")
        form.addRow("Source:", source)
        inst = h.instance(mirror.resource_id, mirror.source)
        bitmap = QLabel(
            (inst.bitmap_file if inst is not None else None)
            or "None (every resync is a full resync)",
            objectName="mirror_bitmap",
        )
        bitmap.setAccessibleName("Bitmap file")
        form.addRow("Bitmap file:", bitmap)
        if not mirror.targets:
            none = QLabel("No target yet: extend the hierarchy first.", objectName="no_targets")
            none.setAccessibleName("No targets")
            form.addRow(none)
        for t in mirror.targets:
            check = QCheckBox(f"Asynchronous replication to {t.server}")
            self.field_row(form, "", check, asynchronous_field(t.server))
            self.asynchronous[t.server] = check
        self.speed = QSpinBox()
        self.speed.setRange(0, MAX_SPEED_KBPS)
        self.speed.setSuffix(" KB/s")
        self.speed.setSpecialValueText("unlimited")
        self.field_row(form, "Resync &speed limit:", self.speed, "speed_limit")
        note = QLabel(
            "Asynchronous: a write returns once the source has it, the target's copy is "
            "queued. Synchronous (the default): once every target has it too.",
            objectName="mirror_note",
        )
        note.setAccessibleName("About the mirror settings")
        note.setWordWrap(True)
        note.setStyleSheet(NOTE_STYLE)
        form.addRow(note)
        self.tabs.addTab(page, "&Mirror")

    def set_fields(self, h: Hierarchy) -> None:
        self.switchback.setCurrentText(h.switchback.value)
        for server, box in self.priorities.items():
            box.setValue(h.priority_of(server) or PRIORITY_MIN)
        mirror = h.mirror(self.resource_id)
        if mirror is not None:
            for server, check in self.asynchronous.items():
                check.setChecked(mirror.is_asynchronous(server))
            if self.speed is not None:
                self.speed.setValue(mirror.speed_limit_kbps)
        self.update_command()

    def refresh(self, cluster: Cluster | None) -> None:
        """Keep what the dialog edits; only the hierarchy behind it is read again."""
        h = cluster.hierarchy(self.hierarchy.id) if cluster is not None else None
        if h is not None:
            self.hierarchy = h

    def values(self) -> props.ResourcePropertiesRequest:
        return props.ResourcePropertiesRequest(
            self.tag,
            self.switchback.currentText(),
            {s: box.value() for s, box in self.priorities.items()},
            {s: check.isChecked() for s, check in self.asynchronous.items()},
            self.speed.value() if self.speed is not None else None,
        )

    def command_line(self, values: Any) -> str:
        return props.resource_command(values, self.hierarchy.switchback.value)

    def _reveal(self, widget: QWidget) -> None:
        for index in range(self.tabs.count()):
            if self.tabs.widget(index).isAncestorOf(widget):
                self.tabs.setCurrentIndex(index)
                return


__all__ = ["ResourcePropertiesDialog"]
