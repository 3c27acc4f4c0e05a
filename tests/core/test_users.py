"""Users, roles, sign-in and the keyring: enforced in core, seen through lkctl."""

from __future__ import annotations

import os
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from core import credentials
from core.backends.lab import LabBackend, users
from core.backends.lab.store import DB_NAME
from core.errors import CheckFailed, PermissionDenied
from core.model import Role
from core.rules.users import parse_role
from core.session import Session
from tests.helpers import local_administrator, run_lkctl

SECRET = "correct horse battery"


@pytest.fixture
def lab(hermetic_env: Path):  # type: ignore[no-untyped-def]
    backend = LabBackend()
    users.add_user(backend.store, "olga", Role.OPERATOR, SECRET, local_administrator())
    users.add_user(backend.store, "gus", Role.GUEST, SECRET, local_administrator())
    yield backend
    backend.close()


def test_passwords_are_stored_only_as_scrypt_hashes(lab: LabBackend, hermetic_env: Path) -> None:
    assert [(u.name, u.role) for u in users.list_users(lab.store)] == [
        ("gus", Role.GUEST),
        ("olga", Role.OPERATOR),
    ]
    lab.store.checkpoint()
    raw = (hermetic_env / DB_NAME).read_bytes()
    assert SECRET.encode() not in raw
    logs = " ".join(r.text for r in lab.store.log_lines_after(0))
    assert SECRET not in logs


def test_sign_in_gives_the_role_and_a_wrong_password_does_not(lab: LabBackend) -> None:
    assert users.authenticate(lab.store, "olga", SECRET) == Session(
        "olga", Role.OPERATOR, signed_in=True
    )
    with pytest.raises(users.AuthenticationFailed, match="Wrong user name or password"):
        users.authenticate(lab.store, "olga", "nope nope")
    with pytest.raises(users.AuthenticationFailed, match="Wrong user name or password"):
        users.authenticate(lab.store, "nobody", SECRET)
    failures = [r.text for r in lab.store.log_lines_after(0) if "Sign-in failed" in r.text]
    assert failures == ["Sign-in failed for user 'olga'", "Sign-in failed for user 'nobody'"]


def test_repeated_failures_make_the_next_attempt_wait(lab: LabBackend) -> None:
    now = 1000.0
    for _ in range(users.FREE_FAILURES):
        with pytest.raises(users.AuthenticationFailed):
            users.authenticate(lab.store, "gus", "wrong", now=now)
    with pytest.raises(users.AuthenticationFailed, match=r"try again in \d+ s"):
        users.authenticate(lab.store, "gus", SECRET, now=now + 0.5)  # even the right one
    assert users.authenticate(lab.store, "gus", SECRET, now=now + 60).role is Role.GUEST


def test_bad_user_input(lab: LabBackend) -> None:
    admin = local_administrator()
    with pytest.raises(CheckFailed, match="at least 8"):
        users.add_user(lab.store, "x", Role.GUEST, "short", admin)
    with pytest.raises(CheckFailed, match="must be 1-64"):
        users.add_user(lab.store, "a b", Role.GUEST, SECRET, admin)
    with pytest.raises(CheckFailed, match="already a user"):
        users.add_user(lab.store, "olga", Role.GUEST, SECRET, admin)
    with pytest.raises(PermissionDenied):
        users.add_user(lab.store, "eve", Role.ADMINISTRATOR, SECRET, Session("olga", Role.OPERATOR))
    with pytest.raises(CheckFailed, match="not one of guest"):
        parse_role("root")


def test_roles_through_lkctl(lab: LabBackend) -> None:
    as_guest = {"LKCTL_PASSWORD": SECRET}
    done = run_lkctl(["--user", "gus", "status"], env=as_guest)
    assert done.returncode == 0
    done = run_lkctl(["--user", "gus", "outofservice", "/data"], env=as_guest)
    assert done.returncode == 1
    assert "Out of Service needs the Operator role; gus is signed in as Guest" in done.stderr
    done = run_lkctl(["--user", "olga", "extend", "/data", "--accept-defaults"], env=as_guest)
    assert done.returncode == 1 and "needs the Administrator role" in done.stderr
    done = run_lkctl(["--user", "olga", "outofservice", "/data"], env=as_guest)
    assert done.returncode == 0, done.stderr
    wrong = run_lkctl(["--user", "olga", "status"], env={"LKCTL_PASSWORD": "bad password"})
    assert wrong.returncode == 1 and "Wrong user name or password" in wrong.stderr
    assert "bad password" not in wrong.stderr


