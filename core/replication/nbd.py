"""A target's volume on another machine, over NBD, with a deadline on every remote call.

The target node serves its volume with ``nbdkit file VOLUME`` (see :mod:`.nbdkit`),
TLS required, authenticated by a pre-shared key per mirror. :class:`NbdVolume` is the
engine's client: a :class:`~core.replication.target.TargetVolume`, so the mirror's write
path, the resync and the verify work over it unchanged.

**Where it runs.** libnbd's Python bindings exist only as Debian's ``python3-libnbd``
for the system interpreter (``/usr/bin/python3``); no pip package provides them (PyPI's
``nbd`` is an unrelated project). The engine process that talks NBD therefore runs under
the system ``python3`` (``/usr/bin/python3 -m core.replication.resync ...`` with the
project directory as the working directory or on ``PYTHONPATH``), or inside nbdkit's
embedded Python, which is the same interpreter (:mod:`.nbdkit_plugin`). Everything in
``core.replication`` imports only the standard library, so it runs there as it is;
``import nbd`` happens in one place, :func:`load_libnbd`, on first use, and raises
:class:`NbdUnavailable` (what to install, under which interpreter) where it is missing.

**Deadlines.** No blocking libnbd call is ever made: a stalled server (``SIGSTOP`` of its
nbdkit, a cut link) would block it forever. Each connection of an :class:`NbdVolume` is
one libnbd handle and one I/O thread, driven with the *aio* API: callers issue
``aio_pwrite``/``aio_pread``/``aio_flush`` (non-blocking) and send what the socket takes
at once (libnbd sends one 16 KiB TLS record per call: the caller loops); the resync's
write-behind leaves the sending to the I/O thread instead, so that the next read of the
source overlaps it. A caller waiting for its reply *drives* the socket itself (polls it,
tells libnbd, until its request is answered): no hand-over from another thread on the
path of a synchronous write (measured: a 4 KiB write + flush over TLS took 500 us with
the I/O thread reading every reply, 280-340 us driven by the waiter; libnbd's blocking
calls, 210-250 us). One waiter drives at a time; the others wait for their request's
event; a reply that another thread's libnbd call read wakes the driver's poll. The I/O
thread ``poll``s an eventfd, with a timeout of the earliest deadline in flight, and the
socket while it connects, when requests in flight have no driver, and when libnbd has
data to send. An idle connection's socket is looked at by :attr:`NbdVolume.lost` (a
server that closed it). Calls into libnbd's ``aio_notify_*`` are made under one lock
with the check of its direction (libnbd refuses an event its state does not expect).
A read is notified only when the socket has something to read at that moment: in the
middle of a send, libnbd takes a read notification as the cue to pause the send and
read a reply, and with nothing to read it stays there (READ only, the request half
sent: seen as a write with no reply within its deadline). Every request gets ``deadline``
seconds (10 by default) from its issue; when one passes unanswered, or the connection
breaks, the connection is dropped at once: the handle is closed, every request in flight
fails with an ``OSError`` (``ETIMEDOUT``, ``ECONNRESET``, ...) whose message names the
address and what happened, and :attr:`NbdVolume.lost` is True; every later call fails at
once. The mirror then marks the target Out of Sync with that reason (its chunks stay
dirty in the bitmap), and reconnects later (a new :class:`NbdVolume`, see
:meth:`NbdEndpoint.open_volume`). Connecting has its own deadline (``connect_deadline``).

**Ciphers.** GnuTLS 3.7 (Debian 12) negotiates ChaCha20-Poly1305 even where the CPU has
AES instructions, and AES-GCM is then about twice as fast (``nbdcopy`` over a veth pair:
1 GiB in 4.3-5.0 s with ChaCha20, 1.8-2.3 s with AES-128-GCM). Where ``/proc/cpuinfo``
shows ``aes``, :func:`tls_environment` points GnuTLS's system priority file
(``GNUTLS_SYSTEM_PRIORITY_FILE``) at ``gnutls-aes.conf``, which disables ChaCha20 (AES-GCM
remains, authenticated encryption either way); :func:`load_libnbd` sets it in this
process before libnbd (and GnuTLS) load, and :mod:`.nbdkit` starts nbdkit with it, so a
target refuses ChaCha20 to any client. An explicit ``GNUTLS_SYSTEM_PRIORITY_FILE`` wins.

**Connections.** Where the server advertises multi-conn (nbdkit's file plugin does: a
flush then covers the writes completed on every connection), a volume opens
``connections`` (2 by default) connections at once and spreads its requests over them
(round robin); a flush is sent on one. When one connection is lost, all are dropped.
Without multi-conn, one connection.

**Requests.** Writes larger than ``MAX_REQUEST`` are split. A durable write is sent with
the FUA flag when the server supports it (nbdkit's file plugin does: it ``fdatasync``\\ s
before replying), else as a write then a flush. Writes that overlap a write in flight
wait for it, so they land in order (NBD servers may reorder requests in flight).
``copy_from`` (the resync's copy) keeps up to ``WRITE_BEHIND_REQUESTS`` writes of the
source's bytes in flight (``WRITE_BEHIND_BYTES`` at most: many small ones for scattered
chunks, a few large ones for long runs); their errors are raised by the
next ``copy_from`` or ``flush``. ``flush`` waits for the writes issued before it, then
sends an NBD flush (which covers completed writes only). Holes are never reported (the
resync and the verify then copy and compare everything they are asked to).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from core.errors import LkError
from core.replication.target import Done, PendingIO
from core.replication.volume import Volume, VolumeError, VolumeRangeError

__all__ = [
    "DEFAULT_CONNECT_DEADLINE",
    "DEFAULT_DEADLINE",
    "DEFAULT_PORT",
    "DEFAULT_PSK_USER",
    "MAX_REQUEST",
    "NbdEndpoint",
    "NbdError",
    "NbdIOError",
    "NbdUnavailable",
    "NbdVolume",
    "cpu_has_aes",
    "libnbd_available",
    "load_libnbd",
    "tls_environment",
]

DEFAULT_PORT = 10809
DEFAULT_PSK_USER = "lkmirror"
DEFAULT_DEADLINE = 10.0  # seconds for any one request
DEFAULT_CONNECT_DEADLINE = 10.0  # seconds to connect, TLS handshake and negotiation included
DEFAULT_CONNECTIONS = 2  # per volume, where the server allows multi-conn
MAX_REQUEST = 8 * 1024 * 1024  # bytes per NBD request (nbdkit accepts up to 32 MiB)
WRITE_BEHIND_REQUESTS = 64
WRITE_BEHIND_BYTES = 32 * 1024 * 1024
SEND_BURST = 1024  # aio_notify_write calls in one go, at most (see _Connection.send)
IDLE_POLL = 0.5  # seconds the I/O thread sleeps with nothing in flight
_GRACE = 1.0  # a waiter's own timeout beyond the deadline (the I/O thread enforces it)


class NbdError(VolumeError):
    """A remote target cannot be reached or used (connection, TLS, size, address)."""


class NbdUnavailable(NbdError):
    """libnbd's Python bindings are not importable by this interpreter."""


