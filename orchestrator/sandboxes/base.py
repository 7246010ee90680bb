"""The sandbox provider interface: where an agent runs.

A :class:`SandboxProvider` makes :class:`Sandbox` es (one per session) and finds the
ones this server owns. A sandbox runs commands given as argument lists (never shell
strings), long-running processes with stdin and stdout attached (the agent CLI), and
reads and writes files. Every call is async (trio); blocking work (the docker SDK) runs
in worker threads behind a capacity limiter.

Ownership: every sandbox carries the id of the server that made it and the id of its
session (Docker labels; a marker file for local sandboxes), so that a restarted server
can find, re-attach or remove what it left behind, and nothing outlives its session.
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Literal, Self

import attrs

__all__ = [
    "AppStatus",
    "ExecResult",
    "Network",
    "Process",
    "Sandbox",
    "SandboxError",
    "SandboxInfo",
    "SandboxProvider",
    "SandboxSpec",
    "validate_name",
]

Network = Literal["none", "host", "bridge"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class SandboxError(Exception):
    """A sandbox operation failed (creation, exec, file access, teardown)."""


def validate_name(value: str, what: str = "name") -> str:
    """Names that become paths or labels: letters, digits, ``._-``; 1-100 chars; no
    leading dot or dash. Raises ValueError otherwise."""
    if not _NAME.fullmatch(value) or value in {".", ".."}:
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '.', '_', '-'")
    return value


@attrs.frozen
class SandboxSpec:
    """What a session asks of its sandbox."""

    session_id: str
    project_name: str = attrs.field(validator=lambda _i, _a, v: validate_name(v, "project name"))
    env: Mapping[str, str] = attrs.field(factory=dict)  # handed to agent processes
    network: Network = "none"
    memory_bytes: int | None = 2 * 1024**3
    pids_limit: int | None = 512
    cpus: float | None = 2.0


@attrs.frozen
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@attrs.frozen
class AppStatus:
    running: bool
    port: int | None = None


@attrs.frozen
class SandboxInfo:
    """A sandbox this server owns, as found by :meth:`SandboxProvider.list_owned`."""

    sandbox_id: str
    session_id: str
    runtime: str
    alive: bool


class Process(abc.ABC):
    """A process running in a sandbox with stdin and stdout attached (the agent CLI).

    ``async with`` kills it on exit if it still runs. Reading ``stdout`` yields raw bytes
    as they come (not lines); it ends when the process closes its stdout.
    """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Write to its stdin. Raises SandboxError once stdin is closed or it exited."""

    @abc.abstractmethod
    async def close_stdin(self) -> None: ...

    @abc.abstractmethod
    def stdout(self) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    def stderr(self) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def wait(self) -> int:
        """Its exit code, once it has exited."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """Kill it (and what it started) and wait until it is gone. Idempotent."""


class Sandbox(abc.ABC):
    """One session's sandbox. ``workdir`` is the project directory inside it."""

    sandbox_id: str
    session_id: str
    runtime: str
    workdir: str
    # Where the provider's Claude Code binary is, seen from inside the sandbox.
    claude_path: str = "/opt/claude/claude"
    # Where the provider's Codex CLI binary is, seen from inside the sandbox; None when
    # the provider was given none (``codex_binary``).
    codex_path: str | None = None

    @abc.abstractmethod
    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """Run ``argv`` (no shell) to completion; a time-out kills it and raises."""

    @abc.abstractmethod
    def exec_stream(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        """Run ``argv`` and yield its combined output as it comes; raises SandboxError
        at the end if it exited non-zero."""

    @abc.abstractmethod
    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        """Start a long-running process with stdin/stdout attached, as the non-root
        agent user, with the sandbox's env plus ``env``."""

    @abc.abstractmethod
    async def read_file(self, path: str) -> bytes: ...

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Write a file (parents created), owned by the agent user. Never via a shell."""

    @abc.abstractmethod
    async def list_files(self, directory: str) -> list[str]:
        """Absolute paths of the regular files under ``directory`` (recursive)."""

    @abc.abstractmethod
    async def start_app(self) -> AppStatus: ...

    @abc.abstractmethod
    async def stop_app(self) -> None: ...

    @abc.abstractmethod
    async def app_status(self) -> AppStatus: ...

    @abc.abstractmethod
    async def is_alive(self) -> bool: ...

    @abc.abstractmethod
    async def destroy(self) -> None:
        """Remove the sandbox and everything running in it. Idempotent; bounded."""


class SandboxProvider(abc.ABC):
    """Makes sandboxes. ``async with`` releases what the provider itself holds (it does
    not destroy sandboxes: sessions do)."""

    runtime: str
    server_id: str

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the provider's own resources (clients, limiters)."""

    @abc.abstractmethod
    async def create(self, spec: SandboxSpec) -> Sandbox:
        """Make and start a sandbox for ``spec.session_id``; on any failure nothing is
        left behind."""

    @abc.abstractmethod
    async def attach(self, session_id: str) -> Sandbox | None:
        """Re-attach to this server's live sandbox of ``session_id`` (after a restart)."""

    @abc.abstractmethod
    async def list_owned(self) -> list[SandboxInfo]:
        """Every sandbox this server owns, alive or not."""

    @abc.abstractmethod
    async def remove(self, sandbox_id: str) -> None:
        """Remove one owned sandbox by id (cleanup of leftovers). Idempotent."""
