"""What makes a user name, a password and a role acceptable (pure)."""

from __future__ import annotations

import re

from core.checks import Problem
from core.errors import CheckFailed
from core.model import Role

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_PASSWORD = 8


def parse_role(text: str) -> Role:
    try:
        return Role[text.strip().upper()]
    except KeyError:
        raise CheckFailed(
            [
                Problem(
                    "role",
                    "unknown_role",
                    f"Role {text!r} is not one of guest, operator, administrator.",
                )
            ]
        ) from None


def new_user_problems(name: str, password: str) -> list[Problem]:
    problems = []
    if not NAME.match(name or ""):
        problems.append(
            Problem(
                "name",
                "bad_name",
                f"User name {name!r} must be 1-64 letters, digits, dots, dashes or underscores.",
            )
        )
    if len(password) < MIN_PASSWORD:
        problems.append(
            Problem(
                "password",
                "too_short",
                f"The password must have at least {MIN_PASSWORD} characters.",
            )
        )
    return problems
