"""The project's own agents, installed where Pacemaker looks for them on a node.

- ``ocf:lkconsole:app`` (Generic Application) and ``ocf:lkconsole:datakeeper`` (the
  DataKeeper mirror) into the provider folder ``/usr/lib/ocf/resource.d/lkconsole``;
  ``datakeeper`` runs this installation's Python code, so its copy names this
  installation's folder (``LKCONSOLE_PROJECT``);
- the fence agent ``fence_lkswitch`` (the Pacemaker lab's switch) beside the system's
  fence agents (``/usr/sbin``, where Pacemaker's fencer finds ``fence_*``).

``lkctl cluster install-agents [DIR]`` runs :func:`install_agents` on a node; the
Pacemaker lab runs it into a folder of its own that every node mounts at those places.
Each file is written whole, then renamed into place (mode 0755), so a node never runs
half an agent.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import LkError

PROJECT = Path(__file__).resolve().parents[3]
OCF_SOURCE = PROJECT / "packaging" / "ocf" / "lkconsole"
FENCE_SOURCE = PROJECT / "packaging" / "ocf" / "fence"
OCF_AGENTS = ("app", "datakeeper")
FENCE_AGENTS = ("fence_lkswitch",)
OCF_DIR = Path("/usr/lib/ocf/resource.d/lkconsole")
FENCE_DIR = Path("/usr/sbin")
PROJECT_LINE = 'LKCONSOLE_PROJECT=""'


class InstallError(LkError):
    """An agent could not be installed (which, where, and why)."""


def _install(text: str, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o755)
        try:
            os.write(fd, text.encode())
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InstallError(f"cannot install {target}: {exc.strerror or exc}") from exc


def agent_text(name: str, project: Path = PROJECT) -> str:
    """The installed text of OCF agent ``name`` (``datakeeper`` names ``project``)."""
    text = (OCF_SOURCE / name).read_text()
    if name == "datakeeper":
        if PROJECT_LINE not in text:
            raise InstallError(f"{OCF_SOURCE / name} has no {PROJECT_LINE} line to fill in")
        text = text.replace(PROJECT_LINE, f'LKCONSOLE_PROJECT="{project}"', 1)
    return text


def install_agents(ocf_dir: Path = OCF_DIR, fence_dir: Path = FENCE_DIR) -> list[Path]:
    """Install the project's agents (see the module docstring); the files written."""
    if '"' in str(PROJECT) or "$" in str(PROJECT):
        raise InstallError(f"the project's folder {PROJECT} cannot be named in a shell script")
    written = []
    for folder in (ocf_dir, fence_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InstallError(f"cannot make {folder}: {exc.strerror or exc}") from exc
    for name in OCF_AGENTS:
        target = ocf_dir / name
        _install(agent_text(name), target)
        written.append(target)
    for name in FENCE_AGENTS:
        target = fence_dir / name
        _install((FENCE_SOURCE / name).read_text(), target)
        written.append(target)
    return written


__all__ = ["FENCE_DIR", "OCF_DIR", "InstallError", "agent_text", "install_agents"]
