"""Extend Resource Hierarchy: defaults and checks (pure: DOMAIN.md is the specification).

The wizard and ``lkctl extend`` both build an :class:`ExtendRequest`, ask
:func:`defaults` for every default, :func:`check_field` / :func:`check_page` /
:func:`check_request` for the problems, and :func:`plan_steps` for the steps a user
will see (``core.operations.extend`` runs them through the backend). Nothing here does
I/O: what the rules must know about the target's disks (is a bitmap location on btrfs,
writable, how much room the volume has) comes in :class:`~core.facts.Facts`, gathered
beforehand; :func:`needs` says which.

By layer: :mod:`.request` (the request, its fields and pages), :mod:`.defaults` (the
defaults, the information boxes, the Extend pages), :mod:`.checks` (the problems),
:mod:`.plan` (the facts needed, the steps). Every public name is here as well.
"""

from __future__ import annotations

from core.rules.extend.checks import (
    check_field,
    check_page,
    check_request,
    pre_extend_field_problems,
)
from core.rules.extend.defaults import (
    DataKeeperPage,
    ExtendDefaults,
    InfoBox,
    default_target_priority,
    defaults,
    info_boxes,
)
from core.rules.extend.plan import complete, done_message, hierarchy_of, needs, plan_steps
from core.rules.extend.request import (
    EXTEND_FIELDS,
    EXTEND_PAGE,
    LABELS,
    NO_BITMAP_NOTE,
    PRE_EXTEND_FIELDS,
    PRE_EXTEND_PAGE,
    DataKeeperExtend,
    ExtendRequest,
)

__all__ = [
    "EXTEND_FIELDS",
    "EXTEND_PAGE",
    "LABELS",
    "NO_BITMAP_NOTE",
    "PRE_EXTEND_FIELDS",
    "PRE_EXTEND_PAGE",
    "DataKeeperExtend",
    "DataKeeperPage",
    "ExtendDefaults",
    "ExtendRequest",
    "InfoBox",
    "check_field",
    "check_page",
    "check_request",
    "complete",
    "default_target_priority",
    "defaults",
    "done_message",
    "hierarchy_of",
    "info_boxes",
    "needs",
    "plan_steps",
    "pre_extend_field_problems",
]
