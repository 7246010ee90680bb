"""The on-disk journal of the embedded store.

Layout under the data directory::

    streams/<id>/meta.json   the stream's fixed configuration (written once, atomically)
    streams/<id>/log         its changes, as checksummed frames, appended and fsynced
    trash/<id>/              streams being removed (a rename makes removal atomic)

A frame is ``<u32 length><u32 crc32>`` then ``length`` bytes of body. Recovery reads
frames up to the first torn or corrupt one and truncates the log there: whatever was
not wholly on disk was never acknowledged.

Appends use group commit: concurrent appenders queue their frames; whoever takes the
commit lock writes every queued frame (for every stream), fsyncs each touched log once,
and wakes them all.

A record's payload is the last bytes of its frame's body, so it ends where the frame
ends: appending, creating and loading tell each payload's position in the log, and
:meth:`Journal.read` reads payloads back from there. Logs only grow, except that a
failed write is cut off again (it was never acknowledged, so no payload of it is
known to anyone).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

from ._errors import StorageError

__all__ = ["Frame", "Journal", "LoadedStream", "LogFile"]

_HEADER = struct.Struct("<II")
_PRODUCER = struct.Struct("<QQ")
_U16 = struct.Struct("<H")

KIND_APPEND = 1
KIND_SOFT_DELETE = 2

_CLOSE = 1
_PRODUCER_FLAG = 2
_STREAM_SEQ = 4
_PAYLOAD = 8


@attrs.frozen
class Frame:
    """One durable change of a stream."""

    kind: int = KIND_APPEND
    payload: bytes | None = None  # a record, if the change adds one
    close: bool = False
    producer: tuple[str, int, int] | None = None  # id, epoch, seq
    stream_seq: str | None = None

    def encode(self) -> bytes:
        flags = 0
        parts: list[bytes] = []
        if self.close:
            flags |= _CLOSE
        if self.producer is not None:
            flags |= _PRODUCER_FLAG
            pid = self.producer[0].encode()
            parts += [_U16.pack(len(pid)), pid, _PRODUCER.pack(self.producer[1], self.producer[2])]
        if self.stream_seq is not None:
            flags |= _STREAM_SEQ
            seq = self.stream_seq.encode()
            parts += [_U16.pack(len(seq)), seq]
        if self.payload is not None:
            flags |= _PAYLOAD
            parts.append(self.payload)
        body = bytes((self.kind, flags)) + b"".join(parts)
        return _HEADER.pack(len(body), zlib.crc32(body)) + body

    @classmethod
    def decode(cls, body: bytes) -> Frame:
        kind, flags = body[0], body[1]
        at = 2
        producer = stream_seq = None
        if flags & _PRODUCER_FLAG:
            (size,) = _U16.unpack_from(body, at)
            at += 2
            pid = body[at : at + size].decode()
            at += size
            epoch, seq = _PRODUCER.unpack_from(body, at)
            at += _PRODUCER.size
            producer = (pid, epoch, seq)
        if flags & _STREAM_SEQ:
            (size,) = _U16.unpack_from(body, at)
            at += 2
            stream_seq = body[at : at + size].decode()
            at += size
        payload = bytes(body[at:]) if flags & _PAYLOAD else None
        return cls(kind, payload, bool(flags & _CLOSE), producer, stream_seq)


def read_frames(data: bytes) -> tuple[list[Frame], list[int], int]:
    """The whole frames at the start of ``data``, where each one's payload starts in
    ``data`` (-1 for a frame without one), and the length they cover."""
    frames: list[Frame] = []
    positions: list[int] = []
    at = 0
    while at + _HEADER.size <= len(data):
        size, crc = _HEADER.unpack_from(data, at)
        start = at + _HEADER.size
        body = data[start : start + size]
        if len(body) < size or size < 2 or zlib.crc32(body) != crc:
            break
        try:
            frame = Frame.decode(body)
        except (struct.error, UnicodeDecodeError):
            break
        at = start + size
        frames.append(frame)
        positions.append(-1 if frame.payload is None else at - len(frame.payload))
    return frames, positions, at


def _positions(frames: list[Frame], encoded: list[bytes], start: int) -> list[int]:
    """Where the payload of each of ``frames`` (-1: none) starts once ``encoded`` (their
    encodings) are written at ``start``: a payload ends where its frame ends."""
    positions: list[int] = []
    for frame, data in zip(frames, encoded, strict=True):
        start += len(data)
        positions.append(-1 if frame.payload is None else start - len(frame.payload))
    return positions


@attrs.define(eq=False)
class LogFile:
    """An open stream log."""

    id: str
    directory: Path
    fd: int
    size: int  # bytes known to be on disk
    generation: int = 0  # bumped when a write fails: later queued frames are dropped
    closed: bool = False  # set before the fd is closed: a read that raced it is void


@attrs.frozen
class LoadedStream:
    log: LogFile
    meta: dict[str, Any]
    frames: list[Frame]
    positions: list[int]  # where each frame's payload starts in the log (-1: none)


@attrs.define(eq=False)
class _Queued:
    log: LogFile
    data: bytes
    payload_size: int  # -1: the frame adds no record
    generation: int
    done: bool = False
    error: str | None = None
    position: int = -1  # where the payload starts in the log, once written


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_spans(spans: list[tuple[LogFile, int, int]]) -> list[bytes]:
    out: list[bytes] = []
    for log, position, size in spans:
        parts: list[bytes] = []
        got = 0
        try:
            while got < size:
                if log.closed:
                    raise StorageError(f"the log of stream {log.id} was closed during a read")
                part = os.pread(log.fd, size - got, position + got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except OSError as exc:
            raise StorageError(f"could not read the log of stream {log.id}: {exc}") from exc
        if got != size:
            raise StorageError(
                f"the log of stream {log.id} is shorter than its index says: "
                f"{got} of {size} bytes at {position}"
            )
        out.append(b"".join(parts))
    return out


class Journal:
    """Durable storage of stream logs under ``root`` (see the module docstring)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.streams_dir = self.root / "streams"
        self.trash_dir = self.root / "trash"
        self._queue: list[_Queued] = []
        self._lock = trio.Lock()
        self._limiter = trio.CapacityLimiter(1)  # commits, one at a time
        self._meta_limiter = trio.CapacityLimiter(1)  # creations and removals
        self._logs: set[LogFile] = set()

    # -- start-up (synchronous: runs before serving) -----------------------------------

    def load(self) -> Iterator[LoadedStream]:
        """Open every stream on disk, truncating torn tails; empties the trash. One
        stream at a time: a stream's frames are in memory only until the next one."""
        self.streams_dir.mkdir(parents=True, exist_ok=True)
        self.trash_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.trash_dir, ignore_errors=True)
        self.trash_dir.mkdir(exist_ok=True)
        for directory in sorted(self.streams_dir.iterdir()):
            meta_path = directory / "meta.json"
            if not meta_path.exists():
                # a creation that never completed: nothing was acknowledged
                shutil.rmtree(directory, ignore_errors=True)
                continue
            meta = json.loads(meta_path.read_text())
            log_path = directory / "log"
            data = log_path.read_bytes()
            frames, positions, good = read_frames(data)
            fd = os.open(log_path, os.O_RDWR | os.O_APPEND)
            if good != len(data):
                os.ftruncate(fd, good)
                os.fsync(fd)
            log = LogFile(directory.name, directory, fd, good)
            self._logs.add(log)
            yield LoadedStream(log, meta, frames, positions)

    def reload(self, log: LogFile) -> tuple[list[Frame], list[int]]:
        """The frames on disk of one log (after a failed write was rolled back), and
        where their payloads start."""
        data = (log.directory / "log").read_bytes()[: log.size]
        frames, positions, _ = read_frames(data)
        return frames, positions

    # -- changes -----------------------------------------------------------------------

    async def create(self, meta: dict[str, Any], frames: list[Frame]) -> tuple[LogFile, list[int]]:
        """A new stream directory holding ``meta`` and ``frames``, durably, and where
        their payloads start in its log. The meta file appears last: a crash before it
        leaves nothing behind."""
        return await trio.to_thread.run_sync(self._create, meta, frames, limiter=self._meta_limiter)

    def _create(self, meta: dict[str, Any], frames: list[Frame]) -> tuple[LogFile, list[int]]:
        ident = uuid.uuid4().hex
        directory = self.streams_dir / ident
        encoded = [frame.encode() for frame in frames]
        try:
            directory.mkdir()
            data = b"".join(encoded)
            fd = os.open(directory / "log", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                _write_all(fd, data)
                os.fsync(fd)
                tmp = directory / "meta.json.tmp"
                tmp.write_text(json.dumps(meta))
                with tmp.open("rb") as handle:
                    os.fsync(handle.fileno())
                tmp.rename(directory / "meta.json")
                _fsync_dir(directory)
                _fsync_dir(self.streams_dir)
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise StorageError(f"could not create the stream on disk: {exc}") from exc
        log = LogFile(ident, directory, fd, len(data))
        self._logs.add(log)
        return log, _positions(frames, encoded, 0)

    async def append(self, log: LogFile, frame: Frame) -> int:
        """Write ``frame`` to ``log`` and return once it is on disk, with where its
        payload starts in the log (-1 if it has none).

        Shielded from cancellation: once queued, a frame is committed (or fails) even
        if its caller goes away, so that what the store promised is what is on disk.

        Raises:
            StorageError: the write or fsync failed; the log was rolled back.
        """
        payload_size = -1 if frame.payload is None else len(frame.payload)
        item = _Queued(log, frame.encode(), payload_size, log.generation)
        self._queue.append(item)
        with trio.CancelScope(shield=True):
            async with self._lock:
                if not item.done:
                    batch, self._queue = self._queue, []
                    await trio.to_thread.run_sync(self._commit, batch, limiter=self._limiter)
        if item.error is not None:
            raise StorageError(item.error)
        return item.position

    @staticmethod
    def _commit(batch: list[_Queued]) -> None:
        by_log: dict[LogFile, list[_Queued]] = {}
        for item in batch:
            if item.generation != item.log.generation:
                item.error = "an earlier write to this stream failed; nothing was written"
                item.done = True
                continue
            by_log.setdefault(item.log, []).append(item)
        for log, items in by_log.items():
            data = b"".join(item.data for item in items)
            error: str | None = None
            try:
                if os.lseek(log.fd, 0, os.SEEK_END) != log.size:
                    # a failed write was not cut off: payload positions count from size
                    os.ftruncate(log.fd, log.size)
                _write_all(log.fd, data)
                os.fdatasync(log.fd)
            except OSError as exc:
                error = f"could not write to the stream's log: {exc}"
                log.generation += 1
                try:
                    os.ftruncate(log.fd, log.size)
                except OSError:
                    pass
            else:
                for item in items:
                    log.size += len(item.data)
                    if item.payload_size >= 0:
                        item.position = log.size - item.payload_size
            for item in items:
                item.error = error
                item.done = True

    async def read(self, spans: list[tuple[LogFile, int, int]]) -> list[bytes]:
        """The ``size`` bytes at ``position`` of each ``(log, position, size)``, read in
        one worker thread.

        A log closed meanwhile (its stream removed, the journal closed) may have had its
        fd number reused: what was read then is void, so callers check ``log.closed``
        after this returns, and before trusting an error.

        Raises:
            StorageError: a read failed or came back short.
        """
        return await trio.to_thread.run_sync(_read_spans, spans)

    async def soft_delete(self, log: LogFile) -> None:
        await self.append(log, Frame(kind=KIND_SOFT_DELETE))

    async def remove(self, log: LogFile) -> None:
        """Remove a stream's directory: atomically gone at the rename."""
        await trio.to_thread.run_sync(self.remove_now, log, limiter=self._meta_limiter)

    def remove_now(self, log: LogFile) -> None:
        """Blocking :meth:`remove` (for start-up)."""
        self._logs.discard(log)
        log.closed = True
        try:
            os.close(log.fd)
        except OSError:
            pass
        target = self.trash_dir / log.id
        try:
            log.directory.rename(target)
            _fsync_dir(self.streams_dir)
        except OSError as exc:
            raise StorageError(f"could not remove the stream from disk: {exc}") from exc
        shutil.rmtree(target, ignore_errors=True)

    def close(self) -> None:
        for log in self._logs:
            log.closed = True
            try:
                os.close(log.fd)
            except OSError:
                pass
        self._logs.clear()
