"""The Claude Code bridge: the pinned CLI running inside a sandbox, driven through
``claude-agent-sdk``.

:class:`SandboxTransport` is the SDK's custom ``Transport``: the CLI is a
:class:`~orchestrator.sandboxes.base.Process` in the session's sandbox (docker exec with
stdin attached, or a local process), and its argv is built by the SDK itself from
:class:`ClaudeAgentOptions` (so flags follow the pinned SDK version). One process
serves many turns (stream-json input); the SDK's control protocol carries permission
requests (``can_use_tool``), hooks and interrupts.

:class:`ClaudeAgent` runs turns on one process and turns every message into session
events through :class:`~orchestrator.bridges.claude_events.ClaudeEventMapper`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import replace
from typing import Any, cast

import trio
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, Message, ResultMessage
from claude_agent_sdk._internal.message_parser import parse_message
from claude_agent_sdk._internal.transport import Transport
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport
from claude_agent_sdk.types import AssistantMessage

from .. import events as ev
from .._values import as_dict, as_number, as_str
from ..sandboxes.base import Process, Sandbox, SandboxError
from ._lines import JsonLines, parse_object_line
from .claude_events import ClaudeEventMapper, CostMeter

__all__ = [
    "OFFLINE_ENV",
    "SANDBOX_CLI_PATH",
    "ClaudeAgent",
    "SandboxTransport",
    "build_argv",
]

logger = logging.getLogger(__name__)

SANDBOX_CLI_PATH = "/opt/claude/claude"
OFFLINE_ENV = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_ENTRYPOINT": "sdk-py",
    # The CLI is in a sandbox: it may skip permission prompts even when it runs as root
    # (the local sandbox under CI); tool permissions are the session's policy.
    "IS_SANDBOX": "1",
}
CLOSE_TIMEOUT = 10.0


def build_argv(options: ClaudeAgentOptions, cli_path: str) -> list[str]:
    """The CLI's argv for ``options``, as the SDK's own subprocess transport builds it."""
    if options.can_use_tool is not None and options.permission_prompt_tool_name is None:
        options = replace(options, permission_prompt_tool_name="stdio")
    builder = SubprocessCLITransport(prompt="", options=replace(options, cli_path=cli_path))
    return builder._build_command()


class SandboxTransport(Transport):
    """Claude Code inside a sandbox, as a ``claude-agent-sdk`` transport."""

    def __init__(
        self,
        sandbox: Sandbox,
        options: ClaudeAgentOptions,
        *,
        cli_path: str = SANDBOX_CLI_PATH,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._sandbox = sandbox
        self._argv = build_argv(options, cli_path)
        self._cwd = cwd or (str(options.cwd) if options.cwd else None)
        self._env = {**OFFLINE_ENV, **options.env, **(env or {})}
        self._process: Process | None = None
        self._closed = False
        self._write_lock = trio.Lock()

    @property
    def argv(self) -> list[str]:
        return list(self._argv)

    async def connect(self) -> None:
        if self._process is not None:
            return
        if self._closed:
            raise SandboxError("this transport was closed; make a new one")
        self._process = await self._sandbox.spawn(self._argv, cwd=self._cwd, env=self._env)

    async def write(self, data: str) -> None:
        if self._process is None or self._closed:
            raise SandboxError("the Claude Code process is not running")
        async with self._write_lock:
            await self._process.write(data.encode("utf-8"))

    def read_messages(self) -> AsyncIterator[dict[str, Any]]:
        if self._process is None:
            raise SandboxError("connect() first")
        return _JsonLines(self._process.stdout(), self._parse)

    @staticmethod
    def _parse(line: bytes) -> dict[str, Any] | None:
        return parse_object_line(line, who="Claude Code", corrupt=SandboxError)

    async def close(self) -> None:
        self._closed = True
        process, self._process = self._process, None
        if process is not None:
            with trio.move_on_after(CLOSE_TIMEOUT):
                try:
                    await process.kill()
                except SandboxError as exc:
                    # (its host gone, say): the SDK's close must go on past this, or
                    # it leaves its message stream open
                    logger.info("closing Claude Code: %s", exc)

    def is_ready(self) -> bool:
        return self._process is not None and not self._closed

    async def end_input(self) -> None:
        if self._process is not None:
            await self._process.close_stdin()


def _JsonLines(
    chunks: AsyncIterator[bytes], parse: Callable[[bytes], dict[str, Any] | None]
) -> JsonLines:
    return JsonLines(chunks, parse, SandboxError)


EventSink = Callable[[ev.Event], Awaitable[None]]
TurnSink = Callable[[ResultMessage], Awaitable[None]]


class ClaudeAgent:
    """One Claude Code process in a sandbox serving many turns.

    :meth:`serve` starts the process, sends ``first`` then each prompt it receives, and
    hands every resulting event to ``emit`` (in order, awaited) and every turn's result
    to ``on_turn``; it returns when ``prompts`` is closed (or the process ends). The
    SDK's messages are read by one ``receive_messages()`` for the client's whole life
    (``receive_response()`` leaves generators unclosed, which trio reports).
    :attr:`session_id` (Claude's) lets a new process resume (``resume=``).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        options: ClaudeAgentOptions,
        emit: EventSink,
        *,
        meter: CostMeter | None = None,
        on_cost: Callable[[float], Awaitable[None]] | None = None,
        cli_path: str = SANDBOX_CLI_PATH,
        env: Mapping[str, str] | None = None,
        agent_name: str | None = None,
    ) -> None:
        self.options = options
        self._emit = emit
        self._meter = meter or CostMeter()
        self._on_cost = on_cost
        self._mapper = ClaudeEventMapper(agent=agent_name)
        self._transport = SandboxTransport(sandbox, options, cli_path=cli_path, env=env)
        self._client: ClaudeSDKClient | None = None

    @property
    def session_id(self) -> str | None:
        return self._mapper.claude_session_id

    @property
    def meter(self) -> CostMeter:
        return self._meter

    async def serve(
        self, first: str, prompts: trio.MemoryReceiveChannel[str], on_turn: TurnSink
    ) -> None:
        self._meter.new_process()
        client = ClaudeSDKClient(options=self.options, transport=self._transport)
        await client.connect()
        self._client = client
        send, messages = trio.open_memory_channel[Message](64)

        async def pump() -> None:
            # The query's own generator, closed here even when cancelled mid-send (the
            # client's receive_messages wraps it in a second generator, which aclose
            # would leave to trio's finalizer); parsed as the client parses it.
            query = client._query
            assert query is not None
            received = cast(AsyncGenerator[dict[str, Any], None], query.receive_messages())
            async with send, aclosing(received) as stream:
                async for data in stream:
                    message = parse_message(data)
                    if message is not None:
                        await send.send(message)

        disconnected = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump)
                await client.query(first)
                async for message in messages:
                    await self._relay(message)
                    if not isinstance(message, ResultMessage):
                        continue
                    await on_turn(message)
                    try:
                        prompt = await prompts.receive()
                    except (trio.EndOfChannel, trio.ClosedResourceError):
                        break
                    await client.query(prompt)
                # ends the SDK's message stream, so the pump finishes by itself
                await self._disconnect(client)
                disconnected = True
        except BaseExceptionGroup as group:
            # the error itself (the pump's, a bad line), not trio's group around it
            lone = group.exceptions[0] if len(group.exceptions) == 1 else None
            if isinstance(lone, Exception) and not isinstance(lone, BaseExceptionGroup):
                raise lone from None
            raise
        finally:
            self._client = None
            if not disconnected:
                await self._disconnect(client)

    @staticmethod
    async def _disconnect(client: ClaudeSDKClient) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            await client.disconnect()

    async def _relay(self, message: Message) -> None:
        usage = as_dict(message.usage) if isinstance(message, AssistantMessage) else {}
        if usage:
            assert isinstance(message, AssistantMessage)
            cost = self._meter.on_usage(
                as_str(message.message_id), as_str(message.model) or "", usage
            )
            if cost and self._on_cost is not None:
                await self._on_cost(cost)
        for event in self._mapper.map(message):
            if isinstance(event, ev.SessionEnd) and isinstance(message, ResultMessage):
                turn_cost = self._meter.on_result(as_number(message.total_cost_usd))
                event = ev.SessionEnd(
                    success=event.success,
                    cost_usd=round(turn_cost, 6),
                    num_turns=event.num_turns,
                    duration_ms=event.duration_ms,
                    duration_api_ms=event.duration_api_ms,
                )
            await self._emit(event)

    async def interrupt(self) -> None:
        if self._client is not None:
            await self._client.interrupt()
