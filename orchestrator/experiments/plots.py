"""PNG plots of an experiment's results (matplotlib, the ``experiments`` extra)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import RunResult

__all__ = ["plot_results"]


def plot_results(results: Sequence[RunResult], out_dir: Path) -> list[Path]:
    """Rounds, cost and time per run (one bar per room) and the stop reasons; the
    paths written. Without matplotlib: nothing (and a note in ``out_dir``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        (out_dir / "README.txt").write_text(
            "No plots: install the 'experiments' extra (matplotlib).\n"
        )
        return []
    rows = [(r.run, room) for r in results for room in r.rooms]
    labels = [f"{run}:{room['name']}" for run, room in rows]
    written = []
    for key, title, unit in (
        ("rounds", "Rounds per run", "rounds"),
        ("costUsd", "Cost per run", "USD"),
        ("seconds", "Time per run", "seconds"),
    ):
        figure, axes = plt.subplots(figsize=(max(4.0, 0.5 * len(rows) + 2), 3.2))
        axes.bar(labels, [float(room[key] or 0) for _, room in rows], color="#4c72b0")
        axes.set_title(title)
        axes.set_ylabel(unit)
        axes.set_xlabel("run:room")
        axes.tick_params(axis="x", labelrotation=45)
        figure.tight_layout()
        path = out_dir / f"{key}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    reasons = Counter(str(room["stopReason"]) for _, room in rows)
    figure, axes = plt.subplots(figsize=(4.5, 3.2))
    axes.bar(list(reasons), list(reasons.values()), color="#dd8452")
    axes.set_title("Stop reasons")
    axes.set_ylabel("rooms")
    figure.tight_layout()
    path = out_dir / "stop_reasons.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    written.append(path)
    return written
