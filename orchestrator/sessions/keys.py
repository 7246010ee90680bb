"""A caller's API key, kept for a session's resume after a restart: one file per
session under the data directory, mode 600, removed when the session is deleted. Keys
never go into a stream (reference §17.8)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import trio

__all__ = ["KeyStore"]


class KeyStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, session_id: str) -> Path:
        return self.root / str(uuid.UUID(session_id))  # a session id, never a path

    async def save(self, session_id: str, key: str) -> None:
        path = self._path(session_id)

        def write() -> None:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            temp = path.with_suffix(".tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, key.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)

        await trio.to_thread.run_sync(write)

    async def load(self, session_id: str) -> str | None:
        try:
            return (await trio.Path(self._path(session_id)).read_text()) or None
        except (FileNotFoundError, ValueError):
            return None

    async def forget(self, session_id: str) -> None:
        try:
            await trio.Path(self._path(session_id)).unlink(missing_ok=True)
        except ValueError:
            pass
