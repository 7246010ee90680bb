"""The live tail: a stream followed by long-poll or SSE, resuming after dropped
connections from the last offset it saw confirmed."""

from __future__ import annotations

import base64
import binascii
import enum
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final, Literal, final

import httpx
import trio

from ._client_errors import MalformedResponse, StreamUnavailable
from ._client_sse import SSEDecoder, SSEEvent, parse_control
from ._client_wire import (
    SSE_ENCODING,
    Chunk,
    ClosesOnExit,
    chunk_from_response,
    describe,
    error_for,
    join_json,
    load_json_array,
    media_type,
    retryable,
)

if TYPE_CHECKING:
    from .client import StreamHandle

__all__ = ["LiveMode", "LiveTail"]

LiveMode = Literal["long-poll", "sse"]

#: Bound on closing a response (it runs shielded, so it must be bounded).
_CLOSE_TIMEOUT: Final = 5.0
#: Chunks an abandoned body may still hand out (buffered, no checkpoint) before it ends.
_ABANDON_STEPS: Final = 10_000


class _Failure(Exception):
    """A failure worth retrying: transport error, 5xx/429, a body cut before any
    control event. Internal to the tail."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _State(enum.Enum):
    OPEN = "open"
    FINISHED = "finished"  # the stream closed and the tail delivered it all
    CLOSED = "closed"  # aclose() was called


@final
class LiveTail(ClosesOnExit):
    """An async iterator of :class:`Chunk` following one stream, from
    :meth:`StreamHandle.live`::

        async with stream.live("-1", mode="sse") as tail:
            async for chunk in tail:
                ...

    **What it yields.** Every chunk with data, in order, each ending at ``chunk.offset``.
    Also an empty chunk each time the tail catches up (``up_to_date`` turns true), and a
    last chunk with ``closed=True`` (possibly empty) when the stream is closed; the
    iteration then ends. Keep-alives (long-poll timeouts, repeated SSE controls) are not
    yielded. For SSE, data events are held until the control event that follows them
    (which gives their offset) and then yielded as one chunk.

    **Resuming.** A transport error, a 5xx/429 answer or an SSE body cut short closes
    the connection and reconnects from :attr:`offset`, the end of the last confirmed
    range (SSE data not yet confirmed by a control event is dropped and read again), so
    nothing is skipped or repeated. Reconnects back off as the client's
    :class:`RetryPolicy` says; after ``attempts`` failures in a row the iteration raises
    :class:`StreamUnavailable` whose ``offset`` is where to resume (iterating the same
    tail again later resumes there, with a fresh retry budget). An SSE response the
    server ends cleanly (servers cycle them) is reconnected at once. Refusals
    (``StreamNotFound``, ``StreamGone``, ...) and :class:`MalformedResponse` end the
    iteration.

    **Cleanup.** :meth:`aclose` (or leaving ``async with``) closes the open SSE response;
    it is idempotent and safe under cancellation (shielded, bounded). After it, the
    iteration ends. Cancelling ``__anext__`` closes the connection; iterating again
    reconnects from :attr:`offset`.
    """

    __slots__ = (
        "_base64",
        "_body",
        "_cursor",
        "_decoder",
        "_events",
        "_failures",
        "_got_control",
        "_handle",
        "_json",
        "_mode",
        "_offset",
        "_pieces",
        "_response",
        "_state",
        "_up_to_date",
    )
    _handle: StreamHandle
    _mode: LiveMode
    _offset: str
    _cursor: str | None
    _up_to_date: bool
    _state: _State
    _failures: int
    _json: bool | None
    _response: httpx.Response | None
    _body: AsyncIterator[bytes] | None
    _decoder: SSEDecoder | None
    _events: deque[SSEEvent]
    _pieces: list[tuple[bytes, list[Any]]]
    _base64: bool
    _got_control: bool

    def __init__(self) -> None:
        raise TypeError("LiveTail has no public constructor; use stream.live(offset)")

    @classmethod
    def _create(cls, handle: StreamHandle, offset: str, mode: LiveMode) -> LiveTail:
        self = object.__new__(cls)
        self._handle = handle
        self._mode = mode
        self._offset = offset
        self._cursor = None
        self._up_to_date = False
        self._state = _State.OPEN
        self._failures = 0
        self._json = None
        self._response = None
        self._body = None
        self._decoder = None
        self._events = deque()
        self._pieces = []
        self._base64 = False
        self._got_control = False
        return self

    def __repr__(self) -> str:
        return f"<LiveTail {self._mode} {self._handle.url} at {self._offset!r} {self._state.value}>"

    @property
    def mode(self) -> LiveMode:
        return self._mode

    @property
    def offset(self) -> str:
        """Where the tail stands: the end of the last range it confirmed (at first, the
        offset it was started from). Resume here to continue without gap or repeat."""
        return self._offset

    @property
    def cursor(self) -> str | None:
        """The last ``Stream-Cursor`` the server gave, passed back on reconnects."""
        return self._cursor

    @property
    def up_to_date(self) -> bool:
        """Whether the last answer reached the tail."""
        return self._up_to_date

    @property
    def closed(self) -> bool:
        """Whether the stream was seen closed (the iteration is over)."""
        return self._state is _State.FINISHED

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> LiveTail:
        if self._state is _State.CLOSED:
            raise RuntimeError("this LiveTail was closed; start a new one from its offset")
        return self

    async def aclose(self) -> None:
        """Close the connection, if one is open, and end the iteration. Idempotent."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
        await self._close_response()

    def __aiter__(self) -> LiveTail:
        return self

    async def __anext__(self) -> Chunk:
        while self._state is _State.OPEN:
            try:
                if self._json is None:
                    self._json = await self._handle._json_mode()
                if self._mode == "sse":
                    chunk = await self._next_sse()
                else:
                    chunk = await self._next_poll()
            except _Failure as failure:
                await self._close_response()
                await self._back_off(failure)
                continue
            except BaseException:
                await self._close_response()
                raise
            if chunk is None:
                continue  # the server ended an SSE response: reconnect from the offset
            caught_up = chunk.up_to_date and not self._up_to_date
            self._offset = chunk.offset
            self._cursor = chunk.cursor or self._cursor
            self._up_to_date = chunk.up_to_date
            if chunk.closed:
                self._state = _State.FINISHED
                await self._close_response()
            if not chunk.empty or chunk.closed or caught_up:
                return chunk
        raise StopAsyncIteration

    # -- retries ---------------------------------------------------------------------

    def _what(self) -> str:
        return f"live tail ({self._mode}) of {self._handle.url}"

    async def _back_off(self, failure: _Failure) -> None:
        policy = self._handle._http().retry
        self._failures += 1
        if self._failures > policy.attempts:
            failures, self._failures = self._failures, 0  # iterating again retries afresh
            raise StreamUnavailable(
                f"{self._what()}: gave up after {failures} failed attempts in a row; "
                f"resume from offset {self._offset!r}. Last failure: {failure}",
                status=failure.status,
                offset=self._offset,
            ) from failure.__cause__ or failure
        await trio.sleep(policy.delay(self._failures - 1))

    def _params(self, live: str) -> dict[str, str]:
        params = {"offset": self._offset, "live": live}
        if self._cursor is not None:
            params["cursor"] = self._cursor
        return params

    # -- long-poll -------------------------------------------------------------------

    async def _next_poll(self) -> Chunk:
        http = self._handle._http()
        what = self._what()
        try:
            response, _ = await http.exchange(
                "GET",
                self._handle.url,
                what=what,
                retry=False,
                params=self._params("long-poll"),
                timeout=http.live_timeouts(),
            )
        except StreamUnavailable as exc:
            raise _Failure(str(exc), status=exc.status) from exc.__cause__ or exc
        if response.status_code not in (200, 204):
            raise error_for(response, what)
        self._failures = 0
        if response.status_code == 200:
            self._handle._learn(response.headers.get("Content-Type"))
        return chunk_from_response(response, what, json_mode=bool(self._json))

    # -- SSE -------------------------------------------------------------------------

    async def _next_sse(self) -> Chunk | None:
        if self._response is None:
            await self._connect()
        assert self._decoder is not None
        assert self._body is not None
        what = self._what()
        while True:
            while self._events:
                event = self._events.popleft()
                if event.event == "data":
                    self._add_data(event.data, what)
                elif event.event == "control":
                    control = parse_control(event.data, what)
                    self._failures = 0
                    self._got_control = True
                    pieces, self._pieces = self._pieces, []
                    messages: tuple[Any, ...] | None = None
                    if self._json:
                        data, messages = join_json(pieces)
                    else:
                        data = b"".join(raw for raw, _ in pieces)
                    return Chunk(
                        data=data,
                        offset=control.next_offset,
                        up_to_date=control.up_to_date,
                        closed=control.closed,
                        cursor=control.cursor,
                        messages=messages,
                    )
            try:
                raw = await self._body.__anext__()
            except StopAsyncIteration:
                got_control = self._got_control
                await self._close_response()
                if got_control:
                    return None
                raise _Failure(f"{what}: the SSE response ended before any control event") from None
            except httpx.TransportError as exc:
                raise _Failure(f"{what}: {type(exc).__name__}: {exc}") from exc
            except httpx.DecodingError as exc:
                raise MalformedResponse(
                    f"{what}: the SSE body could not be decoded: {exc}"
                ) from exc
            self._events.extend(self._decoder.push(raw))

    def _add_data(self, data: bytes, what: str) -> None:
        if self._base64:
            try:
                data = base64.b64decode(data.replace(b"\n", b""), validate=True)
            except binascii.Error as exc:
                raise MalformedResponse(
                    f"{what}: a data event is not valid base64: {exc}"
                ) from None
        if self._json:
            self._pieces.append((data, load_json_array(data, what)))
        else:
            self._pieces.append((data, []))

    async def _connect(self) -> None:
        http = self._handle._http()
        what = self._what()
        request = http.client.build_request(
            "GET", self._handle.url, params=self._params("sse"), timeout=http.live_timeouts()
        )
        try:
            response = await http.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _Failure(f"{what}: {type(exc).__name__}: {exc}") from exc
        try:
            if response.status_code != 200:
                await response.aread()
                if retryable(response.status_code):
                    raise _Failure(describe(response, what), status=response.status_code)
                raise error_for(response, what)
            content_type = media_type(response.headers.get("Content-Type"))
            if content_type != "text/event-stream":
                raise MalformedResponse(
                    f"{what}: expected text/event-stream, got {content_type or 'no content type'}"
                )
        except httpx.TransportError as exc:
            await _close_quietly(response)
            raise _Failure(f"{what}: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            await _close_quietly(response)
            raise
        self._response = response
        self._body = response.aiter_bytes()
        self._decoder = SSEDecoder(max_event_bytes=http.max_event_bytes)
        self._events.clear()
        self._pieces = []
        self._base64 = response.headers.get(SSE_ENCODING, "").strip().lower() == "base64"
        self._got_control = False

    async def _close_response(self) -> None:
        body, self._body = self._body, None
        response, self._response = self._response, None
        if body is not None:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await _abandon(body)
        if response is not None:
            await _close_quietly(response)


async def _abandon(body: AsyncIterator[bytes]) -> None:
    """End an httpx body iterator that is not exhausted, now rather than at GC.

    ``aiter_bytes()`` is a chain of async generators (httpx, then httpcore); closing
    the outer one would leave the inner ones suspended for the garbage collector
    (trio then warns, and the connection lingers). Instead, resume the chain inside an
    already cancelled scope: the next checkpoint down the chain raises ``Cancelled``,
    which unwinds every layer (httpcore closes the connection on the way out), and the
    scope absorbs it. Reading a body that already ended or failed just stops.
    """
    with trio.CancelScope() as scope:
        scope.cancel()
        for _ in range(_ABANDON_STEPS):
            try:
                await body.__anext__()
            except StopAsyncIteration:
                return
            except httpx.HTTPError:
                return  # the chain ended with a transport error: ended all the same


async def _close_quietly(response: httpx.Response) -> None:
    """Close a response, shielded from cancellation and bounded in time."""
    with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
        await response.aclose()
