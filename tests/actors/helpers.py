"""Small actors shared by the actor runtime's tests."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from actors import Actor, Refused


@attrs.frozen
class Crash:
    """Tell or ask an actor to raise ValueError(reason)."""

    reason: str = "boom"


@attrs.frozen
class Block:
    """Handled by waiting until ``release`` is set (forever if never)."""

    release: trio.Event


@attrs.define(eq=False)
class Recorder(Actor):
    """Records every message; replies with the message; understands Crash and Block.

    ``log`` is shared across restarts when passed in by a factory.
    """

    log: list[Any] = attrs.field(factory=list)
    events: list[str] = attrs.field(factory=list)
    tag: str = "recorder"

    async def on_start(self) -> None:
        self.events.append(f"start:{self.tag}")

    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, Crash):
            raise ValueError(msg.reason)
        if isinstance(msg, Block):
            await msg.release.wait()
            return "released"
        if msg == "refuse":
            raise Refused("no, thank you")
        if msg == "stop-self":
            self.ctx.stop()
            return "stopping"
        self.log.append(msg)
        return msg

    async def on_stop(self) -> None:
        self.events.append(f"stop:{self.tag}")


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task of the running trio run, found by walking the task tree."""
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None or task in found:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found
