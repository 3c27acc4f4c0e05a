"""The status table: hierarchies as a tree of rows, servers as columns.

Column 0 is the resource (its tag, and the tree node's overall status as its icon); each
further column is one server, its cell the resource's state there. The model is fed
whole :class:`~core.model.Cluster` snapshots (:meth:`StatusModel.set_cluster`) and turns
the difference into the smallest change: ``dataChanged`` for exactly the cells that
changed, row insertion/removal for hierarchies that came or went. It never resets for a
state change, so selection, expanded branches and scrolling survive updates.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt

from core.model import Cluster, Hierarchy, NodeStatus, Server
from core.status import Cell, cell
from gui import icons

Index = QModelIndex | QPersistentModelIndex

_DISPLAY = Qt.ItemDataRole.DisplayRole
_DECORATION = Qt.ItemDataRole.DecorationRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole
_ACCESSIBLE = Qt.ItemDataRole.AccessibleTextRole


class Role(enum.IntEnum):
    """Custom roles: the raw values behind what a cell shows."""

    HIERARCHY_ID = Qt.ItemDataRole.UserRole
    RESOURCE_ID = Qt.ItemDataRole.UserRole + 1
    SERVER = Qt.ItemDataRole.UserRole + 2  # server of the column (None in column 0)
    STATE = Qt.ItemDataRole.UserRole + 3  # ResourceState name on that server
    MIRROR_STATE = Qt.ItemDataRole.UserRole + 4  # MirrorState name, for DataKeeper targets
    NODE_STATUS = Qt.ItemDataRole.UserRole + 5  # NodeStatus name (column 0)
    KIND = Qt.ItemDataRole.UserRole + 6  # ResourceKind value
    PERCENT = Qt.ItemDataRole.UserRole + 7  # resync percentage while resyncing
    TAG = Qt.ItemDataRole.UserRole + 8  # the resource's tag on that server


@dataclass(eq=False)
class _Node:
    hierarchy_id: int
    resource_id: int
    parent: _Node | None
    children: list[_Node] = field(default_factory=list)
    tag: str = ""
    status: NodeStatus = NodeStatus.NORMAL
    cells: dict[str, Cell | None] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def row(self) -> int:
        siblings = self.parent.children if self.parent is not None else []
        return siblings.index(self)


def _shape(h: Hierarchy) -> tuple[tuple[int, int | None], ...]:
    """The tree structure of a hierarchy (resources and their parents), in tree order."""
    return tuple((rid, h.parent(rid)) for rid in h.resource_ids())


class StatusModel(QAbstractItemModel):
    """Hierarchies (rows, a tree) by servers (columns); cells are resource states."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._root = _Node(0, 0, None)
        self._servers: list[Server] = []
        self._shapes: dict[int, tuple[tuple[int, int | None], ...]] = {}
        self._hierarchies: dict[int, Hierarchy] = {}

    # -- feeding --------------------------------------------------------------------
    @property
    def servers(self) -> list[Server]:
        return list(self._servers)

    def hierarchy(self, hierarchy_id: int) -> Hierarchy | None:
        return self._hierarchies.get(hierarchy_id)

    def set_cluster(self, cluster: Cluster) -> None:
        """Show ``cluster``, changing only what differs from what is shown."""
        names = [s.name for s in cluster.servers]
        if names != [s.name for s in self._servers]:
            # A server joined or left the cluster: every row changes width.
            self.beginResetModel()
            self._servers = list(cluster.servers)
            self._root.children = []
            self._shapes.clear()
            self._hierarchies.clear()
            for h in cluster.hierarchies:
                self._root.children.append(self._build(h))
            self.endResetModel()
            return
        self._update_servers(cluster.servers)
        self._update_hierarchies(cluster.hierarchies)

    def _update_servers(self, servers: tuple[Server, ...]) -> None:
        for column, (old, new) in enumerate(zip(self._servers, servers, strict=True), start=1):
            if old != new:
                self._servers[column - 1] = new
                self.headerDataChanged.emit(Qt.Orientation.Horizontal, column, column)

    def _update_hierarchies(self, hierarchies: tuple[Hierarchy, ...]) -> None:
        wanted = {h.id: h for h in hierarchies}
        # Removed, or reshaped (a resource added or removed): take the row out.
        for row in range(len(self._root.children) - 1, -1, -1):
            node = self._root.children[row]
            h = wanted.get(node.hierarchy_id)
            if h is None or _shape(h) != self._shapes[node.hierarchy_id]:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._root.children[row]
                del self._shapes[node.hierarchy_id]
                del self._hierarchies[node.hierarchy_id]
                self.endRemoveRows()
        shown = {n.hierarchy_id: n for n in self._root.children}
        for h in hierarchies:
            node = shown.get(h.id)
            if node is None:
                row = sum(1 for n in self._root.children if n.hierarchy_id < h.id)
                self.beginInsertRows(QModelIndex(), row, row)
                self._root.children.insert(row, self._build(h))
                self.endInsertRows()
            else:
                self._hierarchies[h.id] = h
                self._refresh(node, h)

    def _build(self, h: Hierarchy) -> _Node:
        self._shapes[h.id] = _shape(h)
        self._hierarchies[h.id] = h
        nodes: dict[int, _Node] = {}
        top: _Node | None = None
        for rid in h.resource_ids():
            parent_id = h.parent(rid)
            parent = self._root if parent_id is None else nodes[parent_id]
            node = _Node(h.id, rid, parent)
            self._fill(node, h)
            nodes[rid] = node
            if parent_id is None:
                top = node
            else:
                parent.children.append(node)
        assert top is not None
        return top

    def _fill(self, node: _Node, h: Hierarchy) -> None:
        node.tag = h.tag_of(node.resource_id)
        node.status = h.status(node.resource_id)
        node.cells = {s.name: cell(h, node.resource_id, s.name) for s in self._servers}
        node.tags = {
            s.name: inst.tag
            for s in self._servers
            if (inst := h.instance(node.resource_id, s.name)) is not None
        }

    def _refresh(self, node: _Node, h: Hierarchy) -> None:
        """Emit dataChanged for exactly the cells of ``node`` (and below) that changed."""
        before = (node.tag, node.status, dict(node.cells), dict(node.tags))
        self._fill(node, h)
        if (node.tag, node.status) != before[:2]:
            first = self.createIndex(node.row(), 0, node)
            self.dataChanged.emit(first, first)
        for column, server in enumerate(self._servers, start=1):
            name = server.name
            if node.cells.get(name) != before[2].get(name) or node.tags.get(name) != before[3].get(
                name
            ):
                index = self.createIndex(node.row(), column, node)
                self.dataChanged.emit(index, index)
        for child in node.children:
            self._refresh(child, h)

    # -- QAbstractItemModel -----------------------------------------------------------
    def _node(self, index: Index) -> _Node:
        if index.isValid():
            node = index.internalPointer()
            assert isinstance(node, _Node)
            return node
        return self._root

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        return self.createIndex(row, column, self._node(parent).children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        node = self._node(index).parent
        if node is None or node is self._root:
            return QModelIndex()
        return self.createIndex(node.row(), 0, node)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if parent.column() > 0:
            return 0
        return len(self._node(parent).children)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 1 + len(self._servers)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if section == 0:
            return "Resource Hierarchy" if role in (_DISPLAY, _ACCESSIBLE) else None
        if not 1 <= section <= len(self._servers):
            return None
        server = self._servers[section - 1]
        if role == _DISPLAY:
            return f"{server.name}  ({server.state.value})"
        if role == _ACCESSIBLE:
            return f"Server {server.name}, {server.state.value}"
        if role == _DECORATION:
            return icons.server_icon(server.state)
        if role == _TOOLTIP:
            return f"Server {server.name}: {server.state.value}"
        if role == Role.SERVER:
            return server.name
        return None

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid():
            return None
        node = self._node(index)
        column = index.column()
        if role == Role.HIERARCHY_ID:
            return node.hierarchy_id
        if role == Role.RESOURCE_ID:
            return node.resource_id
        if role == Role.KIND:
            h = self._hierarchies[node.hierarchy_id]
            return h.kind_of(node.resource_id).value
        if column == 0:
            return self._resource_data(node, role)
        server = self._servers[column - 1].name
        if role == Role.SERVER:
            return server
        c = node.cells.get(server)
        if role == Role.TAG:
            return node.tags.get(server)
        if c is None:
            if role == _ACCESSIBLE:
                return f"{node.tag} is not defined on {server}"
            return None
        if role == _DISPLAY:
            return c.text
        if role == _DECORATION:
            return icons.state_icon(c.icon)
        if role == _TOOLTIP:
            return f"{node.tags.get(server, node.tag)} on {server}: {c.state.value} ({c.text})"
        if role == _ACCESSIBLE:
            return f"{node.tags.get(server, node.tag)} on {server}: {c.text}"
        if role == Role.STATE:
            return c.state.name
        if role == Role.MIRROR_STATE:
            return c.mirror_state.name if c.mirror_state is not None else None
        if role == Role.PERCENT:
            return c.percent
        return None

    def _resource_data(self, node: _Node, role: int) -> Any:
        if role == _DISPLAY:
            return node.tag
        if role == _DECORATION:
            return icons.node_icon(node.status)
        if role == Role.NODE_STATUS:
            return node.status.name
        if role == Role.TAG:
            return node.tag
        if role in (_TOOLTIP, _ACCESSIBLE):
            h = self._hierarchies[node.hierarchy_id]
            kind = h.kind_of(node.resource_id).label
            return f"{node.tag}: {kind}, status {node.status.label}"
        return None

    # -- lookups for views and tests -------------------------------------------------
    def index_of(self, tag: str, server: str | None = None) -> QModelIndex:
        """Index of the resource shown as ``tag`` (column 0, or the column of ``server``)."""
        column = 0
        if server is not None:
            names = [s.name for s in self._servers]
            column = 1 + names.index(server)
        stack = [*self._root.children]
        while stack:
            node = stack.pop()
            if node.tag == tag:
                return self.createIndex(node.row(), column, node)
            stack.extend(node.children)
        return QModelIndex()
