"""The Extend Resource Hierarchy wizard, driven as an administrator drives it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QMessageBox, QWizard

from core.backends.lab import LabBackend, mirrors
from core.model import ResourceState, ServerState
from gui.extend_wizard import ExtendWizard, Page, prepare_now
from tests.core.labtools import (
    add_hierarchy,
    digest,
    fill_source,
    set_server,
    settled_digest,
    wait_for_mirror,
)
from tests.helpers import db_digest, local_administrator, mounted_image


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    backend = LabBackend()
    yield backend
    backend.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the wizard's pages are saved as pictures (LKCONSOLE_SCREENSHOTS, or tmp)."""
    folder = Path(os.environ.get("LKCONSOLE_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wizard(qtbot, lab: LabBackend, **kw: object) -> ExtendWizard:
    prepared = prepare_now(lab, lab.snapshot(), **kw)
    wizard = ExtendWizard(prepared, lab, session=local_administrator())
    qtbot.addWidget(wizard)
    wizard.show()
    return wizard


def _next(qtbot, wizard: ExtendWizard, expected: int) -> None:
    qtbot.waitUntil(lambda: wizard.currentPage().isComplete(), timeout=10_000)
    wizard.next()
    assert wizard.currentId() == expected


def _error(wizard: ExtendWizard, field: str) -> str:
    label = wizard.currentPage().findChild(QLabel, f"{field}_error")
    assert label is not None
    return label.text() if label.isVisible() else ""


def test_the_documented_walk_extends_and_the_target_gets_the_bytes(
    qtbot, lab: LabBackend, shots: Path
) -> None:
    fill_source(lab)
    wizard = _wizard(qtbot, lab)
    assert wizard.currentId() == Page.INTRO
    accept = wizard.findChild(object, "accept_defaults")
    assert accept is not None and accept.isVisible() and accept.text() == "&Accept Defaults"
    wizard.grab().save(str(shots / "extend-1-intro.png"))

    _next(qtbot, wizard, Page.PRE_EXTEND)
    page = wizard.currentPage()
    assert page.findChild(QComboBox, "template_server").currentText() == "lab1"
    assert page.findChild(QComboBox, "tag_to_extend").currentText() == "/data"
    assert page.findChild(QComboBox, "target_server").currentText() == "lab2"
    assert page.findChild(QComboBox, "switchback_type").currentText() == "intelligent"
    assert page.findChild(QComboBox, "template_priority").currentText() == "1"
    assert page.findChild(QComboBox, "target_priority").currentText() == "10"
    wizard.grab().save(str(shots / "extend-2-pre-extend.png"))

    _next(qtbot, wizard, Page.CHECKS)
    status = wizard.findChild(QLabel, "pre_extend_status")
    qtbot.waitUntil(lambda: status.text() == "Pre-extend checks were successful.", timeout=10_000)
    info = wizard.currentPage().info
    assert [info.topLevelItem(i).text(2) for i in range(info.topLevelItemCount())] == [
        "/data",
        "datarep-data",
    ]
    wizard.grab().save(str(shots / "extend-3-checks.png"))

    _next(qtbot, wizard, Page.EXTEND)
    page = wizard.currentPage()
    assert page.findChild(QLineEdit, "mount_point").text() == "/data"
    assert page.findChild(QLineEdit, "root_tag").text() == "/data"
    assert page.findChild(QLineEdit, "dk_tag").text() == "datarep-data"
    assert page.findChild(QLineEdit, "bitmap_file").text() == "/opt/LifeKeeper/bitmap_datarep-data"
    fs_type = page.findChild(QLabel, "bitmap_fs_type")
    assert "On lab2 this location is on" in fs_type.text() and "btrfs" not in fs_type.text()
    wizard.grab().save(str(shots / "extend-4-extend.png"))

    _next(qtbot, wizard, Page.PROGRESS)
    progress = wizard.currentPage()
    qtbot.waitUntil(lambda: progress.succeeded, timeout=30_000)
    steps = progress.steps
    assert steps.count() == 5
    assert steps.item(0).text().startswith("Create DataKeeper resource datarep-data on lab2")
    assert "was extended to lab2" in wizard.findChild(QLabel, "extend_result").text()
    assert (
        wizard.findChild(QLineEdit, "show_command")
        .text()
        .startswith("lkctl extend /data --template lab1 --target lab2")
    )
    assert wizard.button(QWizard.WizardButton.NextButton).text() == "&Finish"
    assert not wizard.button(QWizard.WizardButton.BackButton).isEnabled()
    wizard.grab().save(str(shots / "extend-5-progress.png"))

    _next(qtbot, wizard, Page.FINISH)
    assert wizard.button(QWizard.WizardButton.FinishButton).text() == "&Done"
    assert "extended from lab1 to" in wizard.findChild(QLabel, "finish_text").text()
    wizard.grab().save(str(shots / "extend-6-finish.png"))
    wizard.button(QWizard.WizardButton.FinishButton).click()
    assert not wizard.isVisible()

    h = lab.snapshot().hierarchies[0]
    assert [r.state for r in h.instances_on("lab2")] == [ResourceState.OSU] * 2
    wait_for_mirror(lab, h.id, "lab2")
    source = lab.layout.server_path("lab1", "/disks/datarep-data.img")
    assert digest(lab.layout.server_path("lab2", "/disks/datarep-data.img")) == digest(source)


def test_accept_defaults_extends_in_one_click(qtbot, lab: LabBackend) -> None:
    wizard = _wizard(qtbot, lab)
    extended: list[tuple[int, str]] = []
    wizard.extended.connect(lambda hid, target: extended.append((hid, target)))
    wizard.button(QWizard.WizardButton.CustomButton1).click()
    qtbot.waitUntil(lambda: wizard.currentId() == Page.PROGRESS, timeout=10_000)
    qtbot.waitUntil(lambda: wizard.progress.succeeded, timeout=30_000)
    assert extended == [(lab.snapshot().hierarchies[0].id, "lab2")]
    h = lab.snapshot().hierarchies[0]
    assert h.priority_of("lab2") == 10
    wait_for_mirror(lab, h.id, "lab2")


def test_accept_defaults_stops_on_a_dead_target(qtbot, lab: LabBackend) -> None:
    wizard = _wizard(qtbot, lab)
    set_server(lab, "lab2", ServerState.DEAD)  # it died after the wizard opened
    before = settled_digest(lab)
    wizard.button(QWizard.WizardButton.CustomButton1).click()
    qtbot.waitUntil(lambda: wizard.currentId() == Page.PRE_EXTEND, timeout=10_000)
    qtbot.waitUntil(lambda: "lab2 is DEAD" in _error(wizard, "target_server"), timeout=5000)
    target = wizard.currentPage().findChild(QComboBox, "target_server")
    assert target.property("invalid") is True
    assert not wizard.currentPage().isComplete()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    lab.close()
    assert db_digest(lab.store.home) == before


def test_accept_defaults_stops_on_a_bitmap_on_btrfs(qtbot, lab: LabBackend, shots) -> None:
    # All of lab2 on btrfs: no bitmap location there can work, so the default fails.
    root = lab.layout.server_root("lab2")
    with mounted_image(root, "btrfs", 512):
        wizard = _wizard(qtbot, lab)
        wizard.button(QWizard.WizardButton.CustomButton1).click()
        qtbot.waitUntil(lambda: wizard.currentId() == Page.EXTEND, timeout=10_000)
        qtbot.waitUntil(lambda: "btrfs" in _error(wizard, "bitmap_file"), timeout=5000)
        assert "invalid argument" in _error(wizard, "bitmap_file")
        page = wizard.currentPage()
        assert "refused" in page.findChild(QLabel, "bitmap_fs_type").text()
        wizard.grab().save(str(shots / "extend-btrfs-refused.png"))
        # None is always possible, and says what it means.
        page.findChild(QCheckBox, "bitmap_none").setChecked(True)
        qtbot.waitUntil(lambda: page.isComplete(), timeout=5000)
        assert page.findChild(QLabel, "bitmap_none_note").text() == (
            "No bitmap: no intent log is kept, so every resync will be a full resync."
        )
        wizard.close()


def test_default_bitmap_moves_off_btrfs_and_says_where(qtbot, lab: LabBackend, shots) -> None:
    opt = lab.layout.server_path("lab2", "/opt/LifeKeeper")
    with mounted_image(opt, "btrfs", 128):
        wizard = _wizard(qtbot, lab)
        for page_id in (Page.PRE_EXTEND, Page.CHECKS, Page.EXTEND):
            _next(qtbot, wizard, page_id)
        page = wizard.currentPage()
        assert page.findChild(QLineEdit, "bitmap_file").text() == (
            "/var/lib/LifeKeeper/bitmap_datarep-data"
        )
        note = page.findChild(QLabel, "bitmap_note").text()
        assert "btrfs" in note and "/var/lib/LifeKeeper/bitmap_datarep-data" in note
        wizard.grab().save(str(shots / "extend-btrfs-moved.png"))
        # Typing the btrfs location back is refused as it is typed.
        page.findChild(QLineEdit, "bitmap_file").setText("/opt/LifeKeeper/bitmap_x")
        qtbot.waitUntil(lambda: "btrfs" in _error(wizard, "bitmap_file"), timeout=5000)
        assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
        wizard.close()


PRE_EXTEND_BAD = [
    ("target_priority", "abc", "whole number"),
    ("target_priority", "0", "out of range"),
    ("target_priority", "1000", "out of range"),
    ("target_priority", "-5", "out of range"),
    ("target_priority", "", "required"),
    ("target_priority", "2.5", "whole number"),
    ("target_priority", "1", "equals the Template Priority"),
    ("template_priority", "x", "whole number"),
    ("template_priority", "0", "out of range"),
    ("switchback_type", "automatic", "DataKeeper supports only intelligent"),
]


@pytest.mark.parametrize(("field", "value", "message"), PRE_EXTEND_BAD)
def test_bad_pre_extend_values_are_refused_under_their_field(
    qtbot, lab: LabBackend, field: str, value: str, message: str
) -> None:
    before = settled_digest(lab)
    wizard = _wizard(qtbot, lab)
    _next(qtbot, wizard, Page.PRE_EXTEND)
    combo = wizard.currentPage().findChild(QComboBox, field)
    if combo.isEditable():
        combo.setEditText(value)
    else:
        combo.setCurrentText(value)
    qtbot.waitUntil(lambda: message in _error(wizard, field), timeout=5000)
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    lab.close()
    assert db_digest(lab.store.home) == before


EXTEND_BAD = [
    ("mount_point", "data", "not an absolute path"),
    ("mount_point", "/", "root filesystem"),
    ("mount_point", "", "required"),
    ("root_tag", "", "must not be empty"),
    ("root_tag", "a b", "a space"),
    ("dk_tag", "x" * 257, "257 characters"),
    ("dk_tag", "it's", "a quote"),
    ("dk_tag", "/data", "also the Root Tag"),
    ("bitmap_file", "bitmap", "not an absolute path"),
    ("bitmap_file", "/opt/LifeKeeper", "existing folder"),
    ("bitmap_file", "", "empty"),
]


@pytest.mark.parametrize(("field", "value", "message"), EXTEND_BAD)
def test_bad_extend_values_are_refused_under_their_field(
    qtbot, lab: LabBackend, field: str, value: str, message: str
) -> None:
    before = settled_digest(lab)
    wizard = _wizard(qtbot, lab)
    for page_id in (Page.PRE_EXTEND, Page.CHECKS, Page.EXTEND):
        _next(qtbot, wizard, page_id)
    wizard.currentPage().findChild(QLineEdit, field).setText(value)
    qtbot.waitUntil(lambda: message in _error(wizard, field), timeout=5000)
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    lab.close()
    assert db_digest(lab.store.home) == before


def test_tags_and_mount_points_in_use_on_the_target(qtbot, lab: LabBackend) -> None:
    add_hierarchy(lab, "lab2", "datarep-web", fs_tag="/web", mount_point="/web")
    wizard = _wizard(qtbot, lab)
    for page_id in (Page.PRE_EXTEND, Page.CHECKS, Page.EXTEND):
        _next(qtbot, wizard, page_id)
    page = wizard.currentPage()
    page.findChild(QLineEdit, "dk_tag").setText("datarep-web")
    page.findChild(QLineEdit, "mount_point").setText("/web")
    qtbot.waitUntil(lambda: "already used on lab2" in _error(wizard, "dk_tag"), timeout=5000)
    assert "already protected on lab2" in _error(wizard, "mount_point")


def test_second_extend_hides_template_priority(qtbot, lab: LabBackend) -> None:
    first = _wizard(qtbot, lab)
    first.accept_defaults()
    qtbot.waitUntil(lambda: first.progress.succeeded, timeout=30_000)
    wizard = _wizard(qtbot, lab)
    _next(qtbot, wizard, Page.PRE_EXTEND)
    page = wizard.currentPage()
    assert not page.findChild(QComboBox, "template_priority").isVisible()
    assert page.findChild(QComboBox, "target_server").currentText() == "lab3"
    assert page.findChild(QComboBox, "target_priority").currentText() == "20"


def test_no_filesystem_hides_mount_point_and_root_tag(qtbot, lab: LabBackend) -> None:
    add_hierarchy(lab, "lab1", "datarep-raw")
    wizard = _wizard(qtbot, lab, template_server="lab1", tag="datarep-raw")
    for page_id in (Page.PRE_EXTEND, Page.CHECKS, Page.EXTEND):
        _next(qtbot, wizard, page_id)
    page = wizard.currentPage()
    assert not page.findChild(QLineEdit, "mount_point").isVisible()
    assert not page.findChild(QLineEdit, "root_tag").isVisible()
    assert page.findChild(QLineEdit, "dk_tag").text() == "datarep-raw"


def test_after_create_template_and_tag_are_not_shown(qtbot, lab: LabBackend) -> None:
    wizard = _wizard(qtbot, lab, template_server="lab1", tag="/data", from_create=True)
    _next(qtbot, wizard, Page.PRE_EXTEND)
    page = wizard.currentPage()
    assert not page.findChild(QComboBox, "template_server").isVisible()
    assert not page.findChild(QComboBox, "tag_to_extend").isVisible()
    assert page.findChild(QComboBox, "target_server").isVisible()


def test_changing_the_template_refills_the_tags(qtbot, lab: LabBackend) -> None:
    add_hierarchy(lab, "lab2", "datarep-web", fs_tag="/web", mount_point="/web")
    wizard = _wizard(qtbot, lab)
    _next(qtbot, wizard, Page.PRE_EXTEND)
    page = wizard.currentPage()
    page.findChild(QComboBox, "template_server").setCurrentText("lab2")
    tags = page.findChild(QComboBox, "tag_to_extend")
    # What lab1's disks look like as a target is probed on a worker first.
    qtbot.waitUntil(lambda: not wizard.defaults_pending, timeout=10_000)
    assert [tags.itemText(i) for i in range(tags.count())] == ["/web", "datarep-web"]
    assert tags.currentText() == "/web"
    assert page.findChild(QComboBox, "target_server").currentText() == "lab1"


def test_cancel_while_extending_rolls_back(qtbot, lab: LabBackend, monkeypatch) -> None:
    release = threading.Event()
    entered = threading.Event()
    original = mirrors.prepare_target_volume

    def slow(path: Path, size: int) -> None:
        original(path, size)
        entered.set()
        release.wait(10)

    monkeypatch.setattr(mirrors, "prepare_target_volume", slow)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    wizard = _wizard(qtbot, lab)
    wizard.accept_defaults()
    qtbot.waitUntil(entered.is_set, timeout=10_000)
    wizard.reject()  # Cancel asks (answered Yes), the wizard stays open
    assert wizard.isVisible()
    release.set()
    result = wizard.findChild(QLabel, "extend_result")
    qtbot.waitUntil(lambda: "rolled back" in result.text(), timeout=10_000)
    assert "cancelled by the user" in result.text()
    h = lab.snapshot().hierarchies[0]
    assert h.servers == ("lab1",)
    assert not lab.layout.server_path("lab2", "/disks/datarep-data.img").exists()
    assert h.mirrors[0].targets == ()