def test_lkctl_user_commands(hermetic_env: Path) -> None:
    done = run_lkctl(
        ["lab", "user", "add", "ann", "--role", "administrator", "--password-stdin"],
        input_text=SECRET + "\n",
    )
    assert done.returncode == 0, done.stderr
    listed = run_lkctl(["lab", "user", "list"])
    assert "ann: Administrator" in listed.stdout and "(local owner)" in listed.stdout
    bad = run_lkctl(
        ["lab", "user", "add", "bob", "--role", "king", "--password-stdin"],
        input_text=SECRET + "\n",
    )
    assert bad.returncode == 2 and bad.stderr.startswith("role: ")
    assert run_lkctl(["lab", "user", "remove", "ann"]).returncode == 0
    assert "ann" not in run_lkctl(["lab", "user", "list"]).stdout


def test_the_keyring_remembers_and_forgets(lab: LabBackend) -> None:
    credentials.remember("lab", "olga", SECRET)
    assert credentials.recall("lab", "olga") == SECRET
    assert keyring.get_password("lkconsole", "olga@lab") == SECRET
    assert credentials.forget("lab", "olga") is True
    assert credentials.recall("lab", "olga") is None
    assert credentials.forget("lab", "olga") is False


def test_no_keyring_backend_means_no_remembering(lab: LabBackend) -> None:
    keyring.set_keyring(fail.Keyring())
    assert "cannot be remembered" in credentials.unavailable_reason()
    with pytest.raises(credentials.KeyringUnavailable, match="cannot be remembered"):
        credentials.remember("lab", "olga", SECRET)
    assert credentials.recall("lab", "olga") is None
    assert not any(
        SECRET in p.read_text(errors="ignore")
        for p in Path(os.environ["HOME"]).rglob("*")
        if p.is_file()
    )


def test_hashes_are_scrypt_n_2_17_and_older_ones_are_rehashed(lab: LabBackend) -> None:
    import hashlib

    row = lab.store._conn.execute("SELECT scheme FROM users WHERE name='olga'").fetchone()
    assert row[0] == "scrypt:131072:8:1" == users.SCHEME
    # An account from before: N=2^14, as the first version hashed.
    salt = os.urandom(16)
    old = hashlib.scrypt(SECRET.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    with lab.store.transaction() as txn:
        txn.execute(
            "INSERT INTO users(name, role, salt, hash, scheme) VALUES (?, ?, ?, ?, ?)",
            ("old", "OPERATOR", salt, old, "scrypt:16384:8:1"),
        )
    with pytest.raises(users.AuthenticationFailed):
        users.authenticate(lab.store, "old", "not it at all")
    after_failure = lab.store._conn.execute(
        "SELECT scheme, hash FROM users WHERE name='old'"
    ).fetchone()
    assert tuple(after_failure) == ("scrypt:16384:8:1", old)  # only a right password re-hashes
    assert users.authenticate(lab.store, "old", SECRET).role is Role.OPERATOR
    scheme, digest = lab.store._conn.execute(
        "SELECT scheme, hash FROM users WHERE name='old'"
    ).fetchone()
    assert scheme == users.SCHEME and digest != old
    assert users.authenticate(lab.store, "old", SECRET).role is Role.OPERATOR


def test_an_unknown_user_and_a_wrong_password_look_the_same(lab: LabBackend) -> None:
    now = 5000.0
    messages = {}
    for name in ("olga", "nobody-at-all"):
        seen = []
        for _ in range(users.FREE_FAILURES + 1):
            with pytest.raises(users.AuthenticationFailed) as caught:
                users.authenticate(lab.store, name, "wrong wrong", now=now)
            seen.append(str(caught.value).replace(name, "NAME"))
        messages[name] = seen
    assert messages["olga"] == messages["nobody-at-all"]
    assert messages["olga"][0] == "Wrong user name or password."
    assert "try again in" in messages["olga"][-1]


def test_parallel_wrong_passwords_do_not_slip_past_the_lockout(lab: LabBackend) -> None:
    import subprocess
    import sys

    from tests.helpers import REPO

    script = (
        "import sys\n"
        "from core.backends.lab import users\n"
        "from core.backends.lab.store import Store\n"
        "store = Store()\n"
        "try:\n"
        "    users.authenticate(store, 'olga', 'wrong wrong')\n"
        "except users.AuthenticationFailed as exc:\n"
        "    print(exc)\n"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    outputs = [c.communicate(timeout=120)[0].strip() for c in children]
    checked = [o for o in outputs if o == "Wrong user name or password."]
    locked = [o for o in outputs if "Too many failed sign-ins for olga" in o]
    # Each attempt is counted before its password is checked, in one transaction: only
    # the free attempts (and the one that set the lock) get as far as the hash.
    assert len(checked) == users.FREE_FAILURES, outputs
    assert len(locked) == 8 - users.FREE_FAILURES, outputs
    # A refused attempt is not counted either: the counter says how many were checked.
    row = lab.store._conn.execute(
        "SELECT failures FROM signin_failures WHERE name='olga'"
    ).fetchone()
    assert row[0] == users.FREE_FAILURES
