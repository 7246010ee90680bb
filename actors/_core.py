"""Actors, their references, and the per-actor runtime that drives them.

An :class:`Actor` is plain state plus three coroutines (``on_start``, ``handle``,
``on_stop``). The runtime gives each running actor a *cell*: a bounded mailbox, one task
that takes messages off it one at a time, two nurseries (child actors, background tasks)
and the bookkeeping that makes stopping safe: pending asks fail at once, the registry
entry goes away, and ``on_stop`` runs shielded under a deadline.
"""

from __future__ import annotations

import enum
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, final

import attrs
import trio

from ._errors import ActorCrashed, ActorStopped, AskTimeout, MailboxFull, Refused
from ._registry import Registry

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorContext",
    "ActorRef",
    "ActorState",
    "MailboxStats",
    "shielded",
]

logger = logging.getLogger("actors")

DEFAULT_MAILBOX_SIZE = 64
DEFAULT_ASK_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 5.0

_labels = itertools.count(1)


def shielded(timeout: float) -> trio.CancelScope:
    """A cancel scope for cleanup: shielded from outer cancellation, and cancelled
    itself ``timeout`` seconds after it is created.

    Use it in every ``finally`` that releases something, so cleanup can neither be
    skipped by a cancellation nor hang forever::

        finally:
            with shielded(5.0):
                await process.aclose()
    """
    return trio.move_on_after(timeout, shield=True)


class ActorState(enum.Enum):
    """Where an actor is in its life. It only ever moves forward."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@attrs.frozen(kw_only=True)
class MailboxStats:
    """A snapshot of one actor's mailbox and counters (see :meth:`ActorRef.statistics`)."""

    name: str
    state: ActorState
    queued: int  #: messages waiting in the mailbox
    capacity: int  #: the mailbox's bound
    senders_waiting: int  #: tasks blocked in ``send`` because the mailbox is full
    pending_asks: int  #: asks sent and not yet answered
    processed: int  #: messages handled by this incarnation
    restarts: int  #: how many times the supervisor restarted this child before


class _Runtime:
    """What all the cells of one actor system share."""

    __slots__ = ("cells", "on_crash", "registry", "reports")

    def __init__(self, on_crash: Callable[[Any], None] | None = None) -> None:
        self.cells: set[_Cell] = set()  # every cell whose task is running
        self.registry = Registry()
        self.reports: deque[Any] = deque(maxlen=1000)
        self.on_crash = on_crash


@final
class _Ask:
    """A message waiting for its reply. Resolved once; later resolutions are ignored."""

    __slots__ = ("_done", "_error", "_value", "msg")

    def __init__(self, msg: object) -> None:
        self.msg = msg
        self._done = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def reply(self, value: Any) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> None:
        await self._done.wait()

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


# ---------------------------------------------------------------------------------------
# Actor: what users write
# ---------------------------------------------------------------------------------------


@attrs.define(eq=False)
class Actor:
    """Base class of actors. Subclass it (as an attrs class or a plain class) and
    override :meth:`handle`, and :meth:`on_start` / :meth:`on_stop` if it owns anything.

    The runtime guarantees:

    - Messages are handled one at a time, in the order they entered the mailbox; the
      actor's state is touched only by its own task (and by background tasks it starts
      in :attr:`ActorContext.nursery`, which run in the same trio thread).
    - ``on_start`` runs before the first message; if it raises, the spawn fails with
      :class:`SpawnError` and ``on_stop`` still runs.
    - ``on_stop`` runs exactly once, after the message loop and background tasks have
      ended, whatever the reason (stop, crash, cancellation), shielded from
      cancellation and cut short :meth:`cleanup_timeout` seconds after it starts.
    - A handler that raises one of :attr:`refusals` refuses that message only; any other
      exception crashes the actor, and its supervisor decides what happens next.

    An instance runs at most once: supervisors that restart a child build a fresh one
    from a factory.
    """

    #: The bound of the mailbox; senders wait (``send``) or fail (``try_send``) past it.
    mailbox_size: ClassVar[int] = DEFAULT_MAILBOX_SIZE
    #: Seconds that ``on_stop`` may take before it is cancelled.
    stop_timeout: ClassVar[float] = DEFAULT_STOP_TIMEOUT
    #: Exceptions that refuse a message instead of crashing the actor.
    refusals: ClassVar[tuple[type[Exception], ...]] = (Refused,)

    _ctx: ActorContext | None = attrs.field(default=None, init=False, repr=False)

    @property
    def ctx(self) -> ActorContext:
        """The running actor's context: its ref, name, nursery, registry."""
        if self._ctx is None:
            raise RuntimeError(f"{type(self).__name__} is not running: spawn it first")
        return self._ctx

    async def on_start(self) -> None:
        """Acquire what the actor owns. Runs before the spawner gets its ref."""

    async def handle(self, msg: Any) -> Any:
        """Handle one message. The return value is the reply to an ask (ignored for a
        told message)."""
        raise NotImplementedError(f"{type(self).__name__} must override handle()")

    async def on_stop(self) -> None:
        """Release what the actor owns. Shielded, bounded by :meth:`cleanup_timeout`."""

    def cleanup_timeout(self) -> float:
        """Seconds ``on_stop`` may take; :attr:`stop_timeout` unless overridden."""
        return self.stop_timeout


