"""Every action of the console in one place: text, mnemonic, shortcut, icon, handler.

The menus, the toolbar and the context menus all show the same :class:`QAction` objects,
so an action is enabled, disabled or hidden everywhere at once. Whether an action
applies, and the sentence saying why not, come from :mod:`core.availability`.

An action whose dialog or operation is built elsewhere stays hidden until a handler is
registered, so a release never shows a dead menu item::

    window.actions.register("extend_hierarchy", lambda pre: ExtendWizard(window, pre).open())

The handler gets a :class:`core.availability.Preselection`: the template server, tag,
hierarchy and target server of what the user clicked (a resource, a cell, a server).
"""

from __future__ import annotations

import inspect
import logging
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QToolBar, QToolButton, QWidget

from core import availability as av
from core.availability import Availability, Connection, Preselection, Selection
from core.errors import LkError
from core.model import Cluster, Hierarchy
from gui import icons

log = logging.getLogger(__name__)

Handler = Callable[[Preselection], object]


def _held(handler: Handler) -> Callable[[], Handler | None]:
    """A method of a Qt object (the window) weakly: Qt's tree keeps that object alive;
    anything else (a function, an object of handlers) strongly."""
    if inspect.ismethod(handler) and isinstance(handler.__self__, QObject):
        return weakref.WeakMethod(handler)
    return lambda: handler


Shortcut = str | QKeySequence.StandardKey | None


@dataclass(frozen=True)
class ActionSpec:
    name: str  # objectName; for rule actions also the core.availability name
    text: str  # with its mnemonic (&)
    tip: str  # what it does, when no rule says more
    icon: str | None = None  # resources/icons/<icon>.svg
    shortcut: Shortcut = None
    needs_handler: bool = False  # hidden until a handler is registered
    menu_role: QAction.MenuRole = QAction.MenuRole.NoRole


ELLIPSIS = "…"

