"""Resize Mirror: grow a DataKeeper mirror's volume on every server (pure).

DataKeeper grows a mirror by growing the volume under it on every server, the targets
first and then the source (a target is never smaller than what the source may write),
then the bitmap to cover the new size. Shrinking is refused: the end of the volume, and
the end of the file system on it, would be cut off.

**(ours)** The new space is resynced like any dirty region, not trusted to be zeros on
both sides: every server's volume reads as zeros past its old end once it grows, but a
target's file may already have been longer than the mirror (a volume kept from an
earlier extend, with old bytes there), and a target that is down or resyncing cannot be
vouched for. The chunks of the new space are marked dirty for every target, so the
resync copies exactly them (a partial resync); on a source with no bitmap every resync
is full anyway.

The file system on top: the lab's filesystem resource is a folder (its mount point),
which has no size, so a resize changes nothing there; on a real server the file system
is grown afterwards with its own tool (``resize2fs``, ``xfs_growfs``), which the note of
the plan says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.checks import Problem
from core.errors import CheckFailed
from core.facts import Facts, Needs
from core.model import Cluster, Hierarchy, Mirror, MirrorState, ResourceKind
from core.plan import GrowBitmap, GrowVolume, SetMirrorSize, StartResync, Step, StopMirrors
from core.status import format_size

BLOCK = 4096  # a volume grows by whole 4 KiB blocks
MAX_SIZE = 16 * 1024**4  # 16 TiB: far beyond any lab, and a typo's guard
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ResizeRequest:
    tag: str  # the DataKeeper resource (its tag on any server)
    size: str  # as typed: "128M", "134217728", "1G"


@dataclass(frozen=True)
class ResizeTarget:
    """A checked request: the mirror and its new size."""

    hierarchy: Hierarchy
    mirror: Mirror
    tag: str
    new_size: int


def parse_size(text: str) -> int | None:
    """Bytes from "134217728", "128M", "128MiB", "1G" (powers of 1024); None if not a size."""
    found = _SIZE.match(text or "")
    if found is None:
        return None
    return int(found.group(1)) * _UNITS[found.group(2).lower()]


def find(cluster: Cluster, tag: str) -> tuple[Hierarchy, Mirror] | Problem:
    text = (tag or "").strip()
    if not text:
        return Problem("tag", "required", "Give the tag of the DataKeeper resource to resize.")
    inst = cluster.find_tag(text)
    if inst is None:
        return Problem("tag", "unknown_tag", f"There is no resource tagged {text!r}.")
    h = cluster.hierarchy(inst.hierarchy_id)
    assert h is not None
    mirror = h.mirror(inst.resource_id)
    if inst.kind is not ResourceKind.DATAKEEPER or mirror is None:
        return Problem(
            "tag",
            "not_a_mirror",
            f"{text} is a {inst.kind.label} resource: only a DataKeeper resource (a mirror) "
            "can be resized; choose the DataKeeper resource under it.",
        )
    return h, mirror


def needs(cluster: Cluster, request: ResizeRequest) -> Needs:
    """The volume of the mirror on each of its servers (for the free space there)."""
    found = find(cluster, request.tag)
    if isinstance(found, Problem):
        return Needs()
    h, mirror = found
    return Needs.of_paths(
        (r.server, r.volume)
        for r in h.resources
        if r.resource_id == mirror.resource_id and r.volume
    )


def problems(cluster: Cluster, facts: Facts, request: ResizeRequest) -> list[Problem]:
    """Every reason the resize cannot be done, each naming its field ("tag", "size")."""
    found = find(cluster, request.tag)
    if isinstance(found, Problem):
        return [found]
    h, mirror = found
    tag = h.tag_of(mirror.resource_id)
    size = parse_size(request.size)
    current = mirror.volume_size
    if size is None:
        return [
            Problem(
                "size",
                "not_a_size",
                f"{request.size!r} is not a size: give a whole number of bytes or of K, M, "
                "G or T (powers of 1024), e.g. 128M.",
            )
        ]
    if size < current:
        return [
            Problem(
                "size",
                "shrink_refused",
                f"{format_size(size)} is smaller than {tag} ({format_size(current)}): a "
                "mirror cannot shrink (the end of its volume, and of the file system on it, "
                f"would be lost). Give a size above {format_size(current)}.",
            )
        ]
    if size == current:
        return [
            Problem(
                "size",
                "same_size",
                f"{tag} is already {format_size(current)}: give a larger size to grow it.",
            )
        ]
    if size % BLOCK:
        return [
            Problem(
                "size",
                "not_whole_blocks",
                f"{size} bytes is not a whole number of 4 KiB blocks: give a multiple of "
                f"4096 (e.g. {format_size(size - size % BLOCK + BLOCK)}).",
            )
        ]
    if size > MAX_SIZE:
        return [Problem("size", "too_large", f"{format_size(size)} is more than 16 TiB.")]
    return _server_problems(cluster, facts, h, mirror, size)


def _server_problems(
    cluster: Cluster, facts: Facts, h: Hierarchy, mirror: Mirror, size: int
) -> list[Problem]:
    """Every copy must grow: its server up, room for the growth on its disk."""
    found = []
    tag = h.tag_of(mirror.resource_id)
    for server in _servers(h, mirror):
        s = cluster.server(server)
        if s is None or not s.state.is_alive:
            state = s.state.value if s is not None else "not in the cluster"
            found.append(
                Problem(
                    "tag",
                    "server_down",
                    f"{server} is {state}: every copy of {tag} must grow together. Start "
                    f"{server} first, or unextend {h.root_tag} from it.",
                )
            )
            continue
        inst = h.instance(mirror.resource_id, server)
        assert inst is not None and inst.volume
        info = facts.path(server, inst.volume)
        grow = size - (info.size or 0)
        if info.free_bytes is not None and grow > info.free_bytes:
            found.append(
                Problem(
                    "size",
                    "no_disk_space",
                    f"{server} has {format_size(info.free_bytes)} free for {inst.volume}, "
                    f"but growing it to {format_size(size)} needs {format_size(grow)} more; "
                    "free space there or give a smaller size.",
                )
            )
    waiting = [t.server for t in mirror.targets if t.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE]
    if waiting:
        found.append(
            Problem(
                "tag",
                "waiting_copy",
                f"The copy of {tag} on {', '.join(waiting)} waits for the previous source: "
                "bring the hierarchy back in service (or Force Online) before resizing.",
            )
        )
    return found


def _servers(h: Hierarchy, mirror: Mirror) -> list[str]:
    """The targets first, then the source."""
    return [*(t.server for t in mirror.targets), mirror.source]


def check(cluster: Cluster, facts: Facts, request: ResizeRequest) -> ResizeTarget:
    found = problems(cluster, facts, request)
    if found:
        raise CheckFailed(found)
    located = find(cluster, request.tag)
    assert not isinstance(located, Problem)
    h, mirror = located
    size = parse_size(request.size)
    assert size is not None
    return ResizeTarget(h, mirror, h.tag_of(mirror.resource_id), size)


def steps(cluster: Cluster, facts: Facts, request: ResizeRequest) -> tuple[Step, ...]:
    """The targets' volumes, then the source's, then every bitmap file, then the mirror's
    size in the store, then the resyncs of the new space."""
    t = check(cluster, facts, request)
    h, m = t.hierarchy, t.mirror
    rid = m.resource_id
    found: list[Step] = []
    resyncing = tuple((rid, x.server) for x in m.targets if x.state is MirrorState.RESYNCING)
    if resyncing:
        found.append(StopMirrors(resyncing, (t.tag,)))
    for server in _servers(h, m):
        inst = h.instance(rid, server)
        assert inst is not None and inst.volume
        role = "source" if server == m.source else "target"
        found.append(GrowVolume(rid, t.tag, server, inst.volume, m.volume_size, t.new_size, role))
    for server in _servers(h, m):
        inst = h.instance(rid, server)
        assert inst is not None
        if inst.bitmap_file:
            found.append(
                GrowBitmap(rid, server, inst.bitmap_file, m.volume_size, t.new_size, m.chunk_size)
            )
    # A target in sync or resyncing resyncs the new space now; a paused or stopped one
    # when it is resumed (its bits for the new space are set).
    live = (MirrorState.TARGET, MirrorState.RESYNCING)
    targets = tuple(x.server for x in m.targets if x.state in live)
    found.append(SetMirrorSize(rid, t.tag, m.volume_size, t.new_size, targets))
    found += [StartResync(rid, t.tag, m.source, server) for server in targets]
    return tuple(found)


def filesystem_note(h: Hierarchy, mirror: Mirror, grows: bool = False) -> str:
    """What the resize means for the file system on top (said at the end); ``grows``:
    the backend grows a real one with the mirror (a Pacemaker cluster)."""
    parent = h.parent(mirror.resource_id)
    if parent is None or h.kind_of(parent) is not ResourceKind.FILESYSTEM:
        return ""
    fs = h.tag_of(parent)
    if grows:
        inst = h.instance(parent, mirror.source)
        fs_type = (inst.fs_type if inst is not None else None) or "file system"
        if fs_type == "xfs":
            grown = f"then grow the xfs on it with xfs_growfs {fs} on {mirror.source}"
        else:
            grown = (
                f"its {fs_type} is checked and grown to fill it (e2fsck, resize2fs) on "
                f"{mirror.source}"
            )
        return (
            f"{h.root_tag} goes out of service while the mirror grows: the mirror restarts "
            f"at the new size on {mirror.source}, {grown}, and {h.root_tag} comes back in "
            f"service there."
        )
    return (
        f"The filesystem resource {fs} on top is a folder in the lab: it has no size, so "
        "nothing of it changes. On a real server, grow the file system on the mirror "
        "afterwards with its own tool (resize2fs, xfs_growfs) on the source."
    )


__all__ = [
    "BLOCK",
    "ResizeRequest",
    "ResizeTarget",
    "check",
    "filesystem_note",
    "find",
    "needs",
    "parse_size",
    "problems",
    "steps",
]
