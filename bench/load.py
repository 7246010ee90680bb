"""Load benchmark: many concurrent sessions, each a scripted agent in a local sandbox,
and many SSE readers over real HTTP, for a while.

    python -m bench.load [--sessions 500] [--readers 1000] [--minutes 10] [--quick]
                         [--agent scripted|claude] [--cache-mb M] [--period S]
                         [--create-concurrency N] [--no-bwrap]

One embedded :class:`~orchestrator.core.Orchestrator` (local sandboxes, the on-disk
store, whose payload cache is ``--cache-mb``) with its HTTP API (``create_api`` served
by ``transport.serve`` on 127.0.0.1).

The store's payload cache is a fixed budget that fills and then stays full. The server's
default is 64 MiB; the bench's default is 4 MiB, so the cache is full before the
warm-up ends and flatness measures the orchestrator, not a cache filling. With 64 MiB
(``--cache-mb 64``), 500 sessions fill the cache for about the first 40 minutes: 13.5 %
of growth in a 10-minute run, almost all of it the cache (see
``rss_net_of_store_flat_pct``). ``rss_flat_ok`` is 1 when the RSS stayed within 10 %.

Measured on 2 cores and 24 GiB (the defaults: 500 sessions and 1,000 readers for 10
minutes, a 4 MiB cache):
- 70 KiB per session and 65 KiB per reader;
- RSS flat within 4.5 %;
- 150 events/s appended and 300 deliveries/s;
- nothing stuck.

The agent (``--agent``):

- ``scripted`` (the default): ``bench/scripted_agent.py``, a stand-in for the Claude
  Code CLI that speaks its stream-json and control protocol to claude-agent-sdk in a
  few MiB, run in the sandbox in place of the CLI. Everything on the orchestrator's
  side is what a real session runs: the SDK, the sandbox transport, the event mapper
  and the cost meter, the permission callback, the session actor, the store, SSE.
- ``claude``: the real Claude Code CLI against the scripted model server. One CLI
  process holds 120-140 MiB of its own (private dirty pages, not shared ones), so 500
  need ~65 GiB: 100 is what fits a 24 GiB machine (``--agent claude --sessions 100``).

The scripted model server runs in a process of its own (``python -m
orchestrator.models``, idle with the scripted agent): it records every request it
answers, and that memory is not the orchestrator's.

- sessions: created concurrently (at most ``--create-concurrency`` starting at once, a
  session counting as started once its first turn has ended); each then takes another
  turn every ``--period`` seconds (jittered), each turn a tool call (``Bash``, through
  the permission callback) and a text answer, so that events flow for the whole run;
- readers: ``GET /api/sessions/<id>/events`` (SSE, httpx), spread round-robin over the
  sessions; each counts its events, checks that ids (stream positions) only go up, and
  keeps a digest of them; a dropped stream is resumed with ``Last-Event-ID``;
- sampled every 5 seconds: the process's RSS (``VmRSS``), the RSS of the
  agents' processes (the agent and its sandbox), the events appended to the session
  streams, the bytes the store holds in memory, the number of trio tasks;
- at the end: every session is given a final turn and must answer it within 180 s;
  then every reader must reach its session's last event with exactly the ids the
  store holds (no duplicate, no gap).

Figures: orchestrator memory per session (RSS after the sessions started, minus before,
over N) and per reader; event throughput; memory flatness over the steady part (after
the sessions and readers started and a warm-up): ``(max - min) / min`` of the RSS, also
net of the payload bytes the store holds in memory (a bounded cache: the rest is read
back from its logs); no stuck task (sessions unanswered, readers behind or wrong, trio
tasks at the end vs the start).
The last line holds every figure as ``key=value``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from orchestrator.api.app import create_api
from orchestrator.config import Settings
from orchestrator.core import Orchestrator, OrchestratorError, Session, bundled_claude_cli
from orchestrator.models import AgentScript, Script, Text, ToolCall, Turn, Usage
from orchestrator.sandboxes.local import LocalProvider
from orchestrator.streams import read_events, split_position
from transport import DiskStore, LocalStore, Store, serve

SCRIPTED_AGENT = Path(__file__).with_name("scripted_agent.py")
HIDDEN_TYPES = frozenset({"command", "gate_response"})  # never sent over SSE
SESSION_PREFIX = "/v1/stream/session/"


@attrs.define
class Sizes:
    sessions: int = 500
    readers: int = 1000
    minutes: float = 10.0
    period: float = 30.0  # seconds between a session's turns
    sample: float = 5.0  # seconds between samples
    warmup: float = 60.0  # seconds after start-up not counted as steady
    create_concurrency: int = 6
    final_timeout: float = 180.0
    bwrap: bool = True  # local sandboxes under bubblewrap when it works
    agent: str = "scripted"  # scripted (bench/scripted_agent.py) | claude (the real CLI)
    # the store's payload cache (None: the server's default, 64 MiB); small enough to be
    # full before the warm-up ends
    cache_mb: float | None = 4.0


QUICK = Sizes(
    sessions=5,
    readers=20,
    minutes=1 / 3,
    period=3.0,
    sample=1.0,
    warmup=4.0,
    create_concurrency=5,
    final_timeout=120.0,
)


# -- measuring ----------------------------------------------------------------------------


def rss_bytes(pid: int | str = "self") -> int:
    """VmRSS of a process (psutil is not installed), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants_rss(skip: int | None = None) -> tuple[int, int]:
    """RSS and count of this process's descendants (the agents and their sandboxes),
    leaving out the tree of process ``skip`` (the model server)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(name))
    total = count = 0
    stack = [pid for pid in parents.get(os.getpid(), []) if pid != skip]
    while stack:
        pid = stack.pop()
        total += rss_bytes(pid)
        count += 1
        stack.extend(parents.get(pid, []))
    return total, count


def task_count() -> int:
    """Every live trio task of this run, found from the root task's nurseries."""
    count = 0
    root = trio.lowlevel.current_root_task()
    stack = [root] if root is not None else []
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def store_totals(store: Store) -> tuple[int, int]:
    """Appends to the session streams and payload bytes the store holds in memory,
    from the embedded store's state (0, 0 for a store that is not embedded)."""
    if not isinstance(store, LocalStore):
        return 0, 0
    streams: dict[str, Any] = getattr(store, "_streams", {})
    appends = sum(
        len(getattr(stream, "ends", ()))
        for path, stream in streams.items()
        if path.startswith(SESSION_PREFIX)
    )
    return appends, store.held_bytes()


