"""The embedded library: ``async with Orchestrator(settings) as orch``.

It owns the stream store, the actor system (the registry and one SessionActor per live
session), the sandbox provider and the token signer. The HTTP API is a thin layer over
the same object.

    async with Orchestrator(Settings(sandbox="local")) as orch:
        session = await orch.create_session("say hello", freeform=True)
        async for item in session.events():
            print(item.event)
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, aclosing
from functools import partial
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Self

import attrs
import claude_agent_sdk
import trio

from actors import ActorRef, ActorStopped, ActorSystem, Refused
from transport import AppendRequest, DiskStore, MemoryStore, RemoteStore, Store, StreamError

from . import events as ev
from .api._limits import admission_refusal
from .bridges.codex_cli import codex_binary
from .config import Settings
from .errors import StoreUnavailable
from .gates import GateRegistry, ToolPolicy, open_gate_supervisor
from .rooms import actor as rooms
from .rooms.actor import RoomConfig, RoomRouterActor, room_stream
from .rooms.roles import (
    ROLE_SKILL_PATH,
    ROOM_MESSAGING_SKILL_PATH,
    Role,
    build_room_context,
    resolve_role,
    room_files,
)
from .rooms.stuck import StuckPolicy
from .sandboxes import MultiDockerProvider, make_provider
from .sandboxes.base import Sandbox, SandboxProvider, validate_name
from .sessions.actor import (
    PRODUCTION_TOOLS,
    Cancel,
    Delete,
    Fail,
    GetSandbox,
    Interrupt,
    Iterate,
    SessionActor,
    SessionConfig,
)
from .sessions.actor import session_stream as session_stream
from .sessions.hosted import HookEvent, HostedSessionActor
from .sessions.keys import KeyStore
from .sessions.registry import (
    GetRoom,
    GetSession,
    ListRooms,
    ListSessions,
    LookupTranscript,
    MapTranscript,
    RegisterRoom,
    RegisterSession,
    RegistryActor,
    RemoveSession,
    UpdateRoom,
    UpdateSession,
)
from .streams import EventItem, read_events, split_position
from .tokens import Purpose, TokenSigner, load_or_create_secret

__all__ = [
    "EventItem",
    "Orchestrator",
    "OrchestratorError",
    "Room",
    "Session",
    "bundled_claude_cli",
    "read_events",
    "split_position",
]

logger = logging.getLogger(__name__)

TEXT_LIMIT = 10_000
SHORT_LIMIT = 500
KEY_LIMIT = 1_000
#: A participant's name: what other agents write after ``@``.
PARTICIPANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
JSON = "application/json"
AGENTS = ("claude", "codex")
OPENAI_BASE_URL = "https://api.openai.com/v1"


NewRepository = Callable[[Sandbox, str, Mapping[str, Any]], Awaitable[str | None]]


class OrchestratorError(Exception):
    """A request the orchestrator refuses; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


CUT_TURN = (
    "The server restarted during this turn and the agent's call was lost; "
    "it resumes its conversation with the next message"
)


def bundled_claude_cli() -> Path:
    """The Claude Code binary bundled in the pinned claude-agent-sdk."""
    return Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"


class Session:
    """A handle on one session (cheap; the state lives in its actor and stream)."""

    def __init__(self, orchestrator: Orchestrator, session_id: str) -> None:
        self._orch = orchestrator
        self.id = session_id

    def __repr__(self) -> str:
        return f"<Session {self.id}>"

    @property
    def token(self) -> str:
        return self._orch.signer.token(Purpose.SESSION, self.id)

    @property
    def stream(self) -> str:
        return session_stream(self.id)

    async def info(self) -> dict[str, Any]:
        found = await self._orch.session_info(self.id)
        if found is None:
            raise OrchestratorError("Session not found", 404)
        return found

    async def send(self, request: str) -> None:
        """Another turn (``iterate``)."""
        _check_text("request", request, TEXT_LIMIT)
        await self._orch._ask(self.id, Iterate(request))

    async def interrupt(self) -> None:
        await self._orch._ask(self.id, Interrupt(), missing_ok=True)

    async def cancel(self) -> None:
        await self._orch.gates.cancel_session(self.id)
        await self._orch._ask(self.id, Cancel(), missing_ok=True)

    async def delete(self) -> None:
        await self._orch.delete_session(self.id)

    def events(
        self, offset: str = "-1", *, follow: bool = True, wait: float = 20.0
    ) -> AsyncGenerator[EventItem, None]:
        """The session's events from ``offset``; with ``follow``, waits for more until
        the iteration is left (or the stream is deleted). Close it when you leave early:
        ``async with contextlib.aclosing(session.events()) as events: ...``."""
        return read_events(self._orch.store, self.stream, offset, follow=follow, wait=wait)

    async def wait_for(self, *types: str, offset: str = "-1") -> EventItem:
        """The first event (from ``offset``) whose type is one of ``types``."""
        async with aclosing(self.events(offset)) as items:
            async for item in items:
                if item.event.type in types:
                    return item
        raise OrchestratorError(f"the session's stream ended before {types}", 404)


