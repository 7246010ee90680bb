"""What both providers share: the labels and markers that say who owns what, argument
and environment checks, and a bounded output buffer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol, Self, final

import trio

from .base import ExecResult, Process, SandboxError, validate_name

__all__ = [
    "APP_COMMAND",
    "APP_MARKER",
    "APP_PORT",
    "LABEL_PROJECT",
    "LABEL_SERVER",
    "LABEL_SESSION",
    "LABEL_VOLUME",
    "MAX_OUTPUT_BYTES",
    "PROCESS_MARKER",
    "Chunks",
    "OutputBuffer",
    "check_argv",
    "check_timeout",
    "feed",
    "merge_env",
    "new_marker",
    "poll_until",
    "run_to_completion",
    "stream_output",
    "validate_id",
]

# Docker labels (and the keys of a local sandbox's marker file).
LABEL_SERVER = "agent-orchestrator.server"
LABEL_SESSION = "agent-orchestrator.session"
LABEL_PROJECT = "agent-orchestrator.project"
LABEL_VOLUME = "agent-orchestrator.volume"

# Every process a sandbox starts carries ``PROCESS_MARKER=<marker>`` in its environment
# (inherited by what it starts), so that it and its descendants can be found and killed
# by reading /proc/<pid>/environ: a docker exec has no pid inside its container that the
# engine reports, and a local process may have left its process group.
PROCESS_MARKER = "AGENT_ORCHESTRATOR_PROCESS"
APP_MARKER = "app"  # the marker of the app's dev server

# The app (start_app): the project's dev server, run in the foreground as the agent
# user in the project directory when the project has a package.json; ``PORT`` tells it
# where to listen.
APP_COMMAND: tuple[str, ...] = ("npm", "run", "dev")
APP_PORT = 5173

# What exec() keeps of one stream before it gives up with SandboxError.
MAX_OUTPUT_BYTES = 64 * 1024**2


def validate_id(value: str, what: str) -> str:
    """Server and session ids become labels, names and paths: the same rule as names."""
    try:
        return validate_name(value, what)
    except ValueError as exc:
        raise SandboxError(str(exc)) from None


def new_marker() -> str:
    return uuid.uuid4().hex


def check_argv(argv: Sequence[str]) -> list[str]:
    """An argument list, never a shell string: a str is refused (it would run as one
    word at best), as are empty lists and NUL bytes."""
    if isinstance(argv, str | bytes):
        raise SandboxError("a command is a list of arguments, not a string")
    args = list(argv)
    if not args:
        raise SandboxError("empty command")
    for arg in args:
        if not isinstance(arg, str):
            raise SandboxError(f"command arguments are strings, not {type(arg).__name__}")
        if "\0" in arg:
            raise SandboxError("a command argument contains a NUL byte")
    return args


def merge_env(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """Later layers win. Names must be non-empty without ``=`` or NUL; values without NUL."""
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise SandboxError(f"invalid environment variable {key!r}")
            merged[key] = value
    return merged


def check_timeout(timeout: float) -> float:
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, not {timeout!r}")
    return timeout


class OutputBuffer:
    """Collects one stream of a command's output up to ``limit`` bytes."""

    def __init__(self, what: str, limit: int = MAX_OUTPUT_BYTES) -> None:
        self._what = what
        self._limit = limit
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        if len(self._data) + len(chunk) > self._limit:
            raise SandboxError(f"{self._what} is over {self._limit} bytes")
        self._data += chunk

    def value(self) -> bytes:
        return bytes(self._data)


async def poll_until(
    done: Callable[[], Awaitable[bool]], *, first: float = 0.005, most: float = 0.25
) -> None:
    """Until ``done()`` answers true, asking again after a delay that doubles from
    ``first`` up to ``most``. For state that lives elsewhere (the engine, /proc), where
    there is no event to wait on. Bound it from outside."""
    delay = first
    while not await done():
        await trio.sleep(delay)
        delay = min(delay * 2, most)


@final
class Chunks:
    """An async iterator over what ``receive()`` hands out, until it answers None. Not
    an async generator: a reader may stop early with nothing to clean up (and no
    warning from trio's generator finalizer)."""

    def __init__(self, receive: Callable[[], Awaitable[bytes | None]]) -> None:
        self._receive = receive

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._receive()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class _Running(Protocol):
    async def wait(self) -> int: ...
    async def kill(self) -> None: ...
    def output(self) -> AsyncIterator[bytes]: ...


async def feed(process: Process, data: bytes) -> None:
    """Write all of ``data`` to its stdin, then close it; a process that stopped
    reading is not an error here."""
    try:
        if data:
            await process.write(data)
    except SandboxError:
        pass
    await process.close_stdin()


async def run_to_completion(
    process: Process,
    what: str,
    *,
    stdin: bytes | None,
    timeout: float,
    collect: Callable[[OutputBuffer, OutputBuffer], Awaitable[None]],
) -> ExecResult:
    """The end of an exec: ``stdin`` fed (then closed) while ``collect`` reads stdout
    and stderr into the buffers, then the exit code. Past ``timeout`` the process is
    killed and SandboxError raised; it is killed on any other way out too."""
    out, err = OutputBuffer("stdout"), OutputBuffer("stderr")
    try:
        with trio.fail_after(timeout):
            # Tasks of this call alone: stdin is fed while the output is read, so
            # neither side can fill up and stall the other.
            async with trio.open_nursery() as nursery:
                if stdin is not None:
                    nursery.start_soon(feed, process, stdin)
                await collect(out, err)
                nursery.cancel_scope.cancel()
            code = await process.wait()
    except trio.TooSlowError:
        raise SandboxError(f"{what} did not finish within {timeout} s and was killed") from None
    finally:
        await process.kill()  # nothing to do once it has exited
    return ExecResult(exit_code=code, stdout=out.value(), stderr=err.value())


async def stream_output(
    start: Callable[[], Awaitable[_Running]], what: str
) -> AsyncIterator[bytes]:
    """exec_stream: start the process, yield its output as it comes, kill it however
    the reader leaves (use ``contextlib.aclosing`` to leave early), and raise
    SandboxError at the end when it exited non-zero."""
    process = await start()
    try:
        async for chunk in process.output():
            yield chunk
        code = await process.wait()
    finally:
        await process.kill()
    if code != 0:
        raise SandboxError(f"{what} exited with {code}")
