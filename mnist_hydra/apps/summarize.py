"""`python -m mnist_hydra.summarize DIR`: a sweep's table and plot, or every run under a folder.

Given a sweep directory, rebuild sweep_results.csv, sweep_summary.png and report.html there and print the
summary. Given any other folder, such as outputs/, list each run found below it, newest first: when it
started, its overrides, its status and test accuracy.
"""

from __future__ import annotations

from pathlib import Path

from mnist_hydra.apps.app_kinds import folder_app
from mnist_hydra.errors import UserError
from mnist_hydra.runs import rundir

PROG = "mnist_hydra.summarize"


@folder_app(
    PROG,
    __doc__,
    help="a sweep directory (multirun/DATE/TIME) or a folder of runs (outputs/)",
    expected="a sweep directory or outputs/",
)
def main(folder: Path) -> None:
    """Print a sweep's summary (rewriting its files), or the runs below a folder."""
    if rundir.is_sweep(folder):
        from mnist_hydra.runs.sweeps import report, summarize_sweep

        print(report(summarize_sweep(folder), folder))
        return
    runs = rundir.list_runs(folder)
    if runs.empty:
        raise UserError(f"no runs (directories with .hydra/) below {folder}")
    print(runs.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
