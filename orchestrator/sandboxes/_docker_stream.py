"""An attached docker exec, driven from trio.

``exec_start(socket=True)`` (run in a worker thread) answers ``101 Switching
Protocols`` and hands back the connection. :func:`hijack` takes it from docker-py:
it drains the bytes the HTTP parser may already have buffered past the response
headers (a process that writes at once has its first frames there, not in the socket),
duplicates the socket and closes docker-py's response, so that trio owns the only
copy. :class:`Multiplexed` then speaks docker's stream format over it: our writes go
to the process's stdin, half-closing the socket closes its stdin, and what comes back
is framed: an 8-byte header (stream type: 1 stdout, 2 stderr; three zero bytes; a
big-endian 32-bit length) and the payload.
"""

from __future__ import annotations

import collections
import logging
import socket
from typing import Any, Final, final

import trio

from .base import SandboxError

__all__ = ["STDERR", "STDOUT", "Multiplexed", "hijack"]

logger = logging.getLogger(__name__)

STDOUT: Final = 1
STDERR: Final = 2
_HEADER = 8
_RECEIVE = 64 * 1024
# stderr nobody reads is kept up to this many bytes; the oldest is dropped beyond.
_STDERR_KEEP = 1024 * 1024


def hijack(handle: Any) -> tuple[socket.socket, bytes]:
    """From what ``APIClient.exec_start(..., socket=True)`` returned: a socket of our
    own and the bytes already read past the HTTP headers. Blocking: run it in the
    worker thread that called ``exec_start``."""
    raw = getattr(handle, "_sock", None)  # socket.SocketIO (unix and plain tcp engines)
    response = getattr(handle, "_response", None)
    if not isinstance(raw, socket.socket) or response is None:
        _close_quietly(handle)
        raise SandboxError(
            "attached exec needs an engine on a unix or plain tcp socket "
            f"(docker-py gave {type(handle).__name__})"
        )
    try:
        buffered = response.raw._fp.fp  # the http.client reader over the socket
        pending = bytearray()
        raw.setblocking(False)  # read1 then returns b"" instead of waiting
        while chunk := buffered.read1(_RECEIVE):
            pending += chunk
        own = raw.dup()
    finally:
        response.close()
        _close_quietly(handle)
    return own, bytes(pending)


def _close_quietly(handle: Any) -> None:
    try:
        handle.close()
    except OSError:
        pass


@final
class Multiplexed:
    """Docker's multiplexed stdin/stdout/stderr on one hijacked socket.

    Readers pull frames on demand, one frame per turn of a lock, so a reader of stdout
    and a reader of stderr can wait at the same time: each frame lands in its stream's
    queue and wakes the next waiter. stdout is never dropped (unread, it holds the
    process back as a pipe would); stderr that nobody reads is kept up to 1 MiB.
    """

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._buffer = bytearray(pending)
        self._queues: dict[int, collections.deque[bytes]] = {
            STDOUT: collections.deque(),
            STDERR: collections.deque(),
        }
        self._stderr_size = 0
        self._read_lock = trio.Lock()
        self._write_lock = trio.Lock()
        self._eof = False
        self._stdin_closed = False
        self._closed = False

    # -- stdin ---------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            if self._stdin_closed or self._closed:
                raise SandboxError("stdin is closed")
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise SandboxError(f"the process no longer reads its stdin ({exc})") from None

    async def close_stdin(self) -> None:
        async with self._write_lock:
            if self._stdin_closed or self._closed:
                return
            self._stdin_closed = True
            try:
                await self._stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass

    # -- output --------------------------------------------------------------------

    async def frame(self) -> tuple[int, bytes] | None:
        """The next frame off the socket, whichever stream it belongs to; None at the
        end. For a single reader of everything (exec, exec_stream)."""
        while len(self._buffer) < _HEADER or len(self._buffer) < _HEADER + self._size():
            if not await self._receive():
                if self._buffer:
                    logger.warning("docker exec stream ended inside a frame")
                return None
        size = self._size()
        kind = STDERR if self._buffer[0] == STDERR else STDOUT  # 0 (stdin echo) -> stdout
        payload = bytes(self._buffer[_HEADER : _HEADER + size])
        del self._buffer[: _HEADER + size]
        return kind, payload

    async def any(self) -> bytes | None:
        """The next payload whichever stream it belongs to; None at the end."""
        found = await self.frame()
        return None if found is None else found[1]

    async def next(self, kind: int) -> bytes | None:
        """The next chunk of one stream (STDOUT or STDERR); None at its end."""
        queue = self._queues[kind]
        while True:
            if queue:
                chunk = queue.popleft()
                if kind == STDERR:
                    self._stderr_size -= len(chunk)
                return chunk
            if self._eof:
                return None
            async with self._read_lock:
                if queue or self._eof:
                    continue
                found = await self.frame()
                if found is None:
                    self._eof = True
                else:
                    self._queue(*found)

    def _queue(self, kind: int, payload: bytes) -> None:
        if not payload:
            return
        self._queues[kind].append(payload)
        if kind == STDERR:
            self._stderr_size += len(payload)
            stderr = self._queues[STDERR]
            while self._stderr_size > _STDERR_KEEP and len(stderr) > 1:
                self._stderr_size -= len(stderr.popleft())

    def _size(self) -> int:
        return int.from_bytes(self._buffer[4:_HEADER], "big")

    async def _receive(self) -> bool:
        if self._closed:
            return False
        try:
            chunk = await self._stream.receive_some(_RECEIVE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        self._buffer += chunk
        return bool(chunk)

    def close(self) -> None:
        """Close the socket (sync, so it is safe in cancelled cleanup). The process
        itself keeps running: docker does not kill an exec whose connection closes."""
        if not self._closed:
            self._closed = True
            self._eof = True
            self._stream.socket.close()
