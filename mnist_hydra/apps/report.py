"""`python -m mnist_hydra.report DIR`: (re)write DIR/report.html for a run or a sweep directory."""

from __future__ import annotations

from pathlib import Path

from mnist_hydra.apps.app_kinds import folder_app
from mnist_hydra.errors import UserError
from mnist_hydra.runs import rundir

PROG = "mnist_hydra.report"


@folder_app(
    PROG,
    __doc__,
    help="a run directory (outputs/DATE/TIME) or a sweep directory (multirun/DATE/TIME)",
    expected="a run or sweep directory",
)
def main(folder: Path) -> None:
    """Write the page and print its path."""
    if rundir.is_sweep(folder):
        from mnist_hydra.runs.sweeps import summarize_sweep

        summarize_sweep(folder)
        path = folder / "report.html"
    elif rundir.is_run(folder):
        from mnist_hydra.runs.html_report import write_run_report

        path = write_run_report(folder)
    else:
        raise UserError(
            f"{folder} holds neither a run (.hydra/, metrics.json) nor a sweep (multirun.yaml, or job directories)"
        )
    print(path)
