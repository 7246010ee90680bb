"""Errors raised by the stream client, beyond those the server shares with it.

A refusal the server answers with a status of the protocol comes back as the very class
the server raised it with (``transport._errors``), so ``except StreamNotFound`` reads the
same on both sides of the wire. The client adds what only a client can see::

    StreamError
     ├── ProtocolError                (transport._errors: a status of the protocol)
     │    ├── BadRequest, Fenced, StreamNotFound, Conflict (StreamClosed, SequenceGap),
     │    │   StreamGone, PayloadTooLarge          ... as the server raised them
     │    └── UnexpectedStatus        a status the protocol gives no meaning to here
     │                                (401, 405, 429 ...); ``.status`` is the one received
     ├── StreamUnavailable            the server could not be reached or answered 5xx, and
     │                                retrying (where safe) did not help; ``.offset`` is
     │                                where a live tail stopped, ``.status`` the last 5xx
     ├── MalformedResponse            the server's answer breaks the protocol: a missing
     │                                or malformed header, bad JSON, bad SSE framing
     └── ProducerFailed               an idempotent producer refuses further appends after
                                      an error that ends it (fenced, sequence gap, closed
                                      stream, ...); the first error is the ``__cause__``

Errors that come from an HTTP answer carry ``.headers``: its ``Stream-*`` and
``Producer-*`` headers.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._errors import ProtocolError, StreamError

__all__ = ["MalformedResponse", "ProducerFailed", "StreamUnavailable", "UnexpectedStatus"]


class UnexpectedStatus(ProtocolError):
    """The server answered with a status that has no meaning for this operation in the
    protocol (for example 401 from a proxy, 405, 429). ``status`` is the one received."""

    def __init__(
        self, message: str, *, status: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, headers=headers)
        self.status = status


class StreamUnavailable(StreamError):
    """The server could not be reached (connection refused or dropped, timeout) or kept
    answering 5xx, after the retries the client's policy allows for that operation.

    ``status`` is the last 5xx status, or ``None`` when the last failure was a transport
    error (the ``__cause__``). ``offset`` is where a live tail would resume; ``None``
    for other operations.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        offset: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.offset = offset
        self.headers: dict[str, str] = dict(headers or {})


class MalformedResponse(StreamError):
    """The server's answer does not follow the protocol (a missing ``Stream-Next-Offset``,
    a control event that is not a JSON object, invalid base64, an oversized SSE event,
    ...). Retrying will not help; it names what was wrong and where."""


class ProducerFailed(StreamError):
    """An idempotent producer that hit an error ending it (fenced by a newer epoch, a
    sequence gap, a closed stream, retries exhausted with the outcome unknown) refuses
    every later append with this error. The error that ended it is the ``__cause__``.

    Open a new producer (with a higher epoch, or ``auto_claim=True``) to go on.
    """

    def __init__(self, message: str, *, producer_id: str) -> None:
        super().__init__(message)
        self.producer_id = producer_id
