"""Durable event streams: the protocol server, stores and a trio client. Knows nothing
of agents.

- :class:`Store` and its embedded implementations :class:`MemoryStore` and
  :class:`DiskStore` (journaled, fsync before acknowledgement);
- :func:`create_app` / :func:`streams_blueprint` / :func:`serve`: the Durable Streams
  HTTP protocol on quart-trio and hypercorn.
"""

from ._errors import (
    BadRequest,
    Conflict,
    Fenced,
    PayloadTooLarge,
    ProtocolError,
    SequenceGap,
    StorageError,
    StreamClosed,
    StreamError,
    StreamGone,
    StreamNotFound,
)
from ._local import DiskStore, LocalStore, MemoryStore
from ._offsets import format_offset, parse_offset
from ._subscriptions import (
    SubscriptionError,
    SubscriptionManager,
    SubscriptionSpec,
    SubscriptionsUnavailable,
    open_subscriptions,
    subscriptions_available,
)
from .server import DEFAULT_PREFIX, ServerSettings, create_app, serve, streams_blueprint
from .store import (
    AppendRequest,
    AppendResult,
    CreateRequest,
    CreateResult,
    ForkSpec,
    Producer,
    ReadResult,
    Store,
    StreamInfo,
)

__all__ = [
    "DEFAULT_PREFIX",
    "AppendRequest",
    "AppendResult",
    "BadRequest",
    "Conflict",
    "CreateRequest",
    "CreateResult",
    "DiskStore",
    "Fenced",
    "ForkSpec",
    "LocalStore",
    "MemoryStore",
    "PayloadTooLarge",
    "Producer",
    "ProtocolError",
    "ReadResult",
    "SequenceGap",
    "ServerSettings",
    "StorageError",
    "Store",
    "StreamClosed",
    "StreamError",
    "StreamGone",
    "StreamInfo",
    "StreamNotFound",
    "SubscriptionError",
    "SubscriptionManager",
    "SubscriptionSpec",
    "SubscriptionsUnavailable",
    "create_app",
    "format_offset",
    "open_subscriptions",
    "parse_offset",
    "serve",
    "streams_blueprint",
    "subscriptions_available",
]
