"""The benchmarks run (with tiny sizes) and print their figures as key=value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_actor_bench_prints_its_figures() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.actors", "--tells", "200", "--asks", "50", "--actors", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    last = out.strip().splitlines()[-1]
    figures = dict(item.split("=", 1) for item in last.split())
    for key in ("tell_per_s", "tell_ratio_vs_channel", "ask_rtt_us", "spawn_stop_per_s"):
        assert float(figures[key]) > 0, key
    assert figures["actors"] == "20"
