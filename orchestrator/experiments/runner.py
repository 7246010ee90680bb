"""Experiments: a Python file that uses the library, run N times, K at a time.

An experiment file defines ``experiment = Experiment(name=..., run=..., script=...)``.
``run(ctx)`` builds rooms and agents with ``ctx.create_room`` / ``room.add_agent``
(agents' keys from ``ctx.key(name)``) and waits for them (``ctx.wait_closed``). Each run
gets its own orchestrator and data directory under ``OUT/run-NNN/``; without an API key
each run also gets its own scripted model server playing ``experiment.script`` (each
agent its own turns, by its key), so runs are independent and reproducible.

After a run its streams are exported as JSON lines (``room-<name>.jsonl`` and
``session-<agent>.jsonl``: ``{"offset", "record"}`` per line); the results of all runs go
to ``OUT/results.jsonl``, ``OUT/summary.txt`` and PNG plots under ``OUT/plots/``.

A fork re-runs a room from an offset of an earlier run's room stream: the new room
starts with that conversation (``ForkPoint.load``), the experiment adds its agents,
and ``ctx.resume(room)`` gives the last message again to its recipients.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, aclosing
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import events as ev
from ..config import Settings
from ..core import Orchestrator, OrchestratorError, Room, Session, read_events
from ..models import Script, open_model_server
from ..rooms.actor import room_stream

__all__ = [
    "Experiment",
    "ExperimentError",
    "ForkPoint",
    "RunContext",
    "RunResult",
    "load_experiment",
    "normalize",
    "run_experiment",
]

RunFunction = Callable[["RunContext"], Awaitable[None]]
Progress = Callable[[str], None]


class ExperimentError(Exception):
    """An experiment file that cannot be run (the message says why)."""


@attrs.frozen(kw_only=True)
class Experiment:
    """``run`` builds the rooms of one run; ``script`` is what the scripted model
    answers when no API key is given (``fork_script`` for forked runs)."""

    name: str
    run: RunFunction
    script: Script | None = None
    fork_script: Script | None = None
    sandbox: str = "local"
    description: str = ""
    timeout: float = 600.0  # seconds one run may take


@attrs.frozen
class ForkPoint:
    """Where a forked run starts: a room's settings and conversation up to an offset."""

    room: str  # the room's name
    offset: str
    settings: dict[str, Any]
    history: tuple[ev.AgentMessage, ...]

    @classmethod
    def load(cls, run_dir: Path, offset: str, room: str | None = None) -> ForkPoint:
        """From an earlier run's export (``room-<name>.jsonl``); the last message kept
        is the one at ``offset`` (an offset of that stream, as exported)."""
        files = sorted(run_dir.glob("room-*.jsonl"))
        if room is not None:
            files = [f for f in files if f.name == f"room-{_safe(room)}.jsonl"]
        if len(files) != 1:
            names = [f.name for f in sorted(run_dir.glob("room-*.jsonl"))]
            raise ExperimentError(f"name one room of {run_dir} to fork (found {names})")
        settings: dict[str, Any] = {}
        name = room or files[0].stem.removeprefix("room-")
        history: list[ev.AgentMessage] = []
        found = False
        for line in files[0].read_text().splitlines():
            entry = json.loads(line)
            event, _ = ev.event_from_json(entry["record"])
            if isinstance(event, ev.RoomCreated):
                settings, name = dict(event.settings), event.name
            elif isinstance(event, ev.AgentMessage) and event.sender != "system":
                meta = dict(event.metadata or {})
                history.append(
                    attrs.evolve(
                        event,
                        ts=ev.now_ts(),
                        metadata={"round": meta.get("round"), "forkedFrom": entry["offset"]}
                        if isinstance(meta.get("round"), int)
                        else None,
                    )
                )
            if entry["offset"] == offset:
                found = True
                break
        if not found:
            raise ExperimentError(f"no record of {files[0].name} ends at offset {offset!r}")
        return cls(name, offset, settings, tuple(history))


