"""The Codex bridge: the pinned ``@openai/codex`` CLI running inside a sandbox as
``codex app-server``, driven over JSON-RPC on its stdin and stdout.

The protocol (0.169.0; ``codex app-server generate-json-schema`` prints it): one JSON
object per line, JSON-RPC 2.0 without the ``"jsonrpc"`` member. The client sends
``initialize`` then the ``initialized`` notification, ``thread/start`` (or
``thread/resume`` with a thread id), then one ``turn/start`` per prompt (``input``:
``[{"type": "text", "text": ...}]``); ``turn/interrupt`` stops a turn. The server
streams notifications (``thread/started``, ``turn/started``, ``item/started``,
``item/completed``, ``thread/tokenUsage/updated``, ``error``, ``turn/completed``, ...)
and, when its approval policy asks, sends requests of its own:
``item/commandExecution/requestApproval`` and ``item/fileChange/requestApproval``,
answered ``{"decision": "accept" | "decline"}`` (declined, the model is told and the
turn goes on).

:class:`CodexAgent` runs one such process in a session's sandbox
(``sandbox.spawn([cli_path, "app-server", *offline flags])``, with ``CODEX_HOME`` and
``OPENAI_API_KEY``) and turns what it says into session events through
:class:`~orchestrator.bridges.codex_events.CodexEventMapper`. Codex's own sandbox is
off (``danger-full-access``): the session's sandbox is the isolation. With
``can_use_tool`` the approval policy is ``untrusted`` (with Codex's sandbox off, every
command, ``ls`` included, and every file change is asked for), without it ``never``.
Other server requests are refused (``-32601``), MCP elicitations declined.
Codex reports tokens, not dollars: a :class:`~orchestrator.bridges.prices.TokenMeter`
prices them live.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
import trio

from .. import events as ev
from ..sandboxes.base import Process, Sandbox, SandboxError
from ._lines import JsonLines, parse_object_line
from .codex_cli import CODEX_VERSION, OFFLINE_MODEL, offline_args
from .codex_events import CodexEventMapper, TurnOutcome, unwrap_shell
from .prices import TokenMeter, TokenUsage

__all__ = [
    "CONFIG_TOML",
    "SANDBOX_CLI_PATH",
    "CodexAgent",
    "CodexError",
    "CodexExited",
    "CodexTurn",
    "JsonRpcConnection",
    "JsonRpcError",
    "build_argv",
    "default_codex_home",
]

logger = logging.getLogger(__name__)

SANDBOX_CLI_PATH: Final = "/opt/codex/codex"
PROVIDER: Final = "orchestrator"
EXIT_GRACE: Final = 5.0  # after stdin closes, before the process is killed
STDERR_KEEP: Final = 40  # lines of stderr kept for the error of a process that died
# Notifications the bridge has no use for (deltas repeat what item/completed says).
QUIET_NOTIFICATIONS: Final = (
    "item/agentMessage/delta",
    "item/reasoning/summaryTextDelta",
    "item/reasoning/summaryPartAdded",
    "item/reasoning/textDelta",
    "item/commandExecution/outputDelta",
    "item/fileChange/outputDelta",
    "item/plan/delta",
    "account/rateLimits/updated",
    "remoteControl/status/changed",
)

# CODEX_HOME/config.toml. The approval policy goes with each thread request instead:
# 0.169.0 exits on approval_policy = "untrusted" in config.toml, not in thread/start.
CONFIG_TOML: Final = (
    b"# Written by agent-orchestrator: Codex runs inside the session's sandbox,\n"
    b"# which is the isolation; tool approvals are the session's.\n"
    b'sandbox_mode = "danger-full-access"\n'
)

EventSink = Callable[[ev.Event], Awaitable[None]]
ToolPermission = Callable[[str, dict[str, Any], str], Awaitable[bool]]


class CodexError(RuntimeError):
    """The Codex process failed: it died, or broke the protocol."""


class CodexExited(CodexError):
    """The Codex process ended while it had work to do."""


class JsonRpcError(CodexError):
    """The server answered a request with an error."""

    def __init__(self, method: str, code: int | None, message: str, data: object = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


@attrs.frozen
class CodexTurn:
    """How one turn went. ``usage``: the turn's tokens (``input_tokens`` including
    ``cached_input_tokens``, ``output_tokens``); ``status``: Codex's (``completed``,
    ``interrupted``, ``failed``)."""

    success: bool
    thread_id: str | None
    cost_usd: float
    usage: dict[str, int]
    error: str | None
    status: str = "completed"


def build_argv(cli_path: str, base_url: str, *, model: str = OFFLINE_MODEL) -> list[str]:
    """``codex app-server`` pointed at the Responses API at ``base_url`` (Codex posts
    to ``{base_url}/responses``) and nowhere else."""
    return [cli_path, "app-server", *offline_args(base_url, provider=PROVIDER, model=model)]


async def default_codex_home(sandbox: Sandbox) -> str:
    """``$HOME/.codex`` of the sandbox's agent user: writable, kept with the sandbox,
    and (in Docker) not under ``/tmp``."""
    result = await sandbox.exec(["printenv", "HOME"], timeout=30)
    home = result.stdout.decode(errors="replace").strip()
    if not result.ok or not home.startswith("/"):
        raise SandboxError(f"the sandbox's agent has no HOME (exit {result.exit_code})")
    return posixpath.join(home, ".codex")


# -- JSON-RPC ----------------------------------------------------------------------------


def _parse_line(line: bytes) -> dict[str, Any] | None:
    return parse_object_line(line, who="Codex", corrupt=CodexError)


def _JsonLines(chunks: AsyncIterator[bytes]) -> JsonLines:
    return JsonLines(chunks, _parse_line, CodexError)


@attrs.define
class _Pending:
    done: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


NotificationHandler = Callable[[dict[str, Any]], Awaitable[None]]
RequestHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class _MethodNotFound(Exception):
    """Raised by a request handler for a method it does not serve."""


class JsonRpcConnection:
    """JSON-RPC over a process's stdin and stdout, one JSON object per line.

    :meth:`run` is the one reader: responses go to the :meth:`request` waiting for
    them, notifications to ``on_notification`` (awaited, in order), requests from the
    server to ``on_request`` in a task of their own in ``nursery`` (an approval may
    wait for a person while the stream goes on); its return value is the result, a
    raise the error (``-32603``; ``-32601`` for a method it does not know). Once
    :meth:`close` d, every waiting request fails.
    """

    def __init__(
        self,
        process: Process,
        nursery: trio.Nursery,
        on_notification: NotificationHandler,
        on_request: RequestHandler,
    ) -> None:
        self._process = process
        self._nursery = nursery
        self._on_notification = on_notification
        self._on_request = on_request
        self._next_id = 0
        self._pending: dict[int, tuple[str, _Pending]] = {}
        self._answering: dict[int | str, trio.CancelScope] = {}
        self._write_lock = trio.Lock()
        self._closed: BaseException | None = None

    async def _send(self, message: Mapping[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n"
        async with self._write_lock:
            try:
                await self._process.write(data.encode("utf-8"))
            except SandboxError as exc:
                raise CodexError(f"Codex no longer reads its input: {exc}") from exc

    async def request(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send a request and wait for its result; raises JsonRpcError for an error
        answer, CodexError when the stream ends first."""
        if self._closed is not None:
            raise self._closed
        request_id = self._next_id
        self._next_id += 1
        slot = _Pending()
        self._pending[request_id] = (method, slot)
        try:
            await self._send({"id": request_id, "method": method, "params": dict(params or {})})
            await slot.done.wait()
        finally:
            self._pending.pop(request_id, None)
        if slot.error is not None:
            raise slot.error
        return slot.result

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = dict(params)
        await self._send(message)

    async def run(self, messages: AsyncIterator[dict[str, Any]]) -> None:
        """Read until the stream ends; then :meth:`close` is the caller's (with the
        reason it finds). When reading raises, what waits fails with that."""
        try:
            async for message in messages:
                await self._dispatch(message)
        except BaseException as exc:
            self.close(exc)
            raise

    def close(self, reason: BaseException) -> None:
        """No more answers: every request waiting, and every one made later, fails
        with ``reason``."""
        if self._closed is None:
            self._closed = reason
        for _method, slot in list(self._pending.values()):
            if not slot.done.is_set():
                slot.error = reason
                slot.done.set()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        has_id = "id" in message and isinstance(message["id"], int | str)
        if isinstance(method, str):
            params = message.get("params")
            if not isinstance(params, dict):
                params = {}
            if has_id:
                self._nursery.start_soon(self._answer, message["id"], method, params)
            else:
                await self._on_notification({"method": method, "params": params})
            return
        if not has_id:
            logger.debug("codex sent a message that is none of ours: %r", message)
            return
        found = self._pending.get(message["id"]) if isinstance(message["id"], int) else None
        if found is None:
            logger.debug("codex answered a request nobody waits for: %r", message)
            return
        name, slot = found
        error = message.get("error")
        if error is not None:
            data = error if isinstance(error, dict) else {"message": str(error)}
            code = data.get("code")
            slot.error = JsonRpcError(
                name,
                code if isinstance(code, int) else None,
                str(data.get("message", "error")),
                data.get("data"),
            )
        else:
            slot.result = message.get("result")
        slot.done.set()

    def cancel_answer(self, request_id: object) -> None:
        """Stop answering the server's request ``request_id`` (it was settled another
        way, e.g. its turn was interrupted): its handler is cancelled, nothing is sent."""
        if isinstance(request_id, int | str):
            scope = self._answering.get(request_id)
            if scope is not None:
                scope.cancel()

    async def _answer(self, request_id: int | str, method: str, params: dict[str, Any]) -> None:
        reply: dict[str, Any] | None = None
        with trio.CancelScope() as scope:
            self._answering[request_id] = scope
            try:
                reply = {"id": request_id, "result": await self._on_request(method, params)}
            except _MethodNotFound:
                reply = {
                    "id": request_id,
                    "error": {"code": -32601, "message": f"{method} is not supported"},
                }
            except Exception as exc:  # the handler failed: the server gets an error
                logger.exception("codex: answering %s", method)
                reply = {"id": request_id, "error": {"code": -32603, "message": str(exc)}}
            finally:
                self._answering.pop(request_id, None)
        if reply is None:  # cancelled by cancel_answer
            return
        try:
            await self._send(reply)
        except CodexError as exc:  # the process is gone; the reader reports that
            logger.debug("codex: could not answer %s: %s", method, exc)


