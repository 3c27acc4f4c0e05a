"""The permission table, tried for real through lkctl by every kind of user.

Each state-changing lkctl command is run as a Guest and as an Operator (right
password), with a wrong password and as an unknown user. It is refused exactly where
core.permissions.TABLE says, with one line on stderr; the database is unchanged but for
the history rows of the refusals, and the volumes' bytes are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core import permissions
from core.backends.lab import LabBackend, users
from core.model import Role
from core.permissions import Op
from tests.core.labtools import digest, wait_for_mirror
from tests.helpers import db_tables, local_administrator, refusal_recorded, run_lkctl

SECRET = "correct horse battery"

# Every lkctl command that changes state, with the operation it runs.
COMMANDS: list[tuple[Op, list[str]]] = [
    (
        Op.CREATE_HIERARCHY,
        [
            *("create", "--server", "lab2", "--disk", "/disks/web.img", "--size-mib", "4"),
            *("--mount-point", "/web", "--root-tag", "/web", "--dk-tag", "datarep-web"),
            "--accept-defaults",
        ],
    ),
    (Op.EXTEND_HIERARCHY, ["extend", "/data", "--target", "lab3", "--accept-defaults"]),
    (Op.UNEXTEND_HIERARCHY, ["unextend", "/data", "--server", "lab2", "--yes"]),
    (Op.DELETE_HIERARCHY, ["delete", "/data", "--yes"]),
    (Op.IN_SERVICE, ["inservice", "/data", "--on", "lab2"]),
    (Op.OUT_OF_SERVICE, ["outofservice", "/data"]),
    (Op.SWITCHOVER, ["switchover", "/data", "--to", "lab2"]),
    (Op.PAUSE_MIRROR, ["mirror", "pause", "datarep-data"]),
    (Op.RESUME_MIRROR, ["mirror", "resume", "datarep-data"]),
    (Op.FULL_RESYNC, ["mirror", "fullresync", "datarep-data", "--yes"]),
    (Op.VERIFY_MIRROR, ["mirror", "verify", "datarep-data"]),
    (Op.FORCE_ONLINE, ["mirror", "force", "datarep-data", "--on", "lab2", "--yes"]),
    (Op.SPEED_LIMIT, ["mirror", "speed", "datarep-data", "1000"]),
    (Op.LAB_WRITE, ["lab", "write", "datarep-data", "--offset", "0", "--length", "4096"]),
    (Op.LAB_WORKLOAD, ["lab", "workload", "datarep-data", "--seconds", "0.2", "--rate", "1"]),
    (Op.LAB_RESET, ["lab", "reset", "--yes"]),
    (Op.STOP_SERVER, ["lab", "stop", "lab3", "--yes"]),
    (Op.START_SERVER, ["lab", "start", "lab3"]),
    (
        Op.ADD_USER,
        ["lab", "user", "add", "eve", "--role", "administrator", "--password-stdin"],
    ),
    (Op.REMOVE_USER, ["lab", "user", "remove", "olga"]),
    (Op.CREATE_DEPENDENCY, ["dependency", "create", "/data", "datarep-data"]),
    (Op.DELETE_DEPENDENCY, ["dependency", "delete", "/data", "datarep-data"]),
    (
        Op.SET_SERVER_PROPERTIES,
        ["server", "set", "lab2", "--shutdown-strategy", "do-not-switchover"],
    ),
    (Op.SET_RESOURCE_PROPERTIES, ["resource", "set", "/data", "--priority", "lab2=5"]),
    (
        Op.CREATE_COMM_PATH,
        ["commpath", "create", "lab1", "lab2", "--local", "10.215.0.11", "--remote", "10.215.0.12"],
    ),
    (Op.DELETE_COMM_PATH, ["commpath", "delete", "lab1", "lab2", "--path", "2", "--yes"]),
    (Op.COMM_PATH_FAULT, ["lab", "commpath-down", "lab1", "lab3", "--path", "1"]),
    (Op.CONFIRM_FAILOVER, ["confirm-failover", "lab2"]),
    (Op.RESIZE_MIRROR, ["mirror", "resize", "datarep-data", "--size", "128M"]),
]


def test_every_operation_is_in_the_table() -> None:
    assert set(permissions.TABLE) == set(Op)
    assert {op for op, _argv in COMMANDS} == set(Op) - {Op.VIEW}


@pytest.fixture
def lab(hermetic_env: Path):  # type: ignore[no-untyped-def]
    """The seed extended to lab2 (Target), and the users olga (Operator) and gus (Guest)."""
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--wait"]).returncode == 0
    backend = LabBackend()
    users.add_user(backend.store, "olga", Role.OPERATOR, SECRET, local_administrator())
    users.add_user(backend.store, "gus", Role.GUEST, SECRET, local_administrator())
    wait_for_mirror(backend, backend.snapshot().hierarchies[0].id, "lab2")
    backend.close()
    yield hermetic_env


def _volumes(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): digest(p) for p in sorted(home.glob("servers/*/disks/*"))}


def _refused_everywhere(home: Path, user: str, env: dict[str, str], needed_above: Role) -> None:
    """Every command whose least role is above ``needed_above`` is refused for ``user``."""
    before, volumes = db_tables(home), _volumes(home)
    expected = [(op, argv) for op, argv in COMMANDS if permissions.least_role(op) > needed_above]
    for op, argv in expected:
        done = run_lkctl(["--user", user, *argv], input_text=SECRET + "\n", env=env)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("lkctl: "), done.stderr
        assert "Traceback" not in done.stderr
        if needed_above is not Role.ADMINISTRATOR:
            needed = permissions.least_role(op).label
            assert f"{op.label} needs the {needed} role; {user} is signed in as" in done.stderr
    refused = refusal_recorded(before, home, also=("signin_failures", "oplog"))
    assert len(refused) == len(expected)
    assert _volumes(home) == volumes


def test_a_guest_may_change_nothing(lab: Path) -> None:
    _refused_everywhere(lab, "gus", {"LKCTL_PASSWORD": SECRET}, Role.GUEST)
    assert run_lkctl(["--user", "gus", "status"], env={"LKCTL_PASSWORD": SECRET}).returncode == 0


def test_an_operator_is_refused_what_needs_an_administrator(lab: Path) -> None:
    _refused_everywhere(lab, "olga", {"LKCTL_PASSWORD": SECRET}, Role.OPERATOR)


@pytest.mark.parametrize("user", ["olga", "gina"], ids=["wrong password", "unknown user"])
def test_a_failed_sign_in_is_refused_everything(lab: Path, user: str) -> None:
    before, volumes = db_tables(lab), _volumes(lab)
    for _op, argv in [*COMMANDS[:4], (Op.VIEW, ["status"])]:
        done = run_lkctl(["--user", user, *argv], env={"LKCTL_PASSWORD": "WRONG"})
        assert done.returncode == 1, (argv, done.stderr)
        assert done.stderr.count("\n") == 1
        assert "Wrong user name or password" in done.stderr or "try again in" in done.stderr
        assert "WRONG" not in done.stderr
    refused = refusal_recorded(before, lab, also=("signin_failures", "oplog"))
    assert len(refused) == 5
    assert _volumes(lab) == volumes


def test_an_operator_does_what_the_table_allows(lab: Path) -> None:
    env = {"LKCTL_PASSWORD": SECRET}
    backend = LabBackend()
    hid = backend.snapshot().hierarchies[0].id

    def olga(*argv: str) -> None:
        done = run_lkctl(["--user", "olga", *argv], env=env)
        assert done.returncode == 0, (argv, done.stderr)

    olga("mirror", "pause", "datarep-data")
    olga("mirror", "resume", "datarep-data")
    wait_for_mirror(backend, hid, "lab2")
    olga("mirror", "verify", "datarep-data")
    olga("lab", "write", "datarep-data", "--offset", "0", "--length", "4096")
    olga("lab", "workload", "datarep-data", "--seconds", "0.2", "--rate", "1")
    olga("switchover", "/data", "--to", "lab2")
    wait_for_mirror(backend, hid, "lab1")
    olga("outofservice", "/data")
    olga("inservice", "/data", "--on", "lab1")
    h = backend.snapshot().hierarchies[0]
    backend.close()
    assert h.in_service_server == "lab1"
    done = {op for op, _argv in COMMANDS if permissions.least_role(op) is Role.OPERATOR}
    assert done == {
        Op.PAUSE_MIRROR,
        Op.RESUME_MIRROR,
        Op.VERIFY_MIRROR,
        Op.LAB_WRITE,
        Op.LAB_WORKLOAD,
        Op.SWITCHOVER,
        Op.OUT_OF_SERVICE,
        Op.IN_SERVICE,
        Op.CONFIRM_FAILOVER,
    }
    # A failover that waits for a confirmation: an Operator lets it proceed.
    assert run_lkctl(["server", "set", "lab2", "--confirm-failover", "lab1=on"]).returncode == 0
    assert run_lkctl(["lab", "stop", "lab1", "--yes"]).returncode == 0
    olga("confirm-failover", "lab2")
    backend = LabBackend()
    assert backend.snapshot().hierarchies[0].in_service_server == "lab2"
    backend.close()


def test_the_local_user_who_does_not_own_the_data_directory_is_a_guest(lab: Path) -> None:
    import os

    os.chown(lab, 12345, -1)  # as if another user had made it
    try:
        done = run_lkctl(["outofservice", "/data"])
        assert done.returncode == 1
        assert "Out of Service needs the Operator role" in done.stderr
        assert "signed in as Guest" in done.stderr
        assert run_lkctl(["status"]).returncode == 0
    finally:
        os.chown(lab, os.getuid(), -1)
    assert run_lkctl(["outofservice", "/data"]).returncode == 0


def test_who_is_who_comes_from_the_uid_not_the_environment(lab: Path) -> None:
    import os
    import pwd

    fake = {"LOGNAME": "someone-else", "USER": "someone-else", "USERNAME": "someone-else"}
    assert run_lkctl(["mirror", "speed", "datarep-data", "2000"], env=fake).returncode == 0
    last = db_tables(lab)["history"][-1]
    assert last[3] == pwd.getpwuid(os.getuid()).pw_name and last[4] == "Administrator"
