"""``lkconsole``: the desktop console's entry point."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core import paths
from core.errors import LkError

NO_DISPLAY_MESSAGE = (
    "lkconsole: no display found (DISPLAY and WAYLAND_DISPLAY are not set).\n"
    "Run it in a desktop session, or under a virtual display: xvfb-run lkconsole\n"
    "On a headless machine, `lkctl status` shows the cluster, and "
    "`lkconsole --screenshot FILE.png` renders the window to a picture."
)


def has_display() -> bool:
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


class _StartupBuffer(logging.Handler):
    """Keeps the records of the first second until the log file is opened."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_buffer = _StartupBuffer()


def setup_logging() -> None:
    """Start logging; records wait in memory until :func:`open_log_file` (cheap)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if _buffer not in root.handlers:
        root.addHandler(_buffer)


def open_log_file() -> None:
    """Log to a rotating file under user_log_dir (the console also shows operations).

    Done once the window shows (``logging.handlers`` costs a noticeable part of the
    startup); the records logged until then are written first.
    """
    from core.files import private_file_handler

    root = logging.getLogger()
    try:
        handler: logging.Handler = private_file_handler(paths.log_dir() / "lkconsole.log")
    except OSError:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if _buffer in root.handlers:
        root.removeHandler(_buffer)
        for record in _buffer.records:
            handler.handle(record)
        _buffer.records.clear()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lkconsole", description="LK Console (GUI).")
    parser.add_argument(
        "--screenshot",
        metavar="FILE.png",
        type=Path,
        help="render the main window offscreen, save it as a PNG and exit",
    )
    parser.add_argument(
        "--size",
        metavar="WxH",
        default="1024x640",
        help="window size for --screenshot (default 1024x640)",
    )
    parser.add_argument(
        "--cluster",
        metavar="SPEC",
        help="the cluster: lab (default) or lab:/path/to/home; default: $LKCONSOLE_CLUSTER",
    )
    parser.add_argument(
        "--exit-when-shown",
        action="store_true",
        help="exit as soon as the window has painted the cluster (startup checks, benchmarks)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.screenshot is not None:
        if not has_display():
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif not has_display():
        print(NO_DISPLAY_MESSAGE, file=sys.stderr)
        return 2
    os.umask(0o077)  # whatever the console makes is its owner's only (core.files)
    setup_logging()
    # The start-up makes many long-lived objects (modules, classes, Qt's enums) and no
    # garbage worth a collection: collect nothing until the window has painted, then
    # gc.freeze() moves what the start-up made out of later collections' way.
    gc.disable()

    # Open the cluster (on first use the lab is created) before any window, so that a
    # damaged or read-only store, or an unknown cluster, is reported clearly instead of
    # as an empty window; and so that the first paint shows the cluster.
    from core import connection
    from gui.bridge import read_initial_state

    try:
        backend = connection.open(args.cluster)
        session = backend.local_session()
        initial = read_initial_state(backend)
    except LkError as exc:
        gc.enable()
        print(f"lkconsole: {exc}", file=sys.stderr)
        return 1

    from PySide6.QtCore import QTimer, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from gui.bridge import finish_background
    from gui.main_window import MainWindow

    qInstallMessageHandler(_qt_message)
    app = QApplication(sys.argv[:1])
    app.setApplicationName("LK Console")
    app.setApplicationDisplayName("LK Console")
    app.setOrganizationName("lkconsole")
    app.setDesktopFileName("lkconsole")
    window = MainWindow(backend=backend, initial=initial, session=session)
    window.cluster_shown.connect(_open_log_file_once)
    QTimer.singleShot(0, _collect_again)  # the event loop's first turn: after the paint
    if args.screenshot is not None:
        status = _screenshot(app, window, args.screenshot, args.size)
        window.finish_warm_up()
        finish_background()
        return status
    if args.exit_when_shown:
        if window.cluster is not None:  # shown from the first paint on
            QTimer.singleShot(0, lambda: _painted_then_quit(app, window))
        else:
            window.cluster_shown.connect(lambda: _painted_then_quit(app, window))
    window.show()
    status = app.exec()
    window.finish_warm_up()
    finish_background()
    return status


def _collect_again() -> None:
    gc.freeze()
    gc.enable()


def _open_log_file_once() -> None:
    from PySide6.QtCore import QTimer

    if _buffer in logging.getLogger().handlers:
        QTimer.singleShot(0, open_log_file)  # after the first paint


def _painted_then_quit(app: object, window: object) -> None:
    """Paint the window with its cluster now, then leave the event loop."""
    from PySide6.QtWidgets import QApplication, QWidget

    assert isinstance(app, QApplication) and isinstance(window, QWidget)
    window.repaint()
    # When it was shown, on the system-wide monotonic clock (benchmarks/startup.py).
    print(f"shown at {time.monotonic():.6f}", flush=True)
    app.quit()


_QT_NOISE = (
    # The offscreen platform plugin, on every top-level show(): harmless.
    "This plugin does not support propagateSizeHints()",
)


def _qt_message(mode: object, context: object, message: str) -> None:
    """Qt's own messages go to the log (and stderr), minus known harmless noise."""
    if message in _QT_NOISE:
        return
    logging.getLogger("qt").warning("%s", message)
    print(message, file=sys.stderr)


def _screenshot(app: object, window: object, target: Path, size: str) -> int:
    from PySide6.QtCore import QEventLoop, QTimer

    from gui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        print(f"lkconsole: --size must look like 1024x640, not {size!r}", file=sys.stderr)
        return 2
    loop = QEventLoop()
    window.cluster_shown.connect(loop.quit)
    QTimer.singleShot(10_000, loop.quit)
    window.resize(width, height)
    window.show()
    if window.cluster is None:
        loop.exec()
    loop.processEvents()
    ok = window.grab().save(str(target), "PNG")
    window.close()
    if not ok:
        print(f"lkconsole: cannot write the screenshot {target}", file=sys.stderr)
        return 1
    print(f"Saved {target} ({width}x{height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
