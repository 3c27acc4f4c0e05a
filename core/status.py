"""What a status cell says: the text and icon of one resource on one server.

Shared by the console's status tree and ``lkctl status`` so both say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model import (
    Hierarchy,
    MirrorState,
    MirrorTarget,
    NodeStatus,
    ResourceKind,
    ResourceState,
)

# Icon names (resources/icons/state-<icon>.svg).
_STATE_ICON = {
    ResourceState.ISP: "active",
    ResourceState.ISU: "degraded",
    ResourceState.OSU: "standby",
    ResourceState.OSF: "failed",
    ResourceState.ILLSTATE: "unknown",
    ResourceState.UNKNOWN: "unknown",
}
_MIRROR_ICON = {
    MirrorState.TARGET: "target",
    MirrorState.RESYNCING: "resyncing",
    MirrorState.OUT_OF_SYNC: "outofsync",
    MirrorState.WAIT_FOR_PREVIOUS_SOURCE: "waitsource",
}


@dataclass(frozen=True)
class Cell:
    """One status-tree cell."""

    text: str
    icon: str
    state: ResourceState
    mirror_state: MirrorState | None = None
    percent: int | None = None  # while resyncing
    reason: str = ""  # why a target is not in sync, as the mirror says

    @property
    def status(self) -> NodeStatus:
        worst = self.state.status
        if self.mirror_state is not None:
            worst = max(worst, self.mirror_state.status)
        return worst


def cell(h: Hierarchy, resource_id: int, server: str) -> Cell | None:
    """The cell of ``resource_id`` on ``server``; None where it is not defined there."""
    inst = h.instance(resource_id, server)
    if inst is None:
        return None
    state = inst.state
    if inst.kind is ResourceKind.DATAKEEPER and state not in (ResourceState.OSF,):
        mirror = h.mirror(resource_id)
        if mirror is not None and mirror.targets:
            if server == mirror.source and state.in_service:
                return Cell("Source", "source", state)
            target = mirror.target(server)
            if target is not None and target.verify_percent is not None:
                return Cell(
                    f"Verifying {target.verify_percent} %",
                    "resyncing",
                    state,
                    target.state,
                    target.verify_percent,
                )
            if target is not None:
                return Cell(
                    mirror_text(target),
                    _MIRROR_ICON[target.state],
                    state,
                    target.state,
                    target.percent if target.state is MirrorState.RESYNCING else None,
                    target.reason,
                )
    return Cell(state.cell_text, _STATE_ICON[state], state)


def mirror_text(target: MirrorTarget) -> str:
    """ "Target", "Out of Sync", or "Resyncing 43 % · 180 MB/s · 2 min left"."""
    if target.state is not MirrorState.RESYNCING:
        return target.state.label
    parts = [f"Resyncing {target.percent} %"]
    if target.rate > 0:
        parts.append(format_rate(target.rate))
    if target.eta is not None:
        parts.append(format_eta(target.eta))
    return " · ".join(parts)


def format_rate(bytes_per_second: float) -> str:
    value = bytes_per_second
    for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
        if value < 1000 or unit == "GB/s":
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def format_eta(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"{round(seconds / 60)} min left"
    return f"{seconds / 3600:.1f} h left"


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            precise = unit != "bytes" and value < 10
            return f"{value:.1f} {unit}" if precise else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
