"""The lab's recovery kits: what bringing a resource in or out of service does on a server.

LifeKeeper runs a kit's *restore* script to bring a resource in service, its *remove*
script to take it out and its *quickCheck* to see that it is still healthy. In the lab a
server is a folder, so:

- **IP** (an address in CIDR on an interface): in service on a server = the address is
  recorded as up there, a file ``/run/lkconsole/ip/<address>`` in the server's folder
  (its content: ``10.214.0.100/24 dev eth0``); out of service removes it. A server that
  stops has its addresses down with it.
- **Generic Application**: its own start, stop and monitor commands really run, as
  ``/bin/sh -c COMMAND`` (what ``ocf:lkconsole:app`` does on a Pacemaker node) with the
  server's folder as the working directory, ``LKCONSOLE_SERVER`` set to the server's
  name, and a timeout (:data:`COMMAND_TIMEOUT_S`); their output goes to the output panel.
  A command must return: what it leaves running in the background is the application.
- **filesystem** and **datakeeper**: their rows say it all (the mirror's source follows
  the hierarchy through ``MakeSource``).

Each action notes first how to undo it (``record``), so a plan that fails later undoes
it, and crash recovery too (:mod:`core.backends.lab.journal`).

The lab's **service network** is ``10.214.0.0/24`` (ours; it exists only as these files:
nothing is sent anywhere): server ``labN`` is ``10.214.0.(10+N)`` on ``eth0``, and
``10.214.0.100``-``10.214.0.254`` are for IP resources (Accept Defaults proposes the
first one no resource protects).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.backends.lab import journal
from core.backends.lab.layout import LabLayout
from core.errors import OperationError
from core.facts import NetworkInfo
from core.files import private_dir, write_private
from core.model import Resource, ResourceKind

IP_UP_DIR = "/run/lkconsole/ip"
SERVICE_NETWORK = ipaddress.IPv4Network("10.214.0.0/24")
SERVER_ADDRESS_OFFSET = 10
MAX_SERVERS = 89  # lab1 .. lab89 are .11 .. .99, below the IP resources' pool
IP_POOL = (ipaddress.IPv4Address("10.214.0.100"), ipaddress.IPv4Address("10.214.0.254"))
INTERFACE = "eth0"
COMMAND_TIMEOUT_S = 30.0
OUTPUT_LINES = 20  # of a command's output, at most, in the output panel

Say = Callable[[str, str], None]  # (text, level)
Record = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class CommandRun:
    """What one run of an application's command gave."""

    what: str  # "start", "stop", "monitor"
    command: str
    returncode: int | None  # None: it timed out (and was killed)
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def last_line(self) -> str:
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def failure(self, tag: str, server: str) -> str:
        """One sentence: which command of which resource failed where, and how."""
        how = (
            f"did not return within {COMMAND_TIMEOUT_S:g} s (killed)"
            if self.returncode is None
            else f"exited {self.returncode}"
        )
        last = f": {self.last_line}" if self.last_line else ""
        return f"the {self.what} command of {tag} on {server} ({self.command}) {how}{last}"


def server_address(server: str) -> str | None:
    """The folder lab's address of ``server`` (``labN``) on its service network."""
    number = server.removeprefix("lab")
    if not number.isdigit() or not 1 <= int(number) <= MAX_SERVERS:
        return None
    return str(SERVICE_NETWORK.network_address + SERVER_ADDRESS_OFFSET + int(number))


def network(server: str) -> NetworkInfo:
    """What the lab tells the rules about ``server``'s network (see the module)."""
    address = server_address(server)
    return NetworkInfo(
        server=server,
        addresses=(address,) if address else (),
        interface=INTERFACE,
        pool_first=str(IP_POOL[0]),
        pool_last=str(IP_POOL[1]),
        prefix_length=SERVICE_NETWORK.prefixlen,
    )


# -- IP ------------------------------------------------------------------------------------
def ip_file(layout: LabLayout, server: str, address: str) -> Path:
    """The file that says ``address`` (CIDR or not) is up on ``server``."""
    ip = str(ipaddress.ip_interface(address.strip()).ip)
    return layout.server_path(server, f"{IP_UP_DIR}/{ip}")


def addresses_up(layout: LabLayout, server: str) -> list[str]:
    """The addresses recorded as up on ``server``."""
    folder = layout.server_path(server, IP_UP_DIR)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _ip_up(layout: LabLayout, r: Resource, say: Say, record: Record) -> None:
    address, nic = r.setting("address"), r.setting("interface") or INTERFACE
    path = ip_file(layout, r.server, address)
    if not path.exists():
        record({"delete_file": str(path)})
    private_dir(path.parent)
    write_private(path, f"{address} dev {nic}\n".encode())
    say(f"{r.tag}: address {address} is up on {r.server} ({nic})", "INFO")


