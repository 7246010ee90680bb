"""What the stream client reads off and puts on the wire: header names, result records,
strict JSON, the mapping of answers to errors, and the one place requests are sent
(with retries where that is safe).

Everything the server sends is parsed here, defensively: a missing or malformed header
or body is a :class:`MalformedResponse` naming what was wrong, never a ``KeyError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final, NoReturn, final

import attrs
import httpx
import trio

from ._client_errors import MalformedResponse, StreamUnavailable, UnexpectedStatus
from ._errors import (
    BadRequest,
    Conflict,
    Fenced,
    PayloadTooLarge,
    ProtocolError,
    SequenceGap,
    StreamClosed,
    StreamError,
    StreamGone,
    StreamNotFound,
)

__all__ = [
    "AppendAck",
    "Chunk",
    "CreateAck",
    "ProducerAck",
    "RetryPolicy",
    "StreamMetadata",
]

# ---------------------------------------------------------------------------------------
# Header names and small parsers
# ---------------------------------------------------------------------------------------

NEXT_OFFSET: Final = "Stream-Next-Offset"
UP_TO_DATE: Final = "Stream-Up-To-Date"
CLOSED: Final = "Stream-Closed"
CURSOR: Final = "Stream-Cursor"
TTL: Final = "Stream-TTL"
EXPIRES_AT: Final = "Stream-Expires-At"
SEQ: Final = "Stream-Seq"
SSE_ENCODING: Final = "Stream-SSE-Data-Encoding"
PRODUCER_ID: Final = "Producer-Id"
PRODUCER_EPOCH: Final = "Producer-Epoch"
PRODUCER_SEQ: Final = "Producer-Seq"
EXPECTED_SEQ: Final = "Producer-Expected-Seq"
RECEIVED_SEQ: Final = "Producer-Received-Seq"

JSON_TYPE: Final = "application/json"
DEFAULT_TYPE: Final = "application/octet-stream"

#: Offsets with a meaning of their own: the start of the stream, and its current tail.
START: Final = "-1"
NOW: Final = "now"


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(content_type: str | None) -> bool:
    return media_type(content_type) == JSON_TYPE


def flag(headers: httpx.Headers, name: str) -> bool:
    """A boolean protocol header: present and ``true`` (any case)."""
    return str(headers.get(name, "")).strip().lower() == "true"


def protocol_headers(headers: httpx.Headers) -> dict[str, str]:
    """The ``Stream-*`` and ``Producer-*`` headers of an answer, for error context."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower().startswith(("stream-", "producer-"))
    }


def require_offset(response: httpx.Response, what: str) -> str:
    value = str(response.headers.get(NEXT_OFFSET, "")).strip()
    if not value:
        raise MalformedResponse(
            f"{what}: the {response.status_code} answer has no {NEXT_OFFSET} header"
        )
    return value


def optional_int(headers: httpx.Headers, name: str, what: str) -> int | None:
    """A header holding a non-negative decimal integer, or None when absent."""
    raw = headers.get(name)
    if raw is None:
        return None
    value = raw.strip()
    if not (value.isascii() and value.isdigit()):
        raise MalformedResponse(f"{what}: header {name} is not a non-negative integer: {raw!r}")
    return int(value)


