"""The JSON objects of an agent CLI's output lines, for both bridges (Claude Code's
stream-json, Codex's JSON-RPC).

An iterator object, not an async generator: a session cancelled mid-turn drops it
unfinished, and an iterator object leaves nothing for trio's finalizer."""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from .._values import replace_lone_surrogates

__all__ = ["MAX_LINE_BYTES", "JsonLines", "parse_object_line"]

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 32 * 1024 * 1024

# JSON.stringify escapes an unpaired surrogate (a text cut inside an emoji) as \udXXX;
# a line without such an escape cannot hold one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_object_line(
    line: bytes, *, who: str, corrupt: Callable[[str], Exception]
) -> dict[str, Any] | None:
    """The JSON object of one output line of ``who``; None for a line that is not an
    object (a CLI may print other lines); ``corrupt(message)`` raised for a line that
    starts like an object and is not JSON. Unpaired surrogates become U+FFFD: no UTF-8
    stream (the event store) can hold one."""
    text = line.strip()
    if not text.startswith(b"{"):
        if text:
            logger.debug("%s printed a non-JSON line: %r", who, text[:200])
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # nested too deep is corrupt too
        raise corrupt(f"{who} wrote a corrupt JSON line: {exc!r}") from None
    if not isinstance(value, dict):
        return None
    if _SURROGATE_ESCAPE.search(text):  # rare: only then walk the whole object
        cleaned: dict[str, Any] = replace_lone_surrogates(value)
        return cleaned
    return value


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
