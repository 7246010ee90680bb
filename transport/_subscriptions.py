"""Webhook and pull-wake subscriptions: the reserved ``{prefix}/__ds/`` APIs.

A *subscription* watches a set of streams: a glob ``pattern`` over stream paths (relative
to the protocol prefix: ``events/*``) and/or an explicit list of ``streams``. For each
linked stream it keeps an acknowledged offset. When a linked stream has data past that
offset and no wake is outstanding, the manager opens a *wake*: a new ``generation`` and
``wake_id``, then

* **webhook**: POSTs the wake (streams, offsets, a ``callback_url`` and a bearer
  ``callback_token``) to the subscription's URL, signed with Ed25519
  (``Webhook-Signature: t=<unix>,kid=<key id>,ed25519=<base64url>`` over
  ``"<t>.<raw body>"``; the public keys are at ``{prefix}/__ds/jwks.json``). The receiver
  acknowledges through ``POST …/callback`` (or answers ``{"done": true}`` at once, which
  acknowledges everything the wake saw);
* **pull-wake**: appends ``{"type": "wake", …}`` to the subscription's ``wake_stream``;
  a worker takes the wake with ``POST …/claim`` and answers with ``…/ack`` or
  ``…/release``.

A wake is held under a lease (``lease_ttl_ms``) that each acknowledgement extends. When
the lease runs out, or the wake is finished while work is still pending, the next wake
gets a new generation; a callback, ack or release that names an older generation or
wake is refused with ``409 {"error": {"code": "FENCED"}}``.

Wire behaviour follows the npm reference server (``@durable-streams/server`` 0.3.7):
routes, JSON shapes, status codes and the error codes ``INVALID_REQUEST``,
``SUBSCRIPTION_NOT_FOUND``, ``SUBSCRIPTION_ALREADY_EXISTS``, ``WEBHOOK_URL_REJECTED``,
``TOKEN_INVALID``, ``TOKEN_EXPIRED``, ``FENCED``, ``ALREADY_CLAIMED``,
``NO_PENDING_WORK`` and ``INVALID_OFFSET``. Like the reference, subscriptions live in
memory: they do not survive a restart (the streams do).

How it fits the server: :func:`open_subscriptions` gives a :class:`SubscriptionManager`
that owns a nursery (webhook deliveries, lease timers, the change watcher) and an
``httpx.AsyncClient``. ``streams_blueprint(store, subscriptions=manager)`` attaches it:
the blueprint then writes through a store wrapper that reports every successful create,
append and delete to the manager (so this works over any :class:`~transport.Store`),
and :func:`add_subscription_routes` mounts the ``__ds`` routes. Without a manager those
routes answer ``501``.

Errors: :class:`SubscriptionError` (a :class:`~transport.StreamError`) carries the HTTP
status, the error ``code`` and extra fields of the JSON error body;
:class:`SubscriptionsUnavailable` is raised by :func:`open_subscriptions` when the
optional ``cryptography`` package (Ed25519) is not installed.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import importlib.util
import ipaddress
import json
import logging
import math
import random
import secrets
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, final

import attrs
import httpx
import trio
from quart import Blueprint, Response, request

from ._errors import StreamError
from .store import (
    AppendRequest,
    AppendResult,
    CreateRequest,
    CreateResult,
    ReadResult,
    Store,
    StreamInfo,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "SubscriptionError",
    "SubscriptionManager",
    "SubscriptionSpec",
    "SubscriptionsUnavailable",
    "add_subscription_routes",
    "check_webhook_url",
    "glob_match",
    "open_subscriptions",
    "subscriptions_available",
]

logger = logging.getLogger("transport.subscriptions")

DEFAULT_LEASE_TTL_MS: Final = 30_000
MIN_LEASE_TTL_MS: Final = 1_000
MAX_LEASE_TTL_MS: Final = 600_000
MAX_RETRY_DELAY: Final = 60.0  # seconds between failed webhook deliveries, at most
MAX_ID_LENGTH: Final = 256
MAX_WEBHOOK_RESPONSE_BYTES: Final = 64 * 1024
TOKEN_LIFETIME: Final = 3600  # seconds
ZERO_OFFSET: Final = "0000000000000000_0000000000000000"  # the tail of a missing stream
BEFORE_FIRST: Final = "-1"  # acknowledged nothing yet
RESERVED: Final = "__ds"
JWKS_CONTENT_TYPE: Final = "application/jwk-set+json"

_INSTALL_HINT = (
    "webhook and pull-wake subscriptions need the optional 'cryptography' package "
    "(Ed25519 signatures): pip install 'agent-orchestrator[subscriptions]'"
)
_DISABLED = "subscriptions are turned off on this server"


# -- errors ------------------------------------------------------------------------------


class SubscriptionError(StreamError):
    """A subscription request the server refuses.

    Answered as ``status`` with ``{"error": {"code": code, "message": message, **extra}}``.
    """

    def __init__(
        self, status: int, code: str, message: str, extra: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra: dict[str, Any] = dict(extra or {})

    def to_wire(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class SubscriptionsUnavailable(RuntimeError):
    """The optional ``cryptography`` package is missing: no Ed25519 signing."""


def _invalid(message: str) -> SubscriptionError:
    return SubscriptionError(400, "INVALID_REQUEST", message)


def _not_found() -> SubscriptionError:
    return SubscriptionError(404, "SUBSCRIPTION_NOT_FOUND", "Subscription not found")


def subscriptions_available() -> bool:
    """Whether the optional ``cryptography`` package is importable."""
    return importlib.util.find_spec("cryptography") is not None


# -- signing keys and callback tokens ----------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact(value: Any) -> bytes:
    """JSON as ``JSON.stringify`` writes it: no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@final