class NbdIOError(OSError, LkError):
    """A remote call failed: no reply within the deadline, a broken connection, or the
    server's error (``errno`` says which, the message names the address)."""


_libnbd: ModuleType | None = None
TLS_PRIORITY_FILE = Path(__file__).resolve().with_name("gnutls-aes.conf")


def cpu_has_aes() -> bool:
    """True when the CPU has AES instructions (``aes`` in ``/proc/cpuinfo``'s flags)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " aes" in line for line in f)
    except OSError:
        return False


def tls_environment() -> dict[str, str]:
    """What to add to the environment of a process that does the mirror's TLS (nbdkit,
    libnbd): GnuTLS's priority file without ChaCha20 where AES is fast (see the module
    docstring); nothing where the variable is set already or the CPU has no AES."""
    if "GNUTLS_SYSTEM_PRIORITY_FILE" in os.environ or not cpu_has_aes():
        return {}
    return {"GNUTLS_SYSTEM_PRIORITY_FILE": str(TLS_PRIORITY_FILE)}


def load_libnbd() -> ModuleType:
    """The ``nbd`` module (libnbd's bindings), imported once; :class:`NbdUnavailable`
    with what to do where it is missing. The one place that imports it. GnuTLS reads its
    priority file when it loads: :func:`tls_environment` is applied just before."""
    global _libnbd
    if _libnbd is None:
        added = tls_environment()
        os.environ.update(added)
        try:
            import nbd  # type: ignore[import-not-found]  # python3-libnbd: no stubs, no wheel
        except ImportError as exc:
            import sys

            for name in added:  # nothing loaded: leave the environment as it was
                del os.environ[name]
            raise NbdUnavailable(
                f"libnbd's Python bindings (module nbd) are not importable by {sys.executable}: "
                "install python3-libnbd (apt-get install python3-libnbd) and run the engine "
                "under the system interpreter, /usr/bin/python3 (no pip package provides "
                "them; PyPI's 'nbd' is another project)"
            ) from exc
        _libnbd = nbd
    return _libnbd


def libnbd_available() -> bool:
    """True when :func:`load_libnbd` works in this interpreter."""
    try:
        load_libnbd()
    except NbdUnavailable:
        return False
    return True


@dataclass(frozen=True)
class NbdEndpoint:
    """A target's NBD export: where it is, the PSK file to authenticate, the deadlines.

    The key file (``username:hexkey`` lines, mode 0600, see
    :func:`~core.replication.nbdkit.make_psk_file`) is read by libnbd itself; its path is
    the only thing here. ``owner_lock`` is a local file standing for the remote volume in
    the "one resync owns a target" lock (default: next to the key file, one per address).
    """

    host: str
    psk_file: Path
    port: int = DEFAULT_PORT
    psk_user: str = DEFAULT_PSK_USER
    export: str = ""
    deadline: float = DEFAULT_DEADLINE
    connect_deadline: float = DEFAULT_CONNECT_DEADLINE
    owner_lock: Path | None = None
    connections: int = DEFAULT_CONNECTIONS

    def __post_init__(self) -> None:
        if not self.host:
            raise NbdError("an NBD target needs a host (the target node's replication address)")
        if not 0 < self.port < 65536:
            raise NbdError(f"NBD port {self.port} is not a TCP port (1-65535)")
        if self.deadline <= 0 or self.connect_deadline <= 0:
            raise NbdError(
                f"NBD deadlines must be > 0 s (got {self.deadline}, {self.connect_deadline})"
            )

    def describe(self) -> str:
        """``nbds://user@host:port/export`` (no secret: the key stays in its file)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nbds://{quote(self.psk_user)}@{host}:{self.port}/{quote(self.export)}"

    def uri(self) -> str:
        """The NBD URI libnbd's tools take (``nbdcopy``, ``nbdinfo``): the key file's path
        as ``tls-psk-file``."""
        return f"{self.describe()}?tls-psk-file={quote(str(self.psk_file))}"

    @property
    def owner_lock_path(self) -> Path:
        if self.owner_lock is not None:
            return self.owner_lock
        safe = self.host.replace(":", "_").replace("/", "_")
        return self.psk_file.with_name(f"{self.psk_file.name}.{safe}_{self.port}.owner")

    def with_deadlines(self, deadline: float, connect_deadline: float | None = None) -> NbdEndpoint:
        connect = self.connect_deadline if connect_deadline is None else connect_deadline
        return replace(self, deadline=deadline, connect_deadline=connect)

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        deadline: float = DEFAULT_DEADLINE,
        connect_deadline: float = DEFAULT_CONNECT_DEADLINE,
        owner_lock: str | os.PathLike[str] | None = None,
    ) -> NbdEndpoint:
        """Parse ``nbds://[user@]host[:port][/export]?tls-psk-file=PATH`` (the NBD URI
        standard's syntax); plain ``nbd://`` is refused: targets require TLS."""
        parts = urlsplit(uri)
        if parts.scheme != "nbds":
            raise NbdError(
                f"{uri}: a mirror target must be an nbds:// address (TLS with a pre-shared "
                "key); plain nbd:// and Unix sockets are not accepted for targets"
            )
        query = parse_qs(parts.query)
        psk = query.get("tls-psk-file")
        if not psk:
            raise NbdError(f"{uri}: add ?tls-psk-file=PATH (the mirror's key file)")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise NbdError(f"{uri}: bad port ({exc})") from exc
        return cls(
            host=parts.hostname or "",
            port=port,
            psk_file=Path(psk[0]),
            psk_user=unquote(parts.username) if parts.username else DEFAULT_PSK_USER,
            export=unquote(parts.path[1:]) if parts.path.startswith("/") else "",
            deadline=deadline,
            connect_deadline=connect_deadline,
            owner_lock=None if owner_lock is None else Path(owner_lock),
        )

    def open_volume(self, size: int | None = None, *, readonly: bool = False) -> NbdVolume:
        """Connect (within ``connect_deadline``); :class:`NbdError` saying why not."""
        vol = NbdVolume(self, readonly=readonly)
        if size is not None and vol.size != size:
            where = self.describe()
            vol.close()
            raise NbdError(f"target volume {where} has {vol.size} bytes, the source has {size}")
        return vol


