"""The scripted model server: a quart-trio app on hypercorn that answers model API
requests from a :class:`Script` and records every request.

Routes (the Anthropic Messages API as Claude Code calls it, the OpenAI Responses API as
Codex calls it, on the same port and the same player):

- ``POST /v1/messages``: a main-conversation request takes the agent's next turn; a
  side request (see :func:`side_reason`) gets a short default; streamed as server-sent
  events when ``stream`` is true, else one JSON message;
- ``POST /v1/messages/count_tokens``: an estimate (a quarter of the body's bytes);
- ``POST /v1/responses`` (and ``/responses``, for a provider whose base URL lacks
  ``/v1``): the same for the Responses API (side requests: see
  :func:`response_side_reason`);
- ``GET /v1/models`` and ``GET /v1/models/<id>`` (also without ``/v1``): a small list
  that reads as either API's (each entry has both APIs' fields);
- ``HEAD``/``GET /`` and ``/api/hello`` (the CLI's connectivity probe): 200;
- anything else: 404 with an Anthropic error object (an OpenAI one under
  ``/responses``). All of these are recorded.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, final

import trio
from quart import Response, request
from quart_trio import QuartTrio

from transport import serve

from . import _openai as openai
from ._anthropic import (
    encode_sse,
    error_body,
    message_body,
    side_reason,
    side_turn,
    stream_events,
    tool_ids,
)
from ._player import RecordedRequest, RequestKind, ScriptPlayer, credential_of, subagent_of
from ._script import ApiError, Script, Turn

__all__ = [
    "Classifier",
    "ModelServer",
    "create_app",
    "open_model_server",
    "serve_models",
    "serve_models_until_signalled",
]

Classifier = Callable[[Mapping[str, Any]], str | None]
"""Takes a request body; returns why it is a side request, or ``None`` for a main turn."""

_MODELS = ("claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5")
_CREATED_AT = 1767225600  # 2026-01-01T00:00:00Z, when the listed models were "created"
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _headers() -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _sse_response(first: bytes, rest: bytes, delay: float, headers: dict[str, str]) -> Response:
    """A server-sent event stream: ``first`` at once, ``rest`` after ``delay`` seconds."""

    async def stream() -> AsyncIterator[bytes]:
        yield first
        if delay:
            await trio.sleep(delay)
        yield rest

    response = Response(
        stream(),
        content_type="text/event-stream",
        headers={"cache-control": "no-cache", **headers},
    )
    response.timeout = None
    return response


def create_app(
    player: ScriptPlayer,
    *,
    chunk_size: int = 64,
    side_max_tokens: int = 256,
    classify: Classifier | None = None,
    classify_responses: Classifier | None = None,
) -> QuartTrio:
    """The app serving ``player``'s script. ``classify`` replaces :func:`side_reason`
    and ``classify_responses`` :func:`response_side_reason` (each with
    ``side_max_tokens``) in telling side requests from main turns."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 256 * 1024 * 1024
    app.config["RESPONSE_TIMEOUT"] = None
    is_side: Classifier = classify or partial(side_reason, side_max_tokens=side_max_tokens)
    is_side_response: Classifier = classify_responses or partial(
        openai.response_side_reason, side_max_tokens=side_max_tokens
    )

    def record(
        kind: RequestKind, body: object, status: int = 200, *, api: str = "anthropic", **fields: Any
    ) -> RecordedRequest:
        headers = _headers()
        return player.record(
            RecordedRequest(
                seq=player.next_seq(),
                api=api,
                method=request.method,
                path=request.path,
                query=request.query_string.decode("latin-1"),
                headers=headers,
                body=body,
                agent=credential_of(headers),
                subagent=subagent_of(headers),
                kind=kind,
                status=status,
                **fields,
            )
        )

    async def read_json() -> object:
        raw = await request.get_data()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def take(
        body: dict[str, Any],
        api: str,
        reason: str | None,
        side: Callable[[Mapping[str, Any], str, str], Turn],
    ) -> tuple[Turn, int]:
        """The turn answering ``body`` (the agent's next one for a main request, else
        ``side``'s answer) and the request's seq, once recorded. No checkpoint."""
        headers = _headers()
        turn: Turn
        if reason is None:
            index, turn = player.take_turn(credential_of(headers), subagent_of(headers))
            fields: dict[str, Any] = {"turn": index}
        else:
            turn = side(body, reason, player.script.side_text)
            fields = {"side_reason": reason}
        status = turn.error.status if turn.error is not None else 200
        kind = RequestKind.MAIN if reason is None else RequestKind.SIDE
        return turn, record(kind, body, status, api=api, **fields).seq

    @app.post("/v1/messages")
    async def messages() -> Response:
        body = await read_json()
        # From here to the record, no checkpoint: turns are taken in arrival order.
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            error = ApiError(status=400, type="invalid_request_error", message="bad body")
            record(RequestKind.OTHER, body, status=400)
            return _json_response(error_body(error), 400)
        turn, seq = take(body, "anthropic", is_side(body), side_turn)
        request_id = f"req_scripted_{seq:06d}"
        if turn.error is not None:
            await trio.sleep(turn.delay)
            failure = error_body(turn.error)
            return _json_response(failure, turn.error.status, {"request-id": request_id})
        model = body["model"] if isinstance(body.get("model"), str) else _MODELS[0]
        message_id, ids = f"msg_scripted_{seq:06d}", tool_ids(turn, seq)
        if not body.get("stream"):
            await trio.sleep(turn.delay)
            answer = message_body(turn, message_id=message_id, model=model, ids=ids)
            return _json_response(answer, headers={"request-id": request_id})
        events = stream_events(
            turn, message_id=message_id, model=model, ids=ids, chunk_size=chunk_size
        )
        first = encode_sse(events[0]) + encode_sse(events[1])  # message_start, ping
        rest = b"".join(encode_sse(e) for e in events[2:])
        return _sse_response(first, rest, turn.delay, {"request-id": request_id})

    @app.post("/v1/responses")
    @app.post("/responses")
    async def responses() -> Response:
        body = await read_json()
        # From here to the record, no checkpoint: turns are taken in arrival order.
        if not isinstance(body, dict) or not isinstance(body.get("input"), list | str):
            error = ApiError(status=400, type="invalid_request_error", message="bad body")
            record(RequestKind.OTHER, body, status=400, api="openai")
            return _json_response(openai.error_body(error), 400)
        turn, seq = take(body, "openai", is_side_response(body), openai.response_side_turn)
        request_id = f"req_scripted_{seq:06d}"
        if turn.error is not None:
            await trio.sleep(turn.delay)
            failure = openai.error_body(turn.error)
            return _json_response(failure, turn.error.status, {"x-request-id": request_id})
        model = body["model"] if isinstance(body.get("model"), str) else openai.MODELS[0]
        ids, created_at = openai.call_ids(turn, seq), int(time.time())
        if not body.get("stream"):
            await trio.sleep(turn.delay)
            answer = openai.response_body(
                turn, seq=seq, model=model, ids=ids, created_at=created_at
            )
            return _json_response(answer, headers={"x-request-id": request_id})
        events = openai.response_events(
            turn, seq=seq, model=model, ids=ids, created_at=created_at, chunk_size=chunk_size
        )
        first = encode_sse(events[0]) + encode_sse(events[1])  # created, in_progress
        rest = b"".join(encode_sse(e) for e in events[2:])
        return _sse_response(first, rest, turn.delay, {"x-request-id": request_id})

    @app.post("/v1/messages/count_tokens")
    async def count_tokens() -> Response:
        raw = await request.get_data()
        try:
            body: object = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record(RequestKind.OTHER, body)
        return _json_response({"input_tokens": max(1, math.ceil(len(raw) / 4))})

    def model_info(model_id: str) -> dict[str, Any]:
        """A model as both APIs list it (Anthropic: type, display_name, created_at;
        OpenAI: object, created, owned_by)."""
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id,
            "created_at": "2026-01-01T00:00:00Z",
            "object": "model",
            "created": _CREATED_AT,
            "owned_by": "scripted",
        }

    @app.get("/v1/models")
    @app.get("/models")
    async def models() -> Response:
        record(RequestKind.OTHER, None)
        data = [model_info(m) for m in (*_MODELS, *openai.MODELS)]
        return _json_response(
            {
                "object": "list",
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"],
                "last_id": data[-1]["id"],
            }
        )

    @app.get("/v1/models/<path:model_id>")
    @app.get("/models/<path:model_id>")
    async def model(model_id: str) -> Response:
        record(RequestKind.OTHER, None)
        return _json_response(model_info(model_id))

    @app.route("/", defaults={"path": ""}, methods=_ANY_METHOD, provide_automatic_options=False)
    @app.route("/<path:path>", methods=_ANY_METHOD, provide_automatic_options=False)
    async def anything(path: str) -> Response:
        body = await read_json()
        if request.method in {"GET", "HEAD"} and path in {"", "api/hello"}:
            record(RequestKind.OTHER, body)
            return _json_response({})
        error = ApiError(status=404, type="not_found_error", message=f"no route {request.path}")
        if "/responses" in request.path:
            record(RequestKind.OTHER, body, status=404, api="openai")
            return _json_response(openai.error_body(error), 404)
        record(RequestKind.OTHER, body, status=404)
        return _json_response(error_body(error), 404)

    return app


