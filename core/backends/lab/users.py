"""The lab's users: roles, and passwords kept only as salted scrypt hashes.

The owner of the data directory is an Administrator without a password
(:func:`core.session.local_session`), so a first run needs no sign-in. Other users sign
in with a password:

- hashes are scrypt with N=2^17, r=8, p=1 (OWASP's minimum); each row says its scheme,
  and a hash made with an older one is re-hashed at the next successful sign-in;
- failed sign-ins are counted per name, whether or not the user exists, in the same
  ``BEGIN IMMEDIATE`` transaction that checks the lock: an attempt is counted as failed
  before its password is checked, so parallel attempts cannot slip past the lockout;
- an unknown user and a wrong password get the same message after the same work (a
  hash is computed either way) and the same lockout;
- every failure is logged with the user name, never the password.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass

from core import commands
from core.backends.lab.oplog import authorize
from core.backends.lab.store import Store, Txn
from core.checks import Problem
from core.errors import AuthenticationFailed, CheckFailed, LkError
from core.model import Role
from core.permissions import Op
from core.rules.users import new_user_problems
from core.session import Session

log = logging.getLogger(__name__)

FREE_FAILURES = 3  # failures before attempts are delayed
MAX_DELAY_S = 300.0
KEEP_FAILURES_S = 86400.0  # forget a name's failures a day after the last one
MAX_FAILURE_ROWS = 10_000
SCHEME = "scrypt:131072:8:1"  # scrypt:N:r:p
_MAXMEM = 256 * 1024 * 1024  # scrypt needs 128 * r * N bytes (128 MiB here)
_UNKNOWN_SALT = b"\0" * 16


@dataclass(frozen=True)
class User:
    name: str
    role: Role


def _hash(password: str, salt: bytes, scheme: str = SCHEME) -> bytes:
    kind, n, r, p = scheme.split(":")
    if kind != "scrypt":
        raise LkError(f"unknown password scheme {kind!r}")
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=int(n),
        r=int(r),
        p=int(p),
        maxmem=_MAXMEM,
        dklen=32,
    )


def add_user(store: Store, name: str, role: Role, password: str, session: Session) -> User:
    command = commands.join("lab", "user", "add", name, "--role", role.name.lower())
    authorize(store, session, Op.ADD_USER, f"add user {name}", command)
    problems = new_user_problems(name, password)
    if problems:
        raise CheckFailed(problems)
    if any(u.name == name for u in list_users(store)):
        raise CheckFailed([Problem("name", "exists", f"There is already a user {name!r}.")])
    salt = os.urandom(16)
    digest = _hash(password, salt)
    with store.transaction() as txn:
        txn.execute(
            "INSERT INTO users(name, role, salt, hash, scheme) VALUES (?, ?, ?, ?, ?)",
            (name, role.name, salt, digest, SCHEME),
        )
        txn.add_log_line("users", "INFO", f"User {name} added with the {role.label} role")
    return User(name, role)


def remove_user(store: Store, name: str, session: Session) -> None:
    command = commands.join("lab", "user", "remove", name)
    authorize(store, session, Op.REMOVE_USER, f"remove user {name}", command)
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
    with store.transaction() as txn:
        user = _count_attempt(txn, name, now)
    # The slow part, outside the write lock: a hash for an unknown user too.
    salt, digest, scheme = (user[1], user[2], user[3]) if user else (_UNKNOWN_SALT, b"", SCHEME)
    good = hmac.compare_digest(_hash(password, salt, scheme), digest) and user is not None
    if not good:
        with store.transaction() as txn:
            txn.add_log_line("users", "WARNING", f"Sign-in failed for user {name!r}")
        log.warning("sign-in failed for user %r", name)
        raise AuthenticationFailed("Wrong user name or password.")
    assert user is not None
    role = Role[user[0]]
    fresh = None if scheme == SCHEME else _hash(password, new_salt := os.urandom(16))
    with store.transaction() as txn:
        txn.execute("DELETE FROM signin_failures WHERE name=?", (name,))
        if fresh is not None:
            txn.execute(
                "UPDATE users SET salt=?, hash=?, scheme=? WHERE name=?",
                (new_salt, fresh, SCHEME, name),
            )
            log.info("re-hashed the password of %s with %s", name, SCHEME)
        txn.add_log_line("users", "INFO", f"{name} signed in ({role.label})")
    return Session(name, role, signed_in=True)


def _count_attempt(txn: Txn, name: str, now: float) -> tuple[str, bytes, bytes, str] | None:
    """Refuse while ``name`` is locked out; else count this attempt as a failure (undone
    when it succeeds) and return the user's row (None for an unknown user)."""
    row = txn.execute(
        "SELECT failures, locked_until FROM signin_failures WHERE name=?", (name,)
    ).fetchone()
    failures = row[0] if row is not None else 0
    if row is not None and row[1] > now:
        wait = int(row[1] - now) + 1
        raise AuthenticationFailed(f"Too many failed sign-ins for {name}: try again in {wait} s.")
    failures += 1
    delay = 0.0
    if failures >= FREE_FAILURES:
        delay = min(MAX_DELAY_S, 2.0 ** (failures - FREE_FAILURES + 1))
    txn.execute(
        "INSERT INTO signin_failures(name, failures, locked_until, last) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET failures=excluded.failures, "
        "locked_until=excluded.locked_until, last=excluded.last",
        (name, failures, now + delay, now),
    )
    txn.execute("DELETE FROM signin_failures WHERE last < ?", (now - KEEP_FAILURES_S,))
    txn.execute(
        "DELETE FROM signin_failures WHERE name NOT IN "
        "(SELECT name FROM signin_failures ORDER BY last DESC LIMIT ?)",
        (MAX_FAILURE_ROWS,),
    )
    user = txn.execute(
        "SELECT role, salt, hash, scheme FROM users WHERE name=?", (name,)
    ).fetchone()
    return (user[0], user[1], user[2], user[3]) if user is not None else None
