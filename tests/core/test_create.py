"""Create Resource Hierarchy in core and lkctl."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backends.lab import LabBackend
from core.backends.lab.probe import FS_LABEL, fs_label
from core.errors import CheckFailed, OperationError, PermissionDenied
from core.model import ResourceKind, ResourceState, Role
from core.operations import create, extend
from core.rules import create as create_rules
from core.session import Session
from tests.core.labtools import settled_digest, wait_for_mirror
from tests.helpers import db_digest, local_administrator, mounted_image, read_only_dir, run_lkctl


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    backend = LabBackend()
    yield backend
    backend.close()


def _request(lab: LabBackend, **changes: object) -> create.CreateRequest:
    kind = str(changes.get("hierarchy_type", create_rules.NEW_FS))
    d = create.defaults(lab, hierarchy_type=kind)
    return dataclasses.replace(d.request, **changes)  # type: ignore[arg-type]


def test_defaults_propose_a_free_disk_mount_point_and_tags(lab: LabBackend) -> None:
    d = create.defaults(lab)
    assert d.request == create.CreateRequest(
        server="lab1",
        hierarchy_type="new_fs",
        source_disk="/disks/datarep-data2.img",
        disk_size_mib=64,
        mount_point="/data2",
        root_tag="/data2",
        fs_type="ext4",
        dk_tag="datarep-data2",
        bitmap_file="/opt/LifeKeeper/bitmap_datarep-data2",
        asynchronous=False,
        switchback_type="intelligent",
    )
    assert "mount_point" in d.shown
    dk_only = create.defaults(lab, hierarchy_type=create_rules.DK_ONLY)
    assert "mount_point" not in dk_only.shown and dk_only.request.mount_point is None


def test_create_makes_a_real_volume_and_puts_it_in_service(lab: LabBackend) -> None:
    result = create.create(lab, _request(lab), local_administrator())
    h = lab.store.hierarchy(result.hierarchy_id)
    assert h is not None
    assert h.root_tag == "/data2" and h.in_service_server == "lab1"
    assert h.priority_of("lab1") == 1
    assert [(r.kind, r.tag, r.state) for r in h.instances_on("lab1")] == [
        (ResourceKind.FILESYSTEM, "/data2", ResourceState.ISP),
        (ResourceKind.DATAKEEPER, "datarep-data2", ResourceState.ISP),
    ]
    volume = lab.layout.server_path("lab1", "/disks/datarep-data2.img")
    assert volume.stat().st_size == 64 * 1024 * 1024
    assert fs_label(volume) == "ext4"
    assert lab.layout.server_path("lab1", "/opt/LifeKeeper/bitmap_datarep-data2").is_file()
    # ... and it extends like the seed does.
    d = extend.defaults(lab, tag="/data2", from_create=True)
    assert "template_server" not in d.shown and d.request.template_server == "lab1"
    extend.extend(lab, d.request, local_administrator())
    wait_for_mirror(lab, result.hierarchy_id, "lab2")


def test_existing_file_system_needs_one(lab: LabBackend) -> None:
    first = create.create(
        lab, _request(lab, hierarchy_type=create_rules.DK_ONLY), local_administrator()
    )
    raw = lab.layout.server_path("lab1", "/disks/other.img")
    raw.write_bytes(b"\0" * 65536)
    problems = create.check(
        lab,
        cluster=lab.snapshot(),
        request=_request(
            lab, hierarchy_type=create_rules.EXISTING_FS, source_disk="/disks/other.img"
        ),
    )
    assert [(p.field, p.code) for p in problems] == [("source_disk", "no_file_system")]
    labelled = lab.layout.server_path("lab1", "/disks/fs.img")
    labelled.write_bytes(FS_LABEL + b"xfs" + b"\0" * 65536)
    ok = _request(
        lab,
        hierarchy_type=create_rules.EXISTING_FS,
        source_disk="/disks/fs.img",
        disk_size_mib=None,
    )
    assert create.check(lab, ok) == []
    result = create.create(lab, ok, local_administrator())
    h = lab.store.hierarchy(result.hierarchy_id)
    assert h is not None and h.instance(h.root_id, "lab1").fs_type == "xfs"  # type: ignore[union-attr]
    assert labelled.read_bytes().startswith(FS_LABEL + b"xfs")  # content kept
    assert first.root_tag == "datarep-data2"


BAD = [
    ({"server": "lab9"}, "server", "unknown_server"),
    ({"switchback_type": "automatic"}, "switchback_type", "automatic_with_datakeeper"),
    ({"hierarchy_type": "raid"}, "hierarchy_type", "unknown_type"),
    ({"source_disk": ""}, "source_disk", "bad_path"),
    ({"source_disk": "disks/x.img"}, "source_disk", "bad_path"),
    ({"source_disk": "/etc/passwd"}, "source_disk", "not_a_disk"),
    ({"source_disk": "/disks/datarep-data.img"}, "source_disk", "disk_in_use"),
    ({"disk_size_mib": 0}, "disk_size_mib", "out_of_range"),
    ({"disk_size_mib": "big"}, "disk_size_mib", "not_integer"),
    ({"disk_size_mib": 10**9}, "disk_size_mib", "out_of_range"),
    ({"mount_point": "/"}, "mount_point", "root_mount_point"),
    ({"mount_point": "rel"}, "mount_point", "bad_path"),
    ({"mount_point": "/data"}, "mount_point", "mount_point_protected"),
    ({"root_tag": "/data"}, "root_tag", "tag_in_use"),
    ({"root_tag": "a b"}, "root_tag", "tag_bad_characters"),
    ({"fs_type": "fat32"}, "fs_type", "unknown_fs_type"),
    ({"dk_tag": "datarep-data"}, "dk_tag", "tag_in_use"),
    ({"dk_tag": ""}, "dk_tag", "tag_empty"),
    ({"dk_tag": "/data2"}, "dk_tag", "tag_repeated"),
    ({"bitmap_file": "bitmap"}, "bitmap_file", "bad_path"),
    ({"bitmap_file": "/opt/LifeKeeper"}, "bitmap_file", "bitmap_is_directory"),
]


@pytest.mark.parametrize(("changes", "field", "code"), BAD)
def test_bad_input_is_a_problem_of_its_field(
    lab: LabBackend, changes: dict[str, object], field: str, code: str
) -> None:
    before = settled_digest(lab)
    problems = create.check(lab, _request(lab, **changes))
    assert (field, code) in [(p.field, p.code) for p in problems], problems
    with pytest.raises(CheckFailed):
        create.plan(lab, _request(lab, **changes))
    lab.close()
    assert db_digest(lab.store.home) == before


def test_only_an_administrator_creates(lab: LabBackend) -> None:
    the_plan = create.plan(lab, _request(lab))
    with pytest.raises(PermissionDenied):
        create.execute(lab, the_plan, Session("op", Role.OPERATOR))
    assert len(lab.snapshot().hierarchies) == 1


def test_a_bitmap_on_btrfs_is_refused_before_anything_runs(lab: LabBackend) -> None:
    with mounted_image(lab.layout.server_path("lab1", "/btr"), "btrfs", 128):
        problems = create.check(
            lab, cluster=lab.snapshot(), request=_request(lab, bitmap_file="/btr/bitmap")
        )
    assert [(p.field, p.code) for p in problems] == [("bitmap_file", "bitmap_on_btrfs")]


def test_a_failing_step_undoes_the_new_disk(lab: LabBackend) -> None:
    the_plan = create.plan(lab, _request(lab))
    with (
        read_only_dir(lab.layout.server_path("lab1", "/opt/LifeKeeper")),
        pytest.raises(OperationError) as err,
    ):
        create.execute(lab, the_plan, local_administrator())
    assert err.value.step is not None and "Create DataKeeper resource" in err.value.step
    assert len(lab.snapshot().hierarchies) == 1
    assert not lab.layout.server_path("lab1", "/disks/datarep-data2.img").exists()
    assert lab.store.integrity_check() == "ok"


def test_lkctl_create(lab: LabBackend) -> None:
    done = run_lkctl(["create", "--server", "lab2", "--accept-defaults", "--json"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["hierarchy"]["root"] == "/data2"
    assert data["hierarchy"]["in_service_on"] == "lab2"
    refused = run_lkctl(["create", "--server", "lab2"])
    assert refused.returncode == 2
    assert "server: no value given" not in refused.stderr  # given
    assert "dk_tag: no value given (default datarep-data3)" in refused.stderr
    bad = run_lkctl(["create", "--accept-defaults", "--type", "raid"])
    assert bad.returncode == 2 and bad.stderr.startswith("hierarchy_type: ")