SPECS: tuple[ActionSpec, ...] = (
    # File
    ActionSpec(
        av.CONNECT,
        "&Connect",
        "Connect to a cluster.",
        "action-connect",
        needs_handler=True,
    ),
    ActionSpec(
        av.DISCONNECT,
        "&Disconnect",
        "Disconnect from the cluster.",
        "action-disconnect",
        needs_handler=True,
    ),
    ActionSpec(
        "exit",
        "E&xit",
        "Close LK Console.",
        shortcut="Ctrl+Q",
        menu_role=QAction.MenuRole.QuitRole,
    ),
    # Edit › Server
    ActionSpec(
        av.SERVER_PROPERTIES,
        "&Properties",
        "Show the properties of the selected server.",
        "action-properties",
        shortcut="Ctrl+Alt+Return",
    ),
    ActionSpec(
        av.STOP_SERVER,
        f"S&top Server{ELLIPSIS}",
        "Stop the selected lab server, as if it crashed.",
        "action-server-stop",
        needs_handler=True,
    ),
    ActionSpec(
        av.START_SERVER,
        "St&art Server",
        "Start the selected lab server.",
        "action-server-start",
        needs_handler=True,
    ),
    # Edit › Resource
    ActionSpec(
        av.CREATE_HIERARCHY,
        f"&Create Resource Hierarchy{ELLIPSIS}",
        "Create a new resource hierarchy.",
        "action-create",
        shortcut="Ctrl+N",
        needs_handler=True,
    ),
    ActionSpec(
        av.EXTEND_HIERARCHY,
        f"&Extend Resource Hierarchy{ELLIPSIS}",
        "Extend the selected hierarchy to another server.",
        "action-extend",
        shortcut="Ctrl+E",
        needs_handler=True,
    ),
    ActionSpec(
        av.UNEXTEND_HIERARCHY,
        f"&Unextend Resource Hierarchy{ELLIPSIS}",
        "Remove the selected hierarchy from one server.",
        "action-unextend",
        needs_handler=True,
    ),
    ActionSpec(
        av.DELETE_HIERARCHY,
        f"&Delete Resource Hierarchy{ELLIPSIS}",
        "Remove the selected hierarchy from every server.",
        "action-delete",
        needs_handler=True,
    ),
    ActionSpec(
        av.IN_SERVICE,
        f"&In Service{ELLIPSIS}",
        "Bring the selected resource in service.",
        "action-inservice",
        shortcut="Ctrl+I",
        needs_handler=True,
    ),
    ActionSpec(
        av.OUT_OF_SERVICE,
        f"&Out of Service{ELLIPSIS}",
        "Take the selected resource out of service.",
        "action-outofservice",
        shortcut="Ctrl+O",
        needs_handler=True,
    ),
    ActionSpec(
        av.RESOURCE_PROPERTIES,
        "&Properties",
        "Show the properties of the selected resource.",
        "action-properties",
        shortcut="Alt+Return",
    ),
    # View
    ActionSpec(
        av.PAUSE_MIRROR, "&Pause Mirror", "Pause the mirror.", "action-pause", needs_handler=True
    ),
    ActionSpec(
        av.RESUME_MIRROR,
        "&Resume Mirror",
        "Resume the mirror.",
        "action-resume",
        needs_handler=True,
    ),
    ActionSpec(
        av.FULL_RESYNC,
        f"&Full Resync{ELLIPSIS}",
        "Copy every chunk again.",
        "action-refresh",
        needs_handler=True,
    ),
    ActionSpec(
        av.FORCE_ONLINE,
        f"F&orce Online{ELLIPSIS}",
        "Bring a possibly stale copy online.",
        "state-waitsource",
        needs_handler=True,
    ),
    ActionSpec(
        av.VERIFY_MIRROR,
        f"&Verify Mirror{ELLIPSIS}",
        "Compare the target with the source, chunk by chunk.",
        "action-verify",
        needs_handler=True,
    ),
    ActionSpec(
        av.SPEED_LIMIT, f"Set &Speed Limit{ELLIPSIS}", "Limit the resync speed.", needs_handler=True
    ),
    ActionSpec(
        "expand_all",
        "&Expand All",
        "Expand every hierarchy to its dependencies.",
        shortcut="Ctrl++",
    ),
    ActionSpec(
        "collapse_all", "&Collapse All", "Show only the hierarchy roots.", shortcut="Ctrl+-"
    ),
    ActionSpec(
        "refresh",
        "&Refresh",
        "Read the cluster state again now.",
        "action-refresh",
        shortcut="F5",
    ),
    ActionSpec("find_tag", "&Filter by Tag", "Filter the status table by tag.", shortcut="Ctrl+F"),
    ActionSpec(
        "show_history",
        f"&History{ELLIPSIS}",
        "Every operation run on this cluster: who, when, the steps and the result.",
        "action-history",
        shortcut="Ctrl+H",
    ),
    # Edit › Server: comm paths and failover confirmation
    ActionSpec(
        av.CREATE_COMM_PATH,
        f"Create &Comm Path{ELLIPSIS}",
        "Create a communication path between two servers.",
        needs_handler=True,
    ),
    ActionSpec(
        av.DELETE_COMM_PATH,
        f"&Delete Comm Path{ELLIPSIS}",
        "Delete a communication path between two servers.",
        needs_handler=True,
    ),
    ActionSpec(
        av.CONFIRM_FAILOVER,
        f"Con&firm Failover{ELLIPSIS}",
        "Let a failover that waits for your confirmation proceed, or block it.",
        needs_handler=True,
    ),
    # Issue 16: Resize Mirror (the mirror menus) and View › Log
    ActionSpec(
        av.RESIZE_MIRROR,
        f"Resi&ze Mirror{ELLIPSIS}",
        "Grow the mirror's volume on every server; the new space is resynced.",
        needs_handler=True,
    ),
    ActionSpec(
        av.SHOW_LOG,
        f"&Log{ELLIPSIS}",
        "A server's log: operations, resource actions, state changes, failovers, live.",
        shortcut="Ctrl+L",
        needs_handler=True,
    ),
    # Help
    ActionSpec(
        "documentation",
        "LK Console &Documentation",
        "Open the user guide (works offline).",
        shortcut="F1",
    ),
    ActionSpec(
        "about",
        "&About LK Console",
        "Version, data directory and licence.",
        menu_role=QAction.MenuRole.AboutRole,
    ),
    # Edit › Resource: dependencies
    ActionSpec(
        av.CREATE_DEPENDENCY,
        f"Create Depe&ndency{ELLIPSIS}",
        "Make one resource depend on another resource of the same server.",
        "action-dependency-create",
        needs_handler=True,
    ),
    ActionSpec(
        av.DELETE_DEPENDENCY,
        f"Dele&te Dependency{ELLIPSIS}",
        "Make a resource no longer depend on one of its children.",
        "action-dependency-delete",
        needs_handler=True,
    ),
)

