"""Session benchmark on the real Docker engine, with the real Claude Code CLI against
the scripted model server.

    python -m bench.sessions [--runs N]

- sandbox start: DockerProvider.create (labelled container, limits, volume, project
  dir) beside a raw docker SDK create+start of the same image, interleaved in one run;
  ratio of medians (goal <= 1.10);
- session ready: create_session -> the agent's ``session_start`` event (container up
  and Claude Code initialised), median and max (goal <= 1.3 s);
- teardown after a spent budget: ``budget_exceeded`` -> no container left, p99 (goal
  <= 1 s).

The last line holds every figure as ``key=value``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from contextlib import aclosing
from functools import partial
from pathlib import Path

import docker
import trio
from docker.types import Mount

from orchestrator.config import Settings
from orchestrator.core import Orchestrator, bundled_claude_cli
from orchestrator.models import AgentScript, Script, Text, Turn, Usage, open_model_server
from orchestrator.sandboxes import DockerProvider, SandboxSpec
from orchestrator.sandboxes.docker import DEFAULT_IMAGE
from tests.docker_support import connect

KEY = "bench-agent"


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def sandbox_start(
    client: docker.DockerClient, limiter: trio.CapacityLimiter, runs: int
) -> tuple[float, float]:
    provider = DockerProvider(f"bench-{uuid.uuid4().hex[:8]}", client=client, limiter=limiter)
    ours: list[float] = []
    raw: list[float] = []

    def raw_start() -> tuple[str, str]:
        # The same container as the provider's (init, limits, a named volume), made
        # with two SDK calls: what is measured is the orchestrator's own overhead.
        name = f"bench-raw-{uuid.uuid4().hex[:10]}"
        host_config = client.api.create_host_config(
            init=True,
            network_mode="none",
            mem_limit=2 * 1024**3,
            pids_limit=512,
            cap_drop=["ALL"],
            mounts=[Mount(target="/workspace", source=name, type="volume")],
        )
        created = client.api.create_container(
            DEFAULT_IMAGE,
            command=["sleep", "infinity"],
            user="agent",
            name=name,
            host_config=host_config,
            detach=True,
        )
        client.api.start(created["Id"])
        return str(created["Id"]), name

    def raw_remove(ident: str, name: str) -> None:
        client.api.remove_container(ident, force=True)
        client.api.remove_volume(name, force=True)

    for i in range(runs):
        start = time.perf_counter()
        sandbox = await provider.create(
            SandboxSpec(session_id=f"bench-{i}-{uuid.uuid4().hex[:6]}", project_name="p")
        )
        ours.append(time.perf_counter() - start)
        await sandbox.destroy()
        start = time.perf_counter()
        ident, name = await trio.to_thread.run_sync(raw_start, limiter=limiter)
        raw.append(time.perf_counter() - start)
        await trio.to_thread.run_sync(partial(raw_remove, ident, name), limiter=limiter)
    await provider.aclose()
    return statistics.median(ours), statistics.median(raw)


async def sessions(
    client: docker.DockerClient, limiter: trio.CapacityLimiter, runs: int
) -> tuple[list[float], list[float]]:
    expensive = Turn(blocks=(Text("thinking"),), usage=Usage(input_tokens=2_000_000))
    script = Script(agents={KEY: AgentScript.of(*([expensive] * (2 * runs)))})
    ready: list[float] = []
    teardown: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        async with open_model_server(script) as models:
            provider = DockerProvider(
                f"bench-{uuid.uuid4().hex[:8]}",
                client=client,
                limiter=limiter,
                network="host",
                claude_binary=bundled_claude_cli(),
            )
            settings = Settings(
                data_dir=Path(tmp),
                anthropic_base_url=models.base_url,
                anthropic_api_key=KEY,
                max_session_cost_usd=1.0,
            )
            async with Orchestrator(settings, provider=provider) as orch:
                for _ in range(runs):
                    start = time.perf_counter()
                    session = await orch.create_session("bench", freeform=True)
                    async with aclosing(session.events()) as events:
                        async for item in events:
                            if item.event.type == "session_start":
                                ready.append(time.perf_counter() - start)
                            if item.event.type == "budget_exceeded":
                                exceeded = time.perf_counter()
                                break
                    while await provider.list_owned():  # noqa: ASYNC110 - the engine has no event
                        await trio.sleep(0.01)
                    teardown.append(time.perf_counter() - exceeded)
    return ready, teardown


async def bench(runs: int) -> dict[str, str]:
    client, reason = connect()
    if client is None:
        raise SystemExit(f"bench.sessions needs a Docker engine: {reason}")
    limiter = trio.CapacityLimiter(4)
    try:
        ours, raw = await sandbox_start(client, limiter, runs)
        ready, teardown = await sessions(client, limiter, runs)
    finally:
        client.close()
    print(f"sandbox start   ours {ours * 1e3:7.1f} ms   raw SDK {raw * 1e3:7.1f} ms (medians)")
    print(f"session ready   median {statistics.median(ready):.3f} s   max {max(ready):.3f} s")
    print(f"teardown        p99 {p99(teardown):.3f} s   median {statistics.median(teardown):.3f} s")
    return {
        "sandbox_start_ms": f"{ours * 1e3:.1f}",
        "sandbox_start_raw_ms": f"{raw * 1e3:.1f}",
        "sandbox_start_ratio": f"{ours / raw:.2f}",
        "session_ready_s": f"{statistics.median(ready):.3f}",
        "session_ready_max_s": f"{max(ready):.3f}",
        "teardown_p99_s": f"{p99(teardown):.3f}",
        "runs": str(runs),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    figures = trio.run(bench, args.runs)
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
