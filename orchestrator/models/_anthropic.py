"""The Anthropic Messages API dialect: which requests are the main conversation, and a
:class:`Turn` as a message (JSON) or as its server-sent event stream.

Side requests, as Claude Code 2.1.332 makes them (seen by logging its traffic and
reading its bundle): helper calls for a session title or name, summaries and the like
are *tool-free* (``tools`` absent or empty, no ``thinking`` nor ``context_management``)
and ask for structured output (``output_config.format``); a compaction (``/compact``,
auto-compact) is sent like a main turn, tools included, but its last user message
carries the compaction instructions. A main turn with ``--tools ""`` still sends
``thinking`` and ``context_management``, and ``--json-schema`` becomes a
``StructuredOutput`` tool, not ``output_config.format``, so neither is taken for a side
request. Requests with a tiny ``max_tokens`` (probes) are side requests too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ._player import content_text
from ._script import ApiError, Text, ToolCall, Turn, Usage

__all__ = [
    "COMPACTION_MARKERS",
    "SseEvent",
    "accumulate",
    "encode_sse",
    "error_body",
    "example_of_schema",
    "message_body",
    "parse_sse",
    "side_reason",
    "side_turn",
    "stream_events",
    "tool_ids",
]

COMPACTION_MARKERS: tuple[str, ...] = (
    "create a detailed summary of the conversation so far",
    "Respond with TEXT ONLY. Do NOT call any tools.",
)
"""Text in the last user message of a compaction request (Claude Code 2.1.332)."""

_SIDE_USAGE = Usage(input_tokens=10, output_tokens=5)


# -- classification ----------------------------------------------------------------------


def _last_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def side_reason(body: Mapping[str, Any], *, side_max_tokens: int = 256) -> str | None:
    """Why a ``/v1/messages`` request is a side request, or ``None`` for a main turn.

    Reasons: ``"structured_output"`` (``output_config.format`` set: the CLI's title and
    name helpers), ``"tool_free_helper"`` (no tools and neither ``thinking`` nor
    ``context_management``), ``"compaction"`` (the last user message asks for a summary
    of the conversation), ``"small_max_tokens"`` (``max_tokens`` below
    ``side_max_tokens``).
    """
    output_config = body.get("output_config")
    if isinstance(output_config, dict) and output_config.get("format"):
        return "structured_output"
    if not body.get("tools") and "thinking" not in body and "context_management" not in body:
        return "tool_free_helper"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens < side_max_tokens:
        return "small_max_tokens"
    text = _last_user_text(body)
    if any(marker in text for marker in COMPACTION_MARKERS):
        return "compaction"
    return None


def example_of_schema(schema: object, text: str = "OK.") -> Any:
    """A small value that fits a JSON schema (the common keywords): what a structured
    side request gets back. Strings are ``text``."""
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return example_of_schema(schema[key][0], text)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        names = required if isinstance(required, list) else list(props)
        return {name: example_of_schema(props.get(name, {}), text) for name in names}
    if kind == "array":
        count = schema.get("minItems", 0)
        count = count if isinstance(count, int) else 0
        return [example_of_schema(schema.get("items", {}), text) for _ in range(count)]
    return {"integer": 0, "number": 0, "boolean": False, "null": None}.get(str(kind), text)


def side_turn(body: Mapping[str, Any], reason: str, text: str) -> Turn:
    """The answer to a side request: JSON fitting the requested schema for structured
    output, an ``<analysis>``/``<summary>`` pair for a compaction, else ``text``."""
    if reason == "structured_output":
        fmt = body["output_config"]["format"]
        schema = fmt.get("schema") if isinstance(fmt, dict) else None
        return Turn.text(json.dumps(example_of_schema(schema, text)), usage=_SIDE_USAGE)
    if reason == "compaction":
        summary = f"<analysis>{text}</analysis>\n\n<summary>\n{text}\n</summary>"
        return Turn.text(summary, usage=_SIDE_USAGE)
    return Turn.text(text, usage=_SIDE_USAGE)


# -- rendering -------------------------------------------------------------------------


def tool_ids(turn: Turn, seq: int) -> list[str]:
    """The ids of the turn's tool calls: the scripted one, else ``toolu_<seq>_<n>``
    (unique per response, deterministic for the same order of requests)."""
    return [
        b.id if b.id is not None else f"toolu_{seq:06d}_{i:02d}"
        for i, b in enumerate(b for b in turn.blocks if isinstance(b, ToolCall))
    ]


def _content(turn: Turn, ids: Sequence[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    calls = iter(ids)
    for block in turn.blocks:
        if isinstance(block, Text):
            out.append({"type": "text", "text": block.text})
        else:
            out.append(
                {"type": "tool_use", "id": next(calls), "name": block.name, "input": block.input}
            )
    return out


def message_body(turn: Turn, *, message_id: str, model: str, ids: Sequence[str]) -> dict[str, Any]:
    """The non-streaming answer: one ``message`` object."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content(turn, ids),
        "stop_reason": turn.effective_stop_reason,
        "stop_sequence": None,
        "usage": turn.usage.to_wire(),
    }


