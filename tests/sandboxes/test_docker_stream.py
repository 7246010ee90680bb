"""Docker's attach stream on a real socket pair, without an engine: the bytes the HTTP
parser read past the 101 response are kept, frames split anywhere are put together,
stdout and stderr are demultiplexed, and half-closing reaches the other side."""

from __future__ import annotations

import itertools
import socket
from types import SimpleNamespace
from typing import Any

import trio

from orchestrator.sandboxes._docker_stream import STDERR, STDOUT, Multiplexed, hijack

UPGRADE = b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"


def frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


class _Response:
    """Stands in for the requests response docker-py keeps on the socket it hands
    out: ``raw._fp.fp`` is the buffered reader that parsed the headers."""

    def __init__(self, reader: Any) -> None:
        self.raw = SimpleNamespace(_fp=SimpleNamespace(fp=reader))
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.raw._fp.fp.close()


def hijacked(ours: socket.socket) -> tuple[socket.socket, bytes, _Response]:
    reader = ours.makefile("rb")
    while reader.readline() not in (b"\r\n", b""):  # what http.client does
        pass
    handle: Any = reader.raw  # socket.SocketIO, as docker-py returns for unix sockets
    response = _Response(reader)
    handle._response = response
    sock, pending = hijack(handle)
    return sock, pending, response


async def test_bytes_buffered_past_the_headers_are_kept() -> None:
    ours, engine = socket.socketpair()
    with engine:
        engine.sendall(UPGRADE + frame(STDOUT, b"early\n") + frame(STDERR, b"warn\n"))
        sock, pending, response = hijacked(ours)
        ours.close()
        assert response.closed
        assert pending == frame(STDOUT, b"early\n") + frame(STDERR, b"warn\n")
        stream = Multiplexed(sock, pending)
        try:
            engine.sendall(frame(STDOUT, b"later\n"))
            engine.shutdown(socket.SHUT_WR)
            assert await stream.next(STDOUT) == b"early\n"
            assert await stream.next(STDOUT) == b"later\n"
            assert await stream.next(STDOUT) is None
            assert await stream.next(STDERR) == b"warn\n"
            assert await stream.next(STDERR) is None
        finally:
            stream.close()


async def test_frames_split_anywhere_are_joined_and_stdin_half_closes() -> None:
    ours, engine = socket.socketpair()
    with engine:
        engine.sendall(UPGRADE)
        sock, pending, _ = hijacked(ours)
        ours.close()
        assert pending == b""
        stream = Multiplexed(sock, pending)
        try:
            data = frame(STDOUT, b"x" * 70_000) + frame(STDERR, b"e") + frame(STDOUT, b"y")

            # Cut inside headers and payloads alike.
            cuts = [0, 1, 5, 8, 9, 40_000, 70_007, 70_009, 70_015, 70_017, 70_020, len(data)]

            async def engine_side() -> None:
                for start, end in itertools.pairwise(cuts):
                    await trio.to_thread.run_sync(engine.sendall, data[start:end])
                    await trio.sleep(0.001)
                engine.shutdown(socket.SHUT_WR)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(engine_side)
                frames = []
                while (found := await stream.frame()) is not None:
                    frames.append(found)
            assert frames == [(STDOUT, b"x" * 70_000), (STDERR, b"e"), (STDOUT, b"y")]
            await stream.write(b"to stdin")
            await stream.close_stdin()
            received = b""
            while chunk := await trio.to_thread.run_sync(engine.recv, 1024):
                received += chunk
            assert received == b"to stdin"
        finally:
            stream.close()