class Room:
    """A handle on one room (cheap; the state lives in its router and stream)."""

    def __init__(self, orchestrator: Orchestrator, room_id: str) -> None:
        self._orch = orchestrator
        self.id = room_id

    def __repr__(self) -> str:
        return f"<Room {self.id}>"

    @property
    def stream(self) -> str:
        return room_stream(self.id)

    async def token(self) -> str:
        return await self._orch.room_token(self.id)

    async def state(self) -> dict[str, Any]:
        return await self._orch.room_state(self.id)

    def events(
        self, offset: str = "-1", *, follow: bool = True, wait: float = 20.0
    ) -> AsyncGenerator[EventItem, None]:
        """The room's stream (messages, joins, activity, its close) from ``offset``."""
        return read_events(self._orch.store, self.stream, offset, follow=follow, wait=wait)

    async def add_agent(
        self,
        name: str | None = None,
        *,
        role: str | None = None,
        initial_prompt: str | None = None,
        custom_skill: str | None = None,
        api_key: str | None = None,
        agent: str = "claude",
    ) -> Session:
        """A new agent in its own sandbox, told about the room (and its role);
        ``agent``: ``claude`` or ``codex``."""
        return await self._orch.add_room_agent(
            self.id,
            name,
            role=role,
            initial_prompt=initial_prompt,
            custom_skill=custom_skill,
            api_key=api_key,
            agent=agent,
        )

    async def add_session(
        self, session_id: str, name: str, *, initial_prompt: str | None = None
    ) -> None:
        """An existing session joins (it is not ended when the room closes)."""
        await self._orch.add_session_to_room(
            self.id, session_id, name, initial_prompt=initial_prompt
        )

    async def post(self, sender: str, body: str, *, to: str | None = None) -> None:
        """A person's message to the room (or to one participant)."""
        _check_text("from", sender, SHORT_LIMIT)
        _check_text("body", body, TEXT_LIMIT)
        if to is not None:
            _check_text("to", to, SHORT_LIMIT)
        await self._orch._room_ask(self.id, rooms.PostMessage(sender, body, to))

    async def deliver(self, sender: str, body: str, *, to: str | None = None) -> None:
        """Give the recipients a turn with the message, without writing it to the room."""
        _check_text("from", sender, SHORT_LIMIT)
        _check_text("body", body, TEXT_LIMIT)
        await self._orch._room_ask(self.id, rooms.DeliverOnly(sender, body, to))

    async def iterate(self, session_id: str, request: str) -> None:
        _check_text("request", request, TEXT_LIMIT)
        await self._orch._room_participant(self.id, session_id)
        await self._orch._room_ask(self.id, rooms.IterateParticipant(session_id, request))

    async def resume_fork(self) -> None:
        """A forked room goes on: its last message is given again to its recipients."""
        await self._orch._room_ask(self.id, rooms.ResumeFork())

    async def set_auto_iterate(self, enabled: bool) -> bool:
        found: bool = await self._orch._room_ask(self.id, rooms.SetAutoIterate(enabled))
        return found

    async def close(self, summary: str = "Room closed by user") -> bool:
        """Close the room (reason ``closed_by_human``); False if it was closed."""
        closed: bool = await self._orch._room_ask(
            self.id, rooms.Close("closed_by_human", "human", summary)
        )
        return closed

    async def wait_closed(self, timeout: float = math.inf) -> dict[str, Any]:
        """The room's ``room_closed`` record, once it is written."""
        with trio.fail_after(timeout):
            async with aclosing(self.events()) as items:
                async for item in items:
                    if item.event.type == "room_closed":
                        return item.raw
        raise OrchestratorError("the room's stream ended before it closed", 404)


