"""``lkctl cluster …``: this console's own knowledge of clusters (not a cluster's state).

``forget-host HOST [--port N]`` removes a node's trusted SSH host keys from the console's
own known_hosts (``$LKCONSOLE_HOME/ssh/known_hosts``), after a node was reinstalled and
its administrator confirmed the new key. It changes no cluster, so it needs no role: it
is the user's own file, as ``ssh-keygen -R`` is.

``install-agents [DIR] [--fence-dir DIR]`` installs the project's resource agents on this
node (``ocf:lkconsole:app``, ``ocf:lkconsole:datakeeper``) into DIR (default
``/usr/lib/ocf/resource.d/lkconsole``) and its fence agent ``fence_lkswitch`` beside the
system's (``/usr/sbin``): run it on every node of a cluster, as root. The DataKeeper
agent runs this installation's code, so it names this installation's folder.
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
    install = csub.add_parser(
        "install-agents", help="install the project's resource and fence agents on this node"
    )
    install.add_argument("dir", nargs="?", default=None, metavar="DIR")
    install.add_argument("--fence-dir", default=None, metavar="DIR")
    install.set_defaults(handler=cmd_install_agents)


def cmd_forget_host(args: argparse.Namespace, out: TextIO) -> int:
    from core.backends.pacemaker.connection import forget_host

    forgotten = forget_host(paths.data_dir(), args.host, args.port)
    where = args.host if args.port == 22 else f"[{args.host}]:{args.port}"
    if not forgotten:
        print(f"No host key of {where} was trusted: nothing changed.", file=out)
        return EXIT_FAILED
    print(f"Forgot {forgotten} host key(s) of {where}; the next connection asks again.", file=out)
    return EXIT_OK


def cmd_install_agents(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from core.backends.pacemaker import agents

    ocf_dir = Path(args.dir) if args.dir else agents.OCF_DIR
    fence_dir = Path(args.fence_dir) if args.fence_dir else agents.FENCE_DIR
    written = agents.install_agents(ocf_dir, fence_dir)  # InstallError: one line, exit 1
    for path in written:
        print(f"Installed {path}", file=out)
    return EXIT_OK
