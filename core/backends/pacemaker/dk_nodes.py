"""The node work of DataKeeper operations (``operations_dk.NodeWork``), done through the
backend's runner with the agent's admin commands (``dk_admin.py``):

- before the CIB change is pushed: a target's volume (made when missing; one of another
  size is refused) and the mirror's key, carried from the source to the target in this
  process's memory only (``key-get``'s output is never logged, ``key-put`` reads it on
  standard input); for a new mirror its volume (``make-disk``), its file system
  (``mkfs``), its key (``key-new``) and its first copy's generation (a ``command``);
- undone (:func:`undo`, newest first) when the operation fails before it is done: a
  volume made goes (``remove-disk``), a key made is forgotten, an attribute set cleared;
- Resize Mirror (``resize_dk.py``, between its phases): each volume grows
  (``grow-volume``), each bitmap file (``grow-bitmap``; undone with ``ungrow-…``), and
  the file system on the source's device (``grow-fs``);
- after the push (:func:`do_after`, best effort: the change is made, a failure is a
  warning saying what to run by hand): a node leaves the mirror (``forget``: its key and
  record; the volume stays), a bitmap file goes (``remove-file``), the mirror's node
  attributes are cleared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from core.backends.pacemaker.dk_names import AGENT_IN_NODE
from core.backends.pacemaker.operations_dk import NodeWork, inverse
from core.backends.pacemaker.oplog import OperationLog
from core.errors import LkError, OperationError

Run = Callable[..., Any]  # PacemakerBackend._run


def _admin(*args: str) -> list[str]:
    return [AGENT_IN_NODE, "admin", *args]


def _volume(run: Run, work: NodeWork, out: OperationLog) -> None:
    listed = run(_admin("volumes"), node=work.node, what=f"listing the volumes of {work.node}")
    have = next((v for v in json.loads(listed.stdout) if v.get("path") == work.path), None)
    if have is None:
        run(_admin("make-disk", work.path, str(work.size)), node=work.node,
            what=f"creating {work.path} on {work.node}")  # fmt: skip
        out.say("INFO", f"{work.path} created on {work.node} ({work.size} bytes)")
    elif int(have.get("size", 0)) != work.size:
        raise OperationError(
            f"{work.path} on {work.node} has {have.get('size')} bytes, the mirror {work.size}: "
            "choose another volume or remove that one"
        )
    else:
        out.say("INFO", f"{work.path} on {work.node} is kept (its content will be overwritten)")


def _key(run: Run, work: NodeWork, out: OperationLog) -> None:
    key = run(_admin("key-get", work.rid), node=work.source,
              what=f"reading the mirror's key on {work.source}")  # fmt: skip
    run(_admin("key-put", work.rid), node=work.node, input_text=key.stdout,
        what=f"giving {work.node} the mirror's key")  # fmt: skip
    out.say("INFO", f"{work.node} has the mirror's key of {work.rid} from {work.source} (0600)")


def _make_disk(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("make-disk", work.path, str(work.size)), node=work.node,
        what=f"creating {work.path} on {work.node}")  # fmt: skip
    out.say("INFO", f"{work.path} created on {work.node} ({work.size} bytes)")


def _mkfs(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("mkfs", work.path, work.fs_type), node=work.node, timeout=300,
        what=f"making an {work.fs_type} file system on {work.path} on {work.node}")  # fmt: skip
    out.say("INFO", f"{work.path} on {work.node} has a new {work.fs_type} file system")


def _key_new(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("key-new", work.rid), node=work.node,
        what=f"making the key of {work.rid} on {work.node}")  # fmt: skip
    out.say("INFO", f"{work.node} has a new key for {work.rid} (mode 0600)")


def _command(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(list(work.argv), what=f"{work.argv[0]} for {work.rid} ({work.node})")


def _forget(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("forget", work.rid), node=work.node, timeout=90,  # it waits for a stop
        what=f"forgetting {work.rid} on {work.node}")  # fmt: skip
    out.say("INFO", f"{work.node} forgot the mirror {work.rid}: its key and record are gone")


def _remove_file(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("remove-file", work.path), node=work.node,
        what=f"removing {work.path} on {work.node}")  # fmt: skip
    out.say("INFO", f"{work.path} removed on {work.node}")


def _remove_disk(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("remove-disk", work.path), node=work.node,
        what=f"removing {work.path} on {work.node}")  # fmt: skip
    out.say("INFO", f"{work.path} removed again on {work.node}")


def _grow_volume(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("grow-volume", work.path, str(work.size)), node=work.node,
        what=f"growing {work.path} on {work.node}")  # fmt: skip
    out.say("INFO", f"{work.path} on {work.node} grew from {work.old_size} to {work.size} bytes")


def _ungrow_volume(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("ungrow-volume", work.path, str(work.old_size), str(work.size)), node=work.node,
        what=f"shrinking {work.path} on {work.node} back")  # fmt: skip
    out.say("INFO", f"{work.path} on {work.node} is {work.old_size} bytes again")


def _grow_bitmap(run: Run, work: NodeWork, out: OperationLog) -> None:
    done = run(_admin("grow-bitmap", work.path, str(work.size)), node=work.node,
               what=f"growing the bitmap {work.path} on {work.node}")  # fmt: skip
    if json.loads(done.stdout).get("old") is None:
        out.say("INFO", f"{work.node} has no bitmap file yet (it is made at the new size "
                "when that copy becomes a source)")  # fmt: skip
        return
    out.say("INFO", f"the bitmap {work.path} on {work.node} covers {work.size} bytes: the "
            "new space is dirty for every target")  # fmt: skip


def _ungrow_bitmap(run: Run, work: NodeWork, out: OperationLog) -> None:
    run(_admin("ungrow-bitmap", work.path, str(work.old_size)), node=work.node,
        what=f"shrinking the bitmap {work.path} on {work.node} back")  # fmt: skip
    out.say("INFO", f"the bitmap {work.path} on {work.node} covers {work.old_size} bytes again")


def _grow_fs(run: Run, work: NodeWork, out: OperationLog) -> None:
    done = run(_admin("grow-fs", work.rid), node=work.node, timeout=3600,
               what=f"growing the file system on {work.rid}'s device on {work.node}")  # fmt: skip
    grown = json.loads(done.stdout)
    out.say("INFO", f"the {grown.get('fs')} file system on {work.rid} was checked and grown to "
            f"{grown.get('size')} bytes on {work.node} (e2fsck, resize2fs)")  # fmt: skip


# A grow that failed may have been made all the same (its node died after the change,
# before it answered: exit -9), and its undo is safe where it was not (``ungrow-volume``
# shrinks only a volume of the grown size, ``ungrow-bitmap`` one that covers more): it is
# undone as soon as it was tried.
UNDONE_IF_TRIED = frozenset({"grow-volume", "grow-bitmap"})

KINDS: dict[str, Callable[[Run, NodeWork, OperationLog], None]] = {
    "volume": _volume,
    "key": _key,
    "make-disk": _make_disk,
    "mkfs": _mkfs,
    "key-new": _key_new,
    "command": _command,
    "forget": _forget,
    "remove-file": _remove_file,
    "remove-disk": _remove_disk,
    "grow-volume": _grow_volume,
    "ungrow-volume": _ungrow_volume,
    "grow-bitmap": _grow_bitmap,
    "ungrow-bitmap": _ungrow_bitmap,
    "grow-fs": _grow_fs,
}


def do(
    run: Run, works: Sequence[NodeWork], out: OperationLog, done: list[NodeWork] | None = None
) -> None:
    """Each of ``works`` in turn (each one finished is appended to ``done``; a grow as
    soon as it is tried, see :data:`UNDONE_IF_TRIED`)."""
    for work in works:
        handler = KINDS.get(work.kind)
        if handler is None:
            raise OperationError(f"unknown node work {work.kind}")
        tried = work.kind in UNDONE_IF_TRIED
        if done is not None and tried:
            done.append(work)
        handler(run, work, out)
        if done is not None and not tried:
            done.append(work)


def do_after(run: Run, works: Sequence[NodeWork], out: OperationLog) -> None:
    """``works`` after the change was pushed: each is tried; a failure is a warning."""
    for work in works:
        try:
            do(run, [work], out)
        except LkError as exc:  # failed, or its node unreachable (down)
            out.say("WARNING", f"{exc}: the cluster's configuration is changed; do it by hand")


def undo(run: Run, done: Sequence[NodeWork], out: OperationLog) -> list[NodeWork]:
    """Undo what ``done`` made (newest first), as far as it can be; what could not be."""
    failed = []
    for made in reversed(done):
        work = inverse(made)
        if work is None:
            continue
        try:
            do(run, [work], out)
        except LkError as exc:  # failed, or its node unreachable (down)
            out.say("WARNING", f"could not undo on {work.node}: {exc}")
            failed.append(work)
    return failed


__all__ = ["KINDS", "UNDONE_IF_TRIED", "do", "do_after", "undo"]
