"""Entry point of the PyInstaller build (one folder: dist/lkconsole/lkconsole).

A frozen application has no ``python -m``: the resync process that the lab starts is the
same binary, called with ``--lkconsole-resyncd`` (see core.backends.lab.mirrors.start_resync),
and so is the local monitor of applications (``--lkconsole-lkcheck``: core.backends.lab.lkcheck).
"""

import sys

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--lkconsole-resyncd":
        from core.backends.lab.resyncd import main as resyncd_main

        sys.exit(resyncd_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "--lkconsole-lkcheck":
        from core.backends.lab.lkcheck import main as lkcheck_main

        sys.exit(lkcheck_main(sys.argv[2:]))
    from gui.app import main

    sys.exit(main(sys.argv[1:]))