@final
class ModelServer:
    """A running scripted model server: its URL and what it was asked. Get one from
    :func:`open_model_server`."""

    def __init__(self, player: ScriptPlayer, base_url: str) -> None:
        self._player = player
        self._base_url = base_url

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the ``ANTHROPIC_BASE_URL`` of its agents."""
        return self._base_url

    @property
    def openai_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the ``base_url`` of a Codex model provider (see
        :func:`orchestrator.bridges.codex_cli.offline_args`)."""
        return f"{self._base_url}/v1"

    @property
    def script(self) -> Script:
        return self._player.script

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        """Every request received so far, in order of arrival."""
        return self._player.records

    def main_requests(self, agent: str | None = None) -> list[RecordedRequest]:
        """The main-conversation requests (of ``agent``, or of all when ``None``)."""
        return [
            r
            for r in self._player.records
            if r.kind is RequestKind.MAIN and (agent is None or r.agent == agent)
        ]

    def side_requests(self) -> list[RecordedRequest]:
        return [r for r in self._player.records if r.kind is RequestKind.SIDE]

    def turns_taken(self, agent: str | None, subagent: str | None = None) -> int:
        """How many main-conversation requests ``agent`` (or its subagent of that id) has
        made, turns and finals."""
        return self._player.turns_taken(agent, subagent)

    def claude_env(self, api_key: str) -> dict[str, str]:
        """Environment for a Claude Code process that is agent ``api_key`` of this
        server, with no other network traffic."""
        return {
            "ANTHROPIC_BASE_URL": self._base_url,
            "ANTHROPIC_API_KEY": api_key,
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }


