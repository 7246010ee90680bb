"""The benchmarks run (with tiny sizes) and print their figures as key=value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .node_support import ensure_node_modules

ROOT = Path(__file__).resolve().parent.parent


def figures_of(*args: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    last = out.strip().splitlines()[-1]
    return dict(item.split("=", 1) for item in last.split())


def test_actor_bench_prints_its_figures() -> None:
    figures = figures_of("bench.actors", "--tells", "200", "--asks", "50", "--actors", "20")
    for key in ("tell_per_s", "tell_ratio_vs_channel", "ask_rtt_us", "spawn_stop_per_s"):
        assert float(figures[key]) > 0, key
    assert figures["actors"] == "20"


def test_streams_bench_prints_its_figures() -> None:
    ensure_node_modules()
    figures = figures_of("bench.streams", "--quick")
    for key in ("latency_p50_ratio", "small_msgs_ratio", "large_ratio", "fanout_p99_ms"):
        assert float(figures[key]) > 0, key


@pytest.mark.docker
def test_sessions_bench_prints_its_figures(docker_client: object) -> None:
    figures = figures_of("bench.sessions", "--runs", "2")
    for key in ("sandbox_start_ratio", "session_ready_s", "teardown_p99_s"):
        assert float(figures[key]) > 0, key


@pytest.mark.parametrize("agent", ["scripted", "claude"])
def test_load_bench_prints_its_figures(agent: str) -> None:
    figures = figures_of("bench.load", "--quick", "--agent", agent)
    for key in (
        "rss_per_session_kb",
        "rss_per_reader_kb",
        "rss_flat_pct",
        "events_per_s",
        "deliveries_per_s",
        "tasks_steady_max",
    ):
        float(figures[key])  # a number, whatever it says
    assert figures["rss_flat_ok"] in ("0", "1")
    assert figures["cache_mb"] == "4"  # full before the warm-up ends
    assert (figures["sessions"], figures["readers"], figures["agent"]) == ("5", "20", agent)
    # every session answered its last turn, every reader saw exactly the stored events
    assert (figures["sessions_answered"], figures["readers_exact"]) == ("5", "20")
    assert (figures["failed_turns"], figures["stuck"]) == ("0", "0")
