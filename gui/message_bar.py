"""The message bar (the window's status bar): last result, long work, session.

Left, the last result (an icon and one sentence); right, a busy indicator while an
operation runs on a worker, a progress bar while mirrors resync, and the session: the
cluster it is connected to and the role.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from core.availability import Connection
from core.model import Cluster, Hierarchy, MirrorState
from core.status import format_eta
from gui import icons

_ICON = 16


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when it is too narrow (full text as tooltip)."""

    def minimumSizeHint(self) -> QSize:
        return QSize(40, super().minimumSizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        painter.drawText(rect, int(self.alignment()), text)
        painter.end()


class MessageBar:
    """The widgets of the window's status bar (objectNames: message_bar, ...)."""

    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        bar.setObjectName("status_bar")
        bar.setAccessibleName("Message bar")
        bar.setSizeGripEnabled(True)

        self.icon = QLabel(bar)
        self.icon.setObjectName("message_icon")
        self.icon.setAccessibleName("Last result icon")
        self.icon.setFixedWidth(_ICON + 4)
        self.message = ElidedLabel("Connecting to the lab cluster…", bar)
        self.message.setObjectName("message_bar")
        self.message.setAccessibleName("Last result")
        self.message.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        bar.addWidget(self.icon)
        bar.addWidget(self.message, 1)

        self.busy = QProgressBar(bar)
        self.busy.setObjectName("busy_indicator")
        self.busy.setAccessibleName("Operation in progress")
        self.busy.setRange(0, 0)  # indeterminate until a worker reports progress
        self.busy.setFixedWidth(110)
        self.busy.setTextVisible(False)
        self.busy.hide()
        bar.addPermanentWidget(self.busy)

        self.resync_label = QLabel(bar)
        self.resync_label.setObjectName("resync_label")
        icon = icons.icon("state-resyncing").pixmap(_ICON, _ICON)
        self.resync_icon = QLabel(bar)
        self.resync_icon.setObjectName("resync_icon")
        self.resync_icon.setAccessibleName("Resync in progress icon")
        self.resync_icon.setPixmap(icon)
        self.resync_icon.hide()
        bar.addPermanentWidget(self.resync_icon)
        self.resync_label.setAccessibleName("Mirrors resyncing")
        self.resync_label.hide()
        bar.addPermanentWidget(self.resync_label)
        self.resync = QProgressBar(bar)
        self.resync.setObjectName("resync_progress")
        self.resync.setAccessibleName("Mirror resync progress")
        self.resync.setRange(0, 100)
        self.resync.setFixedWidth(90)
        self.resync.setFormat("%p %")
        self.resync.hide()
        bar.addPermanentWidget(self.resync)

        self.connection_icon = QLabel(bar)
        self.connection_icon.setObjectName("connection_icon")
        self.connection_icon.setAccessibleName("Connection state icon")
        self.connection_label = QLabel(bar)
        self.connection_label.setObjectName("connection_label")
        self.connection_label.setAccessibleName("Connection and role")
        bar.addPermanentWidget(self.connection_icon)
        bar.addPermanentWidget(self.connection_label)
        # The resyncs shown, by hierarchy id (the ids in order), and what they showed.
        self._resyncing: dict[int, list[tuple[str, int, int, float]]] = {}
        self._resyncs_shown: tuple[int, str, str] | None = None
        self._result_shown: tuple[str, bool | None] | None = None

    # -- last result -----------------------------------------------------------------------
    def show_result(self, text: str, ok: bool | None = True) -> None:
        """Show ``text``; ok True/False/None = success, failure, plain information."""
        if (text, ok) == self._result_shown and text == self.message.text():
            return  # shown already (the connection's summary after each snapshot)
        self._result_shown = (text, ok)
        self.message.setText(text)
        self.message.setToolTip(text)
        name = {True: "state-active", False: "state-failed", None: None}[ok]
        if name is None:
            self.icon.clear()
        else:
            self.icon.setPixmap(icons.icon(name).pixmap(_ICON, _ICON))

    # -- long work -------------------------------------------------------------------------
    def set_busy(self, busy: bool, what: str = "") -> None:
        self.busy.setRange(0, 0)
        self.busy.setToolTip(what or "An operation is running.")
        self.busy.setVisible(busy)

    def set_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.busy.setRange(0, 1000)
            self.busy.setValue(int(done * 1000 / total))
        else:
            self.busy.setRange(0, 0)

    def show_resyncs(
        self, cluster: Cluster | None, changed: Mapping[int, Hierarchy | None] | None = None
    ) -> None:
        """Overall progress of the mirrors resyncing now (hidden when none), in the order
        of the hierarchies' ids.

        ``changed``: the hierarchies (by id; None: removed) that differ from the cluster
        of the last call, so that only those are looked at; None: look at every one.
        """
        if cluster is None:
            self._resyncing.clear()
        elif changed is None:
            self._resyncing = {
                h.id: found for h in sorted(cluster.hierarchies, key=_id) if (found := _resyncs(h))
            }
        else:
            for hid, h in changed.items():
                found = _resyncs(h) if h is not None else None
                if found:
                    self._resyncing[hid] = found
                else:
                    self._resyncing.pop(hid, None)
            if any(a > b for a, b in itertools.pairwise(self._resyncing)):
                self._resyncing = dict(sorted(self._resyncing.items()))
        done = total = 0
        names: list[str] = []
        eta = 0.0
        for resyncs in self._resyncing.values():
            for name, bytes_done, bytes_total, target_eta in resyncs:
                done += bytes_done
                total += bytes_total
                names.append(name)
                eta = max(eta, target_eta)
        if not names:
            self._resyncs_shown = None
            self.resync.hide()
            self.resync_label.hide()
            self.resync_icon.hide()
            return
        percent = min(100, int(done * 100 / total)) if total else 0
        label = names[0] if len(names) == 1 else f"{len(names)} mirrors"
        tip = "Resyncing: " + ", ".join(names)
        if eta:
            tip += f" ({format_eta(eta)})"
        if (percent, label, tip) == self._resyncs_shown:
            return
        self._resyncs_shown = (percent, label, tip)
        self.resync.setValue(percent)
        self.resync_label.setText(label)
        self.resync.setToolTip(tip)
        self.resync_label.setToolTip(tip)
        self.resync_icon.setToolTip(tip)
        self.resync_icon.show()
        self.resync_label.show()
        self.resync.show()

    # -- connection ---------------------------------------------------------------------------
    def show_connection(self, connection: Connection) -> None:
        if connection.connected:
            text = f"{connection.cluster_name.capitalize()} cluster · {connection.role.label}"
            icon = "action-connect"
            tip = f"Connected to the {connection.cluster_name} cluster as {connection.role.label}."
        else:
            text = "Not connected"
            icon = "action-disconnect"
            tip = "Not connected to a cluster: File › Connect."
        self.connection_label.setText(text)
        self.connection_label.setToolTip(tip)
        self.connection_icon.setPixmap(icons.icon(icon).pixmap(_ICON, _ICON))
        self.connection_icon.setToolTip(tip)


def _id(h: Hierarchy) -> int:
    return h.id


def _resyncs(h: Hierarchy) -> list[tuple[str, int, int, float]]:
    """The resyncs of ``h``: name, bytes done, bytes in all, ETA."""
    return [
        (
            f"{h.tag_of(m.resource_id)} → {t.server}",
            t.bytes_done,
            t.bytes_total or m.volume_size,
            t.eta or 0.0,
        )
        for m in h.mirrors
        for t in m.targets
        if t.state is MirrorState.RESYNCING
    ]