# -- the agent ---------------------------------------------------------------------------


class CodexAgent:
    """One ``codex app-server`` process in a sandbox serving many turns of one thread.

    :meth:`serve` starts the process, starts (or, with ``resume``, resumes) the thread,
    sends ``first`` then each prompt of ``prompts`` once the previous turn completed,
    hands every event to ``emit`` (in order, awaited) and every turn's outcome to
    ``on_turn``; it returns when ``prompts`` is closed (the process is stopped, within
    a bound) and raises CodexError when the process dies or breaks the protocol.

    ``base_url``: the Responses API base the model provider uses (Codex posts to
    ``{base_url}/responses``; the scripted model server's ``openai_base_url``).
    ``codex_home``: Codex's state directory inside the sandbox, writable by the agent,
    best not under ``/tmp`` (Codex makes no helper aliases there, and its own sandbox
    would fail); its threads live there: a resume needs the same one.
    ``can_use_tool(tool_name, tool_input, item_id)``: asked for each command (tool
    ``Bash``, input ``{"command"}``) and file change (tool ``Edit``, input
    ``{"changes"}``); True runs it. ``meter``: shared with a resumed agent, a thread's
    tokens are never charged twice; ``on_cost`` gets each increment.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        emit: EventSink,
        *,
        base_url: str,
        api_key: str,
        cwd: str,
        codex_home: str,
        cli_path: str = SANDBOX_CLI_PATH,
        model: str = OFFLINE_MODEL,
        env: Mapping[str, str] | None = None,
        agent_name: str | None = None,
        resume: str | None = None,
        can_use_tool: ToolPermission | None = None,
        meter: TokenMeter | None = None,
        on_cost: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if not codex_home.startswith("/"):
            raise ValueError(f"codex_home {codex_home!r}: an absolute path, please")
        if codex_home == "/tmp" or codex_home.startswith("/tmp/"):
            # Codex then makes no helper aliases (apply_patch on PATH); with its own
            # sandbox on (not here) it would not run commands at all.
            logger.warning("codex: CODEX_HOME %s is under /tmp: Codex works degraded", codex_home)
        self._sandbox = sandbox
        self._emit = emit
        self.model = model
        self.cwd = cwd
        self.codex_home = codex_home
        self.argv = build_argv(cli_path, base_url, model=model)
        self._env = {
            "NO_COLOR": "1",
            **(env or {}),
            "CODEX_HOME": codex_home,
            "OPENAI_API_KEY": api_key,
        }
        self._resume = resume
        self._can_use_tool = can_use_tool
        self._meter = meter or TokenMeter()
        self._on_cost = on_cost
        self._mapper = CodexEventMapper(agent=agent_name, cwd=cwd)
        self._rpc: JsonRpcConnection | None = None
        self._process: Process | None = None
        self._outcomes_send, self._outcomes = trio.open_memory_channel[TurnOutcome](16)
        self._live_turns: set[str] = set()
        self._turn_usage = TokenUsage()
        self._stopping = False
        self._stderr: deque[str] = deque(maxlen=STDERR_KEEP)
        self._stderr_done = trio.Event()
        self._turn_id: str | None = None  # the running turn's
        self._starting_turn = False
        self._interrupt_wanted = False
        self._turn_cost = 0.0
        self._served = False

    @property
    def thread_id(self) -> str | None:
        return self._mapper.thread_id

    @property
    def meter(self) -> TokenMeter:
        return self._meter

    @property
    def approval_policy(self) -> str:
        return "never" if self._can_use_tool is None else "untrusted"

    # -- serving ---------------------------------------------------------------------

    async def serve(
        self,
        first: str,
        prompts: trio.MemoryReceiveChannel[str],
        on_turn: Callable[[CodexTurn], Awaitable[None]],
    ) -> None:
        if self._served:
            raise RuntimeError("an agent serves once; make a new one (resume=thread_id)")
        self._served = True
        await self._sandbox.write_file(f"{self.codex_home}/config.toml", CONFIG_TOML)
        process = self._process = await self._sandbox.spawn(self.argv, cwd=self.cwd, env=self._env)
        self._stopping = False
        self._stderr_done = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                rpc = self._rpc = JsonRpcConnection(
                    process, nursery, self._on_notification, self._on_request
                )
                reader_done = trio.Event()
                nursery.start_soon(self._read, process, rpc, reader_done)
                nursery.start_soon(self._drain_stderr, process)
                await self._open_thread(rpc)
                prompt = first
                while True:
                    await on_turn(await self._turn(rpc, prompt))
                    try:
                        prompt = await prompts.receive()
                    except (trio.EndOfChannel, trio.ClosedResourceError):
                        break
                # stdin closed: app-server exits by itself; killed past the grace
                self._stopping = True
                try:
                    await process.close_stdin()
                except SandboxError:
                    pass
                with trio.move_on_after(EXIT_GRACE):
                    await reader_done.wait()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _the_error(group) from None
        finally:
            self._stopping = True
            self._rpc = None
            self._process = None
            with trio.CancelScope(shield=True):
                try:
                    await process.kill()
                except SandboxError as exc:
                    logger.warning("codex: %s", exc)

    async def _read(self, process: Process, rpc: JsonRpcConnection, done: trio.Event) -> None:
        try:
            await rpc.run(_JsonLines(process.stdout()))
        finally:
            done.set()
        if self._stopping:
            rpc.close(CodexError("the Codex process was stopped"))
            return
        code: int | None = None
        with trio.move_on_after(2.0):
            code = await process.wait()
        with trio.move_on_after(0.5):  # its last words on stderr
            await self._stderr_done.wait()
        said = "\n".join(self._stderr)
        error = CodexExited(
            f"codex app-server exited (exit code {code})" + (f": {said}" if said else "")
        )
        rpc.close(error)  # what waits for an answer fails with the same error
        raise error

    async def _drain_stderr(self, process: Process) -> None:
        pending = b""
        try:
            async for chunk in process.stderr():
                *lines, pending = (pending + chunk).split(b"\n")
                pending = pending[-4096:]
                for line in lines:
                    text = line.decode(errors="replace").rstrip()
                    if text:
                        logger.debug("codex stderr: %s", text)
                        self._stderr.append(text[:2000])
        finally:
            if pending.strip():
                self._stderr.append(pending.decode(errors="replace").rstrip())
            self._stderr_done.set()

    async def _open_thread(self, rpc: JsonRpcConnection) -> None:
        await rpc.request(
            "initialize",
            {
                "clientInfo": {
                    "name": "agent-orchestrator",
                    "title": "agent-orchestrator",
                    "version": CODEX_VERSION,
                },
                "capabilities": {
                    "experimentalApi": False,
                    "requestAttestation": False,
                    "optOutNotificationMethods": list(QUIET_NOTIFICATIONS),
                },
            },
        )
        await rpc.notify("initialized")
        settings: dict[str, Any] = {
            "model": self.model,
            "cwd": self.cwd,
            "approvalPolicy": self.approval_policy,
            "sandbox": "danger-full-access",
        }
        if self._resume is not None:
            result = await rpc.request(
                "thread/resume", {"threadId": self._resume, "excludeTurns": True, **settings}
            )
        else:
            result = await rpc.request("thread/start", settings)
        thread = result.get("thread") if isinstance(result, dict) else None
        self._mapper.on_thread(thread)
        if self._mapper.thread_id is None:
            raise CodexError(f"Codex answered the thread request without a thread: {result!r}")

    async def _turn(self, rpc: JsonRpcConnection, prompt: str) -> CodexTurn:
        thread_id = self._mapper.thread_id
        assert thread_id is not None
        self._meter.take_turn()  # what came between turns belongs to none
        self._turn_usage = TokenUsage()
        self._starting_turn, self._interrupt_wanted = True, False
        try:
            result = await rpc.request(
                "turn/start",
                {
                    "threadId": thread_id,
                    "input": [{"type": "text", "text": prompt, "text_elements": []}],
                },
            )
        finally:
            self._starting_turn = False
        turn = result.get("turn") if isinstance(result, dict) else None
        turn_id = turn.get("id") if isinstance(turn, dict) else None
        try:
            if isinstance(turn_id, str):
                self._live_turns.add(turn_id)
                self._turn_id = turn_id
                if self._interrupt_wanted:
                    await self.interrupt()
            while True:
                outcome = await self._outcomes.receive()
                if turn_id is None or outcome.turn_id in (None, turn_id):
                    break
        finally:
            self._turn_id = None
        return CodexTurn(
            success=outcome.success,
            thread_id=thread_id,
            cost_usd=round(self._turn_cost, 6),
            usage=self._turn_usage.to_json(),
            error=outcome.error,
            status=outcome.status,
        )

    async def interrupt(self) -> None:
        """Stop the running turn (it ends ``interrupted``, its ``CodexTurn`` not a
        success); nothing when none runs. A turn still starting is stopped once Codex
        has said which it is."""
        rpc, thread_id, turn_id = self._rpc, self._mapper.thread_id, self._turn_id
        if rpc is None or thread_id is None:
            return
        if turn_id is None:
            self._interrupt_wanted = self._starting_turn
            return
        try:
            await rpc.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
        except JsonRpcError as exc:  # e.g. it ended meanwhile
            logger.debug("codex: %s", exc)

    # -- what the server says --------------------------------------------------------

    async def _on_notification(self, message: dict[str, Any]) -> None:
        method = message["method"]
        params: dict[str, Any] = message["params"]
        if method == "turn/started":
            turn = params.get("turn")
            turn_id = turn.get("id") if isinstance(turn, dict) else None
            if isinstance(turn_id, str):
                self._live_turns.add(turn_id)
        elif method == "thread/tokenUsage/updated":
            await self._meter_usage(params)
        elif method == "serverRequest/resolved" and self._rpc is not None:
            # settled without us (its turn was interrupted): the question is moot
            self._rpc.cancel_answer(params.get("requestId"))
        events = self._mapper.map(message)
        for event in events:
            if isinstance(event, ev.SessionEnd):
                self._turn_cost = self._meter.take_turn()
                event = attrs.evolve(event, cost_usd=round(self._turn_cost, 6))
            await self._emit(event)
        if method == "turn/completed" and any(isinstance(e, ev.SessionEnd) for e in events):
            assert self._mapper.outcome is not None
            await self._outcomes_send.send(self._mapper.outcome)

    async def _meter_usage(self, params: dict[str, Any]) -> None:
        thread_id = params.get("threadId")
        usage = params.get("tokenUsage")
        total = usage.get("total") if isinstance(usage, dict) else None
        if not isinstance(thread_id, str) or not isinstance(total, dict):
            return
        if params.get("turnId") not in self._live_turns:
            # a resumed thread's total so far: paid for by the process that ran it
            self._meter.baseline(thread_id, total)
            return
        before = self._meter.seen(thread_id) or TokenUsage()
        cost = self._meter.on_total(thread_id, self.model, total)
        added = TokenUsage.from_wire(total).minus(before)
        if added is not None:
            self._turn_usage = self._turn_usage.plus(added)
        if cost > 0 and self._on_cost is not None:
            await self._on_cost(cost)

    async def _on_request(self, method: str, params: dict[str, Any]) -> Any:
        if method == "item/commandExecution/requestApproval":
            item_id = str(params.get("itemId") or params.get("approvalId") or "")
            known = self._mapper.tool_input(item_id)
            if known is None:
                command = params.get("command")
                known = (
                    "Bash",
                    {"command": unwrap_shell(command if isinstance(command, str) else "")},
                )
            return {"decision": await self._decide(*known, item_id)}
        if method == "item/fileChange/requestApproval":
            item_id = str(params.get("itemId") or "")
            known = self._mapper.tool_input(item_id) or ("Edit", {"changes": []})
            return {"decision": await self._decide(*known, item_id)}
        if method == "mcpServer/elicitation/request":
            return {"action": "decline", "content": None, "_meta": None}
        raise _MethodNotFound(method)

    async def _decide(self, tool_name: str, tool_input: dict[str, Any], item_id: str) -> str:
        if self._can_use_tool is None:
            return "accept"
        try:
            allowed = await self._can_use_tool(tool_name, tool_input, item_id)
        except Exception:
            logger.exception("codex: the permission callback failed; declined")
            return "decline"
        return "accept" if allowed else "decline"


def _the_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error worth raising from the nursery's group: the process's exit (the
    other tasks' errors follow from it), else a lone error, else the group."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    exited = [e for e in leaves if isinstance(e, CodexExited)]
    if exited:
        return exited[0]
    errors = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if len(errors) == 1 and isinstance(errors[0], Exception):
        return errors[0]
    return group
