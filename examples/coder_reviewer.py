"""Experiment: a coder and a reviewer in a turn-taking room.

The coder writes ``add.py`` and asks for a review; the reviewer asks for a fix; the
coder fixes it and asks again; the reviewer approves. The room closes when nobody has
anything left to do (``all_idle``).

    .venv/bin/orchestrator experiment examples/coder_reviewer.py --runs 3 --parallel 2

Against the scripted model below (no key needed); with ``--real`` and an API key the
same agents talk to the real model.
"""

from __future__ import annotations

from orchestrator.experiments import Experiment, RunContext
from orchestrator.models import AgentScript, Script, Text, ToolCall, Turn, Usage

READY = "Ready."
WRITE = "printf 'def add(a, b):\\n    return a + b\\n' > add.py"
TEST = "printf '\\n\\ndef test_add():\\n    assert add(2, 3) == 5\\n' >> add.py"
USAGE = Usage(input_tokens=2_000, output_tokens=120)

SCRIPT = Script(
    agents={
        "coder": AgentScript.of(
            READY,
            Turn(
                blocks=(
                    Text("Writing add.py."),
                    ToolCall("Bash", {"command": WRITE}),
                ),
                usage=USAGE,
            ),
            Turn.text("@reviewer REVIEW_REQUEST: add.py on main adds two numbers.", usage=USAGE),
            Turn(
                blocks=(ToolCall("Bash", {"command": TEST}),),
                usage=USAGE,
            ),
            Turn.text("@reviewer REVIEW_REQUEST: added test_add to add.py.", usage=USAGE),
            Turn.text("Approved; nothing left to do.", usage=USAGE),
        ),
        "reviewer": AgentScript.of(
            READY,
            Turn.text(
                "@coder REVIEW_FEEDBACK: 1. add.py:1 - there is no test; add one.", usage=USAGE
            ),
            Turn.text("@coder APPROVED: add.py is tested now.", usage=USAGE),
        ),
    }
)


# A fork from the first review request: the reviewer reads it again, the coder (a new
# process: its workspace starts empty) writes the tested version at once.
FORK_SCRIPT = Script(
    agents={
        "coder": AgentScript.of(
            READY,
            Turn(blocks=(ToolCall("Bash", {"command": WRITE}),), usage=USAGE),
            Turn(blocks=(ToolCall("Bash", {"command": TEST}),), usage=USAGE),
            Turn.text("@reviewer REVIEW_REQUEST: add.py, with test_add.", usage=USAGE),
            Turn.text("Approved; nothing left to do.", usage=USAGE),
        ),
        "reviewer": SCRIPT.agents["reviewer"],
    }
)


async def run(ctx: RunContext) -> None:
    room = await ctx.create_room("review", turn_taking=True, max_rounds=10, idle_timeout=1.0)
    await ctx.add_agent(room, "reviewer", role="reviewer")
    await ctx.add_agent(
        room,
        "coder",
        role="coder",
        # a fork goes on from its copied conversation instead
        initial_prompt=None if ctx.fork else "Write add.py with an add(a, b) function.",
    )
    await ctx.resume(room)
    await ctx.wait_closed(room)


experiment = Experiment(name="coder-reviewer", run=run, script=SCRIPT, fork_script=FORK_SCRIPT)
