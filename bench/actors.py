"""Actor runtime benchmark, each figure beside a raw trio memory channel in the same run.

    python -m bench.actors [--tells N] [--asks N] [--actors N]

- tell: one sender ``await ref.send(i)`` N times to an actor that counts, vs. the same
  over a bare memory channel to a task that counts (same buffer size);
- ask: N sequential ``ref.ask`` round trips, vs. a request over one channel and the
  reply over another;
- spawn+stop: N actors spawned under the root supervisor and then stopped one by one,
  vs. N tasks started with ``nursery.start`` (each reading its channel) then closed;
- memory: bytes per live idle actor (tracemalloc), vs. per idle channel+task.

The last line holds every figure as ``key=value``.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from actors import DEFAULT_MAILBOX_SIZE, Actor, ActorRef, ActorSystem


@attrs.define(eq=False)
class Counter(Actor):
    count: int = 0

    async def handle(self, msg: Any) -> int:
        self.count += 1
        return self.count


class Idle(Actor):
    async def handle(self, msg: Any) -> None:
        return None


async def timed(fn: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


# -- tell ------------------------------------------------------------------------------


async def tell_actor(system: ActorSystem, n: int) -> float:
    ref = await system.spawn(Counter())

    async def run() -> None:
        for i in range(n):
            await ref.send(i)
        assert await ref.ask("sync") == n + 1

    elapsed = await timed(run)
    await ref.stop()
    return elapsed


async def tell_channel(n: int) -> float:
    send, receive = trio.open_memory_channel[Any](DEFAULT_MAILBOX_SIZE)
    done = trio.Event()
    count = 0

    async def consumer() -> None:
        nonlocal count
        async for _ in receive:
            count += 1
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)

        async def run() -> None:
            for i in range(n):
                await send.send(i)
            await send.aclose()
            await done.wait()

        elapsed = await timed(run)
    assert count == n
    return elapsed


# -- ask -------------------------------------------------------------------------------


async def ask_actor(system: ActorSystem, n: int) -> float:
    ref = await system.spawn(Counter())

    async def run() -> None:
        for i in range(n):
            await ref.ask(i)

    elapsed = await timed(run)
    await ref.stop()
    return elapsed


async def ask_channel(n: int) -> float:
    req_send, req_receive = trio.open_memory_channel[Any](DEFAULT_MAILBOX_SIZE)
    rep_send, rep_receive = trio.open_memory_channel[Any](1)

    async def server() -> None:
        async with rep_send:
            async for msg in req_receive:
                await rep_send.send(msg)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)

        async def run() -> None:
            for i in range(n):
                await req_send.send(i)
                await rep_receive.receive()
            await req_send.aclose()

        return await timed(run)


# -- spawn + stop ----------------------------------------------------------------------


async def member(
    receive: trio.MemoryReceiveChannel[Any], *, task_status: trio.TaskStatus[None]
) -> None:
    """The raw counterpart of an idle actor: a task reading its channel."""
    task_status.started()
    async for _ in receive:
        pass


async def spawn_stop_actors(system: ActorSystem, n: int) -> float:
    async def run() -> None:
        refs: list[ActorRef] = [await system.spawn(Idle()) for _ in range(n)]
        for ref in refs:
            await ref.stop()

    return await timed(run)


async def spawn_stop_channels(n: int) -> float:
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            senders = []
            for _ in range(n):
                send, receive = trio.open_memory_channel[Any](DEFAULT_MAILBOX_SIZE)
                await nursery.start(member, receive)
                senders.append(send)
            for send in senders:
                await send.aclose()
                await trio.lowlevel.checkpoint()

        return await timed(run)


# -- memory ----------------------------------------------------------------------------


async def bytes_per_actor(system: ActorSystem, n: int) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    refs = [await system.spawn(Idle()) for _ in range(n)]
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    for ref in refs:
        await ref.stop()
    return used / n


async def bytes_per_channel(n: int) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    async with trio.open_nursery() as nursery:
        senders = []
        for _ in range(n):
            send, receive = trio.open_memory_channel[Any](DEFAULT_MAILBOX_SIZE)
            await nursery.start(member, receive)
            senders.append(send)
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        for send in senders:
            await send.aclose()
    return used / n


# -- main ------------------------------------------------------------------------------


async def bench(tells: int, asks: int, actors: int) -> dict[str, str]:
    async with ActorSystem() as system:
        # Warm up both paths once so that neither pays for first-use costs.
        await tell_actor(system, 1000)
        await tell_channel(1000)

        t_actor = await tell_actor(system, tells)
        t_chan = await tell_channel(tells)
        a_actor = await ask_actor(system, asks)
        a_chan = await ask_channel(asks)
        s_actor = await spawn_stop_actors(system, actors)
        s_chan = await spawn_stop_channels(actors)
        m_actor = await bytes_per_actor(system, actors)
        m_chan = await bytes_per_channel(actors)

    figures = {
        "tell_per_s": f"{tells / t_actor:.0f}",
        "tell_channel_per_s": f"{tells / t_chan:.0f}",
        "tell_ratio_vs_channel": f"{t_actor / t_chan:.2f}",
        "ask_rtt_us": f"{a_actor / asks * 1e6:.1f}",
        "ask_channel_rtt_us": f"{a_chan / asks * 1e6:.1f}",
        "ask_ratio_vs_channel": f"{a_actor / a_chan:.2f}",
        "spawn_stop_per_s": f"{actors / s_actor:.0f}",
        "spawn_stop_channel_per_s": f"{actors / s_chan:.0f}",
        "spawn_stop_ratio_vs_channel": f"{s_actor / s_chan:.2f}",
        "bytes_per_actor": f"{m_actor:.0f}",
        "bytes_per_channel_task": f"{m_chan:.0f}",
        "actors": str(actors),
    }
    print(f"tell      {tells:>7} msgs   actor {t_actor:7.3f}s   channel {t_chan:7.3f}s")
    print(f"ask       {asks:>7} trips  actor {a_actor:7.3f}s   channel {a_chan:7.3f}s")
    print(f"spawn+stop{actors:>7} actors actor {s_actor:7.3f}s   channel {s_chan:7.3f}s")
    print(f"memory    {actors:>7} idle   actor {m_actor:7.0f}B   channel {m_chan:7.0f}B")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tells", type=int, default=200_000)
    parser.add_argument("--asks", type=int, default=50_000)
    parser.add_argument("--actors", type=int, default=10_000)
    args = parser.parse_args(argv)
    figures = trio.run(bench, args.tells, args.asks, args.actors)
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
