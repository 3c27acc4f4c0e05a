"""The Pacemaker lab's names, addresses and files: pure text, and where it goes.

The lab's **service network** is ``10.213.0.0/24``. It exists only on the lab's own
interfaces: a bridge ``br0`` in a network namespace of its own (the switch) and one veth
per node (``eth0`` in the node, a port named after the node on the switch). The host
has no address there and routes nothing to it. Node ``labN`` is ``10.213.0.(10+N)``;
``10.213.0.100``–``10.213.0.254`` are never given to a node: IP resources take free
addresses there.

Everything a node keeps lives under ``$home/pacemaker-lab/nodes/<node>/`` (its system
folders: ``/etc/corosync``, ``/var/lib/pacemaker``, ``/var/log``...) and
``$home/servers/<node>/`` (what it calls ``/disks``, ``/opt/LifeKeeper`` and ``/data``:
the folder lab's layout). Names of namespaces carry a hash of the home, so two homes'
labs never meet.
"""

from __future__ import annotations

import hashlib
import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SERVICE_NETWORK = ipaddress.IPv4Network("10.213.0.0/24")
NODE_ADDRESS_OFFSET = 10
SERVICE_ADDRESSES = (
    ipaddress.IPv4Address("10.213.0.100"),
    ipaddress.IPv4Address("10.213.0.254"),
)
MAX_NODES = 16
NODE_INTERFACE = "eth0"
BRIDGE = "br0"
CLUSTER_NAME = "lkconsole-lab"
# Corosync's token: a dead node is noticed after token + consensus (1.2 × token) ≈ 2.2 s
# (token_coefficient 0: the same with more nodes, not 0.65 s more per node beyond two).
TOKEN_MS = 1000
FENCE_AGENT = "fence_lkswitch"
FENCE_DEVICE = "lab-fence"
# Where a node sees the switch's network namespace (the fence device's own network).
SWITCH_NETNS_IN_NODE = "/run/lkswitch/netns"
# A node's data folders: server path → folder under $home/servers/<node>/.
DATA_FOLDERS = ("/disks", "/opt/LifeKeeper", "/data")


def node_names(count: int) -> list[str]:
    return [f"lab{i}" for i in range(1, count + 1)]


def node_address(name: str) -> ipaddress.IPv4Address:
    """The service-network address of node ``labN``."""
    return SERVICE_NETWORK.network_address + NODE_ADDRESS_OFFSET + int(name.removeprefix("lab"))


@dataclass(frozen=True)
class LabPaths:
    """Where the lab of one home keeps its files, and the names of its namespaces."""

    home: Path

    @property
    def lab_dir(self) -> Path:
        return self.home / "pacemaker-lab"

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.lab_dir / "lock"

    @property
    def seeded_file(self) -> Path:
        """Present while the lab is seeded (``nslab_seed``): its nodes' ``/data`` is then
        the mount point of the mirrored file system, not a data folder."""
        return self.lab_dir / "seeded"

    @property
    def agents_dir(self) -> Path:
        """The project's agents as installed for the lab's nodes (``install-agents``)."""
        return self.lab_dir / "agents"

    @property
    def ocf_agents_dir(self) -> Path:
        return self.agents_dir / "ocf"

    @property
    def fence_dir(self) -> Path:
        return self.agents_dir / "fence"

    @property
    def ssh_dir(self) -> Path:
        """The lab's client key and known_hosts (a node's ``/root/.ssh``)."""
        return self.lab_dir / "ssh"

    def node_dir(self, node: str) -> Path:
        return self.lab_dir / "nodes" / node

    def server_dir(self, node: str) -> Path:
        return self.home / "servers" / node

    def data_folder(self, node: str, server_path: str) -> Path:
        return self.server_dir(node) / server_path.lstrip("/")

    @property
    def prefix(self) -> str:
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()
        return f"lkpm{digest[:6]}"

    @property
    def switch_netns(self) -> str:
        return f"{self.prefix}-sw"

    def node_netns(self, node: str) -> str:
        return f"{self.prefix}-{node}"


