"""A DataKeeper hierarchy's life on Pacemaker: create, unextend and delete, as a change
of the CIB copy (pure, dispatched by :mod:`core.backends.pacemaker.operations`) and the
node work before and after the push (:mod:`.dk_nodes` does it).

Create (``core/rules/create.py``'s steps), on the CIB of :mod:`.cib_dk`:

- ``CreateDisk``, ``MakeFileSystem``: node work before the push (``make-disk``, ``mkfs``);
  an existing volume's size is what the node says (``datakeeper admin volumes``);
- ``CreateDataKeeper``: the mirror's clone on its server (a DataKeeper-only hierarchy
  until a file system joins it); node work: its key (``key-new``) and its first copy's
  generation, both before the clone is pushed;
- ``CreateFileSystemResource``: the group on the mirror (the hierarchy's top from then
  on); ``BringNewInService`` (operations.py) checks the intent.

On a failure, what the node work made is undone (a volume made goes, the key is
forgotten, the generation cleared).

Unextend (``core/rules/hierarchy.py``): ``StopMirrors`` changes nothing in the CIB (the
source drops a target once it leaves the mirror's ``lk-servers``, which it reads live);
``RemoveMirrorTarget``: the target leaves ``lk-servers``/``lk-bitmaps`` (meta attributes:
nothing restarts on the source) and the clone may no longer run there; after the push the
node forgets the mirror (its key and record; the volume stays) and the mirror's node
attributes there are cleared; ``RemoveBitmapFile``: the file goes after the push.

Delete: the clone stops with the group and goes with it (``cib.remove_hierarchy``);
afterwards every node of the mirror forgets it. No volume is ever removed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import cib_dk, operations_dk
from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker.cib import HierarchyConfig, Refused
from core.backends.pacemaker.operations_dk import NodeWork, mirror_member
from core.model import ResourceKind
from core.plan import (
    CreateDataKeeper,
    CreateDisk,
    CreateFileSystemResource,
    MakeFileSystem,
    RemoveBitmapFile,
    RemoveMirrorTarget,
    StopMirrors,
)

if TYPE_CHECKING:
    from core.backends.pacemaker.operations import Change

Running = Mapping[str, Sequence[str]]


def _pairs(text: str, what: str) -> dict[str, str]:
    try:
        return names.parse_pairs(text)
    except ValueError as exc:
        raise Refused(f"the mirror's {what} cannot be read ({exc}): fix it with crm") from exc


# -- unextend -----------------------------------------------------------------------------
def stop_mirrors(
    work: ET.Element, step: StopMirrors, running: Running, change: Change, extended: object
) -> None:
    for rid, server in step.targets:
        dk = mirror_member(cibxml.hierarchy_of(work, rid))
        change.lines.append(f"{dk.tag}: the source stops replicating to {server} as it leaves")


def remove_mirror_target(
    work: ET.Element, step: RemoveMirrorTarget, running: Running, change: Change, extended: object
) -> None:
    h = cibxml.hierarchy_of(work, step.resource_id)
    dk = mirror_member(h)
    if step.target in operations_dk.in_service_nodes(h, running, change.promoted):
        raise Refused(
            f"{dk.tag} is the source on {step.target} ({h.root.tag} is in service there): "
            "switch it over to another server first, or delete the hierarchy"
        )
    meta = dict(dk.meta)
    servers = _pairs(meta.get(names.SERVERS_META) or dk.param("servers"), "servers")
    bitmaps = _pairs(meta.get(names.BITMAPS_META) or dk.param("bitmaps"), "bitmaps")
    if step.target not in servers:
        raise Refused(f"{step.target} is not a server of the mirror {dk.tag}")
    if len(servers) == 1:
        raise Refused(f"{step.target} is the last server of {dk.tag}: delete the hierarchy")
    bitmap = bitmaps.get(step.target, names.NO_BITMAP)
    servers.pop(step.target)
    bitmaps.pop(step.target, None)
    operations_dk.set_membership(work, dk.xml_id, names.SERVERS_META, names.format_pairs(servers))
    operations_dk.set_membership(work, dk.xml_id, names.BITMAPS_META, names.format_pairs(bitmaps))
    cibxml.remove_priority(work, names.clone_id(dk.xml_id), step.target)
    change.shrinks[dk.xml_id] = step.target
    change.after_work += operations_dk.leave_work(dk.xml_id, step.target, None)
    kept = "" if bitmap == names.NO_BITMAP else f" (its bitmap {bitmap})"
    change.lines.append(f"{dk.tag}: {step.target} leaves the mirror{kept}; its volume is kept")
    change.touch(h)


def remove_bitmap_file(
    work: ET.Element, step: RemoveBitmapFile, running: Running, change: Change, extended: object
) -> None:
    change.after_work.append(NodeWork("remove-file", step.server, "", path=step.path))
    change.lines.append(f"{step.path} on {step.server}: removed once the change is made")


# -- delete -------------------------------------------------------------------------------
def stop_mirror(work: ET.Element, h: HierarchyConfig) -> None:
    """The mirror's clone of ``h`` (if it has one beside its group) stops with it."""
    dk = next((m for m in h.members if m.kind is ResourceKind.DATAKEEPER), None)
    clone = cib_dk.clone_of(work, dk.xml_id) if dk is not None else None
    if clone is not None and clone.get("id") != h.top_id:
        cibxml.set_stopped(work, clone.get("id", ""), True)


