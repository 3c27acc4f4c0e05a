"""The Bitmap File rules (DOMAIN.md), shared by Create and Extend.

- None means no intent log: every resync is a full resync.
- A bitmap on **btrfs** makes the mirror configuration fail ("invalid argument"): it is
  refused before anything runs, and when the default under ``/opt/LifeKeeper`` is on
  btrfs a default elsewhere is proposed instead.
"""

from __future__ import annotations

from core.facts import Facts, Needs
from core.model import LIFEKEEPER_DIR, default_bitmap_file
from core.rules.paths import path_problem, text

# Where a bitmap goes when /opt/LifeKeeper is on btrfs (the first one that is not).
FALLBACK_DIRS = ("/var/lib/LifeKeeper", "/var/opt/LifeKeeper", "/etc/LifeKeeper")


def candidates(dk_tag: str) -> list[str]:
    """The usual default first, then the places tried when it is on btrfs."""
    return [default_bitmap_file(dk_tag), *(f"{d}/bitmap_{dk_tag}" for d in FALLBACK_DIRS)]


def default_needs(server: str, dk_tag: str) -> Needs:
    return Needs.of_paths((server, c) for c in candidates(dk_tag)) if server else Needs()


def default_bitmap(facts: Facts, server: str, dk_tag: str) -> tuple[str, str]:
    """The default bitmap file on ``server`` and, when it is not the usual one, why."""
    usual, *fallbacks = candidates(dk_tag)
    if not server or not facts.path(server, usual).is_btrfs:
        return usual, ""
    for candidate in fallbacks:
        info = facts.path(server, candidate)
        if not info.is_btrfs and info.writable:
            return candidate, (
                f"{LIFEKEEPER_DIR} on {server} is on btrfs, which cannot hold a DataKeeper "
                f"bitmap (btrfs cannot give the block map an external bitmap needs), so the "
                f"default was moved to {candidate}."
            )
    return usual, ""


def needs(server: str, bitmap_file: str | None) -> Needs:
    """What :func:`problems` asks for."""
    value = text(bitmap_file)
    if not server or bitmap_file is None or path_problem(value) or value.endswith("/"):
        return Needs()
    return Needs.of_paths([(server, value)])


def problems(facts: Facts, server: str, bitmap_file: str) -> list[tuple[str, str]]:
    """(code, message) for a bitmap file path on ``server``; [] when it is usable."""
    value = text(bitmap_file)
    if value == "":
        return [
            (
                "required",
                "Bitmap File is empty: give a path such as /opt/LifeKeeper/bitmap_<tag>, "
                "or choose None.",
            )
        ]
    why = path_problem(value)
    if why:
        return [("bad_path", f"Bitmap File {value!r} {why}")]
    if value.endswith("/"):
        return [("bitmap_is_directory", f"Bitmap File {value} names a folder; add a file name.")]
    if not server:
        return []
    info = facts.path(server, value)
    if info.error:
        return [("bad_path", f"Bitmap File {value!r}: {info.error}")]
    if info.is_dir:
        return [
            (
                "bitmap_is_directory",
                f"Bitmap File {value} is an existing folder on {server}; give a file path "
                f"inside it, e.g. {value.rstrip('/')}/bitmap_<tag>.",
            )
        ]
    if info.is_btrfs:
        return [
            (
                "bitmap_on_btrfs",
                f"Bitmap File {value} is on btrfs (mounted at {info.mount_point}) on {server}: "
                "DataKeeper cannot use a bitmap there (configuring the mirror fails with "
                "'invalid argument', because btrfs cannot give the block map an external "
                "bitmap needs). Choose a folder on ext4 or xfs, e.g. under /var/lib, "
                "or None.",
            )
        ]
    if not info.writable:
        return [
            (
                "bitmap_folder_read_only",
                f"Bitmap File {value}: the folder {info.checked} on {server} is read-only; "
                "choose a writable folder, or None.",
            )
        ]
    return []
