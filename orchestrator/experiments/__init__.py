"""Scripted multi-agent experiments: rooms of real agent CLIs against the scripted
model (or a real API), run many times, with their results, a summary and plots."""

from .runner import (
    Experiment,
    ExperimentError,
    ForkPoint,
    RunContext,
    RunResult,
    load_experiment,
    normalize,
    run_experiment,
    summary_table,
    write_results,
)

__all__ = [
    "Experiment",
    "ExperimentError",
    "ForkPoint",
    "RunContext",
    "RunResult",
    "load_experiment",
    "normalize",
    "run_experiment",
    "summary_table",
    "write_results",
]