# Menus: (objectName, title, entries); an entry is an action name, None (a separator) or
# a submenu.
Menu = tuple[str, str, tuple["str | Menu | None", ...]]

MIRROR_SUBMENU = (
    "menu_mirror",
    "&Mirror",
    (
        av.PAUSE_MIRROR,
        av.RESUME_MIRROR,
        av.FULL_RESYNC,
        av.VERIFY_MIRROR,
        None,
        av.FORCE_ONLINE,
        av.SPEED_LIMIT,
        av.RESIZE_MIRROR,
    ),
)

# Edit › Server, and a server header's context menu above Create Resource Hierarchy.
SERVER_ITEMS: tuple[str | None, ...] = (
    av.SERVER_PROPERTIES,
    None,
    av.CREATE_COMM_PATH,
    av.DELETE_COMM_PATH,
    None,
    av.STOP_SERVER,
    av.START_SERVER,
    av.CONFIRM_FAILOVER,
)

MENUS: tuple[Menu, ...] = (
    ("menu_file", "&File", (av.CONNECT, av.DISCONNECT, None, "exit")),
    (
        "menu_edit",
        "&Edit",
        (
            (
                "menu_server",
                "&Server",
                SERVER_ITEMS,
            ),
            (
                "menu_resource",
                "&Resource",
                (
                    av.CREATE_HIERARCHY,
                    av.EXTEND_HIERARCHY,
                    av.UNEXTEND_HIERARCHY,
                    av.DELETE_HIERARCHY,
                    None,
                    av.CREATE_DEPENDENCY,
                    av.DELETE_DEPENDENCY,
                    None,
                    av.IN_SERVICE,
                    av.OUT_OF_SERVICE,
                    None,
                    MIRROR_SUBMENU,
                    None,
                    av.RESOURCE_PROPERTIES,
                ),
            ),
        ),
    ),
    (
        "menu_view",
        "&View",
        (
            "toggle_output_panel",
            "toggle_properties_panel",
            "toggle_toolbar",
            None,
            "expand_all",
            "collapse_all",
            None,
            "find_tag",
            "refresh",
            None,
            "show_history",
            av.SHOW_LOG,
        ),
    ),
    ("menu_help", "&Help", ("documentation", None, "about")),
)

TOOLBAR: tuple[str | None, ...] = (
    av.CONNECT,
    av.DISCONNECT,
    None,
    av.CREATE_HIERARCHY,
    av.EXTEND_HIERARCHY,
    av.UNEXTEND_HIERARCHY,
    av.DELETE_HIERARCHY,
    None,
    av.IN_SERVICE,
    av.OUT_OF_SERVICE,
    None,
    av.RESOURCE_PROPERTIES,
    "refresh",
)

