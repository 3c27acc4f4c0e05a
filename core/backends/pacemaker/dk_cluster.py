"""The local cluster as a DataKeeper agent on a node sees it: node attributes and scores.

Runs on a cluster node, under the system ``python3`` (standard library only). Every
command is an argument list with a timeout; a command that fails raises
:class:`ClusterError` with its own words. Names: :mod:`.dk_names`.

- permanent attributes (the copies' generations, forced, paused) are read in one
  ``cibadmin --query --scope nodes`` and written with ``crm_attribute --lifetime
  forever``;
- transient ones with ``attrd_updater`` (``--query --all`` for every node at once);
- the promotion score with ``crm_attribute --promotion=RID --lifetime reboot``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from core.backends.pacemaker.dk_names import attribute, promotion_attribute
from core.errors import LkError

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT = 20.0
ON_NODE = "OCF_RESKEY_CRM_meta_on_node"  # and _uuid
NOT_FOUND = 105  # crm_attribute / attrd_updater: no such attribute
_QUERY = re.compile(r'^name="([^"]*)" host="([^"]*)" value="(.*)"$')


class ClusterError(LkError):
    """A cluster command failed on this node (its own words)."""


def run(argv: Sequence[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    # Pacemaker's tools take the node an agent runs for from its environment: with it,
    # ``attrd_updater --query --all`` answers for that node only. Every call here names
    # its node(s) itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith(ON_NODE)}
    env.update(PATH=PATH, LC_ALL="C")
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except FileNotFoundError:
        raise ClusterError(f"{argv[0]} is not installed on this node") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{' '.join(argv[:3])} did not answer within {timeout:g} s") from None


def _checked(argv: Sequence[str], timeout: float = TIMEOUT, ok: Sequence[int] = (0,)) -> str:
    done = run(argv, timeout)
    if done.returncode not in ok:
        words = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise ClusterError(
            f"{' '.join(argv[:1])} failed (exit {done.returncode}): "
            f"{words[-1] if words else 'no message'}"
        )
    return done.stdout


def node_name() -> str:
    """This node's name in the cluster (what Pacemaker told the agent, else the host's)."""
    return os.environ.get("OCF_RESKEY_CRM_meta_on_node") or socket.gethostname()  # noqa: SIM112


def live_meta(rid: str, name: str) -> str:
    """A meta attribute of resource ``rid`` as the CIB holds it now."""
    argv = ["crm_resource", "--resource", rid, "--meta", "--get-parameter", name, "--quiet"]
    return _checked(argv, ok=(0, NOT_FOUND, 6)).strip()  # none: '' (crm_resource says so)


def clean_value(text: str) -> str:
    """A value attrd can carry on one line and print back unambiguously."""
    return " ".join(text.replace('"', "'").split())[:500]


class Attributes:
    """The attributes of one mirror (``rid``) on the nodes of the cluster."""

    def __init__(self, rid: str) -> None:
        self.rid = rid

    def name(self, short: str) -> str:
        return attribute(self.rid, short)

    # -- permanent -----------------------------------------------------------------------
    def permanent(self) -> dict[str, dict[str, str]]:
        """node → {short name: value} of this mirror's permanent attributes."""
        text = _checked(["cibadmin", "--query", "--scope", "nodes"])
        prefix = attribute(self.rid, "")
        found: dict[str, dict[str, str]] = {}
        for node in ET.fromstring(text).iter("node"):
            uname = node.get("uname", "")
            for nvpair in node.iterfind("instance_attributes/nvpair"):
                name = nvpair.get("name", "")
                if uname and name.startswith(prefix):
                    found.setdefault(uname, {})[name[len(prefix) :]] = nvpair.get("value", "")
        return found

    def generations(self) -> dict[str, int]:
        gens: dict[str, int] = {}
        for node, values in self.permanent().items():
            value = values.get("gen", "")
            if value.isdigit():
                gens[node] = int(value)
        return gens

    def set_permanent(self, node: str, short: str, value: str | None) -> None:
        argv = ["crm_attribute", "--node", node, "--name", self.name(short)]
        argv += ["--lifetime", "forever"]
        if value is None:
            _checked([*argv, "--delete"], ok=(0, NOT_FOUND, 6))
        else:
            _checked([*argv, "--update", value])

    # -- transient -----------------------------------------------------------------------
    def transient(self, short: str) -> dict[str, str]:
        """node → value of a transient attribute (nodes without one are left out)."""
        done = run(["attrd_updater", "--query", "--all", "--name", self.name(short)])
        if done.returncode != 0:
            return {}
        found = {}
        for line in done.stdout.splitlines():
            m = _QUERY.match(line.strip())
            if m and m.group(3):
                found[m.group(2)] = m.group(3)
        return found

    def set_transient(self, node: str, short: str, value: str | None) -> None:
        argv = ["attrd_updater", "--node", node, "--name", self.name(short)]
        if value is None:
            _checked([*argv, "--delete"], ok=(0, NOT_FOUND))
        else:
            _checked([*argv, "--update", clean_value(value)])

    # -- the promotion score -----------------------------------------------------------------
    def set_score(self, node: str, score: int | None) -> None:
        argv = [
            "crm_attribute", f"--promotion={self.rid}", "--node", node, "--lifetime", "reboot",
        ]  # fmt: skip
        if score is None:
            _checked([*argv, "--delete"], ok=(0, NOT_FOUND, 6))
        else:
            _checked([*argv, "--update", str(score)])

    def scores(self) -> dict[str, str]:
        """node → promotion score now (as attrd holds it)."""
        done = run(["attrd_updater", "--query", "--all", "--name", promotion_attribute(self.rid)])
        found = {}
        for line in done.stdout.splitlines() if done.returncode == 0 else []:
            m = _QUERY.match(line.strip())
            if m and m.group(3):
                found[m.group(2)] = m.group(3)
        return found


__all__ = ["Attributes", "ClusterError", "clean_value", "live_meta", "node_name", "run"]
