"""Small widgets the dialogs share: a read-only monospace text (a plan, a log) and the
Show Command line with its toggle."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit


def read_only_text(object_name: str, accessible_name: str) -> QPlainTextEdit:
    """A read-only, monospace text box (the lines lkctl prints, shown as they are)."""
    box = QPlainTextEdit(objectName=object_name)
    box.setReadOnly(True)
    box.setAccessibleName(accessible_name)
    mono = QFont("monospace")
    mono.setStyleHint(QFont.StyleHint.Monospace)
    box.setFont(mono)
    return box


def command_line(tip: str = "The lkctl line that does the same (copyable).") -> QLineEdit:
    """The Show Command line: read-only, hidden until asked for."""
    line = QLineEdit(objectName="show_command")
    line.setReadOnly(True)
    line.setAccessibleName("The lkctl command that does the same")
    line.setToolTip(tip)
    line.hide()
    return line


def toggle_command(line: QLineEdit) -> None:
    """Show Command: show the line selected (to copy), or hide it again."""
    line.setVisible(not line.isVisible())
    if line.isVisible():
        line.selectAll()
        line.setFocus()