@attrs.define(eq=False)
class RunContext:
    """What a run's ``run`` function gets."""

    orch: Orchestrator
    index: int
    scripted: bool
    fork: ForkPoint | None = None
    rooms: list[Room] = attrs.field(factory=list)
    agents: dict[str, Session] = attrs.field(factory=dict)

    def key(self, agent: str) -> str | None:
        """The API key an agent uses: its own name against the scripted model (which
        plays it by that name), None with a real key (the server's is used)."""
        return agent if self.scripted else None

    async def create_room(self, name: str, **settings: Any) -> Room:
        """A room of this run (a fork of the same name starts with its history)."""
        history: tuple[ev.AgentMessage, ...] = ()
        if self.fork is not None and self.fork.room == name:
            history = self.fork.history
            settings.setdefault("max_rounds", self.fork.settings.get("maxRounds", 20))
        room = await self.orch.create_room(name, history=history, **settings)
        self.rooms.append(room)
        return room

    async def add_agent(self, room: Room, name: str, **kwargs: Any) -> Session:
        """``room.add_agent`` with this run's key for the agent."""
        kwargs.setdefault("api_key", self.key(name))
        session = await room.add_agent(name, **kwargs)
        self.agents[name] = session
        return session

    async def resume(self, room: Room) -> None:
        """In a forked run, give the fork's last message again (else nothing)."""
        if self.fork is not None and self.fork.room == (await room.state())["name"]:
            await room.resume_fork()

    async def wait_closed(self, room: Room, timeout: float = math.inf) -> dict[str, Any]:
        return await room.wait_closed(timeout)


@attrs.frozen(kw_only=True)
class RunResult:
    run: int
    ok: bool
    seconds: float
    rooms: list[dict[str, Any]]
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def load_experiment(path: Path) -> Experiment:
    """The ``experiment`` defined by a Python file."""
    if not path.is_file():
        raise ExperimentError(f"no such file: {path}")
    name = f"_experiment_{_safe(path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExperimentError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ExperimentError(f"{path} failed to import: {exc!r}") from exc
    found = getattr(module, "experiment", None)
    if not isinstance(found, Experiment):
        raise ExperimentError(f"{path} defines no `experiment = Experiment(...)`")
    return found


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "x"


async def _export(store_reader: Orchestrator, path: str, target: Path) -> list[dict[str, Any]]:
    records = []
    lines = []
    async with aclosing(read_events(store_reader.store, path, follow=False)) as items:
        async for item in items:
            records.append(item.raw)
            lines.append(json.dumps({"offset": item.offset, "record": item.raw}))
    await trio.Path(target).write_text("\n".join(lines) + ("\n" if lines else ""))
    return records


async def _room_result(orch: Orchestrator, room: Room, run_dir: Path) -> dict[str, Any]:
    state = await room.state()
    records = await _export(
        orch, room_stream(room.id), run_dir / f"room-{_safe(state['name'])}.jsonl"
    )
    created = next((r for r in records if r.get("type") == "room_created"), None)
    closed = next((r for r in records if r.get("type") == "room_closed"), None)
    said = [r for r in records if r.get("type") == "agent_message" and r.get("from") != "system"]
    seconds = None
    if created and closed:
        seconds = round(_epoch(closed["ts"]) - _epoch(created["ts"]), 3)
    agents = {}
    for participant in state["participants"]:
        session = orch.session(participant["sessionId"])
        stream = await _export(
            orch, session.stream, run_dir / f"session-{_safe(participant['name'])}.jsonl"
        )
        agents[participant["name"]] = {
            "role": participant["role"],
            "turns": sum(1 for r in stream if r.get("type") == "session_end"),
            "costUsd": participant["costUsd"],
        }
    return {
        "name": state["name"],
        "rounds": state["roundCount"],
        "messages": len(said),
        "costUsd": state["totalCostUsd"],
        "seconds": seconds,
        "stopReason": state["stopReason"],
        "agents": agents,
    }


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def _one_run(
    experiment: Experiment,
    index: int,
    out_dir: Path,
    *,
    api_key: str | None,
    base_url: str | None,
    fork: ForkPoint | None,
    settings: dict[str, Any],
    progress: Progress,
) -> RunResult:
    run_dir = out_dir / f"run-{index:03d}"
    await trio.Path(run_dir).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    scripted = api_key is None
    async with AsyncExitStack() as stack:
        url = base_url
        openai_url = None
        if scripted:
            script = (fork and experiment.fork_script) or experiment.script
            if script is None:
                raise ExperimentError(f"{experiment.name} has no script: give an API key")
            models = await stack.enter_async_context(open_model_server(script))
            url, openai_url = models.base_url, models.openai_base_url
        config = Settings(
            data_dir=run_dir / "data",
            sandbox=settings.get("sandbox", experiment.sandbox),
            anthropic_api_key=api_key,
            anthropic_base_url=url,
            # Codex agents: the scripted model's Responses API, or the real one
            openai_base_url=openai_url,
            openai_api_key=None if scripted else os.environ.get("OPENAI_API_KEY"),
            max_session_cost_usd=settings.get("max_session_cost_usd", 5.0),
        )
        orch = await stack.enter_async_context(Orchestrator(config))
        ctx = RunContext(orch, index, scripted, fork)
        error = None
        try:
            with trio.fail_after(experiment.timeout):
                await experiment.run(ctx)
        except Exception as exc:  # a failed run is a result, not the end of the others
            error = f"{type(exc).__name__}: {exc}"
            progress(f"run {index}: failed: {error}")
            traceback.print_exc(file=sys.stderr)
        rooms = []
        for room in ctx.rooms:
            try:
                await room.close(summary="The experiment's run ended")
            except OrchestratorError:
                pass
            rooms.append(await _room_result(orch, room, run_dir))
        result = RunResult(
            run=index,
            ok=error is None,
            seconds=round(time.monotonic() - started, 3),
            rooms=rooms,
            error=error,
        )
    text = json.dumps(result.to_json(), indent=2) + "\n"
    await trio.Path(run_dir / "result.json").write_text(text)
    for row in result.rooms:
        progress(
            f"run {index}: room {row['name']!r} stopped ({row['stopReason']}) after "
            f"{row['rounds']} rounds, {row['messages']} messages, ${row['costUsd']:.4f}"
        )
    return result