def to_bytes(data: bytes | str) -> bytes:
    """Bytes as they are, ``str`` as UTF-8; anything else is a ``TypeError``."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(
        f"data must be bytes or str, not {type(data).__name__}; for JSON use append_json"
    )


def check_offset(offset: str) -> str:
    """Offsets are opaque to clients; all we can check is that one was given."""
    if not isinstance(offset, str) or not offset:
        raise ValueError(
            "offset must be a non-empty string ('-1', 'now' or one the server gave), "
            f"not {offset!r}"
        )
    return offset


# ---------------------------------------------------------------------------------------
# JSON, strictly
# ---------------------------------------------------------------------------------------


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON. NaN and the infinities are refused (``ValueError``), as is
    anything ``json`` cannot encode (``TypeError``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def load_json(data: bytes) -> Any:
    """Strict JSON: NaN and the infinities are refused. Raises ``ValueError`` (or
    ``RecursionError`` for absurd nesting)."""
    return json.loads(data, parse_constant=_no_constant)


def load_json_array(data: bytes, what: str) -> list[Any]:
    """Parse a JSON array the server sent; anything else is a :class:`MalformedResponse`."""
    try:
        value = load_json(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedResponse(f"{what}: the body is not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise MalformedResponse(
            f"{what}: a JSON stream's data must be a JSON array, not {_preview(data)}"
        )
    return value


def _preview(data: bytes, limit: int = 120) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(data) > limit else ""))


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Chunk:
    """A contiguous range of a stream, as read (``read``) or tailed (``live``).

    ``offset`` is where the range ends: read from there to continue without a gap or a
    duplicate. For ``application/json`` streams ``messages`` holds the JSON messages of
    the range and ``data`` is one JSON array of them; for other streams ``messages`` is
    ``None`` and ``data`` the raw bytes.
    """

    data: bytes
    offset: str
    #: The range reaches the tail the server had when it answered.
    up_to_date: bool = False
    #: The stream is closed and this range ends at its final offset: nothing will follow.
    closed: bool = False
    #: The server's ``Stream-Cursor`` (for CDN collapsing); the client passes it back.
    cursor: str | None = None
    messages: tuple[Any, ...] | None = None

    @property
    def empty(self) -> bool:
        """No data: for JSON streams no message, otherwise no byte."""
        return not self.messages if self.messages is not None else not self.data

    def text(self) -> str:
        """``data`` decoded as UTF-8."""
        return self.data.decode("utf-8")


@attrs.frozen(kw_only=True)
class AppendAck:
    """An acknowledged append (or close)."""

    #: The stream's tail right after this append: the offset after its data.
    offset: str
    #: The stream is closed now (this request closed it, or it was closed already).
    closed: bool = False


@attrs.frozen(kw_only=True)
class ProducerAck:
    """An append acknowledged to an idempotent producer.

    ``duplicate`` is true when the server already held this batch (a retry after an
    answer was lost); it then gives no offset, so ``offset`` is ``None``.
    """

    offset: str | None
    duplicate: bool
    epoch: int
    seq: int


@attrs.frozen(kw_only=True)
class CreateAck:
    """The answer to a create: ``created`` is false when an identical stream existed."""

    created: bool
    offset: str
    content_type: str
    closed: bool = False


@attrs.frozen(kw_only=True)
class StreamMetadata:
    """A stream's metadata (``HEAD``)."""

    content_type: str
    #: The current tail.
    offset: str
    closed: bool = False
    #: Sliding time to live in seconds, if the stream has one.
    ttl: int | None = None
    #: Absolute expiry, if the stream has one.
    expires_at: datetime | None = None


def _non_negative_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an int >= 0, not {value!r}")


