"""``orchestrator experiment FILE --runs N --parallel K``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import trio

from .runner import ExperimentError, ForkPoint, load_experiment, run_experiment, summary_table

__all__ = ["add_parser", "command"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "experiment",
        help="run a multi-agent experiment file N times",
        description="Run FILE's `experiment` --runs times, --parallel at a time, against "
        "its scripted model (or a real API with --api-key / ANTHROPIC_API_KEY "
        "and --real); write results.jsonl, summary.txt and plots/ under --out.",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="default ./experiments/NAME")
    parser.add_argument("--sandbox", choices=["docker", "local", "auto"], default=None)
    parser.add_argument(
        "--real",
        action="store_true",
        help="use the real model API (the key from --api-key or ANTHROPIC_API_KEY)",
    )
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--fork", type=Path, default=None, metavar="RUN_DIR")
    parser.add_argument("--offset", default=None, help="with --fork: where to fork")
    parser.add_argument("--room", default=None, help="with --fork: which room")
    parser.add_argument("--no-plots", dest="plots", action="store_false")


def command(args: argparse.Namespace) -> int:
    try:
        experiment = load_experiment(args.file)
        fork = None
        if args.fork is not None:
            if args.offset is None:
                raise ExperimentError("--fork needs --offset")
            fork = ForkPoint.load(args.fork, args.offset, args.room)
        key = None
        if args.real:
            key = args.api_key or os.environ.get("ANTHROPIC_API_KEY")
            if not key:
                raise ExperimentError("--real needs --api-key or ANTHROPIC_API_KEY")
        out = args.out or Path("experiments") / experiment.name
        settings = {"sandbox": args.sandbox} if args.sandbox else {}
        results = trio.run(
            lambda: run_experiment(
                experiment,
                out,
                runs=args.runs,
                parallel=args.parallel,
                api_key=key,
                fork=fork,
                plots=args.plots,
                **settings,
            )
        )
    except ExperimentError as exc:
        print(f"orchestrator experiment: {exc}", file=sys.stderr)
        return 2
    print(summary_table(results))
    print(f"results: {out / 'results.jsonl'}")
    return 0 if all(r.ok for r in results) else 1
