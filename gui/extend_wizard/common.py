"""What the pages of the Extend wizard share: their ids, and the fields' tooltips."""

from __future__ import annotations

import enum


class Page(enum.IntEnum):
    INTRO = 0
    PRE_EXTEND = 1
    CHECKS = 2
    EXTEND = 10  # + the index of the DataKeeper resource
    PROGRESS = 90
    FINISH = 91


TIPS = {
    "template_server": "The server where the hierarchy is in service now.",
    "tag_to_extend": "Any resource of the hierarchy; the whole hierarchy is extended.",
    "target_server": "An alive server that does not have this hierarchy yet.",
    "switchback_type": "DataKeeper hierarchies support intelligent switchback only.",
    "template_priority": "The template server's priority (1-999, lower is preferred).",
    "target_priority": "The target server's priority (1-999, unique for this hierarchy).",
    "mount_point": "Where the filesystem is mounted on the target (absolute path).",
    "root_tag": "The filesystem resource's tag on the target.",
    "dk_tag": "The DataKeeper resource's tag on the target.",
    "bitmap_file": "The intent log's file on the target; not on btrfs. Or None.",
}