def corosync_conf(nodes: Sequence[str]) -> str:
    """corosync.conf for the lab: knet on the service network, logs in /var/log/corosync."""
    node_blocks = "".join(
        f"    node {{\n        name: {name}\n        nodeid: {i}\n"
        f"        ring0_addr: {node_address(name)}\n    }}\n"
        for i, name in enumerate(nodes, start=1)
    )
    two_node = "    two_node: 1\n" if len(nodes) == 2 else ""
    return (
        "# Made by LK Console's Pacemaker lab; rewritten by every 'up'.\n"
        "totem {\n"
        "    version: 2\n"
        f"    cluster_name: {CLUSTER_NAME}\n"
        "    transport: knet\n"
        f"    token: {TOKEN_MS}\n"
        "    token_coefficient: 0\n"
        "    crypto_cipher: none\n"
        "    crypto_hash: none\n"
        "}\n"
        f"nodelist {{\n{node_blocks}}}\n"
        f"quorum {{\n    provider: corosync_votequorum\n{two_node}}}\n"
        "logging {\n"
        "    to_stderr: no\n"
        "    to_syslog: no\n"
        "    to_logfile: yes\n"
        "    logfile: /var/log/corosync/corosync.log\n"
        "    timestamp: on\n"
        "}\n"
    )


def hosts_file(nodes: Sequence[str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{node_address(name)}\t{name}" for name in nodes]
    return "\n".join(lines) + "\n"


def sshd_config(node: str) -> str:
    """sshd on the node's address only; by key only: root's in /etc/ssh/lab, a user's in
    its own ~/.ssh/authorized_keys."""
    return (
        "# Made by LK Console's Pacemaker lab.\n"
        f"ListenAddress {node_address(node)}\n"
        "HostKey /etc/ssh/lab/ssh_host_ed25519_key\n"
        # The lab's key for root; a user made in a node (tests of roles) brings its own.
        "AuthorizedKeysFile /etc/ssh/lab/authorized_keys .ssh/authorized_keys\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "PidFile /run/sshd.pid\n"
        "PrintMotd no\n"
        "AcceptEnv LANG LC_*\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )


def _nvpair(parent: ET.Element, owner: str, name: str, value: str) -> None:
    ET.SubElement(parent, "nvpair", {"id": f"{owner}-{name}", "name": name, "value": value})


def seed_cib(empty_cib: str, nodes: Sequence[str]) -> str:
    """The CIB every node boots with, from ``cibadmin --empty``'s output.

    ``dc-deadtime=2s`` spares the first boot Pacemaker's 20 s wait for a DC; STONITH is on
    with the lab's fence device allowed on every node (the cluster is opt-in:
    ``symmetric-cluster=false``, so nothing runs where no constraint allows it).
    """
    cib = ET.fromstring(empty_cib)
    configuration = cib.find("configuration")
    if configuration is None:
        raise ValueError("cibadmin --empty gave a CIB without <configuration>")
    crm_config = configuration.find("crm_config")
    resources = configuration.find("resources")
    constraints = configuration.find("constraints")
    if crm_config is None or resources is None or constraints is None:
        raise ValueError("cibadmin --empty gave a CIB without crm_config/resources/constraints")
    options = ET.SubElement(crm_config, "cluster_property_set", {"id": "cib-bootstrap-options"})
    for name, value in (
        ("dc-deadtime", "2s"),
        ("stonith-enabled", "true"),
        ("symmetric-cluster", "false"),
        ("cluster-name", CLUSTER_NAME),
    ):
        _nvpair(options, "cib-bootstrap-options", name, value)
    device = ET.SubElement(
        resources,
        "primitive",
        {"id": FENCE_DEVICE, "class": "stonith", "type": FENCE_AGENT},
    )
    attributes = ET.SubElement(device, "instance_attributes", {"id": f"{FENCE_DEVICE}-params"})
    _nvpair(attributes, f"{FENCE_DEVICE}-params", "pcmk_host_list", " ".join(nodes))
    if len(nodes) == 2:  # two quorate halves race to fence each other: one waits a little
        _nvpair(attributes, f"{FENCE_DEVICE}-params", "pcmk_delay_max", "3s")
    operations = ET.SubElement(device, "operations")
    ET.SubElement(
        operations,
        "op",
        {"id": f"{FENCE_DEVICE}-monitor-30s", "name": "monitor", "interval": "30s"},
    )
    for name in nodes:
        ET.SubElement(
            constraints,
            "rsc_location",
            {"id": f"{FENCE_DEVICE}-on-{name}", "rsc": FENCE_DEVICE, "node": name, "score": "0"},
        )
    return ET.tostring(cib, encoding="unicode")
