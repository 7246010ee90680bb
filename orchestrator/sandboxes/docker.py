"""Docker sandboxes: a container per session, driven through the docker SDK.

The SDK is synchronous: every call runs in a worker thread behind a capacity limiter
(:class:`_Engine`), so a slow engine never blocks the event loop (reference §17.27).

A sandbox is a container running an idle PID 1 (``sleep infinity`` under docker's
init) as the non-root user ``agent`` (uid/gid 1000, which the image must have), with
memory, pids and CPU limits from the spec, the spec's network (``none``, ``host`` or
``bridge``), every capability dropped and ``no-new-privileges``. Its ``/workspace`` is a
named volume of its own, removed with it; the project directory is
``/workspace/<project>``, owned by agent. The Claude Code CLI the SDK bundles can be
bind-mounted read-only at ``/opt/claude/claude``, and the pinned Codex CLI (a static
binary) at ``/opt/codex/codex``. The spec's env is the container's
environment, so every exec (and a re-attached sandbox) has it.

Container and volume carry the labels ``agent-orchestrator.server``,
``agent-orchestrator.session`` and ``agent-orchestrator.project``: a restarted server
finds, re-attaches or removes what it left behind by them. The container also carries
its memory limit (``agent-orchestrator.memory``, bytes, 0 = none), which
:meth:`DockerProvider.usage` adds up for placement across several engines (``multi``).

Commands are docker execs of argument lists (no shell), attached through the hijacked
socket of ``exec_start`` and read from trio (see ``_docker_stream``). Docker reports no
pid of an exec inside its container and does not kill one whose connection closes, so
every exec carries a marker in its environment and is killed by it (see
:data:`_SIGNAL_MARKED`).
"""

from __future__ import annotations

import gc
import io
import logging
import os
import posixpath
import secrets
import socket
import tarfile
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar, final

import attrs
import docker
import docker.errors
import requests.exceptions
import trio
from docker.types import Mount

from ._common import (
    APP_COMMAND,
    APP_MARKER,
    APP_PORT,
    LABEL_PROJECT,
    LABEL_SERVER,
    LABEL_SESSION,
    LABEL_VOLUME,
    PROCESS_MARKER,
    Chunks,
    OutputBuffer,
    check_argv,
    check_timeout,
    merge_env,
    new_marker,
    poll_until,
    run_to_completion,
    stream_output,
    validate_id,
)
from ._docker_stream import STDERR, STDOUT, Multiplexed, hijack
from .base import (
    AppStatus,
    ExecResult,
    Network,
    Process,
    Sandbox,
    SandboxError,
    SandboxInfo,
    SandboxProvider,
    SandboxSpec,
)

