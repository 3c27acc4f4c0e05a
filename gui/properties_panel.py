"""The properties panel: what :mod:`core.properties` says about the selection.

A heading (icon and name) above a two-column tree: one bold row per section, its
``label: value`` rows below. When only values change (a resync's progress), the rows
are updated in place, so the user's scroll position and selection stay.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.properties import Properties, Row
from gui import icons

_ICON_SIZE = 16


class PropertiesPanel(QDockWidget):
    """Dock with the properties of the selected server, resource or cell."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Properties", parent)
        self.setObjectName("properties_panel")
        self.setAccessibleName("Properties panel")
        self.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)

        body = QWidget(self)
        body.setObjectName("properties_body")
        body.setAccessibleName("Properties of the selection")
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.setSpacing(4)

        layout.addLayout(self._build_heading(body))
        self._build_tree(body)
        layout.addWidget(self.tree, 1)
        self._build_hint(body)
        layout.addWidget(self.hint, 1)
        self.setWidget(body)

        self._shape: tuple[object, ...] = ()
        self._rows: list[Row | None] = []  # what each top-level item shows (None: a title)
        self._section_font = QFont(self.tree.font())
        self._section_font.setBold(True)
        self.current: Properties | None = None

    def _build_heading(self, body: QWidget) -> QHBoxLayout:
        """The selection's state icon and name."""
        head = QHBoxLayout()
        head.setSpacing(6)
        self.heading_icon = QLabel(body)
        self.heading_icon.setObjectName("properties_icon")
        self.heading_icon.setAccessibleName("Selection state icon")
        self.heading_icon.setFixedSize(QSize(_ICON_SIZE, _ICON_SIZE))
        # Opaque (the dock's colour): a new icon repaints the label only, not the dock
        # and its title beneath it.
        self.heading_icon.setAutoFillBackground(True)
        self.heading = QLabel(body)
        self.heading.setObjectName("properties_heading")
        self.heading.setAccessibleName("Selection")
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.heading.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.heading.setFont(font)
        head.addWidget(self.heading_icon)
        head.addWidget(self.heading, 1)
        return head

    def _build_tree(self, body: QWidget) -> None:
        """The rows: property, value."""
        self.tree = QTreeWidget(body)
        self.tree.setObjectName("properties_tree")
        self.tree.setAccessibleName("Properties")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Property", "Value"])
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(0)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIconSize(QSize(_ICON_SIZE, _ICON_SIZE))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setWordWrap(False)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

    def _build_hint(self, body: QWidget) -> None:
        """What to select, shown when nothing is."""
        self.hint = QLabel(body)
        self.hint.setObjectName("properties_hint")
        self.hint.setAccessibleName("Properties hint")
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.hint.setContentsMargins(2, 6, 2, 2)
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.hint.hide()

    def show_properties(self, props: Properties) -> None:
        """Show ``props``; rows that keep their place are updated in place."""
        if props == self.current:
            return
        last, self.current = self.current, props
        if last is None or _head(props) != _head(last):
            self._show_heading(props)
        shape = tuple((s.title, tuple(r.label for r in s.rows)) for s in props.sections)
        if shape == self._shape:
            self._update_values(props)
        else:
            self._shape = shape
            self._rebuild(props)

    def _show_heading(self, props: Properties) -> None:
        self.heading.setText(props.heading)
        self.heading.setToolTip(props.heading)
        pixmap = icons.icon(props.icon).pixmap(_ICON_SIZE, _ICON_SIZE) if props.icon else None
        if pixmap is None:
            self.heading_icon.clear()
        else:
            self.heading_icon.setPixmap(pixmap)
        self.hint.setText(props.hint)
        self.hint.setVisible(bool(props.hint))
        self.tree.setVisible(not props.hint)
        self.heading_icon.setVisible(props.icon is not None)

    def _rebuild(self, props: Properties) -> None:
        self.tree.clear()
        items: list[QTreeWidgetItem] = []
        heads: list[QTreeWidgetItem] = []
        for section in props.sections:
            if section.title:
                head = QTreeWidgetItem([section.title, ""])
                head.setFont(0, self._section_font)
                head.setFlags(Qt.ItemFlag.ItemIsEnabled)
                items.append(head)
                heads.append(head)
            for row in section.rows:
                item = QTreeWidgetItem([row.label, row.value])
                self._decorate(item, row.value, row.icon)
                items.append(item)
        self.tree.addTopLevelItems(items)
        for head in heads:  # only possible once the item is in the tree
            head.setFirstColumnSpanned(True)
        self._rows = _rows_of(props)

    def _update_values(self, props: Properties) -> None:
        """Only the rows whose value or icon changed (the others are not touched)."""
        position = 0
        last = self._rows
        for section in props.sections:
            if section.title:
                position += 1
            for row in section.rows:
                old = last[position]
                item = self.tree.topLevelItem(position) if row != old else None
                if item is not None and old is not None:
                    if row.value != old.value:
                        item.setText(1, row.value)
                        item.setToolTip(1, row.value)
                    if row.icon and row.icon != old.icon:
                        item.setIcon(1, icons.icon(row.icon))
                position += 1
        self._rows = _rows_of(props)

    @staticmethod
    def _decorate(item: QTreeWidgetItem, value: str, icon: str | None) -> None:
        item.setToolTip(1, value)
        if icon:
            item.setIcon(1, icons.icon(icon))

    def rows(self) -> dict[str, str]:
        """``label: value`` of every row shown (a later section wins a repeated label)."""
        found: dict[str, str] = {}
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None and not item.isFirstColumnSpanned():
                found[item.text(0)] = item.text(1)
        return found

    def sections(self) -> list[str]:
        return [
            item.text(0)
            for i in range(self.tree.topLevelItemCount())
            if (item := self.tree.topLevelItem(i)) is not None and item.isFirstColumnSpanned()
        ]


def _head(props: Properties) -> tuple[str, str | None, str]:
    return props.heading, props.icon, props.hint


def _rows_of(props: Properties) -> list[Row | None]:
    """The tree's top-level items in order: None for a section's title, else its row."""
    rows: list[Row | None] = []
    for section in props.sections:
        if section.title:
            rows.append(None)
        rows.extend(section.rows)
    return rows
