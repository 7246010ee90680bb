"""The embedded store: every stream's state in memory, optionally journaled to disk.

:class:`MemoryStore` keeps nothing on disk. :class:`DiskStore` writes every change to
a per-stream log and fsyncs it (group commit) before the change is acknowledged or
becomes visible to readers; on open it rebuilds every stream from the logs. It keeps
in memory each record's end offset and position in its log (compact arrays), but only
a budget of payload bytes (:class:`_Cache`): the others are read back from the logs,
one worker-thread call per page.

One set of rules serves both: validation and offsets are decided synchronously when
the request arrives (trio runs it without interruption), so concurrent requests never
interleave inside a decision; what a decision wrote becomes visible once it is durable.
"""

from __future__ import annotations

import bisect
import json
import math
import time
from array import array
from collections import OrderedDict, deque
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from ._errors import (
    BadRequest,
    Conflict,
    Fenced,
    SequenceGap,
    StorageError,
    StreamClosed,
    StreamGone,
    StreamNotFound,
)
from ._journal import KIND_SOFT_DELETE, Frame, Journal, LogFile
from ._offsets import BEFORE_START, NOW, format_offset, parse_offset
from .store import (
    DEFAULT_CONTENT_TYPE,
    AppendRequest,
    AppendResult,
    CreateRequest,
    CreateResult,
    Producer,
    ReadResult,
    Store,
    StreamInfo,
    check_wait,
    is_json,
    media_type,
)

__all__ = ["DiskStore", "LocalStore", "MemoryStore", "parse_expires_at"]

PRODUCER_STATE_TTL = 7 * 24 * 3600.0
DEFAULT_MAX_READ_BYTES = 4 * 1024 * 1024
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


def parse_expires_at(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp, or None if it is not one."""
    candidate = text.strip()
    if candidate[-1:] in ("Z", "z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def encode_json_append(body: bytes, *, initial: bool) -> bytes | None:
    """The stored form of a JSON append: its values, compact, comma-joined. A top-level
    array is flattened one level. ``[]`` is an empty create (None) or a 400."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if not isinstance(value, list):
        value = [value]
    elif not value:
        if initial:
            return None
        raise BadRequest("empty JSON arrays cannot be appended")
    # One C-accelerated dump of the whole list; without its brackets it is exactly the
    # values, compact and comma-joined.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)[
        1:-1
    ].encode("utf-8")


