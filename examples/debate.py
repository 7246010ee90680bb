"""Experiment: a debate with a judge. Two debaters answer the judge's question in
turn, the judge rules; the round limit ends the room (``max_rounds``). The ``con``
debater is a Codex agent, the others Claude Code: both kinds share the room.

    .venv/bin/orchestrator experiment examples/debate.py --runs 4 --parallel 2
"""

from __future__ import annotations

from orchestrator.experiments import Experiment, RunContext
from orchestrator.models import AgentScript, Script, Turn, Usage

USAGE = Usage(input_tokens=1_500, output_tokens=200)

SCRIPT = Script(
    agents={
        "judge": AgentScript.of(
            "Ready.",
            Turn.text("@room Motion: tabs are better than spaces. pro, then con.", usage=USAGE),
            "Noted.",
            Turn.text("@room VERDICT: con wins; spaces align everywhere.", usage=USAGE),
        ),
        "pro": AgentScript.of(
            "Ready.",
            Turn.text("@room Tabs let each reader pick the width.", usage=USAGE),
            "Noted.",
        ),
        "con": AgentScript.of(
            "Ready.",
            Turn.text("@room Spaces look the same in every tool.", usage=USAGE),
            "Noted.",
        ),
    }
)


async def run(ctx: RunContext) -> None:
    room = await ctx.create_room("debate", turn_taking=True, max_rounds=4, idle_timeout=2.0)
    await ctx.add_agent(room, "pro", custom_skill="You argue FOR the motion, briefly.")
    await ctx.add_agent(
        room, "con", agent="codex", custom_skill="You argue AGAINST the motion, briefly."
    )
    await ctx.add_agent(room, "judge", initial_prompt="Open the debate on tabs versus spaces.")
    await ctx.resume(room)
    await ctx.wait_closed(room)


experiment = Experiment(name="debate", run=run, script=SCRIPT)