def position_key(position: str) -> tuple[str, int]:
    """An SSE id (a stream position) as something ordered: the offset, then the
    records of its append skipped."""
    return split_position(position)


@attrs.define
class Sample:
    t: float
    rss: int
    agents_rss: int
    agents: int
    appends: int
    held: int
    tasks: int
    delivered: int


# -- the scripted agent and the model server ----------------------------------------------


def agent_script(turns: int) -> Script:
    """What every agent plays (each its own cursor, by its key): per turn a tool call
    and then a text answer."""
    blocks: list[Turn | str] = []
    for i in range(turns):
        blocks.append(
            Turn(
                blocks=(Text(f"Step {i}: running it."), ToolCall("Bash", {"command": f"echo {i}"})),
                usage=Usage(input_tokens=200, output_tokens=20),
            )
        )
        blocks.append(Turn(blocks=(Text(f"Step {i} done."),), usage=Usage(input_tokens=220)))
    return Script(default=AgentScript.of(*blocks), final_text="Done.")


@asynccontextmanager
async def model_server(script: Script, tmp: Path) -> AsyncIterator[tuple[str, int]]:
    """``python -m orchestrator.models`` serving ``script``; yields its base URL and
    its pid."""
    path = tmp / "script.json"
    path.write_text(json.dumps(script.to_json()))
    async with trio.open_nursery() as nursery:
        command = [sys.executable, "-m", "orchestrator.models", str(path)]
        run_it = partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        process: trio.Process = await nursery.start(run_it)
        assert process.stdout is not None
        buffered = b""
        with trio.fail_after(60):
            while b"\n" not in buffered:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError("the model server exited before it was ready")
                buffered += chunk
        line = buffered.split(b"\n", 1)[0].decode()
        if not line.startswith("READY "):
            raise RuntimeError(f"the model server said {line!r}")

        async def drain() -> None:
            assert process.stdout is not None
            while await process.stdout.receive_some(65536):
                pass

        nursery.start_soon(drain)
        try:
            yield line.split(" ", 1)[1], process.pid
        finally:
            process.send_signal(signal.SIGTERM)


