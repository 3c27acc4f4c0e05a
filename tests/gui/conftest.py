"""GUI fixtures: the lab cluster, read through core as the window does."""

from __future__ import annotations

import pytest
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
def _application(qapp: QApplication) -> QApplication:
    """Every GUI test runs inside a QApplication, as the console does: a model's icons
    are pixmaps, which Qt refuses (it aborts the process) without one. Alone, a model
    test would otherwise abort where the whole suite passes."""
    return qapp
