"""Extend to one server after another ("Next Server"), each target with its own
synchronous or asynchronous mirror."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from core.backends.lab import LabBackend
from core.cli.cmd_extend import extend_request_from_args
from core.errors import CheckFailed
from core.model import MirrorState
from core.operations import extend
from core.rules.extend import ExtendRequest
from tests.core.labtools import digest, fill_source, wait_for_mirror
from tests.helpers import local_administrator, mounted_image, run_lkctl

ADMIN = local_administrator()
VOLUME = "/disks/datarep-data.img"


def test_next_server_defaults_and_a_mode_per_target(hermetic_env: Path) -> None:
    lab = LabBackend()
    try:
        fill_source(lab)
        first = extend.defaults(lab)
        assert (first.request.target_server, first.request.target_priority) == ("lab2", 10)
        assert first.pages[0].mirror_asynchronous is False
        extend.extend(lab, first.request, ADMIN)
        # The next server: the defaults recomputed for the same hierarchy.
        nxt = extend.defaults(lab, template_server="lab1", tag="/data")
        assert (nxt.request.target_server, nxt.request.target_priority) == ("lab3", 20)
        assert nxt.initial is False and "template_priority" not in nxt.shown
        dk = dataclasses.replace(nxt.request.datakeeper[0], asynchronous=True)
        request = dataclasses.replace(nxt.request, datakeeper=(dk,))
        plan = extend.plan(lab, request)
        assert "(asynchronous replication)" in plan.titles[1]
        assert plan.command.endswith("--async --accept-defaults")
        extend.execute(lab, plan, ADMIN)
        h = lab.snapshot().hierarchies[0]
        wait_for_mirror(lab, h.id, "lab2")
        wait_for_mirror(lab, h.id, "lab3")
        m = lab.snapshot().hierarchies[0].mirrors[0]
        assert [(t.server, t.asynchronous) for t in m.targets] == [("lab2", False), ("lab3", True)]
        # Writes reach both: the asynchronous one once its queue drained.
        lab.write("datarep-data", 4096, 300_000, ADMIN)
        source = digest(lab.layout.server_path("lab1", VOLUME))
        assert digest(lab.layout.server_path("lab2", VOLUME)) == source
        assert digest(lab.layout.server_path("lab3", VOLUME)) == source
        assert lab.snapshot().hierarchies[0].mirrors[0].target("lab3").state is MirrorState.TARGET  # type: ignore[union-attr]
    finally:
        lab.close()


def test_lkctl_extend_async_and_sync(hermetic_env: Path) -> None:
    dry = run_lkctl(["extend", "/data", "--accept-defaults", "--async", "--dry-run"])
    assert "    Replication            asynchronous\n" in dry.stdout
    assert "(asynchronous replication)" in dry.stdout
    assert run_lkctl(["extend", "/data", "--accept-defaults", "--async", "--wait"]).returncode == 0
    done = run_lkctl(["extend", "/data", "--accept-defaults", "--sync", "--json", "--wait"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["request"]["datakeeper"][0]["asynchronous"] is False
    status = json.loads(run_lkctl(["status", "--json"]).stdout)
    targets = status["hierarchies"][0]["mirrors"][0]["targets"]
    assert [(t["server"], t["asynchronous"]) for t in targets] == [("lab2", True), ("lab3", False)]
    both = run_lkctl(["extend", "/data", "--async", "--sync"])
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_a_target_typed_at_the_prompt_recomputes_the_datakeeper_defaults(
    hermetic_env: Path,
) -> None:
    """lab3's /opt/LifeKeeper is btrfs: typing lab3 (default lab2) moves the bitmap default,
    and the DataKeeper questions offer the moved one."""
    lab = LabBackend()
    try:
        with mounted_image(lab.layout.server_path("lab3", "/opt/LifeKeeper"), "btrfs", 128):
            asked: list[tuple[str, str]] = []

            def ask(label: str, default: str) -> str:
                asked.append((label, default))
                return "lab3" if label == "Target Server" else ""

            args = argparse.Namespace(
                tag="/data", template=None, target=None, switchback=None,
                template_priority=None, target_priority=None, mount_point=None,
                root_tag=None, dk_tag=None, bitmap=None, asynchronous=None,
                accept_defaults=False,
            )  # fmt: skip
            snapshot = lab.snapshot()
            request, d, missing = extend_request_from_args(args, lab, snapshot, ask)
            assert missing == [] and request.target_server == "lab3"
            moved = "/var/lib/LifeKeeper/bitmap_datarep-data"
            assert request.datakeeper[0].bitmap_file == moved
            assert ("Bitmap File (datarep-data)", moved) in asked
            assert "btrfs" in d.pages[0].bitmap_note
            assert extend.check(lab, request) == []
    finally:
        lab.close()


@pytest.mark.parametrize("value", ["yes", "async", 1, 0.5, [True]])
def test_a_replication_that_is_not_a_mode_is_refused_under_its_field(
    hermetic_env: Path, value: object
) -> None:
    """From a JSON request (a script): the mode must be true, false or none."""
    lab = LabBackend()
    try:
        before = lab.snapshot()
        d = extend.defaults(lab)
        raw = d.request.to_json()
        raw["datakeeper"][0]["asynchronous"] = value
        request = ExtendRequest.from_json(raw)
        problems = extend.check(lab, request)
        assert [(p.field, p.code) for p in problems] == [("asynchronous", "not_a_mode")]
        assert problems[0].resource_id == d.pages[0].resource_id
        assert repr(value) in problems[0].message and "Replication" in problems[0].message
        with pytest.raises(CheckFailed):
            extend.extend(lab, request, ADMIN)
        assert lab.snapshot() == before  # nothing changed
        assert lab.history() == []
    finally:
        lab.close()


@pytest.mark.parametrize(("answer", "mode"), [("async", True), ("sync", False), ("", None)])
def test_the_prompt_asks_for_the_replication_of_each_mirror(
    hermetic_env: Path, answer: str, mode: bool | None
) -> None:
    """lkctl extend at a terminal asks Replication as the Extend page does; Enter keeps the
    mirror's mode (sync for the lab's seed)."""
    lab = LabBackend()
    try:
        asked: list[tuple[str, str]] = []

        def ask(label: str, default: str) -> str:
            asked.append((label, default))
            return answer if label.startswith("Replication") else ""

        request, _d, missing = extend_request_from_args(_prompt_args(), lab, lab.snapshot(), ask)
        assert missing == []
        assert ("Replication, sync or async (datarep-data)", "sync") in asked
        assert request.datakeeper[0].asynchronous is mode
    finally:
        lab.close()


def test_an_answer_that_is_not_a_replication_mode_is_refused_under_its_field(
    hermetic_env: Path,
) -> None:
    lab = LabBackend()
    try:
        before = lab.snapshot()

        def ask(label: str, default: str) -> str:
            return "fast" if label.startswith("Replication") else ""

        _r, d, missing = extend_request_from_args(_prompt_args(), lab, before, ask)
        assert [(p.field, p.code, p.resource_id) for p in missing] == [
            ("asynchronous", "not_a_mode", d.pages[0].resource_id)
        ]
        assert "'fast' is not a mode: answer sync or async" in missing[0].message
        assert lab.snapshot() == before
    finally:
        lab.close()


def _prompt_args() -> argparse.Namespace:
    return argparse.Namespace(
        tag="/data", template=None, target=None, switchback=None,
        template_priority=None, target_priority=None, mount_point=None,
        root_tag=None, dk_tag=None, bitmap=None, asynchronous=None,
        accept_defaults=False,
    )  # fmt: skip
