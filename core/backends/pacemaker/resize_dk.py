"""Resize Mirror on Pacemaker (``core/rules/resize.py``'s steps): what each phase changes
in a CIB copy (pure), and the node work between them, which the backend does in turn.

The source's local device cannot grow under a running engine (``nbdfuse`` keeps the size
of its handshake), so the mirror grows while it is held Unpromoted, and a real file
system on it is grown offline (an ext4 online needs ``CAP_SYS_RESOURCE``; this lab's
nodes have none):

1. **hold**: the clone held Unpromoted (as Out of Service, the source recorded), the
   primitive's meta ``lk-resize="OLD NEW"`` (a copy that starts meanwhile may have either
   size; the resize is pending until step 5), and the hierarchy's group stopped; the
   backend waits until nothing of the hierarchy runs but the targets' copies;
2. **node work**: each volume grows (``grow-volume``, the targets first, then the
   source), then each bitmap file (``grow-bitmap``: the new chunks dirty for every
   target, so the source's engine resyncs exactly them); undone (``ungrow-…``) and the
   hold released if any of it fails: nothing changed;
3. **source**: the hold is released with the Promoted role preferred on the source (the
   group stays stopped); its engine reuses its grown intent log: the targets resync the
   new space;
4. **file system**: ``grow-fs`` on the source (``e2fsck -f -p``, ``resize2fs`` on the
   mirror's device, written through the engine to the targets);
5. **finish**: the parameter ``size`` is the new one, ``lk-resize`` goes, the group may
   start: the hierarchy is in service on the source again; the preference is cleared.

Each step can be made again: a resize interrupted (the console killed) leaves
``lk-resize``, and the same resize run again finishes it from step 1 (a volume or bitmap
already grown is kept; a file system already grown is left as it is), but never undoes
what an earlier run grew (its file system may have grown into it). Until then the
hierarchy's other operations are refused, saying so.

A mirror without a bitmap has no intent log to mark: its targets get a full resync once
the hierarchy is back (``full_resync`` to the engine).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker import operations_dk
from core.backends.pacemaker.cib import HierarchyConfig, Member, Refused
from core.backends.pacemaker.operations_dk import NodeWork
from core.model import ResourceKind
from core.plan import GrowBitmap, GrowVolume, SetMirrorSize, StartResync, Step, StopMirrors

STEPS = (GrowVolume, GrowBitmap, SetMirrorSize, StartResync, StopMirrors)


@dataclass(frozen=True)
class Resize:
    """One mirror's resize, as the plan's steps and the CIB say."""

    top_id: str
    tag: str  # the hierarchy's root tag
    rid: str  # the mirror's primitive
    dk_tag: str
    source: str
    old: int
    new: int
    volumes: tuple[tuple[str, str], ...]  # (node, path): the targets first, then the source
    bitmaps: tuple[tuple[str, str], ...]  # (node, path)
    targets: tuple[str, ...]  # the targets that resync the new space
    fs_id: str | None  # the Filesystem resource on the mirror (grown)
    fs_type: str
    resuming: bool = False  # an interrupted run of the same resize is finished

    @property
    def no_bitmap(self) -> bool:
        return not any(node == self.source for node, _path in self.bitmaps)

    @property
    def grows_fs(self) -> bool:
        return self.fs_id is not None and self.fs_type.startswith("ext")


def is_resize(steps: Sequence[Step]) -> bool:
    return any(isinstance(s, SetMirrorSize) for s in steps)


def _filesystem_on(h: HierarchyConfig, rid: str) -> Member | None:
    device = names.device(rid)
    return next(
        (m for m in h.members if m.kind is ResourceKind.FILESYSTEM and m.param("device") == device),
        None,
    )


def of(cib: ET.Element, steps: Sequence[Step], promoted: Mapping[str, Sequence[str]]) -> Resize:
    """The resize the plan asks for (Refused, with the reason, when it cannot be done)."""
    others = [s for s in steps if not isinstance(s, STEPS)]
    if others:
        raise Refused(f"a resize plan does not {others[0].title}")
    [size] = [s for s in steps if isinstance(s, SetMirrorSize)]
    h = cibxml.hierarchy_of(cib, size.resource_id)
    dk = operations_dk.mirror_member(h)
    grows = [s for s in steps if isinstance(s, GrowVolume)]
    sources = [s.server for s in grows if s.role == "source"]
    if len(sources) != 1:
        raise Refused(f"a resize grows one source's volume, not {len(sources)}")
    source = sources[0]
    pending = dict(dk.meta).get(names.RESIZE_META, "")
    resuming = pending == f"{size.old_size} {size.new_size}"
    if pending and not resuming:
        raise Refused(pending_message(dk))
    if not resuming and tuple(promoted.get(dk.xml_id, ())) != (source,):
        raise Refused(
            f"{h.root.tag} is not in service on {source}: bring it in service there first "
            "(on a Pacemaker cluster the mirror grows from its running source)"
        )
    if int(dk.param("size") or 0) not in (0, size.old_size):
        raise Refused(f"{dk.tag} is {dk.param('size')} bytes, not {size.old_size}: reload")
    fs = _filesystem_on(h, dk.xml_id)
    return Resize(
        top_id=h.top_id,
        tag=h.root.tag,
        rid=dk.xml_id,
        dk_tag=dk.tag,
        source=source,
        old=size.old_size,
        new=size.new_size,
        volumes=tuple((s.server, s.path) for s in grows),
        bitmaps=tuple((s.server, s.path) for s in steps if isinstance(s, GrowBitmap)),
        targets=size.targets,
        fs_id=fs.xml_id if fs is not None else None,
        fs_type=fs.param("fstype") if fs is not None else "",
        resuming=resuming,
    )


def pending_message(dk: Member) -> str:
    """What to do about a resize of ``dk`` that did not finish (the console stopped)."""
    old, _, new = dict(dk.meta).get(names.RESIZE_META, "").partition(" ")
    return (
        f"a resize of {dk.tag} from {old} to {new} bytes did not finish: run `lkctl mirror "
        f"resize {dk.tag} --size {new}` again to finish it"
    )


def refuse_if_pending(h: HierarchyConfig) -> None:
    """Refused while a resize of ``h``'s mirror is pending (see the module docstring)."""
    for m in h.members:
        if m.kind is ResourceKind.DATAKEEPER and dict(m.meta).get(names.RESIZE_META):
            raise Refused(pending_message(m))


