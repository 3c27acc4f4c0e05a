"""The Create Resource Hierarchy wizard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QWizard

from core.backends.lab import LabBackend
from core.backends.lab.probe import fs_label
from core.model import ResourceState
from core.rules import create as create_rules
from gui.create_wizard import CreateWizard, prepare_now
from tests.core.labtools import settled_digest
from tests.helpers import db_digest, local_administrator


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    backend = LabBackend()
    yield backend
    backend.close()


def _wizard(qtbot, lab: LabBackend) -> CreateWizard:
    wizard = CreateWizard(prepare_now(lab, lab.snapshot()), lab, session=local_administrator())
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.restart()
    wizard.next()  # the recovery kit: DataKeeper, the default
    return wizard


def _next(qtbot, wizard: CreateWizard) -> None:
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
    wizard.next()


def _error(wizard: CreateWizard, field: str) -> str:
    label = wizard.currentPage().findChild(QLabel, f"{field}_error")
    return label.text() if label is not None and label.isVisible() else ""


def test_create_with_the_defaults_then_extend_now(qtbot, lab: LabBackend) -> None:
    wizard = _wizard(qtbot, lab)
    page = wizard.currentPage()
    assert page.findChild(QComboBox, "server").currentText() == "lab1"
    assert page.findChild(QComboBox, "hierarchy_type").currentText() == (
        "Replicate New File System"
    )
    _next(qtbot, wizard)
    assert wizard.currentPage().findChild(QLineEdit, "mount_point").text() == "/data2"
    _next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=20_000)
    command = wizard.findChild(QLineEdit, "show_command").text()
    assert command.startswith("lkctl create --server lab1")
    requested: list[tuple[str, str]] = []
    wizard.extend_requested.connect(lambda tag, server: requested.append((tag, server)))
    _next(qtbot, wizard)
    assert not wizard.button(QWizard.WizardButton.BackButton).isEnabled()
    wizard.findChild(QPushButton, "extend_now").click()
    assert requested == [("/data2", "lab1")]
    h = next(h for h in lab.snapshot().hierarchies if h.root_tag == "/data2")
    assert [r.state for r in h.instances_on("lab1")] == [ResourceState.ISP] * 2
    volume = lab.layout.server_path("lab1", "/disks/datarep-data2.img")
    assert fs_label(volume) == "ext4"


@pytest.mark.parametrize(
    ("page", "field", "value", "message"),
    [
        (0, "disk_size_mib", "abc", "whole number of MiB"),
        (0, "disk_size_mib", "0", "out of range"),
        (0, "source_disk", "disks/x.img", "not an absolute path"),
        (0, "source_disk", "/disks/datarep-data.img", "already replicated"),
        (1, "mount_point", "/", "root filesystem"),
        (1, "mount_point", "/data", "already protected"),
        (1, "dk_tag", "datarep-data", "already used on lab1"),
        (1, "root_tag", "a b", "a space"),
        (1, "bitmap_file", "bitmap", "not an absolute path"),
    ],
)
def test_bad_values_are_refused_under_their_field(
    qtbot, lab: LabBackend, page: int, field: str, value: str, message: str
) -> None:
    before = settled_digest(lab)
    wizard = _wizard(qtbot, lab)
    if page == 1:
        _next(qtbot, wizard)
    widget = wizard.currentPage().findChild(QLineEdit, field)
    if widget is None:
        wizard.currentPage().findChild(QComboBox, field).setEditText(value)
    else:
        widget.setText(value)
    qtbot.waitUntil(lambda: message in _error(wizard, field), timeout=5000)
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    lab.close()
    assert db_digest(lab.store.home) == before


def test_datakeeper_only_has_no_file_system_fields(qtbot, lab: LabBackend) -> None:
    wizard = _wizard(qtbot, lab)
    combo = wizard.currentPage().findChild(QComboBox, "hierarchy_type")
    combo.setCurrentIndex(combo.findData(create_rules.DK_ONLY))
    _next(qtbot, wizard)
    page = wizard.currentPage()
    assert not page.findChild(QLineEdit, "mount_point").isVisible()
    assert not page.findChild(QLineEdit, "root_tag").isVisible()
    assert page.findChild(QLineEdit, "dk_tag").isVisible()
