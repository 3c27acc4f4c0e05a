"""Create Resource Hierarchy for LifeKeeper's IP and Generic Application recovery kits:
defaults, checks and steps (pure).

- **IP**: an address in CIDR (``10.214.0.100/24``, ``fd00::64/64``) on a network
  interface. A valid unicast IPv4 or IPv6 address, not the address of a server, not
  already protected by another IP resource. Accept Defaults takes the address and
  interface the backend proposes (a lab: the first free address of its service network);
  a real cluster proposes none, and then the field must be filled.
- **Generic Application**: a start command (LifeKeeper's restore script: required), a
  stop command (remove), a monitor command (quickCheck: exits 0 while healthy) and a
  restart mode: ``yes`` (LifeKeeper's local recovery: restart once in place, then fail
  over), ``no`` (fail over at once) or a number of restarts in place before failover.

The new hierarchy is one resource, in service on its server with priority 1; a
dependency (``core.rules.dependency``) puts it on top of another hierarchy. The settings'
names are the ones every backend reads (``core.model.Resource.settings``): ``address``,
``interface``; ``start``, ``stop``, ``monitor``, ``restart``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass

from core.checks import Problem, tag_problems
from core.errors import CheckFailed
from core.facts import Facts, Needs, NetworkInfo
from core.model import Cluster, ResourceKind, SwitchbackType
from core.plan import BringNewInService, CreateResource, Step
from core.rules.paths import text

IP = ResourceKind.IP.value
APP = ResourceKind.APP.value
KINDS = {IP: ResourceKind.IP.label, APP: ResourceKind.APP.label}
RESTART_MODES = ("yes", "no")
MAX_RESTARTS = 10
MAX_COMMAND = 4096
INTERFACE_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")

LABELS = {
    "kind": "Resource Type",
    "server": "Server",
    "switchback_type": "Switchback Type",
    "tag": "Resource Tag",
    "address": "IP Address",
    "interface": "Network Interface",
    "start": "Start Command",
    "stop": "Stop Command",
    "monitor": "Monitor Command",
    "restart_mode": "Restart Mode",
}
SHOWN = {
    IP: ("server", "switchback_type", "address", "interface", "tag"),
    APP: ("server", "switchback_type", "start", "stop", "monitor", "restart_mode", "tag"),
}


@dataclass(frozen=True)
class ResourceRequest:
    """What Create Resource Hierarchy (IP or Generic Application) and ``lkctl create
    --kind ip|app`` ask for."""

    kind: str
    server: str
    tag: str = ""
    switchback_type: str = SwitchbackType.INTELLIGENT.value
    address: str = ""  # ip: CIDR
    interface: str = ""  # ip
    start: str = ""  # app
    stop: str = ""
    monitor: str = ""
    restart_mode: str = "yes"

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k in ("kind", *self.shown)}

    @property
    def shown(self) -> tuple[str, ...]:
        return SHOWN.get(self.kind, ())

    def settings(self) -> tuple[tuple[str, str], ...]:
        """The resource's settings, as every backend reads them."""
        if self.kind == IP:
            return (("address", _cidr(self.address)), ("interface", text(self.interface)))
        return (
            ("start", text(self.start)),
            ("stop", text(self.stop)),
            ("monitor", text(self.monitor)),
            ("restart", text(self.restart_mode).lower()),
        )


@dataclass(frozen=True)
class ResourceDefaults:
    request: ResourceRequest
    choices: dict[str, tuple[str, ...]]
    note: str = ""  # said next to the address: where it comes from, or why none


def _cidr(address: str) -> str:
    try:
        return str(ipaddress.ip_interface(text(address)))
    except ValueError:
        return text(address)


def _servers(cluster: Cluster) -> list[str]:
    return [s.name for s in cluster.servers]


def default_server(cluster: Cluster, server: str | None) -> str:
    if server in _servers(cluster):
        return server or ""
    alive = [s.name for s in cluster.servers if s.state.is_alive]
    return alive[0] if alive else (cluster.servers[0].name if cluster.servers else "")


def needs(cluster: Cluster) -> Needs:
    """Every server's network: the proposal, and the servers' own addresses."""
    return Needs(networks=frozenset(_servers(cluster)))


def protected_addresses(cluster: Cluster) -> dict[str, str]:
    """The address (no prefix) of every IP resource → its tag."""
    found: dict[str, str] = {}
    for h in cluster.hierarchies:
        for r in h.resources:
            if r.kind is ResourceKind.IP and r.setting("address"):
                try:
                    found[str(ipaddress.ip_interface(r.setting("address")).ip)] = r.tag
                except ValueError:
                    continue
    return found


