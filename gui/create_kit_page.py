"""Create Resource Hierarchy's page for an IP address or a Generic Application.

Its fields are the kit's (``core.rules.kinds``): the server and switchback, then the IP
address in CIDR and its network interface, or the application's start, stop and monitor
commands and its restart mode, then the tag. The defaults are what the backend proposes
(a lab: the next free address of its service network; a real cluster: none, the field
must be filled). Every change is checked by core on the facts the wizard gathered before
it opened (every server's network): no I/O on the GUI thread.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QWidget, QWizardPage

from core.checks import Problem
from core.model import ResourceKind
from core.rules import kinds as rules
from core.rules.kinds import ResourceRequest
from gui.field_messages import MESSAGE_WIDTH, NOTE_STYLE, error_label, show_field_problems

if TYPE_CHECKING:
    from gui.create_wizard import CreateWizard

_MNEMONIC = {
    "server": "Se&rver:",
    "switchback_type": "&Switchback Type:",
    "address": "IP &Address:",
    "interface": "Network &Interface:",
    "start": "S&tart Command:",
    "stop": "St&op Command:",
    "monitor": "&Monitor Command:",
    "restart_mode": "R&estart Mode:",
    "tag": "Resource &Tag:",
}
_HINTS = {
    "address": "In CIDR: the address and its prefix length, e.g. 10.214.0.100/24.",
    "start": "Starts the application and returns (LifeKeeper's restore script); runs as "
    "/bin/sh -c in the server's folder (lab) or / (a node).",
    "stop": "Stops it (the remove script); may be empty.",
    "monitor": "Exits 0 while the application is healthy (the quickCheck), run "
    "periodically; may be empty.",
    "restart_mode": "yes: restart once in place, then fail over; no: fail over at once; "
    "a number: that many restarts first.",
}
_COMBOS = ("server", "switchback_type", "restart_mode")


class KitPage(QWizardPage):
    """The fields of one kit (``kind``: ip or app), checked by core as they change."""

    def __init__(self, wizard: CreateWizard, kind: str, server: str | None) -> None:
        super().__init__()
        self.w = wizard
        self.kind = kind
        self.names = rules.SHOWN[kind]
        self.setObjectName(f"create_{kind}_page")
        self.setTitle(ResourceKind(kind).label)
        self.setSubTitle(
            "The address that moves with the hierarchy, and where it goes."
            if kind == rules.IP
            else "How the application is started, stopped and checked, and what happens "
            "when it fails."
        )
        self.defaults = rules.defaults(wizard.cluster, wizard.facts, kind, server)
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.fields: dict[str, QWidget] = {}
        self.errors = {name: error_label(name) for name in self.names}
        for name in self.names:
            widget: QWidget
            if name in _COMBOS:
                combo = QComboBox()
                combo.addItems(list(self.defaults.choices[name]))
                combo.setEditable(name == "restart_mode")
                combo.currentTextChanged.connect(
                    self._server_changed if name == "server" else self._check
                )
                widget = combo
            else:
                edit = QLineEdit()
                edit.textChanged.connect(self._check)
                widget = edit
            widget.setObjectName(name)
            widget.setAccessibleName(rules.LABELS[name])
            widget.setMinimumWidth(300)
            if name in _HINTS:
                widget.setToolTip(_HINTS[name])
            label = QLabel(_MNEMONIC[name], objectName=f"{name}_label")
            label.setBuddy(widget)
            self.fields[name] = widget
            form.addRow(label, widget)
            form.addRow("", self.errors[name])
            if name == "address":
                self.note = QLabel(objectName="address_note")
                self.note.setStyleSheet(NOTE_STYLE)
                self.note.setWordWrap(True)
                self.note.setMinimumWidth(MESSAGE_WIDTH)
                form.addRow("", self.note)
        self.problems: list[Problem] = []
        self.fill(self.defaults.request)

    def _text(self, name: str) -> str:
        widget = self.fields[name]
        return widget.currentText() if isinstance(widget, QComboBox) else widget.text()  # type: ignore[attr-defined]

    def request(self) -> ResourceRequest:
        values = {name: self._text(name) for name in self.names}
        return ResourceRequest(kind=self.kind, **values)

    def fill(self, r: ResourceRequest) -> None:
        for name in self.names:
            widget = self.fields[name]
            widget.blockSignals(True)
            value = str(getattr(r, name))
            if isinstance(widget, QComboBox):
                widget.setCurrentText(value)
            else:
                widget.setText(value)  # type: ignore[attr-defined]
            widget.blockSignals(False)
        if self.kind == rules.IP:
            self.note.setText(self.defaults.note)
        self._check()

    @Slot()
    def _server_changed(self) -> None:
        """New defaults for that server (its interface, the address proposed there)."""
        before = self.request()
        self.defaults = rules.defaults(self.w.cluster, self.w.facts, self.kind, before.server)
        keep = {n: getattr(before, n) for n in self.names if n not in ("address", "interface")}
        fresh = self.defaults.request
        if self.kind == rules.IP:
            keep["tag"] = (
                fresh.tag if before.tag.startswith("ip-") or not before.tag else before.tag
            )
        self.fill(dataclasses.replace(fresh, **keep))

    @Slot()
    def _check(self) -> None:
        self.problems = rules.check_request(self.w.cluster, self.w.facts, self.request())
        show_field_problems(self.errors, self.fields, self.problems)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return not self.problems


__all__ = ["KitPage"]
