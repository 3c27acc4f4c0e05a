"""``lkctl mirror …``: status and actions of the DataKeeper mirrors."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TextIO

from core.cli import cmd_resize
from core.cli.auth import cluster, confirm
from core.cli.output import EXIT_OK, print_json, print_lines, table
from core.cli.parser import Parser, SubParsers, add_yes
from core.operations import mirror as mirror_ops
from core.operations import service
from core.permissions import Op


def register(sub: SubParsers) -> None:
    m = sub.add_parser("mirror", help="DataKeeper mirrors: status and actions")
    msub = m.add_subparsers(dest="mirror_command", metavar="ACTION", parser_class=Parser)
    msub.required = True
    st = msub.add_parser("status", help="role, state, progress, rate and ETA per target")
    st.add_argument("tag", metavar="TAG", nargs="?", help="a DataKeeper resource (default: all)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=cmd_mirror_status, op=Op.VIEW)
    for name, text, op in (
        ("pause", "stop replicating (writes only mark the bitmap)", Op.PAUSE_MIRROR),
        ("resume", "resync what was missed, then replicate", Op.RESUME_MIRROR),
        ("fullresync", "copy every chunk again", Op.FULL_RESYNC),
    ):
        a = msub.add_parser(name, help=text)
        a.add_argument("tag", metavar="TAG")
        a.add_argument("--target", metavar="SERVER", help="one target (default: every one)")
        if name == "fullresync":
            add_yes(a)
        a.set_defaults(handler=cmd_mirror_action, action=name, op=op)
    ver = msub.add_parser(
        "verify", help="online verify: compare target and source, chunk by chunk; mark what differs"
    )
    ver.add_argument("tag", metavar="TAG")
    ver.add_argument("--target", metavar="SERVER", help="one target (default: every one)")
    ver.add_argument("--repair", action="store_true", help="resync what differs")
    ver.add_argument(
        "--method",
        default="blake2b",
        metavar="blake2b|bytes",
        help="compare blake2b checksums of each chunk (default), or the bytes "
        "themselves (faster here: both copies are local files)",
    )
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(handler=cmd_mirror_verify, op=Op.VERIFY_MIRROR)
    force = msub.add_parser(
        "force", help="bring a copy that waits for the previous source online (may be stale)"
    )
    force.add_argument("tag", metavar="TAG")
    force.add_argument("--on", metavar="SERVER", required=True, dest="server")
    add_yes(force)
    force.set_defaults(handler=cmd_mirror_force, op=Op.FORCE_ONLINE)
    sp = msub.add_parser("speed", help="resync speed limit in KB/s (0 = unlimited)")
    sp.add_argument("tag", metavar="TAG")
    sp.add_argument("kbps", metavar="KBPS", type=int)
    sp.set_defaults(handler=cmd_mirror_speed, op=Op.SPEED_LIMIT)
    cmd_resize.register(msub)


def cmd_mirror_status(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        session.require(Op.VIEW)
        if args.tag:
            refs = [mirror_ops.find(backend, args.tag)]
        else:
            snapshot = backend.snapshot()
            refs = [
                mirror_ops.find(backend, h.tag_of(m.resource_id))
                for h in snapshot.hierarchies
                for m in h.mirrors
            ]
        data: list[dict[str, Any]] = [
            {
                "tag": ref.tag,
                "source": ref.mirror.source,
                "bitmap_file": ref.source.bitmap_file,
                "chunk_size": ref.mirror.chunk_size,
                "speed_limit_kbps": ref.mirror.speed_limit_kbps,
                "targets": [dataclasses.asdict(line) for line in mirror_ops.status(backend, ref)],
            }
            for ref in refs
        ]
    if args.json:
        print_json(out, data)
        return EXIT_OK
    for mirror in data:
        bitmap = mirror["bitmap_file"] or "None (every resync is full)"
        print(f"Mirror {mirror['tag']}  (bitmap {bitmap})", file=out)
        rows = [["SERVER", "ROLE", "STATE", "%", "RATE", "ETA", "DIRTY", "REASON"]]
        for t in mirror["targets"]:
            pct = "" if t["percent"] is None else str(t["percent"])
            dirty = "" if t["role"] == "Source" else str(t["dirty_chunks"])
            rows.append(
                [t["server"], t["role"], t["state"], pct, t["rate"], t["eta"], dirty, t["reason"]]
            )
        for line in table(rows):
            print(line, file=out)
    if not data:
        print("No mirrors.", file=out)
    return EXIT_OK


def cmd_mirror_action(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        if args.action == "fullresync":
            to = args.target or "every target"
            if not confirm(args, f"Copy every chunk of {args.tag} to {to} again?"):
                print("Nothing changed.", file=out)
                return EXIT_OK
        action = {
            "pause": mirror_ops.pause,
            "resume": mirror_ops.resume,
            "fullresync": mirror_ops.full_resync,
        }[args.action]
        for line in action(backend, args.tag, args.target, session):
            print(line, file=out)
        return EXIT_OK


def cmd_mirror_speed(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        print(mirror_ops.set_speed_limit(backend, args.tag, args.kbps, session), file=out)
        return EXIT_OK


def cmd_mirror_verify(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        lines = mirror_ops.verify(
            backend, args.tag, args.target, session, repair=args.repair, method=args.method
        )
        ref = mirror_ops.find(backend, args.tag)
        if not args.json:
            for line in lines:
                print(line, file=out)
            return EXIT_OK
        print_json(
            out,
            {
                "ok": True,
                "steps": lines,
                "targets": [
                    {
                        "server": t.server,
                        "state": t.state.name,
                        "last_verified": t.last_verified,
                        "differences": t.last_differences,
                    }
                    for t in ref.mirror.targets
                ],
            },
        )
        return EXIT_OK


def cmd_mirror_force(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        question = (
            f"Force {args.tag} online on {args.server}? Its copy may be stale: what the "
            "previous source wrote after it was last in sync is lost."
        )
        if not confirm(args, question):
            print("Nothing changed.", file=out)
            return EXIT_OK
        return print_lines(args, out, service.force_online(backend, args.tag, args.server, session))
