"""Every operation of the console wired to its dialog: the handlers of the actions.

:func:`install` registers, on a :class:`~gui.main_window.MainWindow`, the wizards
(Create, Extend), the operation dialogs (Unextend, Delete, In Service, Out of Service,
server Stop/Start, the mirror actions) and File › Connect. Each handler gets the
preselection of what the user clicked; the operations themselves are core's.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from PySide6.QtWidgets import QWidget

from core import availability as av
from core.availability import Preselection
from core.backend import Backend
from core.capabilities import FILESYSTEM_GROW, SERVER_SETTINGS
from core.model import DEFAULT_SPEED_LIMIT_KBPS, Cluster, Hierarchy
from gui.bridge import Opened

if TYPE_CHECKING:
    from core import commands
    from core.operations import hierarchy as hierarchy_ops
    from core.operations import mirror as mirror_ops
    from core.operations import service, whatif
    from gui.commpath_dialogs import CreateCommPathDialog, DeleteCommPathDialog
    from gui.create_wizard import CreateWizard
    from gui.dialogs import ConnectDialog, OperationDialog, OperationSpec
    from gui.extend_wizard import ExtendWizard
    from gui.main_window import MainWindow
    from gui.resource_properties import ResourcePropertiesDialog
    from gui.server_properties import ServerPropertiesDialog

F = TypeVar("F", bound=Callable[..., Any])


def _load() -> None:
    """Import the dialogs and operations on first use: they are not needed to start."""
    global commands, hierarchy_ops, mirror_ops, service, whatif
    global CreateWizard, ConnectDialog, OperationDialog, OperationSpec, ExtendWizard
    from core import commands
    from core.operations import hierarchy as hierarchy_ops
    from core.operations import mirror as mirror_ops
    from core.operations import service, whatif
    from gui.create_wizard import CreateWizard
    from gui.dialogs import ConnectDialog, OperationDialog, OperationSpec
    from gui.extend_wizard import ExtendWizard

    _load_properties()


def _load_properties() -> None:
    """Server and Resource Properties, the comm paths' dialogs."""
    global CreateCommPathDialog, DeleteCommPathDialog
    global ResourcePropertiesDialog, ServerPropertiesDialog
    from gui.commpath_dialogs import CreateCommPathDialog, DeleteCommPathDialog
    from gui.resource_properties import ResourcePropertiesDialog
    from gui.server_properties import ServerPropertiesDialog


def preload() -> None:
    """Import what the dialogs need, off the GUI thread (a module import reads files):
    the console calls it once its window has painted, so that no dialog imports later."""
    _load()
    from core.operations import create, extend  # noqa: F401 - the wizards' workers
    from gui.dependency_dialog import DependencyDialog  # noqa: F401 - Create Dependency
    from gui.history_view import HistoryDialog  # noqa: F401 - View › History
    from gui.log_view import LogDialog  # noqa: F401 - View › Log
    from gui.resize_dialog import ResizeDialog  # noqa: F401 - Resize Mirror


def _loaded(method: F) -> F:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _load()
        return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def install(window: MainWindow) -> None:
    """Register every operation's handler on ``window``'s actions."""
    ops = _Operations(window)
    a = window.actions
    a.register(av.CREATE_HIERARCHY, ops.create)
    a.register(av.EXTEND_HIERARCHY, ops.extend)
    a.register(av.UNEXTEND_HIERARCHY, ops.unextend)
    a.register(av.DELETE_HIERARCHY, ops.delete)
    a.register(av.IN_SERVICE, ops.in_service)
    a.register(av.OUT_OF_SERVICE, ops.out_of_service)
    a.register(av.STOP_SERVER, ops.stop_server)
    a.register(av.START_SERVER, ops.start_server)
    a.register(av.PAUSE_MIRROR, ops.pause)
    a.register(av.RESUME_MIRROR, ops.resume)
    a.register(av.FULL_RESYNC, ops.full_resync)
    a.register(av.FORCE_ONLINE, ops.force_online)
    a.register(av.SPEED_LIMIT, ops.speed_limit)
    a.register(av.VERIFY_MIRROR, ops.verify)
    a.register(av.CONNECT, ops.connect)
    a.register(av.CREATE_DEPENDENCY, ops.create_dependency)
    a.register(av.DELETE_DEPENDENCY, ops.delete_dependency)
    a.register(av.SERVER_PROPERTIES, ops.server_properties)
    a.register(av.RESOURCE_PROPERTIES, ops.resource_properties)
    a.register(av.CREATE_COMM_PATH, ops.create_comm_path)
    a.register(av.DELETE_COMM_PATH, ops.delete_comm_path)
    a.register(av.CONFIRM_FAILOVER, ops.confirm_failover)
    a.register(av.RESIZE_MIRROR, ops.resize_mirror)
    a.register(av.SHOW_LOG, ops.show_log)
    # Nothing is stored on the window itself: the actions' handlers keep ``ops`` alive,
    # and :func:`of` finds it through them. (An extra attribute on the window made the
    # garbage collector crash PySide when a window was dropped without being closed.)