def _chunks(text: str, size: int) -> Iterable[str]:
    if not text:
        return [""]
    return (text[i : i + size] for i in range(0, len(text), size))


@attrs.frozen
class SseEvent:
    """One server-sent event: its ``event`` name and the JSON of its ``data``."""

    event: str
    data: dict[str, Any]


def stream_events(
    turn: Turn, *, message_id: str, model: str, ids: Sequence[str], chunk_size: int = 64
) -> list[SseEvent]:
    """The turn as the Messages API streams it: ``message_start``, ``ping``, per block
    ``content_block_start`` / ``content_block_delta``\\* (``text_delta`` or
    ``input_json_delta``, ``chunk_size`` characters each) / ``content_block_stop``, then
    ``message_delta`` (stop reason and usage) and ``message_stop``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    usage = turn.usage
    start_usage = {**usage.to_wire(), "output_tokens": min(1, usage.output_tokens)}
    start: dict[str, Any] = message_body(turn, message_id=message_id, model=model, ids=ids)
    start.update(content=[], stop_reason=None, usage=start_usage)
    events = [
        SseEvent("message_start", {"type": "message_start", "message": start}),
        SseEvent("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(_content(turn, ids)):
        first: dict[str, Any]
        if block["type"] == "text":
            first = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"], chunk_size)]
        else:
            first = {**block, "input": {}}
            raw = json.dumps(block["input"], separators=(",", ":"))
            deltas = [
                {"type": "input_json_delta", "partial_json": c} for c in _chunks(raw, chunk_size)
            ]
        events.append(
            SseEvent(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": first},
            )
        )
        events.extend(
            SseEvent(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}
            )
            for d in deltas
        )
        events.append(
            SseEvent("content_block_stop", {"type": "content_block_stop", "index": index})
        )
    events.append(
        SseEvent(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": turn.effective_stop_reason, "stop_sequence": None},
                "usage": usage.to_wire(),
            },
        )
    )
    events.append(SseEvent("message_stop", {"type": "message_stop"}))
    return events


def encode_sse(event: SseEvent) -> bytes:
    """One event on the wire: ``event:`` and ``data:`` lines and a blank line."""
    data = json.dumps(event.data, separators=(",", ":"))
    return f"event: {event.event}\ndata: {data}\n\n".encode()


def parse_sse(stream: str | bytes) -> list[SseEvent]:
    """Server-sent events back from their text (any of ``\\r\\n``, ``\\r``, ``\\n``; comments
    and ``id``/``retry`` fields ignored; multi-line data joined with ``\\n``). Raises
    ``ValueError`` for an event whose data is not a JSON object."""
    text = stream.decode() if isinstance(stream, bytes) else stream
    events: list[SseEvent] = []
    name, data = "message", list[str]()
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if data:
                parsed = json.loads("\n".join(data))
                if not isinstance(parsed, dict):
                    raise ValueError(f"event {name!r}: data is not a JSON object")
                events.append(SseEvent(name, parsed))
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return events


def accumulate(events: Iterable[SseEvent]) -> dict[str, Any]:
    """The message a client builds from a stream, as the Anthropic SDKs do: raises
    ``ValueError`` when the events are out of order or a tool input is not JSON."""
    message: dict[str, Any] | None = None
    partial: dict[int, str] = {}
    stopped = False
    for ev in events:
        kind = ev.data.get("type")
        if kind != ev.event:
            raise ValueError(f"event name {ev.event!r} does not match data type {kind!r}")
        if kind == "ping":
            continue
        if kind == "message_start":
            if message is not None:
                raise ValueError("a second message_start")
            started: dict[str, Any] = ev.data["message"]
            message = {**started, "content": list(started["content"])}
            continue
        if message is None or stopped:
            raise ValueError(f"{kind} outside a message")
        content: list[dict[str, Any]] = message["content"]
        if kind == "content_block_start":
            if ev.data["index"] != len(content):
                raise ValueError(f"block index {ev.data['index']}, expected {len(content)}")
            content.append(dict(ev.data["content_block"]))
            partial[ev.data["index"]] = ""
        elif kind == "content_block_delta":
            block, delta = content[ev.data["index"]], ev.data["delta"]
            if delta["type"] == "text_delta" and block["type"] == "text":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta" and block["type"] == "tool_use":
                partial[ev.data["index"]] += delta["partial_json"]
            else:
                raise ValueError(f"{delta['type']} for a {block['type']} block")
        elif kind == "content_block_stop":
            block = content[ev.data["index"]]
            if block["type"] == "tool_use":
                raw = partial[ev.data["index"]]
                block["input"] = json.loads(raw) if raw else {}
        elif kind == "message_delta":
            message.update(ev.data["delta"])
            message["usage"] = {**message["usage"], **ev.data["usage"]}
        elif kind == "message_stop":
            stopped = True
        else:
            raise ValueError(f"unknown event {kind!r}")
    if message is None or not stopped:
        raise ValueError("the stream ended before message_stop")
    return message


def error_body(error: ApiError) -> dict[str, Any]:
    """The Messages API's error object."""
    return {"type": "error", "error": {"type": error.type, "message": error.message}}
