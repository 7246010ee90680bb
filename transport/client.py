"""A trio client for Durable Streams, over ``httpx.AsyncClient``.

::

    async with StreamClient("http://127.0.0.1:4437/v1/stream") as client:
        events = client.stream("session-42")
        await events.create("application/json")
        await events.append_json({"type": "started"})
        snapshot = await events.read()                  # catch-up from the start
        async with events.live(snapshot.offset, mode="sse") as tail:
            async for chunk in tail:                    # live, resuming after drops
                handle(chunk.messages)

:class:`StreamClient` owns the HTTP connection pool and is used as ``async with``.
``client.stream(name)`` gives a :class:`StreamHandle` (no I/O) with one method per
protocol operation: :meth:`~StreamHandle.create`, :meth:`~StreamHandle.append` /
:meth:`~StreamHandle.append_json`, :meth:`~StreamHandle.close`,
:meth:`~StreamHandle.read`, :meth:`~StreamHandle.head`, :meth:`~StreamHandle.delete`,
:meth:`~StreamHandle.live` (a :class:`LiveTail` by long-poll or SSE), and two writers:
:meth:`~StreamHandle.batcher` (linger batching) and :meth:`~StreamHandle.producer`
(an idempotent producer: exactly-once appends across retries).

Offsets are opaque strings: ``"-1"`` is the start of a stream, ``"now"`` its tail, and
every other one comes from the server (``Chunk.offset``, ``AppendAck.offset``).

Errors derive from ``StreamError``: refusals come back as the server's own classes
(``StreamNotFound``, ``Conflict``, ``StreamClosed``, ``Fenced``, ``SequenceGap``, ...),
and ``transport._client_errors`` adds ``StreamUnavailable``, ``MalformedResponse``,
``UnexpectedStatus`` and ``ProducerFailed``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import datetime
from typing import final
from urllib.parse import quote, urlsplit

import attrs
import httpx

from ._client_errors import MalformedResponse, ProducerFailed, StreamUnavailable, UnexpectedStatus
from ._client_live import LiveMode, LiveTail
from ._client_sse import DEFAULT_MAX_EVENT_BYTES
from ._client_wire import (
    CLOSED,
    DEFAULT_TYPE,
    EXPIRES_AT,
    JSON_TYPE,
    NOW,
    SEQ,
    START,
    TTL,
    AppendAck,
    Chunk,
    ClosesOnExit,
    CreateAck,
    Http,
    ProducerAck,
    RetryPolicy,
    StreamMetadata,
    check_offset,
    chunk_from_response,
    dump_json,
    flag,
    is_json_type,
    join_json,
    media_type,
    optional_int,
    require_offset,
    to_bytes,
)
from ._client_writers import DEFAULT_LINGER, DEFAULT_MAX_BATCH_BYTES, Batcher, IdempotentProducer

__all__ = [
    "NOW",
    "START",
    "AppendAck",
    "Batcher",
    "Chunk",
    "CreateAck",
    "IdempotentProducer",
    "LiveMode",
    "LiveTail",
    "MalformedResponse",
    "ProducerAck",
    "ProducerFailed",
    "RetryPolicy",
    "StreamClient",
    "StreamHandle",
    "StreamMetadata",
    "StreamUnavailable",
    "UnexpectedStatus",
]


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


@final
class StreamClient(ClosesOnExit):
    """A Durable Streams client for the streams under one base URL.

    ``base_url`` is the URL streams live under: ``client.stream("a")`` is
    ``{base_url}/a``. For the reference server and ours that is
    ``http://host:4437/v1/stream``.

    Args:
        timeout: seconds for connecting, writing and reading one answer.
        live_timeout: the read timeout of long-poll and SSE requests; it must exceed
            the server's long-poll timeout (30 s on the reference server), since the
            server is silent that long when there is nothing new.
        retry: how reads, creates, producer appends and live tails retry transport
            errors and 5xx/429 answers. Plain appends and deletes are never retried.
        headers: sent with every request (e.g. ``Authorization``).
        transport: an httpx transport; tests pass ``httpx.MockTransport(handler)``.
        max_event_bytes: the largest SSE event a live tail accepts.

    Lifecycle: use it as ``async with``; it cannot be reopened once closed, and every
    operation outside the block raises ``RuntimeError``. :meth:`aclose` is idempotent.
    """

    __slots__ = ("_base_url", "_http", "_options", "_state")

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        live_timeout: float = 90.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not have a query or fragment: {base_url!r}")
        for name, value in (("timeout", timeout), ("live_timeout", live_timeout)):
            if math.isnan(value) or value <= 0:
                raise ValueError(f"{name} must be > 0 seconds, not {value!r}")
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be >= 1, not {max_event_bytes!r}")
        self._base_url = base_url.rstrip("/")
        self._options = (
            timeout,
            live_timeout,
            retry or RetryPolicy(),
            dict(headers or {}),
            transport,
            max_event_bytes,
        )
        self._http: Http | None = None
        self._state = _State.UNOPENED

    def __repr__(self) -> str:
        return f"<StreamClient {self._base_url} {self._state.value}>"

    @property
    def base_url(self) -> str:
        return self._base_url

    async def __aenter__(self) -> StreamClient:
        if self._state is _State.OPENED:
            raise RuntimeError("this StreamClient is already open")
        if self._state is _State.CLOSED:
            raise RuntimeError(
                "this StreamClient was closed and cannot be reopened; make a new one"
            )
        timeout, live_timeout, retry, headers, transport, max_event_bytes = self._options
        client = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport)
        await client.__aenter__()
        self._http = Http(
            client, retry=retry, live_timeout=live_timeout, max_event_bytes=max_event_bytes
        )
        self._state = _State.OPENED
        return self

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent. Live tails and writers of this client
        fail with ``RuntimeError`` afterwards."""
        http, self._http = self._http, None
        self._state = _State.CLOSED
        if http is not None:
            await http.client.__aexit__(None, None, None)

    def stream(self, name: str, *, content_type: str | None = None) -> StreamHandle:
        """A handle on the stream ``{base_url}/{name}``; no I/O.

        ``name`` may contain ``/`` (each segment is URL-encoded) but no empty, ``.``
        or ``..`` segment. ``content_type``, when known, spares the handle a ``HEAD``
        before its first byte append or SSE tail; it also learns the type from
        ``create``, ``head`` and ``read``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a stream name must be a non-empty string, not {name!r}")
        segments = name.split("/")
        if any(segment in ("", ".", "..") for segment in segments):
            raise ValueError(f"a stream name must not have empty, '.' or '..' segments: {name!r}")
        url = self._base_url + "/" + "/".join(quote(s, safe="") for s in segments)
        return StreamHandle._create(self, name, url, content_type)

    def _require_http(self) -> Http:
        if self._http is None:
            if self._state is _State.UNOPENED:
                raise RuntimeError(
                    "this StreamClient is not open: use 'async with StreamClient(url) as client'"
                )
            raise RuntimeError("this StreamClient is closed")
        return self._http


@final
class StreamHandle:
    """One stream on the server: cheap, holds no connection, safe to share between tasks.
    Get one from :meth:`StreamClient.stream`.

    Every method raises ``RuntimeError`` once the client is closed, and:

    Raises:
        StreamNotFound / StreamGone / Conflict / BadRequest / ...: the server refused
            the request (the server's own error classes, with ``.headers``).
        StreamUnavailable: the server could not be reached, or answered 5xx.
        MalformedResponse: the answer broke the protocol.
    """

    __slots__ = ("_client", "_content_type", "name", "url")
    _client: StreamClient
    _content_type: str | None
    name: str
    url: str

    def __init__(self) -> None:
        raise TypeError("StreamHandle has no public constructor; use client.stream(name)")

    @classmethod
    def _create(
        cls, client: StreamClient, name: str, url: str, content_type: str | None
    ) -> StreamHandle:
        self = object.__new__(cls)
        self._client = client
        self.name = name
        self.url = url
        self._content_type = content_type
        return self

    def __repr__(self) -> str:
        return f"<StreamHandle {self.url}>"

    @property
    def content_type(self) -> str | None:
        """The stream's content type, once the handle knows it (given, or learnt from
        ``create``, ``head`` or ``read``)."""
        return self._content_type

    def _http(self) -> Http:
        return self._client._require_http()

    def _what(self, action: str) -> str:
        return f"{action} {self.url}"

    def _learn(self, content_type: str | None) -> None:
        if content_type:
            self._content_type = content_type

    async def _known_content_type(self) -> str:
        if self._content_type is None:
            await self.head()
        assert self._content_type is not None
        return self._content_type

    async def _json_mode(self) -> bool:
        return is_json_type(await self._known_content_type())

    # -- create, head, delete --------------------------------------------------------

    async def create(
        self,
        content_type: str = DEFAULT_TYPE,
        *,
        ttl: int | None = None,
        expires_at: datetime | str | None = None,
        closed: bool = False,
        body: bytes | str | None = None,
    ) -> CreateAck:
        """Create the stream (``PUT``), idempotently.

        Args:
            content_type: fixed for the stream's life; ``application/json`` makes it a
                JSON stream (messages, read back as arrays).
            ttl: seconds of idle time after which the stream expires (sliding).
            expires_at: an absolute expiry (an aware ``datetime`` or RFC 3339 text);
                not together with ``ttl``.
            closed: create it closed (with ``body`` as all it will ever hold).
            body: initial content (for JSON streams, a JSON array of messages).

        Returns:
            ``created=True`` for a new stream; ``False`` when an identical one (same
            type, expiry and closed state) already existed.

        Raises:
            Conflict: a stream exists there with another configuration.
        """
        headers = {"Content-Type": content_type}
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
                raise ValueError(f"ttl must be an int >= 0 (seconds), not {ttl!r}")
            headers[TTL] = str(ttl)
        if expires_at is not None:
            if ttl is not None:
                raise ValueError("give ttl or expires_at, not both: the protocol refuses both")
            if isinstance(expires_at, datetime):
                if expires_at.tzinfo is None:
                    raise ValueError("expires_at must be timezone-aware")
                expires_at = expires_at.isoformat()
            headers[EXPIRES_AT] = expires_at
        if closed:
            headers[CLOSED] = "true"
        what = self._what("create")
        response = await self._http().call(
            "PUT",
            self.url,
            what=what,
            ok=(200, 201),
            retry=True,
            headers=headers,
            content=to_bytes(body) if body is not None else None,
        )
        result_type = response.headers.get("Content-Type") or content_type
        self._learn(result_type)
        return CreateAck(
            created=response.status_code == 201,
            offset=require_offset(response, what),
            content_type=result_type,
            closed=flag(response.headers, CLOSED),
        )

    async def head(self) -> StreamMetadata:
        """The stream's metadata (``HEAD``); does not extend a sliding TTL."""
        what = self._what("head")
        response = await self._http().call("HEAD", self.url, what=what, ok=(200,), retry=True)
        headers = response.headers
        content_type = headers.get("Content-Type")
        if not content_type:
            raise MalformedResponse(f"{what}: the answer has no Content-Type")
        expires_at: datetime | None = None
        if (raw := headers.get(EXPIRES_AT)) is not None:
            try:
                expires_at = datetime.fromisoformat(raw.strip())
            except ValueError:
                raise MalformedResponse(
                    f"{what}: {EXPIRES_AT} is not an RFC 3339 time: {raw!r}"
                ) from None
        self._learn(content_type)
        return StreamMetadata(
            content_type=content_type,
            offset=require_offset(response, what),
            closed=flag(headers, CLOSED),
            ttl=optional_int(headers, TTL, what),
            expires_at=expires_at,
        )

    async def delete(self) -> None:
        """Delete the stream (``DELETE``). Not retried: a retry after a lost answer would
        see 404."""
        await self._http().call(
            "DELETE", self.url, what=self._what("delete"), ok=(200, 204), retry=False
        )

    # -- append and close ------------------------------------------------------------

    async def append(
        self, data: bytes | str, *, seq: str | None = None, close: bool = False
    ) -> AppendAck:
        """Append raw bytes (``str`` is encoded as UTF-8) with the stream's content type.

        On a JSON stream ``data`` is JSON text and a top-level array is flattened into
        its elements; :meth:`append_json` is usually what you want there.

        Args:
            seq: a ``Stream-Seq`` writer sequence: the server refuses (409) a value not
                greater, byte-wise, than the last one it accepted.
            close: close the stream with this append, atomically.

        Raises:
            StreamClosed: the stream is closed (``final_offset`` is its last offset).
            Conflict: a content-type mismatch or a ``Stream-Seq`` regression.

        Not retried (a retry could write twice); use :meth:`producer` for that.
        """
        body = to_bytes(data)
        if not body:
            raise ValueError("nothing to append: the protocol refuses an empty body (use close())")
        content_type = await self._known_content_type()
        return await self._post(body, content_type=content_type, seq=seq, close=close)

    async def append_json(
        self, value: object, *, seq: str | None = None, close: bool = False
    ) -> AppendAck:
        """Append ``value`` as exactly one message of a JSON stream (a list is one
        message too). Same arguments and errors as :meth:`append`; ``ValueError`` /
        ``TypeError`` for what JSON cannot hold (NaN, sets, ...)."""
        self._require_json("append_json")
        return await self._post(dump_json([value]), content_type=JSON_TYPE, seq=seq, close=close)

    async def close(self, final: bytes | str | None = None) -> AppendAck:
        """Close the stream: nothing can be appended after it. Idempotent.

        With ``final``, that data is appended and the stream closed atomically (a
        close-only request on a closed stream succeeds; one with data gets
        ``StreamClosed``)."""
        if final is not None and to_bytes(final):
            return await self.append(final, close=True)
        return await self._post(b"", content_type=None, seq=None, close=True)

    def _require_json(self, method: str) -> None:
        known = self._content_type
        if known is not None and not is_json_type(known):
            raise ValueError(
                f"stream {self.name!r} is {media_type(known)}, not {JSON_TYPE}: "
                f"use append() instead of {method}()"
            )

    async def _post(
        self,
        body: bytes,
        *,
        content_type: str | None,
        seq: str | None,
        close: bool,
    ) -> AppendAck:
        headers: dict[str, str] = {}
        if body and content_type is not None:
            headers["Content-Type"] = content_type
        if seq is not None:
            if not seq:
                raise ValueError("seq must be a non-empty string")
            headers[SEQ] = seq
        if close:
            headers[CLOSED] = "true"
        what = self._what("close" if close and not body else "append to")
        response = await self._http().call(
            "POST", self.url, what=what, ok=(200, 204), retry=False, headers=headers, content=body
        )
        return AppendAck(
            offset=require_offset(response, what), closed=flag(response.headers, CLOSED)
        )

    # -- read ------------------------------------------------------------------------

    async def read(self, offset: str = START) -> Chunk:
        """Catch up: everything from ``offset`` to the current tail, following
        ``Stream-Next-Offset`` across pages until the server says up to date.

        Returns a :class:`Chunk` whose ``offset`` is the tail (read or tail from there
        next) and ``closed`` tells whether the stream has ended. Retried on failures.
        """
        offset = check_offset(offset)
        http = self._http()
        what = self._what("read")
        pages: list[Chunk] = []
        while True:
            response = await http.call(
                "GET", self.url, what=what, ok=(200,), retry=True, params={"offset": offset}
            )
            content_type = response.headers.get("Content-Type")
            self._learn(content_type)
            json_mode = is_json_type(content_type or self._content_type)
            page = chunk_from_response(response, what, json_mode=json_mode)
            pages.append(page)
            if page.up_to_date:
                break
            if page.offset == offset and page.empty:
                raise MalformedResponse(
                    f"{what}: the server answered an empty page that is not up to date "
                    f"and does not advance from offset {offset!r}"
                )
            offset = page.offset
        return _merge(pages)

    # -- live tail and writers -------------------------------------------------------

    def live(self, offset: str = START, *, mode: LiveMode = "long-poll") -> LiveTail:
        """A live tail from ``offset`` (``"-1"`` replays everything first, ``"now"``
        starts at the tail): an async iterator of :class:`Chunk`, best used as
        ``async with stream.live(...) as tail: async for chunk in tail``. See
        :class:`LiveTail` for what it yields and how it resumes.

        No I/O until iterated. If the handle does not know the stream's content type
        yet, the first iteration asks for it (``HEAD``): JSON streams yield messages.
        """
        if mode not in ("long-poll", "sse"):
            raise ValueError(f"mode must be 'long-poll' or 'sse', not {mode!r}")
        return LiveTail._create(self, check_offset(offset), mode)

    def batcher(
        self,
        *,
        linger: float = DEFAULT_LINGER,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> Batcher:
        """A :class:`Batcher`: appends collected for up to ``linger`` seconds (or
        ``max_batch_bytes``) go out as one ``POST``; each caller gets its own ack."""
        return Batcher._create(self, linger=linger, max_batch_bytes=max_batch_bytes)

    def producer(
        self,
        producer_id: str,
        *,
        epoch: int = 0,
        auto_claim: bool = False,
        linger: float = DEFAULT_LINGER,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> IdempotentProducer:
        """An idempotent :class:`IdempotentProducer` named ``producer_id``, starting at ``epoch``
        (``auto_claim``: on fencing, claim the next epoch instead of failing)."""
        return IdempotentProducer._create(
            self,
            producer_id=producer_id,
            epoch=epoch,
            auto_claim=auto_claim,
            linger=linger,
            max_batch_bytes=max_batch_bytes,
        )


def _merge(pages: list[Chunk]) -> Chunk:
    """One chunk for consecutive pages: their data, the last one's position."""
    last = pages[-1]
    if len(pages) == 1:
        return last
    if last.messages is not None:
        data, messages = join_json((p.data, p.messages or ()) for p in pages)
        return attrs.evolve(last, data=data, messages=messages)
    return attrs.evolve(last, data=b"".join(p.data for p in pages))
