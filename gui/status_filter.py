"""Sorting and the tag filter of the status table, over the status model.

A plain :class:`QSortFilterProxyModel` (its C++ comparisons on :attr:`Role.SORT` keys, no
Python per comparison): recursive filtering keeps the hierarchy above a matching tag
and the resources below it, so a filter for ``datarep`` still shows ``/data`` above it.
The proxy forwards the source model's ``dataChanged`` as ``dataChanged``; it never turns
a state change into a reset.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRegularExpression, QSortFilterProxyModel, Qt

from gui.status_model import Role, StatusModel


class StatusFilterModel(QSortFilterProxyModel):
    """The status model, sorted by a column and filtered by tag (column 0)."""

    def __init__(self, source: StatusModel, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("status_filter_model")
        self.setSourceModel(source)
        self.setSortRole(Role.SORT)
        self.setFilterKeyColumn(0)
        self.setFilterRole(Role.TAG)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setRecursiveFilteringEnabled(True)
        self.setAutoAcceptChildRows(True)
        self.setDynamicSortFilter(True)

    def set_tag_filter(self, text: str) -> None:
        """Show the hierarchies with a tag containing ``text`` (case-insensitive)."""
        pattern = QRegularExpression.escape(text.strip())
        self.setFilterRegularExpression(
            QRegularExpression(pattern, QRegularExpression.PatternOption.CaseInsensitiveOption)
        )

    @property
    def status_model(self) -> StatusModel:
        source = self.sourceModel()
        assert isinstance(source, StatusModel)
        return source