# ---------------------------------------------------------------------------------------
# ActorRef and ActorContext: how others and the actor itself reach the cell
# ---------------------------------------------------------------------------------------


@final
class ActorRef:
    """A handle on one running actor (one incarnation of it: a restarted actor has a
    new ref; look it up again by name in the :class:`Registry`).

    Refs are cheap, hashable and safe to copy. They have no public constructor: you get
    one from ``spawn``, from a registry lookup, or from :attr:`ActorContext.ref`.
    """

    __slots__ = ("_cell",)
    _cell: _Cell

    def __init__(self) -> None:
        raise TypeError("ActorRef has no public constructor; spawn an actor to get one")

    @classmethod
    def _create(cls, cell: _Cell) -> ActorRef:
        self = object.__new__(cls)
        self._cell = cell
        return self

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.label} {self._cell.state.value}>"

    @property
    def name(self) -> str:
        """The actor's registered name, or a generated label if it has none."""
        return self._cell.label

    @property
    def alive(self) -> bool:
        """True until the actor begins to stop."""
        return self._cell.state in (ActorState.STARTING, ActorState.RUNNING)

    @property
    def state(self) -> ActorState:
        return self._cell.state

    @property
    def error(self) -> Exception | None:
        """Why the actor crashed, once it has; ``None`` while it runs or if it stopped
        normally."""
        return self._cell.error

    def try_send(self, msg: object) -> None:
        """Put ``msg`` in the mailbox without waiting.

        Raises:
            MailboxFull: the mailbox is at capacity; nothing was queued.
            ActorStopped: the actor is stopping or stopped; nothing was queued.
        """
        cell = self._cell
        try:
            cell.send_channel.send_nowait(msg)
        except trio.WouldBlock:
            raise MailboxFull(
                f"the mailbox of actor {cell.label!r} is full ({cell.capacity} messages); "
                "use 'await ref.send(msg)' to wait for room",
                actor=cell.label,
                capacity=cell.capacity,
            ) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise cell.stopped_error("is not running; the message was not delivered") from None

    async def send(self, msg: object) -> None:
        """Put ``msg`` in the mailbox, waiting while it is full (back-pressure).

        Cancellation: atomic. Either the message is in the mailbox, or ``Cancelled``
        was raised and the mailbox is unchanged.

        Raises:
            ActorStopped: the actor stopped before (or while) we waited for room.
        """
        cell = self._cell
        try:
            await cell.send_channel.send(msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise cell.stopped_error("is not running; the message was not delivered") from None

    async def ask(self, msg: object, *, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``msg`` and wait for the handler's return value.

        ``timeout`` (seconds, ``math.inf`` for none) covers both the wait for room in
        the mailbox and the wait for the reply.

        Raises:
            AskTimeout: no reply in time. The message may still be handled later.
            ActorStopped: the actor stopped before replying: at once, not at the
                timeout.
            ActorCrashed: handling this message crashed the actor (``__cause__``).
            Refused: the handler refused the message (or one of the actor's
                ``refusals``): that very exception.
        """
        if math.isnan(timeout) or timeout < 0:
            raise ValueError(f"timeout must be a number >= 0 (or math.inf), not {timeout!r}")
        cell = self._cell
        ask = _Ask(msg)
        cell.pending.add(ask)
        try:
            with trio.move_on_after(timeout):
                try:
                    await cell.send_channel.send(ask)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise cell.stopped_error("is not running; nothing was asked") from None
                await ask.wait()
            if not ask.done:
                raise AskTimeout(
                    f"actor {cell.label!r} did not reply within {timeout:g}s",
                    actor=cell.label,
                    timeout=timeout,
                )
            return ask.result()
        finally:
            cell.pending.discard(ask)

    async def stop(self) -> None:
        """Stop the actor now and wait until it has stopped.

        The message being handled is cancelled; queued messages are dropped; pending
        asks fail with :class:`ActorStopped` at once; background tasks are cancelled;
        then ``on_stop`` runs, shielded and bounded. Idempotent. Called from the
        actor's own task it only requests the stop (prefer ``ctx.stop()`` there, which
        lets the current message finish).
        """
        cell = self._cell
        cell.request_stop(immediate=True)
        if trio.lowlevel.current_task() is cell.task:
            return
        await cell.done.wait()

    async def wait_stopped(self) -> None:
        """Wait until the actor has stopped, for whatever reason."""
        await self._cell.done.wait()

    def statistics(self) -> MailboxStats:
        """A snapshot of the mailbox and counters."""
        cell = self._cell
        stats = cell.send_channel.statistics()
        return MailboxStats(
            name=cell.label,
            state=cell.state,
            queued=stats.current_buffer_used,
            capacity=cell.capacity,
            senders_waiting=stats.tasks_waiting_send,
            pending_asks=len(cell.pending),
            processed=cell.processed,
            restarts=cell.restarts,
        )


@final
class ActorContext:
    """What a running actor knows about itself. Available as ``self.ctx``."""

    __slots__ = ("_cell",)
    _cell: _Cell

    def __init__(self) -> None:
        raise TypeError("ActorContext has no public constructor")

    @classmethod
    def _create(cls, cell: _Cell) -> ActorContext:
        self = object.__new__(cls)
        self._cell = cell
        return self

    @property
    def ref(self) -> ActorRef:
        return self._cell.ref

    @property
    def name(self) -> str:
        return self._cell.label

    @property
    def restarts(self) -> int:
        """How many times this child was restarted before this incarnation."""
        return self._cell.restarts

    @property
    def registry(self) -> Registry:
        return self._cell.runtime.registry

    @property
    def nursery(self) -> trio.Nursery:
        """A nursery for the actor's background tasks. They are cancelled when the
        actor stops (before ``on_stop``); if one raises, the actor crashes. Their own
        cleanup must be bounded (see :func:`shielded`)."""
        if self._cell.nursery is None:
            raise RuntimeError("the actor's nursery is open only while it runs")
        return self._cell.nursery

    def stop(self) -> None:
        """Ask the runtime to stop this actor once the current message is handled.

        Safe to call from ``handle``, ``on_start`` or a background task; not a
        checkpoint.
        """
        self._cell.request_stop(immediate=False)


# ---------------------------------------------------------------------------------------
# The cell: one running actor
# ---------------------------------------------------------------------------------------


def _crash_of(exc: BaseException) -> Exception | None:
    """The error that crashed an actor, out of what its task raised: ``None`` if it
    was only cancellation (or another BaseException), the single leaf of a nest of
    exception groups, or a group of the real errors."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc if isinstance(exc, Exception) else None
    errors, _ = exc.split(Exception)
    found: BaseException | None = errors
    while isinstance(found, BaseExceptionGroup) and len(found.exceptions) == 1:
        found = found.exceptions[0]
    return found if isinstance(found, Exception) else None


@final
class _Cell:
    """The runtime state of one actor incarnation."""

    __slots__ = (
        "__weakref__",
        "actor",
        "capacity",
        "children",
        "cleanup_scope",
        "ctx",
        "done",
        "error",
        "in_handler",
        "label",
        "name",
        "nursery",
        "pending",
        "processed",
        "receive_channel",
        "ref",
        "restarts",
        "runtime",
        "send_channel",
        "started",
        "state",
        "stop_requested",
        "stop_scope",
        "task",
    )

    def __init__(
        self,
        actor: Actor,
        *,
        runtime: _Runtime,
        name: str | None = None,
        label: str | None = None,
        mailbox_size: int | None = None,
        restarts: int = 0,
    ) -> None:
        if not isinstance(actor, Actor):
            raise TypeError(f"expected an Actor, got {type(actor).__name__}")
        if actor._ctx is not None:
            raise RuntimeError(
                f"this {type(actor).__name__} instance has already run; an actor instance "
                "runs once (give the supervisor a factory to start a fresh one)"
            )
        capacity = actor.mailbox_size if mailbox_size is None else mailbox_size
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"mailbox_size must be an int >= 1, not {capacity!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"an actor's name must be a non-empty string, not {name!r}")
        self.actor = actor
        self.runtime = runtime
        self.name = name
        self.label = name or label or f"{type(actor).__name__}#{next(_labels)}"
        self.capacity = capacity
        self.send_channel, self.receive_channel = trio.open_memory_channel[object](capacity)
        self.pending: set[_Ask] = set()
        self.processed = 0
        self.restarts = restarts
        self.state = ActorState.STARTING
        self.started = False
        self.stop_requested = False
        self.in_handler = False
        self.stop_scope = trio.CancelScope()
        self.done = trio.Event()
        self.error: Exception | None = None
        self.nursery: trio.Nursery | None = None
        self.children: trio.Nursery | None = None
        self.task: trio.lowlevel.Task | None = None
        self.cleanup_scope: trio.CancelScope | None = None
        self.ref = ActorRef._create(self)
        self.ctx = ActorContext._create(self)
        if name is not None:
            runtime.registry._add(name, self)
        actor._ctx = self.ctx

    def stopped_error(self, what: str) -> ActorStopped:
        why = f" (it crashed: {self.error!r})" if self.error is not None else ""
        return ActorStopped(f"actor {self.label!r} {what}{why}", actor=self.label)

    def request_stop(self, *, immediate: bool) -> None:
        self.stop_requested = True
        if immediate or not self.in_handler:
            self.stop_scope.cancel()

    async def main(
        self, *, task_status: trio.TaskStatus[ActorRef] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the actor until it stops. Reports its ref through ``task_status`` once
        ``on_start`` has returned; raises what crashed it."""
        self.task = trio.lowlevel.current_task()
        self.runtime.cells.add(self)
        try:
            async with trio.open_nursery() as children:
                self.children = children
                try:
                    async with trio.open_nursery() as nursery:
                        self.nursery = nursery
                        try:
                            with self.stop_scope:
                                await self.actor.on_start()
                                self.state = ActorState.RUNNING
                                self.started = True
                                task_status.started(self.ref)
                                await self._loop()
                        except BaseException as exc:
                            self.error = _crash_of(exc)
                            raise
                        finally:
                            self._close()
                            nursery.cancel_scope.cancel()
                finally:
                    await self._cleanup()
                    children.cancel_scope.cancel()
        except BaseException as exc:
            # a background task or on_stop may be what crashed the actor
            if self.error is None:
                self.error = _crash_of(exc)
            raise
        finally:
            self.state = ActorState.STOPPED
            self.nursery = self.children = self.cleanup_scope = None
            self.runtime.cells.discard(self)
            self.done.set()

    async def _loop(self) -> None:
        handle = self.actor.handle
        refusals = self.actor.refusals
        async for item in self.receive_channel:
            self.in_handler = True
            if type(item) is _Ask:
                try:
                    value = await handle(item.msg)
                except refusals as exc:
                    item.fail(exc)
                except Exception as exc:
                    crashed = ActorCrashed(
                        f"actor {self.label!r} crashed handling this message: {exc!r}",
                        actor=self.label,
                    )
                    crashed.__cause__ = exc
                    item.fail(crashed)
                    raise
                else:
                    item.reply(value)
            else:
                try:
                    await handle(item)
                except refusals as exc:
                    logger.info("actor %s refused a message: %s", self.label, exc)
            self.in_handler = False
            self.processed += 1
            if self.stop_requested:
                return

    def _close(self) -> None:
        """Begin stopping: unregister, refuse new messages, fail every pending ask.
        Synchronous, so it cannot be interrupted by cancellation."""
        self.state = ActorState.STOPPING
        if self.name is not None:
            self.runtime.registry._remove(self.name, self)
        self.receive_channel.close()
        pending, self.pending = self.pending, set()
        for ask in pending:
            ask.fail(self.stopped_error("stopped before replying"))

    def force(self) -> None:
        """Cut everything short: the loop, and ``on_stop`` if it is running."""
        self.request_stop(immediate=True)
        if self.cleanup_scope is not None:
            self.cleanup_scope.cancel()

    async def _cleanup(self) -> None:
        timeout = self.actor.cleanup_timeout()
        with shielded(timeout) as scope:
            self.cleanup_scope = scope
            await self.actor.on_stop()
        if scope.cancelled_caught:
            logger.warning(
                "actor %s: on_stop did not finish within %.3gs and was cut short",
                self.label,
                timeout,
            )
