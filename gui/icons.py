"""Icons from resources/icons (SVG: one file serves every scale). GUI thread only."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap

from core.model import NodeStatus, ServerState

log = logging.getLogger(__name__)

_SERVER_ICON = {
    ServerState.ALIVE: "server-alive",
    ServerState.ALIVE_WARNING: "server-warning",
    ServerState.ALIVE_STANDBY: "server-warning",
    ServerState.DEAD: "server-dead",
    ServerState.UNKNOWN: "server-unknown",
}


# Next to this package (in the source tree, the wheel and the frozen build alike);
# importlib.resources would cost a noticeable part of the start-up for the same path.
_RESOURCES = Path(__file__).resolve().parent.parent / "resources"
_ICONS = _RESOURCES / "icons"
# Looked up once, when the console starts: afterwards no icon costs a file-system call on
# the GUI thread (Qt reads an SVG when it first paints it).
_AVAILABLE = {p.stem for p in _ICONS.glob("*.svg")} if _ICONS.is_dir() else set()
_APP_ICON = _RESOURCES / "lkconsole.svg"
_HAVE_APP_ICON = _APP_ICON.is_file()


@functools.cache
def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` (a null icon, logged, when missing)."""
    if name not in _AVAILABLE:
        log.warning("missing icon %s", name)
        return QIcon()
    return QIcon(str(_ICONS / f"{name}.svg"))


def state_icon(cell_icon: str) -> QIcon:
    """Icon of a status cell (``core.status.Cell.icon``: active, standby, target, ...)."""
    return icon(f"state-{cell_icon}")


def server_icon(state: ServerState) -> QIcon:
    return icon(_SERVER_ICON[state])


def node_icon(status: NodeStatus) -> QIcon:
    return icon(f"node-{status.name.lower()}")


# The sizes a tree row's icon is drawn at (the view picks the nearest), and the badge's
# share of it.
_ROW_SIZES = (16, 20, 24, 32, 48)
_BADGE = 0.62


@functools.cache
def resource_icon(kind: str, status: NodeStatus) -> QIcon:
    """A resource's row in the status table: its kind's icon (``kind-<kind>``), with the
    branch's status (the node icon) as a badge in the lower right corner."""
    base, badge = icon(f"kind-{kind}"), node_icon(status)
    if base.isNull():
        return badge
    out = QIcon()
    for size in _ROW_SIZES:
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        side = round(size * 0.8)
        base.paint(painter, 0, 0, side, side)
        b = round(size * _BADGE)
        badge.paint(painter, size - b, size - b, b, b)
        painter.end()
        out.addPixmap(pixmap)
    return out


def app_icon() -> QIcon:
    return QIcon(str(_APP_ICON)) if _HAVE_APP_ICON else QIcon()
