"""The status table's view: the tree over the sorted, filtered status model.

It turns what the user points at into a :class:`core.availability.Selection` (a
resource, a cell, or a server by its column header) and asks for the matching context
menu. Column 0's header sorts by tag; a server's header selects the server (its header
turns bold); the header's context menu also sorts by a server's states.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, QSize, Qt, Signal, Slot
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeView, QWidget

from core.availability import Selection
from gui.status_filter import StatusFilterModel
from gui.status_model import Role, StatusModel

ICON_SIZE = 16


class StatusView(QTreeView):
    """The status tree (objectName ``status_tree``)."""

    selection_changed = Signal(object)  # core.availability.Selection
    menu_requested = Signal(str, QPoint)  # "cell", "resource", "server" or "empty"; global
    properties_requested = Signal(str)  # "cell" or "server": a double-click asks for them

    def __init__(self, model: StatusModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("status_tree")
        self.setAccessibleName("Status table")
        self.setAccessibleDescription(
            "Resource hierarchies as rows, servers as columns; each cell is the state of "
            "a resource on a server."
        )
        self.source_model = model
        self.proxy = StatusFilterModel(model, self)
        self.setModel(self.proxy)
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        self.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setAllColumnsShowFocus(False)
        self.setAnimated(False)
        # A double-click on a resource's name expands it; on a cell it opens Resource
        # Properties, on a server's header Server Properties (as in LifeKeeper).
        self.setExpandsOnDoubleClick(False)
        self.doubleClicked.connect(self._on_double_click)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_menu)

        header = self.header()
        header.setObjectName("status_header")
        header.setAccessibleName("Servers")
        header.setMinimumSectionSize(90)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.setHighlightSections(False)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._on_header_menu)
        header.sectionClicked.connect(self._on_section_clicked)
        header.sectionDoubleClicked.connect(self._on_section_double_clicked)

        self._server: str | None = None  # a server selected by its header
        self._sort = (0, Qt.SortOrder.AscendingOrder)
        self.proxy.sort(*self._sort)
        header.setSortIndicator(*self._sort)
        self._emitted: Selection | None = None
        self._empty_text = ""
        self.proxy.rowsInserted.connect(self._expand_new_rows)
        self.proxy.modelReset.connect(self.expandAll)
        self.selectionModel().currentChanged.connect(self._on_current_changed)
        self.selectionModel().selectionChanged.connect(self._emit)

    # -- look ------------------------------------------------------------------------------
    def set_empty_text(self, text: str) -> None:
        """What the table says when it shows no row (not connected, nothing matches...)."""
        if text != self._empty_text:
            self._empty_text = text
            # Painted only over an empty, visible table. Not asking for the viewport
            # earlier also spares the start-up ~20 ms: the first time PySide wraps that
            # plain QWidget (made by Qt), it loads every QWidget class to find its type.
            if self.isVisible() and self.proxy.rowCount() == 0:
                self.viewport().update()

    @property
    def empty_text(self) -> str:
        return self._empty_text if self.proxy.rowCount() == 0 else ""

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self._empty_text and self.proxy.rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            area = self.viewport().rect().adjusted(24, 24, -24, -24)
            painter.drawText(
                area,
                int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
                | int(Qt.TextFlag.TextWordWrap),
                self._empty_text,
            )
            painter.end()

    @Slot(QModelIndex, int, int)
    def _expand_new_rows(self, parent: QModelIndex, first: int, last: int) -> None:
        """New hierarchies (created, or shown again by the filter) show their resources."""
        if parent.isValid():
            return
        for row in range(first, last + 1):
            self.expandRecursively(self.proxy.index(row, 0))

    # -- selection -------------------------------------------------------------------------
    def selection(self) -> Selection:
        """What the user selected: a server, a resource (column 0) or a cell."""
        if self._server is not None:
            return Selection(server=self._server)
        index = self.currentIndex()
        if not index.isValid() or not self.selectionModel().isSelected(index):
            return Selection()
        source = self.proxy.mapToSource(index)
        hid, rid, server = self.source_model.ids_at(source)
        return Selection(server=server, hierarchy_id=hid, resource_id=rid)

    def select_server(self, server: str | None) -> None:
        """Select a server as if its column header was clicked (None: nothing)."""
        self._server = server
        self.selectionModel().clearSelection()
        self._refresh_bold_header()
        self._emit()

    def select_resource(
        self, hierarchy_id: int, resource_id: int, server: str | None = None
    ) -> bool:
        """Select a resource (column 0) or a cell; False when it is not shown."""
        source = self.source_model.index_for(hierarchy_id, resource_id, server)
        index = self.proxy.mapFromSource(source)
        if not index.isValid():
            return False
        self._server = None
        self._refresh_bold_header()
        self.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self.scrollTo(index)
        self._emit()
        return True

    def clear_selection(self) -> None:
        self._server = None
        self._refresh_bold_header()
        self.selectionModel().clearSelection()
        self._emit()

    @Slot(QModelIndex, QModelIndex)
    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid() and self._server is not None:
            self._server = None
            self._refresh_bold_header()
        self._emit()

    def _refresh_bold_header(self) -> None:
        self.source_model.set_highlighted_server(self._server)

    @Slot()
    def _emit(self, *_args: object) -> None:
        selection = self.selection()
        if selection != self._emitted:
            self._emitted = selection
            self.selection_changed.emit(selection)

    # -- header ----------------------------------------------------------------------------
    @Slot(int)
    def _on_section_clicked(self, section: int) -> None:
        header = self.header()
        if section == 0:
            column, order = self._sort
            if column == 0:
                order = (
                    Qt.SortOrder.DescendingOrder
                    if order == Qt.SortOrder.AscendingOrder
                    else Qt.SortOrder.AscendingOrder
                )
            else:
                order = Qt.SortOrder.AscendingOrder
            self.sort_by(0, order)
            return
        header.setSortIndicator(*self._sort)  # a server's header selects, not sorts
        name = self.source_model.headerData(section, Qt.Orientation.Horizontal, Role.SERVER)
        self.select_server(name)

    @Slot(int)
    def _on_section_double_clicked(self, section: int) -> None:
        if section <= 0:
            return
        name = self.source_model.headerData(section, Qt.Orientation.Horizontal, Role.SERVER)
        self.select_server(name)
        self.properties_requested.emit("server")

    @Slot(QModelIndex)
    def _on_double_click(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        if index.column() == 0:
            self.setExpanded(index, not self.isExpanded(index))
            return
        self._server = None
        self.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self._emit()
        self.properties_requested.emit("cell")

    def sort_by(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort rows by tag (column 0) or by the states on a server's column."""
        self._sort = (column, order)
        self.proxy.sort(column, order)
        self.header().setSortIndicator(column, order)

    @property
    def sort_state(self) -> tuple[int, Qt.SortOrder]:
        return self._sort

    @Slot(QPoint)
    def _on_header_menu(self, pos: QPoint) -> None:
        section = self.header().logicalIndexAt(pos)
        glob = self.header().viewport().mapToGlobal(pos)
        if section <= 0:
            self.menu_requested.emit("tag_header", glob)
            return
        name = self.source_model.headerData(section, Qt.Orientation.Horizontal, Role.SERVER)
        self.select_server(name)
        self.menu_requested.emit("server", glob)

    # -- body ------------------------------------------------------------------------------
    @Slot(QPoint)
    def _on_menu(self, pos: QPoint) -> None:
        index = self.indexAt(pos)
        glob = self.viewport().mapToGlobal(pos)
        if not index.isValid():
            self.clear_selection()
            self.menu_requested.emit("empty", glob)
            return
        self._server = None
        self.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self._emit()
        self.menu_requested.emit("resource" if index.column() == 0 else "cell", glob)
