"""View › History: every operation, sortable and filterable, with its steps."""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QThreadPool,
    Slot,
)
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core import history
from core.backend import Backend
from gui import icons
from gui.jobs import Job, JobSignals

Index = QModelIndex | QPersistentModelIndex
COLUMNS = ("When", "User", "Role", "Operation", "Result", "Duration")
SORT_ROLE = Qt.ItemDataRole.UserRole
FILTER_ROLE = Qt.ItemDataRole.UserRole + 1  # what the filter box searches


class HistoryModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.entries: list[history.Entry] = []

    def set_entries(self, entries: list[history.Entry]) -> None:
        self.beginResetModel()  # a new list read from the store: a reset is what it is
        self.entries = list(entries)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        e = self.entries[index.row()]
        column = index.column()
        if role == FILTER_ROLE:
            return " ".join((e.user, e.role, e.operation, e.command, e.result))
        if role == SORT_ROLE:
            return (e.started, e.user, e.role, e.operation, int(e.ok), e.duration)[column]
        if role == Qt.ItemDataRole.DisplayRole:
            when = dt.datetime.fromtimestamp(e.started).strftime("%Y-%m-%d %H:%M:%S")
            return (
                when,
                e.user,
                e.role,
                e.operation,
                "ok" if e.ok else "FAILED",
                f"{e.duration:.1f} s",
            )[column]
        if role == Qt.ItemDataRole.DecorationRole and column == 4:
            return icons.state_icon("active" if e.ok else "failed")
        if role == Qt.ItemDataRole.ToolTipRole:
            return e.result or e.command
        return None


class HistoryFilter(QSortFilterProxyModel):
    """Rows whose user, role, operation, command or result contain the filter text."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(0)
        self.setFilterRole(FILTER_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_text(self, text: str) -> None:
        self.setFilterFixedString(text.strip())


class HistoryDialog(QDialog):
    """The operation history of the cluster, read from the backend on a worker."""

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setObjectName("history_dialog")
        self.setWindowTitle("Operation History")
        self.setWindowIcon(icons.icon("action-history"))
        self.model = HistoryModel(self)
        self.proxy = HistoryFilter(self)
        self.proxy.setSourceModel(self.model)
        self.filter = QLineEdit(objectName="history_filter")
        self.filter.setPlaceholderText("Filter: user, operation, command or result")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter the history")
        self.filter.textChanged.connect(self.proxy.set_text)
        refresh = QPushButton(
            icons.icon("action-refresh"), "&Refresh", objectName="history_refresh"
        )
        refresh.clicked.connect(self.reload)
        self.table = QTableView(objectName="history_table")
        self.table.setAccessibleName("Operations")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.steps = QPlainTextEdit(objectName="history_steps")
        self.steps.setReadOnly(True)
        self.steps.setAccessibleName("Steps of the selected operation")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.steps.setFont(mono)
        self.count = QLabel(objectName="history_count")
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(refresh)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.steps)
        split.setSizes([300, 200])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addWidget(self.count)
        self.table.selectionModel().currentRowChanged.connect(self._show_steps)
        self.proxy.rowsInserted.connect(self._update_count)
        self.proxy.modelReset.connect(self._update_count)
        self.proxy.layoutChanged.connect(self._update_count)
        self.filter.textChanged.connect(self._update_count)
        self.resize(820, 560)
        self._job: Job | None = None
        self.reload()

    @Slot()
    def reload(self) -> None:
        backend = self.backend

        def work(_signals: JobSignals) -> object:
            return backend.history()

        job = Job(work)
        job.setAutoDelete(False)
        job.signals.result.connect(self._loaded)
        self._job = job
        QThreadPool.globalInstance().start(job)

    def _loaded(self, entries: object) -> None:
        assert isinstance(entries, list)
        self._job = None
        self.model.set_entries(entries)
        for column in (0, 1, 2, 4, 5):
            self.table.resizeColumnToContents(column)
        if self.proxy.rowCount():
            self.table.selectRow(0)

    @Slot()
    def _update_count(self) -> None:
        self.count.setText(f"{self.proxy.rowCount()} of {self.model.rowCount()} operations")

    @Slot(QModelIndex, QModelIndex)
    def _show_steps(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            self.steps.clear()
            return
        e = self.model.entries[self.proxy.mapToSource(current).row()]
        lines = [
            f"{e.operation}: {'ok' if e.ok else 'FAILED'} ({e.user}, {e.role})",
            f"$ {e.command}" if e.command else "",
            "",
        ]
        lines += [s for s in e.steps if not s.startswith("Command: ")]
        if not e.ok:
            lines += ["", f"Result: {e.result}"]
        self.steps.setPlainText("\n".join(lines))

    def selected(self) -> history.Entry | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.entries[self.proxy.mapToSource(index).row()]
