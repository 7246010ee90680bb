"""A scripted model server: the model API that agents talk to in tests, answering from a
script instead of a model.

- :class:`Script` / :class:`AgentScript` / :class:`Turn` (of :class:`Text` and
  :class:`ToolCall` blocks, with :class:`Usage`): per agent and per turn, what the model
  answers; Python objects or JSON (:meth:`Script.load`);
- :func:`open_model_server`: serves a script on 127.0.0.1 (any free port) for the
  duration of an ``async with``, yielding a :class:`ModelServer` (its ``base_url``,
  ``openai_base_url`` for a Codex model provider, the :class:`RecordedRequest` s it
  received, ``claude_env(key)`` for a Claude Code process); :func:`serve_models` is the
  long-running form, :func:`serve_models_until_signalled` that of the commands
  (``python -m orchestrator.models``, ``orchestrator model-server``);
- the Anthropic Messages dialect: streamed (server-sent events) and plain JSON answers,
  side requests told from main turns (:func:`side_reason`), and :func:`parse_sse` /
  :func:`accumulate` to read a stream back;
- the OpenAI Responses dialect (Codex), on the same port: :func:`response_body`,
  :func:`response_events`, :func:`response_side_reason`, and
  :func:`accumulate_response` to read a stream back.

An agent is named by its credential (``x-api-key`` or ``Authorization: Bearer``); each
main-conversation request, of either API, takes that agent's next turn; side requests
take none.
"""

from ._anthropic import (
    COMPACTION_MARKERS,
    SseEvent,
    accumulate,
    encode_sse,
    example_of_schema,
    parse_sse,
    side_reason,
    stream_events,
)
from ._openai import (
    accumulate_response,
    call_ids,
    response_body,
    response_events,
    response_side_reason,
    response_usage,
)
from ._player import RecordedRequest, RequestKind, credential_of, subagent_of
from ._script import AgentScript, ApiError, Block, Script, ScriptError, Text, ToolCall, Turn, Usage
from ._server import (
    Classifier,
    ModelServer,
    create_app,
    open_model_server,
    serve_models,
    serve_models_until_signalled,
)

__all__ = [
    "COMPACTION_MARKERS",
    "AgentScript",
    "ApiError",
    "Block",
    "Classifier",
    "ModelServer",
    "RecordedRequest",
    "RequestKind",
    "Script",
    "ScriptError",
    "SseEvent",
    "Text",
    "ToolCall",
    "Turn",
    "Usage",
    "accumulate",
    "accumulate_response",
    "call_ids",
    "create_app",
    "credential_of",
    "encode_sse",
    "example_of_schema",
    "open_model_server",
    "parse_sse",
    "response_body",
    "response_events",
    "response_side_reason",
    "response_usage",
    "serve_models",
    "serve_models_until_signalled",
    "side_reason",
    "stream_events",
    "subagent_of",
]
