"""The mirror actions of a DataKeeper resource: which mirror, which targets, the steps.

Pause stops replicating to a target (writes are only recorded in the bitmap) and marks it
"Out of Sync"; Resume resyncs what it missed; Full Resync copies every chunk again; the
speed limit applies to every resync of the mirror; Verify compares a target with the
source chunk by chunk. All pure: the backend carries the steps out.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.checks import Problem
from core.errors import CheckFailed
from core.model import (
    Cluster,
    Hierarchy,
    Mirror,
    MirrorState,
    MirrorTarget,
    Resource,
    ResourceKind,
)
from core.plan import FullResync, PauseMirror, ResumeMirror, SetSpeedLimit, Step, VerifyMirror
from core.status import format_eta, format_rate

PAUSED_REASON = "paused by the administrator"
MAX_SPEED_KBPS = 100_000_000
METHODS = ("blake2b", "bytes")


@dataclass(frozen=True)
class MirrorRef:
    """A DataKeeper resource found by tag: its hierarchy, mirror and source instance."""

    hierarchy: Hierarchy
    mirror: Mirror
    source: Resource

    @property
    def tag(self) -> str:
        return self.source.tag


def find(cluster: Cluster, tag: str, field: str = "tag") -> MirrorRef:
    """The mirror of the DataKeeper resource tagged ``tag`` (on any server)."""
    inst = cluster.find_tag(tag)
    if inst is None:
        raise CheckFailed([Problem(field, "unknown_tag", f"There is no resource tagged {tag!r}.")])
    h = cluster.hierarchy(inst.hierarchy_id)
    assert h is not None
    mirror = h.mirror(inst.resource_id)
    if mirror is None and inst.kind is ResourceKind.DATAKEEPER:
        # a DataKeeper resource with no source to act on (a backend shows no mirror then)
        raise CheckFailed(
            [
                Problem(
                    field,
                    "no_source",
                    f"The mirror of {tag!r} has no source now: no copy of it is in service "
                    "(or the cluster is bringing one in service). Try again once a server "
                    "has it in service.",
                )
            ]
        )
    if mirror is None:
        raise CheckFailed(
            [
                Problem(
                    field,
                    "not_datakeeper",
                    f"{tag!r} is a {inst.kind.label} resource, not a DataKeeper resource: "
                    "it has no mirror.",
                )
            ]
        )
    source = h.instance(inst.resource_id, mirror.source)
    assert source is not None
    return MirrorRef(h, mirror, source)


def targets(ref: MirrorRef, target: str | None) -> list[MirrorTarget]:
    """The targets an action concerns: ``target``, or every one."""
    if target is None:
        if not ref.mirror.targets:
            raise CheckFailed(
                [
                    Problem(
                        "tag",
                        "no_targets",
                        f"{ref.tag} has no mirror target yet; extend the hierarchy first.",
                    )
                ]
            )
        return list(ref.mirror.targets)
    found = ref.mirror.target(target)
    if found is None:
        names = ", ".join(t.server for t in ref.mirror.targets) or "none"
        raise CheckFailed(
            [
                Problem(
                    "target",
                    "unknown_target",
                    f"{target!r} is not a target of {ref.tag} (targets: {names}).",
                )
            ]
        )
    return [found]


def pause_steps(ref: MirrorRef, target: str | None) -> tuple[Step, ...]:
    rid = ref.mirror.resource_id
    return tuple(PauseMirror(rid, ref.tag, t.server) for t in targets(ref, target))


def resume_steps(ref: MirrorRef, target: str | None) -> tuple[tuple[Step, ...], list[str]]:
    """The steps, and what needs no step (a target already in sync)."""
    steps: list[Step] = []
    notes = []
    for t in targets(ref, target):
        if t.state is MirrorState.TARGET:
            notes.append(f"{t.server} is already in sync (Target).")
            continue
        if t.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE:
            raise CheckFailed(
                [
                    Problem(
                        "target",
                        "waiting_for_previous_source",
                        f"{t.server} waits for the previous source: it may be stale. Use Force "
                        "Online if you are sure, or start the previous source.",
                    )
                ]
            )
        steps.append(ResumeMirror(ref.mirror.resource_id, ref.tag, t.server))
    return tuple(steps), notes


def full_resync_steps(ref: MirrorRef, target: str | None) -> tuple[Step, ...]:
    rid = ref.mirror.resource_id
    return tuple(FullResync(rid, ref.tag, t.server) for t in targets(ref, target))


def speed_steps(ref: MirrorRef, kbps: int) -> tuple[Step, ...]:
    if not 0 <= kbps <= MAX_SPEED_KBPS:
        raise CheckFailed(
            [
                Problem(
                    "kbps",
                    "out_of_range",
                    f"Speed limit {kbps} KB/s is out of range: 0 (unlimited) to "
                    f"{MAX_SPEED_KBPS} KB/s.",
                )
            ]
        )
    return (SetSpeedLimit(ref.mirror.resource_id, ref.tag, kbps),)


def verify_steps(
    ref: MirrorRef, target: str | None, *, repair: bool, method: str, wait_repair: float
) -> tuple[Step, ...]:
    if method not in METHODS:
        raise CheckFailed(
            [
                Problem(
                    "method", "unknown_method", f"Method {method!r} is not one of blake2b, bytes."
                )
            ]
        )
    chosen = targets(ref, target)
    for t in chosen:
        if t.state is MirrorState.RESYNCING:
            raise CheckFailed(
                [
                    Problem(
                        "target",
                        "resync_running",
                        f"A resync of {ref.tag} to {t.server} is running: verify it once "
                        "the resync is done (Target).",
                    )
                ]
            )
    rid = ref.mirror.resource_id
    return tuple(VerifyMirror(rid, ref.tag, t.server, repair, method, wait_repair) for t in chosen)


# -- mirror status ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetLine:
    server: str
    role: str
    state: str
    percent: int | None
    rate: str
    eta: str
    reason: str
    dirty_chunks: int


def status(ref: MirrorRef, dirty: dict[str, int] | None = None) -> list[TargetLine]:
    """One line per server of the mirror; ``dirty``: dirty chunks per target as the
    backend counted them (else what the snapshot says)."""
    dirty = dirty or {}
    lines = [TargetLine(ref.mirror.source, "Source", "Source", None, "", "", "", 0)]
    for t in ref.mirror.targets:
        resyncing = t.state is MirrorState.RESYNCING
        lines.append(
            TargetLine(
                t.server,
                "Target",
                t.state.label,
                t.percent if resyncing else (100 if t.state is MirrorState.TARGET else None),
                format_rate(t.rate) if resyncing and t.rate > 0 else "",
                format_eta(t.eta) if resyncing and t.eta is not None else "",
                t.reason,
                dirty.get(t.server, t.dirty_chunks),
            )
        )
    return lines