def _h(work: ET.Element, r: Resize) -> HierarchyConfig:
    found = next((h for h in cibxml.hierarchies(work) if h.top_id == r.top_id), None)
    if found is None:
        raise Refused(f"{r.tag} is no longer in the cluster's configuration; reload")
    return found


def hold(work: ET.Element, r: Resize) -> None:
    """Step 1: the mirror held Unpromoted, its sizes recorded, the group stopped."""
    operations_dk.hold_sources(work, _h(work, r), True, r.source)
    cibxml.set_meta(work, r.rid, names.RESIZE_META, f"{r.old} {r.new}")
    cibxml.set_stopped(work, r.top_id, True)


def node_work(r: Resize) -> list[NodeWork]:
    """Step 2: every volume (the targets first), then every bitmap file."""
    return [
        *(NodeWork("grow-volume", node, r.rid, path=path, size=r.new, old_size=r.old)
          for node, path in r.volumes),
        *(NodeWork("grow-bitmap", node, r.rid, path=path, size=r.new, old_size=r.old)
          for node, path in r.bitmaps),
    ]  # fmt: skip


def source_back(work: ET.Element, r: Resize) -> None:
    """Step 3: the source comes back, the group still stopped (its file system grows)."""
    operations_dk.hold_sources(work, _h(work, r), False, r.source)


def finish(work: ET.Element, r: Resize) -> None:
    """Step 5: the mirror is the new size; the hierarchy comes back in service."""
    cibxml.set_param(work, r.rid, "size", str(r.new))
    cibxml.set_meta(work, r.rid, names.RESIZE_META, None)
    cibxml.set_stopped(work, r.top_id, False)


def abandon(work: ET.Element, r: Resize) -> None:
    """Step 1 undone (the resize did not commit): everything as it was."""
    cibxml.set_meta(work, r.rid, names.RESIZE_META, None)
    operations_dk.hold_sources(work, _h(work, r), False)  # its scores promote it again
    cibxml.set_stopped(work, r.top_id, False)


__all__ = ["STEPS", "Resize", "abandon", "finish", "hold", "is_resize", "node_work", "of",
           "pending_message", "refuse_if_pending", "source_back"]  # fmt: skip