def _positive_finite(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, not {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry what is safe to retry: reads, creates,
    idempotent-producer appends, live tails. Plain appends and deletes are never retried.

    A failure is a transport error (connection refused or dropped, timeout) or a 5xx or
    429 answer. After ``attempts`` consecutive failures the operation raises
    :class:`StreamUnavailable`; before retry ``n`` (from 0) it sleeps
    ``min(initial * factor**n, maximum)`` seconds. ``RetryPolicy(attempts=0)`` never
    retries.
    """

    attempts: int = attrs.field(default=5, validator=_non_negative_int)
    initial: float = attrs.field(default=0.1, validator=_positive_finite)
    factor: float = attrs.field(default=2.0, validator=_positive_finite)
    maximum: float = attrs.field(default=5.0, validator=_positive_finite)

    def delay(self, retry: int) -> float:
        """Seconds to sleep before retry number ``retry`` (counted from 0)."""
        return min(self.initial * self.factor ** min(retry, 64), self.maximum)


# ---------------------------------------------------------------------------------------
# Chunks out of answers
# ---------------------------------------------------------------------------------------


def chunk_from_response(response: httpx.Response, what: str, *, json_mode: bool) -> Chunk:
    """The chunk a catch-up or long-poll answer (200 or 204) carries."""
    headers = response.headers
    offset = require_offset(response, what)
    closed = flag(headers, CLOSED)
    up_to_date = closed or flag(headers, UP_TO_DATE) or response.status_code == 204
    cursor = headers.get(CURSOR)
    data = response.content if response.status_code != 204 else b""
    messages: tuple[Any, ...] | None = None
    if json_mode:
        if data:
            messages = tuple(load_json_array(data, what))
        else:
            data, messages = b"[]", ()
    return Chunk(
        data=data,
        offset=offset,
        up_to_date=up_to_date,
        closed=closed,
        cursor=cursor,
        messages=messages,
    )


def join_json(parts: Iterable[tuple[bytes, Iterable[Any]]]) -> tuple[bytes, tuple[Any, ...]]:
    """Merge JSON array pieces (raw text, parsed messages) into one: a single piece keeps
    the server's bytes, several are re-serialized as one array."""
    pieces = list(parts)
    if not pieces:
        return b"[]", ()
    if len(pieces) == 1:
        raw, messages = pieces[0]
        return raw, tuple(messages)
    merged = tuple(message for _, messages in pieces for message in messages)
    return dump_json(list(merged)), merged


# ---------------------------------------------------------------------------------------
# Answers to errors
# ---------------------------------------------------------------------------------------


def describe(response: httpx.Response, what: str) -> str:
    body = ""
    if response.request.method != "HEAD":
        try:
            body = response.text.strip()
        except (httpx.ResponseNotRead, UnicodeDecodeError, LookupError):
            body = ""
    reason = response.reason_phrase or ""
    text = f"{what}: {response.status_code} {reason}".rstrip()
    if body:
        text += f": {body[:200]}"
    return text


def error_for(response: httpx.Response, what: str, *, with_context: bool = True) -> StreamError:
    """The error a refusal stands for, as the server's own class where it has one.

    ``with_context``: the protocol errors also carry every ``Stream-*`` / ``Producer-*``
    header of the answer (lower-cased), not only the ones their class sets; a
    :class:`~transport.Store` passes False so that its errors carry exactly the headers
    the embedded stores' do."""
    status = response.status_code
    headers = response.headers
    context = protocol_headers(headers)
    message = describe(response, what)
    if status == 400:
        return BadRequest(message, headers=context if with_context else None)
    epoch = optional_int(headers, PRODUCER_EPOCH, what) if status == 403 else None
    if epoch is not None:
        error: ProtocolError = Fenced(
            f"{message} (fenced: the producer's epoch is stale; the stream is at epoch "
            f"{epoch}; use a higher epoch or auto_claim=True)",
            epoch=epoch,
        )
    elif status == 404:
        error = StreamNotFound(message)
    elif status == 409 and flag(headers, CLOSED):
        error = StreamClosed(
            f"{message} (the stream is closed)", final_offset=headers.get(NEXT_OFFSET, "")
        )
    elif status == 409 and (expected := optional_int(headers, EXPECTED_SEQ, what)) is not None:
        received = optional_int(headers, RECEIVED_SEQ, what)
        error = SequenceGap(
            f"{message} (producer sequence gap: the server expected seq {expected}, "
            f"received {received if received is not None else 'another'})",
            expected=expected,
            received=received if received is not None else -1,
        )
    elif status == 409:
        error = Conflict(message)
    elif status == 410:
        error = StreamGone(message)
    elif status == 413:
        error = PayloadTooLarge(message)
    elif status >= 500 or status == 429:
        return StreamUnavailable(message, status=status, headers=context)
    else:
        return UnexpectedStatus(message, status=status, headers=context)
    if with_context:
        error.headers.update(context)
    return error


def retryable(status: int) -> bool:
    return status >= 500 or status == 429


# ---------------------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------------------


class ClosesOnExit:
    """``async with`` for a resource with an idempotent ``aclose()``: leaving the block
    closes it, whatever happened inside."""

    __slots__ = ()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@final
class Http:
    """The client's one door to the network: sends a request and reads its answer,
    retrying transport errors and 5xx/429 answers when told it is safe."""

    __slots__ = ("client", "live_timeout", "max_event_bytes", "retry")

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        retry: RetryPolicy,
        live_timeout: float,
        max_event_bytes: int,
    ) -> None:
        self.client = client
        self.retry = retry
        self.live_timeout = live_timeout
        self.max_event_bytes = max_event_bytes

    def live_timeouts(self) -> httpx.Timeout:
        """The client's timeouts with the read timeout stretched for long-poll and SSE,
        which legitimately wait (up to the server's long-poll timeout) for data."""
        base = self.client.timeout
        return httpx.Timeout(
            connect=base.connect, read=self.live_timeout, write=base.write, pool=base.pool
        )

    async def exchange(
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
        """Send; return the first answer that is not a failure (it may still be a
        refusal, e.g. 404) and how many failed attempts came before it.

        Raises:
            StreamUnavailable: a failure, and ``retry`` is false or the policy's
                attempts are spent.
            MalformedResponse: the body could not be decoded (e.g. broken gzip).
        """
        failures = 0
        while True:
            cause: Exception | None = None
            status: int | None = None
            try:
                response = await self.client.request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    content=content,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                cause = exc
            except httpx.DecodingError as exc:
                raise MalformedResponse(f"{what}: the answer could not be decoded: {exc}") from exc
            else:
                if not retryable(response.status_code):
                    return response, failures
                status = response.status_code
            if not retry or failures >= self.retry.attempts:
                tries = f" (after {failures + 1} attempts)" if failures else ""
                if cause is not None:
                    message = f"{what}: {type(cause).__name__}: {cause}{tries}"
                    raise StreamUnavailable(message) from cause
                raise StreamUnavailable(
                    describe(response, what) + tries,
                    status=status,
                    headers=protocol_headers(response.headers),
                )
            await trio.sleep(self.retry.delay(failures))
            failures += 1

    async def call(
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
        """:meth:`exchange`, then raise the mapped error unless the status is in ``ok``."""
        response, _ = await self.exchange(
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
            raise error_for(response, what)
        return response
