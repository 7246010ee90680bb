"""Server-sent events, as the stream client reads them.

Two layers: :class:`SSEDecoder` frames any ``text/event-stream`` body into events (the
WHATWG rules: lines end in CRLF, LF or CR, a blank line dispatches, ``:`` starts a
comment, one space after the colon is dropped, several ``data:`` lines join with
``"\\n"``); :func:`parse_control` reads a Durable Streams ``event: control`` payload.

The decoder is push-based and keeps no more than one event, so chunk boundaries never
matter (a CR at the end of one chunk and the LF starting the next are one line end). An
event still open when the body ends is dropped, never dispatched: the live tail relies
on that to resume after a cut connection without duplicating data.
"""

from __future__ import annotations

import re
from typing import Any, Final, NoReturn, final

import attrs

from ._client_errors import MalformedResponse
from ._client_wire import load_json

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "Control", "SSEDecoder", "SSEEvent", "parse_control"]

#: The largest event the decoder accepts. The reference server sends a whole catch-up
#: range as one event, so this is generous.
DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024 * 1024

_LINE_END = re.compile(rb"[\r\n]")
_CR, _LF = 0x0D, 0x0A


@attrs.frozen
class SSEEvent:
    """One dispatched event: its type (``"message"`` when it named none) and its data
    lines joined with ``b"\\n"``."""

    event: str
    data: bytes


@final
class SSEDecoder:
    """Incremental SSE framing: :meth:`push` bytes as they arrive, get the events they
    complete. An event (or an unterminated line) larger than ``max_event_bytes`` is a
    :class:`MalformedResponse`."""

    __slots__ = ("_buffer", "_data", "_event", "_max", "_size", "_skip_lf")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be >= 1, not {max_event_bytes!r}")
        self._max = max_event_bytes
        self._buffer = bytearray()
        self._event: bytes | None = None
        self._data: list[bytes] = []
        self._size = 0
        self._skip_lf = False  # the last chunk ended in CR: an LF opening the next is its pair

    def push(self, chunk: bytes) -> list[SSEEvent]:
        """Feed bytes; return the events they complete, in order."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        buffer = self._buffer
        buffer += chunk
        events: list[SSEEvent] = []
        start = 0
        while (match := _LINE_END.search(buffer, start)) is not None:
            end = match.start()
            line = bytes(buffer[start:end])
            start = end + 1
            if buffer[end] == _CR:
                if start < len(buffer):
                    if buffer[start] == _LF:
                        start += 1
                else:
                    self._skip_lf = True
            self._line(line, events)
        del buffer[:start]
        if self._size + len(buffer) > self._max:
            self._overflow()
        return events

    def close(self) -> bool:
        """The body ended. Drop whatever event was still open; return whether there was
        one (or a partial line)."""
        partial = bool(self._buffer or self._data or self._event is not None)
        self._buffer.clear()
        self._reset()
        self._skip_lf = False
        return partial

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                event = (self._event or b"message").decode("utf-8", "replace")
                events.append(SSEEvent(event, b"\n".join(self._data)))
            self._reset()
            return
        if line[0] == ord(":"):
            return  # a comment (keep-alive)
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > self._max:
                self._overflow()
        elif field == b"event":
            self._event = value
        # id, retry and unknown fields mean nothing to a Durable Streams client.

    def _reset(self) -> None:
        self._event = None
        self._data = []
        self._size = 0

    def _overflow(self) -> NoReturn:
        size = self._size + len(self._buffer)
        self.close()
        raise MalformedResponse(
            f"an SSE event is larger than the {self._max}-byte limit ({size} bytes so far)"
        )


@attrs.frozen(kw_only=True)
class Control:
    """A Durable Streams ``event: control``: where the data before it ends."""

    next_offset: str
    cursor: str | None = None
    up_to_date: bool = False
    closed: bool = False


def parse_control(data: bytes, what: str) -> Control:
    """Read a control event's JSON; anything malformed is a :class:`MalformedResponse`."""
    try:
        value: Any = load_json(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedResponse(f"{what}: a control event is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedResponse(
            f"{what}: a control event must be a JSON object, not {value!r:.120}"
        )
    offset = value.get("streamNextOffset")
    if not isinstance(offset, str) or not offset:
        raise MalformedResponse(
            f"{what}: a control event has no streamNextOffset string: {value!r:.200}"
        )
    cursor = value.get("streamCursor")
    if cursor is not None and not isinstance(cursor, str):
        if isinstance(cursor, int) and not isinstance(cursor, bool):
            cursor = str(cursor)
        else:
            raise MalformedResponse(f"{what}: streamCursor must be a string, not {cursor!r:.60}")
    flags = {}
    for key in ("upToDate", "streamClosed"):
        flag = value.get(key, False)
        if not isinstance(flag, bool):
            raise MalformedResponse(f"{what}: {key} must be true or false, not {flag!r:.60}")
        flags[key] = flag
    closed = flags["streamClosed"]
    return Control(
        next_offset=offset,
        cursor=cursor,
        up_to_date=flags["upToDate"] or closed,
        closed=closed,
    )
