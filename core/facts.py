"""What the rules know about the servers' disks: answers of probes, gathered beforehand.

Rules are pure (no I/O): a rule that needs to know whether a bitmap location is on btrfs,
whether a folder is writable or how much space a volume has takes :class:`Facts`, which
an operation (or a GUI worker) gathered from ``backend.probe`` / ``backend.volumes``
before the rule ran. The rules say which facts they need (``needs(...)`` in each rule
module); asking for one that was not gathered is a bug (:class:`MissingFact`), so a test
notices at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.backend import Backend

BTRFS = "btrfs"


@dataclass(frozen=True)
class PathInfo:
    """A server path as a probe found it (server paths throughout, never local ones)."""

    server: str
    path: str  # as asked
    exists: bool = False
    is_dir: bool = False
    size: int | None = None  # of an existing file
    checked: str = ""  # the nearest existing folder that was looked at (the path itself)
    fs_type: str = ""  # of ``checked``: ext4, xfs, btrfs, tmpfs, ...
    mount_point: str = ""  # where that file system is mounted
    writable: bool = False  # can a file be made in ``checked``
    free_bytes: int | None = None  # free space there
    error: str = ""  # why it could not be probed ("" when it was)

    @property
    def is_btrfs(self) -> bool:
        return self.fs_type == BTRFS


@dataclass(frozen=True)
class VolumeInfo:
    """A volume (a disk) of a server that a DataKeeper resource could replicate."""

    path: str  # server path: /disks/web.img
    size: int
    fs_label: str | None = None  # the file system on it, if any (ext4, xfs...)


@dataclass(frozen=True)
class NetworkInfo:
    """What a backend knows of a server's network, for IP resources.

    ``addresses``: the server's own addresses (an IP resource may not take one);
    ``interface``: the interface proposed for a new IP resource there; the pool
    (``pool_first`` .. ``pool_last``, with ``prefix_length``): addresses a new IP resource
    may be given by default (a lab's service network). A real cluster proposes none:
    no pool, and no interface unless it knows one."""

    server: str
    addresses: tuple[str, ...] = ()
    interface: str | None = None
    pool_first: str | None = None
    pool_last: str | None = None
    prefix_length: int | None = None

    @property
    def proposes(self) -> bool:
        return bool(self.pool_first and self.pool_last and self.prefix_length is not None)


class MissingFact(LookupError):
    """A rule asked for a fact that was not gathered first (a bug in the caller)."""


@dataclass(frozen=True)
class Needs:
    """The facts a rule needs: paths to probe, servers whose volumes to list."""

    paths: frozenset[tuple[str, str]] = frozenset()
    volumes: frozenset[str] = frozenset()
    networks: frozenset[str] = frozenset()  # servers whose network to ask about

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            self.paths | other.paths,
            self.volumes | other.volumes,
            self.networks | other.networks,
        )

    @classmethod
    def of_paths(cls, pairs: Iterable[tuple[str, str]]) -> Needs:
        return cls(paths=frozenset((s, p) for s, p in pairs if s and p.startswith("/")))


@dataclass(frozen=True)
class Facts:
    """Probe answers by (server, path), and volume lists by server; immutable."""

    paths: Mapping[tuple[str, str], PathInfo] = field(default_factory=dict)
    volumes: Mapping[str, tuple[VolumeInfo, ...]] = field(default_factory=dict)
    networks: Mapping[str, NetworkInfo] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", MappingProxyType(dict(self.paths)))
        object.__setattr__(self, "volumes", MappingProxyType(dict(self.volumes)))
        object.__setattr__(self, "networks", MappingProxyType(dict(self.networks)))

    def path(self, server: str, path: str) -> PathInfo:
        try:
            return self.paths[(server, path)]
        except KeyError:
            raise MissingFact(f"no probe of {path} on {server} was gathered") from None

    def volumes_of(self, server: str) -> tuple[VolumeInfo, ...]:
        try:
            return self.volumes[server]
        except KeyError:
            raise MissingFact(f"the volumes of {server} were not gathered") from None

    def network_of(self, server: str) -> NetworkInfo:
        try:
            return self.networks[server]
        except KeyError:
            raise MissingFact(f"the network of {server} was not gathered") from None

    def has(self, needs: Needs) -> bool:
        return (
            needs.paths <= set(self.paths)
            and needs.volumes <= set(self.volumes)
            and needs.networks <= set(self.networks)
        )

    def merged(self, other: Facts) -> Facts:
        return Facts(
            {**self.paths, **other.paths},
            {**self.volumes, **other.volumes},
            {**self.networks, **other.networks},
        )


def gather(backend: Backend, needs: Needs, known: Facts | None = None) -> Facts:
    """Probe what ``needs`` asks for and ``known`` does not have yet (I/O: not on the GUI
    thread)."""
    known = known or Facts()
    paths = {key: backend.probe(*key) for key in sorted(needs.paths) if key not in known.paths}
    volumes = {
        server: backend.volumes(server)
        for server in sorted(needs.volumes)
        if server not in known.volumes
    }
    networks = {
        server: backend.network(server)
        for server in sorted(needs.networks)
        if server not in known.networks
    }
    return known.merged(Facts(paths, volumes, networks))


__all__ = [
    "BTRFS",
    "Facts",
    "MissingFact",
    "Needs",
    "NetworkInfo",
    "PathInfo",
    "VolumeInfo",
    "gather",
]
