"""Every file LK Console keeps is its owner's only, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import paths
from core.backends.lab import LabBackend
from core.cli import setup_logging
from core.operations import extend
from tests.core.labtools import wait_for_mirror
from tests.helpers import local_administrator, run_lkctl


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _loose(root: Path) -> list[str]:
    """Everything under ``root`` (and ``root``) that a group or others may read."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


def test_a_lab_made_under_umask_022_is_private(hermetic_env: Path, umask_022: None) -> None:
    backend = LabBackend()
    request = extend.defaults(backend).request
    result = extend.extend(backend, request, local_administrator())
    wait_for_mirror(backend, result.hierarchy_id, "lab2")
    backend.close()
    files = {p.name for p in hermetic_env.rglob("*")}
    assert {"lkconsole.db", "datarep-data.img", "bitmap_datarep-data", "pending", "run"} <= files
    assert any(name.startswith("resync-") and name.endswith(".log") for name in files)
    assert _loose(hermetic_env) == []
    assert stat.S_IMODE(hermetic_env.stat().st_mode) == 0o700


def test_lkctl_under_umask_022_makes_private_files_and_logs(hermetic_env: Path) -> None:
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--wait"], umask=0o022)
    assert done.returncode == 0, done.stderr
    assert _loose(hermetic_env) == []
    log_file = paths.log_dir() / "lkctl.log"
    assert log_file.exists()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert _loose(paths.log_dir()) == []


def test_an_old_world_readable_installation_is_tightened_when_opened(
    hermetic_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    LabBackend().close()
    for path in [hermetic_env, *hermetic_env.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    assert _loose(hermetic_env)
    with caplog.at_level(logging.WARNING, logger="core.files"):
        LabBackend().close()
    assert _loose(hermetic_env) == []
    lines = [r.getMessage() for r in caplog.records if r.name == "core.files"]
    assert len(lines) == 1 and "private (owner only)" in lines[0], lines
    assert "lkconsole.db" in lines[0]
    with caplog.at_level(logging.WARNING, logger="core.files"):
        caplog.clear()
        LabBackend().close()
    assert not [r for r in caplog.records if r.name == "core.files"]  # nothing more to do


def test_the_log_file_handler_makes_every_generation_private(
    hermetic_env: Path, umask_022: None
) -> None:
    path = setup_logging()
    assert path is not None
    try:
        logging.getLogger("lkctl").warning("x" * 100)
        for handler in logging.getLogger().handlers:
            if getattr(handler, "lkctl", False):
                handler.doRollover()  # type: ignore[attr-defined]
        logging.getLogger("lkctl").warning("after the rollover")
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "lkctl", False):
                logging.getLogger().removeHandler(handler)
                handler.close()
    generations = sorted(path.parent.glob("lkctl.log*"))
    assert len(generations) == 2
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in generations)
