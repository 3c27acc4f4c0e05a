"""The status table: hierarchies as a tree of rows, servers as columns.

Column 0 is the resource (its tag; its kind's icon with the tree node's overall status as
a badge); each further column is one server, its cell the resource's state there. The
model is fed whole :class:`~core.model.Cluster` snapshots
(:meth:`StatusModel.set_cluster`) and turns the difference into the smallest change:
``dataChanged`` for exactly the cells that changed, row insertion/removal for hierarchies
that came or went. It never resets for a state change, so selection, expanded branches
and scrolling survive updates.

Snapshots from :class:`gui.bridge.ClusterWatcher` share unchanged hierarchies with the
previous snapshot, so finding what changed costs one identity test per hierarchy (done
by ``map``, not a Python loop), and only the hierarchies that changed are looked at.
Between two snapshots, :meth:`StatusModel.apply_progress` shows the live progress of a
resync from core events; a later snapshot never moves a resync's progress backwards.
:meth:`StatusModel.take_changes` tells the window which hierarchies it shows differently
since it last asked, so that what depends on them is redone for those only.
"""

from __future__ import annotations

import enum
import itertools
import operator
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QFont

from core.events import MirrorProgress
from core.model import (
    Cluster,
    CommPath,
    Hierarchy,
    MirrorState,
    NodeStatus,
    PendingFailover,
    ResourceKind,
    Server,
)
from core.status import Cell, cell
from gui import icons

Index = QModelIndex | QPersistentModelIndex

_DISPLAY = Qt.ItemDataRole.DisplayRole
_DECORATION = Qt.ItemDataRole.DecorationRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole
_ACCESSIBLE = Qt.ItemDataRole.AccessibleTextRole
_CELL_ROLES = [_DISPLAY, _DECORATION, _TOOLTIP, _ACCESSIBLE]
# Made once: or-ing Python enum flags costs microseconds, and Qt asks for every cell.
_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


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
    SORT = Qt.ItemDataRole.UserRole + 9  # sort key: tag (column 0), state rank (servers)


# Sort order of a server column: in service first, then standby, then trouble.
_RANK = {
    "source": 0,
    "active": 0,
    "degraded": 1,
    "target": 2,
    "standby": 2,
    "resyncing": 3,
    "outofsync": 4,
    "waitsource": 5,
    "failed": 6,
    "unknown": 7,
}
_UNDEFINED_RANK = 9


@dataclass(eq=False)
class _Node:
    hierarchy_id: int
    resource_id: int
    parent: _Node | None
    children: list[_Node] = field(default_factory=list)
    row: int = 0
    tag: str = ""
    status: NodeStatus = NodeStatus.NORMAL
    kind: str = ""  # core.model.ResourceKind's value
    cells: dict[str, Cell] = field(default_factory=dict)  # servers where defined
    tags: dict[str, str] = field(default_factory=dict)


def _shape(h: Hierarchy) -> tuple[tuple[int, int | None], ...]:
    """The tree structure of a hierarchy (resources and their parents), in tree order."""
    return tuple((rid, h.parent(rid)) for rid in h.resource_ids())


def _renumber(nodes: list[_Node], start: int = 0) -> None:
    for row in range(start, len(nodes)):
        nodes[row].row = row


