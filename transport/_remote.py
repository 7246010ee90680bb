"""The store interface over HTTP: any Durable Streams server, reached by URL.

::

    async with RemoteStore("http://127.0.0.1:4437/v1/stream") as store:
        await store.create("/v1/stream/session/42", CreateRequest(content_type=JSON))

:class:`RemoteStore` speaks the protocol (the inverse of :mod:`transport.server`) to our
own server or to any other one (the npm reference server, a hosted one), through the
stream client's wire helpers (:mod:`transport._client_wire`): the same header parsing,
error mapping and bounded retries.

Store paths and URLs. A store path is what the orchestrator names a stream with, e.g.
``/v1/stream/session/42``. The store strips ``prefix`` (``/v1/stream``) when the path
starts with it and appends the rest to ``base_url``; other paths are appended whole
(``/s`` -> ``{base_url}/s``). So ``base_url`` may carry a namespace of its own
(``https://host/tenant-a/v1/stream``) and the orchestrator's paths land below it.

Where it differs from :class:`~transport.MemoryStore` (the protocol cannot tell more):

- **A chunk is one read, not one append.** A server answers a read with one body (the
  bytes of the range, or for JSON streams one array of all its messages) and gives no
  offset inside it, so a read's records come back as **one chunk** (for JSON: all its
  values, compact and comma-joined, as the embedded stores keep one append) with
  ``ends == (next_offset,)``: exact, but a chunk may hold several appends. A reader
  that names a record inside a chunk by the offset the read started at and a count of
  records to skip (as the orchestrator's ``read_events`` does) stays exact: a read
  from that offset gives the same records first again. (One chunk per message would
  have no offset of its own for any message but the last.)
- **JSON is re-serialized** by the server that stores it; the reference server
  (JavaScript) writes ``1.0`` as ``1`` and rounds integers past 2**53.
- **Duplicates are what the server says.** A producer append retried after a lost
  answer may come back ``duplicate``; a producer close-only request is never reported
  as a duplicate (both servers answer 204 either way).
- **Errors** are the embedded stores' classes (``StreamNotFound``, ``Conflict``,
  ``StreamClosed``, ``SequenceGap``, ``Fenced``, ``StreamGone``, ``BadRequest``,
  ``PayloadTooLarge``) with the same ``headers``; their messages are the server's. A
  server that cannot be reached, keeps answering 5xx or breaks the protocol is a
  :class:`~transport.StorageError` (503) whose ``__cause__`` is the client's
  ``StreamUnavailable`` / ``MalformedResponse``. Other statuses (401, 405 from a proxy)
  are ``UnexpectedStatus``.
- **Retries.** Reads, HEAD, PUT (idempotent by the protocol), DELETE, producer appends
  and close-only requests are retried on connection errors and 5xx/429 (``retry``);
  plain appends never are (a retry could write twice). A create whose first answer was
  lost reports ``created=False``; a DELETE whose retry finds nothing counts as done.
- **Waiting.** ``read(wait=...)`` long-polls until data, closure or ``wait`` seconds
  (re-polling when the server's own long-poll timeout is shorter, cancelling the
  request when it is longer), then reads once more without waiting, as the embedded
  stores do.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Final, final
from urllib.parse import quote, urlsplit

import httpx
import trio

from ._client_errors import MalformedResponse, StreamUnavailable
from ._client_sse import DEFAULT_MAX_EVENT_BYTES
from ._client_wire import (
    CLOSED,
    CURSOR,
    EXPIRES_AT,
    NEXT_OFFSET,
    PRODUCER_EPOCH,
    PRODUCER_ID,
    PRODUCER_SEQ,
    SEQ,
    TTL,
    Http,
    RetryPolicy,
    chunk_from_response,
    dump_json,
    error_for,
    flag,
    is_json_type,
    optional_int,
    require_offset,
)
from ._errors import StorageError
from ._offsets import NOW
from .store import (
    DEFAULT_CONTENT_TYPE,
    AppendRequest,
    AppendResult,
    CreateRequest,
    CreateResult,
    ReadResult,
    Store,
    StreamInfo,
    check_wait,
)

__all__ = ["DEFAULT_STREAM_PREFIX", "RemoteStore"]

#: The URL prefix store paths carry (the same as ``transport.server.DEFAULT_PREFIX``).
DEFAULT_STREAM_PREFIX: Final = "/v1/stream"

FORKED_FROM: Final = "Stream-Forked-From"
FORK_OFFSET: Final = "Stream-Fork-Offset"
FORK_SUB_OFFSET: Final = "Stream-Fork-Sub-Offset"


@contextlib.contextmanager
def _as_store_errors() -> Iterator[None]:
    """What only a client sees (unreachable, 5xx, a broken answer), as the store error
    the protocol server turns into a 503."""
    try:
        yield
    except (StreamUnavailable, MalformedResponse) as exc:
        raise StorageError(f"the remote store failed: {exc}") from exc


@final
class RemoteStore(Store):
    """The streams of a Durable Streams server at ``base_url`` (e.g.
    ``http://127.0.0.1:4437/v1/stream``), as a :class:`~transport.Store`.

    Args:
        prefix: the part of store paths that ``base_url`` stands for (see the module).
        timeout: seconds to connect, send a request, and wait for an answer that
            should come at once.
        live_timeout: the read timeout of a long-poll request; only a safety net,
            since ``read(wait=...)`` bounds the wait itself. Keep it above the
            server's long-poll timeout.
        retry: how idempotent requests retry connection errors and 5xx/429.
        headers: sent with every request (e.g. ``Authorization``).
        limits: the connection pool; every waiting ``read`` holds a connection, so
            the default sets no bound on their number.
        transport: an httpx transport (tests).

    Owns one ``httpx.AsyncClient``: use it as ``async with``, or call :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        prefix: str = DEFAULT_STREAM_PREFIX,
        timeout: float = 30.0,
        live_timeout: float = 90.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        limits: httpx.Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not have a query or fragment: {base_url!r}")
        for name, value in (("timeout", timeout), ("live_timeout", live_timeout)):
            if math.isnan(value) or value <= 0:
                raise ValueError(f"{name} must be > 0 seconds, not {value!r}")
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"prefix must start with '/' and not end with it: {prefix!r}")
        self._base_url = base_url.rstrip("/")
        self._base_path = parts.path.rstrip("/")
        self._prefix = prefix
        client = httpx.AsyncClient(
            timeout=timeout,
            headers=dict(headers or {}),
            transport=transport,
            limits=limits or httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        self._http = Http(
            client,
            retry=retry or RetryPolicy(),
            live_timeout=live_timeout,
            max_event_bytes=DEFAULT_MAX_EVENT_BYTES,
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"<RemoteStore {self._base_url}{' closed' if self._closed else ''}>"

    @property
    def base_url(self) -> str:
        return self._base_url

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._http.client.aclose()

    # -- paths -------------------------------------------------------------------------

    def _rest(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"a store path starts with '/': {path!r}")
        prefix = self._prefix
        rest = path[len(prefix) :] if prefix and path.startswith(prefix + "/") else path
        if rest in ("", "/"):
            raise ValueError(f"not a stream path: {path!r}")
        return rest

    def url(self, path: str) -> str:
        """The URL of the stream at store path ``path``."""
        return self._base_url + quote(self._rest(path), safe="/")

    def _server_path(self, path: str) -> str:
        """The path the server knows the stream by (``Stream-Forked-From``)."""
        return self._base_path + self._rest(path)

    # -- sending -----------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        retry: bool,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> tuple[httpx.Response, int]:
        """One exchange (retried when ``retry``): the first answer that is not a
        failure, and how many attempts failed before it."""
        if self._closed:
            raise RuntimeError("this RemoteStore is closed")
        with _as_store_errors():
            response, failures = await self._http.exchange(
                method,
                url,
                what=what,
                retry=retry,
                params=params,
                headers=headers,
                content=content,
                timeout=timeout,
            )
        return response, failures

    async def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        ok: tuple[int, ...],
        retry: bool,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """:meth:`_send`, and the mapped error unless the status is in ``ok``."""
        response, _ = await self._send(
            method,
            url,
            what=what,
            retry=retry,
            params=params,
            headers=headers,
            content=content,
            timeout=timeout,
        )
        if response.status_code not in ok:
            raise error_for(response, what, with_context=False)
        return response

    # -- create, head, delete ----------------------------------------------------------

    async def create(self, path: str, request: CreateRequest) -> CreateResult:
        url = self.url(path)
        what = f"create {url}"
        headers: dict[str, str] = {}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        if request.ttl is not None:
            headers[TTL] = str(request.ttl)
        if request.expires_at is not None:
            headers[EXPIRES_AT] = request.expires_at
        if request.closed:
            headers[CLOSED] = "true"
        fork = request.fork
        if fork is not None:
            headers[FORKED_FROM] = self._server_path(fork.source)
            if fork.offset is not None:
                headers[FORK_OFFSET] = fork.offset
            if fork.sub_offset:
                headers[FORK_SUB_OFFSET] = str(fork.sub_offset)
        response = await self._call(
            "PUT",
            url,
            what=what,
            ok=(200, 201),
            retry=True,
            headers=headers,
            content=request.body or None,
        )
        if fork is not None and request.ttl is None and request.expires_at is None:
            # a fork inherits its source's expiry: only HEAD tells which
            info = await self.head(path)
        else:
            with _as_store_errors():
                info = StreamInfo(
                    path=path,
                    content_type=response.headers.get("Content-Type")
                    or request.content_type
                    or DEFAULT_CONTENT_TYPE,
                    next_offset=require_offset(response, what),
                    closed=flag(response.headers, CLOSED),
                    ttl=request.ttl,
                    expires_at=request.expires_at,
                )
        return CreateResult(created=response.status_code == 201, info=info)

    async def head(self, path: str) -> StreamInfo:
        url = self.url(path)
        what = f"head {url}"
        response = await self._call("HEAD", url, what=what, ok=(200,), retry=True)
        headers = response.headers
        with _as_store_errors():
            content_type = headers.get("Content-Type")
            if not content_type:
                raise MalformedResponse(f"{what}: the answer has no Content-Type")
            return StreamInfo(
                path=path,
                content_type=content_type,
                next_offset=require_offset(response, what),
                closed=flag(headers, CLOSED),
                ttl=optional_int(headers, TTL, what),
                expires_at=headers.get(EXPIRES_AT),
            )

    async def delete(self, path: str) -> None:
        url = self.url(path)
        what = f"delete {url}"
        response, failures = await self._send("DELETE", url, what=what, retry=True)
        if response.status_code in (200, 204) or (response.status_code == 404 and failures):
            return  # (a 404 after a failed attempt: that attempt deleted it)
        raise error_for(response, what, with_context=False)

    # -- append --------------------------------------------------------------------------

    async def append(self, path: str, request: AppendRequest) -> AppendResult:
        url = self.url(path)
        body = request.body
        close_only = request.close and not body
        what = f"{'close' if close_only else 'append to'} {url}"
        headers: dict[str, str] = {}
        if body and request.content_type is not None:
            headers["Content-Type"] = request.content_type
        if request.stream_seq is not None:
            headers[SEQ] = request.stream_seq
        producer = request.producer
        if producer is not None:
            headers[PRODUCER_ID] = producer.id
            headers[PRODUCER_EPOCH] = str(producer.epoch)
            headers[PRODUCER_SEQ] = str(producer.seq)
        if request.close:
            headers[CLOSED] = "true"
        response = await self._call(
            "POST",
            url,
            what=what,
            ok=(200, 204),
            # a producer's retry is answered as a duplicate, a close as a close:
            # safe; a plain append could be written twice
            retry=producer is not None or (close_only and request.stream_seq is None),
            headers=headers,
            content=body,
        )
        duplicate = producer is not None and bool(body) and response.status_code == 204
        with _as_store_errors():
            if duplicate and NEXT_OFFSET not in response.headers:
                # the reference server gives a duplicate no offset: the tail is the answer
                next_offset = (await self.head(path)).next_offset
            else:
                next_offset = require_offset(response, what)
            producer_seq = None
            if producer is not None:
                producer_seq = optional_int(response.headers, PRODUCER_SEQ, what)
                if producer_seq is None:
                    producer_seq = producer.seq
            return AppendResult(
                next_offset=next_offset,
                closed=flag(response.headers, CLOSED),
                duplicate=duplicate,
                producer_seq=producer_seq,
            )

    # -- read ----------------------------------------------------------------------------

    async def read(self, path: str, offset: str, *, wait: float = 0.0) -> ReadResult:
        check_wait(wait)
        url = self.url(path)
        what = f"read {url}"
        if wait <= 0:
            return await self._catch_up(url, what, offset, offset)
        # Resolve "now" first: once the wait is over, what came meanwhile is read from
        # there (as the embedded stores do), not from a tail that moved past it.
        start = (await self.head(path)).next_offset if offset == NOW else offset
        params = {"offset": start, "live": "long-poll"}
        with trio.move_on_after(wait):
            while True:
                response = await self._call(
                    "GET",
                    url,
                    what=what,
                    ok=(200, 204),
                    retry=True,
                    params=params,
                    timeout=self._http.live_timeouts(),
                )
                if response.status_code == 200:
                    result = self._result(response, what, offset)
                    if result.chunks or result.closed:
                        return result
                elif flag(response.headers, CLOSED):
                    break
                cursor = response.headers.get(CURSOR)
                if cursor:
                    params["cursor"] = cursor
        # Timed out or closed at the tail: what is there now, as the embedded stores do.
        return await self._catch_up(url, what, offset, start)

    async def _catch_up(self, url: str, what: str, offset: str, start: str) -> ReadResult:
        response = await self._call(
            "GET", url, what=what, ok=(200,), retry=True, params={"offset": start}
        )
        return self._result(response, what, offset)

    def _result(self, response: httpx.Response, what: str, offset: str) -> ReadResult:
        """A read answer as a ReadResult: one chunk holding all it carries."""
        with _as_store_errors():
            content_type = response.headers.get("Content-Type")
            if not content_type:
                raise MalformedResponse(f"{what}: the answer has no Content-Type")
            json_mode = is_json_type(content_type)
            chunk = chunk_from_response(response, what, json_mode=json_mode)
            if json_mode:
                try:  # the stored form: compact values, comma-joined
                    data = dump_json(list(chunk.messages or ()))[1:-1]
                except ValueError as exc:  # e.g. 1e400, which Python reads as inf
                    raise MalformedResponse(f"{what}: a message is not JSON: {exc}") from None
            else:
                data = chunk.data
            return ReadResult(
                content_type=content_type,
                chunks=(data,) if data else (),
                start_offset=offset,
                next_offset=chunk.offset,
                up_to_date=chunk.up_to_date,
                closed=chunk.closed,
                json=json_mode,
                ends=(chunk.offset,) if data else (),
            )
