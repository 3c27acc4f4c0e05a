"""Messages under form fields, as every wizard and dialog of the console shows them: red
under the field it is about, the field outlined; notes in brown, success in green."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

from core.checks import Problem
from core.rules import extend

ERROR_STYLE = "color: #c62828;"
OK_STYLE = "color: #2e7d32;"
NOTE_STYLE = "color: #5d4037;"
INVALID_FIELD = "border: 1px solid #c62828;"
MESSAGE_WIDTH = 460  # wrapped messages under fields: wide enough to read


def error_label(name: str) -> QLabel:
    label = QLabel(objectName=f"{name}_error")
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.setAccessibleName(f"{extend.LABELS.get(name, name)} problem")
    label.setMinimumWidth(MESSAGE_WIDTH)
    label.hide()
    return label


def show_field_problems(
    labels: dict[str, QLabel], fields: dict[str, QWidget], problems: list[Problem]
) -> None:
    """Each problem's message under its field, the field outlined; the rest cleared."""
    by_field: dict[str, list[str]] = {}
    for p in problems:
        by_field.setdefault(p.field, []).append(p.message)
    for name, label in labels.items():
        messages = by_field.get(name, [])
        label.setText("\n".join(messages))
        label.setVisible(bool(messages))
        widget = fields.get(name)
        if widget is not None:
            widget.setStyleSheet(INVALID_FIELD if messages else "")
            widget.setProperty("invalid", bool(messages))
