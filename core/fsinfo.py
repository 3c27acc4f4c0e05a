"""Filesystem type of any path: ``statfs`` magic cross-checked with ``/proc/self/mountinfo``.

Used by the bitmap-on-btrfs rule (DOMAIN.md, "Bitmap File rules"): a bitmap file must not
live on btrfs, and the path a user types often does not exist yet, so the probe walks up
to the **nearest existing ancestor** of the path and probes that.

Two independent sources are consulted:

* ``statfs(2)`` (through ``ctypes``, from libc) gives the superblock magic of the
  filesystem that really holds the path. It cannot tell ext2 from ext3 from ext4 (one
  magic), nor the mount point.
* ``/proc/self/mountinfo`` gives, for the longest mount point that is a prefix of the
  path, the filesystem type name, the mount point and the mount source. Bind mounts
  appear there under their own mount point, so a path under a bind mount of a btrfs
  folder is reported as btrfs. Octal escapes (``\\040`` for a space, ``\\011``, ``\\012``,
  ``\\134``) are decoded.

When both agree (the mountinfo name belongs to the statfs magic's family, e.g. ``ext4``
for ``0xEF53``) the precise mountinfo name is used. When they disagree (a path hidden by
an over-mount, a mount namespace that ``/proc`` does not describe, a stale mountinfo), the
**statfs type wins** (it describes the inode really reached) and
:attr:`FsInfo.disagreement` says what mountinfo claimed. When the magic is unknown, the
mountinfo name is used.

Nothing here raises on odd input except :class:`FsProbeError` (an
:class:`~core.errors.LkError`) for a path that cannot name a file at all (it contains a
NUL byte). Relative paths are resolved against the current directory, ``~`` is *not*
expanded (a path is a path), symlinks are followed, also dangling ones (the file would
be created where the link points).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import LkError

__all__ = [
    "FS_MAGIC",
    "FsInfo",
    "FsProbeError",
    "MountEntry",
    "describe",
    "filesystem_of",
    "find_mount",
    "is_btrfs",
    "nearest_existing_ancestor",
    "parse_mountinfo",
    "read_mountinfo",
    "statfs_magic",
    "unescape_mountinfo",
]

MOUNTINFO = "/proc/self/mountinfo"

#: statfs ``f_type`` magic numbers (linux/magic.h and filesystem sources) → type name.
FS_MAGIC: dict[int, str] = {
    0x9123683E: "btrfs",
    0xEF53: "ext4",  # ext2, ext3 and ext4 share the magic; mountinfo tells which
    0x58465342: "xfs",
    0x01021994: "tmpfs",
    0x794C7630: "overlay",
    0x6969: "nfs",
    0x2FC12FC1: "zfs",
    0x9FA0: "proc",
    0x62656572: "sysfs",
    0x1CD1: "devpts",
    0x27E0EB: "cgroup",
    0x63677270: "cgroup2",
    0x858458F6: "ramfs",
    0x958458F6: "hugetlbfs",
    0x4D44: "vfat",
    0x2011BAB0: "exfat",
    0x5346544E: "ntfs",
    0xF2F52010: "f2fs",
    0x73717368: "squashfs",
    0x9660: "iso9660",
    0x65735546: "fuse",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x00C36400: "ceph",
    0x01021997: "9p",
    0x52654973: "reiserfs",
    0x3153464A: "jfs",
    0xCA451A4E: "bcachefs",
    0xE0F5E1E2: "erofs",
    0x64626720: "debugfs",
    0x74726163: "tracefs",
    0x73636673: "securityfs",
    0xCAFE4A11: "bpf",
    0x19800202: "mqueue",
    0x0187: "autofs",
    0x62656570: "configfs",
    0x6165676C: "pstore",
    0xDE5E81E4: "efivarfs",
    0x42494E4D: "binfmt_misc",
    0x6E736673: "nsfs",
    0x01161970: "gfs2",
    0x7461636F: "ocfs2",
    0x0BD00BD0: "lustre",
    0x61756673: "aufs",
    0xF15F: "ecryptfs",
}

#: mountinfo names that are the same filesystem as the statfs name (not a disagreement).
_FAMILY: dict[str, frozenset[str]] = {
    "ext4": frozenset({"ext2", "ext3", "ext4", "ext4dev"}),
    "tmpfs": frozenset({"tmpfs", "devtmpfs", "shm"}),
    "nfs": frozenset({"nfs", "nfs4"}),
    "vfat": frozenset({"vfat", "msdos", "fat"}),
    "ntfs": frozenset({"ntfs", "ntfs3"}),
    "cifs": frozenset({"cifs", "smb3"}),
    "smb2": frozenset({"cifs", "smb3", "smb2"}),
    "cgroup": frozenset({"cgroup"}),
}


class FsProbeError(LkError):
    """The path cannot be probed at all (it is not a valid path, e.g. contains NUL)."""


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo`` (escapes decoded)."""

    mount_id: int
    parent_id: int
    device: str  # "major:minor"
    root: str  # the folder of the source filesystem mounted here (bind mounts)
    mount_point: str
    options: str
    fs_type: str
    source: str
    super_options: str


