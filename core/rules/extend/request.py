"""Extend Resource Hierarchy: the request, and the names of its fields and pages."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.checks import Problem
from core.model import SwitchbackType

LABELS = {
    "template_server": "Template Server",
    "tag_to_extend": "Tag to Extend",
    "target_server": "Target Server",
    "switchback_type": "Switchback Type",
    "template_priority": "Template Priority",
    "target_priority": "Target Priority",
    "mount_point": "Mount Point",
    "root_tag": "Root Tag",
    "dk_tag": "DataKeeper Resource Tag",
    "bitmap_file": "Bitmap File",
    "asynchronous": "Replication",
}
PRE_EXTEND_FIELDS = (
    "template_server",
    "tag_to_extend",
    "target_server",
    "switchback_type",
    "template_priority",
    "target_priority",
)
EXTEND_FIELDS = ("mount_point", "root_tag", "dk_tag", "bitmap_file")
PRE_EXTEND_PAGE = "pre_extend"
EXTEND_PAGE = "extend"
NO_BITMAP_NOTE = "No bitmap: no intent log is kept, so every resync will be a full resync."


@dataclass(frozen=True)
class DataKeeperExtend:
    """The Extend page of one DataKeeper resource."""

    resource_id: int
    dk_tag: str
    bitmap_file: str | None  # None: no bitmap (every resync is full)
    mount_point: str | None = None  # only with a protected filesystem on top
    root_tag: str | None = None  # the filesystem's tag on the target
    asynchronous: bool | None = None  # this target's mirror mode (None: the mirror's)


@dataclass(frozen=True)
class ExtendRequest:
    """Everything the wizard's pages or lkctl's options say, values as typed."""

    template_server: str
    tag_to_extend: str
    target_server: str
    switchback_type: str = SwitchbackType.INTELLIGENT.value
    target_priority: int | str = ""
    template_priority: int | str | None = None  # only on the initial extend
    datakeeper: tuple[DataKeeperExtend, ...] = ()

    def datakeeper_for(self, resource_id: int) -> DataKeeperExtend | None:
        return next((d for d in self.datakeeper if d.resource_id == resource_id), None)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExtendRequest:
        dks = tuple(DataKeeperExtend(**d) for d in data.get("datakeeper", ()))
        return cls(**{**data, "datakeeper": dks})


def _p(field_name: str, code: str, message: str) -> Problem:
    """A problem of a request field (of no DataKeeper resource in particular)."""
    return Problem(field_name, code, message)