class _WebhookSigner:
    """One Ed25519 key pair per process, published as a JWK set."""

    def __init__(self) -> None:
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        except ImportError as exc:
            raise SubscriptionsUnavailable(_INSTALL_HINT) from exc
        self._key: Ed25519PrivateKey = Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = _b64url(raw)
        # RFC 7638 thumbprint: the required members, sorted, no spaces.
        thumbprint = hashlib.sha256(_compact({"crv": "Ed25519", "kty": "OKP", "x": x}))
        self.kid = "ds_" + _b64url(thumbprint.digest())
        self._jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid}
        self._jwk |= {"use": "sig", "alg": "EdDSA"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    def signature(self, body: bytes, now: float | None = None) -> str:
        """The ``Webhook-Signature`` header value for ``body``."""
        stamp = int(time.time() if now is None else now)
        signed = self._key.sign(f"{stamp}.".encode() + body)
        return f"t={stamp},kid={self.kid},ed25519={_b64url(signed)}"


@final
class _TokenAuthority:
    """Bearer tokens for callbacks and acks: ``base64url(payload).base64url(hmac)``,
    the payload naming the subscription and the generation it was issued for."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _mac(self, payload: str) -> str:
        return _b64url(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, subject: str, epoch: int) -> str:
        claims = {
            "sub": subject,
            "epoch": epoch,
            "exp": int(time.time()) + TOKEN_LIFETIME,
            "jti": secrets.token_hex(8),
        }
        payload = _b64url(_compact(claims))
        return f"{payload}.{self._mac(payload)}"

    def epoch(self, token: str, subject: str) -> int:
        """The generation ``token`` was issued for.

        Raises:
            SubscriptionError: 401 ``TOKEN_INVALID`` or ``TOKEN_EXPIRED``.
        """
        invalid = SubscriptionError(401, "TOKEN_INVALID", "Token invalid")
        payload, dot, mac = token.partition(".")
        if not dot or "." in mac or not payload.isascii() or not mac.isascii():
            raise invalid
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise invalid
        try:
            claims = json.loads(_b64url_decode(payload))
        except ValueError:
            raise invalid from None
        if not isinstance(claims, dict) or claims.get("sub") != subject:
            raise invalid
        epoch, expires = claims.get("epoch"), claims.get("exp")
        if not isinstance(epoch, int) or not isinstance(expires, int):
            raise invalid
        if time.time() > expires:
            raise SubscriptionError(401, "TOKEN_EXPIRED", "Token expired")
        return epoch


# -- stream paths and glob patterns ------------------------------------------------------


def _normalize(path: str) -> str:
    return path.strip("/")


def _segments(path: str) -> list[str]:
    return [part for part in _normalize(path).split("/") if part]


def glob_match(pattern: str, path: str) -> bool:
    """Whether the stream ``path`` matches ``pattern``.

    Both are ``/``-separated. In the pattern ``*`` matches one segment, ``**`` zero or
    more, and ``%2A`` a literal ``*``; other segments match themselves.
    """
    return _match(_segments(pattern), 0, _segments(path), 0)


def _match(pattern: list[str], pi: int, path: list[str], si: int) -> bool:
    while pi < len(pattern) and si < len(path):
        part = pattern[pi]
        if part == "**":
            return any(_match(pattern, pi + 1, path, i) for i in range(si, len(path) + 1))
        if part != "*" and part.replace("%2A", "*").replace("%2a", "*") != path[si]:
            return False
        pi += 1
        si += 1
    while pi < len(pattern) and pattern[pi] == "**":
        pi += 1
    return pi == len(pattern) and si == len(path)


# -- webhook URLs ------------------------------------------------------------------------


def _ipv4_host(host: str) -> ipaddress.IPv4Address | None:
    """The address a host name denotes when it is an IPv4 literal in any form the
    resolver accepts (``127.1``, ``0x7f000001``, ``2130706433``), else None."""
    if not host or not all(c.isalnum() or c == "." for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_webhook_url(url: str, *, allow_local_http: bool = True) -> str | None:
    """Why ``url`` may not receive webhooks, or None when it may.

    Accepted: ``https`` to a public host name or a global IPv4 address; with
    ``allow_local_http`` (development), ``http`` to ``localhost`` or ``127.x.x.x``.
    Refused: other schemes, private, loopback, link-local and other non-global IPv4
    addresses, IPv6 literals, and https to ``localhost``. Host names are not resolved.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        return "webhook.url must be a valid URL"
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return "webhook.url must be a valid URL"
    address = _ipv4_host(host)
    scheme = parts.scheme.lower()
    if scheme == "http" and allow_local_http:
        if host == "localhost" or (address is not None and address.is_loopback):
            return None
        return "http webhook URLs are only allowed for localhost or 127.0.0.x"
    if scheme != "https":
        return "webhook.url must use https"
    if host == "localhost" or host.endswith(".localhost"):
        return "localhost webhook URLs must use http for dev"
    if ":" in host:
        return "IPv6 webhook hosts are not accepted"
    if address is not None and not address.is_global:
        return "webhook.url must not target private or link-local hosts"
    return None


# -- the subscription model --------------------------------------------------------------


class SubscriptionType(enum.StrEnum):
    WEBHOOK = "webhook"
    PULL_WAKE = "pull-wake"


def _optional_text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"{key} must be a string")
    return value


def _optional_path(payload: Mapping[str, Any], key: str) -> str | None:
    """A relative stream path or glob; absent, null and empty all mean None."""
    value = _optional_text(payload, key)
    return _normalize(value) or None if value is not None else None


def _strict_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