@dataclass(frozen=True)
class FsInfo:
    """What holds a path.

    ``fs_type`` is the answer (``"btrfs"``, ``"ext4"``, ``"xfs"``, ``"tmpfs"``, ...,
    ``"unknown"``); ``path_checked`` the existing path actually probed (the path itself
    or its nearest existing ancestor, symlinks resolved); ``statfs_type``/``magic`` and
    ``mountinfo_type`` the two raw answers; ``disagreement`` is empty when they agree,
    else a sentence saying which one was used and why.
    """

    fs_type: str
    mount_point: str
    source: str
    path_checked: str
    magic: int | None = None
    statfs_type: str | None = None
    mountinfo_type: str | None = None
    disagreement: str = ""

    @property
    def is_btrfs(self) -> bool:
        return self.fs_type == "btrfs"


# -- mountinfo -----------------------------------------------------------------------


def unescape_mountinfo(field: str) -> str:
    r"""Decode the kernel's octal escapes (``\040`` space, ``\011`` tab, ``\012`` newline,
    ``\134`` backslash). A backslash not followed by three octal digits is kept."""
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    n = len(field)
    while i < n:
        c = field[i]
        if c == "\\" and _is_octal3(field[i + 1 : i + 4]):
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _is_octal3(s: str) -> bool:
    return len(s) == 3 and all(ch in "01234567" for ch in s)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse the text of a mountinfo file; malformed lines are skipped."""
    entries: list[MountEntry] = []
    for line in text.splitlines():
        parts = line.split(" ")
        try:
            sep = parts.index("-", 6)
        except ValueError:
            continue
        if len(parts) < sep + 3:
            continue
        try:
            mount_id = int(parts[0])
            parent_id = int(parts[1])
        except ValueError:
            continue
        entries.append(
            MountEntry(
                mount_id=mount_id,
                parent_id=parent_id,
                device=parts[2],
                root=unescape_mountinfo(parts[3]),
                mount_point=unescape_mountinfo(parts[4]),
                options=parts[5],
                fs_type=unescape_mountinfo(parts[sep + 1]),
                source=unescape_mountinfo(parts[sep + 2]),
                super_options=parts[sep + 3] if len(parts) > sep + 3 else "",
            )
        )
    return entries


def read_mountinfo(path: str = MOUNTINFO) -> list[MountEntry]:
    """The current mounts, or an empty list when mountinfo cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return []


