"""The JSON objects of an agent CLI's output lines, for both bridges (Claude Code's
stream-json, Codex's JSON-RPC).

An iterator object, not an async generator: a session cancelled mid-turn drops it
unfinished, and an iterator object leaves nothing for trio's finalizer."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["MAX_LINE_BYTES", "JsonLines"]

MAX_LINE_BYTES = 32 * 1024 * 1024


class JsonLines:
    """``parse(line)`` of each line of ``chunks`` that it does not map to None; an
    unfinished line over ``MAX_LINE_BYTES`` raises ``too_long(message)``."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        parse: Callable[[bytes], dict[str, Any] | None],
        too_long: Callable[[str], Exception],
    ) -> None:
        self._chunks = chunks
        self._parse = parse
        self._too_long = too_long
        self._pending = b""
        self._ready: deque[dict[str, Any]] = deque()
        self._done = False

    def __aiter__(self) -> JsonLines:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self._ready:
            if self._done:
                raise StopAsyncIteration
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._done = True
                self._take([self._pending])
                self._pending = b""
                continue
            # split first: a chunk of many short lines is fine, one endless line is not
            *lines, self._pending = (self._pending + chunk).split(b"\n")
            if len(self._pending) > MAX_LINE_BYTES:
                raise self._too_long(f"a line of output is over {MAX_LINE_BYTES} B")
            self._take(lines)
        return self._ready.popleft()

    def _take(self, lines: list[bytes]) -> None:
        for line in lines:
            value = self._parse(line)
            if value is not None:
                self._ready.append(value)