# -- sessions -----------------------------------------------------------------------------


@attrs.define(eq=False)
class Driver:
    """One session's turns: the first at creation, then one every ``period``."""

    index: int
    session: Session | None = None
    offset: str = "-1"  # after the last session_end seen
    turns: int = 0
    failed_turns: int = 0
    error: str | None = None
    in_turn: bool = False
    stuck: bool = False  # a turn that did not end in time

    async def next_end(self) -> bool:
        """Wait for the session's next ``session_end``; whether the turn succeeded."""
        assert self.session is not None
        item = await self.session.wait_for("session_end", offset=self.offset)
        self.offset = item.offset
        success = bool(item.raw.get("success"))
        self.turns += 1
        self.failed_turns += not success
        return success

    async def turn(self, prompt: str) -> None:
        assert self.session is not None
        self.in_turn = True
        await self.session.send(prompt)
        await self.next_end()
        self.in_turn = False


async def create(
    orch: Orchestrator, driver: Driver, limiter: trio.CapacityLimiter, timeout: float
) -> None:
    async with limiter:
        try:
            with trio.fail_after(timeout):
                driver.session = await orch.create_session(
                    "Start: run one step.", freeform=True, api_key=f"load-{driver.index}"
                )
                await driver.next_end()
        except (OrchestratorError, TimeoutError) as exc:
            driver.error = f"creation: {exc!r}"


async def drive(driver: Driver, period: float, until: float) -> None:
    """Take a turn every ``period`` seconds (jittered) until ``until``."""
    rng = random.Random(driver.index)
    await trio.sleep(rng.uniform(0, period))
    step = 1
    while driver.error is None and time.monotonic() < until:
        try:
            await driver.turn(f"Step {step}: run it.")
        except OrchestratorError as exc:
            driver.error = f"turn {step}: {exc}"
            return
        step += 1
        await trio.sleep(max(0.0, min(period * rng.uniform(0.5, 1.5), until - time.monotonic())))


async def final_turn(driver: Driver, timeout: float, answered: list[Driver]) -> None:
    if driver.error is not None:
        return
    try:
        with trio.fail_after(timeout):
            await driver.turn("Final step: run it.")
    except OrchestratorError as exc:
        driver.error = f"final turn: {exc}"
        return
    except TimeoutError:
        driver.error = f"the final turn did not end within {timeout:g} s"
        driver.stuck = True
        return
    answered.append(driver)


# -- readers ------------------------------------------------------------------------------


@attrs.define(eq=False)
class Reader:
    """An SSE reader of one session: counts, order, a digest of the ids."""

    session: Session
    count: int = 0
    last: str = ""
    digest: Any = attrs.field(factory=hashlib.blake2b)
    out_of_order: int = 0
    reconnects: int = 0
    errors: int = 0
    connected: trio.Event = attrs.field(factory=trio.Event)
    moved: trio.Event = attrs.field(factory=trio.Event)

    def take(self, event_id: str) -> None:
        if self.last and position_key(event_id) <= position_key(self.last):
            self.out_of_order += 1
            return
        self.count += 1
        self.last = event_id
        self.digest.update(event_id.encode() + b"\n")
        self.moved.set()
        self.moved = trio.Event()

    async def run(self, client: httpx.AsyncClient, totals: list[int]) -> None:
        headers = {"Authorization": f"Bearer {self.session.token}"}
        path = f"/api/sessions/{self.session.id}/events"
        while True:
            if self.last:
                headers["Last-Event-ID"] = self.last
            try:
                async with client.stream("GET", path, headers=headers) as response:
                    if response.status_code != 200:
                        self.errors += 1
                        await trio.sleep(1)
                        continue
                    self.connected.set()
                    event_id = ""
                    async for line in response.aiter_lines():
                        if line.startswith("id: "):
                            event_id = line[4:]
                        elif line.startswith("data: ") and event_id:
                            self.take(event_id)
                            totals[0] += 1
            except httpx.HTTPError:
                self.errors += 1
                await trio.sleep(0.5)
            self.reconnects += 1


