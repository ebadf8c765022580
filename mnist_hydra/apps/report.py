"""`python -m mnist_hydra.report DIR`: (re)write DIR/report.html for a run or a sweep directory."""

from __future__ import annotations

from pathlib import Path

from mnist_hydra.apps.boundary import ArgumentParser, run_app
from mnist_hydra.errors import UserError
from mnist_hydra.runs import rundir

PROG = "mnist_hydra.report"


def write_report(argv: list[str] | None = None) -> None:
    """Write the page and print its path."""
    parser = ArgumentParser(prog=f"python -m {PROG}", description=__doc__.splitlines()[0])
    parser.add_argument(
        "dir", type=Path, help="a run directory (outputs/DATE/TIME) or a sweep directory (multirun/DATE/TIME)"
    )
    folder: Path = parser.parse_args(argv).dir
    if not folder.is_dir():
        raise UserError(f"{folder} is not a directory; give a run or sweep directory")
    if rundir.is_sweep(folder):
        from mnist_hydra.runs.sweeps import summarize_sweep

        summarize_sweep(folder)
        path = folder / "report.html"
    elif rundir.is_run(folder):
        from mnist_hydra.runs.report import write_run_report

        path = write_run_report(folder)
    else:
        raise UserError(
            f"{folder} holds neither a run (.hydra/, metrics.json) nor a sweep (multirun.yaml, or job directories)"
        )
    print(path)


def main(argv: list[str] | None = None) -> int:
    """Run the report app inside the error boundary: 0, or one line and SystemExit."""
    run_app(lambda: write_report(argv), PROG)
    return 0
