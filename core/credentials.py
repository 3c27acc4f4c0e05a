"""Remembered passwords, in the system keyring only (service "lkconsole").

One entry per server and user. When no keyring backend is available (a headless
machine), nothing is remembered and the caller is told why; there is never a plain-text
fallback.
"""

from __future__ import annotations

import keyring
import keyring.errors
from keyring.backends import fail

from core.errors import LkError

SERVICE = "lkconsole"


class KeyringUnavailable(LkError):
    """No usable keyring backend: passwords cannot be remembered."""


def _entry(server: str, user: str) -> str:
    return f"{user}@{server}"


def unavailable_reason() -> str:
    """Why passwords cannot be remembered here ("" when they can)."""
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return (
            "No system keyring is available on this machine (no Secret Service or "
            "KWallet), so the password cannot be remembered; you will be asked again."
        )
    return ""


def remember(server: str, user: str, password: str) -> None:
    reason = unavailable_reason()
    if reason:
        raise KeyringUnavailable(reason)
    try:
        keyring.set_password(SERVICE, _entry(server, user), password)
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"The keyring refused to store the password: {exc}") from exc


def recall(server: str, user: str) -> str | None:
    if unavailable_reason():
        return None
    try:
        return keyring.get_password(SERVICE, _entry(server, user))
    except keyring.errors.KeyringError:
        return None


def forget(server: str, user: str) -> bool:
    """Remove a remembered password; True when there was one."""
    if unavailable_reason():
        return False
    try:
        keyring.delete_password(SERVICE, _entry(server, user))
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"The keyring refused to delete the password: {exc}") from exc
    return True
