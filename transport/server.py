"""The Durable Streams HTTP protocol as a quart-trio app, on any :class:`Store`.

``streams_blueprint(store)`` mounts the protocol under a URL prefix in any Quart app
(the orchestrator mounts it in its own); ``create_app(store)`` is the standalone
server; :func:`serve` runs an app on hypercorn's trio worker.

The stream key is the request's URL path (``/v1/stream/name``), so that
``Stream-Forked-From`` names a source the way clients see it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from quart import Blueprint, Quart, Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from ._errors import BadRequest, ProtocolError, StreamError
from ._local import parse_expires_at
from ._offsets import BEFORE_START, NOW, next_cursor, parse_strict_int
from ._subscriptions import SubscriptionManager, add_subscription_routes
from .store import (
    DEFAULT_CONTENT_TYPE,
    AppendRequest,
    CreateRequest,
    ForkSpec,
    Producer,
    ReadResult,
    Store,
    media_type,
)

__all__ = ["DEFAULT_PREFIX", "ServerSettings", "create_app", "serve", "streams_blueprint"]

DEFAULT_PREFIX = "/v1/stream"
MAX_SAFE_INTEGER = 2**53 - 1

_OFFSET_PARAM = re.compile(r"-1|now|\d+_\d+", re.ASCII)
_FORK_OFFSET = re.compile(r"\d+_\d+", re.ASCII)
_CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+", re.ASCII)
_SSE_LINES = re.compile(r"\r\n|\r|\n")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": (
        "content-type, authorization, if-none-match, Stream-Seq, Stream-TTL, "
        "Stream-Expires-At, Stream-Closed, Producer-Id, Producer-Epoch, Producer-Seq, "
        "Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset"
    ),
    "Access-Control-Expose-Headers": (
        "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, "
        "Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, "
        "Stream-SSE-Data-Encoding, etag, content-type"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
CATCH_UP_CACHE = "public, max-age=60, stale-while-revalidate=300"


class ServerSettings:
    """Tunables of the protocol server."""

    def __init__(
        self,
        *,
        long_poll_timeout: float = 20.0,
        sse_max_duration: float = 60.0,
        max_body_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if not long_poll_timeout > 0:
            raise ValueError("long_poll_timeout must be > 0")
        self.long_poll_timeout = long_poll_timeout
        self.sse_max_duration = sse_max_duration
        self.max_body_bytes = max_body_bytes


def _answer(
    body: bytes | str | AsyncIterator[bytes] = b"",
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str | None = None,
) -> Response:
    response = Response(body, status=status, headers=headers, content_type=content_type)
    if content_type is None:
        del response.headers["Content-Type"]
    return response


def _error(exc: ProtocolError) -> Response:
    return _answer(exc.message, exc.status, exc.headers, "text/plain")


def _etag(path: str, start: str, result: ReadResult) -> str:
    key = base64.b64encode(path.encode()).decode()
    return f'"{key}:{start}:{result.next_offset}{":c" if result.closed else ""}"'


def _sse_data(payload: str) -> str:
    return "".join(f"data:{line}\n" for line in _SSE_LINES.split(payload)) + "\n"


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def streams_blueprint(
    store: Store,
    settings: ServerSettings | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    subscriptions: SubscriptionManager | None = None,
) -> Blueprint:
    """The protocol's routes under ``prefix`` (every path below it is a stream, except
    the reserved ``__ds/``: the subscription APIs of ``subscriptions``, else 501)."""
    conf = settings or ServerSettings()
    if subscriptions is not None:
        store = subscriptions.attach(store, prefix)
    bp = Blueprint("durable_streams", __name__, url_prefix=prefix)
    add_subscription_routes(bp, subscriptions)

    @bp.after_request
    async def common_headers(response: Response) -> Response:
        for name, value in CORS_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @bp.errorhandler(ProtocolError)
    async def protocol_error(exc: ProtocolError) -> Response:
        return _error(exc)

    @bp.errorhandler(RequestEntityTooLarge)
    async def too_large(exc: RequestEntityTooLarge) -> Response:
        return _answer(f"body over {conf.max_body_bytes} bytes", 413, None, "text/plain")

    async def body() -> bytes:
        data = await request.get_data(cache=False)
        assert isinstance(data, bytes)
        return data

    async def options(name: str) -> Response:
        return _answer(status=204)

    async def create(name: str) -> Response:
        headers = request.headers
        forked_from = headers.get("Stream-Forked-From")
        content_type = headers.get("Content-Type")
        if not content_type or not _CONTENT_TYPE.match(content_type.strip()):
            content_type = None if forked_from else DEFAULT_CONTENT_TYPE
        ttl_text = headers.get("Stream-TTL")
        expires_at = headers.get("Stream-Expires-At")
        if ttl_text is not None and expires_at is not None:
            raise BadRequest("Stream-TTL and Stream-Expires-At cannot both be given")
        ttl = None
        if ttl_text is not None:
            ttl = parse_strict_int(ttl_text)
            if ttl is None:
                raise BadRequest(f"invalid Stream-TTL: {ttl_text!r}")
        if expires_at is not None and parse_expires_at(expires_at) is None:
            raise BadRequest(f"invalid Stream-Expires-At: {expires_at!r}")
        fork = None
        fork_offset = headers.get("Stream-Fork-Offset")
        sub_text = headers.get("Stream-Fork-Sub-Offset")
        if sub_text is not None and not forked_from:
            raise BadRequest("Stream-Fork-Sub-Offset needs Stream-Forked-From")
        if forked_from:
            if fork_offset is not None and not _FORK_OFFSET.fullmatch(fork_offset):
                raise BadRequest(f"invalid Stream-Fork-Offset: {fork_offset!r}")
            sub_offset = 0
            if sub_text is not None:
                parsed = parse_strict_int(sub_text)
                if parsed is None:
                    raise BadRequest(f"invalid Stream-Fork-Sub-Offset: {sub_text!r}")
                sub_offset = parsed
            fork = ForkSpec(forked_from, fork_offset, sub_offset)
        result = await store.create(
            request.path,
            CreateRequest(
                content_type=content_type,
                ttl=ttl,
                expires_at=expires_at,
                closed=_flag(headers.get("Stream-Closed")),
                body=await body(),
                fork=fork,
            ),
        )
        info = result.info
        out = {"Stream-Next-Offset": info.next_offset}
        if result.created:
            out["Location"] = request.host_url.rstrip("/") + request.path
        if info.closed:
            out["Stream-Closed"] = "true"
        return _answer(b"", 201 if result.created else 200, out, info.content_type)

    async def head(name: str) -> Response:
        info = await store.head(request.path)
        out = {"Stream-Next-Offset": info.next_offset, "Cache-Control": "no-store"}
        if info.closed:
            out["Stream-Closed"] = "true"
        if info.ttl is not None:
            out["Stream-TTL"] = str(info.ttl)
        if info.expires_at is not None:
            out["Stream-Expires-At"] = info.expires_at
        key = base64.b64encode(request.path.encode()).decode()
        out["ETag"] = f'"{key}:-1:{info.next_offset}{":c" if info.closed else ""}"'
        return _answer(b"", 200, out, info.content_type)

    async def delete(name: str) -> Response:
        await store.delete(request.path)
        return _answer(status=204)

    async def append(name: str) -> Response:
        headers = request.headers
        pid = headers.get("Producer-Id")
        epoch_text = headers.get("Producer-Epoch")
        seq_text = headers.get("Producer-Seq")
        producer = None
        given = [v is not None for v in (pid, epoch_text, seq_text)]
        if any(given):
            if not all(given):
                raise BadRequest("Producer-Id, Producer-Epoch and Producer-Seq go together")
            assert pid is not None
            assert epoch_text is not None
            assert seq_text is not None
            if pid == "":
                raise BadRequest("Producer-Id must not be empty")
            epoch = parse_strict_int(epoch_text, leading_zeros=True)
            seq = parse_strict_int(seq_text, leading_zeros=True)
            if epoch is None or epoch > MAX_SAFE_INTEGER:
                raise BadRequest(f"invalid Producer-Epoch: {epoch_text!r}")
            if seq is None or seq > MAX_SAFE_INTEGER:
                raise BadRequest(f"invalid Producer-Seq: {seq_text!r}")
            producer = Producer(pid, epoch, seq)
        close = _flag(headers.get("Stream-Closed"))
        data = await body()
        content_type = headers.get("Content-Type")
        if not data and not close:
            raise BadRequest("an append needs a body")
        if data and not content_type:
            raise BadRequest("an append needs a Content-Type")
        result = await store.append(
            request.path,
            AppendRequest(
                body=data,
                content_type=content_type if data else None,
                stream_seq=headers.get("Stream-Seq"),
                producer=producer,
                close=close,
            ),
        )
        out = {"Stream-Next-Offset": result.next_offset}
        if result.closed:
            out["Stream-Closed"] = "true"
        if producer is not None:
            out["Producer-Epoch"] = str(producer.epoch)
            out["Producer-Seq"] = str(result.producer_seq)
        status = 200 if producer is not None and not result.duplicate and data else 204
        return _answer(status=status, headers=out)

    async def read(name: str) -> Response:
        path = request.path
        args = request.args
        offsets = args.getlist("offset")
        live = args.get("live")
        offset = offsets[0] if offsets else None
        problem = None
        if len(offsets) > 1:
            problem = "the offset parameter may be given once"
        elif offset is not None and not _OFFSET_PARAM.fullmatch(offset):
            problem = f"invalid offset: {offset!r}"
        elif live in ("long-poll", "sse") and offset is None:
            problem = f"live={live} needs an offset"
        if problem is not None:
            await store.head(path)  # a missing stream is a 404 first
            raise BadRequest(problem)
        if live == "sse":
            assert offset is not None
            return await sse(path, offset)
        if live == "long-poll":
            assert offset is not None
            return await long_poll(path, offset)
        if offset == NOW:
            result = await store.read(path, NOW)
            out = {
                "Stream-Next-Offset": result.next_offset,
                "Stream-Up-To-Date": "true",
                "Cache-Control": "no-store",
            }
            if result.closed:
                out["Stream-Closed"] = "true"
            return _answer(result.body(), 200, out, result.content_type)
        start = offset or BEFORE_START
        result = await store.read(path, start)
        return _data_response(path, start, result)

    def _data_response(path: str, start: str, result: ReadResult, cursor: bool = False) -> Response:
        out = {"Stream-Next-Offset": result.next_offset}
        if result.up_to_date:
            out["Stream-Up-To-Date"] = "true"
        else:
            out["Cache-Control"] = CATCH_UP_CACHE
        if result.closed:
            out["Stream-Closed"] = "true"
        if cursor:
            out["Stream-Cursor"] = next_cursor(request.args.get("cursor"))
        etag = _etag(path, start, result)
        out["ETag"] = etag
        if request.headers.get("If-None-Match") == etag:
            return _answer(status=304, headers={"ETag": etag})
        return _answer(result.body(), 200, out, result.content_type)

    async def long_poll(path: str, offset: str) -> Response:
        result = await store.read(path, offset, wait=conf.long_poll_timeout)
        if not result.empty:
            return _data_response(path, offset, result, cursor=True)
        out = {"Stream-Next-Offset": result.next_offset, "Stream-Up-To-Date": "true"}
        if result.closed:
            out["Stream-Closed"] = "true"
        else:
            out["Stream-Cursor"] = next_cursor(request.args.get("cursor"))
        return _answer(status=204, headers=out)

    async def sse(path: str, offset: str) -> Response:
        first = await store.read(path, offset)  # 404 / 410 before the stream starts
        binary = not (media_type(first.content_type).startswith("text/") or first.json)
        client_cursor = request.args.get("cursor")

        def encode(result: ReadResult) -> str:
            if binary:
                return base64.b64encode(result.body()).decode("ascii")
            return result.body().decode("utf-8", errors="replace")

        def control(result: ReadResult) -> str:
            fields: dict[str, Any] = {"streamNextOffset": result.next_offset}
            if result.closed:
                fields["streamClosed"] = True
            else:
                fields["streamCursor"] = next_cursor(client_cursor)
                if result.up_to_date:
                    fields["upToDate"] = True
            return "event: control\n" + _sse_data(json.dumps(fields, separators=(",", ":")))

        async def events() -> AsyncIterator[bytes]:
            result = first
            deadline = trio.current_time() + conf.sse_max_duration
            while True:
                frame = ""
                if not result.empty:
                    frame = "event: data\n" + _sse_data(encode(result))
                yield (frame + control(result)).encode("utf-8")
                if result.closed:
                    return
                remaining = deadline - trio.current_time()
                if remaining <= 0:
                    return
                wait = min(conf.long_poll_timeout, remaining) if result.up_to_date else 0.0
                try:
                    result = await store.read(path, result.next_offset, wait=wait)
                except StreamError:
                    return  # deleted or gone while we waited

        out = {"Cache-Control": "no-cache", "Connection": "keep-alive"}
        if binary:
            out["Stream-SSE-Data-Encoding"] = "base64"
        response = _answer(events(), 200, out, "text/event-stream")
        response.timeout = None
        return response

    handlers: dict[str, Callable[[str], Awaitable[Response]]] = {
        "GET": read,
        "HEAD": head,
        "PUT": create,
        "POST": append,
        "DELETE": delete,
        "OPTIONS": options,
    }

    async def dispatch(name: str) -> Response:
        return await handlers[request.method](name)

    bp.add_url_rule(
        "/<path:name>",
        "stream",
        dispatch,
        methods=list(handlers),
        provide_automatic_options=False,
    )
    return bp


def create_app(
    store: Store,
    settings: ServerSettings | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    subscriptions: SubscriptionManager | None = None,
) -> Quart:
    """The standalone Durable Streams server app (``subscriptions``: see
    :func:`streams_blueprint`)."""
    conf = settings or ServerSettings()
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = conf.max_body_bytes
    app.config["BODY_TIMEOUT"] = 120
    app.config["RESPONSE_TIMEOUT"] = None
    app.register_blueprint(
        streams_blueprint(store, conf, prefix=prefix, subscriptions=subscriptions)
    )

    @app.route("/health")
    async def health() -> Response:
        return _answer(b"ok", 200, None, "text/plain")

    return app


async def serve(
    app: Quart,
    *,
    host: str = "127.0.0.1",
    port: int = 4437,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    shutdown_trigger: Callable[..., Awaitable[Any]] | None = None,
    graceful_timeout: float = 2.0,
) -> None:
    """Serve ``app`` with hypercorn's trio worker; reports the bound URLs when ready.

    On shutdown, open connections (requests in flight, idle keep-alive ones) get
    ``graceful_timeout`` seconds before they are cut."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75
    config.graceful_timeout = graceful_timeout
    await hypercorn_serve(
        app,
        config,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )
