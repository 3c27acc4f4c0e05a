"""The LK Console main window: the status table of the cluster."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTreeView,
)

from core import paths
from core.model import Cluster
from gui import icons
from gui.bridge import ClusterWatcher
from gui.status_model import StatusModel

log = logging.getLogger(__name__)

APP_TITLE = "LK Console"


def settings() -> QSettings:
    """User settings (window geometry, last choices) in user_config_dir."""
    path = paths.config_dir() / "lkconsole.ini"
    return QSettings(str(path), QSettings.Format.IniFormat)


class MainWindow(QMainWindow):
    """Status table of the embedded lab cluster, kept live from the store."""

    cluster_shown = Signal()  # after each snapshot reached the model

    def __init__(self, home: Path | None = None) -> None:
        super().__init__()
        self.setObjectName("main_window")
        self.setWindowTitle(f"{APP_TITLE} — lab cluster")
        self.setWindowIcon(icons.app_icon())
        self.cluster: Cluster | None = None
        self._first_load = True

        self.model = StatusModel(self)
        self.tree = QTreeView(self)
        self.tree.setObjectName("status_tree")
        self.tree.setAccessibleName("Status table")
        self.tree.setModel(self.model)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.tree.setAllColumnsShowFocus(False)
        header = self.tree.header()
        header.setObjectName("status_header")
        header.setMinimumSectionSize(120)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.setCentralWidget(self.tree)

        self.message = QLabel("Connecting to the lab cluster…", self)
        self.message.setObjectName("message_bar")
        self.statusBar().addWidget(self.message, 1)
        self._build_menus()

        self.watcher = ClusterWatcher(home)
        self.watcher.cluster_loaded.connect(self._show_cluster)
        self.watcher.failed.connect(self._show_failure)
        self.resize(1024, 640)
        self._restore_settings()
        self.watcher.watch_for(self)

    # -- menus ------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.setObjectName("menu_file")
        exit_action = QAction("E&xit", self, objectName="action_exit")
        exit_action.setShortcut(QKeySequence.StandardKey.Quit)
        exit_action.triggered.connect(self.close)
        file_menu.addAction(exit_action)

        view_menu = self.menuBar().addMenu("&View")
        view_menu.setObjectName("menu_view")
        expand = QAction("&Expand All", self, objectName="action_expand_all")
        expand.triggered.connect(self.tree.expandAll)
        collapse = QAction("&Collapse All", self, objectName="action_collapse_all")
        collapse.triggered.connect(self.tree.collapseAll)
        view_menu.addActions([expand, collapse])

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.setObjectName("menu_help")
        about = QAction("&About LK Console", self, objectName="action_about")
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    @Slot()
    def _about(self) -> None:
        QMessageBox.about(
            self,
            f"About {APP_TITLE}",
            f"<b>{APP_TITLE}</b><p>A console for high-availability clusters protecting "
            "DataKeeper replicated volumes, in the image of the LifeKeeper for Linux GUI.</p>"
            f"<p>Data directory: {paths.data_dir()}</p>",
        )

    # -- state --------------------------------------------------------------------------
    @Slot(object)
    def _show_cluster(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.model.set_cluster(cluster)
        if self._first_load:
            self._first_load = False
            self.tree.expandAll()
            self.tree.resizeColumnToContents(0)
            self.tree.setColumnWidth(0, max(self.tree.columnWidth(0) + 24, 220))
        alive = sum(1 for s in cluster.servers if s.state.is_alive)
        self.message.setText(
            f"Connected to the lab cluster: {alive} of {len(cluster.servers)} servers alive, "
            f"{len(cluster.hierarchies)} resource hierarchies. Role: Administrator."
        )
        self.cluster_shown.emit()

    @Slot(str)
    def _show_failure(self, message: str) -> None:
        self.message.setText(f"Error: {message}")
        log.error("%s", message)

    # -- settings -----------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = settings()
        geometry = s.value("main_window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = s.value("main_window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def _save_settings(self) -> None:
        s = settings()
        s.setValue("main_window/geometry", self.saveGeometry())
        s.setValue("main_window/state", self.saveState())
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._save_settings()
        self.watcher.stop()
        super().closeEvent(event)
