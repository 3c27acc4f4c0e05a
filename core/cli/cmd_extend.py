"""``lkctl extend``: Extend Resource Hierarchy, and ``--wait`` for the resync."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from core.backend import Backend
from core.checks import Problem
from core.cli.auth import cluster
from core.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, hierarchy_json, print_json
from core.cli.parser import SubParsers, seconds
from core.errors import CheckFailed
from core.model import Cluster, MirrorState
from core.operations import extend
from core.permissions import Op
from core.rules import extend as rules
from core.rules.extend import ExtendDefaults, ExtendRequest
from core.status import mirror_text

# Which option fills which request field, and the question asked at a terminal.
_EXTEND_OPTIONS = (
    ("target_server", "target", "Target Server"),
    ("switchback_type", "switchback", "Switchback Type"),
    ("template_priority", "template_priority", "Template Priority"),
    ("target_priority", "target_priority", "Target Priority"),
)
_DK_OPTIONS = (
    ("mount_point", "mount_point", "Mount Point"),
    ("root_tag", "root_tag", "Root Tag"),
    ("dk_tag", "dk_tag", "DataKeeper Resource Tag"),
    ("bitmap_file", "bitmap", "Bitmap File"),
)
# How long a resync may show no process before --wait says it is gone (it takes its lock
# a moment after it was started).
PROCESS_GRACE_S = 10.0


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "extend",
        help="extend a resource hierarchy to another server",
        description="Extend Resource Hierarchy: copy the hierarchy TAG belongs to from the "
        "server where it is in service (the template) to a target server, and start the "
        "mirror resync. Without --accept-defaults, every option not given is asked for "
        "(at a terminal) or refused (in a script).",
    )
    p.add_argument("tag", metavar="TAG", help="any resource tag of the hierarchy (Tag to Extend)")
    p.add_argument("--target", metavar="SERVER", help="Target Server")
    p.add_argument("--template", metavar="SERVER", help="Template Server")
    p.add_argument("--target-priority", metavar="N", help="Target Priority (1-999)")
    p.add_argument(
        "--template-priority", metavar="N", help="Template Priority (1-999; initial extend only)"
    )
    p.add_argument("--switchback", metavar="TYPE", help="Switchback Type: intelligent|automatic")
    p.add_argument("--mount-point", metavar="PATH", help="Mount Point on the target")
    p.add_argument("--root-tag", metavar="TAG", help="Root Tag (the filesystem's tag)")
    p.add_argument("--dk-tag", metavar="TAG", help="DataKeeper Resource Tag")
    p.add_argument(
        "--bitmap",
        metavar="PATH|none",
        help="Bitmap File on the target, or none (every resync is full)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--async",
        dest="asynchronous",
        action="store_const",
        const=True,
        help="the mirror to this target replicates asynchronously",
    )
    mode.add_argument(
        "--sync",
        dest="asynchronous",
        action="store_const",
        const=False,
        help="the mirror to this target replicates synchronously (default: the mirror's mode)",
    )
    p.add_argument(
        "--accept-defaults", action="store_true", help="take the default of every option not given"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the defaults, the checks and the plan; change nothing",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--wait", action="store_true", help="follow the resync until the target is in sync"
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="with --wait: give up waiting after this long (the resync goes on)",
    )
    p.set_defaults(handler=cmd_extend, op=Op.EXTEND_HIERARCHY)


def extend_request_from_args(
    args: argparse.Namespace,
    backend: Backend,
    snapshot: Cluster,
    ask: Callable[[str, str], str] | None,
) -> tuple[ExtendRequest, ExtendDefaults, list[Problem]]:
    """The request lkctl's options describe; unspecified fields from defaults or ``ask``."""
    d = extend.defaults(
        backend, snapshot, template_server=args.template, tag=args.tag, target_server=args.target
    )
    base = d.request
    missing: list[Problem] = []

    def value(field_name: str, given: object, default: object, label: str) -> object:
        return _field_value(args, ask, missing, field_name, given, default, label)

    template = args.template or base.template_server
    fields: dict[str, Any] = {}
    for field_name, option, label in _EXTEND_OPTIONS:
        if field_name not in d.shown and getattr(args, option) is None:
            continue
        fields[field_name] = value(
            field_name, getattr(args, option), getattr(base, field_name), label
        )
        if field_name == "target_server" and fields[field_name] != base.target_server:
            # A target typed at the prompt changes every default that depends on it: the
            # priorities, and the DataKeeper pages (asked below from the new defaults).
            d = extend.defaults(
                backend,
                snapshot,
                template_server=template,
                tag=args.tag,
                target_server=str(fields[field_name]),
            )
            base = d.request
    dks = [
        dataclasses.replace(page.defaults, **_dk_entry(args, i, page, value, ask, missing))
        for i, page in enumerate(d.pages)
    ]
    target_server = fields.get("target_server", base.target_server)
    request = ExtendRequest(
        template_server=template,
        tag_to_extend=args.tag,
        target_server=str(target_server),
        switchback_type=str(fields.get("switchback_type", base.switchback_type)),
        target_priority=fields.get("target_priority", base.target_priority),
        template_priority=fields.get("template_priority", base.template_priority),
        datakeeper=tuple(dks),
    )
    return request, d, missing


