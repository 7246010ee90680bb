"""Errors of the transport package.

Every error derives from :class:`StreamError`::

    StreamError
     └── ProtocolError          a request the protocol refuses; carries the HTTP status
          ├── BadRequest        400: malformed offset, header or body
          ├── Fenced            403: a stale producer epoch (``.epoch`` is the current one)
          ├── StreamNotFound    404: no such stream (or it expired)
          ├── Conflict          409: config mismatch, closed stream, Stream-Seq regression
          │    ├── StreamClosed 409 with ``Stream-Closed: true`` and the final offset
          │    └── SequenceGap  409: a producer skipped a sequence number
          ├── StreamGone        410: deleted while forks still read it
          ├── PayloadTooLarge   413
          └── StorageError      503: the store could not make the change durable

Errors carry ``.headers``: the protocol headers the answer must include.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "BadRequest",
    "Conflict",
    "Fenced",
    "PayloadTooLarge",
    "ProtocolError",
    "SequenceGap",
    "StorageError",
    "StreamClosed",
    "StreamError",
    "StreamGone",
    "StreamNotFound",
]


class StreamError(Exception):
    """Root of the transport package's errors."""


class ProtocolError(StreamError):
    """The protocol refuses this request. ``status`` is the HTTP status to answer
    with, ``headers`` the protocol headers that go with it."""

    status = 400

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(ProtocolError):
    status = 400


class Fenced(ProtocolError):
    """A producer wrote with an epoch older than the stream's: a zombie, fenced off."""

    status = 403

    def __init__(self, message: str, *, epoch: int) -> None:
        super().__init__(message, headers={"Producer-Epoch": str(epoch)})
        self.epoch = epoch


class StreamNotFound(ProtocolError):
    status = 404


class Conflict(ProtocolError):
    status = 409


class StreamClosed(Conflict):
    """An append to a closed stream."""

    def __init__(self, message: str, *, final_offset: str) -> None:
        super().__init__(
            message, headers={"Stream-Closed": "true", "Stream-Next-Offset": final_offset}
        )
        self.final_offset = final_offset


class SequenceGap(Conflict):
    def __init__(self, message: str, *, expected: int, received: int) -> None:
        super().__init__(
            message,
            headers={
                "Producer-Expected-Seq": str(expected),
                "Producer-Received-Seq": str(received),
            },
        )
        self.expected = expected
        self.received = received


class StreamGone(ProtocolError):
    status = 410


class PayloadTooLarge(ProtocolError):
    status = 413


class StorageError(ProtocolError):
    status = 503