def server_addresses(cluster: Cluster, facts: Facts) -> dict[str, str]:
    """Every server's own address (no prefix) → the server."""
    found: dict[str, str] = {}
    for name in _servers(cluster):
        for address in facts.network_of(name).addresses:
            try:
                found[str(ipaddress.ip_interface(address).ip)] = name
            except ValueError:
                continue
    return found


def proposed_address(cluster: Cluster, facts: Facts, network: NetworkInfo) -> str | None:
    """The first address of the backend's pool that no server has and no IP resource
    protects, in CIDR (None: the backend proposes none, or every one is taken)."""
    if not network.proposes:
        return None
    assert network.pool_first and network.pool_last and network.prefix_length is not None
    first = ipaddress.ip_address(network.pool_first)
    last = int(ipaddress.ip_address(network.pool_last))
    taken = set(protected_addresses(cluster)) | set(server_addresses(cluster, facts))
    for number in range(int(first), last + 1):
        candidate = str(
            ipaddress.ip_address(number) if first.version == 4 else ipaddress.IPv6Address(number)
        )
        if candidate not in taken:
            return f"{candidate}/{network.prefix_length}"
    return None


def _free_tag(cluster: Cluster, base: str) -> str:
    tags = {r.tag for h in cluster.hierarchies for r in h.resources}
    if base not in tags:
        return base
    n = 2
    while f"{base}{n}" in tags:
        n += 1
    return f"{base}{n}"


def defaults(cluster: Cluster, facts: Facts, kind: str, server: str | None) -> ResourceDefaults:
    server = default_server(cluster, server)
    choices = {
        "server": tuple(_servers(cluster)),
        "switchback_type": tuple(t.value for t in SwitchbackType),
        "restart_mode": RESTART_MODES,
    }
    if kind == IP:
        network = facts.network_of(server) if server else NetworkInfo(server)
        address = proposed_address(cluster, facts, network) if server else None
        if address is not None:
            note = f"The first address of the lab's service network that is free on {server}."
        elif network.proposes:
            note = "Every address of the service network is taken: type one."
        else:
            note = "This cluster proposes no address: type the address to protect."
        tag = _free_tag(cluster, f"ip-{address.split('/')[0]}") if address else ""
        request = ResourceRequest(
            IP, server, tag=tag, address=address or "", interface=network.interface or ""
        )
        return ResourceDefaults(request, choices, note)
    request = ResourceRequest(APP, server, tag=_free_tag(cluster, "app"))
    return ResourceDefaults(request, choices, "")


# -- checks -----------------------------------------------------------------------------------
def check_request(cluster: Cluster, facts: Facts, request: ResourceRequest) -> list[Problem]:
    if request.kind not in KINDS:
        return [
            Problem(
                "kind",
                "unknown_kind",
                f"Resource Type {request.kind!r} is not one of: {', '.join(KINDS)}.",
            )
        ]
    server = text(request.server)
    names = _servers(cluster)
    if server not in names:
        return [
            Problem(
                "server",
                "unknown_server",
                f"Server {server!r} is not a server of this cluster ({', '.join(names)}).",
            )
        ]
    problems: list[Problem] = []
    s = cluster.server(server)
    if s is not None and not s.state.is_alive:
        problems.append(
            Problem("server", "server_down", f"Server {server} is {s.state.value}; start it first.")
        )
    if text(request.switchback_type).lower() not in {t.value for t in SwitchbackType}:
        problems.append(
            Problem(
                "switchback_type",
                "unknown_switchback",
                f"Switchback Type {request.switchback_type!r} is not one of intelligent, "
                "automatic.",
            )
        )
    if request.kind == IP:
        problems += address_problems(cluster, facts, request.address)
        problems += interface_problems(request.interface)
    else:
        problems += app_problems(request)
    problems += _tag_problems(cluster, server, request.tag)
    return problems


def _tag_problems(cluster: Cluster, server: str, tag: str) -> list[Problem]:
    found = tag_problems("tag", LABELS["tag"], tag)
    if found:
        return found
    if any(r.tag == tag for r in cluster.instances_on(server)):
        return [Problem("tag", "tag_in_use", f"Resource Tag {tag!r} is already used on {server}.")]
    return []