# -- the connection -------------------------------------------------------------------


class _Request:
    """One NBD command in flight; libnbd runs its completion callback in the thread that
    moved the handle's state machine (the I/O thread, a driving waiter, an issuer)."""

    __slots__ = (
        "deadline",
        "driver",
        "end",
        "errno",
        "event",
        "finished",
        "kind",
        "offset",
        "reason",
        "waker",
    )

    def __init__(self, kind: str, offset: int, length: int, deadline: float) -> None:
        self.kind = kind  # "write", "read" or "flush"
        self.offset = offset
        self.end = offset + length
        self.deadline = deadline
        self.event = threading.Event()
        self.finished = False
        self.errno = 0
        self.reason = ""
        self.driver = 0  # the thread that waits for it by driving the socket, if any
        self.waker: Callable[[], None] | None = None  # wakes that thread's poll

    def complete(self, err: int, reason: str = "") -> None:
        if self.finished:
            return
        self.finished = True
        self.errno = err
        self.reason = reason
        self.event.set()
        # libnbd runs a callback in whichever thread moves its state machine (another
        # request's aio_pwrite, the I/O thread's send): the driver's poll must wake
        waker = self.waker
        if waker is not None and threading.get_ident() != self.driver:
            waker()

    def callback(self, err: Any) -> int:
        """libnbd's completion callback: record the server's errno; 1 = retire it."""
        self.complete(int(err.value))
        return 1