def _server_id(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ident = f"orch-{uuid.uuid4().hex[:12]}"
        path.write_text(ident + "\n")
        return ident


def _check_text(field: str, value: object, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise OrchestratorError(f"Validation failed: {field} must be a non-empty string")
    if len(value) > limit:
        raise OrchestratorError(f"Validation failed: {field} is over {limit} characters")
    return value


class Orchestrator:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        provider: SandboxProvider | None = None,
        store: Store | None = None,
        memory: bool = False,
    ) -> None:
        self.settings = settings or Settings()
        self._provider = provider
        self._store = store
        self._memory = memory
        self._stack: AsyncExitStack | None = None
        self._system: ActorSystem | None = None
        self._registry: ActorRef | None = None
        self._signer: TokenSigner | None = None
        self._hook_lock = trio.Lock()
        self._rooms_lock = trio.Lock()
        self._keys = KeyStore(self.settings.data_dir / "keys")
        self._gates: GateRegistry | None = None
        self._server_id: str | None = None
        #: Makes a new project's repository once its sandbox is set up, given the
        #: sandbox, the project's name and the setup choice; says what it did (the
        #: GitHub routes set it when a GitHub App is configured). Looked up when it
        #: runs, so that sessions restored before it was set use it too.
        self.new_repository: NewRepository | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        try:
            data_dir = self.settings.data_dir
            await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
            self._signer = TokenSigner(load_or_create_secret(data_dir / "secret"))
            self._server_id = _server_id(data_dir / "server-id")
            if self._store is None:
                if self.settings.streams_url and not self._memory:
                    self._store = RemoteStore(self.settings.streams_url)
                elif self._memory:
                    self._store = MemoryStore()
                else:
                    self._store = DiskStore(data_dir / "streams")
                await stack.enter_async_context(self._store)
            if self._provider is None:
                self._provider = await make_provider(
                    self.settings.sandbox,
                    server_id=self.server_id,
                    root=data_dir / "sandboxes",
                    image=self.settings.image,
                    claude_binary=bundled_claude_cli(),
                    codex_binary=codex_binary(),
                    hosts=self.settings.docker_hosts,
                    max_per_host=self.settings.max_sandboxes_per_host or None,
                )
                await stack.enter_async_context(self._provider)
            self._system = await stack.enter_async_context(ActorSystem(shutdown_timeout=60))
            self._registry = await self._system.spawn(RegistryActor(self._store), name="registry")
            gate_supervisor = await open_gate_supervisor(self._system)
            self._gates = GateRegistry(gate_supervisor, self._store, session_stream)
            # Gates pending when the server stopped are issued again (each with what is
            # left of its deadline), so that they can still be answered or expire.
            for info in await self.sessions():
                if info.get("status") == "running":
                    await self._gates.restore(str(info["id"]))
            await self._recover()
            if isinstance(self._provider, MultiDockerProvider):
                # an engine that comes back is reaped of sandboxes of ended sessions;
                # one that goes down fails its sessions (idle ones too), found by a
                # health check every few seconds
                self._provider.keep = self._keeps_sandbox
                self._provider.on_down = self._host_down
                watcher = await stack.enter_async_context(trio.open_nursery())
                stack.callback(watcher.cancel_scope.cancel)  # unwound first
                watcher.start_soon(
                    partial(self._provider.watch, interval=self.settings.docker_watch_seconds)
                )
            # Open rooms are rebuilt from their streams, with the message gates of their
            # participants (which wait on the room, whatever their sessions' status).
            for room in await self.rooms():
                if room.get("state", "active") == "active":
                    for seat in room.get("sessions", []):
                        await self._gates.restore(str(seat["sessionId"]))
                    await self._restore_router(room)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        return await stack.__aexit__(exc_type, exc, tb)

    @property
    def server_id(self) -> str:
        """This server's id (kept in the data dir): sandboxes are labelled with it."""
        assert self._server_id is not None, "use 'async with Orchestrator(...)'"
        return self._server_id

    @property
    def signer(self) -> TokenSigner:
        assert self._signer is not None, "use 'async with Orchestrator(...)'"
        return self._signer

    @property
    def store(self) -> Store:
        assert self._store is not None, "use 'async with Orchestrator(...)'"
        return self._store

    @property
    def provider(self) -> SandboxProvider:
        assert self._provider is not None, "use 'async with Orchestrator(...)'"
        return self._provider

    @property
    def gates(self) -> GateRegistry:
        assert self._gates is not None, "use 'async with Orchestrator(...)'"
        return self._gates

    @property
    def registry(self) -> ActorRef:
        assert self._registry is not None, "use 'async with Orchestrator(...)'"
        return self._registry

    # -- sessions ----------------------------------------------------------------------

    async def create_session(
        self,
        description: str,
        *,
        freeform: bool = False,
        name: str | None = None,
        api_key: str | None = None,
        ask_infra: bool = False,
        tool_policy: ToolPolicy | None = None,
        tool_timeout: float | None = None,
        agent: str = "claude",
        prepare: Callable[[Sandbox], Awaitable[None]] | None = None,
    ) -> Session:
        """A new session. ``ask_infra``: a non-freeform session waits at the
        ``infra_config`` gate (answered with ``/respond``) before its sandbox is made,
        as the HTTP API does; the library's default is the local setup. ``agent``:
        ``claude`` (Claude Code) or ``codex`` (freeform only)."""
        _check_text("description", description, TEXT_LIMIT)
        session_id = str(uuid.uuid4())
        if name is not None:
            _check_text("name", name, SHORT_LIMIT)
            try:
                project = validate_name(name.strip().replace(" ", "-"), "name")
            except ValueError as exc:
                raise OrchestratorError(f"Validation failed: {exc}") from None
        else:
            project = f"project-{session_id[:8]}"
        return await self._create(
            session_id,
            description,
            project=project,
            freeform=freeform,
            api_key=api_key,
            ask_infra=ask_infra,
            tool_policy=tool_policy,
            tool_timeout=tool_timeout,
            agent=agent,
            prepare=prepare,
        )

    async def _create(
        self,
        session_id: str,
        description: str,
        *,
        project: str,
        freeform: bool,
        api_key: str | None = None,
        ask_infra: bool = False,
        tool_policy: ToolPolicy | None = None,
        tool_timeout: float | None = None,
        agent_name: str | None = None,
        files: dict[str, bytes] | None = None,
        prompt: str | None = None,
        follow_ups: tuple[str, ...] = (),
        extra_info: dict[str, Any] | None = None,
        hold: bool = False,
        agent: str = "claude",
        prepare: Callable[[Sandbox], Awaitable[None]] | None = None,
    ) -> Session:
        refusal = await admission_refusal(self)  # caps and free memory (api/_limits)
        if refusal is not None:
            raise OrchestratorError(refusal, 503)
        settings = self.settings
        if agent not in AGENTS:
            raise OrchestratorError(f"Validation failed: agent must be one of {list(AGENTS)}")
        if agent == "codex" and not freeform:
            raise OrchestratorError("Codex sessions are freeform (create-app needs Claude Code)")
        if freeform and settings.production and agent_name is None:
            raise OrchestratorError("Freeform sessions are not available", 403)
        env = self._agent_env(agent, api_key)
        if tool_policy is None and settings.production:
            # The reference's restricted list, enforced: what is on it runs, anything
            # else the agent tries is refused (an allowed-tools flag alone is cosmetic).
            tool_policy = ToolPolicy(
                allow=frozenset(PRODUCTION_TOOLS), only=frozenset(PRODUCTION_TOOLS)
            )
        elif tool_policy is None:
            # Every tool runs, through the permission callback all the same: that is
            # where an agent's question waits for its answer.
            tool_policy = ToolPolicy(allow_all=True)
        runtime = {
            "agent": agent,
            "agentName": agent_name,
            "policy": tool_policy.to_json(),
            "toolTimeout": tool_timeout,
            "askInfra": ask_infra,
        }
        config = self._session_config(session_id, description, project, freeform, runtime, env)
        config = attrs.evolve(
            config,
            files=files or {},
            prompt=prompt,
            follow_ups=follow_ups,
            hold=hold,
            prepare=prepare,
        )
        info = {
            "id": session_id,
            "projectName": project,
            "sandboxProjectDir": "",
            "description": description,
            "createdAt": ev.now_ts(),
            "status": "running",
            "freeform": freeform,
            "agent": agent,
            "totalCostUsd": 0,
            "runtime": runtime,
            **(extra_info or {}),
        }
        if api_key is not None and not settings.production:
            await self._keys.save(session_id, api_key)  # for a resume after a restart
        await self._reg(RegisterSession(info))
        await self._spawn_session(config)
        return Session(self, session_id)

    async def _recover(self) -> None:
        """After a restart (a crash included): every sandbox this server owns is
        re-attached to its session, whose agent resumes its conversation (Claude's
        session id, Codex's thread id) with the next message, or removed when its
        session has ended; a session still waiting at its setup choice waits again;
        a session whose sandbox is gone is marked ended, with a reason in its stream."""
        sessions = {str(info["id"]): info for info in await self.sessions()}
        attached: set[str] = set()
        for owned in await self.provider.list_owned():
            info = sessions.get(owned.session_id)
            live = info is not None and not info.get("ended") and not info.get("local")
            live = live and info is not None and info.get("status") in ("running", "complete")
            sandbox = await self.provider.attach(owned.session_id) if live else None
            if sandbox is None or info is None or owned.session_id in attached:
                await self.provider.remove(owned.sandbox_id)
                continue
            await self._respawn(info, sandbox)
            attached.add(owned.session_id)
        for session_id, info in sessions.items():
            if session_id in attached or info.get("local") or info.get("ended"):
                continue
            if info.get("status") not in ("running", "complete"):
                continue
            waiting = self.gates.get(session_id, "infra_config")
            if waiting is not None and waiting.pending:
                await self._respawn(info, None)  # its creation goes on after the choice
                continue
            gone = "The server restarted and this session's sandbox is gone"
            await self._server_says(session_id, ev.Log(level="error", message=gone))
            await self.gates.cancel_session(session_id, gone)
            await self._reg(UpdateSession(session_id, {"status": "error", "ended": True}))

    async def _server_says(self, session_id: str, *events: ev.Event) -> None:
        """Events from the server into a session's stream (as one append), when no
        actor of the session runs; a store that refuses them is let be."""
        body = json.dumps([event.to_json("server") for event in events]).encode()
        try:
            await self.store.append(
                session_stream(session_id), AppendRequest(body=body, content_type=JSON)
            )
        except StreamError:
            pass

    async def _host_down(self, url: str, reason: str, session_ids: list[str]) -> None:
        """A Docker engine stopped answering: each live session whose sandbox is there
        fails, saying so (its sandbox is reaped when the engine is back)."""
        for session_id in session_ids:
            actor = self._actor(session_id)
            if actor is None:
                continue
            try:
                await actor.ask(
                    Fail(f"its Docker host {url} stopped answering ({reason})"), timeout=60
                )
            except (ActorStopped, Refused, StoreUnavailable, trio.TooSlowError) as exc:
                logger.warning("session %s: failing it after its host: %r", session_id, exc)

    async def _keeps_sandbox(self, session_id: str) -> bool:
        info = await self.session_info(session_id)
        return info is not None and not info.get("ended")

    async def _respawn(self, info: dict[str, Any], sandbox: Sandbox | None) -> None:
        session_id = str(info["id"])
        runtime = info.get("runtime") or {}
        agent = str(runtime.get("agent", "claude"))
        env = self._agent_env(agent, await self._keys.load(session_id))
        config = self._session_config(
            session_id,
            str(info.get("description", "")),
            str(info.get("projectName", f"project-{session_id[:8]}")),
            bool(info.get("freeform")),
            runtime,
            env,
        )
        config = attrs.evolve(
            config,
            restored=True,
            resume=info.get("lastCoderSessionId"),
            spent_usd=float(info.get("totalCostUsd") or 0.0),
        )
        if sandbox is not None:
            await self._end_cut_turn(session_id, running=info.get("status") == "running")
        await self._spawn_session(config, reattach=sandbox)

    async def _end_cut_turn(self, session_id: str, *, running: bool) -> None:
        """After a restart, for a re-attached session whose turn was running: the agent
        process went with the old server, so the turn ends failed (a ``session_end``,
        so that whoever waits on it, a room included, goes on); the agent resumes its
        conversation with the next message. A tool approval or a question it was
        waiting on stays pending: the session actor gives the answer to the resumed
        agent as a turn of its own."""
        if not running:
            return
        await self._server_says(
            session_id, ev.Log(level="system", message=CUT_TURN), ev.SessionEnd(success=False)
        )
        await self._reg(UpdateSession(session_id, {"status": "complete"}))

    def _agent_env(self, agent: str, api_key: str | None) -> dict[str, str]:
        """The agent's credentials and endpoint: in production the server's own key
        only; in development the server's, else the caller's."""
        settings = self.settings
        codex = agent == "codex"
        own = settings.openai_api_key if codex else settings.anthropic_api_key
        key = own if settings.production else (own or api_key)
        env: dict[str, str] = {}
        if key:
            env["OPENAI_API_KEY" if codex else "ANTHROPIC_API_KEY"] = key
        if not codex and settings.anthropic_base_url:
            env["ANTHROPIC_BASE_URL"] = settings.anthropic_base_url
        return env

    def _session_config(
        self,
        session_id: str,
        description: str,
        project: str,
        freeform: bool,
        runtime: dict[str, Any],
        env: dict[str, str],
    ) -> SessionConfig:
        settings = self.settings
        policy = runtime.get("policy")
        return SessionConfig(
            session_id=session_id,
            description=description,
            project_name=project,
            freeform=freeform,
            model=settings.model if settings.production else None,
            production=settings.production,
            budget_usd=settings.max_session_cost_usd or math.inf,
            network=settings.sandbox_network,
            agent_env=env,
            ask_infra=bool(runtime.get("askInfra")),
            tool_policy=ToolPolicy.from_json(policy) if isinstance(policy, dict) else None,
            tool_timeout=runtime.get("toolTimeout"),
            agent_name=runtime.get("agentName"),
            agent=str(runtime.get("agent", "claude")),
            openai_base_url=settings.openai_base_url or OPENAI_BASE_URL,
            after_setup=None if freeform else self._after_setup,
        )

    async def _after_setup(
        self, sandbox: Sandbox, project: str, choice: Mapping[str, Any]
    ) -> str | None:
        new_repository = self.new_repository
        if new_repository is None:
            return None
        return await new_repository(sandbox, project, choice)

    async def _spawn_session(self, config: SessionConfig, reattach: Sandbox | None = None) -> None:
        assert self._system is not None
        actor = SessionActor(
            config, self.store, self.provider, self.registry, self.gates, reattach=reattach
        )
        await self._system.spawn(actor, name=f"session:{config.session_id}")

    def session(self, session_id: str) -> Session:
        return Session(self, session_id)

    async def session_info(self, session_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self._reg(GetSession(session_id))
        return found

    async def sessions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._reg(ListSessions())
        return found

    async def _reg(self, msg: object) -> Any:
        """Ask the registry; a store that refuses the write is a 503, not a crash."""
        try:
            return await self.registry.ask(msg)
        except StoreUnavailable as exc:
            raise OrchestratorError(str(exc), 503) from None

    def _actor(self, session_id: str) -> ActorRef | None:
        assert self._system is not None
        return self._system.registry.lookup(f"session:{session_id}")

    async def _ask(self, session_id: str, msg: object, *, missing_ok: bool = False) -> Any:
        actor = self._actor(session_id)
        if actor is None:
            if missing_ok:
                return None
            if await self.session_info(session_id) is None:
                raise OrchestratorError("Session not found", 404)
            raise OrchestratorError("Container is not running", 400)
        try:
            return await actor.ask(msg, timeout=120)
        except StoreUnavailable as exc:
            raise OrchestratorError(str(exc), 503) from None
        except Refused as exc:
            raise OrchestratorError(str(exc), 400) from None
        except ActorStopped:
            if missing_ok:
                return None
            raise OrchestratorError("Container is not running", 400) from None

    # -- hosted sessions: events from a developer's own Claude Code (hooks) ---------------

    async def _start_hosted(self, session_id: str) -> ActorRef:
        assert self._system is not None
        found = self._actor(session_id)
        if found is not None:
            return found
        actor = HostedSessionActor(session_id, self.store, self.registry)
        return await self._system.spawn(actor, name=f"session:{session_id}")

    async def create_local_session(
        self, description: str = "", *, project_name: str = "local-session"
    ) -> Session:
        """A session whose events come from hooks (no sandbox, no agent of ours)."""
        if description:
            _check_text("description", description, TEXT_LIMIT)
        session_id = str(uuid.uuid4())
        info = {
            "id": session_id,
            "projectName": project_name[:SHORT_LIMIT] or "local-session",
            "sandboxProjectDir": "",
            "description": description,
            "createdAt": ev.now_ts(),
            "status": "running",
            "local": True,
            "totalCostUsd": 0,
        }
        await self._reg(RegisterSession(info))
        await self._start_hosted(session_id)
        return Session(self, session_id)

    async def hook_session(self, transcript_path: str, cwd: str | None) -> Session:
        """The session a local transcript feeds, made on its first hook (one per path,
        even when hooks race; the mapping survives restarts)."""
        async with self._hook_lock:
            session_id: str | None = await self._reg(LookupTranscript(transcript_path))
            if session_id is None:
                name = PurePosixPath(cwd).name if cwd else ""
                session = await self.create_local_session(project_name=name or "local-session")
                await self._reg(MapTranscript(transcript_path, session.id))
                return session
        await self._start_hosted(session_id)
        return Session(self, session_id)

    async def hosted_event(self, session_id: str, event: ev.Event) -> bool:
        """Append a hook's event to a hosted session. False for sessions whose own agent
        bridge already records what it does (the hook would duplicate it)."""
        info = await self.session_info(session_id)
        if info is None:
            raise OrchestratorError("Session not found", 404)
        if not info.get("local"):
            return False
        actor = await self._start_hosted(session_id)
        await actor.ask(HookEvent(event))
        return True

    async def sandbox_of(self, session_id: str) -> Sandbox | None:
        """The live sandbox of a session, if it has one."""
        found: Sandbox | None = await self._ask(session_id, GetSandbox(), missing_ok=True)
        return found

    async def delete_session(self, session_id: str) -> None:
        for room in await self.rooms():
            if any(s.get("sessionId") == session_id for s in room.get("sessions", [])):
                actor = self._room_actor(str(room["id"]))
                if actor is not None:
                    try:
                        await actor.ask(rooms.RemoveParticipant(session_id, "session deleted"))
                    except (Refused, ActorStopped):
                        pass
        await self.gates.cancel_session(session_id, "Session deleted")
        self.gates.forget(session_id)
        actor = self._actor(session_id)
        if actor is not None:
            try:
                await actor.ask(Delete(), timeout=120)
            except ActorStopped:
                pass
            await actor.stop()
        if await self.session_info(session_id) is None:
            raise OrchestratorError("Session not found", 404)
        await self._reg(RemoveSession(session_id))
        await self._keys.forget(session_id)

    # -- rooms -------------------------------------------------------------------------

    def _room_actor(self, room_id: str) -> ActorRef | None:
        assert self._system is not None
        return self._system.registry.lookup(f"room:{room_id}")

    async def _room_ask(self, room_id: str, msg: object) -> Any:
        actor = self._room_actor(room_id)
        if actor is None:
            info = await self.room_info(room_id)
            if info is None:
                raise OrchestratorError("Room not found", 404)
            async with self._rooms_lock:  # a closed room's router, on demand
                actor = self._room_actor(room_id) or await self._restore_router(info)
        try:
            return await actor.ask(msg, timeout=180)
        except StoreUnavailable as exc:
            raise OrchestratorError(str(exc), 503) from None
        except Refused as exc:
            status = 409 if str(exc) == "The room is closed" else 400
            raise OrchestratorError(str(exc), status) from None
        except ActorStopped:
            raise OrchestratorError("The room is closed", 409) from None

    async def room_info(self, room_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self._reg(GetRoom(room_id))
        return found

    async def rooms(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._reg(ListRooms())
        return found

    def room(self, room_id: str) -> Room:
        return Room(self, room_id)

    async def room_token(self, room_id: str) -> str:
        info = await self.room_info(room_id)
        if info is None:
            raise OrchestratorError("Room not found", 404)
        return self.signer.token(Purpose.ROOM, f"{room_id}:{info.get('epoch', 0)}")

    async def check_room_token(self, room_id: str, token: str | None) -> bool:
        info = await self.room_info(room_id)
        if info is None:
            return False
        return self.signer.check(Purpose.ROOM, f"{room_id}:{info.get('epoch', 0)}", token)

    async def _restore_router(self, room: dict[str, Any]) -> ActorRef:
        """A room's router rebuilt from its stream (closed rooms too: they answer for
        their state, and do nothing else)."""
        await self._spawn_router(str(room["id"]), str(room["name"]), RoomConfig(), restore=True)
        found = self._room_actor(str(room["id"]))
        assert found is not None
        return found

    async def _spawn_router(self, room_id: str, name: str, config: RoomConfig, **kw: Any) -> None:
        assert self._system is not None
        router = RoomRouterActor(
            room_id=room_id,
            name=name,
            store=self.store,
            gates=self.gates,
            registry=self.registry,
            lookup=self._actor,
            config=config,
            **kw,
        )
        await self._system.spawn(router, name=f"room:{room_id}")

    async def create_room(
        self,
        name: str,
        *,
        max_rounds: int = 20,
        max_cost_usd: float | None = None,
        stuck: StuckPolicy | None = None,
        gate_messages: bool = False,
        idle_timeout: float | None = 600.0,
        auto_iterate: bool = True,
        turn_taking: bool = False,
        room_id: str | None = None,
        history: tuple[ev.AgentMessage, ...] = (),
    ) -> Room:
        """A new room (its router and stream). ``max_cost_usd`` defaults to the
        server's room budget; ``idle_timeout`` None never closes it for idleness."""
        _check_text("name", name, SHORT_LIMIT)
        if not 1 <= max_rounds <= 10_000:
            raise OrchestratorError("Validation failed: maxRounds must be between 1 and 10000")
        cost = self.settings.max_room_cost_usd if max_cost_usd is None else max_cost_usd
        if not cost > 0:
            raise OrchestratorError("Validation failed: maxCostUsd must be positive")
        if idle_timeout is not None and not 0 < idle_timeout <= 7 * 86400:
            raise OrchestratorError("Validation failed: idleTimeoutSeconds out of range")
        config = RoomConfig(
            max_rounds=max_rounds,
            max_cost_usd=cost,
            stuck=stuck or StuckPolicy(),
            gate_messages=gate_messages,
            idle_timeout=idle_timeout,
            auto_iterate=auto_iterate,
            turn_taking=turn_taking,
        )
        room_id = room_id or str(uuid.uuid4())
        info = {
            "id": room_id,
            "code": _invite_code(),
            "name": name,
            "createdAt": ev.now_ts(),
            "revoked": False,
            "epoch": 0,
            "state": "active",
            "sessions": [],
            "settings": config.to_json(),
        }
        await self._reg(RegisterRoom(info))
        await self._spawn_router(room_id, name, config, history=history)
        return Room(self, room_id)

    async def join_room(self, room_id: str, code: str) -> dict[str, Any]:
        """The room token for an invite code; participants without their session
        tokens (the reference handed them all out: §17.5)."""
        info = await self.room_info(room_id)
        if info is None or not secrets.compare_digest(
            str(info.get("code", "")).encode(), code.strip().upper().encode("utf-8", "replace")
        ):
            raise OrchestratorError("Room not found", 404)
        if info.get("revoked"):
            raise OrchestratorError("Room has been revoked", 410)
        return {
            "id": room_id,
            "code": info["code"],
            "name": info["name"],
            "roomToken": await self.room_token(room_id),
            "sessions": list(info.get("sessions", [])),
        }

    async def revoke_room(self, room_id: str) -> dict[str, Any]:
        """A new invite code and room token: the old code and every old room token
        stop working."""
        info = await self.room_info(room_id)
        if info is None:
            raise OrchestratorError("Room not found", 404)
        update = {"code": _invite_code(), "epoch": int(info.get("epoch", 0)) + 1}
        await self._reg(UpdateRoom(room_id, update))
        return {"code": update["code"], "roomToken": await self.room_token(room_id)}

    async def room_state(self, room_id: str) -> dict[str, Any]:
        info = await self.room_info(room_id)
        if info is None:
            raise OrchestratorError("Room not found", 404)
        state: dict[str, Any] = await self._room_ask(room_id, rooms.GetState())
        state["code"] = info["code"]
        return state

    async def _room_participant(self, room_id: str, session_id: str) -> dict[str, Any]:
        state = await self.room_state(room_id)
        for participant in state["participants"]:
            if participant["sessionId"] == session_id:
                return dict(participant)
        raise OrchestratorError("Session not found in this room", 404)

    async def _room_context(
        self, room_id: str, agent_name: str, role: Role | None
    ) -> tuple[str, str]:
        info = await self.room_info(room_id)
        if info is None:
            raise OrchestratorError("Room not found", 404)
        roster, recent = await self._room_ask(room_id, rooms.GetContext())
        context = build_room_context(
            room_name=str(info["name"]),
            agent_name=agent_name,
            role=role,
            others=[(n, r) for n, r in roster if n != agent_name],
            recent=recent,
        )
        return str(info["name"]), context

    def _participant_name(self, name: str | None, session_id: str) -> str:
        if name is None or not name.strip():
            return f"agent-{session_id[:6]}"
        name = name.strip()
        if not PARTICIPANT_NAME.fullmatch(name) or name in ("room", "system"):
            raise OrchestratorError(
                "Validation failed: name must be 1-64 letters, digits, '.', '_' or '-' "
                "(and not 'room' or 'system')"
            )
        return name

    async def add_room_agent(
        self,
        room_id: str,
        name: str | None = None,
        *,
        role: str | None = None,
        initial_prompt: str | None = None,
        custom_skill: str | None = None,
        api_key: str | None = None,
        description: str | None = None,
        ask_infra: bool = False,
        follow_ups: tuple[str, ...] = (),
        agent: str = "claude",
    ) -> Session:
        """A new agent of the room, in its own sandbox: the room-messaging skill, its
        role's skill (else ``custom_skill``) and tools, the room context as its first
        prompt, then ``initial_prompt``. ``description`` makes it a create-app agent
        (the scaffold and the infra gate when ``ask_infra``)."""
        for field, value, limit in (
            ("role", role, SHORT_LIMIT),
            ("initialPrompt", initial_prompt, TEXT_LIMIT),
            ("customSkill", custom_skill, TEXT_LIMIT),
            ("apiKey", api_key, KEY_LIMIT),
        ):
            if value is not None:
                _check_text(field, value, limit, required=False)
        info = await self.room_info(room_id)
        if info is None:
            raise OrchestratorError("Room not found", 404)
        if self._room_actor(room_id) is None or info.get("state") == "closed":
            raise OrchestratorError("The room is closed", 409)
        session_id = str(uuid.uuid4())
        agent_name = self._participant_name(name, session_id)
        if any(s.get("name") == agent_name for s in info.get("sessions", [])):
            raise OrchestratorError(f"The name {agent_name!r} is taken in this room", 409)
        resolved = resolve_role(role)
        room_name, context = await self._room_context(room_id, agent_name, resolved)
        project = validate_name(f"room-{agent_name}-{session_id[:8]}".lower(), "name")
        files = room_files(
            project_name=project,
            room_name=room_name,
            agent_name=agent_name,
            role=resolved,
            custom_skill=custom_skill,
        )
        if description is not None:
            files.pop("CLAUDE.md", None)  # the create-app CLAUDE.md stays
        if agent == "codex":  # Codex reads AGENTS.md, and no skills folder
            files["AGENTS.md"] = b"\n\n".join(
                files[name]
                for name in ("CLAUDE.md", ROLE_SKILL_PATH, ROOM_MESSAGING_SKILL_PATH)
                if name in files
            )
        initial = initial_prompt if initial_prompt and initial_prompt.strip() else None
        # a turn-taking room gives every turn itself, the first included
        held = bool(info.get("settings", {}).get("turnTaking"))
        session = await self._create(
            session_id,
            description or f"Room agent: {agent_name} ({role or 'participant'})",
            project=project,
            freeform=description is None,
            api_key=api_key,
            ask_infra=ask_infra,
            tool_policy=self._role_policy(resolved),
            agent_name=agent_name,
            files=files,
            prompt=context,
            follow_ups=follow_ups + ((initial,) if initial and not held else ()),
            hold=held,
            agent=agent,
            extra_info={"roomId": room_id, "participantName": agent_name, "role": role},
        )
        try:
            await self._room_ask(
                room_id,
                rooms.AddParticipant(
                    session_id,
                    agent_name,
                    role,
                    owned=True,
                    held=held,
                    initial_prompt=initial if held else None,
                ),
            )
        except OrchestratorError:
            await self.delete_session(session_id)
            raise
        return session

    def _role_policy(self, role: Role | None) -> ToolPolicy | None:
        """A role's tools, enforced through the permission callback; in production
        also kept to the production list (the reference let a role widen it)."""
        if role is None:
            return None
        tools = frozenset(role.tools)
        if self.settings.production:
            tools &= frozenset(PRODUCTION_TOOLS)
        return ToolPolicy(allow_all=True, only=tools)

    async def add_session_to_room(
        self, room_id: str, session_id: str, name: str, *, initial_prompt: str | None = None
    ) -> None:
        """An existing, running session joins the room: told the room's context (and
        ``initial_prompt``) as a new turn. The room does not end it when it closes."""
        _check_text("name", name, SHORT_LIMIT)
        if initial_prompt is not None:
            _check_text("initialPrompt", initial_prompt, TEXT_LIMIT, required=False)
        agent_name = self._participant_name(name, session_id)
        if await self.session_info(session_id) is None:
            raise OrchestratorError("Session not found", 404)
        actor = self._actor(session_id)
        if actor is None or await self.sandbox_of(session_id) is None:
            raise OrchestratorError("Session sandbox not found or not running", 400)
        _, context = await self._room_context(room_id, agent_name, None)
        head = await self.store.head(session_stream(session_id))
        await self._room_ask(
            room_id,
            rooms.AddParticipant(
                session_id, agent_name, None, owned=False, offset=head.next_offset
            ),
        )
        prompt = context + (f"\n\n{initial_prompt}" if initial_prompt else "")
        await self._ask(session_id, Iterate(prompt))

    async def create_app_room(
        self,
        description: str,
        *,
        name: str | None = None,
        api_key: str | None = None,
        ask_infra: bool = True,
    ) -> tuple[Room, Session]:
        """The reference's create-app room: a coder that builds the app (waiting at
        its infra gate first, when ``ask_infra``), told about the room."""
        _check_text("description", description, TEXT_LIMIT)
        if name is not None:
            _check_text("name", name, SHORT_LIMIT, required=False)
        room_id = str(uuid.uuid4())
        room_name = name.strip() if name and name.strip() else f"app-{room_id[:8]}"
        room = await self.create_room(room_name, room_id=room_id)
        if ask_infra:
            await self._room_ask(room.id, rooms.Notice("Waiting for infrastructure configuration"))
        suffix = secrets.choice(CODER_SUFFIXES)
        coder = await self.add_room_agent(
            room.id,
            f"coder-{suffix}",
            role="coder",
            api_key=api_key,
            description=description,
            ask_infra=ask_infra,
            follow_ups=(f"/create-app {description}",),
        )
        return room, coder


CODER_SUFFIXES = (
    "fox", "owl", "lynx", "wolf", "bear", "hawk", "pine", "oak",
    "elm", "ivy", "ray", "arc", "reef", "dusk", "ash", "sage",
)  # fmt: skip


def _invite_code() -> str:
    """8 symbols of an unambiguous 32-letter alphabet, ``XXXX-XXXX`` (reference §2)."""
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(8))
    return f"{code[:4]}-{code[4:]}"