def _is_under(path: str, mount_point: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    mp = mount_point.rstrip("/")
    return path == mp or path.startswith(mp + "/")


def find_mount(path: str, entries: list[MountEntry]) -> MountEntry | None:
    """The entry with the longest mount point containing ``path`` (an absolute path).

    Among several entries with the same mount point (mounts stacked on one folder) the
    last one listed is the one on top, hence visible.
    """
    best: MountEntry | None = None
    best_len = -1
    for e in entries:
        if _is_under(path, e.mount_point):
            length = len(e.mount_point.rstrip("/"))
            if length >= best_len:
                best, best_len = e, length
    return best


# -- statfs --------------------------------------------------------------------------

_libc: ctypes.CDLL | None = None
_libc_loaded = False


def _get_libc() -> ctypes.CDLL | None:
    global _libc, _libc_loaded
    if not _libc_loaded:
        _libc_loaded = True
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
            _libc.statfs.restype = ctypes.c_int
        except (OSError, AttributeError):
            _libc = None
    return _libc


def statfs_magic(path: str) -> int:
    """The ``f_type`` of ``statfs(path)``. Raises ``OSError`` (from errno) on failure."""
    libc = _get_libc()
    if libc is None:
        raise OSError(errno.ENOSYS, "statfs is not available (libc not found)")
    # struct statfs is at most 120 bytes on Linux; f_type (a long, __fsword_t) comes first.
    buf = ctypes.create_string_buffer(256)
    if libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


# -- paths ---------------------------------------------------------------------------


def _absolute(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    raw = os.fsdecode(os.fspath(path))
    if "\x00" in raw:
        raise FsProbeError(f"not a valid path (contains a NUL byte): {raw!r}")
    if raw == "":
        raw = "."
    return os.path.realpath(os.path.abspath(raw))


def nearest_existing_ancestor(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
) -> str:
    """The path itself if it exists, else its closest existing parent (symlinks resolved)."""
    p = _absolute(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _mount_point_by_device(path: str) -> str:
    """Fallback without mountinfo: walk up while the device stays the same."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return "/"
    p = path
    while True:
        parent = os.path.dirname(p)
        if parent == p:
            return p
        try:
            if os.stat(parent).st_dev != dev:
                return p
        except OSError:
            return p
        p = parent


def filesystem_of(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    *,
    mountinfo: list[MountEntry] | None = None,
) -> FsInfo:
    """Which filesystem holds ``path`` (or would hold it, if it does not exist yet).

    ``mountinfo`` may be given (tests); by default ``/proc/self/mountinfo`` is read.
    Raises only :class:`FsProbeError` for a path containing a NUL byte.
    """
    checked = nearest_existing_ancestor(path)
    entries = read_mountinfo() if mountinfo is None else mountinfo
    entry = find_mount(checked, entries)

    magic: int | None
    statfs_name: str | None
    statfs_problem = ""
    try:
        magic = statfs_magic(checked)
        statfs_name = FS_MAGIC.get(magic)
    except OSError as exc:
        magic, statfs_name = None, None
        statfs_problem = f"statfs failed ({exc.strerror or exc})"

    mi_type = entry.fs_type if entry is not None else None
    mount_point = entry.mount_point if entry is not None else _mount_point_by_device(checked)
    source = entry.source if entry is not None else ""

    disagreement = ""
    if statfs_name is not None:
        family = _FAMILY.get(statfs_name, frozenset({statfs_name}))
        if mi_type is None:
            fs_type = statfs_name
            disagreement = "mountinfo has no entry for this path; statfs type used"
        elif mi_type in family or (statfs_name == "fuse" and mi_type.startswith("fuse")):
            fs_type = mi_type  # same filesystem, and mountinfo's name is more precise
        else:
            fs_type = statfs_name
            disagreement = (
                f"mountinfo says {mi_type!r} for {mount_point!r} but statfs magic "
                f"{magic:#x} is {statfs_name!r}; statfs type used"
            )
    elif magic is not None:
        fs_type = mi_type or f"unknown({magic:#x})"
    else:
        fs_type = mi_type or "unknown"
        disagreement = statfs_problem + ("; mountinfo type used" if mi_type else "")

    return FsInfo(
        fs_type=fs_type,
        mount_point=mount_point,
        source=source,
        path_checked=checked,
        magic=magic,
        statfs_type=statfs_name,
        mountinfo_type=mi_type,
        disagreement=disagreement,
    )


def is_btrfs(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> bool:
    """True when ``path`` (or its nearest existing ancestor) is on btrfs."""
    return filesystem_of(path).is_btrfs


def describe(path: str | Path) -> str:
    """One line for messages: ``"/x/y is on ext4 (mounted at /x, from /dev/sda1)"``."""
    info = filesystem_of(path)
    src = f", from {info.source}" if info.source else ""
    return f"{info.path_checked} is on {info.fs_type} (mounted at {info.mount_point}{src})"
