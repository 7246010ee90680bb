"""Experiment: a three-agent build where two agents get stuck. The planner hands the
task to the builder; builder and tester then send each other the same two messages
until the stuck detector closes the room (``stuck``).

    .venv/bin/orchestrator experiment examples/stuck_build.py --runs 2
"""

from __future__ import annotations

from orchestrator.experiments import Experiment, RunContext
from orchestrator.models import AgentScript, Script, Turn, Usage

USAGE = Usage(input_tokens=1_000, output_tokens=80)
PING = Turn.text("@tester build ready, please test", usage=USAGE)
PONG = Turn.text("@builder the build fails, please fix", usage=USAGE)

SCRIPT = Script(
    agents={
        "planner": AgentScript.of(
            "Ready.", Turn.text("@builder build the CLI from plan.md", usage=USAGE)
        ),
        "builder": AgentScript.of("Ready.", PING, PING, PING, PING),
        "tester": AgentScript.of("Ready.", PONG, PONG, PONG, PONG),
    }
)


async def run(ctx: RunContext) -> None:
    room = await ctx.create_room("build", turn_taking=True, max_rounds=20, idle_timeout=5.0)
    for name in ("builder", "tester"):
        await ctx.add_agent(room, name, role="coder")
    await ctx.add_agent(room, "planner", initial_prompt="Start the build.")
    await ctx.resume(room)
    await ctx.wait_closed(room)


experiment = Experiment(name="stuck-build", run=run, script=SCRIPT)
