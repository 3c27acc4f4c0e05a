"""The backends the contract suite runs on, each behind the same small adapter.

An adapter gives the suite what only the backend's own world can: the bytes of a volume
on a server, a folder of a server made btrfs, writes through a mirror. The suite itself
uses only the Backend protocol and core.operations.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.backend import Backend
from core.backends.lab import LabBackend
from tests.helpers import mounted_image


@dataclass
class LabAdapter:
    backend: LabBackend
    home: Path

    def volume_digest(self, server: str, path: str) -> str:
        with open(self.backend.layout.server_path(server, path), "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    def write_source(self, server: str, path: str, offset: int, data: bytes) -> None:
        """Bytes on a volume before it is mirrored (an existing disk's content)."""
        with open(self.backend.layout.server_path(server, path), "r+b") as f:
            f.seek(offset)
            f.write(data)

    def server_file(self, server: str, path: str) -> bytes | None:
        """A file of a server (what an application's command wrote there), or None."""
        local = self.backend.layout.server_path(server, path)
        return local.read_bytes() if local.is_file() else None

    def addresses_up(self, server: str) -> list[str]:
        """The IP addresses up on a server (the lab: its address files)."""
        from core.backends.lab import kits

        return kits.addresses_up(self.backend.layout, server)

    @contextlib.contextmanager
    def btrfs(self, server: str, path: str) -> Iterator[None]:
        with mounted_image(self.backend.layout.server_path(server, path), "btrfs", 120):
            yield


@pytest.fixture(params=["lab"])
def adapter(request: pytest.FixtureRequest, hermetic_env: Path) -> Iterator[LabAdapter]:
    if request.param == "lab":
        backend = LabBackend(hermetic_env)
        yield LabAdapter(backend, hermetic_env)
        backend.close()


@pytest.fixture
def backend(adapter: LabAdapter) -> Backend:
    return adapter.backend
