"""``python -m orchestrator.models SCRIPT.json [--host H] [--port P]``: serve a script
until SIGINT or SIGTERM; prints ``READY <url>`` once listening."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from functools import partial

import trio

from ._script import Script, ScriptError
from ._server import serve_models


async def _until_signalled() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


async def _run(script: Script, host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve_models, script, host=host, port=port, shutdown_trigger=_until_signalled)
        )
        print(f"READY {binds[0]}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.models",
        description="Serve a scripted model (Anthropic Messages API) from a JSON script.",
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
    trio.run(_run, script, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
