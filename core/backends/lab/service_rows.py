"""The lab's state changes of a hierarchy, shared by the plans' steps and the failover.

Inside a transaction: resources out of service (parents first), in service (children
first), and a new source for every mirror (the old source a target, resyncing only what
changed where it was in sync). What must wait for the commit (stopping and starting the
resync processes, the bitmaps' sections) is collected in a :class:`FollowUp`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.backends.lab import mirrors
from core.backends.lab.layout import LabLayout
from core.backends.lab.store import Store, Txn
from core.errors import OperationError
from core.model import Hierarchy, MirrorState, MirrorTarget, Resource, ResourceState
from core.rules.service import TARGET_DOWN

# A resource's kit action: (the instance, True to bring it in service / False to take it
# out); raises OperationError when the kit fails (see core.backends.lab.kits).
Act = Callable[[Resource, bool], None]


@dataclass
class FollowUp:
    """What a state change leaves for after the commit."""

    stop: list[tuple[int, str]] = field(default_factory=list)
    bitmap_targets: list[tuple[Path, str, int, int, bool]] = field(default_factory=list)
    merges: list[tuple[Path, str, Path, str]] = field(default_factory=list)
    resyncs: list[tuple[int, str]] = field(default_factory=list)

    def run(self, store: Store, say: Callable[[str, str], None]) -> None:
        """Stop the old resyncs, prepare the bitmaps, start the new resyncs."""
        for rid, server in self.stop:
            if not mirrors.stop_resync(store.home, rid, server):
                raise OperationError(f"the resync to {server} did not stop within 30 s")
        for path, target, size, chunk, dirty in self.bitmap_targets:
            try:
                mirrors.add_bitmap_target(path, target, size, chunk, dirty=dirty)
            except OSError as exc:
                say(
                    "WARNING",
                    f"bitmap {path.name}: {exc.strerror or exc}; the next resync "
                    f"of {target} is a full one",
                )
        for returning, section, into, target in self.merges:
            merged = mirrors.merge_dirty(returning, section, into, target)
            if merged:
                say(
                    "INFO",
                    f"{target}: {merged} chunks it may have written before it went "
                    "down are copied back from the source too.",
                )
        for rid, server in self.resyncs:
            mirrors.start_resync(store.home, rid, server)


def take_out(
    txn: Txn,
    h: Hierarchy,
    server: str,
    state: ResourceState,
    act: Act | None = None,
) -> str:
    """Parents first: every resource of ``h`` on ``server`` goes to ``state``; ``act``
    takes each one in service there out first (its kit's remove: an IP address goes
    down, an application's stop command runs)."""
    order = h.resource_ids()  # root first = parents first
    for rid in order:
        inst = h.instance(rid, server)
        if inst is None:
            continue
        if act is not None and inst.state.in_service:
            act(inst, False)
        kept = inst.reason if state is ResourceState.OSF else ""
        txn.set_instance_state(rid, server, state, kept)
    return (
        f"{h.root_tag} out of service on {server} ("
        + ", then ".join(h.tag_of(r) for r in order)
        + ")"
    )


def bring_in(txn: Txn, h: Hierarchy, server: str, act: Act | None = None) -> str:
    """Children first: every resource of ``h`` on ``server`` in service; ``act`` brings
    each one that is not in service yet in service first (its kit's restore)."""
    order = list(reversed(h.resource_ids()))
    for rid in order:
        inst = h.instance(rid, server)
        if act is not None and inst is not None and not inst.state.in_service:
            act(inst, True)
        txn.set_instance_state(rid, server, ResourceState.ISP)
    return (
        f"{h.root_tag} in service on {server} (" + ", then ".join(h.tag_of(r) for r in order) + ")"
    )


def make_source(
    txn: Txn,
    layout: LabLayout,
    h: Hierarchy,
    new: str,
    follow: FollowUp,
    *,
    old_alive: bool,
    full_resync: bool = False,
) -> list[str]:
    """Every mirror of ``h``: ``new`` becomes the source, the old source a target."""
    lines = []
    for m in h.mirrors:
        if m.source == new:
            continue
        old = m.source
        for t in m.targets:
            follow.stop.append((m.resource_id, t.server))
        txn.set_mirror_source(m.resource_id, new)
        txn.delete_mirror_target(m.resource_id, new)
        new_inst = h.instance(m.resource_id, new)
        assert new_inst is not None
        # The old source had what the new one has (it was Target): only changes from now on
        # need copying. Others keep being in sync if they were, else copy everything.
        rows = [(old, True)] + [
            (t.server, t.state is MirrorState.TARGET) for t in m.targets if t.server != new
        ]
        for server, in_sync in rows:
            alive = old_alive if server == old else True
            state = MirrorState.RESYNCING if alive else MirrorState.OUT_OF_SYNC
            reason = "" if alive else TARGET_DOWN.format(server=server)
            txn.set_mirror_target(
                m.resource_id, MirrorTarget(server, state, reason, bytes_total=m.volume_size)
            )
            if new_inst.bitmap_file:
                follow.bitmap_targets.append(
                    (
                        layout.server_path(new, new_inst.bitmap_file),
                        server,
                        m.volume_size,
                        m.chunk_size,
                        full_resync or not in_sync,
                    )
                )
            if alive:
                follow.resyncs.append((m.resource_id, server))
        lines.append(f"{h.tag_of(m.resource_id)}: {new} is the source now, {old} a target")
    return lines