# Context menus of the status table.
CELL_MENU: tuple[str | Menu | None, ...] = (
    av.IN_SERVICE,
    av.OUT_OF_SERVICE,
    None,
    av.EXTEND_HIERARCHY,
    av.UNEXTEND_HIERARCHY,
    av.DELETE_HIERARCHY,
    None,
    av.CREATE_DEPENDENCY,
    av.DELETE_DEPENDENCY,
    None,
    ("cell_mirror_menu", "&Mirror", MIRROR_SUBMENU[2]),
    None,
    av.RESOURCE_PROPERTIES,
    ("cell_server_menu", "&Server", (av.SERVER_PROPERTIES, None, av.STOP_SERVER, av.START_SERVER)),
)
RESOURCE_MENU: tuple[str | Menu | None, ...] = (
    av.IN_SERVICE,
    av.OUT_OF_SERVICE,
    None,
    av.EXTEND_HIERARCHY,
    av.UNEXTEND_HIERARCHY,
    av.DELETE_HIERARCHY,
    None,
    av.CREATE_DEPENDENCY,
    av.DELETE_DEPENDENCY,
    None,
    ("resource_mirror_menu", "&Mirror", MIRROR_SUBMENU[2]),
    None,
    av.RESOURCE_PROPERTIES,
)
SERVER_MENU: tuple[str | None, ...] = (*SERVER_ITEMS, None, av.CREATE_HIERARCHY)
EMPTY_MENU: tuple[str | None, ...] = (av.CREATE_HIERARCHY, None, "expand_all", "collapse_all")


def plain_text(text: str) -> str:
    """A menu text as a user reads it: no mnemonic ampersand, no trailing ellipsis."""
    text = re.sub(r"&(.)", r"\1", text)
    return text.removesuffix(ELLIPSIS).removesuffix("...").strip()


class _StateOnly(QObject):
    """Hands toolbar buttons the enabled state and the tips of their actions directly,
    while :meth:`ActionRegistry.update_context` changes only those.

    Qt's own handling of a changed action sets the button's text and icon again, and
    the icon makes the button, then the toolbar, then the whole window lay themselves
    out again and repaint: about 1 ms for each update that changes a toolbar action
    (with a mirror target's cell selected, In Service says the resync's percentage,
    new at every progress event). Neither the enabled state nor a tip changes a
    layout: while :attr:`active`, the toolbar does not hear of the change and each
    button is given just those, once, by :meth:`apply`.
    """

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.active = False
        self._watched: set[str] = set()  # the actions whose toolbar buttons are filtered
        self._held: list[QToolButton] = []

    def watch(self, action: QAction) -> None:
        """Filter the toolbars and toolbar buttons that show ``action`` (once it has
        one: the window builds its toolbar after its actions)."""
        if action.objectName() in self._watched:
            return
        for shown in action.associatedObjects():
            if isinstance(shown, QToolBar | QToolButton):
                shown.installEventFilter(self)
                if isinstance(shown, QToolButton):
                    self._watched.add(action.objectName())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self.active or event.type() != QEvent.Type.ActionChanged:
            return False
        if isinstance(watched, QToolButton):
            self._held.append(watched)  # a button reacts only to its default action's
            return True
        return isinstance(watched, QToolBar)  # it would only lay itself out again

    def apply(self) -> None:
        """Give each button held back its action's enabled state and tips."""
        held, self._held = self._held, []
        for button in dict.fromkeys(held):
            action = button.defaultAction()
            if action is not None:
                button.setEnabled(action.isEnabled())
                button.setToolTip(action.toolTip())
                button.setStatusTip(action.statusTip())