async def expected_ids(store: Store, session: Session) -> tuple[int, str, str]:
    """What a reader of ``session`` must have seen: count, last id, digest."""
    digest = hashlib.blake2b()
    count, last = 0, ""
    async with aclosing(read_events(store, session.stream, "-1", follow=False)) as items:
        async for item in items:
            if item.raw.get("type") in HIDDEN_TYPES:
                continue
            count += 1
            last = item.offset
            digest.update(item.offset.encode() + b"\n")
    return count, last, digest.hexdigest()


async def reader_check(reader: Reader, want: tuple[int, str, str], timeout: float) -> bool:
    count, last, digest = want
    with trio.move_on_after(timeout):
        while not reader.last or position_key(reader.last) < position_key(last):
            await reader.moved.wait()
    return (reader.count, reader.last, reader.digest.hexdigest()) == (count, last, digest)


# -- the run ------------------------------------------------------------------------------


async def sampler(
    samples: list[Sample], store: Store, totals: list[int], every: float, skip: int
) -> None:
    while True:
        appends, held = store_totals(store)
        agents_rss, agents = await trio.to_thread.run_sync(descendants_rss, skip)
        samples.append(
            Sample(
                t=time.monotonic(),
                rss=rss_bytes(),
                agents_rss=agents_rss,
                agents=agents,
                appends=appends,
                held=held,
                tasks=task_count(),
                delivered=totals[0],
            )
        )
        await trio.sleep(every)


def flatness(values: list[float]) -> float:
    """(max - min) / min, in percent."""
    low = min(values)
    return (max(values) - low) / low * 100 if low > 0 else math.inf


def mb(value: float) -> str:
    return f"{value / 2**20:.1f}"


async def bench(sizes: Sizes) -> dict[str, str]:
    n, m = sizes.sessions, sizes.readers
    run_seconds = sizes.minutes * 60
    turns = math.ceil(run_seconds / (sizes.period * 0.5)) + 8
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp_name:
        tmp = Path(tmp_name)
        async with model_server(agent_script(turns), tmp) as (base_url, models_pid):
            settings = Settings(
                data_dir=tmp / "data",
                sandbox="local",
                anthropic_base_url=base_url,
                max_session_cost_usd=1e6,
                max_sessions=0,
                max_sandboxes=0,
                min_free_memory_mb=0,
                rate_limit=None,
                create_rate_limit=None,
            )
            provider = LocalProvider(
                "bench-load",
                tmp / "sandboxes",
                claude_binary=SCRIPTED_AGENT if sizes.agent == "scripted" else bundled_claude_cli(),
                bwrap=None if sizes.bwrap else False,
            )
            cache = {} if sizes.cache_mb is None else {"cache_bytes": int(sizes.cache_mb * 2**20)}
            async with (
                DiskStore(tmp / "data" / "streams", **cache) as store,
                provider,
                Orchestrator(settings, provider=provider, store=store) as orch,
                trio.open_nursery() as nursery,
            ):
                binds: list[str] = await nursery.start(
                    lambda task_status: serve(
                        create_api(orch), host="127.0.0.1", port=0, task_status=task_status
                    )
                )
                figures = await run(orch, binds[0], sizes, run_seconds, models_pid)
                nursery.cancel_scope.cancel()
    print(f"load run: {n} sessions, {m} readers, {sizes.minutes:g} min")
    return figures


