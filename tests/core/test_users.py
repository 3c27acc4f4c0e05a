"""Users, roles, sign-in and the keyring: enforced in core, seen through lkctl."""

from __future__ import annotations

import os
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from core import credentials, users
from core.backend import LabBackend
from core.errors import CheckFailed, PermissionDenied
from core.model import Role
from core.session import Session, local_administrator
from core.store import DB_NAME
from tests.helpers import run_lkctl

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
    assert users.authenticate(lab.store, "olga", SECRET) == Session("olga", Role.OPERATOR)
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
        users.parse_role("root")


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
