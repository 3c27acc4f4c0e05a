"""Pages 1 and 2: Extend Resource Hierarchy (what the wizard does) and Pre-Extend
(the servers, the tag and the priorities, checked as they are edited)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from core.checks import Problem
from core.rules import extend
from core.rules.extend import ExtendDefaults, ExtendRequest
from gui.extend_wizard.common import TIPS
from gui.field_messages import MESSAGE_WIDTH, NOTE_STYLE, error_label, show_field_problems

if TYPE_CHECKING:
    from gui.extend_wizard.wizard import ExtendWizard


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
        self._lay_out(d)
        self._fill(d)
        self._problems: list[Problem] = []
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.validate)
        self._connect()

    def _lay_out(self, d: ExtendDefaults) -> None:
        """Each field with its label, its message and its note under it."""
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
            widget.setToolTip(TIPS[name])
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

    def _connect(self) -> None:
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


def _priority_choices(d: ExtendDefaults) -> list[str]:
    """The default target priority first, then other free multiples of ten."""
    h_used = {e for e in (d.request.template_priority,) if e is not None}
    first = int(d.request.target_priority)
    choices = [first, *[p for p in range(10, 1000, 10) if p != first][:9]]
    return [str(p) for p in choices if p not in h_used]