def address_problems(cluster: Cluster, facts: Facts, address: str) -> list[Problem]:
    """IP Address: CIDR, unicast, not a server's, not already protected."""
    typed = text(address)
    if not typed:
        return [
            Problem(
                "address",
                "address_empty",
                "IP Address is required: type the address to protect in CIDR, e.g. "
                "10.214.0.100/24.",
            )
        ]
    try:
        interface = ipaddress.ip_interface(typed)
    except ValueError:
        return [
            Problem(
                "address",
                "not_an_address",
                f"IP Address {typed!r} is not a valid IPv4 or IPv6 address in CIDR, e.g. "
                "10.214.0.100/24 or fd00::64/64.",
            )
        ]
    if "/" not in typed:
        return [
            Problem(
                "address",
                "no_prefix",
                f"IP Address {typed} needs its prefix length (CIDR), e.g. {typed}/"
                f"{24 if interface.version == 4 else 64}.",
            )
        ]
    ip = interface.ip
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local:
        return [
            Problem(
                "address",
                "not_unicast",
                f"IP Address {typed} is not an address a server can serve clients on "
                "(unspecified, loopback, multicast or link-local); choose another.",
            )
        ]
    network = interface.network
    if (
        ip.version == 4
        and network.prefixlen < 31
        and ip in (network.network_address, network.broadcast_address)
    ):
        return [
            Problem(
                "address",
                "network_address",
                f"IP Address {typed} is the network or broadcast address of {network}; "
                "choose a host address.",
            )
        ]
    owner = server_addresses(cluster, facts).get(str(ip))
    if owner is not None:
        return [
            Problem(
                "address",
                "server_address",
                f"IP Address {ip} is the address of server {owner}: an IP resource must be "
                "an address of its own, which moves between servers.",
            )
        ]
    tag = protected_addresses(cluster).get(str(ip))
    if tag is not None:
        return [
            Problem(
                "address",
                "already_protected",
                f"IP Address {ip} is already protected by the IP resource {tag}.",
            )
        ]
    return []


def interface_problems(interface: str) -> list[Problem]:
    nic = text(interface)
    if not nic:
        return [
            Problem(
                "interface",
                "interface_empty",
                "Network Interface is required: the interface the address goes on, e.g. eth0.",
            )
        ]
    if not INTERFACE_PATTERN.fullmatch(nic):
        return [
            Problem(
                "interface",
                "bad_interface",
                f"Network Interface {nic!r} is not an interface name (1-15 letters, digits "
                "and _ . : @ -), e.g. eth0.",
            )
        ]
    return []


def app_problems(request: ResourceRequest) -> list[Problem]:
    problems: list[Problem] = []
    for name in ("start", "stop", "monitor"):
        command = getattr(request, name)
        label = LABELS[name]
        if not isinstance(command, str):
            problems.append(Problem(name, "not_text", f"{label} must be text."))
            continue
        if name == "start" and not command.strip():
            problems.append(
                Problem(
                    "start",
                    "start_empty",
                    "Start Command is required: a command that starts the application and "
                    "returns (LifeKeeper's restore script), e.g. ./start-app.sh.",
                )
            )
        elif any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in command):
            problems.append(
                Problem(
                    name,
                    "control_characters",
                    f"{label} contains a line break or control character: give one command "
                    "line (a script can hold more).",
                )
            )
        elif len(command) > MAX_COMMAND:
            problems.append(
                Problem(name, "too_long", f"{label} is longer than {MAX_COMMAND} characters.")
            )
    mode = text(request.restart_mode).lower()
    if mode not in RESTART_MODES and not (mode.isdigit() and int(mode) <= MAX_RESTARTS):
        problems.append(
            Problem(
                "restart_mode",
                "unknown_restart_mode",
                f"Restart Mode {request.restart_mode!r} is not one of: yes (restart once in "
                "place, then fail over), no (fail over at once), or a number of restarts "
                f"from 0 to {MAX_RESTARTS}.",
            )
        )
    return problems


def restarts(mode: str) -> int:
    """How many restarts in place a failed application gets before failover."""
    value = text(mode).lower()
    if value == "no":
        return 0
    if value.isdigit():
        return int(value)
    return 1  # "yes", and an application created before the mode existed


# -- the plan ---------------------------------------------------------------------------------
def plan_steps(cluster: Cluster, facts: Facts, request: ResourceRequest) -> tuple[Step, ...]:
    problems = check_request(cluster, facts, request)
    if problems:
        raise CheckFailed(problems)
    kind = ResourceKind(request.kind)
    server, tag = text(request.server), text(request.tag)
    switchback = SwitchbackType(text(request.switchback_type).lower())
    return (
        CreateResource("new", server, kind, tag, request.settings(), switchback),
        BringNewInService(server, tag),
    )


def done_message(request: ResourceRequest) -> str:
    return (
        f"{text(request.tag)} was created and is in service on {text(request.server)} "
        "(priority 1). Create a dependency to put it on top of another hierarchy, or extend "
        "it to another server to protect it."
    )