class _Connection:
    """A libnbd handle, the I/O thread that polls it, and the requests in flight."""

    def __init__(self, endpoint: NbdEndpoint, where: str) -> None:
        self.lib = load_libnbd()
        self.endpoint = endpoint
        self.where = where
        self._lock = threading.Lock()
        self._notify_lock = threading.Lock()  # around libnbd's aio_notify_* (see _notify)
        self._inflight: dict[int, _Request] = {}  # id(request) -> request
        self._dead: tuple[int, str] | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._poll_until = 0.0
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._drive_wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._drive = threading.Lock()  # held by the waiter that drives the socket (wait)
        self.h: Any = self._new_handle()
        self.can_fua = False
        self.multi_conn = False
        self.size = 0
        self._thread = threading.Thread(target=self._loop, name=f"nbd-{where}", daemon=True)
        try:
            self.h.aio_connect_tcp(endpoint.host, str(endpoint.port))
        except self.lib.Error as exc:
            os.close(self._wake)
            os.close(self._drive_wake)
            self._wake = self._drive_wake = -1
            raise NbdError(f"{where}: cannot connect: {exc}") from exc
        self._connect_deadline = time.monotonic() + endpoint.connect_deadline
        self._thread.start()

    def _new_handle(self) -> Any:
        lib, ep = self.lib, self.endpoint
        h = lib.NBD()
        h.set_handle_name(f"lkdr-{ep.host}-{ep.port}")
        h.set_tls(lib.TLS_REQUIRE)
        h.set_tls_username(ep.psk_user)
        h.set_tls_psk_file(str(ep.psk_file))
        h.set_export_name(ep.export)
        return h

    # -- connecting ---------------------------------------------------------------------
    def wait_ready(self) -> None:
        """Block until negotiated (size and flags known) or :class:`NbdError` why not."""
        self._ready.wait(self.endpoint.connect_deadline + _GRACE)
        with self._lock:
            dead = self._dead
            ready = self._ready.is_set()
        if dead is not None or not ready:
            reason = dead[1] if dead is not None else "the connection did not come up"
            self.kill(errno.ETIMEDOUT, reason)
            self.join()
            raise NbdError(f"{self.where}: cannot connect: {reason}")

    # -- issuing ------------------------------------------------------------------------
    def issue(
        self,
        kind: str,
        offset: int,
        length: int,
        start: Callable[[Any, _Request], object],
        *,
        send: bool = True,
    ) -> _Request:
        """Register a request and start it with ``start(handle, request)``; a dead
        connection gives a request that failed already. With ``send`` the caller sends
        what the socket takes at once; without, the I/O thread sends what libnbd could
        not send within ``start``."""
        req = _Request(kind, offset, length, time.monotonic() + self.endpoint.deadline)
        wake = False
        with self._lock:
            dead, h = self._dead, self.h
            if dead is None and h is not None:
                self._inflight[id(req)] = req
                wake = self._poll_until > req.deadline
        if dead is not None or h is None:
            err, reason = dead or (errno.ENOTCONN, "the connection is closed")
            req.complete(err, reason)
            return req
        try:
            start(h, req)
            if send:
                wake = self.send(h) or wake
            else:  # libnbd sent what the socket took at once: the I/O thread sends the rest
                wake = wake or bool(h.aio_get_direction() & self.lib.AIO_DIRECTION_WRITE)
        except self.lib.Error as exc:
            self.kill(exc.errnum or errno.EIO, f"the request failed to start: {exc.string}")
            return req
        if wake:
            self._kick()
        return req

    def _kick(self, driver: bool = False) -> None:
        """Wake the I/O thread (its eventfd; gone once the connection is reaped), and
        with ``driver`` the waiter that drives the socket."""
        with self._lock:
            if self._wake >= 0:
                os.eventfd_write(self._wake, 1)
                if driver:
                    os.eventfd_write(self._drive_wake, 1)

    def overlapping(self, offset: int, end: int) -> _Request | None:
        """A write in flight that overlaps ``[offset, end)``, if any."""
        with self._lock:
            return next(
                (
                    r
                    for r in self._inflight.values()
                    if r.kind == "write" and not r.finished and r.offset < end and offset < r.end
                ),
                None,
            )

    def wait(self, req: _Request) -> OSError | None:
        """Wait for ``req``; its error or None. The first waiter drives the socket itself
        (:meth:`_drive_until`: no hand-over from the I/O thread for the reply); others wait
        for their request's event. The I/O thread enforces every deadline."""
        if not req.finished and self._drive.acquire(blocking=False):
            try:
                self._drive_until(req)
            finally:
                self._release_drive()
        if not req.event.wait(max(0.0, req.deadline - time.monotonic()) + _GRACE):
            self.kill(errno.ETIMEDOUT, self._timeout_reason(req))
        with self._lock:
            self._inflight.pop(id(req), None)
        if req.errno == 0:
            return None
        reason = req.reason or f"the target's {req.kind} failed: {os.strerror(req.errno)}"
        return NbdIOError(req.errno, f"{self.where}: {reason}")

    def _drive_until(self, req: _Request) -> None:
        """(``_drive`` held) poll the handle's socket in this thread, tell libnbd what it
        is ready for, until ``req`` is finished, its deadline passed or the connection
        dropped (:meth:`kill` wakes this poll through ``_drive_wake``). The I/O thread
        does not read the socket meanwhile (see :meth:`_loop`)."""
        lib = self.lib
        with self._lock:
            h = self.h
            wake = self._drive_wake
        if h is None or wake < 0 or not self._ready.is_set():
            return
        poller = select.poll()
        poller.register(wake, select.POLLIN)
        req.driver = threading.get_ident()
        req.waker = self._wake_driver
        try:
            fd = h.aio_get_fd()
            while not req.finished and self._dead is None:
                left = req.deadline - time.monotonic()
                if left <= 0:
                    self.kill(errno.ETIMEDOUT, self._timeout_reason(req))
                    return
                with self._notify_lock:
                    direction = h.aio_get_direction()
                # the reply is awaited: always POLLIN (the direction read here can be
                # another thread's aio_pwrite half-way, not what the socket will need)
                events = select.POLLIN | (
                    select.POLLOUT if direction & lib.AIO_DIRECTION_WRITE else 0
                )
                poller.register(fd, events)
                for rfd, revents in poller.poll(int(left * 1000) + 1):
                    if rfd == wake:
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(wake)
                    else:
                        self._notify(h, revents)
                self._after_poll(h)
        except lib.Error as exc:
            self.kill(exc.errnum or errno.ECONNRESET, f"connection lost: {exc.string}")

    def _wake_driver(self) -> None:
        with self._lock:
            if self._drive_wake >= 0:
                os.eventfd_write(self._drive_wake, 1)

    def check_idle(self) -> None:
        """With nothing in flight, see at once whether the server closed the connection
        (the I/O thread does not read the socket of an idle connection)."""
        with self._lock:
            h = self.h
            busy = any(not r.finished for r in self._inflight.values())
        if h is None or busy or not self._ready.is_set():
            return
        if not self._drive.acquire(blocking=False):
            return
        try:
            ready = select.poll()
            ready.register(h.aio_get_fd(), select.POLLIN)
            for _, revents in ready.poll(0):
                self._notify(h, revents)
            self._after_poll(h)
        except self.lib.Error as exc:
            self.kill(exc.errnum or errno.ECONNRESET, f"connection lost: {exc.string}")
        finally:
            self._release_drive()

    def _release_drive(self) -> None:
        """Stop driving the socket; with requests still unanswered, the I/O thread
        watches their replies again (it does not while the socket is driven)."""
        self._drive.release()
        with self._lock:
            others = any(not r.finished for r in self._inflight.values())
        if others:
            self._kick()
        self._close_fds()

    def _timeout_reason(self, req: _Request) -> str:
        return (
            f"no reply to a {req.kind} within {self.endpoint.deadline:g} s "
            "(the target stalled): connection dropped"
        )

    # -- the I/O thread -------------------------------------------------------------------
    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._wake, select.POLLIN)
        lib = self.lib
        h = self.h
        if h is not None:  # aio_connect_tcp may have negotiated all by itself already
            try:
                self._after_poll(h)
            except lib.Error as exc:
                self.kill(exc.errnum or errno.ECONNRESET, exc.string)
        del h
        while True:
            with self._lock:
                h = self.h
                if h is None or (self._stopping and not self._inflight):
                    break
                now = time.monotonic()
                if not self._ready.is_set():
                    until = self._connect_deadline
                    expired: _Request | None = None
                else:
                    expired = min(
                        (r for r in self._inflight.values() if not r.finished),
                        key=lambda r: r.deadline,
                        default=None,
                    )
                    until = expired.deadline if expired is not None else now + IDLE_POLL
                self._poll_until = until
                # the socket's replies: read here while connecting, and while requests
                # are in flight that no waiter drives (see wait); sends: whenever due
                watch_replies = not self._ready.is_set() or (
                    expired is not None and not self._drive.locked()
                )
            if until <= now:
                if expired is None:
                    reason = f"no answer within {self.endpoint.connect_deadline:g} s"
                else:
                    reason = self._timeout_reason(expired)
                self.kill(errno.ETIMEDOUT, reason)
                break
            try:
                fd, direction = h.aio_get_fd(), h.aio_get_direction()
                events = (select.POLLIN if watch_replies else 0) | (
                    select.POLLOUT if direction & lib.AIO_DIRECTION_WRITE else 0
                )
                if events:
                    poller.register(fd, events)
                else:
                    with contextlib.suppress(KeyError):
                        poller.unregister(fd)
                for rfd, revents in poller.poll(max(1, int((until - now) * 1000) + 1)):
                    if rfd == self._wake:
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(self._wake)
                    elif self._drive.locked() and self._ready.is_set():
                        self._notify(h, revents & ~(select.POLLIN | select.POLLHUP))
                    else:
                        self._notify(h, revents)
                self._after_poll(h)
            except lib.Error as exc:
                lost = "connection lost: " if self._ready.is_set() else ""
                self.kill(exc.errnum or errno.ECONNRESET, f"{lost}{exc.string}")
                break
            del h
        self._reap()

    def _notify(self, h: Any, revents: int) -> None:
        """Tell libnbd what the socket is ready for (the I/O thread, after its poll).
        libnbd refuses an event its state does not expect, and the state moves under
        other threads' calls: the check and the call are made under ``_notify_lock``."""
        lib = self.lib
        with self._notify_lock:
            direction = h.aio_get_direction()
            if revents & (select.POLLIN | select.POLLHUP | select.POLLERR):
                if direction & lib.AIO_DIRECTION_READ and self._readable(h):
                    h.aio_notify_read()
            elif revents & select.POLLOUT and direction & lib.AIO_DIRECTION_WRITE:
                self._push(h)

    @staticmethod
    def _readable(h: Any) -> bool:
        """(``_notify_lock`` held) the socket has something to read *now*: two threads
        may have seen it readable, and the first read it all. A read notification
        with nothing to read is not harmless: in the middle of a send, libnbd pauses
        the send to read a reply, and stays there (READ only, the request half sent)
        until something comes, which may be never."""
        ready = select.poll()
        ready.register(h.aio_get_fd(), select.POLLIN)
        return bool(ready.poll(0))

    def send(self, h: Any) -> bool:
        """Push what waits to be sent, from the calling thread (no hand-over to the I/O
        thread); True when some is left (the I/O thread then waits for the socket)."""
        with self._notify_lock:
            return self._push(h)

    def _push(self, h: Any) -> bool:
        """(``_notify_lock`` held) send while the socket takes it: libnbd sends one TLS
        record (16 KiB) per call. True when some is left to send."""
        write = self.lib.AIO_DIRECTION_WRITE
        writable = select.poll()
        writable.register(h.aio_get_fd(), select.POLLOUT)
        for _ in range(SEND_BURST):
            if not h.aio_get_direction() & write:
                return False
            if not writable.poll(0):
                return True
            h.aio_notify_write()
        return bool(h.aio_get_direction() & write)

    def _after_poll(self, h: Any) -> None:
        if h.aio_is_dead() or h.aio_is_closed():
            if self._stopping:
                self.kill(errno.ENOTCONN, "the connection is closed")
            elif self._ready.is_set():
                self.kill(errno.ECONNRESET, "connection lost: the server closed it")
            else:
                self.kill(errno.ECONNREFUSED, "the server closed the connection while negotiating")
            return
        if not self._ready.is_set() and h.aio_is_ready():
            self.size = int(h.get_size())
            self.can_fua = bool(h.can_fua())
            self.multi_conn = bool(h.can_multi_conn())
            self._ready.set()
        with self._lock:
            for key in [k for k, r in self._inflight.items() if r.finished]:
                del self._inflight[key]

    def _reap(self) -> None:
        """The thread's end: fail what is left and close the handle (never blocks)."""
        with self._lock:
            dead = self._dead or (errno.ENOTCONN, "the connection is closed")
            left = list(self._inflight.values())
            self._inflight.clear()
            self.h = None  # the last reference: libnbd closes the socket
        for r in left:
            r.complete(*dead)
        self._ready.set()

    def kill(self, err: int, reason: str) -> None:
        """Drop the connection now (from any thread): every request fails with ``reason``."""
        with self._lock:
            if self._dead is None:
                self._dead = (err, reason)
            left = list(self._inflight.values())
            self.h = None
        for r in left:
            r.complete(*self._dead)
        self._kick(driver=True)

    @property
    def dead(self) -> tuple[int, str] | None:
        return self._dead

    def close(self) -> None:
        """Send NBD's disconnect when idle (never waiting for the server), drop; join."""
        with self._lock:
            self._stopping = True
            h = self.h if self._dead is None and not self._inflight else None
        if h is not None and self._ready.is_set():
            with contextlib.suppress(self.lib.Error):  # dropping it does the same, less politely
                h.aio_disconnect()
        del h
        self.kill(errno.ENOTCONN, "the connection is closed")
        self.join()

    def join(self) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        self._close_fds()

    def _close_fds(self) -> None:
        """Close the eventfds once the I/O thread has ended and no waiter drives (the
        last of :meth:`join` and :meth:`_release_drive` does it)."""
        with self._lock:
            if self._wake < 0 or self._thread.is_alive() or self._drive.locked():
                return
            fds, self._wake, self._drive_wake = (self._wake, self._drive_wake), -1, -1
        for fd in fds:
            os.close(fd)


