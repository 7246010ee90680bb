"""SessionActor: one agent session, from sandbox to teardown.

The actor owns its sandbox and its Claude Code process. Both live inside the actor's
own nursery: the *run* task provisions the sandbox, prepares the workspace and drives
the agent turn after turn; everything the agent does comes back to the actor as a
message and is appended to the session's stream (``/v1/stream/session/<id>``) before
anyone else hears of it. Cancel, delete, a spent budget, a failure or the actor's own
stop all end the same way: the run task is cancelled (the agent process is killed) and
the sandbox is destroyed, each within a bound.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio
from claude_agent_sdk import (
    ClaudeAgentOptions,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    ToolPermissionContext,
)

from actors import Actor, ActorRef, ActorStopped, Refused, RestartIntensity, shielded
from transport import AppendRequest, CreateRequest, Store, StreamError

from .. import events as ev
from ..bridges.claude import ClaudeAgent
from ..bridges.claude_events import CostMeter
from ..bridges.codex import CodexAgent, CodexTurn, default_codex_home
from ..bridges.prices import TokenMeter
from ..errors import answers_store_errors
from ..gates import Gate, GateRegistry, ToolPolicy
from ..sandboxes.base import Sandbox, SandboxError, SandboxProvider, SandboxSpec
from . import workspace
from .registry import UpdateSession

__all__ = [
    "Busy",
    "Cancel",
    "Delete",
    "Deliver",
    "Fail",
    "Finish",
    "GetSandbox",
    "Interrupt",
    "Iterate",
    "Release",
    "SessionActor",
    "SessionConfig",
    "session_stream",
]

logger = logging.getLogger(__name__)

JSON = "application/json"
DESTROY_TIMEOUT = 30.0
AGENT_RESTARTS = 3  # agent process restarts allowed ...
AGENT_RESTART_WINDOW = 60.0  # ... within this many seconds
RETELL_INTERVAL = 2.0  # seconds between tries to say what the store refused
DEFAULT_TOOLS = (
    "Read",
    "Write",
    "Edit",
    "Bash",
    "Glob",
    "Grep",
    "WebSearch",
    "TodoWrite",
    "AskUserQuestion",
    "Skill",
)
PRODUCTION_TOOLS = tuple(tool for tool in DEFAULT_TOOLS if tool != "WebSearch")


def _infra_env(choice: Mapping[str, Any]) -> dict[str, str]:
    """The sandbox environment of a setup choice (reference 12.2): a cloud or claimed
    database hands its connection details to the agent; local adds nothing."""
    if choice.get("mode") not in ("cloud", "claim"):
        return {}
    names = {
        "databaseUrl": "DATABASE_URL",
        "electricUrl": "ELECTRIC_URL",
        "sourceId": "ELECTRIC_SOURCE_ID",
        "secret": "ELECTRIC_SECRET",
    }
    return {env: str(choice[key]) for key, env in names.items() if isinstance(choice.get(key), str)}


def _input_key(tool_input: Mapping[str, Any]) -> str:
    return json.dumps(tool_input, sort_keys=True, separators=(",", ":"), default=str)


def carry_over(kind: str, request: Mapping[str, Any], value: Any) -> _CarryOver | None:
    """What the resumed agent is told of a gate it asked before the server restarted,
    now answered: a tool approval (``allow`` makes the same call again, once without
    asking) or its questions' answers. None for other kinds."""
    if kind == "tool_permission":
        tool = str(request.get("tool_name", "tool"))
        tool_input = request.get("tool_input")
        tool_input = tool_input if isinstance(tool_input, dict) else {}
        answer = value if isinstance(value, Mapping) else {}
        cut = (
            f"The server restarted while your {tool} call waited for a person's approval, "
            "so it was not run."
        )
        if answer.get("behavior") == "allow":
            shown = json.dumps(tool_input, ensure_ascii=False)
            return _CarryOver(
                note=f"The {tool} call asked before the restart was allowed: the agent is "
                "told to make it again",
                prompt=f"{cut} A person has now allowed it: make the same call again, with "
                f"the same input:\n\n{shown}",
                allow=(tool, _input_key(tool_input)),
            )
        why = answer.get("message")
        because = f" ({why})" if isinstance(why, str) and why else ""
        return _CarryOver(
            note=f"The {tool} call asked before the restart was denied: the agent is told",
            prompt=f"{cut} A person has now denied it{because}: do not make that call.",
        )
    if kind == "ask_user_question":
        answers = value.get("answers") if isinstance(value, Mapping) else None
        lines = [
            f"- {question}: {answer}"
            for question, answer in (answers.items() if isinstance(answers, Mapping) else ())
        ]
        return _CarryOver(
            note="The questions asked before the restart were answered: the answers go to "
            "the agent",
            prompt="The server restarted while you waited for answers to your questions. "
            "The person answered:\n\n" + ("\n".join(lines) or "(no answer)"),
        )
    return None


