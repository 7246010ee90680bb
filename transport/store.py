"""The store interface: what the protocol server needs from a backend.

Every operation speaks in protocol terms (paths, opaque offset strings, producer
headers), so that the same interface can be implemented by the embedded store
(in memory, or on disk) and by a remote Durable Streams server reached by URL.

Operations raise :class:`~transport.ProtocolError` subclasses for requests the
protocol refuses; their ``status`` and ``headers`` are what the HTTP answer carries.
"""

from __future__ import annotations

import abc
import math
from types import TracebackType
from typing import Self

import attrs

__all__ = [
    "AppendRequest",
    "AppendResult",
    "CreateRequest",
    "CreateResult",
    "ForkSpec",
    "Producer",
    "ReadResult",
    "Store",
    "StreamInfo",
    "media_type",
]

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value: lower case, parameters dropped."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    return media_type(content_type) == "application/json"


@attrs.frozen
class Producer:
    """The idempotent-producer headers of an append."""

    id: str
    epoch: int
    seq: int


@attrs.frozen
class ForkSpec:
    """Create the stream as a fork of ``source`` at ``offset`` (its tail if None),
    plus ``sub_offset`` bytes (or JSON messages) of the record that starts there."""

    source: str
    offset: str | None = None
    sub_offset: int = 0


@attrs.frozen
class CreateRequest:
    content_type: str | None = None  # None: the default (or the fork source's)
    ttl: int | None = None  # seconds, sliding
    expires_at: str | None = None  # RFC 3339, absolute; kept as given
    closed: bool = False
    body: bytes = b""
    fork: ForkSpec | None = None


@attrs.frozen
class StreamInfo:
    path: str
    content_type: str
    next_offset: str
    closed: bool
    ttl: int | None = None
    expires_at: str | None = None


@attrs.frozen
class CreateResult:
    created: bool  # False: it existed already with the same configuration
    info: StreamInfo


@attrs.frozen
class AppendRequest:
    body: bytes = b""
    content_type: str | None = None
    stream_seq: str | None = None
    producer: Producer | None = None
    close: bool = False


@attrs.frozen
class AppendResult:
    next_offset: str
    closed: bool
    duplicate: bool = False  # a producer retry: nothing new was written
    producer_seq: int | None = None  # accepted seq, or the highest one for a duplicate


@attrs.frozen
class ReadResult:
    """What a read found. ``chunks`` are stored records: raw bytes, or for JSON streams
    comma-joined JSON values (see :meth:`body`)."""

    content_type: str
    chunks: tuple[bytes, ...]
    start_offset: str
    next_offset: str
    up_to_date: bool
    closed: bool  # the stream is closed and this read reached its final offset
    json: bool = False
    ends: tuple[str, ...] = ()  # the offset after each chunk (when the store knows it)

    @property
    def empty(self) -> bool:
        return not self.chunks

    def body(self) -> bytes:
        """The response body: the bytes, or one JSON array for JSON streams."""
        if self.json:
            return b"[" + b",".join(self.chunks) + b"]"
        return b"".join(self.chunks)


class Store(abc.ABC):
    """A place streams live in. Use as ``async with``; closing releases files."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the store holds. Idempotent."""

    @abc.abstractmethod
    async def create(self, path: str, request: CreateRequest) -> CreateResult:
        """PUT: create the stream, or confirm an identical one (``created`` False)."""

    @abc.abstractmethod
    async def head(self, path: str) -> StreamInfo:
        """HEAD: the stream's metadata. Does not refresh a sliding TTL."""

    @abc.abstractmethod
    async def append(self, path: str, request: AppendRequest) -> AppendResult:
        """POST: append (and/or close). Durable before it returns."""

    @abc.abstractmethod
    async def read(self, path: str, offset: str, *, wait: float = 0.0) -> ReadResult:
        """GET from ``offset`` (``-1``, ``now`` or an offset this store gave out).

        With ``wait`` > 0 and nothing to return yet, waits up to that long for data or
        closure (long-poll and SSE); an empty result after the wait is a time-out.
        """

    @abc.abstractmethod
    async def delete(self, path: str) -> None:
        """DELETE the stream (soft-deleted while forks still read it)."""


def check_wait(wait: float) -> float:
    if math.isnan(wait) or wait < 0:
        raise ValueError(f"wait must be >= 0, not {wait!r}")
    return wait