def _ip_down(layout: LabLayout, r: Resource, say: Say, record: Record) -> None:
    address = r.setting("address")
    path = ip_file(layout, r.server, address)
    if path.exists():
        record({"ip_up": [str(path), path.read_text(encoding="utf-8")]})
        path.unlink()
    say(f"{r.tag}: address {address} is down on {r.server}", "INFO")


def _undo_ip_down(args: list[str]) -> None:
    path = Path(args[0])
    private_dir(path.parent)
    write_private(path, args[1].encode())


# -- Generic Application ---------------------------------------------------------------------
def run_command(
    layout: LabLayout, server: str, what: str, command: str, timeout: float | None = None
) -> CommandRun:
    """Run one of an application's commands on ``server`` (see the module)."""
    root = layout.server_root(server)
    private_dir(root)
    limit = COMMAND_TIMEOUT_S if timeout is None else timeout
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LKCONSOLE_SERVER": server},
            start_new_session=True,  # a timeout ends the command and what it started
        )
        try:
            returncode: int | None = process.wait(limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = None
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    return CommandRun(what, command, returncode, text)


def say_output(run: CommandRun, tag: str, say: Say) -> None:
    """A command's output in the output panel (its last lines)."""
    lines = [line for line in run.output.splitlines() if line.strip()]
    if len(lines) > OUTPUT_LINES:
        say(f"{tag}: {run.what}: ... ({len(lines) - OUTPUT_LINES} lines before)", "INFO")
    for line in lines[-OUTPUT_LINES:]:
        say(f"{tag}: {run.what}: {line}", "INFO")


def _app(layout: LabLayout, r: Resource, what: str, say: Say, record: Record) -> None:
    command = r.setting(what).strip()
    if not command:
        say(f"{r.tag}: no {what} command: nothing to run on {r.server}", "INFO")
        return
    undo = "stop" if what == "start" else "start"
    if r.setting(undo).strip():
        record({"app_command": [str(layout.home), r.server, undo, r.setting(undo)]})
    run = run_command(layout, r.server, what, command)
    say_output(run, r.tag, say)
    if not run.ok:
        raise OperationError(run.failure(r.tag, r.server))
    say(f"{r.tag}: {what} command done on {r.server}", "INFO")


def monitor(layout: LabLayout, r: Resource) -> CommandRun | None:
    """Run ``r``'s monitor (quickCheck) command; None when it has none."""
    command = r.setting("monitor").strip()
    if not command:
        return None
    return run_command(layout, r.server, "monitor", command)


def _undo_app_command(args: list[str]) -> None:
    home, server, what, command = args
    run_command(LabLayout(Path(home)), server, what, command)


journal.UNDO_HANDLERS["ip_up"] = _undo_ip_down
journal.UNDO_HANDLERS["app_command"] = _undo_app_command


# -- the kits' actions ---------------------------------------------------------------------
def start(layout: LabLayout, r: Resource, say: Say, record: Record) -> None:
    """Bring ``r`` in service on its server (its kit's restore); OperationError if not."""
    if r.kind is ResourceKind.IP:
        _ip_up(layout, r, say, record)
    elif r.kind is ResourceKind.APP:
        _app(layout, r, "start", say, record)


def stop(layout: LabLayout, r: Resource, say: Say, record: Record) -> None:
    """Take ``r`` out of service on its server (its kit's remove); OperationError if not."""
    if r.kind is ResourceKind.IP:
        _ip_down(layout, r, say, record)
    elif r.kind is ResourceKind.APP:
        _app(layout, r, "stop", say, record)


def actor(layout: LabLayout, say: Say, record: Record) -> Callable[[Resource, bool], None]:
    """The kit action for :func:`core.backends.lab.service_rows.bring_in` / ``take_out``."""

    def act(r: Resource, up: bool) -> None:
        (start if up else stop)(layout, r, say, record)

    return act


def server_stopped(layout: LabLayout, resources: list[Resource]) -> None:
    """A server stopped: its addresses are down with it (its applications run nothing)."""
    for r in resources:
        if r.kind is ResourceKind.IP and r.setting("address"):
            with contextlib.suppress(ValueError):
                ip_file(layout, r.server, r.setting("address")).unlink(missing_ok=True)


__all__ = [
    "COMMAND_TIMEOUT_S",
    "INTERFACE",
    "IP_POOL",
    "IP_UP_DIR",
    "SERVICE_NETWORK",
    "CommandRun",
    "actor",
    "addresses_up",
    "ip_file",
    "monitor",
    "network",
    "run_command",
    "server_address",
    "server_stopped",
    "start",
    "stop",
]