def of(window: MainWindow) -> _Operations:
    """The operations installed on ``window`` (tests look at ``.last_dialog``)."""
    handler = window.actions.handler(av.CREATE_HIERARCHY)
    ops = getattr(handler, "__self__", None)
    assert isinstance(ops, _Operations), "gui.operations.install() was not called"
    return ops


class _Operations:
    def __init__(self, window: MainWindow) -> None:
        # A weak reference: the window owns this object (no cycle for the garbage
        # collector to break in the middle of a Qt object tree).
        self._window = weakref.ref(window)
        self.last_dialog: QWidget | None = None

    @property
    def w(self) -> MainWindow:
        window = self._window()
        assert window is not None, "the window is gone"
        return window

    # -- helpers -----------------------------------------------------------------------
    def _cluster(self) -> Cluster:
        assert self.w.cluster is not None, "actions are enabled only when connected"
        return self.w.cluster

    def _backend(self) -> Backend:
        assert self.w.backend is not None, "actions are enabled only when connected"
        return self.w.backend

    def _hierarchy(self, pre: Preselection) -> Hierarchy:
        h = self._cluster().hierarchy(pre.hierarchy_id or -1)
        assert h is not None, "actions are enabled only with a hierarchy selected"
        return h

    def _open(self, dialog: QWidget) -> QWidget:
        self.last_dialog = dialog
        dialog.open()  # type: ignore[attr-defined]
        return dialog

    def _dialog(self, spec: OperationSpec) -> OperationDialog:
        dialog = OperationDialog(spec, self._backend(), self.w.session, self.w)
        dialog.done.connect(self._done)
        self._open(dialog)
        return dialog

    def _done(self, ok: bool, message: str) -> None:
        self.w.show_result(message, ok)
        self.w.request_reload()

    # -- wizards -------------------------------------------------------------------------
    @_loaded
    def create(self, pre: Preselection) -> None:
        """Create's defaults need the server's volumes: gathered on a worker first."""
        from gui.create_wizard import prepare

        prepare(self._backend(), self._cluster(), pre.server, self._open_create, self._refused)

    def _open_create(self, prepared: object) -> CreateWizard:
        wizard = CreateWizard(
            prepared,  # type: ignore[arg-type]
            self._backend(),
            session=self.w.session,
            parent=self.w,
        )
        wizard.created.connect(lambda _hid, tag: self._done(True, f"Created {tag}."))
        wizard.extend_requested.connect(self._extend_after_create)
        self._open(wizard)
        return wizard

    @_loaded
    def _extend_after_create(self, tag: str, server: str) -> None:
        # The cluster shown may not have the new hierarchy yet: the worker reads it.
        self._extend_wizard(None, template_server=server, tag=tag, from_create=True)

    @_loaded
    def extend(self, pre: Preselection) -> None:
        self._extend_wizard(
            self._cluster(),
            template_server=pre.template_server,
            tag=pre.tag,
            target_server=pre.target_server,
        )

    def _extend_wizard(self, cluster: Cluster | None, **kw: Any) -> None:
        """The wizard opens once a worker has gathered what its defaults need."""
        from gui.extend_wizard import prepare

        def show(prepared: object) -> ExtendWizard:
            wizard = ExtendWizard(
                prepared,  # type: ignore[arg-type]
                self._backend(),
                session=self.w.session,
                parent=self.w,
            )
            wizard.extended.connect(
                lambda _hid, target: self._done(
                    True, f"Extended to {target}: the mirror is resyncing."
                )
            )
            self._open(wizard)
            return wizard

        prepare(self._backend(), cluster, kw, show, self._refused)

    def _refused(self, message: str) -> None:
        self.w.show_result(message, ok=False)

    # -- hierarchy operations ---------------------------------------------------------------
    @_loaded
    def unextend(self, pre: Preselection) -> OperationDialog:
        h = self._hierarchy(pre)
        servers = [s for s in h.servers if s != h.in_service_server]
        tag = h.root_tag
        return self._dialog(
            OperationSpec(
                name="unextend",
                title="Unextend Resource Hierarchy",
                text=f"Remove <b>{tag}</b> from a standby server: its resources, its priority, "
                "its mirror target and bitmap there. The data volume is kept.",
                server_label="&Server:",
                servers=servers,
                server=pre.server if pre.server in servers else (servers[0] if servers else None),
                confirm="&Unextend",
                warning=True,
                command=lambda v: commands.unextend(tag, v["server"]),
                run=lambda b, v, s: hierarchy_ops.unextend(
                    b, hierarchy_ops.UnextendRequest(tag, v["server"]), s
                ),
                what_if=lambda b, v: whatif.dry_run_of(
                    b,
                    lambda c: hierarchy_ops.plan_unextend(
                        c, hierarchy_ops.UnextendRequest(tag, v["server"])
                    ),
                ),
            )
        )

    @_loaded
    def delete(self, pre: Preselection) -> OperationDialog:
        h = self._hierarchy(pre)
        tag = h.root_tag
        return self._dialog(
            OperationSpec(
                name="delete",
                title="Delete Resource Hierarchy",
                text=f"Delete <b>{tag}</b> and its resources from every server "
                f"({', '.join(h.servers)})? Its mirrors stop; no volume is deleted.",
                confirm="&Delete",
                warning=True,
                command=lambda _v: commands.delete(tag),
                run=lambda b, _v, s: hierarchy_ops.delete(b, hierarchy_ops.DeleteRequest(tag), s),
                what_if=lambda b, _v: whatif.dry_run_of(
                    b, lambda c: hierarchy_ops.plan_delete(c, hierarchy_ops.DeleteRequest(tag))
                ),
            )
        )

    @_loaded
    def in_service(self, pre: Preselection) -> OperationDialog:
        h = self._hierarchy(pre)
        tag = h.root_tag
        current = h.in_service_server
        servers = [s for s in h.servers if s != current]
        what = (
            f"Switch <b>{tag}</b> over from {current} to the server below: it goes out "
            f"of service on {current} first, then comes in service there."
            if current
            else f"Bring <b>{tag}</b> in service on the server below (the "
            "resources it depends on first)."
        )
        return self._dialog(
            OperationSpec(
                name="in_service",
                title="In Service",
                text=what,
                server_label="&Server:",
                servers=servers,
                server=pre.server if pre.server in servers else (servers[0] if servers else None),
                confirm="&In Service",
                command=lambda v: (
                    commands.switchover(tag, v["server"])
                    if current
                    else commands.in_service(tag, v["server"])
                ),
                run=lambda b, v, s: service.in_service(b, tag, v["server"], s),
                what_if=lambda b, v: whatif.dry_run_of(
                    b, lambda c: service.plan_in_service(c, tag, v["server"])
                ),
            )
        )

    @_loaded
    def out_of_service(self, pre: Preselection) -> OperationDialog:
        h = self._hierarchy(pre)
        tag = h.root_tag
        return self._dialog(
            OperationSpec(
                name="out_of_service",
                title="Out of Service",
                text=f"Take <b>{tag}</b> out of service on {h.in_service_server} (the "
                "resources that depend on others first). It is not protected until it is "
                "brought in service again.",
                confirm="&Out of Service",
                warning=True,
                command=lambda _v: commands.out_of_service(tag),
                run=lambda b, _v, s: service.out_of_service(b, tag, s),
                what_if=lambda b, _v: whatif.dry_run_of(
                    b, lambda c: service.plan_out_of_service(c, tag)
                ),
            )
        )

    # -- the lab's servers -----------------------------------------------------------------
    @_loaded
    def stop_server(self, pre: Preselection) -> OperationDialog:
        server = pre.server or ""
        found = self._cluster().server(server)
        clean = SERVER_SETTINGS in self._backend().capabilities and found is not None
        strategy = found.shutdown_strategy.value if found is not None else ""
        return self._dialog(
            OperationSpec(
                name="stop_server",
                title="Stop Server",
                text=f"Stop <b>{server}</b> as if it crashed. Its hierarchies fail over to the "
                "alive server with the best priority whose mirrors are Target; without one, "
                "they stay down.",
                check_label=(
                    f"Stop it &cleanly instead: its Shutdown Strategy ({strategy}) applies"
                    if clean
                    else ""
                ),
                confirm="S&top",
                warning=True,
                command=lambda v: (
                    commands.lab_shutdown(server)
                    if v.get("check")
                    else commands.lab_server("stop", server)
                ),
                run=lambda b, v, s: (
                    b.shutdown_server(server, s) if v.get("check") else b.stop_server(server, s)
                ),
                what_if=lambda b, _v: whatif.dry_run_of(
                    b, lambda c: whatif.plan_stop_server(c, server)
                ),
            )
        )

    @_loaded
    def start_server(self, pre: Preselection) -> OperationDialog:
        server = pre.server or ""
        return self._dialog(
            OperationSpec(
                name="start_server",
                title="Start Server",
                text=f"Start <b>{server}</b> again: it rejoins as a standby and its copies "
                "resync what they missed (from the bitmap).",
                confirm="St&art",
                command=lambda _v: commands.lab_server("start", server),
                run=lambda b, _v, s: b.start_server(server, s),
            )
        )

    # -- mirrors ---------------------------------------------------------------------------
    def _mirror(self, pre: Preselection) -> tuple[str, str | None]:
        h = self._hierarchy(pre)
        assert pre.resource_id is not None
        mirror = h.mirror(pre.resource_id)
        assert mirror is not None
        tag = h.tag_of(pre.resource_id)
        target = pre.server if pre.server and mirror.target(pre.server) else None
        return tag, target

    @_loaded
    def pause(self, pre: Preselection) -> OperationDialog:
        tag, target = self._mirror(pre)
        to = target or "every target"
        return self._dialog(
            OperationSpec(
                name="pause_mirror",
                title="Pause Mirror",
                text=f"Pause the mirror of <b>{tag}</b> to {to}: writes are only recorded in the "
                "bitmap, and copied when it is resumed.",
                confirm="&Pause",
                command=lambda _v: commands.mirror("pause", tag, target),
                run=lambda b, _v, s: mirror_ops.pause(b, tag, target, s),
            )
        )

    @_loaded
    def resume(self, pre: Preselection) -> OperationDialog:
        tag, target = self._mirror(pre)
        to = target or "every target"
        return self._dialog(
            OperationSpec(
                name="resume_mirror",
                title="Resume Mirror",
                text=f"Resume the mirror of <b>{tag}</b> to {to}: it resyncs what it missed "
                "(only the dirty chunks of the bitmap), then replicates again.",
                confirm="&Resume",
                command=lambda _v: commands.mirror("resume", tag, target),
                run=lambda b, _v, s: mirror_ops.resume(b, tag, target, s),
            )
        )

    @_loaded
    def full_resync(self, pre: Preselection) -> OperationDialog:
        tag, target = self._mirror(pre)
        to = target or "every target"
        return self._dialog(
            OperationSpec(
                name="full_resync",
                title="Full Resync",
                text=f"Copy every chunk of <b>{tag}</b> to {to} again. Until it is done, nothing "
                "can switch over there.",
                confirm="&Full Resync",
                warning=True,
                command=lambda _v: commands.mirror("fullresync", tag, target),
                run=lambda b, _v, s: mirror_ops.full_resync(b, tag, target, s),
            )
        )

    @_loaded
    def force_online(self, pre: Preselection) -> OperationDialog:
        h = self._hierarchy(pre)
        tag = h.root_tag
        assert pre.resource_id is not None
        mirror = h.mirror(pre.resource_id)
        assert mirror is not None
        waiting = [t.server for t in mirror.targets if t.state.name == "WAIT_FOR_PREVIOUS_SOURCE"]
        server = pre.server if pre.server in waiting else (waiting[0] if waiting else "")
        return self._dialog(
            OperationSpec(
                name="force_online",
                title="Force Online",
                text=f"<b>Warning:</b> the copy of {h.tag_of(mirror.resource_id)} on {server} may "
                f"be stale. Forcing it online brings <b>{tag}</b> in service there; whatever "
                f"{mirror.source} wrote after this copy was last in sync is <b>lost</b>, and "
                "every other copy is fully resynced from it.",
                server_label="&Server:",
                servers=waiting,
                server=server,
                confirm="&Force Online",
                warning=True,
                command=lambda v: commands.force_online(tag, v["server"]),
                run=lambda b, v, s: service.force_online(b, tag, v["server"], s),
            )
        )

    @_loaded
    def speed_limit(self, pre: Preselection) -> OperationDialog:
        h = self._hierarchy(pre)
        assert pre.resource_id is not None
        mirror = h.mirror(pre.resource_id)
        assert mirror is not None
        tag = h.tag_of(pre.resource_id)
        return self._dialog(
            OperationSpec(
                name="speed_limit",
                title="Set Speed Limit",
                text=f"The resync speed limit of <b>{tag}</b>, for every resync of this mirror "
                f"(LifeKeeper's default is {DEFAULT_SPEED_LIMIT_KBPS} KB/s; 0 = unlimited).",
                value_label="&Speed limit:",
                value=mirror.speed_limit_kbps,
                value_range=(0, 100_000_000),
                value_suffix=" KB/s",
                confirm="&Set",
                command=lambda v: commands.speed(tag, v["value"]),
                run=lambda b, v, s: mirror_ops.set_speed_limit(b, tag, v["value"], s),
            )
        )

    @_loaded
    def verify(self, pre: Preselection) -> OperationDialog:
        tag, target = self._mirror(pre)
        to = target or "every target"
        return self._dialog(
            OperationSpec(
                name="verify_mirror",
                title="Verify Mirror",
                text=f"Compare <b>{tag}</b> on {to} with the source, chunk by chunk (a blake2b "
                "checksum of each), without stopping the mirror. Every differing chunk is "
                "marked dirty; with repair it is copied again at once.",
                check_label="&Repair what differs (a partial resync)",
                checked=True,
                confirm="&Verify",
                command=lambda v: commands.join(
                    "mirror",
                    "verify",
                    tag,
                    *(["--target", target] if target else []),
                    *(["--repair"] if v["check"] else []),
                ),
                run=lambda b, v, s: mirror_ops.verify(b, tag, target, s, repair=bool(v["check"])),
            )
        )

    # -- Server and Resource Properties, comm paths, failover confirmation --------------------
    def _keep_current(self, dialog: QWidget) -> None:
        """The dialog follows the cluster the window shows (its refresh method)."""
        self.w.cluster_shown.connect(dialog.on_cluster_shown)  # type: ignore[attr-defined]

    @_loaded
    def server_properties(self, pre: Preselection) -> ServerPropertiesDialog:
        self.w._show_server_properties(pre)  # the panel shows it too
        dialog = ServerPropertiesDialog(
            self._cluster(), pre.server or "", self._backend(), self.w.session, self.w,
            bridge=self.w.bridge,
        )  # fmt: skip
        dialog.done.connect(self._applied)
        self._keep_current(dialog)
        self._open(dialog)
        return dialog

    @_loaded
    def resource_properties(self, pre: Preselection) -> ResourcePropertiesDialog:
        self.w._show_resource_properties(pre)
        h = self._hierarchy(pre)
        assert pre.resource_id is not None
        dialog = ResourcePropertiesDialog(
            h, pre.resource_id, self._backend(), self.w.session, self.w
        )
        dialog.done.connect(self._applied)
        self._keep_current(dialog)
        self._open(dialog)
        return dialog

    def _applied(self, ok: bool, message: str) -> None:
        self.w.show_result(message, ok)
        self.w.request_reload()

    @_loaded
    def create_comm_path(self, pre: Preselection) -> CreateCommPathDialog:
        dialog = CreateCommPathDialog(
            self._cluster(), pre.server, self._backend(), self.w.session, self.w
        )
        dialog.done.connect(self._applied)
        self._open(dialog)
        return dialog

    @_loaded
    def delete_comm_path(self, pre: Preselection) -> DeleteCommPathDialog:
        dialog = DeleteCommPathDialog(
            self._cluster(), pre.server, self._backend(), self.w.session, self.w
        )
        dialog.done.connect(self._applied)
        self._open(dialog)
        return dialog

    @_loaded
    def confirm_failover(self, pre: Preselection) -> OperationDialog:
        waiting = self._cluster().pending_failovers
        servers = list(dict.fromkeys(p.to_server for p in waiting))
        listed = "<br>".join(
            f"<b>{p.root_tag}</b> from {p.from_server} to {p.to_server} ({p.reason}; "
            f"{p.default.value} at the timeout)"
            for p in waiting
        )
        return self._dialog(
            OperationSpec(
                name="confirm_failover",
                title="Confirm Failover",
                text=f"These failovers wait for your confirmation:<br>{listed}",
                server_label="&To server:",
                servers=servers,
                server=pre.server if pre.server in servers else (servers[0] if servers else None),
                check_label="&Block the failover instead (nothing moves)",
                confirm="&Confirm",
                warning=True,
                command=lambda v: commands.confirm_failover(v["server"], not v["check"]),
                run=lambda b, v, s: b.confirm_failover(v["server"], not v["check"], s),
            )
        )

    # -- issue 16: Resize Mirror, View › Log -------------------------------------------------
    def resize_mirror(self, pre: Preselection) -> QWidget:
        from core.rules.resize import filesystem_note
        from gui.resize_dialog import ResizeDialog

        h = self._hierarchy(pre)
        assert pre.resource_id is not None
        mirror = h.mirror(pre.resource_id)
        assert mirror is not None
        backend = self._backend()
        dialog = ResizeDialog(
            backend,
            self.w.session,
            h.tag_of(mirror.resource_id),
            mirror.volume_size,
            filesystem_note(h, mirror, FILESYSTEM_GROW in backend.capabilities),
            self.w,
        )
        dialog.done.connect(self._done)
        return self._open(dialog)

    def show_log(self, pre: Preselection) -> QWidget:
        from gui.log_view import LogDialog

        cluster = self._cluster()
        h = cluster.hierarchy(pre.hierarchy_id) if pre.hierarchy_id is not None else None
        server = pre.server or (h.in_service_server if h else None) or cluster.servers[0].name
        dialog = LogDialog(self._backend(), cluster, server, self.w.bridge, self.w)
        return self._open(dialog)

    # -- File › Connect --------------------------------------------------------------------
    @_loaded
    def connect(self, _pre: Preselection) -> ConnectDialog:
        dialog = ConnectDialog(self.w.spec, self.w, user=self.w.session.user)
        dialog.connected.connect(self._connected)
        self._open(dialog)
        return dialog

    def _connected(self, opened: Opened) -> None:
        self.w.adopt(opened)
        session = opened.session
        self.w.show_result(f"Connected as {session.user} ({session.role.label}).")

    # -- Create Dependency / Delete Dependency ---------------------------------------------
    def create_dependency(self, pre: Preselection) -> QWidget:
        return self._dependency("create", pre)

    def delete_dependency(self, pre: Preselection) -> QWidget:
        return self._dependency("delete", pre)

    def _dependency(self, action: str, pre: Preselection) -> QWidget:
        from gui.dependency_dialog import DependencyDialog

        dialog = DependencyDialog(
            action,
            self._cluster(),
            self._backend(),
            self.w.session,
            server=pre.server,
            tag=pre.tag,
            parent=self.w,
        )
        dialog.done.connect(self._done)
        return self._open(dialog)


__all__ = ["install"]