async def run_experiment(
    experiment: Experiment,
    out_dir: Path,
    *,
    runs: int = 1,
    parallel: int = 1,
    api_key: str | None = None,
    base_url: str | None = None,
    fork: ForkPoint | None = None,
    progress: Progress | None = None,
    plots: bool = True,
    **settings: Any,
) -> list[RunResult]:
    """Run ``experiment`` ``runs`` times, ``parallel`` at a time; write the results."""
    if runs < 1 or parallel < 1:
        raise ExperimentError("runs and parallel must be at least 1")
    say = progress or (lambda line: print(line, file=sys.stderr))
    await trio.Path(out_dir).mkdir(parents=True, exist_ok=True)
    limiter = trio.CapacityLimiter(parallel)
    results: list[RunResult] = []
    done = 0

    async def one(index: int) -> None:
        nonlocal done
        async with limiter:
            say(f"run {index}: started")
            result = await _one_run(
                experiment,
                index,
                out_dir,
                api_key=api_key,
                base_url=base_url,
                fork=fork,
                settings=settings,
                progress=say,
            )
        results.append(result)
        done += 1
        state = "done" if result.ok else "FAILED"
        say(f"[{done}/{runs}] run {index} {state} in {result.seconds:.1f}s")

    # A structured scope: every run ends (or is cancelled) before this returns.
    async with trio.open_nursery() as nursery:
        for index in range(1, runs + 1):
            nursery.start_soon(one, index)
    results.sort(key=lambda r: r.run)
    await trio.to_thread.run_sync(partial(write_results, results, out_dir, plots=plots))
    return results


def summary_table(results: Sequence[RunResult]) -> str:
    """One row per room of each run: rounds, messages, cost, time, stop reason."""
    header = ("run", "room", "rounds", "messages", "cost_usd", "seconds", "stop_reason")
    rows = [header]
    for result in results:
        if not result.rooms:
            rows.append((str(result.run), "-", "-", "-", "-", f"{result.seconds:.1f}", "error"))
        for room in result.rooms:
            rows.append(
                (
                    str(result.run),
                    room["name"],
                    str(room["rounds"]),
                    str(room["messages"]),
                    f"{room['costUsd']:.4f}",
                    "-" if room["seconds"] is None else f"{room['seconds']:.1f}",
                    str(room["stopReason"]),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def write_results(results: Sequence[RunResult], out_dir: Path, *, plots: bool = True) -> None:
    with (out_dir / "results.jsonl").open("w") as out:
        for result in results:
            out.write(json.dumps(result.to_json()) + "\n")
    table = summary_table(results)
    (out_dir / "summary.txt").write_text(table + "\n")
    if plots:
        from .plots import plot_results

        plot_results(results, out_dir / "plots")


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_VOLATILE = frozenset(
    {"ts", "cwd", "duration_ms", "duration_api_ms", "offset", "createdAt", "expiresAt"}
)


def normalize(records: Sequence[dict[str, Any]], *, root: str | None = None) -> list[Any]:
    """A transcript: the records with what differs between two runs of the same
    experiment taken out. The server's progress logs (``log`` records from
    ``source: server``: sandbox provisioning runs beside the conversation) are left
    out; timestamps, durations, working directories and offsets dropped; ids (UUIDs)
    replaced by ``<id-N>`` in order of appearance; ``root`` (a run's directory) by
    ``<run>``."""
    records = [r for r in records if not (r.get("type") == "log" and r.get("source") == "server")]
    ids: dict[str, str] = {}

    def text(value: str) -> str:
        if root:
            value = value.replace(root, "<run>")
        return _UUID.sub(lambda m: ids.setdefault(m.group(0), f"<id-{len(ids) + 1}>"), value)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items() if k not in _VOLATILE}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return text(value)
        return value

    return [walk(record) for record in records]
