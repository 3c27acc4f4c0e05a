"""A private control channel into a running engine: a Unix socket in the node's run dir.

The engine hosted in nbdkit (:mod:`.hosted`) cannot be reached through nbdkit: pausing,
resuming, a full resync, the speed limit, a verify, a target that joins or leaves, all
go through this channel instead. The engine listens on a socket file
(``RUN_DIR/control.sock``); only its owner can use it:

* the socket is created with mode 0600 inside a folder of mode 0700 (the kernel checks
  write permission on the socket file for ``connect``): authentication by file
  permissions, as a Unix daemon's control socket is;
* the engine also checks the peer's credentials (``SO_PEERCRED``): its own uid, or root.

One request per connection: a JSON object on one line (``{"op": "pause", "target":
"lab2"}``), one JSON answer on one line: ``{"ok": true, ...}``, or ``{"ok": false,
"error": "..."}`` with the engine's own words. The channel carries no secret (key files
are named by path in the engine's configuration, never sent).

Standard library only: the agent that calls it runs under the system ``python3``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import LkError

__all__ = ["ControlError", "ControlServer", "request"]

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024  # bytes of one request line
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlError(LkError):
    """The engine could not be asked (not running, refused) or said no (its message)."""


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    """Serve ``handler`` on the Unix socket ``path`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], handler: Handler) -> None:
        self.path = Path(path)
        self._handler = handler
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        self.path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # the socket file is made 0600 by bind()
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(old)
        self.path.chmod(0o600)
        self._sock.listen(16)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop, name="engine-control", daemon=True
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            threading.Thread(
                target=self._serve, args=(conn,), name="engine-control-request", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                uid = _peer_uid(conn)
                if uid not in (0, os.getuid()):
                    self._answer(conn, {"ok": False, "error": f"uid {uid} may not control it"})
                    return
                line = _read_line(conn)
                req = json.loads(line)
                if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                    raise ValueError("a request is a JSON object with an op")
            except (OSError, ValueError) as exc:
                with contextlib.suppress(OSError):
                    self._answer(conn, {"ok": False, "error": f"bad request: {exc}"})
                return
            try:
                answer = {"ok": True, **self._handler(req)}
            except LkError as exc:
                answer = {"ok": False, "error": str(exc)}
            except Exception as exc:  # reported to the caller, logged here: never silent
                log.exception("control request %s failed", req.get("op"))
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(OSError):
                self._answer(conn, answer)

    @staticmethod
    def _answer(conn: socket.socket, answer: dict[str, Any]) -> None:
        conn.sendall(json.dumps(answer, default=str).encode() + b"\n")

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def _read_line(conn: socket.socket) -> str:
    data = bytearray()
    while not data.endswith(b"\n"):
        piece = conn.recv(65536)
        if not piece:
            break
        data += piece
        if len(data) > MAX_REQUEST:
            raise ValueError(f"longer than {MAX_REQUEST} bytes")
    return data.decode()


def request(
    path: str | os.PathLike[str], op: str, *, timeout: float = 30.0, **fields: Any
) -> dict[str, Any]:
    """Ask the engine listening on ``path`` to do ``op``; its answer (without ``ok``).

    Raises :class:`ControlError` when no engine listens there, when it does not answer
    within ``timeout`` seconds, or with the engine's message when it refused."""
    where = Path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(where))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"no engine is running (nothing listens on {where})") from None
        except PermissionError:
            raise ControlError(f"{where}: permission denied (only root may control it)") from None
        sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        line = _read_line(sock)
    except TimeoutError:
        raise ControlError(f"the engine did not answer {op} within {timeout:g} s") from None
    except OSError as exc:
        raise ControlError(f"asking the engine ({where}) failed: {exc}") from exc
    finally:
        sock.close()
    if not line.strip():
        raise ControlError(f"the engine closed the connection without answering {op}")
    answer = json.loads(line)
    if not answer.pop("ok", False):
        raise ControlError(str(answer.get("error", "refused")))
    return dict(answer)
