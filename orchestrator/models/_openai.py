"""The OpenAI Responses API dialect (``POST /v1/responses``, as Codex calls it): which
requests are the main conversation, and a :class:`Turn` as a response object (JSON) or
as its server-sent event stream.

A turn's :class:`Text` blocks become ``message`` output items (role ``assistant``, one
``output_text`` part each) and its :class:`ToolCall` blocks ``function_call`` items
(``arguments`` is the JSON of the input). Ids are deterministic: ``resp_scripted_<seq>``,
``msg_<seq>_<n>``, ``fc_<seq>_<n>`` and, unless scripted, ``call_<seq>_<n>``.

Usage: the script's counts are Anthropic-style disjoint buckets; the Responses API counts
every input token in ``input_tokens`` and says how many of them were cached, so
``input_tokens`` = input + cache reads + cache writes, ``input_tokens_details`` =
``{cached_tokens: cache reads, cache_write_tokens: cache writes}`` (Codex reads both),
``output_tokens_details.reasoning_tokens`` = 0. A turn whose stop reason is
``max_tokens`` ends ``incomplete`` (``response.incomplete``, reason
``max_output_tokens``); any other ends ``completed``.

Side requests, as Codex 0.169.0 makes them (seen by logging its traffic): every request
of ``codex exec`` carries ``client_metadata["x-codex-turn-metadata"]`` (also sent as a
header), a JSON object whose ``request_kind`` is ``"turn"`` for the conversation's own
requests (the first and each tool follow-up) and ``"compaction"`` for an auto-compaction:
with a custom provider that is a plain ``/responses`` request (not
``/responses/compact``) whose last user message is Codex's handoff-summary prompt (see
:data:`COMPACTION_MARKERS`); the next turn's input is the summary instead of the
history. No title, summary or model-list requests were seen. So a request is a side
request when its ``request_kind`` is not ``"turn"``; without that metadata (another
client), when its last user message is the compaction prompt or its
``max_output_tokens`` is tiny (a probe).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._anthropic import SseEvent, example_of_schema
from ._player import content_text, input_items
from ._script import ApiError, Text, ToolCall, Turn, Usage

__all__ = [
    "COMPACTION_MARKERS",
    "MODELS",
    "accumulate_response",
    "call_ids",
    "error_body",
    "response_body",
    "response_events",
    "response_side_reason",
    "response_side_turn",
    "response_usage",
]

MODELS: tuple[str, ...] = ("gpt-5.5",)
"""The model ids the server lists for OpenAI clients. ``gpt-5.5`` is in Codex 0.169.0's
bundled catalog and uses plain function tools (no "responses lite", no code mode)."""

COMPACTION_MARKERS: tuple[str, ...] = (
    "CONTEXT CHECKPOINT COMPACTION",
    "Create a handoff summary for another LLM",
)
"""Text in the last user message of a compaction Codex makes itself (its local
summarisation prompt)."""

_SIDE_USAGE = Usage(input_tokens=10, output_tokens=5)


# -- classification ----------------------------------------------------------------------


def _turn_metadata(body: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = body.get("client_metadata")
    raw = meta.get("x-codex-turn-metadata") if isinstance(meta, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _last_user_text(body: Mapping[str, Any]) -> str:
    for item in reversed(input_items(body)):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            return content_text(item.get("content"))
    return ""


def response_side_reason(body: Mapping[str, Any], *, side_max_tokens: int = 256) -> str | None:
    """Why a ``/v1/responses`` request is a side request, or ``None`` for a main turn.

    Reasons: ``"request_kind:<kind>"`` (Codex's turn metadata names a kind other than
    ``turn``), ``"compaction"`` (the last user message asks for a handoff summary),
    ``"small_max_tokens"`` (``max_output_tokens`` below ``side_max_tokens``).
    """
    meta = _turn_metadata(body)
    kind = meta.get("request_kind") if meta is not None else None
    if isinstance(kind, str) and kind != "turn":
        return f"request_kind:{kind}"
    max_tokens = body.get("max_output_tokens")
    if isinstance(max_tokens, int) and max_tokens < side_max_tokens:
        return "small_max_tokens"
    text = _last_user_text(body)
    if any(marker in text for marker in COMPACTION_MARKERS):
        return "compaction"
    return None


def response_side_turn(body: Mapping[str, Any], reason: str, text: str) -> Turn:
    """The answer to a side request: JSON fitting the requested schema when the body
    asks for structured output (``text.format`` of type ``json_schema``), else
    ``text``."""
    fmt = body.get("text", {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return Turn.text(json.dumps(example_of_schema(fmt.get("schema"), text)), usage=_SIDE_USAGE)
    return Turn.text(text, usage=_SIDE_USAGE)


# -- rendering -------------------------------------------------------------------------


def call_ids(turn: Turn, seq: int) -> list[str]:
    """The ``call_id`` s of the turn's tool calls: the scripted id, else
    ``call_<seq>_<n>`` (unique per response, deterministic for the same order of
    requests)."""
    return [
        b.id if b.id is not None else f"call_{seq:06d}_{i:02d}"
        for i, b in enumerate(b for b in turn.blocks if isinstance(b, ToolCall))
    ]


def response_usage(usage: Usage) -> dict[str, Any]:
    """The Responses API ``usage`` object of the script's counts."""
    input_tokens = (
        usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    )
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + usage.output_tokens,
    }


