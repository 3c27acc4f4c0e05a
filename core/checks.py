"""Every rule of DOMAIN.md as a function returning :class:`Problem` values.

A check never raises for bad input and never changes anything: it returns the problems
it found, each naming the field (also the widget's objectName) it belongs to, so the
GUI can show the message under that field and ``lkctl`` can print ``field: message``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from core.model import PRIORITY_MAX, PRIORITY_MIN, TAG_MAX_LENGTH


@dataclass(frozen=True)
class Problem:
    field: str  # the field's name, also the widget's objectName: "target_priority"
    code: str  # stable, for tests and --json: "priority_in_use"
    message: str
    # For fields repeated per DataKeeper resource (one Extend page each): which one.
    resource_id: int | None = None


def tag_problems(field: str, label: str, tag: object) -> list[Problem]:
    """A resource tag: 1-256 characters, no whitespace, quotes or control characters."""
    if not isinstance(tag, str) or tag == "":
        return [Problem(field, "tag_empty", f"{label} must not be empty.")]
    if len(tag) > TAG_MAX_LENGTH:
        return [
            Problem(
                field,
                "tag_too_long",
                f"{label} is {len(tag)} characters long; the limit is {TAG_MAX_LENGTH}.",
            )
        ]
    bad = sorted({c for c in tag if _bad_tag_char(c)})
    if bad:
        shown = ", ".join(_describe(c) for c in bad)
        return [
            Problem(
                field,
                "tag_bad_characters",
                f"{label} {tag!r} contains {shown}; use letters, digits and - _ . / : only "
                "(no spaces, quotes or control characters).",
            )
        ]
    return []


def priority_problems(field: str, label: str, value: object) -> tuple[int | None, list[Problem]]:
    """Parse a priority (a whole number 1-999); returns (value or None, problems)."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip() if value is not None else ""
        if text == "":
            return None, [Problem(field, "priority_empty", f"{label} is required (1-999).")]
        try:
            number = int(text, 10)
        except ValueError:
            return None, [
                Problem(
                    field,
                    "priority_not_integer",
                    f"{label} must be a whole number from {PRIORITY_MIN} to {PRIORITY_MAX}, "
                    f"not {text!r}.",
                )
            ]
    if not PRIORITY_MIN <= number <= PRIORITY_MAX:
        return None, [
            Problem(
                field,
                "priority_out_of_range",
                f"{label} {number} is out of range: use {PRIORITY_MIN} to {PRIORITY_MAX} "
                "(lower is preferred).",
            )
        ]
    return number, []


def _bad_tag_char(c: str) -> bool:
    return c.isspace() or c in "'\"`" or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")


def _describe(c: str) -> str:
    if c == " ":
        return "a space"
    if c in "'\"`":
        return f"a quote ({c})"
    return f"the character U+{ord(c):04X}"
