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
import math
import uuid
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, aclosing
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Self

import attrs
import claude_agent_sdk
import trio

from actors import ActorRef, ActorStopped, ActorSystem, Refused
from transport import DiskStore, MemoryStore, Store, StreamNotFound

from . import events as ev
from .config import Settings
from .gates import GateRegistry, ToolPolicy, open_gate_supervisor
from .sandboxes import make_provider
from .sandboxes.base import Sandbox, SandboxProvider, validate_name
from .sessions.actor import (
    PRODUCTION_TOOLS,
    Cancel,
    Delete,
    GetSandbox,
    Interrupt,
    Iterate,
    SessionActor,
    SessionConfig,
)
from .sessions.actor import session_stream as session_stream
from .sessions.hosted import HookEvent, HostedSessionActor
from .sessions.registry import (
    GetSession,
    ListSessions,
    LookupTranscript,
    MapTranscript,
    RegisterSession,
    RegistryActor,
    RemoveSession,
)
from .tokens import Purpose, TokenSigner, load_or_create_secret

__all__ = ["EventItem", "Orchestrator", "OrchestratorError", "Session", "bundled_claude_cli"]

TEXT_LIMIT = 10_000
SHORT_LIMIT = 500


class OrchestratorError(Exception):
    """A request the orchestrator refuses; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def bundled_claude_cli() -> Path:
    """The Claude Code binary bundled in the pinned claude-agent-sdk."""
    return Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"


@attrs.frozen
class EventItem:
    """One event read from a session's stream, with the offset after it."""

    event: ev.Event
    source: ev.Source | None
    offset: str
    raw: dict[str, Any]


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

    async def events(
        self, offset: str = "-1", *, follow: bool = True, wait: float = 20.0
    ) -> AsyncGenerator[EventItem, None]:
        """The session's events from ``offset``; with ``follow``, waits for more until
        the iteration is left (or the stream is deleted). Close it when you leave early:
        ``async with contextlib.aclosing(session.events()) as events: ...``."""
        store = self._orch.store
        while True:
            try:
                page = await store.read(self.stream, offset, wait=wait if follow else 0.0)
            except StreamNotFound:
                return
            start = offset
            for index, chunk in enumerate(page.chunks):
                # each chunk is one append: its values, comma-joined
                end = page.ends[index] if index < len(page.ends) else page.next_offset
                values = json.loads(b"[" + chunk + b"]")
                for position, record in enumerate(values):
                    if not isinstance(record, dict):
                        continue
                    event, source = ev.event_from_json(record)
                    after = end if position == len(values) - 1 else start
                    yield EventItem(event, source, after, record)
                start = end
            offset = page.next_offset
            if not follow and page.up_to_date:
                return

    async def wait_for(self, *types: str, offset: str = "-1") -> EventItem:
        """The first event (from ``offset``) whose type is one of ``types``."""
        async with aclosing(self.events(offset)) as items:
            async for item in items:
                if item.event.type in types:
                    return item
        raise OrchestratorError(f"the session's stream ended before {types}", 404)


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
        self._gates: GateRegistry | None = None
        self._server_id: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        try:
            data_dir = self.settings.data_dir
            await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
            self._signer = TokenSigner(load_or_create_secret(data_dir / "secret"))
            self._server_id = _server_id(data_dir / "server-id")
            if self._store is None:
                self._store = MemoryStore() if self._memory else DiskStore(data_dir / "streams")
                await stack.enter_async_context(self._store)
            if self._provider is None:
                self._provider = await make_provider(
                    self.settings.sandbox,
                    server_id=self.server_id,
                    root=data_dir / "sandboxes",
                    image=self.settings.image,
                    claude_binary=bundled_claude_cli(),
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
    ) -> Session:
        """A new session. ``ask_infra``: a non-freeform session waits at the
        ``infra_config`` gate (answered with ``/respond``) before its sandbox is made,
        as the HTTP API does; the library's default is the local setup."""
        _check_text("description", description, TEXT_LIMIT)
        settings = self.settings
        if freeform and settings.production:
            raise OrchestratorError("Freeform sessions are not available", 403)
        session_id = str(uuid.uuid4())
        if name is not None:
            _check_text("name", name, SHORT_LIMIT)
            try:
                project = validate_name(name.strip().replace(" ", "-"), "name")
            except ValueError as exc:
                raise OrchestratorError(f"Validation failed: {exc}") from None
        else:
            project = f"project-{session_id[:8]}"
        env: dict[str, str] = {}
        # production: the server's own key only; dev: the server's, else the caller's
        key = (
            settings.anthropic_api_key
            if settings.production
            else (settings.anthropic_api_key or api_key)
        )
        if key:
            env["ANTHROPIC_API_KEY"] = key
        if settings.anthropic_base_url:
            env["ANTHROPIC_BASE_URL"] = settings.anthropic_base_url
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
        config = SessionConfig(
            session_id=session_id,
            description=description,
            project_name=project,
            freeform=freeform,
            model=settings.model if settings.production else None,
            production=settings.production,
            budget_usd=settings.max_session_cost_usd or math.inf,
            network=settings.sandbox_network,
            agent_env=env,
            ask_infra=ask_infra,
            tool_policy=tool_policy,
            tool_timeout=tool_timeout,
        )
        info = {
            "id": session_id,
            "projectName": project,
            "sandboxProjectDir": "",
            "description": description,
            "createdAt": ev.now_ts(),
            "status": "running",
            "freeform": freeform,
            "totalCostUsd": 0,
        }
        await self.registry.ask(RegisterSession(info))
        assert self._system is not None
        actor = SessionActor(config, self.store, self.provider, self.registry, self.gates)
        await self._system.spawn(actor, name=f"session:{session_id}")
        return Session(self, session_id)

    def session(self, session_id: str) -> Session:
        return Session(self, session_id)

    async def session_info(self, session_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.registry.ask(GetSession(session_id))
        return found

    async def sessions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.registry.ask(ListSessions())
        return found

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
        await self.registry.ask(RegisterSession(info))
        await self._start_hosted(session_id)
        return Session(self, session_id)

    async def hook_session(self, transcript_path: str, cwd: str | None) -> Session:
        """The session a local transcript feeds, made on its first hook (one per path,
        even when hooks race; the mapping survives restarts)."""
        async with self._hook_lock:
            session_id: str | None = await self.registry.ask(LookupTranscript(transcript_path))
            if session_id is None:
                name = PurePosixPath(cwd).name if cwd else ""
                session = await self.create_local_session(project_name=name or "local-session")
                await self.registry.ask(MapTranscript(transcript_path, session.id))
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
        await self.registry.ask(RemoveSession(session_id))
