"""``python -m orchestrator.models SCRIPT.json [--host H] [--port P]``: serve a script
(both the Anthropic Messages and the OpenAI Responses API) until SIGINT or SIGTERM;
prints ``READY <url>`` once listening. ``orchestrator model-server`` is the same."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial

import trio

from ._script import Script, ScriptError
from ._server import serve_models_until_signalled


def _ready(binds: list[str]) -> None:
    print(f"READY {binds[0]}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.models",
        description="Serve a scripted model (Anthropic Messages and OpenAI Responses APIs) "
        "from a JSON script.",
    )
    parser.add_argument("script", help="the JSON script file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    args = parser.parse_args(argv)
    try:
        script = Script.load(args.script)
    except (OSError, ScriptError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    serve = partial(serve_models_until_signalled, host=args.host, port=args.port, on_ready=_ready)
    trio.run(serve, script)
    return 0


if __name__ == "__main__":
    sys.exit(main())