@attrs.frozen(kw_only=True)
class SubscriptionSpec:
    """What a ``PUT __ds/subscriptions/{id}`` asks for. Paths are relative to the
    protocol prefix, without leading or trailing slashes."""

    type: SubscriptionType
    pattern: str | None = None
    streams: tuple[str, ...] = ()
    webhook_url: str | None = None
    wake_stream: str | None = None
    lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS
    description: str | None = None

    @classmethod
    def from_wire(cls, payload: Any) -> SubscriptionSpec:
        """Parse a request body.

        Raises:
            SubscriptionError: 400 ``INVALID_REQUEST`` naming the bad field.
        """
        if not isinstance(payload, dict):
            raise _invalid("Request body must be a JSON object")
        kind_text = payload.get("type")
        if kind_text not in ("webhook", "pull-wake"):
            raise _invalid('type must be "webhook" or "pull-wake"')
        kind = SubscriptionType(kind_text)
        pattern = _optional_path(payload, "pattern")
        raw_streams = payload.get("streams", [])
        if raw_streams is None:
            raw_streams = []
        if not isinstance(raw_streams, list):
            raise _invalid("streams must be an array of strings")
        streams: list[str] = []
        for item in raw_streams:
            if not isinstance(item, str) or not _normalize(item):
                raise _invalid("streams must contain only non-empty strings")
            streams.append(_normalize(item))
        if pattern is None and not streams:
            raise _invalid("At least one of pattern or streams is required")
        lease = payload.get("lease_ttl_ms", DEFAULT_LEASE_TTL_MS)
        lease_ttl = _strict_int(lease)
        if lease_ttl is None or not MIN_LEASE_TTL_MS <= lease_ttl <= MAX_LEASE_TTL_MS:
            raise _invalid(
                f"lease_ttl_ms must be an integer from {MIN_LEASE_TTL_MS} to {MAX_LEASE_TTL_MS}"
            )
        webhook_url = None
        if kind is SubscriptionType.WEBHOOK:
            webhook = payload.get("webhook")
            url = webhook.get("url") if isinstance(webhook, dict) else None
            if not isinstance(url, str) or not url:
                raise _invalid("webhook subscriptions require webhook.url")
            webhook_url = url
        wake_stream = _optional_path(payload, "wake_stream")
        if kind is SubscriptionType.PULL_WAKE and wake_stream is None:
            raise _invalid("pull-wake subscriptions require wake_stream")
        return cls(
            type=kind,
            pattern=pattern,
            streams=tuple(streams),
            webhook_url=webhook_url,
            wake_stream=wake_stream,
            lease_ttl_ms=lease_ttl,
            description=_optional_text(payload, "description"),
        )

    def config_hash(self) -> str:
        """Equal for specs that confirm each other (an idempotent re-PUT)."""
        canonical = {
            "type": str(self.type),
            "pattern": self.pattern,
            "streams": sorted(set(self.streams)),
            "webhook": self.webhook_url,
            "wake_stream": self.wake_stream,
            "lease_ttl_ms": self.lease_ttl_ms,
            "description": self.description,
        }
        return hashlib.sha256(_compact(canonical)).hexdigest()


@attrs.frozen(kw_only=True)
class _Ack:
    stream: str
    offset: str


@attrs.frozen(kw_only=True)
class _Settle:
    """The body of a callback, ack or release."""

    wake_id: str
    generation: int
    acks: tuple[_Ack, ...] = ()
    done: bool = False

    @classmethod
    def from_wire(cls, payload: Any) -> _Settle:
        if not isinstance(payload, dict):
            raise _invalid("Request body must be a JSON object")
        wake_id = payload.get("wake_id")
        if not isinstance(wake_id, str) or not wake_id:
            raise _invalid("wake_id must be a non-empty string")
        generation = _strict_int(payload.get("generation"))
        if generation is None or generation < 0:
            raise _invalid("generation must be a non-negative integer")
        raw_acks = payload.get("acks", [])
        if raw_acks is None:
            raw_acks = []
        if not isinstance(raw_acks, list):
            raise _invalid("acks must be an array")
        acks = []
        for item in raw_acks:
            if not isinstance(item, dict):
                raise _invalid("each ack must be an object with stream and offset")
            stream = item.get("stream", item.get("path"))
            offset = item.get("offset")
            if not isinstance(stream, str) or not isinstance(offset, str) or not offset:
                raise _invalid("each ack needs a string stream and a string offset")
            acks.append(_Ack(stream=_normalize(stream), offset=offset))
        done = payload.get("done", False)
        if not isinstance(done, bool):
            raise _invalid("done must be a boolean")
        return cls(wake_id=wake_id, generation=generation, acks=tuple(acks), done=done)


@attrs.define(kw_only=True)
class _Link:
    path: str
    kinds: set[Literal["explicit", "glob"]]
    acked: str

    @property
    def kind(self) -> str:
        return "explicit" if "explicit" in self.kinds else "glob"


@attrs.frozen(kw_only=True)
class _StreamState:
    path: str
    link_type: str
    acked_offset: str
    tail_offset: str

    @property
    def pending(self) -> bool:
        return self.tail_offset > self.acked_offset

    def to_wire(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "link_type": self.link_type,
            "acked_offset": self.acked_offset,
            "tail_offset": self.tail_offset,
            "has_pending": self.pending,
        }


@attrs.define(kw_only=True, eq=False)
class _Subscription:
    """A subscription's mutable state. Change it only while holding ``lock``."""

    id: str
    spec: SubscriptionSpec
    config_hash: str
    base_url: str  # the prefix's absolute URL, for callback URLs
    created_at: str
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    links: dict[str, _Link] = attrs.field(factory=dict)
    status: str = "active"
    generation: int = 0
    wake_id: str | None = None
    snapshot: dict[str, str] = attrs.field(factory=dict)  # path -> tail when the wake opened
    token: str | None = None
    holder: str | None = None
    lease: trio.CancelScope | None = None
    delivery: trio.CancelScope | None = None
    retry_count: int = 0
    deleted: bool = False

    @property
    def subject(self) -> str:
        return f"subscription:{self.id}"

    def link(self, path: str, kind: Literal["explicit", "glob"], acked: str) -> None:
        existing = self.links.get(path)
        if existing is not None:
            existing.kinds.add(kind)
        else:
            self.links[path] = _Link(path=path, kinds={kind}, acked=acked)

    def end_wake(self) -> None:
        """Forget the open wake (its lease must be cleared separately)."""
        self.token = None
        self.holder = None
        self.wake_id = None
        self.snapshot = {}


