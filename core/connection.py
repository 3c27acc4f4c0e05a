"""The one place that turns a cluster spec into a :class:`~core.backend.Backend`.

Specs (like keyring's backends, each kind says what it needs when it cannot be used):

- ``lab`` (the default): the embedded lab cluster of ``$LKCONSOLE_HOME`` (or the user's
  data directory);
- ``lab:/path/to/home``: the lab whose data directory is that folder (several labs side
  by side);
- ``pacemaker``: the Corosync + Pacemaker cluster this machine is a node of;
- ``pacemaker-lab``: the namespace lab of Pacemaker nodes on this machine (``lkctl lab up
  --engine pacemaker``);
- ``ssh://[user@]host[:port]``: a node of a real Pacemaker cluster, over OpenSSH.

A host whose SSH key is not trusted yet raises :class:`~core.errors.UnknownHostKey`: the
console shows its fingerprints and, after the user's yes, calls ``trust()`` and opens again.

``LKCONSOLE_CLUSTER`` names the spec when none is given (``lkctl --cluster SPEC`` and
File › Connect give one). Opening a backend may take a while (the lab finishes what a
crashed process left): the console does it off the GUI thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from core import paths
from core.backend import Backend
from core.errors import LkError, UnknownHostKey

ENV = "LKCONSOLE_CLUSTER"
DEFAULT = "lab"
KINDS = ("lab", "lab:/path/to/home", "pacemaker", "pacemaker-lab", "ssh://[user@]host[:port]")


class UnknownCluster(LkError):
    """A spec that names no kind of cluster this console knows."""


def default_spec() -> str:
    """The spec ``LKCONSOLE_CLUSTER`` names, else the lab."""
    return os.environ.get(ENV, "").strip() or DEFAULT


def short_name(spec: str) -> str:
    """The cluster's name in the console's sentences ("the {name} cluster")."""
    if spec.startswith("lab:"):
        return f"lab ({spec[4:]})"
    return spec


def describe(spec: str) -> str:
    """What the console calls the cluster of ``spec`` ("the lab cluster", ...)."""
    return f"the {short_name(spec)} cluster"


def open(spec: str | None = None) -> Backend:
    """The backend of ``spec`` (default: :func:`default_spec`), opened and ready."""
    spec = (spec or default_spec()).strip()
    if spec == DEFAULT:
        from core.backends.lab import LabBackend

        return LabBackend(paths.data_dir(), name=spec)
    if spec.startswith("lab:"):
        folder = spec[4:].strip()
        if not folder or not os.path.isabs(os.path.expanduser(folder)):
            raise UnknownCluster(
                f"cluster {spec!r}: give the lab's data directory as an absolute path, e.g. "
                "lab:/srv/labs/one"
            )
        from core.backends.lab import LabBackend

        return LabBackend(Path(folder).expanduser(), name=spec)
    if spec in ("pacemaker", "pacemaker-lab") or spec.startswith("ssh://"):
        return _pacemaker(spec)
    raise UnknownCluster(
        f"unknown cluster {spec!r}: the known kinds are {', '.join(KINDS)} (set {ENV} or --cluster)"
    )


def _pacemaker(spec: str) -> Backend:
    from core.backends.pacemaker import connection as pcmk

    home = paths.data_dir()
    try:
        return pcmk.connect(spec, home)
    except pcmk.HostKeyUnknown as exc:
        shown = exc
        raise UnknownHostKey(str(exc), lambda: pcmk.trust_host(home, shown)) from exc
