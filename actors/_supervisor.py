"""Supervisors: actors that start, watch and restart other actors."""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import attrs
import trio

from ._core import Actor, ActorRef, _Cell, _crash_of
from ._errors import (
    ActorStopped,
    NameTaken,
    Refused,
    RestartIntensityExceeded,
    SpawnError,
)

__all__ = [
    "ChildInfo",
    "ChildSpec",
    "CrashReport",
    "Restart",
    "RestartIntensity",
    "StartChild",
    "StopChild",
    "Strategy",
    "Supervisor",
    "WhichChildren",
    "start_child",
    "stop_child",
    "which_children",
]

logger = logging.getLogger("actors")


class Restart(enum.Enum):
    """When a supervisor restarts a child that exited."""

    PERMANENT = "permanent"  #: always, whether it crashed or stopped
    TRANSIENT = "transient"  #: only after a crash
    TEMPORARY = "temporary"  #: never; the child is forgotten when it exits


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one must be restarted."""

    ONE_FOR_ONE = "one_for_one"  #: only that child
    ONE_FOR_ALL = "one_for_all"  #: all: stop the others (reverse order), start all again


def _positive_int(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be an int >= 1, not {value!r}")


@attrs.frozen(kw_only=True)
class ChildSpec:
    """How to start (and restart) one child: a factory that builds a fresh actor each
    time, an optional registry name, and the restart policy."""

    factory: Callable[[], Actor]
    name: str | None = None
    restart: Restart = attrs.field(
        default=Restart.PERMANENT, validator=attrs.validators.instance_of(Restart)
    )
    mailbox_size: int | None = attrs.field(default=None, validator=_positive_int)

    @classmethod
    def of(
        cls,
        actor: Actor | Callable[[], Actor],
        *,
        name: str | None = None,
        restart: Restart = Restart.PERMANENT,
        mailbox_size: int | None = None,
    ) -> ChildSpec:
        """A spec from a factory, or from an instance for a ``TEMPORARY`` child (an
        instance runs once, so it cannot be restarted)."""
        if isinstance(actor, Actor):
            if restart is not Restart.TEMPORARY:
                raise ValueError(
                    f"a {restart.value} child needs a factory (a fresh actor per restart), "
                    f"not a {type(actor).__name__} instance; pass e.g. "
                    f"'lambda: {type(actor).__name__}(...)', or restart=Restart.TEMPORARY"
                )
            instance = actor
            return cls(
                factory=lambda: instance, name=name, restart=restart, mailbox_size=mailbox_size
            )
        if not callable(actor):
            raise TypeError(f"expected an Actor or a factory of actors, got {actor!r}")
        return cls(factory=actor, name=name, restart=restart, mailbox_size=mailbox_size)


@attrs.frozen(kw_only=True)
class CrashReport:
    """One crash of a supervised actor, and what its supervisor did about it."""

    supervisor: str
    child: str
    error: Exception
    restarts: int  #: restarts of this child before the crash
    action: Literal["restart", "remove", "escalate"]
    at: float  #: trio.current_time() when it was handled


@attrs.frozen(kw_only=True)
class ChildInfo:
    name: str
    ref: ActorRef
    restart: Restart
    restarts: int


# Messages a supervisor understands. Helpers below wrap them.


@attrs.frozen
class StartChild:
    spec: ChildSpec


@attrs.frozen
class StopChild:
    name: str


@attrs.frozen
class WhichChildren:
    pass


@attrs.frozen
class _ChildExited:
    cell: _Cell


@attrs.define(eq=False)
class _Slot:
    spec: ChildSpec
    cell: _Cell
    restarts: int = 0
    crash_reported: bool = False  # the crash of this cell (incarnation) was reported


def _specs(children: Iterable[ChildSpec]) -> tuple[ChildSpec, ...]:
    specs = tuple(children)
    for spec in specs:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"children must be ChildSpec instances, not {spec!r}")
    return specs


@attrs.define
class RestartIntensity:
    """How often something may be restarted: at most ``max_restarts`` restarts within
    any ``within`` seconds (trio's clock). The supervisor's rule, for whoever restarts
    things itself (a session restarting its agent process)."""

    max_restarts: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    within: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    _times: deque[float] = attrs.field(factory=deque, init=False, repr=False)

    def exceeded(self) -> bool:
        """Count one restart; True if that makes more than ``max_restarts`` within the
        window (then the caller gives up instead)."""
        now = trio.current_time()
        times = self._times
        times.append(now)
        while times and times[0] <= now - self.within:
            times.popleft()
        return len(times) > self.max_restarts


@attrs.define(eq=False)
class Supervisor(Actor):
    """An actor that runs children in its own nursery and restarts them by policy.

    - Children in ``children`` start in order during ``on_start``; more can be added
      with :func:`start_child`. Each child's ``on_start`` has finished before its ref is
      handed out (``nursery.start``); a child that fails to start fails the request
      with :class:`SpawnError`.
    - When a child exits, its :class:`Restart` policy decides; :class:`Strategy`
      decides which children restart. Every crash is logged and reported
      (:class:`CrashReport`, to ``on_crash`` and to the system's listener).
    - Restart intensity: more than ``max_restarts`` restarts within ``within`` seconds
      and the supervisor stops its children and fails with
      :class:`RestartIntensityExceeded`, for its own parent to decide.
    - Stopping a supervisor stops its children one at a time, in reverse start order,
      each with its own bounded cleanup.
    """

    children: Sequence[ChildSpec] = attrs.field(default=(), converter=_specs)
    strategy: Strategy = attrs.field(
        default=Strategy.ONE_FOR_ONE, validator=attrs.validators.instance_of(Strategy)
    )
    max_restarts: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    within: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    on_crash: Callable[[CrashReport], None] | None = None

    _slots: list[_Slot] = attrs.field(factory=list, init=False, repr=False)
    _intensity: RestartIntensity = attrs.field(
        default=attrs.Factory(
            lambda self: RestartIntensity(self.max_restarts, self.within), takes_self=True
        ),
        init=False,
        repr=False,
    )

    mailbox_size = 256
    refusals = (Refused, SpawnError, NameTaken)

    # -- lifecycle ---------------------------------------------------------------------

    async def on_start(self) -> None:
        for spec in self.children:
            self._slots.append(_Slot(spec=spec, cell=await self._start(spec)))

    async def on_stop(self) -> None:
        for slot in reversed(self._slots):
            await self._stop_slot(slot)

    def cleanup_timeout(self) -> float:
        # Each child's on_stop is bounded by its own timeout; allow for all of them in
        # turn, plus a margin per child for cancelling its tasks.
        return self.stop_timeout + sum(
            slot.cell.actor.cleanup_timeout() + 1.0 for slot in self._slots
        )

    # -- messages ----------------------------------------------------------------------

    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, _ChildExited):
            await self._child_exited(msg.cell)
            return None
        if isinstance(msg, StartChild):
            name = msg.spec.name
            if name is not None and any(slot.spec.name == name for slot in self._slots):
                # Also while that child is between two incarnations: it will be back.
                raise NameTaken(
                    f"supervisor {self.ctx.name!r} already has a child named {name!r}",
                    actor=name,
                )
            cell = await self._start(msg.spec)
            self._slots.append(_Slot(spec=msg.spec, cell=cell))
            return cell.ref
        if isinstance(msg, StopChild):
            slot = self._find(msg.name)
            if slot is None:
                raise Refused(f"supervisor {self.ctx.name!r} has no child named {msg.name!r}")
            self._slots.remove(slot)
            await self._stop_slot(slot)
            return None
        if isinstance(msg, WhichChildren):
            return [
                ChildInfo(
                    name=slot.cell.label,
                    ref=slot.cell.ref,
                    restart=slot.spec.restart,
                    restarts=slot.restarts,
                )
                for slot in self._slots
            ]
        raise Refused(f"supervisor {self.ctx.name!r} does not understand {type(msg).__name__}")

    # -- internals ---------------------------------------------------------------------

    async def _stop_slot(self, slot: _Slot) -> None:
        """Stop a child for good. If it had crashed before we stopped it, its exit
        notice will find no slot: report the crash here, so none goes unreported."""
        await slot.cell.ref.stop()
        if slot.cell.error is not None and not slot.crash_reported:
            self._report(slot, slot.cell.error, "remove")

    def _find(self, name: str) -> _Slot | None:
        for slot in self._slots:
            if slot.cell.label == name:
                return slot
        return None

    async def _start(self, spec: ChildSpec, restarts: int = 0) -> _Cell:
        label = spec.name or "child"
        try:
            cell = _Cell(
                spec.factory(),
                runtime=self.ctx._cell.runtime,
                name=spec.name,
                mailbox_size=spec.mailbox_size,
                restarts=restarts,
            )
        except NameTaken:
            raise
        except Exception as exc:
            # a factory that raises, or returns something that cannot run
            raise SpawnError(f"actor {label!r} failed to start: {exc!r}", actor=label) from exc
        children = self.ctx._cell.children
        assert children is not None
        try:
            await children.start(self._run_child, cell)
        except BaseException as exc:
            crash = _crash_of(exc)
            if crash is None:
                raise
            raise SpawnError(
                f"actor {cell.label!r} failed to start: {crash!r}", actor=cell.label
            ) from crash
        return cell

    async def _run_child(
        self, cell: _Cell, *, task_status: trio.TaskStatus[ActorRef] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await cell.main(task_status=task_status)
        except BaseException as exc:
            # Before it started, the error belongs to whoever is starting it. After, a
            # crash is reported through our own mailbox; cancellation propagates.
            if not cell.started or _crash_of(exc) is None:
                raise
        try:
            await self.ctx.ref.send(_ChildExited(cell))
        except ActorStopped:
            pass  # we are stopping: children are stopped by on_stop, not restarted

    async def _child_exited(self, cell: _Cell) -> None:
        slot = next((s for s in self._slots if s.cell is cell), None)
        if slot is None:
            return  # stopped on purpose, or already replaced by a restart
        error = cell.error
        policy = slot.spec.restart
        if policy is Restart.TEMPORARY or (policy is Restart.TRANSIENT and error is None):
            self._slots.remove(slot)
            if error is not None:
                self._report(slot, error, "remove")
            return
        if self._intensity_exceeded():
            if error is not None:
                self._report(slot, error, "escalate")
            raise self._give_up()
        if error is not None:
            self._report(slot, error, "restart")
        if self.strategy is Strategy.ONE_FOR_ONE:
            await self._restart(slot)
            return
        for other in reversed(self._slots):
            if other is slot:
                continue
            await other.cell.ref.stop()
            crash = other.cell.error
            if crash is not None and other.spec.restart is Restart.TEMPORARY:
                self._report(other, crash, "remove")
            elif crash is not None:
                # It crashed too before we got to it: one more crash to count.
                if self._intensity_exceeded():
                    self._report(other, crash, "escalate")
                    raise self._give_up()
                self._report(other, crash, "restart")
        self._slots = [
            s for s in self._slots if s is slot or s.spec.restart is not Restart.TEMPORARY
        ]
        for each in self._slots:
            await self._restart(each)

    async def _restart(self, slot: _Slot) -> None:
        while True:
            try:
                slot.cell = await self._start(slot.spec, restarts=slot.restarts + 1)
            except (SpawnError, NameTaken) as exc:
                # A failed restart is one more crash, within the same intensity (the
                # name may have been taken elsewhere while the child was down).
                cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
                if self._intensity_exceeded():
                    self._report(slot, cause, "escalate")
                    raise self._give_up() from exc
                self._report(slot, cause, "restart")
            else:
                slot.restarts += 1
                slot.crash_reported = False
                return

    def _intensity_exceeded(self) -> bool:
        """Count one restart; true if that makes more than max_restarts within the
        window."""
        return self._intensity.exceeded()

    def _give_up(self) -> RestartIntensityExceeded:
        return RestartIntensityExceeded(
            f"supervisor {self.ctx.name!r} restarted children more than "
            f"{self.max_restarts} times within {self.within:g}s; giving up",
            actor=self.ctx.name,
            max_restarts=self.max_restarts,
            within=self.within,
        )

    def _report(
        self, slot: _Slot, error: Exception, action: Literal["restart", "remove", "escalate"]
    ) -> None:
        slot.crash_reported = True
        report = CrashReport(
            supervisor=self.ctx.name,
            child=slot.cell.label,
            error=error,
            restarts=slot.restarts,
            action=action,
            at=trio.current_time(),
        )
        logger.error(
            "actor %s crashed (supervisor %s: %s)",
            report.child,
            report.supervisor,
            action,
            exc_info=error,
        )
        runtime = self.ctx._cell.runtime
        runtime.reports.append(report)
        for listener in (self.on_crash, runtime.on_crash):
            if listener is not None:
                try:
                    listener(report)
                except Exception:
                    logger.exception("crash listener %r failed", listener)


# -- helpers ---------------------------------------------------------------------------


async def start_child(supervisor: ActorRef, spec: ChildSpec) -> ActorRef:
    """Start a child under ``supervisor``; returns its ref once its ``on_start`` ran.

    Raises:
        SpawnError: the child's ``on_start`` raised.
        NameTaken: its name is registered already.
    """
    ref: ActorRef = await supervisor.ask(StartChild(spec), timeout=float("inf"))
    return ref


async def stop_child(supervisor: ActorRef, name: str) -> None:
    """Stop the child ``name`` for good (it is not restarted)."""
    await supervisor.ask(StopChild(name), timeout=float("inf"))


async def which_children(supervisor: ActorRef) -> list[ChildInfo]:
    children: list[ChildInfo] = await supervisor.ask(WhichChildren())
    return children
