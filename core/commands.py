"""The ``lkctl`` line behind every dialog: the same operation, with the values chosen.

Every line names every value explicitly (so it does not depend on defaults that may
change) and is quoted for a POSIX shell with :func:`shlex.join`.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the operations import this module: no import cycle at run time
    from core.rules.create import CreateRequest
    from core.rules.dependency import DependencyRequest
    from core.rules.extend import ExtendRequest
    from core.rules.kinds import ResourceRequest

LKCTL = "lkctl"
_TYPE_OPTIONS = {"new_fs": "new", "existing_fs": "existing", "dk_only": "dk-only"}


def join(*words: str) -> str:
    return shlex.join([LKCTL, *words])


def extend(request: ExtendRequest) -> str:
    words = [
        "extend",
        request.tag_to_extend,
        "--template",
        request.template_server,
        "--target",
        request.target_server,
        "--switchback",
        str(request.switchback_type),
    ]
    if request.template_priority is not None and str(request.template_priority).strip():
        words += ["--template-priority", str(request.template_priority).strip()]
    words += ["--target-priority", str(request.target_priority).strip()]
    if request.datakeeper:
        dk = request.datakeeper[0]
        if dk.mount_point is not None:
            words += ["--mount-point", dk.mount_point]
        if dk.root_tag is not None:
            words += ["--root-tag", dk.root_tag]
        words += ["--dk-tag", dk.dk_tag, "--bitmap", dk.bitmap_file or "none"]
        if dk.asynchronous is not None:  # None: the mirror's own mode
            words.append("--async" if dk.asynchronous else "--sync")
    return join(*words, "--accept-defaults")


def create(request: CreateRequest) -> str:
    words = [
        "create",
        "--server",
        request.server,
        "--switchback",
        request.switchback_type,
        "--type",
        _TYPE_OPTIONS.get(request.hierarchy_type, request.hierarchy_type),
        "--disk",
        request.source_disk,
    ]
    if request.disk_size_mib is not None:
        words += ["--size-mib", str(request.disk_size_mib)]
    if request.hierarchy_type != "dk_only":
        words += ["--mount-point", request.mount_point or "", "--root-tag", request.root_tag or ""]
        if request.fs_type:
            words += ["--fs-type", request.fs_type]
    words += ["--dk-tag", request.dk_tag, "--bitmap", request.bitmap_file or "none"]
    if request.asynchronous:
        words.append("--async")
    return join(*words, "--accept-defaults")


def unextend(tag: str, server: str) -> str:
    return join("unextend", tag, "--server", server, "--yes")


def delete(tag: str) -> str:
    return join("delete", tag, "--yes")


def in_service(tag: str, server: str) -> str:
    return join("inservice", tag, "--on", server)


def out_of_service(tag: str) -> str:
    return join("outofservice", tag)


def switchover(tag: str, to: str) -> str:
    return join("switchover", tag, "--to", to)


def mirror(action: str, tag: str, target: str | None = None) -> str:
    yes = ["--yes"] if action == "fullresync" else []  # it asks, being destructive
    return join("mirror", action, tag, *(["--target", target] if target else []), *yes)


def force_online(tag: str, server: str) -> str:
    return join("mirror", "force", tag, "--on", server, "--yes")


def speed(tag: str, kbps: int) -> str:
    return join("mirror", "speed", tag, str(kbps))


def lab_server(action: str, server: str) -> str:
    return join("lab", action, server, *(["--yes"] if action == "stop" else []))


def create_resource(request: ResourceRequest) -> str:
    """Create Resource Hierarchy of an IP address or a Generic Application."""
    words = ["create", "--kind", request.kind, "--server", request.server, "--tag", request.tag]
    words += ["--switchback", request.switchback_type]
    if request.kind == "ip":
        words += ["--address", request.address, "--interface", request.interface]
    else:
        words += ["--start", request.start, "--stop", request.stop]
        words += ["--monitor", request.monitor, "--restart-mode", request.restart_mode]
    return join(*words, "--accept-defaults")


def dependency(action: str, request: DependencyRequest) -> str:
    """Create Dependency / Delete Dependency (LifeKeeper's dep_create / dep_remove)."""
    return join("dependency", action, request.parent, request.child, "--server", request.server)


# -- Server and Resource Properties, comm paths, failover confirmation ------------------------
def server_set(
    server: str,
    shutdown_strategy: str,
    confirm_from: list[str] | tuple[str, ...],
    timeout: int,
    default: str,
    peers: list[str] | tuple[str, ...],
) -> str:
    """Every peer named: on for ``confirm_from``, off for the others of ``peers``."""
    words = ["server", "set", server, "--shutdown-strategy", shutdown_strategy.replace(" ", "-")]
    for peer in peers:
        words += ["--confirm-failover", f"{peer}={'on' if peer in confirm_from else 'off'}"]
    words += ["--confirm-timeout", str(timeout), "--confirm-default", default]
    return join(*words)


def resource_set(
    tag: str,
    switchback: str,
    priorities: list[tuple[str, object]],
    asynchronous: list[tuple[str, bool]] = [],  # noqa: B006 - never changed
    speed_limit_kbps: object = None,
) -> str:
    words = ["resource", "set", tag, "--switchback", switchback]
    for server, priority in priorities:
        words += ["--priority", f"{server}={str(priority).strip()}"]
    for server, on in asynchronous:
        words += ["--async", f"{server}={'on' if on else 'off'}"]
    if speed_limit_kbps is not None:
        words += ["--speed-limit", str(speed_limit_kbps).strip()]
    return join(*words)


def commpath_create(server: str, peer: str, local: str, remote: str, priority: object) -> str:
    words = [
        "commpath",
        "create",
        server,
        peer,
        "--local",
        local.strip(),
        "--remote",
        remote.strip(),
    ]
    if str(priority).strip():
        words += ["--priority", str(priority).strip()]
    return join(*words)


def commpath_delete(server: str, peer: str, path: object) -> str:
    return join("commpath", "delete", server, peer, "--path", str(path), "--yes")


def commpath_fault(action: str, server: str, peer: str, path: object = "") -> str:
    extra = ["--path", str(path)] if str(path).strip() else []
    return join("lab", f"commpath-{action}", server, peer, *extra)


def confirm_failover(server: str, accept: bool = True) -> str:
    return join("confirm-failover", server, *([] if accept else ["--deny"]))


def lab_shutdown(server: str) -> str:
    return join("lab", "stop", server, "--clean", "--yes")


def resize_mirror(tag: str, size: str) -> str:
    return join("mirror", "resize", tag, "--size", size)
