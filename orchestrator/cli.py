"""The ``orchestrator`` command line."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="An actor-based orchestrator of AI coding agents.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_streams(commands)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "streams":
        trio.run(run_streams, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
