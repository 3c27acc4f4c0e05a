"""The Pacemaker backend: a real Corosync + Pacemaker cluster, and its namespace lab.

``connect(spec)`` (``connection.py``) turns ``"pacemaker"``, ``"pacemaker-lab"`` or
``"ssh://[user@]host[:port]"`` into a :class:`PacemakerBackend` (``backend.py``). The
modules: ``cib`` (pure functions on CIB XML), ``status`` (crm_mon's XML → Cluster),
``operations`` (a plan's steps as one CIB change), ``runner`` (local, lab, SSH),
``hostkeys``, ``records`` (the console's history), ``watch``; ``nslab*`` the lab.

Names are imported on first use, so that ``python -m core.backends.pacemaker.nslab``
does not import the lab twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.backends.pacemaker.backend import WHAT_IF, PacemakerBackend
    from core.backends.pacemaker.connection import (
        SPECS,
        ConnectError,
        connect,
        forget_host,
        is_spec,
        trust_host,
    )
    from core.backends.pacemaker.runner import AuthRefused, HostKeyChanged, HostKeyUnknown

_WHERE = {
    "WHAT_IF": "backend",
    "PacemakerBackend": "backend",
    "SPECS": "connection",
    "ConnectError": "connection",
    "connect": "connection",
    "forget_host": "connection",
    "is_spec": "connection",
    "trust_host": "connection",
    "AuthRefused": "runner",
    "HostKeyChanged": "runner",
    "HostKeyUnknown": "runner",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "SPECS",
    "WHAT_IF",
    "AuthRefused",
    "ConnectError",
    "HostKeyChanged",
    "HostKeyUnknown",
    "PacemakerBackend",
    "connect",
    "forget_host",
    "is_spec",
    "trust_host",
]