@asynccontextmanager
async def open_model_server(
    script: Script,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    chunk_size: int = 64,
    side_max_tokens: int = 256,
    classify: Classifier | None = None,
    classify_responses: Classifier | None = None,
    grace: float = 0.2,
) -> AsyncIterator[ModelServer]:
    """Serve ``script`` on ``host:port`` (0: any free port) for the block's duration.

    On exit the server stops accepting; open connections (requests in flight, idle
    keep-alive ones) get ``grace`` seconds before they are cut.
    """
    player = ScriptPlayer(script)
    app = create_app(
        player,
        chunk_size=chunk_size,
        side_max_tokens=side_max_tokens,
        classify=classify,
        classify_responses=classify_responses,
    )
    stopped = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(
                serve,
                app,
                host=host,
                port=port,
                graceful_timeout=grace,
                shutdown_trigger=stopped.wait,
            )
        )
        try:
            yield ModelServer(player, binds[0])
        finally:
            stopped.set()


async def serve_models(
    script: Script,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    grace: float = 2.0,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """Serve ``script`` until cancelled or ``shutdown_trigger`` returns (then open
    connections get ``grace`` seconds); reports the bound URLs through ``task_status``."""
    app = create_app(ScriptPlayer(script))
    await serve(
        app,
        host=host,
        port=port,
        graceful_timeout=grace,
        task_status=task_status,
        shutdown_trigger=shutdown_trigger,
    )


async def _until_signalled() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


async def serve_models_until_signalled(
    script: Script,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[list[str]], object] = lambda binds: None,
) -> None:
    """Serve ``script`` until SIGINT or SIGTERM (the commands ``python -m
    orchestrator.models`` and ``orchestrator model-server``); ``on_ready`` is called
    with the bound URLs once listening."""
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve_models, script, host=host, port=port, shutdown_trigger=_until_signalled)
        )
        on_ready(binds)
