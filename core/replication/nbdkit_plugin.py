"""nbdkit's Python plugin that hosts the mirror engine on the source (see :mod:`.hosted`).

    nbdkit -f -P PIDFILE -U SOCKET python /path/to/core/replication/nbdkit_plugin.py \\
        config=/path/to/engine.json

nbdkit's embedded interpreter is the system ``python3``; this file puts the project's
directory on ``sys.path`` (two levels above it) and imports the engine from there, so it
runs from a checkout as it is. nbdkit calls the functions below; each request goes to the
:class:`~core.replication.hosted.HostedEngine` (reads from the source, writes through
the mirror, flush = durable on the source and every in-sync synchronous target, FUA
honoured). Requests run in parallel (``THREAD_MODEL_PARALLEL``): the engine's chunk locks
order writes to the same chunk, the rest proceeds at once. Multi-conn is safe: a flush
covers every write that completed, on any connection. A failed request is answered
with its errno (``EIO`` when it has none) and the error is logged to nbdkit's stderr.
"""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_PROJECT = str(Path(__file__).resolve().parents[2])
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)

from core.errors import LkError  # noqa: E402
from core.replication.hosted import EngineConfig, HostedEngine  # noqa: E402

API_VERSION = 2


def _nbdkit() -> ModuleType:
    """nbdkit's own module: it exists only inside nbdkit (imported when called, so this
    file also imports, for checks, in any interpreter)."""
    import nbdkit  # type: ignore[import-not-found]  # only inside nbdkit

    module: ModuleType = nbdkit
    return module


_config: dict[str, str] = {}
_engine: HostedEngine | None = None


def config(key: str, value: str) -> None:
    if key != "config":
        raise LkError(f"unknown parameter {key}={value} (this plugin takes config=FILE)")
    _config["config"] = value


def config_complete() -> None:
    if "config" not in _config:
        raise LkError("missing config=FILE (the engine's JSON configuration)")
    EngineConfig.load(_config["config"])  # fail now, with the reason, not at the first client


def thread_model() -> int:
    return int(_nbdkit().THREAD_MODEL_PARALLEL)


def after_fork() -> None:
    """Start the engine (threads must start after nbdkit's fork, if it forks)."""
    global _engine
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="lkdr-engine: %(levelname)s %(message)s"
    )
    _engine = HostedEngine(EngineConfig.load(_config["config"]))


def cleanup() -> None:
    global _engine
    if _engine is not None:
        engine, _engine = _engine, None
        engine.close()


def _get() -> HostedEngine:
    if _engine is None:
        _nbdkit().set_error(errno.EIO)
        raise LkError("the engine is not running")
    return _engine


def open(readonly: bool) -> int:  # nbdkit's callback name
    _get()
    return 1


def get_size(h: int) -> int:
    return _get().size


def can_write(h: int) -> bool:
    return True


def can_flush(h: int) -> bool:
    return True


def can_fua(h: int) -> int:
    return int(_nbdkit().FUA_NATIVE)


def can_multi_conn(h: int) -> bool:
    return True


def can_trim(h: int) -> bool:
    return False


def can_zero(h: int) -> bool:
    return False


def is_rotational(h: int) -> bool:
    return False


def _fail(exc: BaseException, what: str) -> None:
    err = getattr(exc, "errno", None)
    _nbdkit().set_error(err if isinstance(err, int) and err > 0 else errno.EIO)
    logging.getLogger("lkdr-engine").error("%s failed: %s", what, exc)


def pread(h: int, buf: Any, offset: int, flags: int) -> None:
    try:
        _get().pread(buf, offset)
    except (OSError, LkError) as exc:
        _fail(exc, f"read of {len(buf)} bytes at {offset}")
        raise


def pwrite(h: int, buf: Any, offset: int, flags: int) -> None:
    try:
        _get().pwrite(buf, offset, fua=bool(flags & _nbdkit().FLAG_FUA))
    except (OSError, LkError) as exc:
        _fail(exc, f"write of {len(buf)} bytes at {offset}")
        raise


def flush(h: int, flags: int) -> None:
    try:
        _get().flush()
    except (OSError, LkError) as exc:
        _fail(exc, "flush")
        raise