# -- the store wrapper -------------------------------------------------------------------


@final
class _WatchedStore(Store):
    """Forwards every call to ``inner``; reports successful writes to the manager."""

    def __init__(self, inner: Store, manager: SubscriptionManager) -> None:
        self._inner = inner
        self._manager = manager

    async def create(self, path: str, request: CreateRequest) -> CreateResult:
        result = await self._inner.create(path, request)
        if result.created:
            self._manager._stream_created(path, has_data=bool(request.body))
        else:
            self._manager._stream_seen(path, result.info.next_offset)
        return result

    async def head(self, path: str) -> StreamInfo:
        return await self._inner.head(path)

    async def append(self, path: str, request: AppendRequest) -> AppendResult:
        before = None
        if not self._manager._knows(path):
            try:
                before = (await self._inner.head(path)).next_offset
            except StreamError:
                pass  # the append below reports it
        result = await self._inner.append(path, request)
        if before is not None:
            self._manager._stream_seen(path, before)
        if not result.duplicate:
            self._manager._stream_appended(path)
        return result

    async def read(self, path: str, offset: str, *, wait: float = 0.0) -> ReadResult:
        return await self._inner.read(path, offset, wait=wait)

    async def delete(self, path: str) -> None:
        await self._inner.delete(path)
        self._manager._stream_deleted(path)


# -- the manager -------------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _retry_delay(attempt: int) -> float:
    base: float = min(2.0 ** max(0, attempt - 1), MAX_RETRY_DELAY)
    return max(0.0, base * (1 + 0.2 * random.uniform(-1, 1)))  # +-20% jitter


