"""Helpers of the sandbox tests: reading a process's output, and the process list a
sandbox's processes show up in."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import trio

from orchestrator.sandboxes import DockerSandbox, Process, Sandbox

# Echoes each line of stdin upper-cased; a second argument (ignored) tags the process.
UPPER = (
    "import sys\n"
    "for line in sys.stdin:\n"
    "    sys.stdout.write(line.upper())\n"
    "    sys.stdout.flush()\n"
)

_LIST = (
    "import os\n"
    "for pid in os.listdir('/proc'):\n"
    "    if pid.isdigit():\n"
    "        try:\n"
    "            line = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
    "        except OSError:\n"
    "            continue\n"
    "        print(line.replace(b'\\0', b' ').decode(errors='replace'))\n"
)


async def read_until(chunks: AsyncIterator[bytes], expected: bytes, timeout: float = 15) -> bytes:
    """What a process's stdout (or stderr) yields until it holds ``expected`` (or
    ends). Leaving it early needs no clean-up: it is no generator."""
    seen = b""
    with trio.fail_after(timeout):
        async for chunk in chunks:
            seen += chunk
            if expected in seen:
                break
    return seen


async def read_all(chunks: AsyncIterator[bytes], timeout: float = 15) -> bytes:
    """All of it: exec_stream's generator is exhausted, so it needs no aclose."""
    seen = b""
    with trio.fail_after(timeout):
        async for chunk in chunks:
            seen += chunk
    return seen


def _host_command_lines() -> list[str]:
    lines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    lines.append(cmdline.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines


async def command_lines(sandbox: Sandbox) -> list[str]:
    """The command lines of the processes that may be the sandbox's: the container's
    own process list, or this machine's for a local sandbox."""
    if isinstance(sandbox, DockerSandbox):
        result = await sandbox.exec(["python3", "-c", _LIST])
        assert result.ok, result
        return result.stdout.decode().splitlines()
    return await trio.to_thread.run_sync(_host_command_lines)


async def running_with(sandbox: Sandbox, token: str) -> list[str]:
    return [line for line in await command_lines(sandbox) if token in line]


async def echo_round_trip(process: Process, line: bytes, expected: bytes) -> None:
    await process.write(line)
    assert await read_until(process.stdout(), expected) == expected
