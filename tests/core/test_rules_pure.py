"""The rules do no I/O: with open, stat, statvfs, access and listing made to fail, every
rule still answers, from the facts gathered beforehand (DESIGN.md: rules are pure)."""

from __future__ import annotations

import builtins
import dataclasses
import os
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import core.rules
from core import availability, properties, status
from core.availability import Connection, Selection
from core.backends.lab import LabBackend
from core.facts import Facts, gather
from core.rules import create, extend, hierarchy, mirror, service
from tests.helpers import mounted_image

RULE_MODULES = [m.name for m in pkgutil.walk_packages(core.rules.__path__, "core.rules.")]


class IOAttempted(AssertionError):
    """A rule touched the file system."""


IO_NAMES = ("open", "stat", "lstat", "statvfs", "access", "listdir", "scandir")

IMPORT_WITHOUT_IO = """
import builtins, os, pkgutil, importlib, sys
def refuse(name):
    def call(*args, **kwargs):
        raise AssertionError(f"importing a rule module called {name}{args!r}")
    return call
import core.rules
names = [m.name for m in pkgutil.walk_packages(core.rules.__path__, "core.rules.")]
for name in %r:
    setattr(os, name, refuse("os." + name))
builtins.open = refuse("open")
for name in names:
    importlib.import_module(name)
print(len(names))
"""


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    backend = LabBackend()
    yield backend
    backend.close()


def _facts(lab: LabBackend) -> Facts:
    cluster = lab.snapshot()
    request = extend.defaults(cluster, gather(lab, extend.needs(cluster))).request
    wanted = (
        extend.needs(cluster)
        | extend.needs(cluster, request)
        | extend.needs(cluster, target_server="lab3")
        | create.defaults_needs(cluster, "lab2")
    )
    facts = gather(lab, wanted)
    new = create.defaults(cluster, facts, server="lab2").request
    return gather(lab, create.needs(cluster, new), facts)


def test_every_rule_module_imports_without_io() -> None:
    """In a fresh interpreter, with the I/O functions made to fail before the import."""
    import subprocess
    import sys

    from tests.helpers import REPO

    done = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT_IO % (IO_NAMES,)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(RULE_MODULES) >= 6


def test_the_rules_of_every_operation_run_without_io(
    lab: LabBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, facts = lab.snapshot(), _facts(lab)
    with monkeypatch.context() as patch:
        for name in IO_NAMES:
            patch.setattr(os, name, _refuse(f"os.{name}"))
        patch.setattr(builtins, "open", _refuse("open"))
        d = extend.defaults(cluster, facts)
        assert d.request.target_server == "lab2"
        assert extend.check_request(cluster, facts, d.request) == []
        steps = extend.plan_steps(cluster, facts, d.request)
        assert type(steps[0]).__name__ == "CreateDataKeeperTarget"
        bad = dataclasses.replace(d.request, target_priority="1")
        codes = [p.code for p in extend.check_request(cluster, facts, bad)]
        assert codes == ["same_as_template_priority"]
        other = extend.defaults(cluster, facts, target_server="lab3")
        assert other.request.target_server == "lab3"
        new = create.defaults(cluster, facts, server="lab2")
        assert create.check_request(cluster, facts, new.request) == []
        assert create.plan_steps(cluster, facts, new.request)
        unextend = hierarchy.UnextendRequest("/data", "lab1")
        assert [p.code for p in hierarchy.unextend_problems(cluster, unextend)] == [
            "in_service_here"
        ]
        assert hierarchy.delete_steps(cluster, hierarchy.DeleteRequest("/data"))
        _h, out = service.out_of_service_steps(cluster, "/data")
        assert out[0].title.startswith("/data out of service on lab1")
        ref = mirror.find(cluster, "datarep-data")
        assert mirror.status(ref)[0].role == "Source"
        for action in availability.ACTIONS:
            availability.availability(cluster, Selection(), Connection())[action]
        properties.properties(cluster, Selection(server="lab1"))
        h = cluster.hierarchies[0]
        assert status.cell(h, h.root_id, "lab1") is not None


def test_a_btrfs_bitmap_is_known_from_the_facts_after_the_disk_is_gone(
    lab: LabBackend, hermetic_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = lab.snapshot()
    with mounted_image(hermetic_env / "servers/lab2/opt/LifeKeeper", "btrfs", 120):
        facts = gather(lab, extend.needs(cluster, target_server="lab2"))
    with monkeypatch.context() as patch:  # the btrfs is unmounted: the facts remember it
        for name in IO_NAMES:
            patch.setattr(os, name, _refuse(f"os.{name}"))
        d = extend.defaults(cluster, facts, target_server="lab2")
        page = d.pages[0]
        assert page.defaults.bitmap_file == "/var/lib/LifeKeeper/bitmap_datarep-data"
        assert "is on btrfs" in page.bitmap_note
        moved_back = dataclasses.replace(
            d.request,
            datakeeper=(
                dataclasses.replace(
                    page.defaults, bitmap_file="/opt/LifeKeeper/bitmap_datarep-data"
                ),
            ),
        )
        wanted = extend.needs(cluster, moved_back)
        assert facts.has(wanted)
        codes = [p.code for p in extend.check_request(cluster, facts, moved_back)]
        assert codes == ["bitmap_on_btrfs"]


def _refuse(name: str):  # type: ignore[no-untyped-def]
    def call(*args: object, **kwargs: object) -> object:
        raise IOAttempted(f"a rule called {name}{args!r}")

    return call
