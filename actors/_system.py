"""The actor system: the root of the supervision tree."""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import final

import trio

from ._core import Actor, ActorRef, _Cell, _Runtime, shielded
from ._registry import Registry
from ._supervisor import ChildSpec, CrashReport, Restart, Supervisor, start_child

__all__ = ["ActorSystem"]


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


def _sole_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside ``group`` (through nested groups), or None."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner


@final
class ActorSystem:
    """The root of an actor tree, used as ``async with``::

        async with ActorSystem() as system:
            ref = await system.spawn(Counter(), name="counter")
            await ref.ask(Increment())

    Top-level actors run under a root :class:`Supervisor` (one-for-one, with the given
    restart intensity). Leaving the block stops them all in reverse start order, each
    with its own bounded cleanup; after ``shutdown_timeout`` seconds whatever is left is
    forced: message loops and ``on_stop`` calls still running are cancelled. When
    ``__aexit__`` returns, no task of the system is left running (a background task
    that shields its own cleanup without a deadline is the one thing that can delay
    it: bound such cleanup with :func:`shielded`).

    The tree runs in a shielded scope of its own: cancelling the code around the
    ``async with`` does not tear actors down abruptly, it starts the orderly stop.

    Single use: a closed system cannot be reopened.
    """

    def __init__(
        self,
        *,
        max_restarts: int = 3,
        within: float = 5.0,
        shutdown_timeout: float = 30.0,
        on_crash: Callable[[CrashReport], None] | None = None,
    ) -> None:
        if math.isnan(shutdown_timeout) or shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must be >= 0, not {shutdown_timeout!r}")
        self._runtime = _Runtime(on_crash)
        self._root_actor = Supervisor(max_restarts=max_restarts, within=within)
        self._shutdown_timeout = shutdown_timeout
        self._state = _State.UNOPENED
        self._stack: AsyncExitStack | None = None
        self._root: ActorRef | None = None
        self._tree_scope: trio.CancelScope | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        if self._state is not _State.UNOPENED:
            raise RuntimeError(
                f"an ActorSystem is single use; this one is {self._state.value}: "
                "create a new ActorSystem"
            )
        self._state = _State.OPENED
        stack = AsyncExitStack()
        await stack.enter_async_context(self._lifespan())
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        try:
            return await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The body ran inside the system's nursery, which wrapped its error in a
            # group: hand the body's own exception back as it was raised.
            if exc is None or _sole_leaf(group) is not exc:
                raise
        raise exc

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        async with trio.open_nursery() as nursery:
            self._root = await nursery.start(self._run_tree)
            try:
                yield
            finally:
                self._state = _State.CLOSED
                with shielded(self._shutdown_timeout):
                    await self._root.stop()
                # Past the deadline: force whatever is left, cleanups included.
                for cell in list(self._runtime.cells):
                    cell.force()
                assert self._tree_scope is not None
                self._tree_scope.cancel()

    async def _run_tree(self, *, task_status: trio.TaskStatus[ActorRef]) -> None:
        with trio.CancelScope(shield=True) as self._tree_scope:
            async with trio.open_nursery() as tree:
                cell = _Cell(self._root_actor, runtime=self._runtime, label="root")
                ref: ActorRef = await tree.start(cell.main)
                task_status.started(ref)

    # -- public ------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """Live actors by name."""
        return self._runtime.registry

    @property
    def crash_reports(self) -> list[CrashReport]:
        """The latest crashes handled by any supervisor of this system (oldest first)."""
        return list(self._runtime.reports)

    @property
    def root(self) -> ActorRef:
        """The root supervisor; add children with :func:`start_child`."""
        if self._root is None:
            raise RuntimeError("the ActorSystem is not open: use 'async with ActorSystem()'")
        return self._root

    async def spawn(
        self,
        actor: Actor | Callable[[], Actor],
        *,
        name: str | None = None,
        restart: Restart = Restart.TEMPORARY,
        mailbox_size: int | None = None,
    ) -> ActorRef:
        """Start a top-level actor; returns its ref once its ``on_start`` has run.

        ``actor`` is an instance (runs once) or a factory (needed for any restart
        policy but ``TEMPORARY``, the default here).

        Raises:
            SpawnError: ``on_start`` raised (the cause is attached).
            NameTaken: ``name`` is registered to a live actor already.
            RuntimeError: the system is not open.
        """
        if self._state is not _State.OPENED:
            raise RuntimeError(f"cannot spawn: the ActorSystem is {self._state.value}")
        spec = ChildSpec.of(actor, name=name, restart=restart, mailbox_size=mailbox_size)
        return await start_child(self.root, spec)