async def run(
    orch: Orchestrator, base: str, sizes: Sizes, run_seconds: float, models_pid: int
) -> dict[str, str]:
    n, m = sizes.sessions, sizes.readers
    samples: list[Sample] = []
    totals = [0]  # events delivered to readers
    drivers = [Driver(i) for i in range(n)]
    limits = httpx.Limits(max_connections=m + 64, max_keepalive_connections=64)
    timeout = httpx.Timeout(30.0, read=None)
    async with (
        httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client,
        trio.open_nursery() as nursery,
    ):
        assert (await client.get("/api/health")).status_code == 200
        tasks_start = task_count()
        nursery.start_soon(sampler, samples, orch.store, totals, sizes.sample, models_pid)
        await trio.sleep(0.1)
        rss_base = rss_bytes()

        # sessions, at most create_concurrency starting at once
        created_at = time.monotonic()
        limiter = trio.CapacityLimiter(sizes.create_concurrency)
        async with trio.open_nursery() as creating:
            for driver in drivers:
                creating.start_soon(create, orch, driver, limiter, max(120.0, sizes.final_timeout))
        create_seconds = time.monotonic() - created_at
        live = [d for d in drivers if d.session is not None]
        sessions = [d.session for d in live if d.session is not None]
        rss_sessions = rss_bytes()
        tasks_sessions = task_count()
        agents_rss, agents = await trio.to_thread.run_sync(descendants_rss, models_pid)
        print(
            f"sessions  {len(live)}/{n} started in {create_seconds:.1f} s; "
            f"RSS {mb(rss_base)} -> {mb(rss_sessions)} MiB; "
            f"agents {agents} processes, {mb(agents_rss)} MiB"
        )

        # readers, round-robin over the sessions
        readers = [Reader(sessions[j % len(sessions)]) for j in range(m)] if sessions else []
        async with trio.open_nursery() as runs:
            for reader in readers:
                runs.start_soon(reader.run, client, totals)
            with trio.move_on_after(120):
                for reader in readers:
                    await reader.connected.wait()
            connected = sum(r.connected.is_set() for r in readers)
            rss_readers = rss_bytes()
            print(f"readers   {connected}/{m} connected; RSS {mb(rss_readers)} MiB")

            # the steady run
            steady_from = time.monotonic() + sizes.warmup
            until = time.monotonic() + run_seconds
            async with trio.open_nursery() as driving:
                for driver in live:
                    driving.start_soon(drive, driver, sizes.period, until)
                while time.monotonic() < until:
                    await trio.sleep(min(30.0, max(0.0, until - time.monotonic())))
                    if samples:
                        last = samples[-1]
                        print(
                            f"  t={last.t - created_at:6.0f}s RSS {mb(last.rss)} MiB "
                            f"held {mb(last.held)} MiB tasks {last.tasks} "
                            f"appends {last.appends} delivered {last.delivered}",
                            flush=True,
                        )
                steady_to = time.monotonic()
                # a turn still running gets final_timeout to end, else it is stuck
                driving.cancel_scope.deadline = trio.current_time() + sizes.final_timeout
            for driver in live:
                if driver.in_turn and driver.error is None:
                    driver.error = f"a turn did not end within {sizes.final_timeout:g} s"
                    driver.stuck = True

            # no stuck task: a final turn each, then every reader at its session's end
            answered: list[Driver] = []
            async with trio.open_nursery() as finals:
                for driver in live:
                    finals.start_soon(final_turn, driver, sizes.final_timeout, answered)
            await trio.sleep(1.0)
            wanted = {}
            for driver in live:
                assert driver.session is not None
                wanted[driver.session.id] = await expected_ids(orch.store, driver.session)
            good: list[bool] = []

            async def check(reader: Reader) -> None:
                good.append(await reader_check(reader, wanted[reader.session.id], 60.0))

            async with trio.open_nursery() as checking:
                for reader in readers:
                    checking.start_soon(check, reader)
            runs.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    await trio.sleep(0.5)
    tasks_end = task_count()  # the sessions still live; readers and sampler gone

    steady = [s for s in samples if steady_from <= s.t <= steady_to]
    if len(steady) < 2:
        steady = samples[-2:]
    rss_values = [float(s.rss) for s in steady]
    net_values = [float(s.rss - s.held) for s in steady]
    span = steady[-1].t - steady[0].t if len(steady) > 1 else 1.0
    appended = steady[-1].appends - steady[0].appends
    delivered = steady[-1].delivered - steady[0].delivered
    turns = sum(d.turns for d in drivers)
    failed_turns = sum(d.failed_turns for d in drivers)
    errors = [d.error for d in drivers if d.error]
    for error in errors[:5]:
        print(f"  session error: {error}")
    events = sum(want[0] for want in wanted.values())
    agent_samples = [s.agents_rss for s in steady if s.agents]
    figures = {
        "sessions": str(n),
        "sessions_started": str(len(live)),
        "readers": str(m),
        "readers_connected": str(connected),
        "minutes": f"{sizes.minutes:g}",
        "period_s": f"{sizes.period:g}",
        "agent": sizes.agent,
        "cache_mb": "default" if sizes.cache_mb is None else f"{sizes.cache_mb:g}",
        "bwrap": str(int(sizes.bwrap)),
        "create_s": f"{create_seconds:.1f}",
        "rss_base_mb": mb(rss_base),
        "rss_per_session_kb": f"{(rss_sessions - rss_base) / max(1, len(live)) / 1024:.0f}",
        "rss_per_reader_kb": f"{(rss_readers - rss_sessions) / max(1, m) / 1024:.1f}",
        "rss_min_mb": mb(min(rss_values)),
        "rss_max_mb": mb(max(rss_values)),
        "rss_flat_pct": f"{flatness(rss_values):.1f}",
        "rss_flat_ok": str(int(flatness(rss_values) <= 10.0)),
        "rss_drift_pct": f"{(rss_values[-1] - rss_values[0]) / rss_values[0] * 100:.1f}",
        "store_held_mb": mb(steady[-1].held),
        "rss_net_of_store_flat_pct": f"{flatness(net_values):.1f}",
        "agents_rss_per_session_mb": mb(statistics.median(agent_samples) / max(1, len(live)))
        if agent_samples
        else "0",
        "events_per_s": f"{appended / span:.1f}",
        "deliveries_per_s": f"{delivered / span:.1f}",
        "events": str(events),
        "turns": str(turns),
        "failed_turns": str(failed_turns),
        "session_errors": str(len(errors)),
        "sessions_answered": str(len(answered)),
        "readers_exact": str(sum(good)),
        "readers_out_of_order": str(sum(r.out_of_order > 0 for r in readers)),
        "reader_reconnects": str(sum(r.reconnects for r in readers)),
        "tasks_start": str(tasks_start),
        "tasks_sessions": str(tasks_sessions),
        "tasks_steady_min": str(min(s.tasks for s in steady)),
        "tasks_steady_max": str(max(s.tasks for s in steady)),
        "tasks_end": str(tasks_end),
        "stuck_sessions": str(sum(d.stuck for d in drivers)),
        "stuck": str(int(any(d.stuck for d in drivers) or sum(good) < len(readers))),
    }
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--readers", type=int)
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--period", type=float, help="seconds between a session's turns")
    parser.add_argument("--create-concurrency", type=int)
    parser.add_argument(
        "--no-bwrap", dest="bwrap", action="store_false", help="plain local processes"
    )
    parser.add_argument(
        "--agent",
        choices=("scripted", "claude"),
        default="scripted",
        help="the scripted stand-in of the CLI (bench/scripted_agent.py) or the real "
        "Claude Code CLI against the scripted model server",
    )
    parser.add_argument(
        "--cache-mb",
        type=float,
        default=4.0,
        help="the store's payload cache in MiB (default 4, full before the warm-up ends; "
        "the server's default is 64)",
    )
    parser.add_argument("--quick", action="store_true", help="5 sessions, 20 readers, 20 s")
    args = parser.parse_args(argv)
    sizes = attrs.evolve(QUICK) if args.quick else Sizes()
    sizes.bwrap = args.bwrap
    sizes.agent = args.agent
    sizes.cache_mb = args.cache_mb
    for name in ("sessions", "readers", "minutes", "period", "create_concurrency"):
        value = getattr(args, name)
        if value is not None:
            setattr(sizes, name, value)
    sizes.warmup = min(sizes.warmup, sizes.minutes * 60 / 4)
    figures = trio.run(bench, sizes)
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