class ActionRegistry(QObject):
    """The window's actions by name; enabled state and tooltips follow the selection.

    Calling the registry (``window.actions()``) still returns the window's QActions, as
    ``QWidget.actions()`` does.
    """

    triggered = Signal(str, object)  # action name, Preselection (after the handler ran)
    failed = Signal(str)  # a handler raised an LkError: its message

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.setObjectName("action_registry")
        self._actions: dict[str, QAction] = {}
        self._specs: dict[str, ActionSpec] = {}
        # Bound methods are held weakly: the window owns the registry, and a strong
        # reference back to it (window -> registry -> window.method) is a cycle that only
        # the garbage collector ends, at a moment when Qt may still paint the window.
        self._handlers: dict[str, Callable[[], Handler | None]] = {}
        self._cluster: Cluster | None = None
        self._selection = Selection()
        self._connection = Connection(connected=False)
        self._availability: dict[str, Availability] = {}
        self._key: object = None  # what the availability was computed from
        self._state_only = _StateOnly(self)
        for spec in SPECS:
            self._create(spec)
        self.update_context(None, Selection(), Connection(connected=False))

    def __call__(self) -> list[QAction]:
        return QWidget.actions(self._owner())

    def _owner(self) -> QWidget:
        # Not kept in an attribute: the registry must not keep its window alive.
        window = self.parent()
        assert isinstance(window, QWidget)
        return window

    # -- building ------------------------------------------------------------------------
    def _create(self, spec: ActionSpec) -> QAction:
        window = self._owner()
        action = QAction(spec.text, window)
        action.setObjectName(spec.name)
        if spec.icon:
            action.setIcon(icons.icon(spec.icon))
        if spec.shortcut is not None:
            action.setShortcut(QKeySequence(spec.shortcut))
        action.setToolTip(spec.tip)
        action.setStatusTip(spec.tip)
        action.setWhatsThis(spec.tip)
        action.setMenuRole(spec.menu_role)
        action.setIconVisibleInMenu(True)
        action.setVisible(not spec.needs_handler)
        if spec.name in av.RULES:
            # A bound method, not a lambda: the connection must not keep the registry
            # (and through its handlers the window) alive.
            action.triggered.connect(self._on_triggered)
        window.addAction(action)  # shortcuts work with the menu bar hidden too
        self._actions[spec.name] = action
        self._specs[spec.name] = spec
        return action

    def adopt(self, name: str, action: QAction, shortcut: Shortcut = None) -> QAction:
        """Add an action made elsewhere (a dock's toggle action) under ``name``."""
        action.setObjectName(name)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        tip = action.toolTip() or plain_text(action.text())
        action.setStatusTip(tip)
        self._actions[name] = action
        return action

    def action(self, name: str) -> QAction:
        return self._actions[name]

    __getitem__ = action

    def names(self) -> list[str]:
        return list(self._actions)

    def fill_menu(self, menu: QMenu | QMenuBar, entries: Iterable[object]) -> None:
        """Add the actions (and separators, and submenus) of ``entries`` to ``menu``."""
        if isinstance(menu, QMenu) and menu.objectName():
            menu.menuAction().setObjectName(f"{menu.objectName()}_action")
        for entry in entries:
            if entry is None:
                menu.addSeparator()
            elif isinstance(entry, str):
                menu.addAction(self._actions[entry])
            else:
                assert isinstance(entry, tuple)
                name, title, children = entry
                sub = QMenu(title, menu)
                sub.setObjectName(name)
                sub.setAccessibleName(plain_text(title))
                sub.setToolTipsVisible(True)
                sub.menuAction().setObjectName(f"{name}_action")
                self.fill_menu(sub, children)
                menu.addMenu(sub)

    def context_menu(
        self, parent: QWidget, name: str, entries: Sequence[str | Menu | None]
    ) -> QMenu:
        menu = QMenu(parent)
        menu.setObjectName(name)
        menu.setAccessibleName(name.replace("_", " ").capitalize())
        menu.setToolTipsVisible(True)
        self.fill_menu(menu, entries)
        return menu

    # -- handlers ------------------------------------------------------------------------
    def register(self, name: str, handler: Handler) -> None:
        """Make action ``name`` do ``handler(preselection)`` and show it."""
        if name not in av.RULES:
            raise KeyError(f"{name!r} is not an action with a handler: {sorted(av.RULES)}")
        self._handlers[name] = _held(handler)
        self._actions[name].setVisible(True)
        self.update_context(self._cluster, self._selection, self._connection)

    def unregister(self, name: str) -> None:
        """Remove the handler; an action that needs one is hidden again."""
        self._handlers.pop(name, None)
        if self._specs[name].needs_handler:
            self._actions[name].setVisible(False)

    def handler(self, name: str) -> Handler | None:
        held = self._handlers.get(name)
        return held() if held is not None else None

    def is_registered(self, name: str) -> bool:
        return name in self._handlers

    @Slot()
    def _on_triggered(self) -> None:
        action = self.sender()
        if isinstance(action, QAction):
            self.trigger(action.objectName())

    def trigger(self, name: str) -> None:
        """Run the handler of ``name`` with the preselection of the current selection."""
        handler = self.handler(name)
        if handler is None or not self._actions[name].isEnabled():
            return
        pre = self.preselection(name)
        try:
            handler(pre)
        except LkError as exc:
            log.warning("%s failed: %s", name, exc)
            self.failed.emit(str(exc))
            return
        self.triggered.emit(name, pre)

    # -- context -------------------------------------------------------------------------
    def update_context(
        self, cluster: Cluster | None, selection: Selection, connection: Connection
    ) -> None:
        """Enable the rule actions for what is selected now, each with its reason.

        The rules run again only when the cluster, the selection or the connection
        differ from the last call's (compared as values, identity first: snapshots share
        what did not change, so an update elsewhere costs one comparison).
        """
        self._cluster, self._selection, self._connection = cluster, selection, connection
        key = (None if cluster is None else (cluster.servers, cluster.hierarchies), selection)
        if (key, connection) == self._key:
            return
        self._key = (key, connection)
        last = self._availability
        self._availability = av.availability(cluster, selection, connection)
        quiet = self._state_only
        quiet.active = True
        try:
            for name, result in self._availability.items():
                before = last.get(name)
                if result == before:
                    continue  # shown already: Qt is not asked
                action = self._actions[name]
                quiet.watch(action)
                # Always: a hidden action reads as disabled, whatever it will be once shown.
                if before is None or before.enabled != result.enabled:
                    action.setEnabled(result.enabled)
                if before is None or before.reason != result.reason:
                    action.setToolTip(result.reason)
                    action.setStatusTip(result.reason)
        finally:
            quiet.active = False
            quiet.apply()

    def availability(self, name: str) -> Availability:
        return self._availability[name]

    def preselection(self, name: str) -> Preselection:
        return av.preselection(self._cluster, self._selection, name)

    @property
    def selection(self) -> Selection:
        return self._selection

    @property
    def connection(self) -> Connection:
        return self._connection


