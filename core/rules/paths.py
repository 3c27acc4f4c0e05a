"""Field helpers of the rules: text of a field, and what makes a server path usable."""

from __future__ import annotations

from pathlib import PurePosixPath

MAX_PATH = 4096


def text(value: object) -> str:
    """A field's value as typed, stripped ("" for None)."""
    return "" if value is None else str(value).strip()


def path_problem(path: str) -> str:
    """Why ``path`` is not a usable absolute server path ("" when it is)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "contains control characters."
    if not path.startswith("/"):
        return "is not an absolute path (it must start with /)."
    if ".." in PurePosixPath(path).parts:
        return "must not contain '..'."
    if len(path) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters."
    return ""


def norm(path: str) -> str:
    return str(PurePosixPath(path))