def session_stream(session_id: str) -> str:
    return f"/v1/stream/session/{session_id}"


@attrs.frozen(kw_only=True)
class SessionConfig:
    """What a session runs with (decided by the orchestrator from settings + request)."""

    session_id: str
    description: str
    project_name: str
    freeform: bool = False
    model: str | None = None
    production: bool = False
    budget_usd: float = math.inf
    network: str = "host"
    agent_env: Mapping[str, str] = attrs.field(factory=dict)  # API key, base URL
    allowed_tools: tuple[str, ...] | None = None
    resume: str | None = None  # a Claude session id to resume
    # Non-freeform sessions wait at the infra_config gate before their sandbox is made,
    # unless the setup choice was given up front (the library, `orchestrator run`).
    ask_infra: bool = False
    # None: every tool in the session's list runs (bypassPermissions). A policy: tools it
    # allows run, tools it denies are refused, the rest wait at a tool_permission gate.
    tool_policy: ToolPolicy | None = None
    tool_timeout: float | None = None  # seconds a tool_permission gate waits
    # A room's agent: its name (on its assistant messages), files written into its
    # workspace (relative path -> content), its first prompt (the room context) and
    # prompts queued after it (create-app's "/create-app ..." for a room's coder).
    agent_name: str | None = None
    files: Mapping[str, bytes] = attrs.field(factory=dict)
    prompt: str | None = None
    follow_ups: tuple[str, ...] = ()
    # Run once the sandbox is made and its workspace written, before the agent starts
    # (a repository cloned into it); an exception fails the session. Not restored
    # after a restart (a re-attached sandbox was prepared already).
    prepare: Callable[[Sandbox], Awaitable[None]] | None = None
    # Run once a non-freeform project is set up, with its setup choice (its GitHub
    # repository made); what it did goes into the log. A failure is logged and the
    # session goes on (reference 8.1 step 3).
    after_setup: Callable[[Sandbox, str, Mapping[str, Any]], Awaitable[str | None]] | None = None
    # Held: the first turn waits for Release (a turn-taking room schedules every turn).
    hold: bool = False
    # Which agent CLI: Claude Code, or Codex (its Responses endpoint and key).
    agent: str = "claude"
    openai_base_url: str | None = None
    # Started again after the server stopped: its first prompt was given long ago (a
    # restored session waits for the next one; its sandbox, if any, is re-attached).
    restored: bool = False
    spent_usd: float = 0.0  # what it cost before (a restored session's budget goes on)


# -- commands ---------------------------------------------------------------------------


@attrs.frozen
class Iterate:
    request: str


@attrs.frozen
class Interrupt:
    pass


@attrs.frozen
class Cancel:
    pass


@attrs.frozen
class Delete:
    pass


@attrs.frozen
class GetSandbox:
    pass


@attrs.frozen
class Deliver:
    """A room message for this session's agent: shown on its stream as a
    ``user_prompt`` from ``sender``; with ``iterate``, also a turn of its own."""

    sender: str
    body: str
    iterate: bool = True


@attrs.frozen
class Finish:
    """End the session as complete (its room closed): stop the agent, remove the
    sandbox, say why."""

    reason: str


@attrs.frozen
class Release:
    """Give a held session its first turn."""


@attrs.frozen
class Busy:
    """Whether the agent has a turn running or queued (or is still starting)."""


# -- what the run task reports ----------------------------------------------------------


@attrs.frozen
class _Emit:
    event: ev.Event
    source: ev.Source


@attrs.frozen
class _Cost:
    amount: float
    total: float  # the meter's total when it was metered (it moves on meanwhile)


@attrs.frozen
class _TurnDone:
    success: bool
    claude_session_id: str | None
    cost_usd: float


