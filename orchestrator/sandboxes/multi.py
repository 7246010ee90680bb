"""Sandboxes across several Docker engines (a list of ``DOCKER_HOST`` values).

:class:`MultiDockerProvider` holds one :class:`DockerProvider` per engine, all with this
server's id. A sandbox is a container on one of them, labelled with its host
(``agent-orchestrator.host``) besides server, session and project; the sandboxes it
hands out are those of the engine's provider.

Placement (:func:`place`): among the engines that answer and run fewer than
``max_per_host`` of this server's sandboxes, the one with the most free memory, where
free memory is the engine's ``MemTotal`` (``docker info``) minus the memory limits of
this server's running sandboxes on it; creates in flight count with their engine. Ties
go to the engine with fewer of this server's sandboxes, then to the first in the list.
Docker reports no free memory of its own, and other users of an engine are not counted.
Memory ranks, it does not refuse (limits are ceilings, not reservations): only the count
limit, or no engine answering, refuses a create. When the chosen engine stops answering
during the create, the next best is tried.

Health: an engine that does not answer a call (no connection, a time-out, a connection
cut) is marked down. From then on every call on it, the provider's and those of its
sandboxes and their processes, fails at once with a SandboxError that names the host, so
a session whose sandbox is there fails with that message instead of waiting. A down
engine is probed again (a fresh connection, ``probe_timeout``) at the first call after a
back-off of 1, 2, 4 ... up to ``max_backoff`` seconds. When it answers it is up again,
and this server's sandboxes on it are reaped: those whose session ``keep`` does not keep
(``keep(session_id)``: false when the session is gone or ended) are removed, and so are
those that no longer run (an engine that stops stops its containers) and those of creates
that moved to another engine when this one stopped answering. ``keep`` is
given at construction or set later (:attr:`MultiDockerProvider.keep`); until then a
returned engine waits for a call of :meth:`MultiDockerProvider.reap`. Probes and reaping
happen on use (``create``, ``attach``, ``list_owned``, ``reap``, or any call of a
sandbox on a down engine); :meth:`MultiDockerProvider.watch` also runs them on a timer,
with a health check of the engines that are up, for a caller with a nursery, and tells
``on_down`` (once per time down) of each engine found down, with the sessions whose
sandboxes it held: the orchestrator fails them, idle ones included.

``attach``, ``list_owned`` and ``reap`` ask every engine that is up, concurrently; the
engines that are down are left out (logged), so that a list answers with what can be
reached. ``remove`` goes to the engine the sandbox was seen on, else to every engine up.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import NoReturn, TypeVar, final

import attrs
import trio

from ._common import APP_COMMAND, APP_PORT, validate_id
from .base import Network, SandboxError, SandboxInfo, SandboxProvider, SandboxSpec
from .docker import DEFAULT_IMAGE, DockerProvider, DockerSandbox, connect_engine, probe_engine

__all__ = [
    "LABEL_HOST",
    "HostStatus",
    "Keep",
    "MultiDockerProvider",
    "OnDown",
    "place",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

LABEL_HOST = "agent-orchestrator.host"

# Whether a session keeps its sandbox: false when it is gone or ended.
Keep = Callable[[str], bool | Awaitable[bool]]
# Told once each time an engine goes down, with its URL, why, and the ids of the
# sessions whose sandboxes were seen on it.
OnDown = Callable[[str, str, list[str]], Awaitable[None]]

FIRST_BACKOFF = 1.0


@attrs.frozen
class HostStatus:
    """One engine as placement sees it (:meth:`MultiDockerProvider.status`)."""

    url: str
    up: bool
    reason: str = ""  # why it is down
    sandboxes: int = 0  # this server's running sandboxes (and creates in flight)
    memory_total: int = 0
    memory_reserved: int = 0  # their memory limits

    @property
    def memory_free(self) -> int:
        return self.memory_total - self.memory_reserved


def place(
    hosts: Sequence[HostStatus], max_per_host: int | None = None, *, need: int = 0
) -> int | None:
    """The index of the engine a new sandbox goes to, or None when none can take it:
    among those up, under ``max_per_host`` and with ``need`` bytes of memory free (when
    the engine's memory is known), the most free memory, then the fewest sandboxes,
    then the first."""
    best: int | None = None
    for index, host in enumerate(hosts):
        if not host.up or (max_per_host is not None and host.sandboxes >= max_per_host):
            continue
        if need and host.memory_total and host.memory_free < need:
            continue
        if best is None or (host.memory_free, -host.sandboxes) > (
            hosts[best].memory_free,
            -hosts[best].sandboxes,
        ):
            best = index
    return best


@final
class _Host:
    """One engine: its provider (once it answered) and its health. The guard of its
    provider's engine calls (:class:`~.docker.EngineGuard`)."""

    def __init__(self, owner: MultiDockerProvider, url: str, index: int) -> None:
        self.owner = owner
        self.url = url
        self.index = index
        self.provider: DockerProvider | None = None
        self.down = True
        self.down_at = 0.0
        self.reason = "not connected yet"
        self.backoff = 0.0
        self.next_probe = -math.inf
        self.probing = trio.Lock()
        self.reap_due = False
        self.pending = 0  # creates in flight
        self.pending_memory = 0
        self.told_down = False  # on_down was told of this time down

    @property
    def up(self) -> bool:
        return not self.down and self.provider is not None

    def __repr__(self) -> str:
        return f"<Docker host {self.url} {'up' if self.up else 'down'}>"

    # -- EngineGuard -------------------------------------------------------------------

    async def check(self) -> None:
        if self.up:
            return
        await self.owner._probe(self)
        if not self.up:
            raise self.down_error()

    def unreachable(self, what: str, exc: BaseException) -> SandboxError:
        reason = f"{what}: {str(exc) or type(exc).__name__}"
        self.mark_down(reason)
        return SandboxError(f"Docker host {self.url} does not answer ({reason})")

    # -- health ------------------------------------------------------------------------

    def down_error(self) -> SandboxError:
        since = trio.current_time() - self.down_at
        return SandboxError(
            f"Docker host {self.url} is down ({self.reason}; for {since:.0f} s): "
            "its sandboxes cannot be reached"
        )

    def mark_down(self, reason: str) -> None:
        if self.down:
            return
        logger.warning("Docker host %s is down: %s", self.url, reason)
        self.down = True
        self.reason = reason
        self.down_at = trio.current_time()
        self.backoff = FIRST_BACKOFF
        self.next_probe = self.down_at + self.backoff

    def probe_failed(self, reason: str) -> None:
        self.reason = reason
        self.backoff = min(max(self.backoff * 2, FIRST_BACKOFF), self.owner.max_backoff)
        self.next_probe = trio.current_time() + self.backoff
        logger.info(
            "Docker host %s: still down (%s); next try in %.0f s", self.url, reason, self.backoff
        )


@final
class MultiDockerProvider(SandboxProvider):
    """Docker sandboxes for ``server_id`` across the engines ``hosts`` (``DOCKER_HOST``
    values: ``unix:///path``, ``tcp://host:port``, ``ssh://user@host``; the
    environment's ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH`` apply to all).

    ``max_per_host``: at most this many of this server's running sandboxes on one
    engine (None: no limit). ``keep``: which sessions keep their sandboxes when an
    engine comes back (see the module). ``limiter``: shared by every engine's calls;
    without one each engine gets its own of ``threads_per_host`` threads, so that a
    slow engine does not hold the threads of the others. ``timeout``: of each engine
    call; ``probe_timeout``: of a probe of a down engine. The other options are those
    of :class:`DockerProvider`, for every engine.

    :meth:`connect` (or any call) connects; ``aclose`` closes every engine's client.
    """

    runtime = "docker"

    def __init__(
        self,
        server_id: str,
        hosts: Sequence[str],
        *,
        image: str = DEFAULT_IMAGE,
        network: Network | None = None,
        claude_binary: Path | None = None,
        codex_binary: Path | None = None,
        limiter: trio.CapacityLimiter | None = None,
        threads_per_host: int = 8,
        max_per_host: int | None = None,
        keep: Keep | None = None,
        on_down: OnDown | None = None,
        timeout: float = 30.0,
        probe_timeout: float = 3.0,
        max_backoff: float = 30.0,
        app_command: Sequence[str] = APP_COMMAND,
        app_port: int = APP_PORT,
        destroy_timeout: float = 30.0,
    ) -> None:
        self.server_id = validate_id(server_id, "server id")
        urls = [str(url).strip() for url in hosts]
        if not urls or any(not url for url in urls):
            raise ValueError("several Docker engines need a list of DOCKER_HOST values")
        if len(set(urls)) != len(urls):
            raise ValueError(f"a Docker host is named twice in {urls}")
        if max_per_host is not None and max_per_host < 1:
            raise ValueError(f"max_per_host must be >= 1, not {max_per_host}")
        self.max_per_host = max_per_host
        self.keep = keep
        self.on_down = on_down
        self.timeout = timeout
        self.probe_timeout = max(1.0, probe_timeout)
        self.max_backoff = max(FIRST_BACKOFF, max_backoff)
        self._limiter = limiter
        self._threads_per_host = threads_per_host
        self._provider = partial(
            DockerProvider,
            self.server_id,
            image=image,
            network=network,
            claude_binary=claude_binary,
            codex_binary=codex_binary,
            app_command=app_command,
            app_port=app_port,
            destroy_timeout=destroy_timeout,
            close_client=True,
        )
        self._hosts = [_Host(self, url, index) for index, url in enumerate(urls)]
        self._where: dict[str, _Host] = {}  # sandbox id -> the engine it was seen on
        self._session_of: dict[str, str] = {}  # sandbox id -> its session
        self._placing = trio.Lock()
        self._creating: set[str] = set()
        # (engine, session) of creates that engine stopped answering: what it made of
        # them is reaped when it is back, whatever keep says.
        self._abandoned: set[tuple[int, str]] = set()
        self._closed = False

    @property
    def hosts(self) -> list[str]:
        return [host.url for host in self._hosts]

    def host_of(self, sandbox_id: str) -> str | None:
        """The engine a sandbox was made, attached or listed on."""
        host = self._where.get(sandbox_id)
        return None if host is None else host.url

    def closed(self) -> bool:
        return self._closed

    def is_up(self, url: str) -> bool:
        return any(host.url == url and host.up for host in self._hosts)

    # -- connections and health --------------------------------------------------------

    async def connect(self) -> None:
        """Try every engine now (back-off or not). Raises SandboxError, naming each
        engine and why, when none answers; the others are retried on use."""
        async with trio.open_nursery() as nursery:
            for host in self._hosts:
                if not host.up:
                    host.next_probe = -math.inf
                    nursery.start_soon(partial(self._probe, host, returning=False))
        if not any(host.up for host in self._hosts):
            raise SandboxError(f"no Docker engine answers: {self._reasons()}")

    def _reasons(self) -> str:
        return "; ".join(f"{host.url} ({host.reason})" for host in self._hosts)

    async def _probe(self, host: _Host, *, returning: bool = True) -> None:
        """Probe a down engine when its back-off is over (one probe at a time; a call
        that finds one running does not wait for it). Never raises SandboxError."""
        if self._closed or host.up or trio.current_time() < host.next_probe:
            return
        if host.probing.locked():
            return
        async with host.probing:
            try:
                await trio.to_thread.run_sync(
                    partial(probe_engine, self.probe_timeout, host.url), abandon_on_cancel=True
                )
                if host.provider is None:
                    client = await trio.to_thread.run_sync(
                        partial(connect_engine, self.timeout, host.url), abandon_on_cancel=True
                    )
                    if self.closed():  # meanwhile
                        client.close()
                        return
                    host.provider = self._provider(
                        limiter=self._limiter or trio.CapacityLimiter(self._threads_per_host),
                        client=client,
                        labels={LABEL_HOST: host.url},
                        guard=host,
                    )
                    again = False
                else:
                    again = True
            except SandboxError as exc:
                host.probe_failed(str(exc))
                return
        host.down, host.reason, host.backoff = False, "", 0.0
        host.told_down = False
        host.reap_due = returning
        logger.info("Docker host %s %s", host.url, "answers again" if again else "answers")

    async def _maintain(self) -> None:
        """Probe the down engines that are due; reap those that came back (with
        ``keep``). Failures are logged: they never fail the call that ran this."""
        keep = self.keep
        if all(host.up for host in self._hosts) and (
            keep is None or not any(host.reap_due for host in self._hosts)
        ):
            return
        async with trio.open_nursery() as nursery:
            for host in self._hosts:
                if not host.up:
                    nursery.start_soon(self._probe, host)
        if keep is None:
            return
        for host in self._hosts:
            if host.up and host.reap_due:
                try:
                    await self._reap_host(host, keep)
                except Exception:
                    logger.exception("Docker host %s: reaping after its return", host.url)

    async def watch(self, *, interval: float = 5.0) -> NoReturn:
        """Forever (run it in a nursery): every ``interval`` seconds, ask each engine
        that is up how it is (one that does not answer is marked down), tell
        ``on_down`` of each engine found down since the last time (however it was
        found), probe the down ones that are due, and reap those that came back. A
        failure of one round is logged; the next round comes anyway."""
        while True:
            try:
                async with trio.open_nursery() as nursery:
                    for host in self._hosts:
                        if host.up:
                            nursery.start_soon(self._ping, host)
                await self._tell_down()
                await self._maintain()
            except Exception:
                logger.exception("watching the Docker hosts")
            await trio.sleep(interval)

    async def _tell_down(self) -> None:
        on_down = self.on_down
        if on_down is None or self._closed:
            return
        for host in self._hosts:
            if host.up or host.told_down or host.provider is None:
                continue  # (never connected: it has no sandboxes of this run)
            host.told_down = True
            sessions = sorted(
                {
                    self._session_of[sandbox_id]
                    for sandbox_id, where in self._where.items()
                    if where is host and sandbox_id in self._session_of
                }
            )
            await on_down(host.url, host.reason, sessions)

    async def _ping(self, host: _Host) -> None:
        assert host.provider is not None
        try:
            await host.provider.usage()
        except SandboxError as exc:
            logger.debug("Docker host %s: %s", host.url, exc)

    async def _each(
        self,
        fn: Callable[[DockerProvider], Awaitable[T]],
        what: str,
        *,
        strict: bool = True,
    ) -> list[tuple[_Host, T]]:
        """``fn`` on the provider of every engine up, concurrently: the answers of those
        that answered, in host order. An engine that stops answering is left out (it is
        marked down); another error is raised when ``strict``, else logged."""
        answers: list[tuple[_Host, T]] = []
        errors: list[SandboxError] = []

        async def one(host: _Host, provider: DockerProvider) -> None:
            try:
                answers.append((host, await fn(provider)))
            except SandboxError as exc:
                if host.up and strict:
                    errors.append(exc)
                else:
                    logger.warning("%s: Docker host %s left out: %s", what, host.url, exc)

        async with trio.open_nursery() as nursery:
            for host in self._hosts:
                if host.up and host.provider is not None:
                    nursery.start_soon(one, host, host.provider)
                else:
                    logger.debug("%s: Docker host %s is down, left out", what, host.url)
        if errors:
            raise errors[0]
        return sorted(answers, key=lambda answer: answer[0].index)

    # -- SandboxProvider ---------------------------------------------------------------

    async def aclose(self) -> None:
        self._closed = True
        for host in self._hosts:
            provider, host.provider = host.provider, None
            host.down, host.reason = True, "closed"
            if provider is not None:
                await provider.aclose()

    async def status(self) -> list[HostStatus]:
        """Every engine, in host order, with what placement counts on those up."""
        await self._maintain()
        return (await self._statuses())[0]

    async def _statuses(self) -> tuple[list[HostStatus], dict[str, str]]:
        """Every engine's status, and the engine of each session running on one."""
        usages = {
            host.index: usage
            for host, usage in await self._each(lambda p: p.usage(), "status", strict=False)
        }
        found = []
        sessions: dict[str, str] = {}
        for host in self._hosts:
            usage = usages.get(host.index)
            if usage is None:
                found.append(HostStatus(host.url, up=False, reason=host.reason or "no answer"))
                continue
            sessions.update(dict.fromkeys(usage.sessions, host.url))
            found.append(
                HostStatus(
                    host.url,
                    up=True,
                    sandboxes=usage.sandboxes + host.pending,
                    memory_total=usage.memory_total,
                    memory_reserved=usage.memory_reserved + host.pending_memory,
                )
            )
        return found, sessions

    async def create(self, spec: SandboxSpec) -> DockerSandbox:
        session_id = validate_id(spec.session_id, "session id")
        await self._maintain()
        if session_id in self._creating:
            raise SandboxError(f"a sandbox of session {session_id} is being made")
        self._creating.add(session_id)
        try:
            return await self._create(session_id, spec)
        finally:
            self._creating.discard(session_id)

    async def _create(self, session_id: str, spec: SandboxSpec) -> DockerSandbox:
        left_out: set[int] = set()
        while True:
            async with self._placing:
                found, sessions = await self._statuses()
                if session_id in sessions:
                    raise SandboxError(
                        f"a sandbox of session {session_id} exists (on {sessions[session_id]})"
                    )
                statuses = [
                    attrs.evolve(status, up=False, reason="failed this create")
                    if index in left_out
                    else status
                    for index, status in enumerate(found)
                ]
                index = place(statuses, self.max_per_host, need=spec.memory_bytes or 0)
                if index is None:
                    raise SandboxError(
                        f"no Docker engine can take the sandbox of {session_id}: "
                        + "; ".join(self._why_not(status, spec) for status in statuses)
                    )
                host = self._hosts[index]
                assert host.provider is not None
                host.pending += 1
                host.pending_memory += spec.memory_bytes or 0
            try:
                sandbox = await host.provider.create(spec)
            except SandboxError as exc:
                if host.up:
                    raise
                logger.warning("sandbox %s: %s; trying another engine", session_id, exc)
                left_out.add(host.index)
                self._abandoned.add((host.index, session_id))
                continue
            finally:
                host.pending -= 1
                host.pending_memory -= spec.memory_bytes or 0
            self._note(host, sandbox.sandbox_id, session_id)
            logger.info("sandbox %s: on Docker host %s", session_id, host.url)
            return sandbox

    def _why_not(self, status: HostStatus, spec: SandboxSpec) -> str:
        if not status.up:
            return f"{status.url} is down ({status.reason or 'left out'})"
        if self.max_per_host is not None and status.sandboxes >= self.max_per_host:
            return f"{status.url} runs {status.sandboxes} (at most {self.max_per_host})"
        return (
            f"{status.url} has {status.memory_free // 2**20} MiB free, "
            f"{(spec.memory_bytes or 0) // 2**20} MiB needed"
        )

    async def attach(self, session_id: str) -> DockerSandbox | None:
        await self._maintain()
        found = await self._each(lambda p: p.attach(session_id), f"attach {session_id}")
        for host, sandbox in found:
            if sandbox is not None:
                self._note(host, sandbox.sandbox_id, session_id)
                return sandbox
        return None

    async def list_owned(self) -> list[SandboxInfo]:
        """This server's sandboxes on every engine up (those down are left out)."""
        await self._maintain()
        found: list[SandboxInfo] = []
        for host, owned in await self._each(lambda p: p.list_owned(), "list sandboxes"):
            self._seen(host, owned)
            found += owned
        return found

    def _seen(self, host: _Host, owned: Sequence[SandboxInfo]) -> None:
        """``owned`` is all there is on ``host``: what else it was known for is gone."""
        for sandbox_id in [k for k, v in self._where.items() if v is host]:
            self._where.pop(sandbox_id)
            self._session_of.pop(sandbox_id, None)
        for info in owned:
            self._note(host, info.sandbox_id, info.session_id)

    def _note(self, host: _Host, sandbox_id: str, session_id: str) -> None:
        self._where[sandbox_id] = host
        self._session_of[sandbox_id] = session_id

    async def remove(self, sandbox_id: str) -> None:
        """On its engine, when known (a SandboxError naming it when it is down), else on
        every engine up."""
        host = self._where.get(sandbox_id)
        if host is not None and host.provider is not None:
            await host.provider.remove(sandbox_id)
        else:
            await self._each(lambda p: p.remove(sandbox_id), f"remove {sandbox_id}")
        self._where.pop(sandbox_id, None)
        self._session_of.pop(sandbox_id, None)

    # -- reaping -----------------------------------------------------------------------

    async def reap(self, keep: Keep | None = None) -> list[SandboxInfo]:
        """Remove this server's sandboxes, on every engine up, whose session ``keep``
        (default: :attr:`keep`) does not keep, or that do not run; what was removed.
        Engines down are left out (they are reaped when they come back, with
        :attr:`keep`)."""
        keep = keep or self.keep
        if keep is None:
            raise ValueError("reap needs keep: which sessions keep their sandboxes")
        await self._maintain()
        removed: list[SandboxInfo] = []
        for host in self._hosts:
            if host.up:
                try:
                    removed += await self._reap_host(host, keep)
                except SandboxError as exc:
                    if not host.down:  # it answered: a real error
                        raise
                    logger.warning("reap: Docker host %s left out: %s", host.url, exc)
        return removed

    async def _reap_host(self, host: _Host, keep: Keep) -> list[SandboxInfo]:
        """Remove what nobody can use on ``host``: sandboxes whose session ``keep`` does
        not keep, that do not run (a stopped container, a volume left by a crashed
        create), or that a create abandoned there; not those of creates in flight."""
        assert host.provider is not None
        host.reap_due = False
        removed: list[SandboxInfo] = []
        try:
            owned = await host.provider.list_owned()
            self._seen(host, owned)
            for info in owned:
                session_id = info.session_id
                if session_id in self._creating:
                    continue
                abandoned = (host.index, session_id) in self._abandoned
                if info.alive and not abandoned:
                    kept = keep(session_id)
                    if inspect.isawaitable(kept):
                        kept = await kept
                    if kept:
                        continue
                await host.provider.remove(info.sandbox_id)
                self._where.pop(info.sandbox_id, None)
                self._session_of.pop(info.sandbox_id, None)
                removed.append(info)
        except BaseException:
            host.reap_due = True
            raise
        self._abandoned = {entry for entry in self._abandoned if entry[0] != host.index}
        if removed:
            logger.info(
                "Docker host %s: reaped %s",
                host.url,
                ", ".join(f"{info.session_id} ({info.sandbox_id[:12]})" for info in removed),
            )
        return removed