@final
class SubscriptionManager:
    """Subscriptions of one protocol server. Get one from :func:`open_subscriptions`.

    Every operation raises :class:`SubscriptionError` for what the protocol refuses.
    Operations on one subscription are serialized by its lock; webhook POSTs happen
    outside it, in the manager's nursery, so a slow receiver holds nothing up.
    """

    def __init__(
        self,
        *,
        nursery: trio.Nursery,
        client: httpx.AsyncClient,
        signer: _WebhookSigner,
        allow_local_http: bool,
        public_url: str | None,
    ) -> None:
        self._nursery = nursery
        self._client = client
        self._signer = signer
        self._tokens = _TokenAuthority()
        self._allow_local_http = allow_local_http
        self.public_url = public_url.rstrip("/") if public_url is not None else None
        self._subs: dict[str, _Subscription] = {}
        # Streams this process has seen -> the offset a glob link starts from when one
        # is first linked by an append: -1 when created here, else its tail when seen.
        self._known: dict[str, str] = {}
        self._changed: dict[str, None] = {}  # an ordered set of paths to look at
        self._wakeup = trio.Event()
        self._store: Store | None = None
        self._watched: _WatchedStore | None = None
        self.prefix = ""
        self.closed = False

    # -- wiring ------------------------------------------------------------------------

    def attach(self, store: Store, prefix: str) -> Store:
        """Serve the streams of ``store`` under ``prefix``; returns the store to write
        through (it reports changes here). A manager serves one store and prefix.

        Raises:
            RuntimeError: attached to another store or prefix already, or closed.
        """
        if self.closed:
            raise RuntimeError("this SubscriptionManager is closed")
        if store is self._watched:
            return store
        if self._store is not None:
            if store is self._store and prefix == self.prefix:
                assert self._watched is not None
                return self._watched
            raise RuntimeError(
                "this SubscriptionManager already serves another store or prefix; "
                "open one manager per streams blueprint"
            )
        self._store = store
        self.prefix = prefix.rstrip("/")
        self._watched = _WatchedStore(store, self)
        return self._watched

    def _absolute(self, path: str) -> str:
        return f"{self.prefix}/{path}"

    def _relative(self, absolute: str) -> str | None:
        root = self.prefix + "/"
        if not absolute.startswith(root):
            return None
        path = absolute[len(root) :]
        if not path or path == RESERVED or path.startswith(RESERVED + "/"):
            return None
        return path

    def _inner(self) -> Store:
        if self._store is None:
            raise RuntimeError("attach() the SubscriptionManager to a store first")
        return self._store

    # -- what the store wrapper reports (synchronous: never delays the write) ------------

    def _knows(self, path: str) -> bool:
        return path in self._known

    def _stream_seen(self, path: str, tail: str) -> None:
        self._known.setdefault(path, tail)

    def _stream_created(self, path: str, *, has_data: bool) -> None:
        self._known[path] = BEFORE_FIRST
        if has_data:
            self._stream_appended(path)

    def _stream_appended(self, path: str) -> None:
        if self.closed:
            return
        self._changed[path] = None
        self._wakeup.set()

    def _stream_deleted(self, path: str) -> None:
        self._known.pop(path, None)
        relative = self._relative(path)
        if relative is None:
            return
        for sub in self._subs.values():
            sub.links.pop(relative, None)

    async def _watch_changes(self) -> None:
        """Link and wake subscriptions for appended streams, in order of change."""
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            batch = list(self._changed)
            self._changed.clear()
            for path in batch:
                try:
                    await self._on_append(path)
                except StreamError as exc:
                    logger.warning("subscriptions: change of %s not handled: %s", path, exc)

    async def _on_append(self, absolute: str) -> None:
        relative = self._relative(absolute)
        start = self._known.get(absolute)
        if relative is None or start is None:  # a control path, or deleted since
            return
        for sub in list(self._subs.values()):
            async with sub.lock:
                if sub.deleted:
                    continue
                pattern = sub.spec.pattern
                if pattern is not None and glob_match(pattern, relative):
                    sub.link(relative, "glob", start)
                if relative in sub.links:
                    await self._maybe_wake(sub, relative)

    # -- streams and tails -------------------------------------------------------------

    async def _tail(self, path: str) -> str:
        try:
            return (await self._inner().head(self._absolute(path))).next_offset
        except StreamError:
            return ZERO_OFFSET

    async def _states(self, sub: _Subscription) -> list[_StreamState]:
        states = []
        for link in list(sub.links.values()):
            tail = await self._tail(link.path)
            states.append(
                _StreamState(
                    path=link.path, link_type=link.kind, acked_offset=link.acked, tail_offset=tail
                )
            )
        return states

    async def _first_pending(self, sub: _Subscription, first: str | None = None) -> str | None:
        """A linked stream with unacknowledged data (``first`` is tried first)."""
        paths = list(sub.links)
        if first is not None and first in sub.links:
            paths.remove(first)
            paths.insert(0, first)
        for path in paths:
            link = sub.links.get(path)
            if link is not None and await self._tail(path) > link.acked:
                return path
        return None

    # -- wakes, leases, deliveries (callers hold sub.lock) ------------------------------

    async def _maybe_wake(self, sub: _Subscription, triggered_by: str) -> None:
        if sub.wake_id is not None or sub.holder is not None:
            return
        pending = await self._first_pending(sub, triggered_by)
        if pending is not None:
            await self._open_wake(sub, pending)

    async def _next_wake(self, sub: _Subscription) -> bool:
        """Open the next wake if work is pending; whether one was opened."""
        pending = await self._first_pending(sub)
        if pending is None:
            return False
        await self._open_wake(sub, pending)
        return True

    async def _open_wake(self, sub: _Subscription, triggered_by: str) -> None:
        if sub.deleted or self.closed:
            return
        sub.generation += 1
        sub.wake_id = f"w_{secrets.token_hex(12)}"
        sub.snapshot = {state.path: state.tail_offset for state in await self._states(sub)}
        if sub.spec.type is SubscriptionType.WEBHOOK:
            sub.token = self._tokens.issue(sub.subject, sub.generation)
            self._start_lease(sub)
            self._start_delivery(sub)
            return
        await self._write_wake_event(sub, triggered_by)

    def _finish_wake(self, sub: _Subscription) -> None:
        self._clear_lease(sub)
        sub.end_wake()

    async def _write_wake_event(self, sub: _Subscription, stream: str) -> None:
        assert sub.spec.wake_stream is not None
        event = {
            "type": "wake",
            "subscription_id": sub.id,
            "stream": stream,
            "generation": sub.generation,
            "ts": int(time.time() * 1000),
        }
        wake_stream = self._absolute(sub.spec.wake_stream)
        try:
            # Straight to the inner store: a wake event is not a change to subscribe to.
            await self._inner().append(
                wake_stream, AppendRequest(body=_compact(event), content_type="application/json")
            )
        except StreamError as exc:
            logger.warning("subscriptions: no wake event in %s: %s", wake_stream, exc)

    def _start_lease(self, sub: _Subscription) -> None:
        self._clear_lease(sub)
        if sub.deleted or self.closed:
            return
        scope = trio.CancelScope()
        sub.lease = scope
        self._nursery.start_soon(self._lease_timer, sub, scope)

    def _clear_lease(self, sub: _Subscription) -> None:
        if sub.lease is not None:
            sub.lease.cancel()
            sub.lease = None

    async def _lease_timer(self, sub: _Subscription, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(sub.spec.lease_ttl_ms / 1000)
            async with sub.lock:
                if sub.lease is not scope:
                    return  # extended or cleared while we waited for the lock
                sub.lease = None  # from here on nobody cancels this task but shutdown
                sub.end_wake()
                await self._next_wake(sub)

    def _start_delivery(self, sub: _Subscription) -> None:
        if sub.delivery is not None:
            sub.delivery.cancel()  # a delivery of an older wake: superseded
            sub.delivery = None
        if sub.deleted or self.closed:
            return
        scope = trio.CancelScope()
        sub.delivery = scope
        self._nursery.start_soon(self._deliver, sub, scope)

    async def _deliver(self, sub: _Subscription, scope: trio.CancelScope) -> None:
        """POST the open wake to the webhook until it answers 2xx (with backoff)."""
        assert sub.spec.webhook_url is not None
        with scope:
            while True:
                async with sub.lock:
                    if sub.delivery is not scope or sub.deleted:
                        return
                    if sub.wake_id is None or sub.token is None:
                        return
                    wake_id = sub.wake_id
                    body = _compact(
                        {
                            "subscription_id": sub.id,
                            "wake_id": wake_id,
                            "generation": sub.generation,
                            "streams": [state.to_wire() for state in await self._states(sub)],
                            "callback_url": self._action_url(sub, "callback"),
                            "callback_token": sub.token,
                        }
                    )
                answer = await self._post(sub.spec.webhook_url, body)
                async with sub.lock:
                    if sub.delivery is not scope:
                        return
                    if answer is not None:
                        await self._delivered(sub, wake_id, answer)
                        return
                    sub.retry_count += 1
                    sub.status = "failed"
                    delay = _retry_delay(sub.retry_count)
                await trio.sleep(delay)

    async def _delivered(self, sub: _Subscription, wake_id: str, answer: dict[str, Any]) -> None:
        """The receiver took the wake; ``{"done": true}`` acknowledges all it saw."""
        sub.delivery = None  # detached: what follows may start the next delivery
        sub.status = "active"
        sub.retry_count = 0
        if answer.get("done") is not True or sub.wake_id != wake_id:
            return
        for path, tail in sub.snapshot.items():
            link = sub.links.get(path)
            if link is not None and tail > link.acked:
                link.acked = tail
        self._finish_wake(sub)
        await self._next_wake(sub)

    async def _post(self, url: str, body: bytes) -> dict[str, Any] | None:
        """The receiver's JSON answer ({} if none), or None when delivery failed."""
        headers = {
            "content-type": "application/json",
            "webhook-signature": self._signer.signature(body),
        }
        try:
            async with self._client.stream("POST", url, content=body, headers=headers) as reply:
                if not reply.is_success:
                    logger.warning("subscriptions: webhook %s answered %d", url, reply.status_code)
                    return None
                data = b""
                async for chunk in reply.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_WEBHOOK_RESPONSE_BYTES:
                        return {}
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            logger.warning("subscriptions: webhook %s failed: %r", url, exc)
            return None
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    # -- wire helpers ------------------------------------------------------------------

    def _action_url(self, sub: _Subscription, action: str) -> str:
        quoted = urllib.parse.quote(sub.id, safe="")
        return f"{sub.base_url}/{RESERVED}/subscriptions/{quoted}/{action}"

    def jwks(self) -> dict[str, Any]:
        """The JWK set of the webhook signing keys."""
        return self._signer.jwks()

    def _describe(self, sub: _Subscription, base_url: str) -> dict[str, Any]:
        spec = sub.spec
        out: dict[str, Any] = {"id": sub.id, "subscription_id": sub.id, "type": str(spec.type)}
        if spec.pattern is not None:
            out["pattern"] = spec.pattern
        out["streams"] = [
            {"path": link.path, "link_type": link.kind, "acked_offset": link.acked}
            for link in sub.links.values()
        ]
        if spec.webhook_url is not None:
            signing = {
                "alg": "ed25519",
                "kid": self._signer.kid,
                "jwks_url": f"{base_url}/{RESERVED}/jwks.json",
            }
            out["webhook"] = {"url": spec.webhook_url, "signing": signing}
        if spec.wake_stream is not None:
            out["wake_stream"] = spec.wake_stream
        out |= {"lease_ttl_ms": spec.lease_ttl_ms, "created_at": sub.created_at}
        out["status"] = sub.status
        if spec.description is not None:
            out["description"] = spec.description
        return out

    def _get(self, sub_id: str) -> _Subscription:
        if self.closed:
            raise SubscriptionError(503, "SUBSCRIPTIONS_UNAVAILABLE", "the server is stopping")
        sub = self._subs.get(sub_id)
        if sub is None:
            raise _not_found()
        return sub

    # -- operations --------------------------------------------------------------------

    async def put(
        self, sub_id: str, spec: SubscriptionSpec, base_url: str
    ) -> tuple[dict[str, Any], bool]:
        """Create the subscription, or confirm an identical one. Returns its description
        and whether it was created. ``base_url`` is the prefix's absolute URL."""
        if self.closed:
            raise SubscriptionError(503, "SUBSCRIPTIONS_UNAVAILABLE", "the server is stopping")
        if not sub_id or len(sub_id) > MAX_ID_LENGTH:
            raise _invalid(f"subscription ids are 1 to {MAX_ID_LENGTH} characters")
        config_hash = spec.config_hash()
        existing = self._subs.get(sub_id)
        if existing is not None:
            if existing.config_hash != config_hash:
                raise SubscriptionError(
                    409,
                    "SUBSCRIPTION_ALREADY_EXISTS",
                    "Subscription already exists with different configuration",
                )
            async with existing.lock:
                return self._describe(existing, base_url), False
        if spec.webhook_url is not None:
            problem = check_webhook_url(spec.webhook_url, allow_local_http=self._allow_local_http)
            if problem is not None:
                raise SubscriptionError(400, "WEBHOOK_URL_REJECTED", problem)
        sub = _Subscription(
            id=sub_id,
            spec=spec,
            config_hash=config_hash,
            base_url=base_url,
            created_at=_now_iso(),
        )
        async with sub.lock:
            self._subs[sub_id] = sub  # visible now; others wait for the lock
            for path in spec.streams:
                sub.link(path, "explicit", await self._tail(path))
            if spec.pattern is not None:
                for absolute in list(self._known):
                    relative = self._relative(absolute)
                    if relative is None or not glob_match(spec.pattern, relative):
                        continue
                    try:
                        tail = (await self._inner().head(absolute)).next_offset
                    except StreamError:
                        self._known.pop(absolute, None)  # expired or deleted
                        continue
                    sub.link(relative, "glob", tail)
            return self._describe(sub, base_url), True

    async def describe(self, sub_id: str, base_url: str) -> dict[str, Any]:
        sub = self._get(sub_id)
        async with sub.lock:
            return self._describe(sub, base_url)

    def delete(self, sub_id: str) -> None:
        """Delete the subscription, if there is one (idempotent)."""
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return
        sub.deleted = True
        self._clear_lease(sub)
        if sub.delivery is not None:
            sub.delivery.cancel()
            sub.delivery = None

    async def add_streams(self, sub_id: str, streams: Iterable[str]) -> None:
        sub = self._get(sub_id)
        async with sub.lock:
            for path in streams:
                sub.link(path, "explicit", await self._tail(path))

    async def remove_stream(self, sub_id: str, path: str) -> None:
        sub = self._get(sub_id)
        async with sub.lock:
            link = sub.links.get(path)
            if link is not None:
                link.kinds.discard("explicit")
                if not link.kinds:
                    del sub.links[path]

    async def claim(self, sub_id: str, worker: str) -> dict[str, Any]:
        """Take the open wake of a pull-wake subscription (opening one if needed)."""
        sub = self._get(sub_id)
        async with sub.lock:
            self._require(sub, SubscriptionType.PULL_WAKE)
            if sub.holder is not None:
                raise SubscriptionError(
                    409,
                    "ALREADY_CLAIMED",
                    f"the wake is held by {sub.holder}",
                    {"current_holder": sub.holder, "generation": sub.generation},
                )
            pending = await self._first_pending(sub)
            if pending is None:
                raise SubscriptionError(409, "NO_PENDING_WORK", "Subscription has no pending work")
            if sub.wake_id is None:
                await self._open_wake(sub, pending)
            assert sub.wake_id is not None
            sub.holder = worker
            sub.token = self._tokens.issue(sub.subject, sub.generation)
            self._start_lease(sub)
            return {
                "wake_id": sub.wake_id,
                "generation": sub.generation,
                "token": sub.token,
                "streams": [state.to_wire() for state in await self._states(sub)],
                "lease_ttl_ms": sub.spec.lease_ttl_ms,
            }

    async def callback(self, sub_id: str, token: str, settle: _Settle) -> dict[str, Any]:
        """A webhook receiver acknowledges (and with ``done`` finishes) its wake."""
        return await self._acknowledge(sub_id, token, settle, SubscriptionType.WEBHOOK)

    async def ack(self, sub_id: str, token: str, settle: _Settle) -> dict[str, Any]:
        """A pull-wake worker acknowledges (and with ``done`` finishes) its claim."""
        return await self._acknowledge(sub_id, token, settle, SubscriptionType.PULL_WAKE)

    async def release(self, sub_id: str, token: str, settle: _Settle) -> None:
        """A pull-wake worker gives its claim back without finishing it."""
        sub = self._get(sub_id)
        async with sub.lock:
            self._require(sub, SubscriptionType.PULL_WAKE)
            self._check_fence(sub, token, settle)
            self._finish_wake(sub)
            await self._next_wake(sub)

    async def _acknowledge(
        self, sub_id: str, token: str, settle: _Settle, kind: SubscriptionType
    ) -> dict[str, Any]:
        sub = self._get(sub_id)
        async with sub.lock:
            self._require(sub, kind)
            self._check_fence(sub, token, settle)
            await self._apply_acks(sub, settle.acks)
            self._start_lease(sub)
            next_wake = False
            if settle.done:
                self._finish_wake(sub)
                next_wake = await self._next_wake(sub)
            return {"ok": True, "next_wake": next_wake}

    @staticmethod
    def _require(sub: _Subscription, kind: SubscriptionType) -> None:
        if sub.spec.type is not kind:
            raise _invalid(f"Subscription is not {kind}")

    def _check_fence(self, sub: _Subscription, token: str, settle: _Settle) -> None:
        epoch = self._tokens.epoch(token, sub.subject)
        if (
            epoch != sub.generation
            or settle.generation != sub.generation
            or settle.wake_id != sub.wake_id
        ):
            raise SubscriptionError(409, "FENCED", "Wake generation is stale")

    async def _apply_acks(self, sub: _Subscription, acks: tuple[_Ack, ...]) -> None:
        """Move acknowledged offsets forward: all of them, or (on an error) none."""
        for ack in acks:
            link = sub.links.get(ack.stream)
            if not ack.stream or link is None:
                raise SubscriptionError(
                    409, "INVALID_OFFSET", "Ack references an unknown subscription stream"
                )
            if ack.offset == BEFORE_FIRST:
                raise SubscriptionError(409, "INVALID_OFFSET", "Ack offset must not be -1")
            if ack.offset < link.acked:
                raise SubscriptionError(
                    409, "INVALID_OFFSET", "Ack offset regresses the committed cursor"
                )
            if ack.offset > await self._tail(ack.stream):
                raise SubscriptionError(409, "INVALID_OFFSET", "Ack offset is beyond stream tail")
        for ack in acks:
            link = sub.links.get(ack.stream)
            if link is not None:
                link.acked = ack.offset


@asynccontextmanager
async def open_subscriptions(
    *,
    allow_local_http: bool = True,
    public_url: str | None = None,
    delivery_timeout: float = 10.0,
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[SubscriptionManager]:
    """A :class:`SubscriptionManager`, for as long as the ``async with`` lasts.

    Pass it to ``create_app`` / ``streams_blueprint`` (``subscriptions=``). On exit its
    tasks (webhook deliveries and their retries, lease timers) are cancelled at once and
    its HTTP client is closed; subscriptions are not kept.

    Args:
        allow_local_http: accept ``http://localhost`` and ``http://127.x.x.x`` webhooks
            (development). Every other webhook must be https to a public host.
        public_url: the server's public base URL (``https://host:port``) for the
            callback and JWKS URLs; by default the Host of the request that created the
            subscription.
        delivery_timeout: seconds a webhook POST may take (``math.inf``: no limit).
        client: the HTTP client for webhook POSTs (for tests); by default one is made
            and closed here. It should not follow redirects.

    Raises:
        SubscriptionsUnavailable: the ``cryptography`` package is not installed.
    """
    signer = _WebhookSigner()
    timeout = None if math.isinf(delivery_timeout) else delivery_timeout
    async with _client_or(client, timeout) as http:
        try:
            async with trio.open_nursery() as nursery:
                manager = SubscriptionManager(
                    nursery=nursery,
                    client=http,
                    signer=signer,
                    allow_local_http=allow_local_http,
                    public_url=public_url,
                )
                nursery.start_soon(manager._watch_changes)
                try:
                    yield manager
                finally:
                    manager.closed = True
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The nursery wraps whatever the ``async with`` body raised; a lone error
            # (the usual case) goes out as itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise


@asynccontextmanager
async def _client_or(
    client: httpx.AsyncClient | None, timeout: float | None
) -> AsyncIterator[httpx.AsyncClient]:
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as own:
        yield own


# -- HTTP routes -------------------------------------------------------------------------

_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"]
_ACTIONS = ("callback", "claim", "ack", "release")


def _json(status: int, body: Any, content_type: str = "application/json") -> Response:
    return Response(_compact(body), status=status, content_type=content_type)


def _empty(status: int) -> Response:
    response = Response(b"", status=status)
    del response.headers["Content-Type"]
    return response


def _method_not_allowed() -> Response:
    return Response(b"Method not allowed", status=405, content_type="text/plain")


async def _json_body() -> Any:
    data = await request.get_data(cache=False)
    assert isinstance(data, bytes)
    if not data:
        return {}

    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(data.decode("utf-8"), parse_constant=refuse)
    except (ValueError, RecursionError):
        raise _invalid("Invalid JSON body") from None


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:]:
        raise SubscriptionError(401, "TOKEN_INVALID", "Missing or malformed Authorization header")
    return header[7:]


def _raw_segments() -> list[str] | None:
    """The percent-encoded path segments after ``__ds`` (``%2F`` stays in its segment)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else urllib.parse.quote(request.path)
    path = path.split("?", 1)[0]
    segments = path.split("/")
    if RESERVED not in segments:
        return None
    return segments[segments.index(RESERVED) + 1 :]


@final
class _Routes:
    def __init__(self, manager: SubscriptionManager) -> None:
        self._manager = manager

    def _base_url(self) -> str:
        """The prefix's absolute URL, for callback and JWKS URLs."""
        root = self._manager.public_url or request.host_url.rstrip("/")
        return root + self._manager.prefix

    async def handle(self) -> Response:
        if request.method == "OPTIONS":
            return _empty(204)
        segments = _raw_segments()
        if segments == ["jwks.json"]:
            if request.method != "GET":
                return _method_not_allowed()
            response = _json(200, self._manager.jwks(), JWKS_CONTENT_TYPE)
            response.headers["Cache-Control"] = "public, max-age=300"
            return response
        if not segments or segments[0] != "subscriptions" or len(segments) < 2 or not segments[1]:
            raise SubscriptionError(
                404, "SUBSCRIPTION_NOT_FOUND", "Durable Streams control route not found"
            )
        sub_id = urllib.parse.unquote(segments[1])
        rest = segments[2:]
        if not rest:
            return await self._base(sub_id)
        if rest[0] == "streams" and len(rest) == 1:
            return await self._add_streams(sub_id)
        if rest[0] == "streams":
            if request.method != "DELETE":
                return _method_not_allowed()
            path = _normalize(urllib.parse.unquote("/".join(rest[1:])))
            await self._manager.remove_stream(sub_id, path)
            return _empty(204)
        if len(rest) == 1 and rest[0] in _ACTIONS:
            if request.method != "POST":
                return _method_not_allowed()
            return await self._action(sub_id, rest[0])
        raise SubscriptionError(
            404, "SUBSCRIPTION_NOT_FOUND", "Durable Streams control route not found"
        )

    async def _base(self, sub_id: str) -> Response:
        manager = self._manager
        if request.method == "PUT":
            spec = SubscriptionSpec.from_wire(await _json_body())
            body, created = await manager.put(sub_id, spec, self._base_url())
            return _json(201 if created else 200, body)
        if request.method == "GET":
            return _json(200, await manager.describe(sub_id, self._base_url()))
        if request.method == "DELETE":
            manager.delete(sub_id)
            return _empty(204)
        return _method_not_allowed()

    async def _add_streams(self, sub_id: str) -> Response:
        if request.method != "POST":
            return _method_not_allowed()
        payload = await _json_body()
        streams = payload.get("streams") if isinstance(payload, dict) else None
        if (
            not isinstance(streams, list)
            or not streams
            or not all(isinstance(s, str) and _normalize(s) for s in streams)
        ):
            raise _invalid("streams must be a non-empty string array")
        await self._manager.add_streams(sub_id, [_normalize(s) for s in streams])
        return _empty(204)

    async def _action(self, sub_id: str, action: str) -> Response:
        manager = self._manager
        if action == "claim":
            payload = await _json_body()
            worker = payload.get("worker") if isinstance(payload, dict) else None
            if not isinstance(worker, str) or not worker:
                raise _invalid("worker must be a non-empty string")
            return _json(200, await manager.claim(sub_id, worker))
        token = _bearer()
        settle = _Settle.from_wire(await _json_body())
        if action == "callback":
            return _json(200, await manager.callback(sub_id, token, settle))
        if action == "ack":
            return _json(200, await manager.ack(sub_id, token, settle))
        await manager.release(sub_id, token, settle)
        return _empty(204)


def add_subscription_routes(bp: Blueprint, manager: SubscriptionManager | None) -> None:
    """Mount ``__ds`` and everything below it on the streams blueprint ``bp``.

    With a ``manager`` these are the subscription APIs; without one they answer ``501``
    (the path stays reserved: no stream can be created under it).
    """
    routes = _Routes(manager) if manager is not None else None
    reason = _DISABLED if subscriptions_available() else _INSTALL_HINT

    async def control(rest: str = "") -> Response:
        if routes is None:
            if request.method == "OPTIONS":
                return _empty(204)
            return _json(501, {"error": {"code": "NOT_IMPLEMENTED", "message": reason}})
        try:
            return await routes.handle()
        except SubscriptionError as exc:
            return _json(exc.status, exc.to_wire())

    for rule, endpoint in ((f"/{RESERVED}", "ds_root"), (f"/{RESERVED}/<path:rest>", "ds")):
        bp.add_url_rule(rule, endpoint, control, methods=_METHODS, provide_automatic_options=False)