def context(
    cluster: Cluster | None,
    selection: Selection,
    hierarchy: Callable[[int], Hierarchy | None],
) -> Cluster | None:
    """The part of ``cluster`` that :mod:`core.availability`'s rules and
    :func:`core.properties.properties` read for ``selection``: the same answers, from
    less to look through and to compare.

    A resource or a cell selected: the servers and that hierarchy only, found with
    ``hierarchy(id)`` (the window's model finds it without a scan; ``Cluster.hierarchy``
    looks through every hierarchy, and the rules ask it once each). Nothing or a server
    selected: the whole cluster (Extend with nothing selected looks at every hierarchy,
    and so do a server's properties). The comm paths and the failovers waiting for a
    confirmation are kept (Edit › Server's rules read them).
    """
    if cluster is None or selection.hierarchy_id is None:
        return cluster
    h = hierarchy(selection.hierarchy_id)
    hierarchies = () if h is None else (h,)
    return Cluster(cluster.servers, hierarchies, cluster.comm_paths, cluster.pending_failovers)


def find_menu_action(menubar: QMenuBar, *path: str) -> QAction | None:
    """The action at a menu path given by visible texts: ("Edit", "Resource", "Extend…")."""
    actions = menubar.actions()
    found: QAction | None = None
    for depth, text in enumerate(path):
        wanted = plain_text(text)
        found = next((a for a in actions if plain_text(a.text()) == wanted), None)
        if found is None:
            return None
        if depth < len(path) - 1:
            menu = found.menu()
            if not isinstance(menu, QMenu):
                return None
            actions = menu.actions()
    return found


__all__ = [
    "ActionRegistry",
    "ActionSpec",
    "Handler",
    "context",
    "find_menu_action",
    "plain_text",
]