class StatusModel(QAbstractItemModel):
    """Hierarchies (rows, a tree) by servers (columns); cells are resource states."""

    def __init__(self, parent: Any = None) -> None:
        # State first: Qt may ask for rows while the base class is being set up.
        self._root = _Node(0, 0, None)
        self._servers: list[Server] = []
        self._column: dict[str, int] = {}
        self._shapes: dict[int, tuple[tuple[int, int | None], ...]] = {}
        self._incoming: dict[int, Hierarchy] = {}  # as the last snapshot had it
        self._hierarchies: dict[int, Hierarchy] = {}  # as shown (with live progress)
        self._tops: dict[int, _Node] = {}
        self._progress: dict[int, dict[tuple[int, str], MirrorProgress]] = {}
        self._mirror_tags: dict[str, list[tuple[int, int]]] = {}
        self._cluster: Cluster | None = None
        self._server_tuple: tuple[Server, ...] = ()
        self._last: tuple[Hierarchy, ...] = ()  # the last snapshot's hierarchies
        # The hierarchies shown in id order, and where each id is in it (None: to redo).
        self._in_order: list[Hierarchy] | None = None
        self._position: dict[int, int] = {}
        self._changed: set[int] | None = None  # since take_changes(); None: all
        # The snapshot's comm paths and failovers waiting for a confirmation (not shown in
        # the tree; the cluster handed on keeps them).
        self._extras: tuple[tuple[CommPath, ...], tuple[PendingFailover, ...]] = ((), ())
        self._highlight: str | None = None
        self._bold: QFont | None = None
        super().__init__(parent)

    # -- feeding --------------------------------------------------------------------
    @property
    def servers(self) -> list[Server]:
        return list(self._servers)

    def hierarchy(self, hierarchy_id: int) -> Hierarchy | None:
        return self._hierarchies.get(hierarchy_id)

    def cluster(self) -> Cluster | None:
        """The cluster as shown: the last snapshot with the live resync progress.

        The same object until something shown changes; its servers tuple is the same
        object while no server changed.
        """
        if self._cluster is None and self._servers:
            if self._in_order is None:
                order = sorted(self._hierarchies)
                self._position = {hid: i for i, hid in enumerate(order)}
                self._in_order = [self._hierarchies[hid] for hid in order]
            self._cluster = Cluster(self._server_tuple, tuple(self._in_order), *self._extras)
        return self._cluster

    def take_changes(self) -> set[int] | None:
        """Ids of the hierarchies shown differently since the last call (changed, new
        resync progress, added or removed); None when everything may have changed (the
        first cluster, a server added or removed, :meth:`set_cluster` reset the model)."""
        changed, self._changed = self._changed, set()
        return changed

    def _note_changed(self, hierarchy_id: int) -> None:
        self._cluster = None
        if self._changed is not None:
            self._changed.add(hierarchy_id)

    def _show(self, h: Hierarchy) -> None:
        """``h`` (with its live progress) is shown now instead of the hierarchy of its id."""
        self._hierarchies[h.id] = h
        if self._in_order is not None:
            self._in_order[self._position[h.id]] = h
        self._note_changed(h.id)

    def set_cluster(self, cluster: Cluster) -> None:
        """Show ``cluster``, changing only what differs from what is shown."""
        extras = (cluster.comm_paths, cluster.pending_failovers)
        if extras != self._extras:
            self._extras = extras
            self._cluster = None
        same = cluster.servers is self._server_tuple
        names = list(self._column) if same else [s.name for s in cluster.servers]
        if names != list(self._column):
            # A server joined or left the cluster: every row changes width.
            self.beginResetModel()
            self._servers = list(cluster.servers)
            self._server_tuple = tuple(self._servers)
            self._last = tuple(cluster.hierarchies)
            self._in_order = None
            self._changed = None
            self._column = {name: column for column, name in enumerate(names, start=1)}
            self._root.children = []
            self._shapes.clear()
            self._incoming.clear()
            self._hierarchies.clear()
            self._tops.clear()
            self._mirror_tags.clear()
            for h in sorted(cluster.hierarchies, key=lambda h: h.id):
                self._root.children.append(self._build(h))
            _renumber(self._root.children)
            self._cluster = None
            self.endResetModel()
            return
        self._update_servers(cluster.servers)
        self._update_hierarchies(cluster.hierarchies)

    def _update_servers(self, servers: tuple[Server, ...]) -> None:
        if servers is self._server_tuple or servers == self._server_tuple:
            return
        for column, (old, new) in enumerate(zip(self._servers, servers, strict=True), start=1):
            if old != new:
                self._servers[column - 1] = new
                self._cluster = None
                self.headerDataChanged.emit(Qt.Orientation.Horizontal, column, column)
        self._server_tuple = tuple(self._servers)

    def _update_hierarchies(self, hierarchies: tuple[Hierarchy, ...]) -> None:
        last, self._last = self._last, tuple(hierarchies)
        if len(hierarchies) == len(last):
            # Where the snapshot holds another object than the last one: in C, by map.
            moved = list(itertools.compress(hierarchies, map(operator.is_not, hierarchies, last)))
            if all(self._same_row(h) for h in moved):
                for h in moved:
                    self._update_hierarchy(h)
                return
        self._update_rows(hierarchies)

    def _same_row(self, h: Hierarchy) -> bool:
        """``h`` replaces a hierarchy shown with the same id and the same tree shape."""
        return h.id in self._incoming and _shape(h) == self._shapes[h.id]

    def _update_hierarchy(self, h: Hierarchy) -> None:
        """``h`` replaces the hierarchy of its id, with the same shape."""
        if self._incoming[h.id] == h:  # the same values: nothing shown changes
            self._incoming[h.id] = h
            return
        self._incoming[h.id] = h
        shown = self._with_progress(h)
        self._show(shown)
        self._index_mirrors(shown)
        self._refresh(self._tops[h.id], shown)

    def _update_rows(self, hierarchies: tuple[Hierarchy, ...]) -> None:
        """Hierarchies added, removed or reshaped (and any other change)."""
        wanted = {h.id: h for h in hierarchies}
        # Removed, or reshaped (a resource added or removed): take the row out.
        children = self._root.children
        for row in range(len(children) - 1, -1, -1):
            node = children[row]
            h = wanted.get(node.hierarchy_id)
            if h is None or (
                h is not self._incoming[node.hierarchy_id]
                and _shape(h) != self._shapes[node.hierarchy_id]
            ):
                self.beginRemoveRows(QModelIndex(), row, row)
                del children[row]
                self._forget(node.hierarchy_id)
                _renumber(children, row)
                self._note_changed(node.hierarchy_id)
                self._in_order = None
                self.endRemoveRows()
        for h in hierarchies:
            old = self._incoming.get(h.id)
            if old is h:
                continue
            if self._tops.get(h.id) is None:
                row = sum(1 for n in children if n.hierarchy_id < h.id)
                self.beginInsertRows(QModelIndex(), row, row)
                children.insert(row, self._build(h))
                _renumber(children, row)
                self._note_changed(h.id)
                self._in_order = None
                self.endInsertRows()
            else:
                self._update_hierarchy(h)

    def _forget(self, hierarchy_id: int) -> None:
        del self._shapes[hierarchy_id]
        del self._incoming[hierarchy_id]
        del self._hierarchies[hierarchy_id]
        del self._tops[hierarchy_id]
        self._progress.pop(hierarchy_id, None)

    def _build(self, h: Hierarchy) -> _Node:
        self._shapes[h.id] = _shape(h)
        self._incoming[h.id] = h
        h = self._with_progress(h)
        self._hierarchies[h.id] = h
        self._index_mirrors(h)
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
                node.row = len(parent.children)
                parent.children.append(node)
        assert top is not None
        self._tops[h.id] = top
        return top

    def _index_mirrors(self, h: Hierarchy) -> None:
        for m in h.mirrors:
            inst = h.instance(m.resource_id, m.source)
            if inst is not None:
                where = self._mirror_tags.setdefault(inst.tag, [])
                if (h.id, m.resource_id) not in where:
                    where.append((h.id, m.resource_id))

    def _fill(self, node: _Node, h: Hierarchy) -> None:
        rid = node.resource_id
        node.tag = h.tag_of(rid)
        node.status = h.status(rid)
        node.kind = h.kind_of(rid).value
        servers = [r.server for r in h.resources if r.resource_id == rid]
        node.cells = {}
        node.tags = {}
        for name in servers:
            c = cell(h, rid, name)
            inst = h.instance(rid, name)
            if c is not None and inst is not None:
                node.cells[name] = c
                node.tags[name] = inst.tag

    def _refresh(self, node: _Node, h: Hierarchy) -> None:
        """Emit dataChanged for exactly the cells of ``node`` (and below) that changed."""
        tag, status, cells, tags = node.tag, node.status, node.cells, node.tags
        self._fill(node, h)
        if (node.tag, node.status) != (tag, status):
            first = self.createIndex(node.row, 0, node)
            self.dataChanged.emit(first, first, _CELL_ROLES)
        for name in cells.keys() | node.cells.keys():
            if node.cells.get(name) != cells.get(name) or node.tags.get(name) != tags.get(name):
                column = self._column.get(name)
                if column is not None:
                    index = self.createIndex(node.row, column, node)
                    self.dataChanged.emit(index, index, _CELL_ROLES)
        for child in node.children:
            self._refresh(child, h)

    # -- live resync progress (core events) ----------------------------------------------
    def apply_progress(self, event: MirrorProgress) -> bool:
        """Show a resync's progress now; True when a cell changed."""
        for hid, rid in self._mirror_tags.get(event.mirror, ()):
            h = self._hierarchies.get(hid)
            mirror = h.mirror(rid) if h is not None else None
            if h is None or mirror is None:
                continue
            source = h.instance(rid, mirror.source)
            if source is None or source.tag != event.mirror:
                continue
            target = mirror.target(event.target)
            if target is None:
                continue
            self._progress.setdefault(hid, {})[(rid, event.target)] = event
            shown = self._with_progress(self._incoming[hid])
            if shown == h:
                return False
            self._show(shown)
            self._refresh(self._tops[hid], shown)
            return True
        return False

    def _with_progress(self, h: Hierarchy) -> Hierarchy:
        """``h`` with the newer progress of resyncs seen in events (stale ones dropped)."""
        overlay = self._progress.get(h.id)
        if not overlay:
            return h
        mirrors = list(h.mirrors)
        for (rid, server), event in list(overlay.items()):
            i = next((i for i, m in enumerate(mirrors) if m.resource_id == rid), None)
            target = mirrors[i].target(server) if i is not None else None
            if (
                i is None
                or target is None
                or target.state is not MirrorState.RESYNCING
                or (target.bytes_total and event.bytes_total != target.bytes_total)
                or event.bytes_done <= target.bytes_done
            ):
                # The store caught up, or the resync ended or started over: its word wins.
                del overlay[(rid, server)]
                continue
            live = replace(
                target,
                bytes_done=event.bytes_done,
                bytes_total=event.bytes_total,
                rate=event.rate,
                eta=event.eta,
            )
            m = mirrors[i]
            mirrors[i] = replace(
                m, targets=tuple(live if t.server == server else t for t in m.targets)
            )
        if not overlay:
            del self._progress[h.id]
        return replace(h, mirrors=tuple(mirrors))

    # -- QAbstractItemModel -----------------------------------------------------------
    def _node(self, index: Index) -> _Node:
        if index.isValid():
            node = index.internalPointer()
            assert isinstance(node, _Node)
            return node
        return self._root

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        # hasIndex() would call back rowCount() and columnCount() from C++: checked here.
        if parent.column() > 0 or not 0 <= column <= len(self._servers):
            return QModelIndex()
        children = self._node(parent).children
        if not 0 <= row < len(children):
            return QModelIndex()
        return self.createIndex(row, column, children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        node = self._node(index).parent
        if node is None or node is self._root:
            return QModelIndex()
        return self.createIndex(node.row, 0, node)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if parent.column() > 0:
            return 0
        return len(self._node(parent).children)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 1 + len(self._servers)

    def hasChildren(self, parent: Index = QModelIndex()) -> bool:
        if parent.column() > 0:
            return False
        return bool(self._node(parent).children)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return _FLAGS

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if section == 0:
            return "Resource Hierarchy" if role in (_DISPLAY, _ACCESSIBLE) else None
        if not 1 <= section <= len(self._servers):
            return None
        server = self._servers[section - 1]
        if role == _DISPLAY:
            return f"{server.name} — {server.state.value}"
        if role == _ACCESSIBLE:
            return f"Server {server.name}, {server.state.value}"
        if role == _DECORATION:
            return icons.server_icon(server.state)
        if role == _TOOLTIP:
            return (
                f"Server {server.name}: {server.state.value}\n"
                "Click to show its properties; right-click for its actions."
            )
        if role == Role.SERVER:
            return server.name
        if role == Qt.ItemDataRole.FontRole and server.name == self._highlight:
            if self._bold is None:
                self._bold = QFont()
                self._bold.setBold(True)
            return self._bold
        return None

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid():
            return None
        node: _Node = index.internalPointer()
        column = index.column()
        if column == 0:
            return self._resource_data(node, role)
        server = self._servers[column - 1].name
        c = node.cells.get(server)
        if c is None:
            if role == _ACCESSIBLE:
                return f"{node.tag} is not defined on {server}"
            if role == Role.SORT:
                return _UNDEFINED_RANK * 1000
        elif role == _DISPLAY:
            return c.text
        elif role == _DECORATION:
            return icons.state_icon(c.icon)
        elif role == _TOOLTIP:
            tip = f"{node.tags.get(server, node.tag)} on {server}: {c.state.value} ({c.text})"
            return f"{tip}\n{c.reason}" if c.reason else tip
        elif role == _ACCESSIBLE:
            return f"{node.tags.get(server, node.tag)} on {server}: {c.text}"
        elif role == Role.STATE:
            return c.state.name
        elif role == Role.MIRROR_STATE:
            return c.mirror_state.name if c.mirror_state is not None else None
        elif role == Role.PERCENT:
            return c.percent
        elif role == Role.SORT:
            return _RANK.get(c.icon, 8) * 1000 + (c.percent or 0)
        if role == Role.SERVER:
            return server
        if role == Role.TAG:
            return node.tags.get(server)
        return self._id_data(node, role)

    def _id_data(self, node: _Node, role: int) -> Any:
        if role == Role.HIERARCHY_ID:
            return node.hierarchy_id
        if role == Role.RESOURCE_ID:
            return node.resource_id
        if role == Role.KIND:
            return self._hierarchies[node.hierarchy_id].kind_of(node.resource_id).value
        return None

    def _resource_data(self, node: _Node, role: int) -> Any:
        if role == _DISPLAY:
            return node.tag
        if role == _DECORATION:
            return icons.resource_icon(node.kind, node.status)
        if role == Role.NODE_STATUS:
            return node.status.name
        if role in (Role.TAG, Role.SORT):
            return node.tag.casefold() if role == Role.SORT else node.tag
        if role in (_TOOLTIP, _ACCESSIBLE):
            h = self._hierarchies[node.hierarchy_id]
            kind = h.kind_of(node.resource_id)
            where = h.in_service_server
            state = f"in service on {where}" if where else "not in service"
            text = f"{node.tag}: {kind.label}, status {node.status.label}, {state}"
            if kind is ResourceKind.DATAKEEPER and role == _TOOLTIP:
                text += "\nRight-click for the actions on this resource."
            return text
        return self._id_data(node, role)

    # -- lookups for views and tests -------------------------------------------------
    def index_of(self, tag: str, server: str | None = None) -> QModelIndex:
        """Index of the resource shown as ``tag`` (column 0, or the column of ``server``)."""
        column = 0 if server is None else self._column[server]
        stack = [*self._root.children]
        while stack:
            node = stack.pop()
            if node.tag == tag:
                return self.createIndex(node.row, column, node)
            stack.extend(node.children)
        return QModelIndex()

    def index_for(self, hierarchy_id: int, resource_id: int, server: str | None = None) -> Any:
        """Index of a resource by ids (column 0, or the column of ``server``)."""
        top = self._tops.get(hierarchy_id)
        column = 0 if server is None else self._column.get(server)
        if top is None or column is None:
            return QModelIndex()
        stack = [top]
        while stack:
            node = stack.pop()
            if node.resource_id == resource_id:
                return self.createIndex(node.row, column, node)
            stack.extend(node.children)
        return QModelIndex()

    def ids_at(self, index: Index) -> tuple[int, int, str | None]:
        """Hierarchy id, resource id and server (None in column 0) of a valid ``index``:
        what its HIERARCHY_ID, RESOURCE_ID and SERVER roles say, without three data()
        calls through Qt."""
        node = self._node(index)
        column = index.column()
        server = self._servers[column - 1].name if column > 0 else None
        return node.hierarchy_id, node.resource_id, server

    def column_of(self, server: str) -> int | None:
        return self._column.get(server)

    def set_highlighted_server(self, name: str | None) -> None:
        """Show the header of server ``name`` in bold (the selected server)."""
        if name == self._highlight:
            return
        old, self._highlight = self._highlight, name
        for server in (old, name):
            column = self._column.get(server) if server is not None else None
            if column is not None:
                self.headerDataChanged.emit(Qt.Orientation.Horizontal, column, column)
