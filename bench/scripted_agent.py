#!/usr/bin/python3 -S
"""A scripted stand-in for the Claude Code CLI, for the load bench (``--agent scripted``).

It speaks what the CLI speaks to claude-agent-sdk over stdio (stream-json lines and the
control protocol), in a few MiB: the real CLI's process holds 120-140 MiB, so 500 of
them do not fit the bench machine, and the bench measures the orchestrator, not the
agent. Standard library only, no site packages (``-S``): it runs inside a sandbox.

Per user message, one turn: ``system/init``; an assistant message with a text block and
a ``Bash`` tool call; with ``--permission-prompt-tool stdio`` (as the SDK starts it when
it has a permission callback) a ``can_use_tool`` request, waiting for the answer; the
tool's result (the command is not run: it is scripted), an assistant text, and a
``result`` with the cumulative cost. ``--resume ID`` keeps the session id. Control
requests from the SDK (``initialize``, ``interrupt``, ...) are answered with success.
"""

import json
import os
import sys
import time
from typing import Any

PRICE_IN, PRICE_OUT = 3.0 / 1e6, 15.0 / 1e6  # the default price of the orchestrator


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def answer(request: dict[str, Any]) -> None:
    send(
        {
            "type": "control_response",
            "response": {"subtype": "success", "request_id": request["request_id"], "response": {}},
        }
    )


def main() -> int:
    args = sys.argv[1:]
    session_id = args[args.index("--resume") + 1] if "--resume" in args else new_id("s")
    ask = "--permission-prompt-tool" in args
    step, total_cost = 0, 0.0
    lines = iter(sys.stdin.readline, "")

    def wait_permission(request_id: str) -> bool:
        for line in lines:
            message = json.loads(line)
            if message.get("type") == "control_response":
                response = message.get("response", {})
                if response.get("request_id") == request_id:
                    inner = response.get("response") or {}
                    return response.get("subtype") == "success" and inner.get("behavior") == "allow"
            elif message.get("type") == "control_request":
                answer(message)
        return False

    for line in lines:
        message = json.loads(line)
        kind = message.get("type")
        if kind == "control_request":
            answer(message)
            continue
        if kind != "user":
            continue
        started = time.monotonic()
        common = {"parent_tool_use_id": None, "session_id": session_id}
        send({"type": "system", "subtype": "init", "cwd": os.getcwd(), **common})
        tool_use_id = new_id("toolu_")
        usage = {"input_tokens": 200, "output_tokens": 20}
        tool_input = {"command": f"echo {step}"}
        content = [
            {"type": "text", "text": f"Step {step}: running it."},
            {"type": "tool_use", "id": tool_use_id, "name": "Bash", "input": tool_input},
        ]
        model = {"model": "claude-scripted", "usage": usage, "id": new_id("msg_")}
        send({"type": "assistant", "message": {"content": content, **model}, **common})
        allowed = True
        if ask:
            request_id = new_id("req_")
            request = {
                "subtype": "can_use_tool",
                "tool_name": "Bash",
                "input": tool_input,
                "tool_use_id": tool_use_id,
            }
            send({"type": "control_request", "request_id": request_id, "request": request})
            allowed = wait_permission(request_id)
        result = (
            {"type": "tool_result", "tool_use_id": tool_use_id, "content": f"{step}"}
            if allowed
            else {
                "type": "tool_result",
                "tool_use_id": tool_use_id,
                "content": "Permission denied",
                "is_error": True,
            }
        )
        send({"type": "user", "message": {"role": "user", "content": [result]}, **common})
        usage2 = {"input_tokens": 220, "output_tokens": 1}
        text = [{"type": "text", "text": f"Step {step} done."}]
        model2 = {"model": "claude-scripted", "usage": usage2, "id": new_id("msg_")}
        send({"type": "assistant", "message": {"content": text, **model2}, **common})
        total_cost += 420 * PRICE_IN + 21 * PRICE_OUT
        elapsed = int((time.monotonic() - started) * 1000)
        send(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "duration_ms": elapsed,
                "duration_api_ms": elapsed,
                "num_turns": 2,
                "result": f"Step {step} done.",
                "total_cost_usd": total_cost,
                "usage": {"input_tokens": 420, "output_tokens": 21},
                "session_id": session_id,
            }
        )
        step += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
