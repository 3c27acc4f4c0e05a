"""GUI fixtures: the lab cluster, read through core as the window does."""

from __future__ import annotations

import pytest

from core.backends.lab import LabBackend
from core.model import Cluster


@pytest.fixture
def lab_cluster() -> Cluster:
    backend = LabBackend()
    try:
        return backend.snapshot()
    finally:
        backend.close()
