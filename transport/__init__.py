"""Durable event streams: the protocol server, stores and a trio client. Knows nothing
of agents.

- :class:`Store` and its embedded implementations :class:`MemoryStore` and
  :class:`DiskStore` (journaled, fsync before acknowledgement);
- :func:`create_app` / :func:`streams_blueprint` / :func:`serve`: the Durable Streams
  HTTP protocol on quart-trio and hypercorn, with the reserved subscription APIs
  (:func:`open_subscriptions`);
- :class:`StreamClient`: a trio + httpx client (handles, live tails by long-poll or SSE
  that resume from their offset, a batching appender, an idempotent producer).
"""

from ._client_errors import MalformedResponse, ProducerFailed, StreamUnavailable, UnexpectedStatus
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
from ._remote import RemoteStore
from ._subscriptions import (
    SubscriptionError,
    SubscriptionManager,
    SubscriptionSpec,
    SubscriptionsUnavailable,
    open_subscriptions,
    subscriptions_available,
)
from .client import (
    NOW,
    START,
    AppendAck,
    Batcher,
    Chunk,
    CreateAck,
    IdempotentProducer,
    LiveMode,
    LiveTail,
    ProducerAck,
    RetryPolicy,
    StreamClient,
    StreamHandle,
    StreamMetadata,
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
    "NOW",
    "START",
    "AppendAck",
    "AppendRequest",
    "AppendResult",
    "BadRequest",
    "Batcher",
    "Chunk",
    "Conflict",
    "CreateAck",
    "CreateRequest",
    "CreateResult",
    "DiskStore",
    "Fenced",
    "ForkSpec",
    "IdempotentProducer",
    "LiveMode",
    "LiveTail",
    "LocalStore",
    "MalformedResponse",
    "MemoryStore",
    "PayloadTooLarge",
    "Producer",
    "ProducerAck",
    "ProducerFailed",
    "ProtocolError",
    "ReadResult",
    "RemoteStore",
    "RetryPolicy",
    "SequenceGap",
    "ServerSettings",
    "StorageError",
    "Store",
    "StreamClient",
    "StreamClosed",
    "StreamError",
    "StreamGone",
    "StreamHandle",
    "StreamInfo",
    "StreamMetadata",
    "StreamNotFound",
    "StreamUnavailable",
    "SubscriptionError",
    "SubscriptionManager",
    "SubscriptionSpec",
    "SubscriptionsUnavailable",
    "UnexpectedStatus",
    "create_app",
    "format_offset",
    "open_subscriptions",
    "parse_offset",
    "serve",
    "streams_blueprint",
    "subscriptions_available",
]
