"""Writers that batch appends: :class:`Batcher` (plain appends) and :class:`IdempotentProducer`
(an idempotent producer: exactly-once appends across retries).

Both collect the appends made within ``linger`` seconds of the first one (or until
``max_batch_bytes``) into one ``POST``: byte appends are concatenated, JSON messages
sent as one array (which the server flattens into the messages). Each ``append``
waits for the acknowledgement of its own batch.

There is no background task. The appenders take turns as the *sender*: the first one
waiting when no batch is in flight lingers, takes the batch (its own entry and those
queued behind it), sends it and resolves every entry in it; the others wait. One batch
is in flight at a time, so batches reach the stream in the order of their appends.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Generic, Self, TypeVar, final

import trio

from ._client_errors import ProducerFailed, StreamUnavailable
from ._client_wire import (
    JSON_TYPE,
    PRODUCER_EPOCH,
    PRODUCER_ID,
    PRODUCER_SEQ,
    AppendAck,
    ClosesOnExit,
    ProducerAck,
    dump_json,
    error_for,
    is_json_type,
    optional_int,
    require_offset,
    to_bytes,
)
from ._errors import Fenced, StreamError

if TYPE_CHECKING:
    from .client import StreamHandle

__all__ = ["DEFAULT_LINGER", "DEFAULT_MAX_BATCH_BYTES", "Batcher", "IdempotentProducer"]

#: Seconds a batch waits for more appends after its first one.
DEFAULT_LINGER: Final = 0.005
#: A batch is sent at once when its appends reach this many bytes.
DEFAULT_MAX_BATCH_BYTES: Final = 1024 * 1024
#: How many times a producer with ``auto_claim`` claims a new epoch for one batch.
_MAX_CLAIMS: Final = 3
#: The protocol's bound on producer epochs and sequence numbers.
_MAX_SAFE_INT: Final = 2**53 - 1

R = TypeVar("R", AppendAck, ProducerAck)


@final
class _Entry(Generic[R]):
    """One append waiting in a writer."""

    __slots__ = ("at", "body", "done", "error", "result", "taken")

    def __init__(self, body: bytes, at: float) -> None:
        self.body = body
        self.at = at  # when it was queued: the batch's linger counts from its first entry
        self.done = trio.Event()
        self.taken = False  # part of a batch handed to the network
        self.result: R | None = None
        self.error: BaseException | None = None

    def resolve(self, result: R) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class _Writer(ClosesOnExit, Generic[R]):
    """The batching core. Subclasses implement :meth:`_send`."""

    __slots__ = (
        "_closed",
        "_closing",
        "_content_type",
        "_flushing",
        "_freed",
        "_grew",
        "_handle",
        "_inflight",
        "_json",
        "_linger",
        "_max_batch_bytes",
        "_pending",
        "_pending_bytes",
        "_sending",
    )
    _handle: StreamHandle
    _linger: float
    _max_batch_bytes: int
    _json: bool | None
    _content_type: str | None
    _pending: deque[_Entry[R]]
    _pending_bytes: int
    _inflight: list[_Entry[R]] | None
    _sending: bool
    _flushing: int
    _closing: bool
    _closed: bool
    _grew: trio.Event
    _freed: trio.Event

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} has no public constructor; get one from a stream")

    def _setup(self, handle: StreamHandle, *, linger: float, max_batch_bytes: int) -> None:
        if not (isinstance(linger, int | float) and math.isfinite(linger) and linger >= 0):
            raise ValueError(f"linger must be a finite number of seconds >= 0, not {linger!r}")
        if (
            isinstance(max_batch_bytes, bool)
            or not isinstance(max_batch_bytes, int)
            or max_batch_bytes < 1
        ):
            raise ValueError(f"max_batch_bytes must be an int >= 1, not {max_batch_bytes!r}")
        self._handle = handle
        self._linger = linger
        self._max_batch_bytes = max_batch_bytes
        self._json = None
        self._content_type = None
        self._pending = deque()
        self._pending_bytes = 0
        self._inflight = None
        self._sending = False
        self._flushing = 0
        self._closing = False
        self._closed = False
        self._grew = trio.Event()  # the sender lingers on it: more queued, or a flush
        self._freed = trio.Event()  # the others wait on it: the sender is done

    @property
    def stream(self) -> StreamHandle:
        return self._handle

    @property
    def pending(self) -> int:
        """Appends queued and not yet handed to the network."""
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed or self._closing

    # -- appending -------------------------------------------------------------------

    async def append(self, data: bytes | str) -> R:
        """Queue bytes (``str`` is encoded as UTF-8) and wait for their batch's ack.

        A writer carries either bytes or JSON messages, fixed by its first append; byte
        appends are refused on a JSON stream, whose batches must be arrays.

        Cancellation: if the append is cancelled before its batch was handed to the
        network, it is withdrawn and will not be written. Once handed over it may be
        written (see the writer's own notes).

        Raises:
            RuntimeError: the writer (or its client) is closed.
        """
        body = to_bytes(data)
        if not body:
            raise ValueError("nothing to append: an empty append would be lost in the batch")
        self._check_open()
        if self._json is None:  # the first append: learn the type (HEAD if unknown)
            content_type = await self._handle._known_content_type()
            if is_json_type(content_type):
                raise ValueError(
                    f"stream {self._handle.name!r} is a JSON stream: use append_json(), "
                    "whose messages batch as one array"
                )
            self._content_type = content_type
        self._set_mode(json=False)
        return await self._submit(body)

    async def append_json(self, value: object) -> R:
        """Queue one JSON message (any JSON value, a list included) and wait for its
        batch's ack. Same rules as :meth:`append`; ``ValueError`` / ``TypeError`` for
        what JSON cannot hold."""
        self._handle._require_json("append_json")
        self._set_mode(json=True)
        self._content_type = JSON_TYPE
        return await self._submit(dump_json(value))

    def _set_mode(self, *, json: bool) -> None:
        self._check_open()
        if self._json is None:
            self._json = json
        elif self._json != json:
            used, other = ("append_json", "append") if self._json else ("append", "append_json")
            raise ValueError(
                f"this {type(self).__name__} carries {'JSON messages' if self._json else 'bytes'} "
                f"({used}); it cannot mix in {other}: use another writer"
            )

    def _check_open(self) -> None:
        if self._closed or self._closing:
            raise RuntimeError(f"this {type(self).__name__} is closed")
        self._handle._http()  # raises when the client is closed

    async def _submit(self, body: bytes) -> R:
        self._check_open()
        self._before_submit()
        entry: _Entry[R] = _Entry(body, trio.current_time())
        self._pending.append(entry)
        self._pending_bytes += len(body)
        self._signal_grew()
        try:
            await self._drive(lambda: entry.done.is_set())
        except BaseException:
            if not entry.taken and not entry.done.is_set():
                self._pending.remove(entry)
                self._pending_bytes -= len(body)
            raise
        return entry.outcome()

    def _before_submit(self) -> None:
        """Refuse an append before it is queued (a failed producer)."""

    # -- flushing and closing ------------------------------------------------------

    async def flush(self) -> None:
        """Send what is queued now, without lingering, and wait until it is
        acknowledged (or failed: failures go to the appends concerned)."""
        last = self._pending[-1] if self._pending else None
        if last is None and self._inflight:
            last = self._inflight[-1]
        if last is None:
            return
        target = last
        self._flushing += 1
        self._signal_grew()
        try:
            await self._drive(target.done.is_set)
        finally:
            self._flushing -= 1

    async def aclose(self) -> None:
        """Flush, then refuse further appends (``RuntimeError``). Idempotent.

        Errors of the flushed batches go to their appends, not to ``aclose`` (call
        :meth:`flush` first to hear of them). If the flush is cancelled, appends still
        queued fail with ``StreamError`` (they were not written)."""
        if self._closed:
            return
        self._closing = True
        try:
            await _Writer.flush(self)
        finally:
            self._closed = True
            leftover = StreamError(
                f"the {type(self).__name__} of {self._handle.url} was closed before this "
                "append was sent; it was not written"
            )
            while self._pending:
                self._pending.popleft().fail(leftover)
            self._pending_bytes = 0

    async def __aenter__(self) -> Self:
        if self._closed or self._closing:
            raise RuntimeError(f"this {type(self).__name__} is closed and cannot be reused")
        return self

    # -- the sender ------------------------------------------------------------------

    def _signal_grew(self) -> None:
        self._grew.set()
        self._grew = trio.Event()

    def _signal_freed(self) -> None:
        self._freed.set()
        self._freed = trio.Event()

    async def _drive(self, finished: Callable[[], bool]) -> None:
        """Wait until ``finished()``, taking the sender's turn whenever it is free."""
        while not finished():
            if self._sending:
                freed = self._freed
                await freed.wait()
            elif self._pending or self._inflight is not None:
                await self._lead()
            else:
                return  # nothing left to send: what we waited for was withdrawn

    async def _lead(self) -> None:
        self._sending = True
        try:
            if self._inflight is None:
                await self._linger_for_more()
                if not self._pending:
                    return
                self._inflight = self._take()
            await self._send(self._inflight)
        finally:
            self._sending = False
            self._signal_freed()

    async def _linger_for_more(self) -> None:
        if self._flushing or self._closing or not self._pending:
            return
        with trio.move_on_at(self._pending[0].at + self._linger):
            while self._pending and self._pending_bytes < self._max_batch_bytes:
                if self._flushing or self._closing:
                    return
                grew = self._grew
                await grew.wait()

    def _take(self) -> list[_Entry[R]]:
        batch: list[_Entry[R]] = []
        size = 0
        while self._pending:
            entry = self._pending[0]
            if batch and size + len(entry.body) > self._max_batch_bytes:
                break
            self._pending.popleft()
            entry.taken = True
            batch.append(entry)
            size += len(entry.body)
        self._pending_bytes -= size
        return batch

    def _batch_body(self, batch: list[_Entry[R]]) -> bytes:
        if self._json:
            return b"[" + b",".join(entry.body for entry in batch) + b"]"
        return b"".join(entry.body for entry in batch)

    def _batch_type(self) -> str:
        assert self._content_type is not None
        return self._content_type

    async def _send(self, batch: list[_Entry[R]]) -> None:
        """Send ``batch`` (``self._inflight``) and resolve its entries; clear
        ``self._inflight`` once the outcome is known."""
        raise NotImplementedError


@final
class Batcher(_Writer[AppendAck]):
    """Plain appends, batched. Get one from :meth:`StreamHandle.batcher`; use it as
    ``async with`` (leaving it flushes) or call :meth:`aclose`.

    Each ``append`` returns the :class:`AppendAck` of its batch: the tail after the
    whole batch. A refused batch (``StreamClosed``, ``Conflict``, ...) fails every
    append in it with that error; later batches are still tried. Nothing is retried: a
    plain append is not idempotent. If the task sending a batch is cancelled
    mid-request, the other appends in it fail with :class:`StreamUnavailable` (whether
    it was written is unknown).
    """

    __slots__ = ()

    @classmethod
    def _create(cls, handle: StreamHandle, *, linger: float, max_batch_bytes: int) -> Batcher:
        self = object.__new__(cls)
        self._setup(handle, linger=linger, max_batch_bytes=max_batch_bytes)
        return self

    def __repr__(self) -> str:
        return f"<Batcher {self._handle.url} pending={len(self._pending)}>"

    async def _send(self, batch: list[_Entry[AppendAck]]) -> None:
        body = self._batch_body(batch)
        try:
            result = await self._handle._post(
                body, content_type=self._batch_type(), seq=None, close=False
            )
        except StreamError as exc:
            self._inflight = None
            for entry in batch:
                entry.fail(exc)
            return
        except BaseException:
            self._inflight = None
            unknown = StreamUnavailable(
                f"append to {self._handle.url}: the task sending this batch was cancelled "
                "mid-request; whether the batch was written is unknown"
            )
            for entry in batch:
                entry.fail(unknown)
            raise
        self._inflight = None
        for entry in batch:
            entry.resolve(result)


@final
class IdempotentProducer(_Writer[ProducerAck]):
    """An idempotent producer: appends batched and sent with ``Producer-Id``,
    ``Producer-Epoch`` and ``Producer-Seq`` (one sequence number per batch), so that
    retrying a batch can never write it twice. Get one from
    :meth:`StreamHandle.producer`; use it as ``async with`` or call :meth:`aclose`.

    **Retries.** Transport errors and 5xx/429 answers are retried with the same epoch
    and seq, as the client's :class:`RetryPolicy` says; a retry the server already
    applied answers "duplicate" (``ProducerAck.duplicate``, no offset).

    **Fencing.** A newer epoch on the server (403) raises ``Fenced`` (``.epoch`` is the
    server's); so does finding this very (id, epoch, seq) already written by someone
    else (another live producer with the same id and epoch). With ``auto_claim=True``
    the producer instead moves to the next epoch, restarts at seq 0 and resends (at most
    a few times per batch).

    **Failure is final.** ``Fenced``, ``SequenceGap`` (409, ``.expected`` /
    ``.received``), ``StreamClosed``, other refusals and exhausted retries fail the
    batch's appends with that error and every later one with :class:`ProducerFailed`:
    after an error whose outcome is unknown, going on could reorder or lose data.

    **Cancellation.** A batch whose sender is cancelled mid-request stays in flight and
    is resent, with the same seq, by the next append, :meth:`flush` or :meth:`aclose`:
    it is written exactly once even though the cancelled append never learns it.

    A new incarnation of a producer (after a restart) must use a higher epoch than the
    last one, or ``auto_claim=True``.
    """

    __slots__ = ("_attempted", "_auto_claim", "_epoch", "_failure", "_producer_id", "_seq")
    _producer_id: str
    _epoch: int
    _seq: int
    _auto_claim: bool
    _attempted: bool  # the in-flight (epoch, seq) may already have reached the server
    _failure: StreamError | None

    @classmethod
    def _create(
        cls,
        handle: StreamHandle,
        *,
        producer_id: str,
        epoch: int,
        auto_claim: bool,
        linger: float,
        max_batch_bytes: int,
    ) -> IdempotentProducer:
        if not isinstance(producer_id, str) or not producer_id:
            raise ValueError(f"producer_id must be a non-empty string, not {producer_id!r}")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= _MAX_SAFE_INT:
            raise ValueError(f"epoch must be an int from 0 to 2**53-1, not {epoch!r}")
        self = object.__new__(cls)
        self._setup(handle, linger=linger, max_batch_bytes=max_batch_bytes)
        self._producer_id = producer_id
        self._epoch = epoch
        self._seq = 0
        self._auto_claim = auto_claim
        self._attempted = False
        self._failure = None
        return self

    def __repr__(self) -> str:
        return (
            f"<IdempotentProducer {self._producer_id!r} epoch={self._epoch} seq={self._seq} "
            f"{self._handle.url}>"
        )

    @property
    def producer_id(self) -> str:
        return self._producer_id

    @property
    def epoch(self) -> int:
        """The epoch this producer writes with (it grows when ``auto_claim`` claims)."""
        return self._epoch

    @property
    def seq(self) -> int:
        """The sequence number of the next (or in-flight) batch."""
        return self._seq

    @property
    def failure(self) -> StreamError | None:
        """The error that ended this producer, if one did."""
        return self._failure

    def _before_submit(self) -> None:
        if self._failure is not None:
            raise self._failed_error() from self._failure

    def _failed_error(self) -> ProducerFailed:
        error = ProducerFailed(
            f"producer {self._producer_id!r} of {self._handle.url} failed and takes no more "
            f"appends: {self._failure}",
            producer_id=self._producer_id,
        )
        error.__cause__ = self._failure
        return error

    async def flush(self) -> None:
        """Send what is queued (and a batch left in flight by a cancellation) and wait
        for its ack.

        Raises:
            ProducerFailed: the producer has failed (now or before).
        """
        await super().flush()
        if self._failure is not None:
            raise self._failed_error()

    async def _send(self, batch: list[_Entry[ProducerAck]]) -> None:
        body = self._batch_body(batch)
        try:
            ack = await self._deliver(body)
        except StreamError as exc:
            self._inflight = None
            self._failure = exc
            for entry in batch:
                entry.fail(exc)
            failed = self._failed_error()
            while self._pending:
                self._pending.popleft().fail(failed)
            self._pending_bytes = 0
            return
        # A cancellation leaves self._inflight in place: the batch is resent as is.
        self._inflight = None
        self._seq += 1
        self._attempted = False
        for entry in batch:
            entry.resolve(ack)

    async def _deliver(self, body: bytes) -> ProducerAck:
        http = self._handle._http()
        url = self._handle.url
        what = f"producer {self._producer_id!r} append to {url}"
        claims = 0
        while True:
            if self._seq > _MAX_SAFE_INT:
                raise StreamError(f"{what}: the sequence numbers of epoch {self._epoch} ran out")
            headers = {
                "Content-Type": self._batch_type(),
                PRODUCER_ID: self._producer_id,
                PRODUCER_EPOCH: str(self._epoch),
                PRODUCER_SEQ: str(self._seq),
            }
            sent_before = self._attempted
            self._attempted = True
            response, failures = await http.exchange(
                "POST", url, what=what, retry=True, headers=headers, content=body
            )
            retried = sent_before or failures > 0
            status = response.status_code
            if status == 200:
                return ProducerAck(
                    offset=require_offset(response, what),
                    duplicate=False,
                    epoch=self._epoch,
                    seq=self._seq,
                )
            if status == 204:
                highest = optional_int(response.headers, PRODUCER_SEQ, what)
                if retried and (highest is None or highest <= self._seq):
                    return ProducerAck(
                        offset=None, duplicate=True, epoch=self._epoch, seq=self._seq
                    )
                server_epoch = optional_int(response.headers, PRODUCER_EPOCH, what)
                held = highest if highest is not None else self._seq
                error: StreamError = Fenced(
                    f"{what}: the server already holds seq {held} of this producer at epoch "
                    f"{self._epoch}, which this producer never sent: another producer uses the "
                    "same id and epoch (start with a higher epoch, or pass auto_claim=True)",
                    epoch=server_epoch if server_epoch is not None else self._epoch,
                )
            else:
                error = error_for(response, what)
            if not (self._auto_claim and isinstance(error, Fenced) and claims < _MAX_CLAIMS):
                raise error
            claims += 1
            self._epoch = max(self._epoch, error.epoch) + 1
            self._seq = 0
            self._attempted = False
