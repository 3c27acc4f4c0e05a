"""Desktop integration files, icons, the wheel, and the PyInstaller build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from tests.helpers import REPO

PACKAGING = REPO / "packaging"
METAINFO = PACKAGING / "io.github.lkconsole.lkconsole.metainfo.xml"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (bash packaging/bootstrap.sh --test installs it)")
    return found


def test_desktop_entry_is_valid() -> None:
    done = subprocess.run(
        [_tool("desktop-file-validate"), str(PACKAGING / "lkconsole.desktop")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    text = (PACKAGING / "lkconsole.desktop").read_text()
    assert "Exec=lkconsole\n" in text and "Icon=lkconsole\n" in text


def test_appstream_metainfo_is_valid() -> None:
    done = subprocess.run(
        [_tool("appstreamcli"), "validate", "--no-net", "--pedantic", str(METAINFO)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = METAINFO.read_text()
    for part in (
        "<screenshot",
        "<release version=",
        '<content_rating type="oars-1.1"',
        '<launchable type="desktop-id">lkconsole.desktop</launchable>',
    ):
        assert part in text


def test_the_app_icon_comes_at_the_usual_sizes() -> None:
    base = REPO / "resources" / "icons" / "hicolor"
    for size in (16, 24, 32, 48, 64, 128, 256):
        image = QImage(str(base / f"{size}x{size}" / "apps" / "lkconsole.png"))
        assert (image.width(), image.height()) == (size, size)
        assert image.pixelColor(size // 2, size // 2).alpha() > 0  # not an empty picture
    assert (base / "scalable" / "apps" / "lkconsole.svg").read_text().startswith("<")


@pytest.mark.slow
def test_the_wheel_installs_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("lkconsole-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    home = tmp_path / "home"
    done = subprocess.run(
        [str(env_dir / "bin" / "lkctl"), "status"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "LKCONSOLE_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr
    assert "Hierarchy /data  (in service on lab1" in done.stdout
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [str(env_dir / "bin" / "lkconsole"), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "LKCONSOLE_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr
    assert QImage(str(shot)).width() == 1024


@pytest.mark.slow
def test_the_pyinstaller_build_starts_and_draws_the_window(tmp_path: Path) -> None:
    pyinstaller = shutil.which("pyinstaller", path=str(Path(sys.executable).parent))
    if pyinstaller is None:
        pytest.skip("pyinstaller is not installed (the test extra installs it)")
    subprocess.run(
        [
            pyinstaller,
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(tmp_path / "dist"),
            "--workpath",
            str(tmp_path / "build"),
            str(PACKAGING / "lkconsole.spec"),
        ],
        check=True,
        capture_output=True,
        timeout=1800,
        cwd=tmp_path,
    )
    binary = tmp_path / "dist" / "lkconsole" / "lkconsole"
    assert binary.is_file()
    shot = tmp_path / "frozen.png"
    env = {**os.environ, "LKCONSOLE_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [str(binary), "--screenshot", str(shot), "--size", "900x500"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    image = QImage(str(shot))
    assert (image.width(), image.height()) == (900, 500)
    colours = {image.pixel(x, y) for x in range(0, 900, 9) for y in range(0, 120, 4)}
    assert len(colours) > 10
