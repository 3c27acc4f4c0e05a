"""connect(spec): one line naming what is missing, and which specs are Pacemaker's."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.backends.pacemaker import ConnectError, connect, is_spec
from core.errors import LkError


def test_which_specs_are_pacemakers() -> None:
    assert is_spec("pacemaker") and is_spec("pacemaker-lab") and is_spec("ssh://root@n1")
    assert not is_spec("lab") and not is_spec("lab:/srv/a")


def test_a_spec_of_another_backend_is_refused() -> None:
    with pytest.raises(ConnectError, match="'lab' is not a Pacemaker cluster"):
        connect("lab")


def test_a_bad_ssh_address_says_what_is_wrong() -> None:
    with pytest.raises(LkError, match="not a port"):
        connect("ssh://root@node1:http")


NO_TOOLS = shutil.which("cibadmin", path="/usr/sbin:/usr/bin") is None


@pytest.mark.skipif(NO_TOOLS, reason="no Pacemaker tools here (bootstrap.sh --test has them)")
def test_pacemaker_here_without_a_running_cluster_says_so(hermetic_env: Path) -> None:
    with pytest.raises(ConnectError) as caught:
        connect("pacemaker", home=hermetic_env)
    message = str(caught.value)
    assert "cannot read the cluster's configuration" in message
    assert "is Pacemaker running there?" in message and "\n" not in message


@pytest.mark.skipif(os.geteuid() != 0, reason="the Pacemaker lab needs root")
def test_pacemaker_lab_without_a_lab_says_how_to_start_one(hermetic_env: Path) -> None:
    with pytest.raises(ConnectError, match="lkctl lab up --engine pacemaker"):
        connect("pacemaker-lab", home=hermetic_env)
