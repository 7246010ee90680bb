"""Experiments: the three examples run (real Claude Code CLIs in local sandboxes,
against their scripted models), twice each, two at a time; results, summary and plots
are written; two runs give the same transcripts; a run forks from an offset."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from orchestrator.experiments import (
    ForkPoint,
    RunResult,
    load_experiment,
    normalize,
    run_experiment,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def room_of(result: RunResult) -> dict[str, Any]:
    assert result.ok, result.error
    [room] = result.rooms
    return room


def transcript(run_dir: Path) -> dict[str, list[Any]]:
    """Every exported stream of a run, normalized."""
    found = {}
    for path in sorted(run_dir.glob("*.jsonl")):
        records = [json.loads(line)["record"] for line in path.read_text().splitlines()]
        found[path.name] = normalize(records, root=str(run_dir))
    return found


@pytest.mark.parametrize(
    ("example", "reason", "rounds"),
    [
        ("coder_reviewer.py", "all_idle", 4),
        ("debate.py", "max_rounds", 4),
        ("stuck_build.py", "stuck", 4),
    ],
)
async def test_the_examples_run(tmp_path: Path, example: str, reason: str, rounds: int) -> None:
    experiment = load_experiment(EXAMPLES / example)
    lines: list[str] = []
    results = await run_experiment(experiment, tmp_path, runs=2, parallel=2, progress=lines.append)
    assert [r.run for r in results] == [1, 2]
    for result in results:
        room = room_of(result)
        assert (room["stopReason"], room["rounds"]) == (reason, rounds)
        assert room["costUsd"] > 0
        assert room["seconds"] is not None
    assert any(line.startswith("[2/2]") for line in lines)
    # results, summary, plots
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [row["run"] for row in rows] == [1, 2]
    summary = (tmp_path / "summary.txt").read_text()
    assert summary.splitlines()[0].split() == [
        "run", "room", "rounds", "messages", "cost_usd", "seconds", "stop_reason",
    ]  # fmt: skip
    assert reason in summary
    for name in ("rounds", "costUsd", "seconds", "stop_reasons"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # reproducible: the same transcripts, apart from ids and timestamps
    first, second = transcript(tmp_path / "run-001"), transcript(tmp_path / "run-002")
    assert set(first) == set(second)
    assert len(first) >= 3  # the room and its agents
    for name in first:
        assert first[name] == second[name], name


async def test_a_run_forks_from_an_offset(tmp_path: Path) -> None:
    experiment = load_experiment(EXAMPLES / "coder_reviewer.py")
    [original] = await run_experiment(experiment, tmp_path / "original", plots=False)
    assert room_of(original)["rounds"] == 4
    run_dir = tmp_path / "original" / "run-001"
    lines = [json.loads(line) for line in (run_dir / "room-review.jsonl").read_text().splitlines()]
    request = next(
        line
        for line in lines
        if line["record"]["type"] == "agent_message"
        and line["record"]["body"].startswith("REVIEW_REQUEST")
    )
    fork = ForkPoint.load(run_dir, request["offset"])
    assert [m.body for m in fork.history] == [request["record"]["body"]]
    [forked] = await run_experiment(experiment, tmp_path / "fork", fork=fork, plots=False)
    room = room_of(forked)
    assert room["stopReason"] == "all_idle"
    said = [
        (record["from"], record["body"])
        for record in (
            json.loads(line)["record"]
            for line in (tmp_path / "fork" / "run-001" / "room-review.jsonl")
            .read_text()
            .splitlines()
        )
        if record["type"] == "agent_message" and record["from"] != "system"
    ]
    assert said == [
        ("coder", "REVIEW_REQUEST: add.py on main adds two numbers."),  # the copied history
        ("reviewer", "REVIEW_FEEDBACK: 1. add.py:1 - there is no test; add one."),
        ("coder", "REVIEW_REQUEST: add.py, with test_add."),
        ("reviewer", "APPROVED: add.py is tested now."),
    ]
    assert room["rounds"] == 4  # the copied round counts


async def test_the_experiment_command(tmp_path: Path) -> None:
    done = await trio.run_process(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "experiment",
            str(EXAMPLES / "stuck_build.py"),
            "--runs",
            "2",
            "--parallel",
            "2",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, out + err
    assert "run 1: started" in err  # the progress, on stderr
    assert "[2/2]" in err
    rows = out.splitlines()
    assert rows[0].split()[:2] == ["run", "room"]
    assert [row.split()[-1] for row in rows[1:3]] == ["stuck", "stuck"]
    assert (tmp_path / "out" / "plots" / "rounds.png").exists()
    bad = await trio.run_process(
        [sys.executable, "-m", "orchestrator", "experiment", str(tmp_path / "nope.py")],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert bad.returncode == 2
    assert b"no such file" in bad.stderr