def _output(turn: Turn, seq: int, ids: Sequence[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    calls = iter(ids)
    for n, block in enumerate(turn.blocks):
        if isinstance(block, Text):
            part = {"type": "output_text", "text": block.text, "annotations": []}
            out.append(
                {
                    "type": "message",
                    "id": f"msg_{seq:06d}_{n:02d}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        else:
            out.append(
                {
                    "type": "function_call",
                    "id": f"fc_{seq:06d}_{n:02d}",
                    "status": "completed",
                    "call_id": next(calls),
                    "name": block.name,
                    "arguments": json.dumps(block.input, separators=(",", ":")),
                }
            )
    return out


def _status(turn: Turn) -> tuple[str, dict[str, str] | None]:
    if turn.effective_stop_reason == "max_tokens":
        return "incomplete", {"reason": "max_output_tokens"}
    return "completed", None


def response_body(
    turn: Turn, *, seq: int, model: str, ids: Sequence[str], created_at: int = 0
) -> dict[str, Any]:
    """The non-streaming answer: one ``response`` object (id ``resp_scripted_<seq>``)."""
    status, incomplete = _status(turn)
    return {
        "id": f"resp_scripted_{seq:06d}",
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "model": model,
        "output": _output(turn, seq, ids),
        "usage": response_usage(turn.usage),
        "metadata": {},
    }


def _chunks(text: str, size: int) -> Iterable[str]:
    return (text[i : i + size] for i in range(0, len(text), size))


def response_events(
    turn: Turn,
    *,
    seq: int,
    model: str,
    ids: Sequence[str],
    created_at: int = 0,
    chunk_size: int = 64,
) -> list[SseEvent]:
    """The turn as the Responses API streams it: ``response.created``,
    ``response.in_progress``, per output item ``response.output_item.added``, then for a
    message ``response.content_part.added`` / ``response.output_text.delta``\\*
    (``chunk_size`` characters each) / ``response.output_text.done`` /
    ``response.content_part.done``, for a function call
    ``response.function_call_arguments.delta``\\* / ``...done``, then
    ``response.output_item.done``; last ``response.completed`` (or
    ``response.incomplete``) with the whole response and its usage. Every event carries
    its ``sequence_number`` (from 0)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    final = response_body(turn, seq=seq, model=model, ids=ids, created_at=created_at)
    start = {**final, "status": "in_progress", "incomplete_details": None, "output": []}
    start["usage"] = None
    events: list[SseEvent] = []

    def emit(kind: str, **data: Any) -> None:
        events.append(SseEvent(kind, {"type": kind, "sequence_number": len(events), **data}))

    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(final["output"]):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            emit("response.output_item.added", output_index=index, item={**item, "content": []})
            part = item["content"][0]
            text = part["text"]
            empty = {**part, "text": ""}
            emit("response.content_part.added", **where, content_index=0, part=empty)
            for chunk in _chunks(text, chunk_size):
                emit("response.output_text.delta", **where, content_index=0, delta=chunk)
            emit("response.output_text.done", **where, content_index=0, text=text)
            emit("response.content_part.done", **where, content_index=0, part=part)
        else:
            started = {**item, "status": "in_progress", "arguments": ""}
            emit("response.output_item.added", output_index=index, item=started)
            arguments = item["arguments"]
            for chunk in _chunks(arguments, chunk_size):
                emit("response.function_call_arguments.delta", **where, delta=chunk)
            emit("response.function_call_arguments.done", **where, arguments=arguments)
        emit("response.output_item.done", output_index=index, item=item)
    emit(f"response.{final['status']}", response=final)
    return events


def error_body(error: ApiError) -> dict[str, Any]:
    """An OpenAI error object."""
    return {"error": {"message": error.message, "type": error.type, "param": None, "code": None}}


# -- reading a stream back ---------------------------------------------------------------

_TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def accumulate_response(events: Iterable[SseEvent]) -> dict[str, Any]:
    """The response a client builds from a stream: the output items put together from
    the ``added`` / delta / ``done`` events, the rest from the terminal event. Raises
    ``ValueError`` when the events are out of order, a delta does not add up to its
    ``done``, or a finished item differs from what its events built."""
    started = False
    final: dict[str, Any] | None = None
    output: list[dict[str, Any]] = []
    texts: dict[tuple[int, int], str] = {}
    arguments: dict[int, str] = {}
    for number, ev in enumerate(events):
        data = ev.data
        kind = data.get("type")
        _expect(kind == ev.event, f"event name {ev.event!r} does not match data type {kind!r}")
        _expect(final is None, f"{kind} after the response ended")
        _expect(
            data.get("sequence_number") == number,
            f"{kind}: sequence_number {data.get('sequence_number')}, expected {number}",
        )
        if kind == "response.created":
            _expect(not started, "a second response.created")
            started = True
            continue
        _expect(started, f"{kind} before response.created")
        index: int = data.get("output_index", -1)
        if kind == "response.in_progress":
            continue
        if kind in _TERMINAL:
            final = data["response"]
            continue
        if kind == "response.output_item.added":
            _expect(index == len(output), f"output_index {index}, expected {len(output)}")
            output.append(json.loads(json.dumps(data["item"])))
            continue
        _expect(
            isinstance(index, int) and 0 <= index < len(output),
            f"{kind}: output_index {index} of no item",
        )
        item = output[index]
        if "item_id" in data:
            _expect(data["item_id"] == item.get("id"), f"{kind}: item_id of another item")
        part_key: tuple[int, int] = (index, data.get("content_index", 0))
        if kind == "response.content_part.added":
            _expect(part_key[1] == len(item["content"]), f"{kind}: content_index out of order")
            item["content"].append(dict(data["part"]))
            texts[part_key] = data["part"].get("text", "")
        elif kind == "response.output_text.delta":
            _expect(part_key in texts, f"{kind}: no such content part")
            texts[part_key] += data["delta"]
        elif kind == "response.output_text.done":
            _expect(texts.get(part_key) == data["text"], f"{kind}: the deltas do not add up")
        elif kind == "response.content_part.done":
            _expect(texts.get(part_key) == data["part"].get("text"), f"{kind}: text differs")
            item["content"][part_key[1]] = dict(data["part"])
        elif kind == "response.function_call_arguments.delta":
            arguments[index] = arguments.get(index, "") + data["delta"]
        elif kind == "response.function_call_arguments.done":
            _expect(arguments.get(index, "") == data["arguments"], f"{kind}: deltas differ")
            json.loads(data["arguments"])
            item["arguments"] = data["arguments"]
        elif kind == "response.output_item.done":
            done = data["item"]
            built = {**item, "status": done.get("status")}
            _expect(built == done, f"{kind}: item {index} differs from what its events built")
            output[index] = done
    _expect(final is not None, "the stream ended before the response did")
    assert final is not None
    _expect(final.get("output") == output, "the final output differs from the streamed items")
    return {**final, "output": output}