__all__ = [
    "AGENT_USER",
    "CLAUDE_PATH",
    "CODEX_PATH",
    "DEFAULT_IMAGE",
    "LABEL_MEMORY",
    "WORKSPACE",
    "DockerProcess",
    "DockerProvider",
    "DockerSandbox",
    "EngineGuard",
    "EngineUsage",
    "connect_engine",
    "probe_engine",
    "unreachable",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_IMAGE = "agent-orchestrator/debian:bookworm-1"
AGENT_USER = "agent"
AGENT_UID = AGENT_GID = 1000
WORKSPACE = "/workspace"
CLAUDE_PATH = "/opt/claude/claude"
CODEX_PATH = "/opt/codex/codex"
IDLE_COMMAND: Final = ["sleep", "infinity"]
LABEL_MEMORY = "agent-orchestrator.memory"  # the container's memory limit, bytes (0: none)

KILL_TIMEOUT = 10.0  # from the first SIGKILL until docker reports the exec gone
_SIGNAL_TIMEOUT = 10.0
_APP_STOP_GRACE = 5.0

# Signals every process whose environment holds the line "$2" (PROCESS_MARKER=<marker>)
# with signal "$1" (a name, or 0 to test); exits 0 when it found one. The script is a
# constant and the marker an argument: no text of ours or the user's is pasted into it.
# It runs as the user of the processes it looks for, so it needs no capability to read
# their environ or signal them. A shell because the Debian image has no kill(1) binary.
_SIGNAL_MARKED: Final = """\
found=1
for environ in /proc/[0-9]*/environ; do
    if grep -qzxF -e "$2" "$environ" 2>/dev/null; then
        pid=${environ#/proc/}
        kill -s "$1" "${pid%/environ}" 2>/dev/null && found=0
    fi
done
exit $found
"""

# Kills every process that carries a PROCESS_MARKER ("$1=" starts a line of its
# environment) other than the app's ("$2"), the script itself excepted: what a server
# that died left running in a sandbox it re-attaches (an agent CLI going on alone).
_KILL_LEFTOVERS: Final = """\
for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}
    pid=${pid%/environ}
    [ "$pid" = "$$" ] && continue
    if grep -qz -e "^$1=" "$environ" 2>/dev/null && ! grep -qzxF -e "$2" "$environ" 2>/dev/null
    then
        kill -s KILL "$pid" 2>/dev/null
    fi
done
exit 0
"""

_COLLECTING = threading.Lock()

_ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


def unreachable(exc: BaseException) -> bool:
    """Whether an engine call failed because the engine did not answer (no connection,
    a time-out, a connection cut mid-answer), not because it answered with an error."""
    if isinstance(exc, requests.exceptions.HTTPError):  # docker.errors.APIError too
        return False
    if isinstance(exc, requests.exceptions.RequestException):
        return isinstance(
            exc,
            requests.exceptions.ConnectionError
            | requests.exceptions.Timeout
            | requests.exceptions.ChunkedEncodingError,
        )
    return isinstance(exc, OSError)


def _from_env(base_url: str | None, version: str, timeout: float) -> docker.DockerClient:
    """A client of ``base_url`` (else the engine the environment names); the
    environment's TLS settings (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``) apply."""
    environment = None if base_url is None else {**os.environ, "DOCKER_HOST": base_url}
    return docker.from_env(version=version, timeout=int(timeout), environment=environment)


def connect_engine(timeout: float = 30.0, base_url: str | None = None) -> docker.DockerClient:
    """A client of the engine at ``base_url`` (a ``DOCKER_HOST`` value), else of the one
    the environment names (``DOCKER_HOST`` or the default socket), speaking that
    engine's API version. Raises SandboxError when none answers. Blocking: call it in
    a worker thread."""
    return _from_env(base_url, probe_engine(timeout, base_url), timeout)


def probe_engine(timeout: float = 30.0, base_url: str | None = None) -> str:
    """The API version of the engine at ``base_url`` (else the environment's), asked
    with a fresh connection; SandboxError when none answers within ``timeout``.
    Blocking."""
    # A unix socket that is not there: no engine, and no socket of ours to leak.
    url = base_url or os.environ.get("DOCKER_HOST") or ""
    if url.startswith("unix://") and not os.path.exists(url.removeprefix("unix://")):
        raise SandboxError(f"no Docker engine answers (no socket {url})")
    # Ask with the oldest API version (the probe needs no more), so a failed probe
    # leaves no socket open; the client then speaks the engine's own version.
    reason = version = ""
    try:
        probe = _from_env(base_url, "1.24", timeout)
    except docker.errors.DockerException as exc:
        raise SandboxError(f"no Docker engine: {exc}") from None
    try:
        version = str(probe.version()["ApiVersion"])
    except (*_ENGINE_ERRORS, KeyError) as exc:
        reason = f"no Docker engine answers ({exc})"
    finally:
        probe.close()
    if reason:
        # docker-py leaves the socket of a failed connect open: collect it now (the
        # traceback that held it is gone) rather than warn at some later collection.
        # One thread at a time: the warning filters are the process's.
        with _COLLECTING, warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        raise SandboxError(reason)
    return version


class EngineGuard(Protocol):
    """Watches one engine's health for its provider (several engines: ``multi``).

    ``check`` runs before every engine call of the provider and of its sandboxes and
    processes; it raises SandboxError to refuse the call at once (the engine is known
    to be down). ``unreachable`` is told of a call the engine did not answer and gives
    the error to raise."""

    async def check(self) -> None: ...

    def unreachable(self, what: str, exc: BaseException) -> SandboxError: ...


@attrs.frozen
class EngineUsage:
    """What this server has running on one engine (:meth:`DockerProvider.usage`)."""

    memory_total: int  # the engine's MemTotal, bytes
    sandboxes: int  # this server's running containers
    memory_reserved: int  # the sum of their memory limits, bytes
    sessions: frozenset[str]  # their sessions


@final
class _Engine:
    """The docker SDK off the event loop: each call in a worker thread, within the
    limiter; engine errors become SandboxError."""

    def __init__(
        self,
        client: docker.DockerClient,
        limiter: trio.CapacityLimiter,
        cpus: int,
        memory: int = 0,
        guard: EngineGuard | None = None,
    ) -> None:
        self.api = client.api
        self._limiter = limiter
        self.cpus = cpus  # the engine's: a container may not ask for more
        self.memory = memory  # the engine's MemTotal
        self._guard = guard

    async def call(self, fn: Callable[[], T], what: str, *, abandon: bool = False) -> T:
        """``abandon``: on cancellation stop waiting for the thread (its result is
        lost); only for calls whose effect a later cleanup does not depend on."""
        if self._guard is not None:
            await self._guard.check()
        try:
            return await trio.to_thread.run_sync(
                fn, limiter=self._limiter, abandon_on_cancel=abandon
            )
        except _ENGINE_ERRORS as exc:
            if self._guard is not None and unreachable(exc):
                raise self._guard.unreachable(what, exc) from exc
            raise SandboxError(f"{what}: {_explain(exc)}") from exc


def _remove_owned(api: docker.APIClient, server_id: str, name: str) -> None:
    """Remove this server's container ``name`` (an id or a name) and its volume, or
    this server's volume ``name``. Missing is fine; another server's is refused.
    Blocking."""
    volume: str | None = name
    try:
        info = api.inspect_container(name)
    except docker.errors.NotFound:
        info = None
    if info is not None:
        labels = info["Config"].get("Labels") or {}
        if labels.get(LABEL_SERVER) != server_id:
            raise SandboxError(f"container {name} is not this server's")
        try:
            api.remove_container(info["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
        volume = labels.get(LABEL_VOLUME)
    if not volume:
        return
    try:
        volume_info = api.inspect_volume(volume)
    except docker.errors.NotFound:
        return
    if (volume_info.get("Labels") or {}).get(LABEL_SERVER) != server_id:
        if info is None:
            raise SandboxError(f"volume {name} is not this server's")
        return
    try:
        api.remove_volume(volume, force=True)
    except docker.errors.NotFound:
        pass


def _filters(server_id: str, session_id: str) -> dict[str, list[str]]:
    return {"label": [f"{LABEL_SERVER}={server_id}", f"{LABEL_SESSION}={session_id}"]}


def _tar_entry(name: str, data: bytes | None, mode: int) -> bytes:
    """A tar of one file (or, with ``data`` None, one directory) owned by agent."""
    buffer = io.BytesIO()
    info = tarfile.TarInfo(name)
    info.uid, info.gid = AGENT_UID, AGENT_GID
    info.uname = info.gname = AGENT_USER
    info.mode = mode & 0o7777
    info.mtime = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        if data is None:
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        else:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@final
class DockerProvider(SandboxProvider):
    """Makes Docker sandboxes for ``server_id``.

    ``network``: None lets each spec choose; a value is imposed on every sandbox (an
    operator's override). ``client``: an engine client to use (the caller closes it,
    unless ``close_client``); without one the provider connects on first use. A client
    the provider owns is closed by ``aclose``.
    ``limiter`` bounds the worker threads of blocking SDK calls.
    ``labels``: more labels for its containers and volumes (not the ownership ones).
    ``guard``: told of every engine call (see :class:`EngineGuard`).
    """

    runtime = "docker"

    def __init__(
        self,
        server_id: str,
        *,
        image: str = DEFAULT_IMAGE,
        network: Network | None = None,
        claude_binary: Path | None = None,
        codex_binary: Path | None = None,
        limiter: trio.CapacityLimiter | None = None,
        client: docker.DockerClient | None = None,
        close_client: bool = False,
        app_command: Sequence[str] = APP_COMMAND,
        app_port: int = APP_PORT,
        destroy_timeout: float = 30.0,
        labels: Mapping[str, str] | None = None,
        guard: EngineGuard | None = None,
    ) -> None:
        self.server_id = validate_id(server_id, "server id")
        self.labels = dict(labels or {})
        self._guard = guard
        self.image = image
        self.network = network
        self.claude_binary = claude_binary
        self.codex_binary = codex_binary
        self.app_command = check_argv(app_command)
        self.app_port = app_port
        self.destroy_timeout = check_timeout(destroy_timeout)
        self._limiter = limiter or trio.CapacityLimiter(8)
        self._client = client
        self._owns_client = client is None or close_client
        self._engine_: _Engine | None = None
        self._connect_lock = trio.Lock()

    async def _engine(self) -> _Engine:
        async with self._connect_lock:
            if self._engine_ is None:
                if self._client is None:
                    self._client = await trio.to_thread.run_sync(
                        connect_engine, limiter=self._limiter
                    )
                client = self._client
                what = "ask the engine about itself"
                if self._guard is not None:
                    await self._guard.check()
                try:
                    info = await trio.to_thread.run_sync(client.info, limiter=self._limiter)
                except _ENGINE_ERRORS as exc:
                    if self._guard is not None and unreachable(exc):
                        raise self._guard.unreachable(what, exc) from exc
                    raise SandboxError(f"{what}: {_explain(exc)}") from exc
                self._engine_ = _Engine(
                    client,
                    self._limiter,
                    int(info.get("NCPU") or 1),
                    int(info.get("MemTotal") or 0),
                    self._guard,
                )
            return self._engine_

    async def aclose(self) -> None:
        client, self._client, self._engine_ = self._client, None, None
        if client is not None and self._owns_client:
            client.close()

    def _sandbox(
        self, engine: _Engine, container_id: str, labels: Mapping[str, str]
    ) -> DockerSandbox:
        return DockerSandbox(
            engine,
            container_id=container_id,
            session_id=labels[LABEL_SESSION],
            project_name=labels[LABEL_PROJECT],
            server_id=self.server_id,
            app_command=self.app_command,
            app_port=self.app_port,
            destroy_timeout=self.destroy_timeout,
            codex_path=CODEX_PATH if self.codex_binary is not None else None,
        )

    async def create(self, spec: SandboxSpec) -> DockerSandbox:
        session_id = validate_id(spec.session_id, "session id")
        engine = await self._engine()
        api = engine.api
        name = f"ao-{session_id}-{secrets.token_hex(4)}"
        labels = {
            **self.labels,
            LABEL_SERVER: self.server_id,
            LABEL_SESSION: session_id,
            LABEL_PROJECT: spec.project_name,
        }
        mounts = [Mount(target=WORKSPACE, source=name, type="volume")]
        for binary, target in ((self.claude_binary, CLAUDE_PATH), (self.codex_binary, CODEX_PATH)):
            if binary is not None:
                mounts.append(Mount(target=target, source=str(binary), type="bind", read_only=True))
        host_config = api.create_host_config(
            init=True,
            network_mode=self.network or spec.network,
            mem_limit=spec.memory_bytes,
            pids_limit=spec.pids_limit,
            nano_cpus=None if spec.cpus is None else int(min(spec.cpus, engine.cpus) * 1e9),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mounts=mounts,
        )
        environment = merge_env(spec.env)

        def make() -> str:
            if api.containers(all=True, filters=_filters(self.server_id, session_id)):
                raise SandboxError(f"a sandbox of session {session_id} exists")
            api.create_volume(name, labels=labels)
            created = api.create_container(
                self.image,
                command=IDLE_COMMAND,
                user=AGENT_USER,
                environment=environment,
                labels={
                    **labels,
                    LABEL_VOLUME: name,
                    LABEL_MEMORY: str(spec.memory_bytes or 0),
                },
                name=name,
                host_config=host_config,
                detach=True,
            )
            container_id = str(created["Id"])
            api.start(container_id)
            return container_id

        try:
            container_id = await engine.call(make, f"create a sandbox from {self.image}")
        except BaseException:
            # Whatever was made is found by its name, even when a cancellation took the
            # thread's answer away.
            with trio.CancelScope(shield=True), trio.move_on_after(self.destroy_timeout):
                try:
                    await engine.call(
                        lambda: _remove_owned(api, self.server_id, name),
                        f"remove {name}",
                        abandon=True,
                    )
                except SandboxError:
                    logger.exception("sandbox %s: cleanup after a failed create", session_id)
            raise
        logger.info("sandbox %s: container %s (%s)", session_id, container_id[:12], name)
        return self._sandbox(engine, container_id, labels)

    async def attach(self, session_id: str) -> DockerSandbox | None:
        engine = await self._engine()
        filters = _filters(self.server_id, session_id)
        running = await engine.call(
            lambda: engine.api.containers(filters=filters), f"find the sandbox of {session_id}"
        )
        if not running:
            return None
        found = running[0]
        sandbox = self._sandbox(engine, str(found["Id"]), found["Labels"])
        await sandbox.end_leftovers()
        return sandbox

    async def list_owned(self) -> list[SandboxInfo]:
        """Containers, and volumes whose container is gone (``sandbox_id`` = the volume's
        name, not alive), so that ``remove`` can clean up after a crashed create."""
        engine = await self._engine()
        filters = {"label": f"{LABEL_SERVER}={self.server_id}"}

        def find() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            containers = engine.api.containers(all=True, filters=filters)
            volumes = engine.api.volumes(filters=filters).get("Volumes") or []
            return containers, volumes

        containers, volumes = await engine.call(find, "list this server's sandboxes")
        found = [
            SandboxInfo(
                sandbox_id=str(c["Id"]),
                session_id=c["Labels"].get(LABEL_SESSION, ""),
                runtime=self.runtime,
                alive=c.get("State") == "running",
            )
            for c in containers
        ]
        used = {c["Labels"].get(LABEL_VOLUME) for c in containers}
        found += [
            SandboxInfo(
                sandbox_id=str(v["Name"]),
                session_id=(v.get("Labels") or {}).get(LABEL_SESSION, ""),
                runtime=self.runtime,
                alive=False,
            )
            for v in volumes
            if v["Name"] not in used
        ]
        return found

    async def usage(self) -> EngineUsage:
        """The engine's memory and this server's running sandboxes on it, with the sum
        of their memory limits (from their labels; a container without the label is
        inspected)."""
        engine = await self._engine()
        api = engine.api
        filters = {"label": f"{LABEL_SERVER}={self.server_id}", "status": "running"}

        def count() -> EngineUsage:
            containers = api.containers(filters=filters)
            reserved = 0
            sessions: set[str] = set()
            for container in containers:
                labels = container.get("Labels") or {}
                sessions.add(labels.get(LABEL_SESSION, ""))
                try:
                    reserved += int(labels[LABEL_MEMORY])
                    continue
                except (KeyError, ValueError):
                    pass
                try:
                    found = api.inspect_container(container["Id"])
                except docker.errors.NotFound:
                    continue
                reserved += int((found.get("HostConfig") or {}).get("Memory") or 0)
            return EngineUsage(engine.memory, len(containers), reserved, frozenset(sessions))

        return await engine.call(count, "count this server's sandboxes")

    async def remove(self, sandbox_id: str) -> None:
        engine = await self._engine()
        with trio.CancelScope(shield=True), trio.move_on_after(self.destroy_timeout) as bound:
            await engine.call(
                lambda: _remove_owned(engine.api, self.server_id, sandbox_id),
                f"remove sandbox {sandbox_id}",
                abandon=True,
            )
        if bound.cancelled_caught:
            raise SandboxError(f"removing sandbox {sandbox_id} took over {self.destroy_timeout} s")


@final
class DockerSandbox(Sandbox):
    """One session's container. Made by :class:`DockerProvider`."""

    runtime = "docker"

    def __init__(
        self,
        engine: _Engine,
        *,
        container_id: str,
        session_id: str,
        project_name: str,
        server_id: str,
        app_command: Sequence[str] = APP_COMMAND,
        app_port: int = APP_PORT,
        destroy_timeout: float = 30.0,
        codex_path: str | None = None,
    ) -> None:
        self._engine = engine
        self.codex_path = codex_path
        self.sandbox_id = container_id
        self.session_id = session_id
        self.project_name = project_name
        # The workspace volume is the project directory: the image's /workspace (owned
        # by agent) is copied up into the new volume, so no extra call has to make a
        # directory in it (that call was a quarter of the sandbox's start time).
        self.workdir = WORKSPACE
        self._server_id = server_id
        self._app_command = list(app_command)
        self._app_port = app_port
        self._destroy_timeout = destroy_timeout

    def __repr__(self) -> str:
        return f"<DockerSandbox {self.session_id} {self.sandbox_id[:12]}>"

    def _path(self, path: str) -> str:
        if not path or "\0" in path:
            raise SandboxError(f"invalid path {path!r}")
        return posixpath.normpath(posixpath.join(self.workdir, path))

    # -- processes -----------------------------------------------------------------

    async def _start(
        self,
        argv: Sequence[str],
        *,
        user: str,
        cwd: str | None,
        env: Mapping[str, str] | None,
        stdin: bool,
        marker: str | None = None,
        killable: bool = True,
    ) -> DockerProcess:
        args = check_argv(argv)
        marker = marker or new_marker()
        environment = merge_env(env, {PROCESS_MARKER: marker})
        workdir = self._path(cwd) if cwd else self.workdir
        api = self._engine.api
        started: list[tuple[str, socket.socket, bytes]] = []

        def start() -> None:
            exec_id = str(
                api.exec_create(
                    self.sandbox_id,
                    args,
                    stdin=stdin,
                    user=user,
                    environment=environment,
                    workdir=workdir,
                )["Id"]
            )
            started.append((exec_id, *hijack(api.exec_start(exec_id, socket=True))))

        try:
            await self._engine.call(start, f"exec {args[0]!r}")
        except BaseException:
            if started:  # cancelled after it started: nobody will hold it, so kill it
                exec_id, sock, pending = started[0]
                orphan = DockerProcess(self, exec_id, marker, user, Multiplexed(sock, pending))
                await orphan.kill()
            raise
        exec_id, sock, pending = started[0]
        return DockerProcess(
            self, exec_id, marker, user, Multiplexed(sock, pending), killable=killable
        )

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float = 60.0,
        user: str | None = None,
    ) -> ExecResult:
        """As :meth:`Sandbox.exec`; ``user`` (default agent) is docker-specific."""
        return await self._exec(
            argv, cwd=cwd, env=env, stdin=stdin, timeout=timeout, user=user or AGENT_USER
        )

    async def _exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float,
        user: str = AGENT_USER,
        killable: bool = True,
    ) -> ExecResult:
        check_timeout(timeout)
        process = await self._start(
            argv, user=user, cwd=cwd, env=env, stdin=stdin is not None, killable=killable
        )

        async def collect(out: OutputBuffer, err: OutputBuffer) -> None:
            while (frame := await process.frame()) is not None:
                (out if frame[0] == STDOUT else err).add(frame[1])

        return await run_to_completion(
            process, repr(argv[0]), stdin=stdin, timeout=timeout, collect=collect
        )

    def exec_stream(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        args = check_argv(argv)
        start = partial(self._start, args, user=AGENT_USER, cwd=cwd, env=env, stdin=False)
        return stream_output(start, repr(args[0]))

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> DockerProcess:
        return await self._start(argv, user=AGENT_USER, cwd=cwd, env=env, stdin=True)

    async def _signal_marked(self, marker: str, user: str, signal: str) -> bool:
        """Send ``signal`` to every process of ``user`` that carries ``marker``; whether
        there was one."""
        result = await self._exec(
            ["sh", "-c", _SIGNAL_MARKED, "signal-marked", signal, f"{PROCESS_MARKER}={marker}"],
            user=user,
            timeout=_SIGNAL_TIMEOUT,
            killable=False,
        )
        return result.ok

    async def end_leftovers(self) -> None:
        """Kill what an earlier server started here and left running (its agent CLI
        goes on alone when its connection closes); the app keeps running. A failure
        is logged, not raised."""
        result = await self._exec(
            [
                "sh",
                "-c",
                _KILL_LEFTOVERS,
                "kill-leftovers",
                PROCESS_MARKER,
                f"{PROCESS_MARKER}={APP_MARKER}",
            ],
            user=AGENT_USER,
            timeout=_SIGNAL_TIMEOUT,
            killable=False,
        )
        if not result.ok:  # the agent starts anyway; an old one may still write files
            message = result.stderr.decode(errors="replace").strip() or "no reason given"
            logger.warning("sandbox %s: leftovers not ended: %s", self.sandbox_id[:12], message)

    # -- files ---------------------------------------------------------------------

    async def _checked(self, argv: Sequence[str], what: str) -> bytes:
        result = await self.exec(argv)
        if not result.ok:
            message = result.stderr.decode(errors="replace").strip() or f"exit {result.exit_code}"
            raise SandboxError(f"{what}: {message}")
        return result.stdout

    async def read_file(self, path: str) -> bytes:
        """Read as the agent user (``cat``, no shell): what the agent may read."""
        path = self._path(path)
        return await self._checked(["cat", "--", path], f"read {path}")

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Put a tar made in memory (never a shell); missing parents are made by the
        agent user first, so they are the agent's too."""
        path = self._path(path)
        parent, name = posixpath.split(path)
        if not name or path == "/":
            raise SandboxError(f"write {path}: not a file path")
        archive = _tar_entry(name, data, mode)
        api = self._engine.api

        def put() -> bool:
            try:
                return bool(api.put_archive(self.sandbox_id, parent, archive))
            except docker.errors.NotFound:
                return False

        if await self._engine.call(put, f"write {path}"):
            return
        await self._checked(["mkdir", "-p", "--", parent], f"write {path}")
        if not await self._engine.call(put, f"write {path}"):
            raise SandboxError(f"write {path}: the engine did not take the file")

    async def list_files(self, directory: str) -> list[str]:
        directory = self._path(directory)
        found = await self._checked(
            ["find", directory, "-type", "f", "-print0"], f"list {directory}"
        )
        return sorted(name.decode(errors="surrogateescape") for name in found.split(b"\0") if name)

    # -- the app -------------------------------------------------------------------

    async def start_app(self) -> AppStatus:
        """Run the app command (default ``npm run dev``) detached, as agent, in the
        project directory, with ``PORT`` set; its output is not kept. Refused without a
        package.json."""
        status = await self.app_status()
        if status.running:
            return status
        package = posixpath.join(self.workdir, "package.json")
        if not (await self.exec(["test", "-f", package])).ok:
            raise SandboxError(f"no app to start: {package} does not exist")
        api = self._engine.api
        environment = {PROCESS_MARKER: APP_MARKER, "PORT": str(self._app_port)}

        def start() -> None:
            exec_id = api.exec_create(
                self.sandbox_id,
                self._app_command,
                stdout=False,
                stderr=False,
                user=AGENT_USER,
                environment=environment,
                workdir=self.workdir,
            )["Id"]
            api.exec_start(exec_id, detach=True)

        await self._engine.call(start, f"start the app ({self._app_command[0]})")
        return AppStatus(running=True, port=self._app_port)

    async def stop_app(self) -> None:
        """SIGTERM to the app and what it started, SIGKILL after 5 s."""
        if not await self._signal_marked(APP_MARKER, AGENT_USER, "TERM"):
            return

        async def gone() -> bool:
            return not await self._signal_marked(APP_MARKER, AGENT_USER, "0")

        with trio.move_on_after(_APP_STOP_GRACE):
            await poll_until(gone, first=0.05)
            return
        await self._signal_marked(APP_MARKER, AGENT_USER, "KILL")

    async def app_status(self) -> AppStatus:
        if await self._signal_marked(APP_MARKER, AGENT_USER, "0"):
            return AppStatus(running=True, port=self._app_port)
        return AppStatus(running=False)

    # -- lifetime ------------------------------------------------------------------

    async def is_alive(self) -> bool:
        api = self._engine.api

        def running() -> bool:
            try:
                return bool(api.inspect_container(self.sandbox_id)["State"]["Running"])
            except docker.errors.NotFound:
                return False

        return await self._engine.call(running, f"inspect container {self.sandbox_id[:12]}")

    async def destroy(self) -> None:
        """Remove the container (forced: what runs in it dies) and its volume. Shielded
        from cancellation; bounded by the provider's ``destroy_timeout``, past which it
        raises and the leftovers stay findable by their labels."""
        api = self._engine.api
        with trio.CancelScope(shield=True), trio.move_on_after(self._destroy_timeout) as bound:
            await self._engine.call(
                lambda: _remove_owned(api, self._server_id, self.sandbox_id),
                f"remove container {self.sandbox_id[:12]}",
                abandon=True,
            )
        if bound.cancelled_caught:
            raise SandboxError(
                f"removing container {self.sandbox_id[:12]} took over {self._destroy_timeout} s"
            )


@final
class DockerProcess(Process):
    """A docker exec with stdin, stdout and stderr attached. Made by
    :meth:`DockerSandbox.spawn`."""

    def __init__(
        self,
        sandbox: DockerSandbox,
        exec_id: str,
        marker: str,
        user: str,
        stream: Multiplexed,
        *,
        killable: bool = True,
    ) -> None:
        self._sandbox = sandbox
        self.exec_id = exec_id
        self._marker = marker
        self._user = user
        self._stream = stream
        self._killable = killable
        self._exit_code: int | None = None

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)

    async def close_stdin(self) -> None:
        await self._stream.close_stdin()

    async def frame(self) -> tuple[int, bytes] | None:
        return await self._stream.frame()

    def output(self) -> Chunks:
        """stdout and stderr as they come, together."""
        return Chunks(self._stream.any)

    def stdout(self) -> Chunks:
        return Chunks(partial(self._stream.next, STDOUT))

    def stderr(self) -> Chunks:
        return Chunks(partial(self._stream.next, STDERR))

    async def _exited(self) -> bool:
        if self._exit_code is not None:
            return True
        api = self._sandbox._engine.api

        def inspect() -> int | None:
            try:
                info = api.exec_inspect(self.exec_id)
            except docker.errors.NotFound:  # its container is gone, and it with it
                return -1
            if info["Running"] or info["ExitCode"] is None:
                return None
            return int(info["ExitCode"])

        self._exit_code = await self._sandbox._engine.call(inspect, "inspect an exec")
        return self._exit_code is not None

    async def wait(self) -> int:
        await poll_until(self._exited)
        assert self._exit_code is not None
        return self._exit_code

    async def kill(self) -> None:
        """SIGKILL it and everything that carries its marker, inside the container, then
        wait until docker reports it gone (at most 10 s, then SandboxError). Shielded
        from cancellation; closes the connection."""
        with trio.CancelScope(shield=True):
            try:
                with trio.move_on_after(KILL_TIMEOUT) as bound:
                    await self._kill()
            finally:
                self._stream.close()
        if bound.cancelled_caught:
            raise SandboxError(f"exec {self.exec_id[:12]} still runs {KILL_TIMEOUT} s after kill")

    async def _kill(self) -> None:
        if not self._killable:
            return
        resend = 0.0
        delay = 0.01
        while not await self._exited():
            if trio.current_time() >= resend:
                resend = trio.current_time() + 1.0
                try:
                    await self._sandbox._signal_marked(self._marker, self._user, "KILL")
                except SandboxError as exc:  # e.g. the container stopped meanwhile
                    logger.debug("exec %s: kill: %s", self.exec_id[:12], exc)
            await trio.sleep(delay)
            delay = min(delay * 2, 0.2)