# -- the volume -------------------------------------------------------------------------


def _start_flush(h: Any, r: _Request) -> object:
    return h.aio_flush(r.callback)


def _start_read(piece: memoryview, offset: int, h: Any, r: _Request) -> object:
    return h.aio_pread(piece, offset, r.callback)


def _start_write(piece: memoryview, offset: int, flags: int, h: Any, r: _Request) -> object:
    return h.aio_pwrite(piece, offset, r.callback, flags)


class _Pending:
    """A :class:`~core.replication.target.PendingIO` over some requests; with ``then``
    a follow-up (a flush after the writes, when the server has no FUA)."""

    __slots__ = ("_reqs", "_then")

    def __init__(
        self,
        reqs: list[tuple[_Connection, _Request]],
        then: Callable[[], PendingIO] | None = None,
    ) -> None:
        self._reqs = reqs
        self._then = then

    def wait(self) -> OSError | None:
        first: OSError | None = None
        for conn, r in self._reqs:
            err = conn.wait(r)
            first = first or err
        if first is None and self._then is not None:
            return self._then().wait()
        return first


class NbdVolume:
    """A remote target volume over NBD (see the module docstring)."""

    def __init__(
        self, endpoint: NbdEndpoint, *, readonly: bool = False, connections: int | None = None
    ) -> None:
        self.endpoint = endpoint
        self._where = endpoint.describe()
        self._readonly = readonly
        self._conns: list[_Connection] = []
        try:  # the connections negotiate at the same time
            for _ in range(max(1, connections or endpoint.connections)):
                self._conns.append(_Connection(endpoint, self._where))
            for conn in self._conns:
                conn.wait_ready()
        except BaseException:
            for conn in self._conns:
                conn.close()
            raise
        if not self._conns[0].multi_conn:  # a flush would cover only its own connection
            for conn in self._conns[1:]:
                conn.close()
            del self._conns[1:]
        self._turn = itertools.count()
        self._size = self._conns[0].size
        self._can_fua = all(c.can_fua for c in self._conns)
        self._closed = False
        # copy_from's writes in flight, each with its buffer (given back, for the next
        # reads, once its write is answered: fresh 4 MiB buffers cost a page fault per
        # 4 KiB, 8 % of the engine's CPU during a full resync)
        self._behind: deque[tuple[_Connection, _Request, int, bytearray | None]] = deque()
        self._hint: _Request | None = None  # start_writeback's flush, while unanswered
        self._free: dict[int, list[bytearray]] = {}
        self._free_bytes = 0
        self._copying = False  # copy_from since the last flush
        self._behind_bytes = 0
        self._behind_error: OSError | None = None
        self._behind_lock = threading.Lock()

    def _issue(
        self,
        kind: str,
        offset: int,
        length: int,
        start: Callable[[Any, _Request], object],
        *,
        send: bool = True,
    ) -> tuple[_Connection, _Request]:
        """Start a request on the next connection (round robin); a write first waits for
        the writes in flight that overlap it, on any connection, so they land in order."""
        if kind == "write":
            end = offset + length
            for conn in self._conns:
                while (busy := conn.overlapping(offset, end)) is not None:
                    conn.wait(busy)
        conn = self._conns[next(self._turn) % len(self._conns)]
        return conn, conn.issue(kind, offset, length, start, send=send)

    # -- what it is ---------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._size

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def location(self) -> str:
        return self._where

    @property
    def owner_lock_path(self) -> Path:
        return self.endpoint.owner_lock_path

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lost(self) -> bool:
        """A connection is gone (deadline passed, server died, or closed): all are then
        dropped, and every later call fails at once."""
        for c in self._conns:
            c.check_idle()
        dead = next((c.dead for c in self._conns if c.dead is not None), None)
        if dead is not None:
            for c in self._conns:
                if c.dead is None:
                    c.kill(*dead)
        return dead is not None

    @property
    def lost_reason(self) -> str:
        dead = next((c.dead for c in self._conns if c.dead is not None), None)
        return "" if dead is None else f"{self._where}: {dead[1]}"

    def check_range(self, offset: int, size: int) -> None:
        if offset < 0 or size < 0 or offset + size > self._size:
            raise VolumeRangeError(self._where, offset, size, self._size)

    # -- reading ----------------------------------------------------------------------
    def read(self, offset: int, n: int) -> bytes:
        buf = bytearray(n)
        self.readinto(offset, buf)
        return bytes(buf)

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        self.check_range(offset, len(mv))
        reqs = []
        for a in range(0, len(mv), MAX_REQUEST):
            piece = mv[a : a + MAX_REQUEST]
            reqs.append(
                self._issue(
                    "read",
                    offset + a,
                    len(piece),
                    functools.partial(_start_read, piece, offset + a),
                )
            )
        err = _Pending(reqs).wait()
        if err is not None:
            raise err
        return len(mv)

    # -- writing ----------------------------------------------------------------------
    def _issue_writes(
        self, offset: int, mv: memoryview, fua: bool, *, send: bool = True
    ) -> list[tuple[_Connection, _Request]]:
        self.check_range(offset, len(mv))
        if self._readonly:
            raise OSError(errno.EBADF, f"{self._where}: volume is open read-only")
        flags = self._conns[0].lib.CMD_FLAG_FUA if fua else 0
        reqs = []
        for a in range(0, len(mv), MAX_REQUEST):
            piece = mv[a : a + MAX_REQUEST]
            reqs.append(
                self._issue(
                    "write",
                    offset + a,
                    len(piece),
                    functools.partial(_start_write, piece, offset + a, flags),
                    send=send,
                )
            )
        return reqs

    def begin_write(
        self, offset: int, data: bytes | bytearray | memoryview, durable: bool = False
    ) -> PendingIO:
        mv = memoryview(data).cast("B")
        if not mv:
            return Done()
        fua = durable and self._can_fua
        try:
            reqs = self._issue_writes(offset, mv, fua)
        except OSError as exc:
            return Done(exc)
        return _Pending(reqs, self.begin_flush if durable and not fua else None)

    def write(
        self, offset: int, data: bytes | bytearray | memoryview, durable: bool = False
    ) -> None:
        err = self.begin_write(offset, data, durable).wait()
        if err is not None:
            raise err

    def copy_from(self, source: Volume, offset: int, length: int) -> None:
        """Read the source here, keep its writes in flight (see the module docstring)."""
        self.check_range(offset, length)
        self._raise_behind()
        done = 0
        while done < length:
            n = min(MAX_REQUEST, length - done)
            self._make_room(n)
            buf = self._buffer(n)
            source.readinto(offset + done, buf)
            mv = memoryview(buf)
            ((conn, req),) = self._issue_writes(offset + done, mv, fua=False, send=False)
            with self._behind_lock:
                self._behind.append((conn, req, n, buf))
                self._behind_bytes += n
                self._copying = True
            done += n

    def _buffer(self, n: int) -> bytearray:
        """A buffer of ``n`` bytes: one given back by an answered write, or a new one."""
        with self._behind_lock:
            free = self._free.get(n)
            if free:
                self._free_bytes -= n
                return free.pop()
        return bytearray(n)

    def _make_room(self, n: int) -> None:
        while True:
            with self._behind_lock:
                if not self._behind or (
                    len(self._behind) < WRITE_BEHIND_REQUESTS
                    and self._behind_bytes + n <= WRITE_BEHIND_BYTES
                ):
                    break
                conn, req, buf = self._pop_behind()
            self._note_behind(conn.wait(req), buf)
        self._raise_behind()

    def _pop_behind(self) -> tuple[_Connection, _Request, bytearray | None]:
        """(``_behind_lock`` held) the oldest write-behind request, off the queue."""
        conn, req, size, buf = self._behind.popleft()
        self._behind_bytes -= size
        return conn, req, buf

    def _note_behind(self, err: OSError | None, buf: bytearray | None = None) -> None:
        """A write-behind request was answered; ``buf``, its buffer, from the one thread
        that took it off the queue: free again, unless the write failed (libnbd may
        still hold it then). At most the write-behind bound's worth is kept."""
        with self._behind_lock:
            if err is not None:
                self._behind_error = self._behind_error or err
            elif (
                buf is not None and self._free_bytes + len(buf) <= WRITE_BEHIND_BYTES + MAX_REQUEST
            ):
                self._free.setdefault(len(buf), []).append(buf)
                self._free_bytes += len(buf)

    def _raise_behind(self) -> None:
        with self._behind_lock:
            err, self._behind_error = self._behind_error, None
        if err is not None:
            raise err

    def _drain_behind(self) -> None:
        """Wait for every copy_from write issued so far (errors are kept). The buffers go
        at the first flush with no copy since the one before (the copying is over)."""
        with self._behind_lock:
            batch = list(self._behind)
            if not self._copying:
                self._free.clear()
                self._free_bytes = 0
            self._copying = False
        for conn, req, _size, _buf in batch:
            err = conn.wait(req)
            with self._behind_lock:
                mine = bool(self._behind) and self._behind[0][1] is req
                buf = self._pop_behind()[2] if mine else None
            self._note_behind(err, buf)

    def begin_flush(self) -> PendingIO:
        with self._behind_lock:
            behind = bool(self._behind) or self._behind_error is not None
        if behind:
            return Done(self._flush_error())
        return _Pending([self._flush_request()])

    def _flush_request(self) -> tuple[_Connection, _Request]:
        """One flush covers the writes completed on every connection (multi-conn: the
        volume uses several connections only where the server says so)."""
        conn = self._conns[0]
        return conn, conn.issue("flush", 0, 0, _start_flush)

    def _flush_error(self) -> OSError | None:
        try:
            self.flush()
        except OSError as exc:
            return exc
        return None

    def flush(self) -> None:
        """Every write issued before it is durable on the target (or its error)."""
        self._drain_behind()
        self._raise_behind()
        conn, req = self._flush_request()
        err = conn.wait(req)
        if err is not None:
            raise err

    def start_writeback(self, offset: int, length: int) -> None:
        """Have the target's disk write what was copied so far, while the copy goes on:
        a flush that nobody waits for, one at a time (the next hint only once it is
        answered), queued with the copies' writes (its error is kept for the next
        flush, which raises it: the target's kernel reports a writeback error once).
        Without it the target's kernel writes back only at its thresholds and the
        resync's next flush writes everything copied since the last one, while the copy
        waits: a partial resync of 10 MiB spent a quarter of its time so."""
        with self._behind_lock:
            if self._hint is not None and not self._hint.finished:
                return
        conn = self._conns[0]
        req = conn.issue("flush", 0, 0, _start_flush, send=False)
        with self._behind_lock:
            self._hint = req
            self._behind.append((conn, req, 0, None))

    def is_hole(self, offset: int, length: int) -> bool:
        """Never claims a hole (no block status round trips): the data is copied."""
        self.check_range(offset, length)
        return length <= 0

    def has_hole(self, offset: int, length: int) -> bool:
        self.check_range(offset, length)
        return False

    # -- life -------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for conn in self._conns:
                conn.close()

    def __enter__(self) -> NbdVolume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NbdVolume({self._where!r}, size={self._size})"
