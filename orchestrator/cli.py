"""The ``orchestrator`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from orchestrator import events as ev
from orchestrator.api.app import create_api
from orchestrator.config import ConfigError, Settings
from orchestrator.core import EventItem, Orchestrator
from orchestrator.experiments import cli as experiments_cli
from orchestrator.models import Script, ScriptError, serve_models_until_signalled
from orchestrator.tokens import Purpose
from transport import (
    DiskStore,
    MemoryStore,
    ServerSettings,
    Store,
    SubscriptionManager,
    create_app,
    open_subscriptions,
    serve,
    subscriptions_available,
)


def _add_streams(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    streams = commands.add_parser(
        "streams",
        help="run the Durable Streams server alone",
        description="Serve the Durable Streams protocol under /v1/stream/.",
    )
    streams.add_argument("--host", default="127.0.0.1")
    streams.add_argument("--port", type=int, default=4437)
    store = streams.add_mutually_exclusive_group()
    store.add_argument(
        "--data-dir",
        type=Path,
        default=Path("./streams-data"),
        help="where the on-disk store keeps streams (default: ./streams-data)",
    )
    store.add_argument("--memory", action="store_true", help="keep streams in memory only")
    streams.add_argument(
        "--long-poll-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long a long-poll (or an idle SSE wait) lasts (default: 20)",
    )
    streams.add_argument(
        "--no-subscriptions",
        dest="subscriptions",
        action="store_false",
        help="turn off the webhook and pull-wake subscription APIs under /v1/stream/__ds/ "
        "(on by default when the 'cryptography' package is installed)",
    )


def _add_model_server(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser(
        "model-server",
        help="run the scripted model server (Anthropic Messages and OpenAI Responses APIs)",
        description="Answer model API requests from a JSON script (orchestrator.models): "
        "POST /v1/messages (Claude Code) and POST /v1/responses (Codex) on one port; "
        "the agent is named by its API key.",
    )
    models.add_argument("--script", type=Path, required=True, help="the JSON script file")
    models.add_argument("--host", default="127.0.0.1")
    models.add_argument("--port", type=int, default=0, help="0: any free port (default)")


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """Flags that override the environment (see orchestrator.config)."""
    parser.add_argument("--data-dir", type=Path, default=None, help="default ./.orchestrator")
    parser.add_argument("--sandbox", choices=["docker", "local", "auto"], default=None)
    parser.add_argument("--network", choices=["none", "host", "bridge"], default=None)
    parser.add_argument("--mode", choices=["dev", "production"], default=None)
    parser.add_argument("--max-session-cost-usd", type=float, default=None)


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return Settings.from_env(
            os.environ,
            {
                "data_dir": args.data_dir,
                "sandbox": args.sandbox,
                "sandbox_network": args.network,
                "mode": args.mode,
                "max_session_cost_usd": args.max_session_cost_usd,
                "host": getattr(args, "host", None),
                "port": getattr(args, "port", None),
            },
        )
    except ConfigError as exc:
        raise SystemExit(f"orchestrator: {exc}") from None


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve_cmd = commands.add_parser(
        "serve",
        help="run the orchestrator's HTTP API (embedded defaults)",
        description="Serve the HTTP API: sessions in sandboxes, events as SSE.",
    )
    serve_cmd.add_argument("--host", default=None, help="default 127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=None, help="default 4400")
    _add_settings(serve_cmd)


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run_cmd = commands.add_parser(
        "run",
        help="run one session in the terminal and exit with its result",
        description="Run one agent session, print its progress, exit 0 if it succeeded.",
    )
    run_cmd.add_argument("description")
    run_cmd.add_argument(
        "--freeform", action="store_true", help="send the description as the prompt as is"
    )
    _add_settings(run_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="An actor-based orchestrator of AI coding agents.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_streams(commands)
    _add_serve(commands)
    _add_run(commands)
    _add_model_server(commands)
    experiments_cli.add_parser(commands)
    return parser


async def _until_signalled() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


async def run_streams(args: argparse.Namespace) -> None:
    if args.long_poll_timeout <= 0:
        raise SystemExit("--long-poll-timeout must be > 0")
    store: Store = MemoryStore() if args.memory else DiskStore(args.data_dir)
    async with store, contextlib.AsyncExitStack() as stack:
        subscriptions: SubscriptionManager | None = None
        if args.subscriptions and subscriptions_available():
            subscriptions = await stack.enter_async_context(open_subscriptions())
        elif args.subscriptions:
            print("streams: subscriptions off: the 'cryptography' package is missing", flush=True)
        settings = ServerSettings(long_poll_timeout=args.long_poll_timeout)
        app = create_app(store, settings, subscriptions=subscriptions)
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(
                    app,
                    host=args.host,
                    port=args.port,
                    shutdown_trigger=_until_signalled,
                    task_status=task_status,
                )
            )
            where = "memory" if args.memory else args.data_dir
            print(f"streams: listening on {' '.join(binds)} (store: {where})", flush=True)


async def run_serve(args: argparse.Namespace) -> None:
    settings = _settings(args)
    async with Orchestrator(settings) as orch:
        admin = settings.data_dir / "admin-token"
        if not admin.exists():
            admin.touch(mode=0o600)
            admin.write_text(orch.signer.token(Purpose.ADMIN) + "\n")
        app = create_api(orch)
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(
                    app,
                    host=settings.host,
                    port=settings.port,
                    shutdown_trigger=_until_signalled,
                    task_status=task_status,
                )
            )
            print(
                f"orchestrator: listening on {' '.join(binds)} "
                f"(mode {settings.mode}, sandbox {orch.provider.runtime}, "
                f"data {settings.data_dir}, secret {settings.data_dir / 'secret'}, "
                f"admin token in {admin})",
                flush=True,
            )


def run_model_server(args: argparse.Namespace) -> int:
    try:
        script = Script.load(args.script)
    except (OSError, ScriptError) as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return 2

    def ready(binds: list[str]) -> None:
        url = binds[0]
        print(
            f"model-server: listening on {' '.join(binds)} (script {args.script}; "
            f"Anthropic Messages at {url}/v1/messages, OpenAI Responses at {url}/v1/responses)",
            flush=True,
        )

    trio.run(
        lambda: serve_models_until_signalled(script, host=args.host, port=args.port, on_ready=ready)
    )
    return 0


def _describe(item: EventItem) -> str | None:
    event = item.event
    if isinstance(event, ev.Log):
        return f"[{event.level}] {event.message}"
    if isinstance(event, ev.AssistantMessage):
        return event.text
    if isinstance(event, ev.PreToolUse):
        return f"-> {event.tool_name} {json.dumps(event.tool_input)[:200]}"
    if isinstance(event, ev.PostToolUse):
        mark = "!!" if event.error is not None else "<-"
        return f"{mark} {event.tool_response[:200]}"
    if isinstance(event, ev.BudgetExceeded):
        return f"budget exceeded: ${event.spent_usd:.4f} of ${event.budget_usd:.2f}"
    if isinstance(event, ev.SessionEnd):
        cost = f" (${event.cost_usd:.4f})" if event.cost_usd is not None else ""
        return f"session ended: {'success' if event.success else 'failure'}{cost}"
    return None


async def run_one(args: argparse.Namespace) -> int:
    settings = _settings(args)
    async with Orchestrator(settings) as orch:
        session = await orch.create_session(args.description, freeform=args.freeform)
        async with contextlib.aclosing(session.events()) as events:
            async for item in events:
                line = _describe(item)
                if line is not None:
                    print(line, flush=True)
                event = item.event
                if isinstance(event, ev.SessionEnd):
                    return 0 if event.success else 1
                if isinstance(event, ev.BudgetExceeded):
                    return 1
                if isinstance(event, ev.Log) and event.level == "error":
                    return 1
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "streams":
        trio.run(run_streams, args)
    elif args.command == "serve":
        trio.run(run_serve, args)
    elif args.command == "run":
        return trio.run(run_one, args)
    elif args.command == "model-server":
        return run_model_server(args)
    elif args.command == "experiment":
        return experiments_cli.command(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
