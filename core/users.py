"""The lab's users: roles, and passwords kept only as salted scrypt hashes.

The local user who owns the data directory is an Administrator without a password
(:func:`core.session.local_administrator`), so a first run needs no sign-in. Other users
sign in with a password; after repeated failures each further attempt must wait longer,
and every failure is logged with the user name, never the password.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from dataclasses import dataclass

from core.checks import Problem
from core.errors import CheckFailed, LkError
from core.model import Role
from core.session import Session
from core.store import Store

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_PASSWORD = 8
FREE_FAILURES = 3  # failures before attempts are delayed
MAX_DELAY_S = 300.0
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class AuthenticationFailed(LkError):
    """Wrong user or password, or too many failures for now."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)


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


def add_user(store: Store, name: str, role: Role, password: str, session: Session) -> User:
    session.require(Role.ADMINISTRATOR, "Adding a user")
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
    if problems:
        raise CheckFailed(problems)
    if any(u.name == name for u in list_users(store)):
        raise CheckFailed([Problem("name", "exists", f"There is already a user {name!r}.")])
    salt = os.urandom(16)
    with store.transaction() as txn:
        txn.execute(
            "INSERT INTO users(name, role, salt, hash) VALUES (?, ?, ?, ?)",
            (name, role.name, salt, _hash(password, salt)),
        )
        txn.add_log_line("users", "INFO", f"User {name} added with the {role.label} role")
    return User(name, role)


def remove_user(store: Store, name: str, session: Session) -> None:
    session.require(Role.ADMINISTRATOR, "Removing a user")
    with store.transaction() as txn:
        if txn.execute("DELETE FROM users WHERE name=?", (name,)).rowcount == 0:
            raise CheckFailed([Problem("name", "unknown_user", f"There is no user {name!r}.")])
        txn.add_log_line("users", "INFO", f"User {name} removed")


def list_users(store: Store) -> list[User]:
    rows = store._conn.execute("SELECT name, role FROM users ORDER BY name").fetchall()
    return [User(r[0], Role[r[1]]) for r in rows]


def authenticate(store: Store, name: str, password: str, now: float | None = None) -> Session:
    """A session for ``name`` if ``password`` is right; AuthenticationFailed if not."""
    now = time.time() if now is None else now
    row = store._conn.execute(
        "SELECT role, salt, hash, failures, locked_until FROM users WHERE name=?", (name,)
    ).fetchone()
    if row is not None and row[4] > now:
        wait = int(row[4] - now) + 1
        raise AuthenticationFailed(f"Too many failed sign-ins for {name}: try again in {wait} s.")
    # Hash even for an unknown user, so both cases take the same time.
    salt = row[1] if row is not None else b"\0" * 16
    good = row is not None and hmac.compare_digest(_hash(password, salt), row[2])
    with store.transaction() as txn:
        if good:
            txn.execute("UPDATE users SET failures=0, locked_until=0 WHERE name=?", (name,))
            txn.add_log_line("users", "INFO", f"{name} signed in ({Role[row[0]].label})")
        else:
            if row is not None:
                failures = row[3] + 1
                delay = 0.0
                if failures >= FREE_FAILURES:
                    delay = min(MAX_DELAY_S, 2.0 ** (failures - FREE_FAILURES + 1))
                txn.execute(
                    "UPDATE users SET failures=?, locked_until=? WHERE name=?",
                    (failures, now + delay, name),
                )
            txn.add_log_line("users", "WARNING", f"Sign-in failed for user {name!r}")
    if not good:
        log.warning("sign-in failed for user %r", name)
        raise AuthenticationFailed("Wrong user name or password.")
    return Session(name, Role[row[0]])