@attrs.frozen
class Fail:
    """The session failed (its agent, or its sandbox's host): it says why in its
    stream and ends with status ``error``."""

    message: str


@attrs.frozen
class _Retell:
    """Try again to tell what the store refused."""


@attrs.frozen
class _CarryOver:
    """A gate the agent asked before the server restarted was answered: the answer
    goes to the agent as a turn of its own (``allow``: the tool call it may now make
    once without asking again)."""

    note: str
    prompt: str
    allow: tuple[str, str] | None = None


@attrs.frozen
class _AgentRestarting:
    """The agent process stopped while its sandbox lives: it is started again."""

    reason: str


@attrs.define(eq=False)
class SessionActor(Actor):
    config: SessionConfig
    store: Store
    provider: SandboxProvider
    registry: ActorRef
    gates: GateRegistry | None = None
    reattach: Sandbox | None = None  # a restored session's live sandbox

    status: str = "running"
    sandbox: Sandbox | None = None
    meter: CostMeter | TokenMeter = attrs.field(factory=CostMeter)
    _agent: ClaudeAgent | CodexAgent | None = None
    _run_scope: trio.CancelScope | None = None
    _prompts: trio.MemorySendChannel[str] | None = None
    _ended: bool = False
    _turns_pending: int = 1  # the first prompt, from the start
    _resume_id: str | None = None  # the agent's own session (thread) id, to resume
    _released: bool = False
    # events the store refused since it last took one, why, whether a turn's end was
    # among them, and whether the agent's turn is being stopped for it
    _refused: int = 0
    _refusal: str = ""
    _lost_turn_end: bool = False
    _stopping: bool = False
    _retelling: bool = False
    # tool calls a person allowed at a gate from before a restart: (tool, input key)
    _allowed_once: list[tuple[str, str]] = attrs.field(factory=list)

    mailbox_size = 256
    stop_timeout = 5.0

    def cleanup_timeout(self) -> float:
        return DESTROY_TIMEOUT + 15.0

    @property
    def path(self) -> str:
        return session_stream(self.config.session_id)

    # -- lifecycle ---------------------------------------------------------------------

    async def on_start(self) -> None:
        await self.store.create(self.path, CreateRequest(content_type=JSON))
        send, receive = trio.open_memory_channel[str](64)
        self._prompts = send
        if self.config.hold or self.reattach is not None:
            self._turns_pending = 0
        elif not self.config.restored:
            await self._emit(ev.UserPrompt(message=self._first_prompt()))
        for follow_up in self.config.follow_ups:
            send.send_nowait(follow_up)
            self._turns_pending += 1
        self.ctx.nursery.start_soon(self._run, receive)
        if self.reattach is not None and self.gates is not None:
            for gate in self.gates.pending(self.config.session_id):
                if gate.kind in ("tool_permission", "ask_user_question"):
                    self.ctx.nursery.start_soon(self._carry_over, gate)

    def _first_prompt(self) -> str:
        config = self.config
        return config.prompt or (
            config.description if config.freeform else f"/create-app {config.description}"
        )

    async def on_stop(self) -> None:
        await self._teardown()

    # -- commands ----------------------------------------------------------------------

    @answers_store_errors
    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, _Emit):
            await self._emit(msg.event, msg.source)
            if isinstance(msg.event, ev.SessionStart) and msg.source == "agent":
                await self._started(msg.event.session_id)
        elif isinstance(msg, _Cost):
            await self._cost(msg.amount, msg.total)
        elif isinstance(msg, _TurnDone):
            await self._turn_done(msg)
        elif isinstance(msg, _AgentRestarting):
            await self._agent_restarting(msg.reason)
        elif isinstance(msg, _Retell):
            if self._refused:
                await self._tell_refused()
        elif isinstance(msg, _CarryOver):
            if not self._ended:
                await self._emit(ev.Log(level="system", message=msg.note))
                if msg.allow is not None:
                    self._allowed_once.append(msg.allow)
                await self._queue(msg.prompt)
        elif isinstance(msg, Fail):
            await self._emit(ev.Log(level="error", message=f"Session failed: {msg.message}"))
            await self._end("error")
        elif isinstance(msg, Iterate):
            return await self._iterate(msg.request)
        elif isinstance(msg, Interrupt):
            if self._agent is not None:
                await self._interrupt(self._agent)
            await self._set_status("complete")
        elif isinstance(msg, Cancel):
            if not self._ended:
                await self._emit(ev.SessionEnd(success=False))
            await self._end("cancelled")
        elif isinstance(msg, GetSandbox):
            return self.sandbox
        elif isinstance(msg, Deliver):
            await self._deliver(msg)
        elif isinstance(msg, Release):
            if self._released or not self.config.hold:
                raise Refused("the session's first turn was already given")
            self._released = True
            await self._iterate(self._first_prompt())
        elif isinstance(msg, Busy):
            return not self._ended and self._turns_pending > 0
        elif isinstance(msg, Finish):
            if not self._ended:
                await self._emit(ev.Log(level="system", message=msg.reason))
                await self._end("complete")
        elif isinstance(msg, Delete):
            await self._end(self.status if self._ended else "cancelled")
        else:
            raise Refused(f"a session does not understand {type(msg).__name__}")
        return None

    async def _iterate(self, request: str) -> None:
        if self._ended or self._prompts is None:
            raise Refused("Container is not running")
        await self._emit(ev.UserPrompt(message=request))
        await self._queue(request)

    async def _deliver(self, msg: Deliver) -> None:
        if self._ended or self._prompts is None:
            raise Refused("Container is not running")
        await self._emit(ev.UserPrompt(message=msg.body, sender=msg.sender))
        if msg.iterate:
            await self._queue(f"Message from {msg.sender}:\n\n{msg.body}")

    async def _queue(self, prompt: str) -> None:
        assert self._prompts is not None
        try:
            self._prompts.send_nowait(prompt)
        except trio.WouldBlock:
            raise Refused("too many requests are queued for this session") from None
        self._turns_pending += 1
        await self._set_status("running")

    async def _started(self, agent_session_id: str) -> None:
        """The agent's own session (thread) id is recorded as soon as it is known, so
        that a restart in the middle of the first turn resumes the conversation too."""
        if not agent_session_id or agent_session_id == self._resume_id:
            return
        self._resume_id = agent_session_id
        await self.registry.ask(
            UpdateSession(self.config.session_id, {"lastCoderSessionId": agent_session_id})
        )

    async def _agent_restarting(self, reason: str) -> None:
        """The turn that was running is lost (a failed ``session_end`` for it, so that
        whoever waits on it goes on); prompts queued behind it are kept."""
        if self._ended:
            return
        queued = self._prompts.statistics().current_buffer_used if self._prompts else 0
        if self._turns_pending > queued:
            self._turns_pending = queued
            await self._emit(ev.SessionEnd(success=False))
        await self._emit(
            ev.Log(
                level="error",
                message=f"The agent process stopped ({reason}); it is started again and "
                "resumes its conversation",
            )
        )
        await self._set_status("running" if self._turns_pending else "complete")

    async def _cost(self, amount: float, total: float | None = None) -> None:
        total = self.meter.total if total is None else total
        try:
            await self._emit(ev.CostUpdate(cost_usd=round(amount, 6), total_usd=round(total, 6)))
        finally:  # a spent budget ends the session even when the store refuses writes
            await self._check_budget()

    async def _check_budget(self) -> None:
        if self.meter.total <= self.config.budget_usd or self._ended:
            return
        spent = ev.BudgetExceeded(
            budget_usd=self.config.budget_usd, spent_usd=round(self.meter.total, 6)
        )
        try:
            await self._emit(spent)
        finally:
            await self._end("error")

    async def _turn_done(self, msg: _TurnDone) -> None:
        self._turns_pending = max(0, self._turns_pending - 1)
        if self._ended:
            return  # reported before a cancel, delete or failure that has the last word
        idle = "complete" if self._turns_pending == 0 else "running"
        update: dict[str, Any] = {
            "status": idle if msg.success else "error",
            "totalCostUsd": round(self.meter.total, 6),
        }
        if msg.claude_session_id:
            update["lastCoderSessionId"] = msg.claude_session_id
        self.status = update["status"]
        try:
            await self.registry.ask(UpdateSession(self.config.session_id, update))
        finally:
            if self.meter.total > self.config.budget_usd:
                await self._cost(0.0)

    async def _carry_over(self, gate: Gate) -> None:
        """A tool approval or a question the agent asked before the server restarted
        is still pending (re-issued from the stream): the process that asked is gone,
        so once a person answers, the answer is given to the resumed agent as its next
        turn. An approval lets the same call run once without asking again."""
        outcome = await gate.wait()
        if outcome.status != "resolved":
            return  # expired or cancelled: the agent never heard of it, nothing to say
        carried = carry_over(gate.kind, gate.request, outcome.value)
        if carried is not None:
            with contextlib.suppress(ActorStopped):
                await self._report(carried)

    # -- helpers -----------------------------------------------------------------------

    async def _emit(self, event: ev.Event, source: ev.Source = "server") -> None:
        """Append one event. One the store refuses (out of disk, a remote store gone)
        raises, and is counted: the agent's turn is stopped, since nothing it does
        could be watched, and the next write that succeeds says what was lost."""
        try:
            if self._refused:
                await self._tell_refused()
            await self._append([event], source)
        except (StreamError, UnicodeEncodeError) as exc:
            self._refused += 1
            self._refusal = str(exc)
            self._lost_turn_end = self._lost_turn_end or isinstance(event, ev.SessionEnd)
            agent = self._agent
            if agent is not None and self._turns_pending > 0 and not self._stopping:
                self._stopping = True
                self.ctx.nursery.start_soon(self._interrupt, agent)
            if not self._retelling:
                self._retelling = True
                self.ctx.nursery.start_soon(self._retell)
            raise

    async def _append(self, events: list[ev.Event], source: ev.Source) -> None:
        """The events as one append to the session's stream."""
        body = json.dumps([e.to_json(source) for e in events], separators=(",", ":")).encode()
        await self.store.append(self.path, AppendRequest(body=body, content_type=JSON))

    async def _retell(self) -> None:
        """Until the store takes writes again: what was lost is told then, even when
        the session has nothing more to say (it ended, say, on its budget)."""
        try:
            while self._refused:
                await trio.sleep(RETELL_INTERVAL)
                with contextlib.suppress(Refused):
                    await self.ctx.ref.ask(_Retell())
        except ActorStopped:
            pass
        finally:
            self._retelling = False

    async def _tell_refused(self) -> None:
        """After refused writes, first thing once the store takes them again: what was
        lost (and the end of a turn whose ``session_end`` was, for whoever waits on
        it), and the session's status again."""
        refused, lost_end = self._refused, self._lost_turn_end
        stopped = " and the agent's turn was stopped" if self._stopping else ""
        told: list[ev.Event] = [
            ev.Log(
                level="error",
                message=f"The event store refused {refused} event(s) of this session "
                f"({self._refusal}): they are lost{stopped}",
            )
        ]
        if lost_end:
            told.append(ev.SessionEnd(success=False))
        await self._append(told, "server")
        self._refused, self._lost_turn_end, self._stopping = 0, False, False
        await self._set_status(self.status, **({"ended": True} if self._ended else {}))

    async def _interrupt(self, agent: ClaudeAgent | CodexAgent) -> None:
        """Stop the agent's turn (its process lives on for the next one), bounded."""
        with trio.move_on_after(10):
            try:
                await agent.interrupt()
            except Exception as exc:  # a process already gone: nothing to stop
                logger.info("session %s: interrupt: %s", self.config.session_id, exc)

    async def _set_status(self, status: str, **more: Any) -> None:
        self.status = status
        update = {"status": status, **more}
        await self.registry.ask(UpdateSession(self.config.session_id, update))

    async def _end(self, status: str) -> None:
        """The session is over: stop the agent, remove the sandbox, record why."""
        self._ended = True
        await self._teardown()
        await self._set_status(status, ended=True)  # its agent and sandbox are gone

    async def _teardown(self) -> None:
        if self._run_scope is not None:
            self._run_scope.cancel()
        if self._prompts is not None:
            self._prompts.close()
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None:
            with shielded(DESTROY_TIMEOUT):
                try:
                    await sandbox.destroy()
                except Exception:
                    logger.exception(
                        "session %s: destroying its sandbox failed", self.config.session_id
                    )

    # -- the run task ------------------------------------------------------------------

    async def _report(self, msg: object) -> None:
        await self.ctx.ref.send(msg)

    async def _run(self, prompts: trio.MemoryReceiveChannel[str]) -> None:
        with trio.CancelScope() as self._run_scope:
            try:
                await self._provision_and_drive(prompts)
            except ActorStopped:
                return
            except Exception as exc:
                logger.exception("session %s failed", self.config.session_id)
                try:
                    await self._report(Fail(str(exc) or type(exc).__name__))
                except ActorStopped:
                    pass

    async def _can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        """The SDK's permission callback: the session's policy, then a person at a
        ``tool_permission`` gate; an expired or cancelled gate is a denial."""
        if tool_name == "AskUserQuestion":
            return await self._ask_user(tool_input, context)
        tool_use_id = context.tool_use_id or f"tool-{tool_name}"
        refusal = await self._tool_refusal(tool_name, tool_input, tool_use_id)
        if refusal is None:
            return PermissionResultAllow()
        return PermissionResultDeny(message=refusal)

    async def _tool_refusal(
        self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str
    ) -> str | None:
        """None when the tool call may run, else why not (the policy, or a person at
        a ``tool_permission`` gate that denied it, expired or was cancelled)."""
        policy = self.config.tool_policy
        assert policy is not None
        assert self.gates is not None
        decision = policy.decide(tool_name)
        if decision == "allow":
            return None
        if decision == "deny":
            return f"{tool_name} is not allowed in this session"
        allowed = (tool_name, _input_key(tool_input))
        if allowed in self._allowed_once:  # allowed at a gate from before a restart
            self._allowed_once.remove(allowed)
            return None
        gate = await self.gates.open_tool_permission(
            self.config.session_id,
            tool_name,
            tool_input,
            tool_use_id=tool_use_id,
            timeout=self.config.tool_timeout,
        )
        outcome = await gate.wait()
        if outcome.allowed:
            return None
        why = "a person denied it" if outcome.status == "resolved" else f"it {outcome.status}"
        return f"{tool_name} was not run: {why}"

    async def _codex_can_use(
        self, tool_name: str, tool_input: dict[str, Any], item_id: str
    ) -> bool:
        return await self._tool_refusal(tool_name, tool_input, item_id) is None

    async def _ask_user(
        self, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        """The agent's question waits at an ``ask_user_question`` gate (the question is
        already in the stream, from the agent's message); the answer goes back as the
        tool's pre-filled input, with no call-back from inside the sandbox."""
        assert self.gates is not None
        tool_use_id = context.tool_use_id or "question"
        gate = await self.gates.open(
            self.config.session_id,
            "ask_user_question",
            f"ask_user_question:{tool_use_id}",
            request={"toolUseId": tool_use_id, "questions": tool_input.get("questions", [])},
        )
        outcome = await gate.wait()
        if outcome.status != "resolved" or not isinstance(outcome.value, dict):
            return PermissionResultDeny(
                message=f"The question was not answered: it {outcome.status}"
            )
        answers = outcome.value.get("answers", {})
        return PermissionResultAllow(updated_input={**tool_input, "answers": answers})

    async def _setup_choice(self) -> dict[str, Any] | None:
        """Wait at the infra_config gate; None when it was cancelled or expired (then
        nothing is provisioned: the reference fell back to 'local' and went on)."""
        assert self.gates is not None
        config = self.config
        restored = self.gates.get(config.session_id, "infra_config")
        if config.restored and restored is not None and restored.pending:
            gate = restored  # asked before the server restarted: still waiting
        else:
            gate = await self.gates.open(
                config.session_id,
                "infra_config",
                "infra_config",
                announce=ev.InfraConfigPrompt(
                    projectName=config.project_name, runtime=self.provider.runtime
                ),
            )
        outcome = await gate.wait()
        if outcome.status != "resolved" or not isinstance(outcome.value, dict):
            return None
        return dict(outcome.value)

    async def _provision_and_drive(self, prompts: trio.MemoryReceiveChannel[str]) -> None:
        config = self.config
        if self.reattach is not None:
            sandbox = self.sandbox = self.reattach
            await self._report(
                _Emit(
                    ev.Log(
                        level="system",
                        message="Re-attached to its sandbox after a server restart; the agent "
                        "resumes its conversation with the next message",
                    ),
                    "server",
                )
            )
            try:
                prompt = await prompts.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            await self._drive(sandbox, prompt, prompts)
            return
        runtime = self.provider.runtime
        infra_env: dict[str, str] = {}
        choice: dict[str, Any] = {}
        if config.ask_infra and not config.freeform and self.gates is not None:
            choice = await self._setup_choice() or {}
            if not choice:
                await self._report(
                    _Emit(
                        ev.Log(level="system", message="No setup choice: nothing was provisioned"),
                        "server",
                    )
                )
                await self._report(Cancel())
                return
            infra_env = _infra_env(choice)
            await self._report(
                _Emit(
                    ev.Log(
                        level="system",
                        message=f"Infrastructure confirmed: {choice.get('mode', 'local')}",
                    ),
                    "server",
                )
            )
        await self._report(
            _Emit(ev.Log(level="build", message=f"Creating {runtime} sandbox..."), "server")
        )
        spec = SandboxSpec(
            session_id=config.session_id,
            project_name=config.project_name,
            env={**config.agent_env, **infra_env},
            network=config.network,  # type: ignore[arg-type]
        )
        # Shielded: a sandbox made is a sandbox recorded, so teardown can remove it.
        with trio.CancelScope(shield=True):
            sandbox = await self.provider.create(spec)
            if self._ended:  # cancelled or deleted while it was being made
                with trio.move_on_after(DESTROY_TIMEOUT):
                    await sandbox.destroy()
                return
            self.sandbox = sandbox
        await trio.lowlevel.checkpoint()
        await self._report(
            _Emit(ev.Log(level="system", message=f"Sandbox ready ({runtime})"), "server")
        )
        await self.registry.ask(
            UpdateSession(config.session_id, {"sandboxProjectDir": sandbox.workdir})
        )
        if not config.freeform:
            await workspace.prepare(sandbox, config.project_name, config.description)
            await self._report(_Emit(ev.Log(level="system", message="Project ready"), "server"))
            if config.after_setup is not None:
                await self._after_setup(config.after_setup, sandbox, choice)
        await workspace.write_files(sandbox, config.files)
        if config.prepare is not None:
            await config.prepare(sandbox)
        # a held session's first turn is the first prompt it is given (Release)
        if config.hold:
            try:
                prompt = await prompts.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return  # ended before its first turn
        else:
            prompt = self._first_prompt()
        await self._drive(sandbox, prompt, prompts)

    async def _after_setup(
        self,
        after_setup: Callable[[Sandbox, str, Mapping[str, Any]], Awaitable[str | None]],
        sandbox: Sandbox,
        choice: Mapping[str, Any],
    ) -> None:
        try:
            said = await after_setup(sandbox, self.config.project_name, choice)
        except ActorStopped:
            raise
        except Exception as exc:
            logger.warning("session %s: after setup: %r", self.config.session_id, exc)
            failed = ev.Log(level="error", message=f"Project setup failed: {exc}")
            await self._report(_Emit(failed, "server"))
            return
        if said:
            await self._report(_Emit(ev.Log(level="system", message=said), "server"))

    async def _drive(
        self, sandbox: Sandbox, prompt: str, prompts: trio.MemoryReceiveChannel[str]
    ) -> None:
        """Run the agent in ``sandbox``, and start it again (resuming its conversation)
        when its process stops while the sandbox lives: at most ``AGENT_RESTARTS``
        times in ``AGENT_RESTART_WINDOW`` seconds, then the session fails."""
        intensity = RestartIntensity(AGENT_RESTARTS, AGENT_RESTART_WINDOW)
        while True:
            try:
                await self._drive_once(sandbox, prompt, prompts)
                return
            except (ActorStopped, trio.Cancelled):
                raise
            except Exception as exc:
                if self._ended or prompts.statistics().open_send_channels == 0:
                    return
                reason = str(exc) or type(exc).__name__
                with trio.move_on_after(30):
                    alive = await sandbox.is_alive()
                if not alive:
                    raise SandboxError(f"the sandbox is gone ({reason})") from exc
                if intensity.exceeded():
                    raise RuntimeError(
                        f"the agent process stopped {AGENT_RESTARTS + 1} times within "
                        f"{AGENT_RESTART_WINDOW:g}s; last: {reason}"
                    ) from exc
                logger.warning("session %s: agent stopped: %s", self.config.session_id, reason)
                await self._report(_AgentRestarting(reason))
                if self._resume_id:
                    self.config = attrs.evolve(self.config, resume=self._resume_id)
                try:
                    prompt = await prompts.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return

    async def _drive_once(
        self, sandbox: Sandbox, prompt: str, prompts: trio.MemoryReceiveChannel[str]
    ) -> None:
        """Run the agent in ``sandbox``: ``prompt`` first, then each prompt queued."""
        config = self.config
        if config.agent == "codex":
            await self._drive_codex(sandbox, prompt, prompts)
            return
        tools = config.allowed_tools or (PRODUCTION_TOOLS if config.production else DEFAULT_TOOLS)
        if config.tool_policy is None or self.gates is None:
            options = ClaudeAgentOptions(
                system_prompt={"type": "preset", "preset": "claude_code"},
                model=config.model,
                allowed_tools=list(tools),
                permission_mode="bypassPermissions",
                cwd=sandbox.workdir,
                resume=config.resume,
                setting_sources=["project"],
            )
        else:
            options = ClaudeAgentOptions(
                system_prompt={"type": "preset", "preset": "claude_code"},
                model=config.model,
                # nothing pre-approved: every call reaches can_use_tool, which applies
                # the policy (allowed ones return at once)
                permission_mode="default",
                can_use_tool=self._can_use_tool,
                cwd=sandbox.workdir,
                resume=config.resume,
                setting_sources=["project"],
            )

        async def emit(event: ev.Event) -> None:
            await self._report(_Emit(event, "agent"))

        async def on_cost(amount: float) -> None:
            await self._report(_Cost(amount, self.meter.total))

        await self._report(
            _Emit(ev.Log(level="build", message=f"Running: claude {prompt!r}"), "server")
        )
        meter = CostMeter()
        meter.total = config.spent_usd
        self.meter = meter
        agent = self._agent = ClaudeAgent(
            sandbox,
            options,
            emit,
            meter=meter,
            on_cost=on_cost,
            cli_path=sandbox.claude_path,
            agent_name=config.agent_name,
        )

        async def on_turn(result: ResultMessage) -> None:
            self._resume_id = agent.session_id or self._resume_id
            success = result.subtype == "success" and not result.is_error
            await self._report(_TurnDone(success, agent.session_id, self.meter.total))

        try:
            await agent.serve(prompt, prompts, on_turn)
        finally:
            self._agent = None
        if not self._ended:
            raise RuntimeError("the agent process ended unexpectedly")

    async def _drive_codex(
        self, sandbox: Sandbox, prompt: str, prompts: trio.MemoryReceiveChannel[str]
    ) -> None:
        """Codex (``codex app-server``) instead of Claude Code: the same events, its
        tool approvals through the session's policy, its tokens priced live."""
        config = self.config
        if sandbox.codex_path is None:
            raise RuntimeError("this sandbox has no Codex CLI (scripts/setup installs it)")
        if not config.openai_base_url:
            raise RuntimeError("no Responses API endpoint is configured for Codex")
        policy = config.tool_policy
        asks = policy is not None and not (
            policy.allow_all and policy.only is None and not policy.deny
        )
        meter = TokenMeter(total=config.spent_usd)
        self.meter = meter

        async def emit(event: ev.Event) -> None:
            await self._report(_Emit(event, "agent"))

        async def on_cost(amount: float) -> None:
            await self._report(_Cost(amount, meter.total))

        agent = CodexAgent(
            sandbox,
            emit,
            base_url=config.openai_base_url,
            api_key=config.agent_env.get("OPENAI_API_KEY", ""),
            cwd=sandbox.workdir,
            codex_home=await default_codex_home(sandbox),
            cli_path=sandbox.codex_path,
            agent_name=config.agent_name,
            resume=config.resume,
            can_use_tool=self._codex_can_use if asks and self.gates is not None else None,
            meter=meter,
            on_cost=on_cost,
        )
        self._agent = agent

        async def on_turn(turn: CodexTurn) -> None:
            self._resume_id = turn.thread_id or self._resume_id
            await self._report(_TurnDone(turn.success, turn.thread_id, meter.total))

        await self._report(
            _Emit(ev.Log(level="build", message=f"Running: codex {prompt!r}"), "server")
        )
        try:
            await agent.serve(prompt, prompts, on_turn)
        finally:
            self._agent = None
        if not self._ended:
            raise RuntimeError("the agent process ended unexpectedly")
