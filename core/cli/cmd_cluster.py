"""``lkctl cluster …``: this console's own knowledge of clusters (not a cluster's state).

``forget-host HOST [--port N]`` removes a node's trusted SSH host keys from the console's
own known_hosts (``$LKCONSOLE_HOME/ssh/known_hosts``), after a node was reinstalled and
its administrator confirmed the new key. It changes no cluster, so it needs no role: it
is the user's own file, as ``ssh-keygen -R`` is.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from core import paths
from core.cli.output import EXIT_FAILED, EXIT_OK
from core.cli.parser import Parser, SubParsers


def register(sub: SubParsers) -> None:
    parser = sub.add_parser("cluster", help="the console's own records of clusters (host keys)")
    csub = parser.add_subparsers(dest="cluster_command", metavar="ACTION", parser_class=Parser)
    csub.required = True
    forget = csub.add_parser("forget-host", help="forget a node's trusted SSH host keys")
    forget.add_argument("host", metavar="HOST")
    forget.add_argument("--port", type=int, default=22, metavar="N")
    forget.set_defaults(handler=cmd_forget_host)


def cmd_forget_host(args: argparse.Namespace, out: TextIO) -> int:
    from core.backends.pacemaker.connection import forget_host

    forgotten = forget_host(paths.data_dir(), args.host, args.port)
    where = args.host if args.port == 22 else f"[{args.host}]:{args.port}"
    if not forgotten:
        print(f"No host key of {where} was trusted: nothing changed.", file=out)
        return EXIT_FAILED
    print(f"Forgot {forgotten} host key(s) of {where}; the next connection asks again.", file=out)
    return EXIT_OK
