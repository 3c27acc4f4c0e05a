"""core.paths gives platformdirs' locations on Linux without importing it at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from core import paths

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="XDG rules are Linux's"
)

CASES = {
    "unset": {},
    "set": {
        "XDG_DATA_HOME": "/srv/data",
        "XDG_CONFIG_HOME": "/srv/config",
        "XDG_STATE_HOME": "/srv/state",
    },
    "blank": {"XDG_DATA_HOME": "", "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": ""},
    "relative (ignored, as the spec says)": {
        "XDG_DATA_HOME": "data",
        "XDG_CONFIG_HOME": "./config",
        "XDG_STATE_HOME": "state",
    },
}


@pytest.mark.parametrize("case", CASES)
def test_locations_are_platformdirs_ones(
    case: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LKCONSOLE_HOME", raising=False)
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in CASES[case].items():
        monkeypatch.setenv(name, value)
    assert paths.data_dir() == Path(platformdirs.user_data_dir("lkconsole"))
    assert paths.config_dir() == Path(platformdirs.user_config_dir("lkconsole"))
    assert paths.log_dir() == Path(platformdirs.user_log_dir("lkconsole"))
    if case == "unset":
        assert paths.data_dir() == tmp_path / "home/.local/share/lkconsole"
        assert paths.log_dir() == tmp_path / "home/.local/state/lkconsole/log"


def test_lkconsole_home_overrides_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LKCONSOLE_HOME", str(tmp_path / "lab"))
    assert paths.data_dir() == tmp_path / "lab"


def test_start_up_does_not_import_platformdirs() -> None:
    code = "import sys, core.paths as p; p.data_dir(); p.config_dir(); p.log_dir(); "
    code += "print('platformdirs' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.stdout.strip() == "False"
