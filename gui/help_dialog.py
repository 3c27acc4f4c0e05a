"""Help › LK Console Documentation: the user guide, built in (works offline).

The guide explains the window, every cell state (with its icon) and the shortcuts. When
the README of a source checkout is next to the package, a button opens it too.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QUrl, Slot
from PySide6.QtGui import QDesktopServices, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core import paths
from gui import icons

README = Path(__file__).resolve().parent.parent / "README.md"

_STATES = (
    ("state-active", "Active", "In service, protected (ISP)."),
    ("state-degraded", "Degraded", "In service, unprotected (ISU)."),
    ("state-standby", "Standby", "Out of service, unimpaired (OSU): ready to take over."),
    ("state-failed", "Failed", "Out of service, failed (OSF)."),
    ("state-unknown", "Unknown", "State not known (ILLSTATE, UNKNOWN)."),
    ("state-source", "Source", "DataKeeper: the mirror's in-service copy."),
    ("state-target", "Target", "DataKeeper: a standby copy in sync with the source."),
    (
        "state-resyncing",
        "Resyncing 43 % · 180 MB/s · 2 min left",
        "DataKeeper: the copy is being resynced; it cannot take over until it is Target.",
    ),
    ("state-outofsync", "Out of Sync", "DataKeeper: not replicating (paused, target down)."),
    (
        "state-waitsource",
        "Out of Sync (Wait for Previous Source)",
        "DataKeeper: this copy may be stale; bring the hierarchy back on the previous source.",
    ),
)
_NODES = (
    ("node-normal", "Normal", "Everything in the branch is as it should be."),
    ("node-warning", "Warning", "Something in the branch is degraded or resyncing."),
    ("node-failed", "Failed", "Something in the branch failed."),
    ("node-unknown", "Unknown", "The state of something in the branch is unknown."),
)
_KINDS = (
    ("kind-filesystem", "File System", "A mounted file system (on a DataKeeper volume)."),
    ("kind-datakeeper", "DataKeeper", "A replicated volume: the mirror's source and targets."),
    ("kind-ip", "IP Address", "A virtual IP address that moves with its hierarchy."),
    ("kind-app", "Generic Application", "An application: its start, stop and monitor commands."),
)
_SERVERS = (
    ("server-alive", "ALIVE", "The server is up."),
    ("server-warning", "ALIVE (warning)", "Up, but a communication path is down."),
    ("server-dead", "DEAD", "The server is down: its hierarchies failed over."),
    ("server-unknown", "UNKNOWN", "The console cannot tell."),
)
_SHORTCUTS = (
    ("Ctrl+E", "Extend Resource Hierarchy"),
    ("Ctrl+N", "Create Resource Hierarchy"),
    ("Ctrl+I / Ctrl+O", "In Service / Out of Service"),
    ("Alt+Return", "Properties of the selected resource"),
    ("Ctrl+F", "Filter the status table by tag"),
    ("Ctrl++ / Ctrl+-", "Expand all / Collapse all"),
    ("F5", "Refresh"),
    ("Menu key, Shift+F10", "Context menu of the selected resource or cell"),
)


def _legend(rows: tuple[tuple[str, str, str], ...]) -> str:
    cells = "".join(
        f'<tr><td><img src="icon:{icon}" width="16" height="16"></td>'
        f"<td><b>{html.escape(text)}</b></td><td>{html.escape(meaning)}</td></tr>"
        for icon, text, meaning in rows
    )
    return f'<table cellspacing="4">{cells}</table>'


def guide_html() -> str:
    shortcuts = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(v)}</td></tr>"
        for k, v in _SHORTCUTS
    )
    return f"""
<h2>LK Console</h2>
<p>A console for high-availability clusters protecting DataKeeper replicated volumes, in
the image of the LifeKeeper for Linux GUI.</p>
<h3>The window</h3>
<ul>
<li><b>Status table</b>: the resource hierarchies on the left (a root, expandable to the
resources it depends on), one column per server. Each cell is the state of that resource
on that server. Click a column header to see the server's properties; click a resource or
a cell to see its properties. Right-click any of them for its actions.</li>
<li><b>Properties panel</b>: the selected server, resource or cell; for a DataKeeper
resource, its mirror: source, targets, bitmap file, chunk size, dirty chunks, sync state,
rate and time left.</li>
<li><b>Output panel</b>: the log lines of operations, with time and level. Select and
copy them (Ctrl+C) or use Copy All from its context menu.</li>
<li><b>Message bar</b>: the last result, a progress bar while mirrors resync, and the
session (cluster and role).</li>
</ul>
<p>An action that does not apply to the selection is disabled; its tooltip says why.</p>
<h3>Cell states</h3>{_legend(_STATES)}
<h3>Resource kinds (a tree row's icon)</h3>{_legend(_KINDS)}
<h3>Tree nodes (the worst state of the branch: the badge in the corner)</h3>{_legend(_NODES)}
<h3>Servers</h3>{_legend(_SERVERS)}
<h3>Keyboard</h3><table cellspacing="4">{shortcuts}</table>
<h3>Files</h3>
<p>Cluster state and the lab's servers: <code>{html.escape(str(paths.data_dir()))}</code><br>
Settings: <code>{html.escape(str(paths.config_dir()))}</code><br>
Log file: <code>{html.escape(str(paths.log_dir()))}</code></p>
<p>The same operations are available on the command line: <code>lkctl --help</code>.</p>
"""


class HelpDialog(QDialog):
    """The built-in user guide (objectName ``help_dialog``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("help_dialog")
        self.setAccessibleName("LK Console documentation")
        self.setWindowTitle("LK Console Documentation")
        self.resize(640, 620)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("help_text")
        self.browser.setAccessibleName("User guide")
        self.browser.setOpenExternalLinks(True)
        document = self.browser.document()
        for group in (_STATES, _KINDS, _NODES, _SERVERS):
            for icon, _text, _meaning in group:
                document.addResource(
                    QTextDocument.ResourceType.ImageResource,
                    QUrl(f"icon:{icon}"),
                    icons.icon(icon).pixmap(16, 16),
                )
        self.browser.setHtml(guide_html())
        layout.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.setObjectName("help_buttons")
        buttons.rejected.connect(self.close)
        self.readme_button = QPushButton("Open &README", self)
        self.readme_button.setObjectName("open_readme")
        self.readme_button.setAccessibleName("Open the README")
        self.readme_button.setToolTip(str(README))
        self.readme_button.setVisible(README.is_file())
        self.readme_button.clicked.connect(self.open_readme)
        buttons.addButton(self.readme_button, QDialogButtonBox.ButtonRole.ActionRole)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setObjectName("close_help")
        close.setAccessibleName("Close")
        layout.addWidget(buttons)

    @Slot()
    def open_readme(self) -> bool:
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(README)))
