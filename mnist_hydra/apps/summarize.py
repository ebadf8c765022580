"""`python -m mnist_hydra.summarize DIR`: a sweep's table and plot, or every run under a folder.

Given a sweep directory, rebuild sweep_results.csv, sweep_summary.png and report.html there and print the
summary. Given any other folder, such as outputs/, list each run found below it, newest first: when it
started, its overrides, its status and test accuracy.
"""

from __future__ import annotations

from pathlib import Path

from mnist_hydra.apps.boundary import ArgumentParser, run_app
from mnist_hydra.errors import UserError
from mnist_hydra.runs import rundir

PROG = "mnist_hydra.summarize"


def summarize(argv: list[str] | None = None) -> None:
    """Print a sweep's summary (rewriting its files), or the runs below a folder."""
    parser = ArgumentParser(prog=f"python -m {PROG}", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a sweep directory (multirun/DATE/TIME) or a folder of runs (outputs/)")
    folder: Path = parser.parse_args(argv).dir
    if not folder.is_dir():
        raise UserError(f"{folder} is not a directory; give a sweep directory or outputs/")
    if rundir.is_sweep(folder):
        from mnist_hydra.runs.sweeps import report, summarize_sweep

        print(report(summarize_sweep(folder), folder))
        return
    runs = rundir.list_runs(folder)
    if runs.empty:
        raise UserError(f"no runs (directories with .hydra/) below {folder}")
    print(runs.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def main(argv: list[str] | None = None) -> int:
    """Run the summarize app inside the error boundary: 0, or one line and SystemExit."""
    run_app(lambda: summarize(argv), PROG)
    return 0