class _Cache:
    """The payloads a store holds in memory, across its streams, within ``budget``
    bytes. Each stream holds a window of its latest records (``_Stream.held``, from
    ``held_from`` to its tail); beyond the budget, the least recently used stream (by
    append or read) gives up its oldest ones first. A record not yet on disk is
    pinned: a window never gives it up. The bookkeeping is one deque slot per record
    held and one entry per stream: small events cost little more than their bytes."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.held = 0  # payload bytes in memory, pinned ones included
        self._order: OrderedDict[_Stream, None] = OrderedDict()  # streams holding some

    def add(self, stream: _Stream, index: int, payload: bytes) -> None:
        """Record ``index`` was just added to ``stream`` (its last)."""
        if stream.dead:
            return
        if not stream.held:
            stream.held_from = index
        stream.held.append(payload)
        self.held += len(payload)
        self.touch(stream)
        self.trim()

    def touch(self, stream: _Stream) -> None:
        if stream.held:
            self._order[stream] = None
            self._order.move_to_end(stream)

    def forget(self, stream: _Stream) -> None:
        """Drop every payload of ``stream``, pinned ones too."""
        self.held -= sum(len(payload) for payload in stream.held)
        stream.held.clear()
        stream.held_from = len(stream.ends)
        self._order.pop(stream, None)

    def trim(self) -> None:
        if self.held <= self.budget:
            return
        emptied: list[_Stream] = []
        for stream in self._order:  # least recently used first
            held, positions = stream.held, stream.positions
            while held and self.held > self.budget and positions[stream.held_from] >= 0:
                self.held -= len(held.popleft())
                stream.held_from += 1
            if not held:
                emptied.append(stream)
            if self.held <= self.budget:
                break
        for stream in emptied:
            del self._order[stream]


class _Stream:
    """One stream's state. Fields prefixed ``visible_`` are what readers see: the
    durable prefix of what has been decided."""

    def __init__(
        self,
        path: str,
        content_type: str,
        *,
        cache: _Cache,
        ttl: int | None,
        expires_at: str | None,
        base: _Stream | None = None,
        base_end: int = 0,
        fork_offset: str | None = None,
        fork_sub_offset: int = 0,
    ) -> None:
        self.path = path
        self.content_type = content_type
        self.json = is_json(content_type)
        self.ttl = ttl
        self.expires_at = expires_at
        self.expires_ts = parse_expires_at(expires_at) if expires_at else None
        self.base = base
        self.base_end = base_end
        self.fork_offset = fork_offset
        self.fork_sub_offset = fork_sub_offset
        self.cache = cache
        self.ends = array("q")  # each record's end offset
        self.positions = array("q")  # where its payload starts in the log; -1: not yet
        # the payloads in memory: records held_from.. (to the tail), see _Cache
        self.held: deque[bytes] = deque()
        self.held_from = 0
        self.tail = base_end
        self.closed = False
        self.closed_by: Producer | None = None
        self.producers: dict[str, tuple[int, int, float]] = {}
        self.last_seq: str | None = None
        self.visible_count = 0
        self.visible_tail = base_end
        self.visible_closed = False
        self.frame_seq = 0
        self.pending: deque[tuple[int, int, int, bool]] = deque()
        self.refcount = 0
        self.soft_deleted = False
        self.dead = False
        self.last_access = time.time()
        self.changed = trio.Event()
        self.log: LogFile | None = None

    # -- state changes (decided synchronously) -----------------------------------------

    def add_record(self, payload: bytes, position: int = -1) -> int:
        """Add a record whose payload starts at ``position`` in the log (-1: it is not
        on disk yet, so it stays in memory until :meth:`stored`)."""
        index = len(self.ends)
        self.tail += len(payload)
        self.ends.append(self.tail)
        self.positions.append(position)
        self.cache.add(self, index, payload)
        return self.tail

    def stored(self, index: int, position: int) -> None:
        """Record ``index`` is on disk, its payload at ``position``."""
        if index < len(self.positions) and self.positions[index] < 0:
            self.positions[index] = position
            self.cache.trim()  # it may be given up now

    def apply(self, frame: Frame, now: float, position: int = -1) -> None:
        """Replay one journal frame (its payload at ``position`` in the log)."""
        if frame.kind == KIND_SOFT_DELETE:
            self.soft_deleted = True
            return
        if frame.payload is not None:
            self.add_record(frame.payload, position)
        if frame.producer is not None:
            pid, epoch, seq = frame.producer
            self.producers[pid] = (epoch, seq, now)
        if frame.stream_seq is not None:
            self.last_seq = frame.stream_seq
        if frame.close:
            self.closed = True
            if frame.producer is not None:
                self.closed_by = Producer(*frame.producer)

    def publish_all(self) -> None:
        self.pending.clear()
        self.visible_count = len(self.ends)
        self.visible_tail = self.tail
        self.visible_closed = self.closed
        self.notify()

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def expired(self, now: float) -> bool:
        if self.expires_ts is not None and now >= self.expires_ts:
            return True
        return self.ttl is not None and now >= self.last_access + self.ttl

    def info(self) -> StreamInfo:
        return StreamInfo(
            path=self.path,
            content_type=self.content_type,
            next_offset=format_offset(self.visible_tail),
            closed=self.visible_closed,
            ttl=self.ttl,
            expires_at=self.expires_at,
        )

    # -- reading -----------------------------------------------------------------------

    def record_size(self, index: int) -> int:
        return self.ends[index] - (self.ends[index - 1] if index else self.base_end)

    def page(
        self, position: int, cap: int, budget: float
    ) -> tuple[list[tuple[_Stream, int, int]], int, bool]:
        """The visible records ending after ``position`` and at or before ``cap``,
        through the fork chain, up to ``budget`` bytes (at least one record), as
        ``(stream, first, stop)`` index ranges; their size; and whether more follow.
        A page never walks the rest of a long stream."""
        found: list[tuple[_Stream, int, int]] = []
        size = 0
        if self.base is not None and position < self.base_end:
            found, size, more = self.base.page(position, min(cap, self.base_end), budget)
            if more:
                return found, size, True
        first = index = bisect.bisect_right(self.ends, position, 0, self.visible_count)
        more = False
        while index < self.visible_count and self.ends[index] <= cap:
            record = self.record_size(index)
            if (found or index > first) and size + record > budget:
                more = True
                break
            size += record
            index += 1
        if index > first:
            found.append((self, first, index))
        return found, size, more


class LocalStore(Store):
    """The embedded store. Use :class:`MemoryStore` or :class:`DiskStore`."""

    def __init__(
        self,
        journal: Journal | None = None,
        *,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        cache_bytes: float = math.inf,
    ) -> None:
        if journal is None:
            cache_bytes = math.inf  # nowhere else to read payloads from
        if math.isnan(cache_bytes) or cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, not {cache_bytes!r}")
        self._journal = journal
        self._cache = _Cache(cache_bytes)
        self._streams: dict[str, _Stream] = {}
        self._meta_lock = trio.Lock()
        self._max_read_bytes = max_read_bytes
        self._closed = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in self._streams.values():
            stream.notify()
        if self._journal is not None:
            self._journal.close()

    def held_bytes(self) -> int:
        """Payload bytes held in memory, across every stream."""
        return self._cache.held

    # -- lookup ------------------------------------------------------------------------

    async def _get(self, path: str, *, gone_ok: bool = False) -> _Stream:
        stream = self._streams.get(path)
        if stream is None:
            raise StreamNotFound(f"stream not found: {path}")
        if stream.expired(time.time()):
            if stream.refcount > 0:
                stream.soft_deleted = True
            else:
                await self._destroy(stream)
                raise StreamNotFound(f"stream not found: {path}")
        if stream.soft_deleted and not gone_ok:
            raise StreamGone(f"stream was deleted: {path}")
        return stream

    # -- create ------------------------------------------------------------------------

    async def create(self, path: str, request: CreateRequest) -> CreateResult:
        async with self._meta_lock:
            existing = self._streams.get(path)
            if existing is not None and existing.expired(time.time()):
                if existing.refcount > 0:
                    existing.soft_deleted = True
                else:
                    await self._destroy(existing)
                    existing = None
            if existing is not None:
                return CreateResult(False, self._confirm(existing, request))
            stream = self._new_stream(path, request)
            frames = await self._initial_frames(stream, request)
            positions = [-1] * len(frames)
            if self._journal is not None:
                stream.log, positions = await self._journal.create(self._meta(stream), frames)
            for frame, position in zip(frames, positions, strict=True):
                stream.apply(frame, time.time(), position)
            stream.publish_all()
            if stream.base is not None:
                stream.base.refcount += 1
            self._streams[path] = stream
            return CreateResult(True, stream.info())

    def _confirm(self, existing: _Stream, request: CreateRequest) -> StreamInfo:
        if existing.soft_deleted:
            raise Conflict(
                "the stream was deleted but forks still read it: "
                "the path cannot be reused until they are gone"
            )
        fork = request.fork
        wanted_type = media_type(request.content_type) or (
            media_type(existing.content_type) if fork else DEFAULT_CONTENT_TYPE
        )
        same = (
            wanted_type == media_type(existing.content_type)
            and request.closed == existing.closed
            and (fork.source if fork else None) == (existing.base.path if existing.base else None)
            and (fork is None or fork.offset is None or fork.offset == existing.fork_offset)
            and (fork.sub_offset if fork else 0) == existing.fork_sub_offset
        )
        if fork is None or request.ttl is not None or request.expires_at is not None:
            same = same and request.ttl == existing.ttl
            same = same and request.expires_at == existing.expires_at
        if not same:
            raise Conflict("the stream exists with a different configuration")
        return existing.info()

    def _new_stream(self, path: str, request: CreateRequest) -> _Stream:
        fork = request.fork
        if fork is None:
            return _Stream(
                path,
                request.content_type or DEFAULT_CONTENT_TYPE,
                cache=self._cache,
                ttl=request.ttl,
                expires_at=request.expires_at,
            )
        source = self._streams.get(fork.source)
        if source is None or (source.expired(time.time()) and source.refcount == 0):
            raise StreamNotFound(f"fork source not found: {fork.source}")
        if source.soft_deleted:
            raise Conflict(f"the fork source was deleted: {fork.source}")
        if request.content_type and media_type(request.content_type) != media_type(
            source.content_type
        ):
            raise Conflict("the content type differs from the fork source's")
        if fork.offset is None:
            position = source.visible_tail
        else:
            parsed = parse_offset(fork.offset)
            if parsed is None:
                raise BadRequest(f"invalid Stream-Fork-Offset: {fork.offset!r}")
            if parsed > source.visible_tail:
                raise BadRequest("Stream-Fork-Offset is beyond the source's tail")
            position = parsed
        if request.ttl is not None or request.expires_at is not None:
            ttl, expires_at = request.ttl, request.expires_at
        else:
            ttl, expires_at = source.ttl, source.expires_at
        return _Stream(
            path,
            source.content_type,
            cache=self._cache,
            ttl=ttl,
            expires_at=expires_at,
            base=source,
            base_end=position,
            fork_offset=format_offset(position),
            fork_sub_offset=fork.sub_offset,
        )

    async def _initial_frames(self, stream: _Stream, request: CreateRequest) -> list[Frame]:
        frames: list[Frame] = []
        if stream.base is not None and stream.fork_sub_offset > 0:
            frames.append(Frame(payload=await self._sub_offset_prefix(stream)))
        payload: bytes | None = None
        if request.body:
            if stream.json:
                payload = encode_json_append(request.body, initial=True)
            else:
                payload = request.body
        if payload is not None or request.closed:
            frames.append(Frame(payload=payload, close=request.closed))
        return frames

    async def _sub_offset_prefix(self, stream: _Stream) -> bytes:
        base = stream.base
        assert base is not None
        page, _, _ = base.page(stream.base_end, base.visible_tail, 0)  # one record
        after = await self._records(base.path, page)
        if not after:
            raise BadRequest("Stream-Fork-Sub-Offset: the source has no data past the offset")
        first = after[0][1]
        count = stream.fork_sub_offset
        if stream.json:
            values = json.loads(b"[" + first + b"]")
            if count > len(values):
                raise BadRequest("Stream-Fork-Sub-Offset is past the end of that record")
            return ",".join(
                json.dumps(v, separators=(",", ":"), ensure_ascii=False) for v in values[:count]
            ).encode("utf-8")
        if count > len(first):
            raise BadRequest("Stream-Fork-Sub-Offset is past the end of that record")
        return first[:count]

    @staticmethod
    def _meta(stream: _Stream) -> dict[str, Any]:
        return {
            "path": stream.path,
            "content_type": stream.content_type,
            "ttl": stream.ttl,
            "expires_at": stream.expires_at,
            "fork": None
            if stream.base is None
            else {
                "source_id": stream.base.log.id if stream.base.log else None,
                "base_end": stream.base_end,
                "sub_offset": stream.fork_sub_offset,
            },
        }

    # -- head, delete ------------------------------------------------------------------

    async def head(self, path: str) -> StreamInfo:
        return (await self._get(path)).info()

    async def delete(self, path: str) -> None:
        async with self._meta_lock:
            stream = await self._get(path)
            if stream.refcount > 0:
                if self._journal is not None and stream.log is not None:
                    await self._journal.soft_delete(stream.log)
                stream.soft_deleted = True
                stream.notify()
                return
            await self._destroy(stream)

    async def _destroy(self, stream: _Stream) -> None:
        """Remove a stream for good, then any deleted source only it still read."""
        if stream.dead:
            return
        stream.dead = True
        self._cache.forget(stream)
        if self._streams.get(stream.path) is stream:
            del self._streams[stream.path]
        stream.notify()
        while stream.pending:
            await stream.changed.wait()
        if self._journal is not None and stream.log is not None:
            await self._journal.remove(stream.log)
        base = stream.base
        if base is not None:
            base.refcount -= 1
            if base.refcount == 0 and base.soft_deleted:
                await self._destroy(base)

    # -- append ------------------------------------------------------------------------

    async def append(self, path: str, request: AppendRequest) -> AppendResult:
        stream = await self._get(path)
        producer = request.producer
        if request.close and not request.body:
            return await self._close(stream, producer)
        if not request.body:
            raise BadRequest("an append needs a body")
        if stream.closed:
            if producer is not None and producer == stream.closed_by:
                return await self._duplicate(stream, producer, producer.seq)
            raise StreamClosed("the stream is closed", final_offset=format_offset(stream.tail))
        if request.content_type is None:
            raise BadRequest("an append needs a Content-Type")
        if media_type(request.content_type) != media_type(stream.content_type):
            raise Conflict(
                f"Content-Type {request.content_type!r} differs from the stream's "
                f"{stream.content_type!r}"
            )
        if producer is not None:
            highest = self._check_producer(stream, producer)
            if highest is not None:
                return await self._duplicate(stream, producer, highest)
        seq = request.stream_seq
        if seq is not None and stream.last_seq is not None and seq <= stream.last_seq:
            raise Conflict(f"Stream-Seq {seq!r} is not after {stream.last_seq!r}")
        if stream.json:
            payload = encode_json_append(request.body, initial=False)
            assert payload is not None
        else:
            payload = request.body
        # Decided: change the state, then make it durable.
        now = time.time()
        end = stream.add_record(payload)
        record = len(stream.ends) - 1
        frame_producer = None
        if producer is not None:
            stream.producers[producer.id] = (producer.epoch, producer.seq, now)
            frame_producer = (producer.id, producer.epoch, producer.seq)
        if seq is not None:
            stream.last_seq = seq
        if request.close:
            stream.closed = True
            stream.closed_by = producer
        stream.last_access = now
        await self._commit(
            stream,
            Frame(payload=payload, close=request.close, producer=frame_producer, stream_seq=seq),
            record,
        )
        return AppendResult(
            next_offset=format_offset(end),
            closed=request.close,
            producer_seq=producer.seq if producer else None,
        )

    def _check_producer(self, stream: _Stream, producer: Producer) -> int | None:
        """None if the append is the producer's next one; the highest accepted seq if
        it is a duplicate. Raises for a stale epoch, a bad new epoch or a gap."""
        now = time.time()
        state = stream.producers.get(producer.id)
        if state is not None and now - state[2] > PRODUCER_STATE_TTL:
            del stream.producers[producer.id]
            state = None
        if state is None:
            if producer.seq != 0:
                raise SequenceGap(
                    f"producer {producer.id!r} is unknown: its first seq must be 0",
                    expected=0,
                    received=producer.seq,
                )
            return None
        epoch, last, _ = state
        if producer.epoch < epoch:
            raise Fenced(f"producer epoch {producer.epoch} is stale (current {epoch})", epoch=epoch)
        if producer.epoch > epoch:
            if producer.seq != 0:
                raise BadRequest("a new producer epoch must start at seq 0")
            return None
        if producer.seq <= last:
            return last
        if producer.seq != last + 1:
            raise SequenceGap(
                f"producer seq {producer.seq} skips ahead of {last + 1}",
                expected=last + 1,
                received=producer.seq,
            )
        return None

    async def _duplicate(self, stream: _Stream, producer: Producer, highest: int) -> AppendResult:
        # What it duplicates may still be on its way to disk: answer once it is there.
        await self._flushed(stream)
        return AppendResult(
            next_offset=format_offset(stream.visible_tail),
            closed=stream.visible_closed,
            duplicate=True,
            producer_seq=highest,
        )

    async def _close(self, stream: _Stream, producer: Producer | None) -> AppendResult:
        if producer is None:
            if not stream.closed:
                stream.closed = True
                stream.last_access = time.time()
                await self._commit(stream, Frame(close=True))
            else:
                stream.last_access = time.time()
                await self._flushed(stream)
            return AppendResult(next_offset=format_offset(stream.visible_tail), closed=True)
        if stream.closed:
            if producer == stream.closed_by:
                return await self._duplicate(stream, producer, producer.seq)
            raise StreamClosed("the stream is closed", final_offset=format_offset(stream.tail))
        highest = self._check_producer(stream, producer)
        if highest is not None:
            return await self._duplicate(stream, producer, highest)
        now = time.time()
        stream.producers[producer.id] = (producer.epoch, producer.seq, now)
        stream.closed = True
        stream.closed_by = producer
        stream.last_access = now
        await self._commit(
            stream, Frame(close=True, producer=(producer.id, producer.epoch, producer.seq))
        )
        return AppendResult(
            next_offset=format_offset(stream.visible_tail), closed=True, producer_seq=producer.seq
        )

    async def _commit(self, stream: _Stream, frame: Frame, record: int = -1) -> None:
        """Make the decided change (which added record index ``record``, if >= 0)
        durable, then visible."""
        if self._journal is None or stream.log is None:
            stream.publish_all()
            return
        stream.frame_seq += 1
        mine = stream.frame_seq
        stream.pending.append((mine, len(stream.ends), stream.tail, stream.closed))
        try:
            position = await self._journal.append(stream.log, frame)
        except StorageError:
            self._rollback(stream)
            raise
        if record >= 0:
            stream.stored(record, position)
        published = None
        while stream.pending and stream.pending[0][0] <= mine:
            published = stream.pending.popleft()
        if published is not None:
            _, stream.visible_count, stream.visible_tail, stream.visible_closed = published
            stream.notify()

    def _rollback(self, stream: _Stream) -> None:
        """A write failed: the state on disk is the truth again."""
        assert self._journal is not None
        assert stream.log is not None
        if not stream.pending:
            return  # rolled back already by another failed frame of the same batch
        frames, positions = self._journal.reload(stream.log)
        self._cache.forget(stream)
        stream.ends, stream.positions = array("q"), array("q")
        stream.tail = stream.base_end
        stream.closed, stream.closed_by = False, None
        stream.producers, stream.last_seq = {}, None
        now = time.time()
        for frame, position in zip(frames, positions, strict=True):
            stream.apply(frame, now, position)
        stream.publish_all()

    async def _flushed(self, stream: _Stream) -> None:
        while stream.pending:
            await stream.changed.wait()

    # -- read --------------------------------------------------------------------------

    async def read(self, path: str, offset: str, *, wait: float = 0.0) -> ReadResult:
        check_wait(wait)
        stream = await self._get(path)
        if offset == NOW:
            position = stream.visible_tail
        elif offset == BEFORE_START:
            position = -1
        else:
            parsed = parse_offset(offset)
            if parsed is None:
                raise BadRequest(f"invalid offset: {offset!r}")
            position = parsed
        stream.last_access = time.time()
        result = await self._collect(path, stream, position, offset)
        if result.empty and wait > 0 and not result.closed:
            changed = stream.changed
            with trio.move_on_after(wait):
                await changed.wait()
            stream = await self._get(path)
            stream.last_access = time.time()
            result = await self._collect(path, stream, position, offset)
        return result

    async def _collect(self, path: str, stream: _Stream, position: int, offset: str) -> ReadResult:
        # what is visible now: more may be published while payloads are read back
        tail, closed = stream.visible_tail, stream.visible_closed
        page, _, more = stream.page(position, tail, self._max_read_bytes)
        records = await self._records(path, page)
        chunks = [payload for _, payload in records]
        ends = [format_offset(record_end) for record_end, _ in records]
        # where a reader goes next: after the last record, or the tail if none was found
        end = records[-1][0] if records else tail
        up_to_date = not more
        return ReadResult(
            content_type=stream.content_type,
            chunks=tuple(chunks),
            start_offset=offset,
            next_offset=format_offset(end),
            up_to_date=up_to_date,
            closed=closed and up_to_date,
            json=stream.json,
            ends=tuple(ends),
        )

    async def _records(
        self, path: str, page: list[tuple[_Stream, int, int]]
    ) -> list[tuple[int, bytes]]:
        """The end offset and payload of each record of ``page`` (from
        :meth:`_Stream.page`): from memory, or else read back from the logs in one
        worker-thread call. Raises the errors of a gone ``path`` if a stream of the page
        is removed meanwhile."""
        found: list[tuple[int, bytes]] = []
        missing: list[tuple[int, int, _Stream, int, int, int]] = []  # span, slot, record...
        spans: list[tuple[LogFile, int, int]] = []  # log, position, size
        for stream, first, stop in page:
            lost: list[int] = []
            for index in range(first, stop):
                if index >= stream.held_from:
                    payload = stream.held[index - stream.held_from]
                else:
                    lost.append(index)
                    at, size = stream.positions[index], stream.record_size(index)
                    missing.append((len(spans), len(found), stream, index, at, size))
                    payload = b""
                found.append((stream.ends[index], payload))
            if not lost:
                self._cache.touch(stream)
            if lost:
                if stream.dead or stream.log is None or stream.log.closed:
                    raise self._gone(path)
                # held until on disk: a payload not in memory has a position
                assert stream.positions[lost[0]] >= 0
                start = stream.positions[lost[0]]
                stop_at = stream.positions[lost[-1]] + stream.record_size(lost[-1])
                spans.append((stream.log, start, stop_at - start))
        if not spans:
            return found
        assert self._journal is not None
        try:
            data = await self._journal.read(spans)
        except StorageError:
            if any(log.closed for log, _, _ in spans):
                raise self._gone(path) from None
            raise
        if any(log.closed for log, _, _ in spans):
            raise self._gone(path)  # its fd may have been reused: what was read is void
        for span, slot, _stream, index, at, size in missing:
            log, start, _ = spans[span]
            payload = data[span][at - start : at - start + size]
            if len(payload) != size:
                raise StorageError(
                    f"the log of stream {log.id} does not match its index: record {index} "
                    f"has {len(payload)} of {size} bytes at {at}"
                )
            found[slot] = (found[slot][0], payload)  # (older ones are not held again)
        return found

    def _gone(self, path: str) -> Exception:
        if self._closed:
            return StorageError("the store is closed")
        return StreamNotFound(f"stream not found: {path}")


class MemoryStore(LocalStore):
    """Streams in memory only: for tests and ``--memory``."""

    def __init__(self, *, max_read_bytes: int = DEFAULT_MAX_READ_BYTES) -> None:
        super().__init__(None, max_read_bytes=max_read_bytes)


class DiskStore(LocalStore):
    """Streams journaled under ``data_dir``: an append is on disk (fsync) before it is
    acknowledged; opening rebuilds every stream from its log.

    At most ``cache_bytes`` of payloads (across every stream) stay in memory, besides
    those not yet on disk: the least recently appended or read go first, and are read
    back from their logs when a read needs them."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
    ) -> None:
        journal = Journal(data_dir)
        super().__init__(journal, max_read_bytes=max_read_bytes, cache_bytes=cache_bytes)
        self._load(journal)

    def _load(self, journal: Journal) -> None:
        by_id: dict[str, _Stream] = {}
        forks: list[tuple[_Stream, str | None]] = []
        now = time.time()
        for item in journal.load():
            meta = item.meta
            fork = meta.get("fork")
            stream = _Stream(
                meta["path"],
                meta["content_type"],
                cache=self._cache,
                ttl=meta.get("ttl"),
                expires_at=meta.get("expires_at"),
                base_end=fork["base_end"] if fork else 0,
                fork_offset=format_offset(fork["base_end"]) if fork else None,
                fork_sub_offset=fork["sub_offset"] if fork else 0,
            )
            stream.log = item.log
            for frame, position in zip(item.frames, item.positions, strict=True):
                stream.apply(frame, now, position)
            stream.publish_all()
            by_id[item.log.id] = stream
            if fork:
                forks.append((stream, fork.get("source_id")))
            self._streams[stream.path] = stream
        for stream, source_id in forks:
            source = by_id.get(source_id) if source_id else None
            stream.base = source
            if source is not None:
                source.refcount += 1
        for stream in list(self._streams.values()):
            if stream.soft_deleted and stream.refcount == 0 and stream.log is not None:
                del self._streams[stream.path]
                journal.remove_now(stream.log)
