"""Where LK Console keeps its files.

The data directory is ``$LKCONSOLE_HOME`` when set (tests, several labs side by side),
else ``platformdirs.user_data_dir("lkconsole")``. Settings and logs follow platformdirs.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "lkconsole"


def data_dir() -> Path:
    home = os.environ.get("LKCONSOLE_HOME")
    if home:
        return Path(home).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME))