def _field_value(
    args: argparse.Namespace,
    ask: Callable[[str, str], str] | None,
    missing: list[Problem],
    field_name: str,
    given: object,
    default: object,
    label: str,
) -> object:
    """The option given, else the default (--accept-defaults), else the answer to ``ask``;
    without ``ask``, the default, and a ``not_given`` problem added to ``missing``."""
    if given is not None:
        return given
    if args.accept_defaults:
        return default
    if ask is not None:
        answer = ask(label, "" if default is None else str(default))
        return answer if answer != "" else default
    option = "--" + next(
        o for f, o, _ in (*_EXTEND_OPTIONS, *_DK_OPTIONS) if f == field_name
    ).replace("_", "-")
    shown = "none" if default is None and field_name == "bitmap_file" else default
    missing.append(
        Problem(
            field_name,
            "not_given",
            f"no value given (default {shown}); pass {option} {shown} or --accept-defaults",
        )
    )
    return default


def _dk_entry(
    args: argparse.Namespace,
    index: int,
    page: rules.DataKeeperPage,
    value: Callable[[str, object, object, str], object],
    ask: Callable[[str, str], str] | None = None,
    missing: list[Problem] | None = None,
) -> dict[str, Any]:
    """The Extend page fields of one DataKeeper resource (options apply to the first)."""
    entry: dict[str, Any] = {}
    for field_name, option, label in _DK_OPTIONS:
        if field_name not in page.shown:
            continue
        given = getattr(args, option) if index == 0 else None
        if field_name == "bitmap_file" and isinstance(given, str) and given.lower() == "none":
            entry[field_name] = None
            continue
        default = getattr(page.defaults, field_name)
        got = value(field_name, given, default, f"{label} ({page.template_dk_tag})")
        if field_name == "bitmap_file" and isinstance(got, str) and got.lower() == "none":
            got = None
        entry[field_name] = got
    if args.asynchronous is not None:  # every mirror of the hierarchy, to this target
        entry["asynchronous"] = bool(args.asynchronous)
    elif ask is not None and not args.accept_defaults:
        entry["asynchronous"] = _ask_replication(ask, page, missing)
    return entry


_MODES = {"sync": False, "synchronous": False, "async": True, "asynchronous": True}


def _ask_replication(
    ask: Callable[[str, str], str], page: rules.DataKeeperPage, missing: list[Problem] | None
) -> bool | None:
    """The Extend page's Replication, asked at the prompt (Enter keeps the mirror's mode);
    an answer that is not a mode is a problem under its field."""
    default = "async" if page.defaults.asynchronous or page.mirror_asynchronous else "sync"
    answer = ask(f"Replication, sync or async ({page.template_dk_tag})", default).lower()
    if answer == "":
        return None
    if answer in _MODES:
        return _MODES[answer]
    if missing is not None:
        missing.append(
            Problem(
                "asynchronous",
                "not_a_mode",
                f"Replication {answer!r} is not a mode: answer sync or async",
                page.resource_id,
            )
        )
    return None


def _prompt(label: str, default: str) -> str:
    return input(f"{label} [{default}]: ").strip()


