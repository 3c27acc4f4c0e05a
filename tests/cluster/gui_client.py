"""The console's File › Connect somewhere else: run by the cluster tests in a namespace of
their own on the lab's switch, it drives the real dialog (offscreen Qt) as a user would and
prints what the user saw as one JSON object.

    python -m tests.cluster.gui_client ANSWER SPEC

ANSWER is ``yes`` or ``no``: what the user answers when asked about an unknown host key.
Prints ``asked`` (the question's text, or null when none was asked), ``error`` (the
dialog's error line) and ``servers`` (the states the window would show, once connected).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from gui.bridge import Opened, close_in_background, finish_background
from gui.dialogs import ConnectDialog


def _wait(done: object, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():  # type: ignore[operator]
            return True
        QTest.qWait(10)  # the event loop runs meanwhile
    return False


def main(answer: str, spec: str) -> dict[str, object]:
    app = QApplication.instance() or QApplication([])
    dialog = ConnectDialog(spec, user="root")
    dialog.show()
    opened: list[Opened] = []
    dialog.connected.connect(opened.append)
    result: dict[str, object] = {"asked": None, "error": None, "servers": None}
    _wait(lambda: dialog.keyring_read)
    dialog.ok.click()

    def box() -> QMessageBox | None:
        return dialog.findChild(QMessageBox, "trust_host_key")

    if _wait(lambda: box() is not None or opened or dialog.error.isVisible()):
        question = box()
        if question is not None:
            result["asked"] = question.text()
            button = question.findChild(QPushButton, f"trust_{answer}")
            assert button is not None, f"no trust_{answer} button"
            button.click()
    _wait(lambda: opened or (dialog.error.isVisible() and dialog._opener is None))
    if dialog.error.isVisible():
        result["error"] = dialog.error.text()
    if opened:
        cluster = opened[0].initial.cluster
        result["servers"] = {s.name: s.state.name for s in cluster.servers}
        close_in_background(opened[0].backend)
    finish_background()
    dialog.deleteLater()
    app.processEvents()
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
