"""The output panel: log lines of running and finished operations, with time and level.

Lines come from the store (persistent: they survive a restart, the store keeps the last
ones) and, while an operation runs in this process, live from core events and workers.
A live line that later arrives from the store is not shown twice. The text is plain and
selectable, so Ctrl+C (or Copy All) copies it as it reads.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable

from PySide6.QtCore import QPoint, Qt, Slot
from PySide6.QtGui import QAction, QColor, QFont, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QApplication, QDockWidget, QPlainTextEdit, QWidget

from core.history import LogRow

MAX_LINES = 2000  # as many as the store keeps
_UNCONFIRMED_KEPT = 500

_LEVEL_COLOUR = {
    "INFO": QColor("#1565c0"),
    "WARNING": QColor("#b26a00"),
    "ERROR": QColor("#c62828"),
}
_DIM = QColor("#6b6b6b")

Key = tuple[str, str, str]


def format_line(ts: float, operation: str, level: str, text: str) -> str:
    """One line as shown and copied: ``2026-05-09 12:03:04  INFO     extend  text``."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    return f"{stamp}  {level:<8} {operation:<10} {text}"


class OutputPanel(QDockWidget):
    """Dock with the operations' log (objectName ``output_panel``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Output", parent)
        self.setObjectName("output_panel")
        self.setAccessibleName("Output panel")
        self.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)
        self.text = QPlainTextEdit(self)
        self.text.setObjectName("output_text")
        self.text.setAccessibleName("Output: log lines of operations")
        self.text.setReadOnly(True)
        self.text.setUndoRedoEnabled(False)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.text.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.text.setFont(font)
        self.text.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.text.customContextMenuRequested.connect(self._menu)
        self.setWidget(self.text)

        self.copy_all_action = QAction("Copy &All", self)
        self.copy_all_action.setObjectName("copy_output")
        self.copy_all_action.triggered.connect(self.copy_all)
        self.clear_action = QAction("C&lear", self)
        self.clear_action.setObjectName("clear_output")
        self.clear_action.setToolTip("Clear the panel (the lines stay in the store).")
        self.clear_action.triggered.connect(self.clear)

        self._unconfirmed: collections.deque[Key] = collections.deque(maxlen=_UNCONFIRMED_KEPT)
        self._formats = self._make_formats()
        self._empty = True

    @staticmethod
    def _make_formats() -> dict[str, QTextCharFormat]:
        formats: dict[str, QTextCharFormat] = {}
        dim = QTextCharFormat()
        dim.setForeground(_DIM)
        formats["dim"] = dim
        formats["text"] = QTextCharFormat()
        for level, colour in _LEVEL_COLOUR.items():
            f = QTextCharFormat()
            f.setForeground(colour)
            if level != "INFO":
                f.setFontWeight(QFont.Weight.Bold)
            formats[level] = f
        error_text = QTextCharFormat()
        error_text.setForeground(_LEVEL_COLOUR["ERROR"])
        formats["ERROR_text"] = error_text
        return formats

    # -- feeding ---------------------------------------------------------------------------
    def add_rows(self, rows: Iterable[LogRow]) -> None:
        """Lines read from the store (oldest first); those already shown live are skipped."""
        fresh: list[LogRow] = []
        for row in rows:
            key = (row.operation, row.level, row.text)
            if key in self._unconfirmed:
                self._unconfirmed.remove(key)
                continue
            fresh.append(row)
        self._append(fresh)

    def add_live(self, operation: str, level: str, text: str, ts: float | None = None) -> None:
        """A line from a running operation in this process (the store may follow)."""
        self._unconfirmed.append((operation, level, text))
        self._append([LogRow(0, time.time() if ts is None else ts, operation, level, text)])

    def lines(self) -> list[str]:
        """The text of every line shown."""
        text = self.text.toPlainText()
        return text.split("\n") if text else []

    @Slot()
    def copy_all(self) -> None:
        QApplication.clipboard().setText(self.text.toPlainText())

    @Slot()
    def clear(self) -> None:
        self.text.clear()
        self._empty = True

    def _append(self, rows: list[LogRow]) -> None:
        if not rows:
            return
        bar = self.text.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        cursor = QTextCursor(self.text.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        f = self._formats
        for row in rows:
            if not self._empty:
                cursor.insertBlock()
            self._empty = False
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.ts))
            level = row.level.upper()
            cursor.insertText(f"{stamp}  ", f["dim"])
            cursor.insertText(f"{level:<8} ", f.get(level, f["text"]))
            cursor.insertText(f"{row.operation:<10} ", f["dim"])
            cursor.insertText(row.text, f["ERROR_text"] if level == "ERROR" else f["text"])
        cursor.endEditBlock()
        if at_end:
            bar.setValue(bar.maximum())

    @Slot(QPoint)
    def _menu(self, pos: QPoint) -> None:
        menu = self.text.createStandardContextMenu(pos)
        menu.setObjectName("output_menu")
        menu.addSeparator()
        menu.addAction(self.copy_all_action)
        menu.addAction(self.clear_action)
        menu.popup(self.text.viewport().mapToGlobal(pos))