def delete_mirror(work: ET.Element, h: HierarchyConfig, change: Change) -> None:
    """The mirror of ``h`` (if any) stops with it; every node of it forgets it after."""
    dk = next((m for m in h.members if m.kind is ResourceKind.DATAKEEPER), None)
    if dk is None:
        return
    stop_mirror(work, h)
    servers = _pairs(dict(dk.meta).get(names.SERVERS_META) or dk.param("servers"), "servers")
    for node in servers:
        change.after_work += operations_dk.leave_work(dk.xml_id, node, None)
    change.lines.append(f"{dk.tag}: forgotten on {', '.join(servers)}; the volumes are kept")


# -- create -------------------------------------------------------------------------------
def create_disk(
    work: ET.Element, step: CreateDisk, running: Running, change: Change, extended: object
) -> None:
    cibxml.check_node(work, step.server)
    change.volume_sizes[(step.server, step.path)] = step.size
    change.node_work.append(NodeWork("make-disk", step.server, "", path=step.path, size=step.size))
    change.lines.append(f"{step.path}: a new volume on {step.server} ({step.size} bytes)")


def make_file_system(
    work: ET.Element, step: MakeFileSystem, running: Running, change: Change, extended: object
) -> None:
    if (step.server, step.path) not in change.volume_sizes:
        raise Refused(f"Source Disk {step.path} is not a volume of {step.server}")
    change.node_work.append(NodeWork("mkfs", step.server, "", path=step.path, fs_type=step.fs_type))
    change.lines.append(f"{step.path} on {step.server}: a new {step.fs_type} file system")


def create_datakeeper(
    work: ET.Element, step: CreateDataKeeper, running: Running, change: Change, extended: object
) -> None:
    from core.backends.pacemaker.operations import FollowUp, Intent

    size = change.volume_sizes.get((step.server, step.volume))
    if size is None:
        raise Refused(
            f"Source Disk {step.volume} is not a volume of {step.server} (datakeeper admin "
            "volumes does not list it): choose one it lists, or a new disk"
        )
    rid = cib_dk.new_mirror(
        work, dk_tag=step.tag, volume=step.volume, size=size, server=step.server,
        addresses=change.addresses, bitmap=step.bitmap_file, port=cib_dk.next_port(work),
        switchback=step.switchback, asynchronous=step.asynchronous,
    )  # fmt: skip
    clone_id = names.clone_id(rid)
    change.made[step.key] = rid
    change.created.append(clone_id)
    change.set_intent(Intent(clone_id, step.tag, step.server, step=step.title))
    change.follow_ups.append(FollowUp("check-started", clone_id, step.tag, step.server))
    change.node_work += [
        NodeWork("key-new", step.server, rid),
        NodeWork("command", step.server, rid,
                 argv=tuple(cib_dk.first_generation(rid, step.server))),
    ]  # fmt: skip
    change.lines.append(
        f"{step.tag}: a new mirror of {step.volume} on {step.server}, priority 1 (port "
        f"{dict(cibxml.params(_primitive(work, rid)))['port']})"
    )


def create_filesystem_resource(
    work: ET.Element, step: CreateFileSystemResource, running: Running, change: Change,
    extended: object,
) -> None:  # fmt: skip
    from core.backends.pacemaker.operations import FollowUp, Intent

    rid = change.made.get(step.on)
    if rid is None:
        raise Refused(f"{step.tag} depends on a DataKeeper resource this plan does not create")
    if not step.fs_type:
        raise Refused(f"the Source Disk of {step.tag} has no file system: choose a type")
    clone_id = names.clone_id(rid)
    mirror = next(h for h in cibxml.hierarchies(work) if h.top_id == clone_id)
    group_id = cib_dk.add_filesystem(
        work, rid, fs_tag=step.tag, mount_point=step.mount_point, fs_type=step.fs_type,
        server=step.server, switchback=mirror.switchback,
    )  # fmt: skip
    change.created = [group_id if t == clone_id else t for t in change.created]
    change.intents = [i for i in change.intents if i.top_id != clone_id]
    change.touched = [t for t in change.touched if t != clone_id]
    change.follow_ups = [f for f in change.follow_ups if f.top_id != clone_id]
    change.set_intent(Intent(group_id, step.tag, step.server, step=step.title))
    change.follow_ups.append(FollowUp("check-started", group_id, step.tag, step.server))
    change.lines.append(f"{step.tag}: {step.fs_type} mounted on {step.mount_point}, on {rid}")


def _primitive(work: ET.Element, rid: str) -> ET.Element:
    found = work.find(f".//primitive[@id='{rid}']")
    assert found is not None  # just made
    return found


__all__ = [
    "create_datakeeper",
    "create_disk",
    "create_filesystem_resource",
    "delete_mirror",
    "make_file_system",
    "remove_bitmap_file",
    "remove_mirror_target",
    "stop_mirror",
    "stop_mirrors",
]
