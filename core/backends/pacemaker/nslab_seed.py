"""The Pacemaker lab's seed, like the folder lab's: ``/data``, an ext4 file system on the
DataKeeper mirror ``datarep-data`` (a 64 MiB volume in ``servers/lab1/disks/``), in
service on lab1 with priority 1, not extended.

Done on lab1 through the agent's own admin commands (the volume, the file system made
once and then kept across ``up``s, the mirror's key), then one CIB change built with
:func:`~core.backends.pacemaker.cib_dk.new_mirrored_hierarchy` and the first copy's
generation. :func:`seed` waits until /data is mounted on lab1.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import cib_dk
from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker.nslab_files import node_address
from core.backends.pacemaker.nslab_proc import LabError
from core.model import SwitchbackType, default_bitmap_file

FS_TAG = "/data"
DK_TAG = "datarep-data"
VOLUME = f"/disks/{DK_TAG}.img"
SIZE = 64 * 1024 * 1024
SERVER = "lab1"
PORT = names.PORT_BASE
SEED_TIMEOUT = 60.0

Exec = Callable[..., tuple[int, str, str]]  # nslab.exec bound to a home


def _run(run: Exec, *argv: str, timeout: float = 60.0, input_text: str | None = None) -> str:
    rc, out, err = run(SERVER, list(argv), timeout, input_text)
    if rc != 0:
        raise LabError(f"seeding /data: {' '.join(argv[:4])} on {SERVER}: {err.strip() or rc}")
    return out


def prepare_volume(run: Exec, data_dir: Path) -> None:
    """The volume with its ext4 (made once: a kept volume keeps its data) and the key."""
    agent = names.AGENT_IN_NODE
    if not (data_dir / Path(VOLUME).name).exists():
        _run(run, agent, "admin", "make-disk", VOLUME, str(SIZE))
        _run(run, agent, "admin", "mkfs", VOLUME, "ext4", timeout=120)
    _run(run, agent, "admin", "key-new", DK_TAG)


def seeded_cib(current: ET.Element) -> ET.Element:
    """A copy of ``current`` with the seed's hierarchy (Refused if its tags are taken)."""
    work = cibxml.copy_of(current)
    cib_dk.new_mirrored_hierarchy(
        work,
        fs_tag=FS_TAG,
        dk_tag=DK_TAG,
        volume=VOLUME,
        size=SIZE,
        mount_point=FS_TAG,
        fs_type="ext4",
        server=SERVER,
        addresses={SERVER: str(node_address(SERVER))},
        bitmap=default_bitmap_file(DK_TAG),
        port=PORT,
        switchback=SwitchbackType.INTELLIGENT,
    )
    return work


def seed(run: Exec, data_dir: Path) -> None:
    """Seed a lab that has none of it yet (see the module docstring)."""
    current = cibxml.parse(_run(run, "cibadmin", "--query"))
    if cibxml.find_tag(current, FS_TAG) or cibxml.find_tag(current, DK_TAG):
        return
    prepare_volume(run, data_dir)
    # the first copy's generation first: the configuration pushed next carries it
    _run(run, *cib_dk.first_generation(cibxml.tag_to_id(DK_TAG), SERVER))
    work = seeded_cib(cibxml.parse(_run(run, "cibadmin", "--query")))
    configuration = work.find("configuration")
    assert configuration is not None
    _run(run, "cibadmin", "--replace", "--scope", "configuration", "--xml-pipe",
         input_text=ET.tostring(configuration, encoding="unicode"))  # fmt: skip
    fs_id = cibxml.tag_to_id(FS_TAG)
    deadline = time.monotonic() + SEED_TIMEOUT
    pause = 0.2
    while True:
        rc, out, _err = run(SERVER, ["crm_resource", "--locate", "--resource", fs_id], 10.0, None)
        if rc == 0 and f"is running on: {SERVER}" in out:
            return
        if time.monotonic() > deadline:
            raise LabError(f"/data did not come in service on {SERVER} within {SEED_TIMEOUT:g} s")
        time.sleep(pause)


__all__ = ["DK_TAG", "FS_TAG", "SIZE", "VOLUME", "prepare_volume", "seed", "seeded_cib"]
