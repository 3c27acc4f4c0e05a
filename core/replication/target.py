"""What the mirror, the resync and the verify need of a target's volume.

A target's volume is either a local file (:class:`~core.replication.volume.Volume`, the
lab's case) or an export of another machine reached over NBD
(:class:`~core.replication.nbd.NbdVolume`). Both satisfy :class:`TargetVolume`, so
:class:`~core.replication.mirror.Mirror`, :class:`~core.replication.resync.Resync` and
:class:`~core.replication.verify.Verify` work unchanged over either. The *source* is
always a local :class:`~core.replication.volume.Volume`: the node that writes owns it.

The contract, whatever the transport:

* ``write``/``readinto`` move whole ranges or raise ``OSError`` (``errno`` and a
  ``strerror`` that says what happened where: the mirror shows it as the reason a
  target went Out of Sync). A remote volume raises ``OSError(ETIMEDOUT)`` when the other
  side does not answer within its deadline, and is *lost* from then on
  (:attr:`TargetVolume.lost`): every later call fails at once until it is reopened.
* ``begin_write``/``begin_flush`` start the work and return a :class:`PendingIO` whose
  ``wait()`` gives the error (or None) once it is done; the mirror starts every target's
  write, then flushes the source, then waits, so the targets' round trips overlap.
* ``copy_from`` may return before the target has the bytes (local: the page cache;
  remote: requests in flight); ``flush`` returns once everything written before it is
  durable on the target, and raises the error of any earlier write that failed. Writes
  to overlapping ranges land in the order they were made.
* ``is_hole``/``has_hole`` never claim a hole that is not there (a transport that cannot
  tell says "no hole" and the data is copied or compared).
* ``owner_lock_path`` names a *local* file whose byte ``OWNER_LOCK_OFFSET`` (see
  ``resync.py``) a resync, a verify or a mirror locks to own the target: the volume file
  itself for a local target, a lock file on the source node for a remote one.

:class:`TargetLocation` is how a mirror finds a remote target's volume again (after a
lost connection, for a verify's own connection); a local target is just its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeGuard

if TYPE_CHECKING:
    from core.replication.volume import Volume

__all__ = ["Done", "PendingIO", "TargetLocation", "TargetVolume", "is_local"]


class PendingIO(Protocol):
    """A write or flush started on a target; :meth:`wait` for its end."""

    def wait(self) -> OSError | None:
        """Block until the I/O ended (a remote one: at most until its deadline); its
        error, or None when it succeeded."""
        ...


class Done:
    """A :class:`PendingIO` that already ended (local I/O is done when started)."""

    __slots__ = ("error",)

    def __init__(self, error: OSError | None = None) -> None:
        self.error = error

    def wait(self) -> OSError | None:
        return self.error


class TargetVolume(Protocol):
    """A target's volume, local or remote (see the module docstring)."""

    @property
    def size(self) -> int: ...

    @property
    def readonly(self) -> bool: ...

    @property
    def location(self) -> str:
        """Where the volume is, for messages: a path or an ``nbds://`` address."""
        ...

    @property
    def owner_lock_path(self) -> Path: ...

    @property
    def closed(self) -> bool: ...

    @property
    def lost(self) -> bool:
        """True once the connection to a remote volume is gone (never for a file)."""
        ...

    @property
    def lost_reason(self) -> str:
        """Why it was lost, naming the address ("" while not lost)."""
        ...

    def check_range(self, offset: int, size: int) -> None: ...

    def read(self, offset: int, n: int) -> bytes: ...

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int: ...

    def write(
        self, offset: int, data: bytes | bytearray | memoryview, durable: bool = False
    ) -> None: ...

    def begin_write(
        self, offset: int, data: bytes | bytearray | memoryview, durable: bool = False
    ) -> PendingIO:
        """Start writing ``data`` (durably when asked); ``data`` must stay unchanged
        until ``wait()`` returned."""
        ...

    def flush(self) -> None: ...

    def begin_flush(self) -> PendingIO: ...

    def copy_from(self, source: Volume, offset: int, length: int) -> None:
        """Copy ``[offset, offset+length)`` of ``source`` to the same place here."""
        ...

    def start_writeback(self, offset: int, length: int) -> None: ...

    def is_hole(self, offset: int, length: int) -> bool: ...

    def has_hole(self, offset: int, length: int) -> bool: ...

    def close(self) -> None: ...


class TargetLocation(Protocol):
    """A remote target: how to reach its volume (:class:`~core.replication.nbd.NbdEndpoint`)."""

    def describe(self) -> str:
        """The address, for messages and statuses (no secret in it)."""
        ...

    @property
    def owner_lock_path(self) -> Path: ...

    def open_volume(self, size: int | None = None, *, readonly: bool = False) -> TargetVolume:
        """Connect; raises :class:`~core.replication.volume.VolumeError` (an
        :class:`~core.errors.LkError`) saying why when the volume cannot be used, and
        when ``size`` is given and the volume has another size."""
        ...


def is_local(spec: str | os.PathLike[str] | TargetLocation) -> TypeGuard[str | os.PathLike[str]]:
    """True for a path (a local target volume), False for a :class:`TargetLocation`."""
    return isinstance(spec, str | os.PathLike)
