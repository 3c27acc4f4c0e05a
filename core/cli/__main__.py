"""``python -m core.cli``: the same as ``lkctl``."""

from core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
