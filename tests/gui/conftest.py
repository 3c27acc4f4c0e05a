"""GUI fixtures: the lab cluster, read through core as the window does."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QApplication

from core.backends.lab import LabBackend
from core.model import Cluster


@pytest.fixture
def lab_cluster() -> Cluster:
    backend = LabBackend()
    try:
        return backend.snapshot()
    finally:
        backend.close()


@pytest.fixture(autouse=True)
def no_window_outlives_its_test(qapp: QApplication) -> Iterator[None]:
    """Every top-level widget a test left is closed and deleted (by Qt) when it ends, and
    the garbage collected then: a window that only a dead test frame still references
    (through a traceback's cycle) is otherwise freed by whichever later collection finds
    it, which may clear its Python half while Qt still paints it."""
    yield
    for widget in QApplication.topLevelWidgets():
        widget.close()
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    gc.collect()
