"""Where LK Console keeps its files.

The data directory is ``$LKCONSOLE_HOME`` when set (tests, several labs side by side),
else ``platformdirs.user_data_dir("lkconsole")``; settings and logs follow platformdirs too.

On Linux the same locations are computed here from the XDG Base Directory variables
(``tests/test_paths.py`` checks they equal platformdirs' answers): importing platformdirs
costs a tenth of the console's start-up (it imports tempfile, shutil, random...), and the
console needs the data directory before its first paint. Elsewhere platformdirs answers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "lkconsole"


def data_dir() -> Path:
    home = os.environ.get("LKCONSOLE_HOME")
    if home:
        return Path(home).expanduser()
    return _user_dir("XDG_DATA_HOME", "~/.local/share", "user_data_dir")


def config_dir() -> Path:
    return _user_dir("XDG_CONFIG_HOME", "~/.config", "user_config_dir")


def log_dir() -> Path:
    if not sys.platform.startswith("linux"):
        return _platformdirs("user_log_dir")
    return _user_dir("XDG_STATE_HOME", "~/.local/state", "user_state_dir") / "log"


def _user_dir(variable: str, default: str, platformdirs_name: str) -> Path:
    if not sys.platform.startswith("linux"):
        return _platformdirs(platformdirs_name)
    base = os.environ.get(variable, "")
    if not os.path.isabs(base):  # unset, blank or relative: the XDG default, as the spec says
        base = os.path.expanduser(default)
    return Path(base) / APP_NAME


def _platformdirs(name: str) -> Path:
    import platformdirs

    return Path(getattr(platformdirs, name)(APP_NAME))
