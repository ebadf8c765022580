"""`python -m mnist_hydra.summarize DIR`: a sweep's table and plot, or every run under a folder.

Given a sweep directory (job directories right below it), rebuild sweep_results.csv, sweep_summary.png and
report.html there and print the summary. Given any other folder, such as outputs/, list each run found below
it, newest first: when it started, its overrides, its status and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

from mnist_hydra.report import write_sweep_report
from mnist_hydra.sweep import report, summarize_sweep

# outputs/2026-11-24/13-20-02.850171 and multirun/DATE/TIME/N: Hydra's run and sweep directory names.
STAMP = re.compile(r"(\d{4}-\d{2}-\d{2})/(\d{2}-\d{2}-\d{2})(\.\d+)?")


def list_runs(folder: Path) -> pd.DataFrame:
    """One row per run directory below `folder` (one that holds .hydra/), newest first."""
    rows = []
    for hydra_dir in folder.rglob(".hydra"):
        run = hydra_dir.parent
        overrides = yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) if (hydra_dir / "overrides.yaml").is_file() else []
        metrics_file = run / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {"status": "incomplete"}
        rows.append({
            "started": _started(run),
            "overrides": " ".join(overrides or []) or "(defaults)",
            "status": metrics.get("status", "completed"),
            "test_accuracy": metrics.get("test_accuracy"),
            "dir": str(run),
        })
    frame = pd.DataFrame(rows, columns=["started", "overrides", "status", "test_accuracy", "dir"])
    return frame.sort_values("started", ascending=False, kind="stable").reset_index(drop=True)


def _started(run: Path) -> datetime:
    match = STAMP.search(run.as_posix())
    if match:
        return datetime.strptime(match.group(1) + match.group(2) + (match.group(3) or ".0"), "%Y-%m-%d%H-%M-%S.%f")
    return datetime.fromtimestamp((run / ".hydra").stat().st_mtime)  # a custom hydra.run.dir


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m mnist_hydra.summarize", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a sweep directory (multirun/DATE/TIME) or a folder of runs (outputs/)")
    args = parser.parse_args(argv)
    folder: Path = args.dir
    if not folder.is_dir():
        print(f"mnist_hydra.summarize: error: {folder} is not a directory; give a sweep directory or outputs/",
              file=sys.stderr)
        return 2
    # Sweep jobs sit right below their sweep directory; outputs/ keeps runs two levels down (DATE/TIME).
    # (Optuna's sweeper writes no multirun.yaml, so that file cannot be the sign.)
    if any(folder.glob("*/.hydra/overrides.yaml")):
        summary = summarize_sweep(folder)
        write_sweep_report(folder, summary)
        print(report(summary, folder))
        return 0
    runs = list_runs(folder)
    if runs.empty:
        print(f"mnist_hydra.summarize: error: no runs (directories with .hydra/) below {folder}", file=sys.stderr)
        return 2
    print(runs.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