def cmd_extend(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        snapshot = backend.snapshot()
        at_terminal = not args.accept_defaults and not args.json and sys.stdin.isatty()
        request, d, missing = extend_request_from_args(
            args, backend, snapshot, _prompt if at_terminal else None
        )
        if missing:
            raise CheckFailed(missing)
        facts = extend.facts_for(backend, snapshot, request)
        problems = rules.check_request(snapshot, facts, request)
        if args.dry_run:
            titles = [] if problems else extend.plan_of(snapshot, facts, request).titles
            _print_dry_run(args, out, request, d, problems, titles)
            return EXIT_USAGE if problems else EXIT_OK
        if problems:
            raise CheckFailed(problems)
        the_plan = extend.plan_of(snapshot, facts, request)

        def on_step(index: int, total: int, title: str, status: str) -> None:
            if not args.json and status != "running":
                print(f"[{index + 1}/{total}] {title}: {status}", file=out, flush=True)

        result = extend.execute(backend, the_plan, session, on_step=on_step)
        if args.wait:
            trouble = wait_for_target(
                backend,
                result.hierarchy_id,
                request.target_server,
                None if args.json else sys.stderr,
                timeout=args.timeout,
            )
            if trouble:
                if not args.json:
                    sys.stderr.write("\n")  # end the progress bar's line
                print(f"lkctl: {trouble}", file=sys.stderr)
                return EXIT_FAILED
        if args.json:
            after = backend.snapshot()
            print_json(
                out,
                {
                    "ok": True,
                    "request": request.to_json(),
                    "steps": list(result.steps),
                    "message": result.message,
                    "hierarchy": hierarchy_json(after.hierarchy(result.hierarchy_id), after),
                },
            )
        else:
            print(result.message, file=out)
        return EXIT_OK


def _print_dry_run(
    args: argparse.Namespace,
    out: TextIO,
    request: ExtendRequest,
    d: ExtendDefaults,
    problems: list[Problem],
    titles: list[str],
) -> None:
    if args.json:
        notes = d.notes | {
            f"bitmap_file:{p.resource_id}": p.bitmap_note for p in d.pages if p.bitmap_note
        }
        print_json(
            out,
            {
                "request": request.to_json(),
                "shown": list(d.shown),
                "notes": notes,
                "problems": [dataclasses.asdict(p) for p in problems],
                "plan": titles,
            },
        )
        return
    print("Extend Resource Hierarchy (dry run: nothing is changed)", file=out)
    for name in rules.PRE_EXTEND_FIELDS:
        if name in d.shown:
            print(f"  {rules.LABELS[name]:<24} {getattr(request, name)}", file=out)
    for page in d.pages:
        dk = request.datakeeper_for(page.resource_id) or page.defaults
        print(f"  DataKeeper resource {page.template_dk_tag}:", file=out)
        for name in page.shown:
            value = getattr(dk, name)
            shown = "None (every resync is a full resync)" if value is None else value
            print(f"    {rules.LABELS[name]:<22} {shown}", file=out)
        mode = page.mirror_asynchronous if dk.asynchronous is None else dk.asynchronous
        own = " (the mirror's mode)" if dk.asynchronous is None else ""
        replication = f"{'asynchronous' if mode else 'synchronous'}{own}"
        print(f"    {rules.LABELS['asynchronous']:<22} {replication}", file=out)
        if page.bitmap_note:
            print(f"    note: {page.bitmap_note}", file=out)
    if problems:
        print("Checks failed:", file=out)
        for p in problems:
            print(f"  {p.field}: {p.message}", file=out)
        return
    print("Pre-extend checks were successful.", file=out)
    print("Plan:", file=out)
    for i, title in enumerate(titles, 1):
        print(f"  {i}. {title}", file=out)


def wait_for_target(
    backend: Backend,
    hierarchy_id: int,
    target: str,
    bar: TextIO | None,
    *,
    timeout: float | None = None,
    poll: float = 0.2,
) -> str:
    """Follow the mirror targets on ``target`` until every one is Target.

    Returns "" when they are, else why the wait ended: a target out of sync, the resync
    process gone (nothing is copying any more), or ``timeout`` seconds passed (the resync
    goes on in the background).
    """
    started = time.monotonic()
    missing_since: dict[int, float] = {}
    while True:
        h = backend.snapshot().hierarchy(hierarchy_id)
        rows = [(m, t) for m in (h.mirrors if h else ()) for t in m.targets if t.server == target]
        if not rows:
            return f"the mirror target {target} is gone (unextended meanwhile?)"
        bad = next((t for _m, t in rows if t.state is not _GOING and t.state is not _DONE), None)
        if bad is not None:
            why = f" ({bad.reason})" if bad.reason else ""
            return f"the resync to {target} stopped: {bad.state.label}{why}"
        if all(t.state is _DONE for _m, t in rows):
            if bar is not None:
                bar.write(f"\r{target}: Target (in sync){' ' * 30}\n")
            return ""
        now = time.monotonic()
        for m, t in rows:
            if t.state is not _GOING or backend.resync_running(m.resource_id, target) is not False:
                missing_since.pop(m.resource_id, None)
                continue
            since = missing_since.setdefault(m.resource_id, now)
            if now - since >= PROCESS_GRACE_S:
                return (
                    f"the resync process to {target} is gone ({t.percent} % copied, nothing "
                    "is copying any more); it is restarted the next time the lab is opened, "
                    f"e.g. by `lkctl mirror resume {h.tag_of(m.resource_id) if h else ''} "
                    f"--target {target}`"
                )
        if timeout is not None and now - started >= timeout:
            _m, t = rows[0]
            return (
                f"still resyncing to {target} after {timeout:g} s ({mirror_text(t)}); the "
                "resync goes on in the background (lkctl mirror status)"
            )
        if bar is not None:
            t = rows[0][1]
            filled = t.percent * 30 // 100
            bar.write(f"\r{target}: [{'#' * filled}{'.' * (30 - filled)}] {mirror_text(t)}   ")
            bar.flush()
        threading.Event().wait(poll)


_GOING = MirrorState.RESYNCING
_DONE = MirrorState.TARGET
