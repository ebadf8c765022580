"""Sweep summaries: one table of every job (failures included), replicate groups, the best run.

A sweep directory holds one sub-directory per job, each with Hydra's `.hydra/overrides.yaml`
and our `metrics.json`. Everything here is rebuilt from those files, so a summary can be made
again at any time (`python -m mnist_hydra.summarize SWEEP_DIR`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import pandas as pd

from mnist_hydra.errors import UserError
from mnist_hydra.runs import artifacts, plots, rundir

OBJECTIVE = "val_accuracy"
# saved_seconds: a pruned trial's epochs that were not run, at its own mean epoch time (only with pruning).
METRICS = [
    "val_accuracy",
    "test_accuracy",
    "best_val_accuracy",
    "val_loss",
    "test_loss",
    "epochs_run",
    "train_seconds",
    "saved_seconds",
]
# Keys whose values repeat an experiment rather than change it: jobs differing only in these are grouped.
REPLICATE_KEYS = ("seed", "data.fold")


@dataclass
class SweepSummary:
    """A sweep's table, its swept keys and the per-configuration statistics over replicates."""

    table: pd.DataFrame  # one row per job, best first; failed and unfinished jobs last
    swept: list[str]  # override keys whose values differ between jobs
    groups: pd.DataFrame | None  # mean/std/count per configuration, when replicate keys were swept

    @property
    def failed(self) -> pd.DataFrame:
        failed: pd.DataFrame = self.table[~self.table["status"].isin(("completed", "pruned"))]
        return failed

    @property
    def pruned(self) -> pd.DataFrame:
        """The trials of a search that its pruner stopped early (status "pruned")."""
        pruned: pd.DataFrame = self.table[self.table["status"] == "pruned"]
        return pruned

    def pruned_line(self) -> str:
        """How many trials the pruner stopped, and the training time that saved."""
        pruned = self.pruned
        saved = float(pruned["saved_seconds"].sum()) if "saved_seconds" in pruned else 0.0
        run = float(self.table["train_seconds"].sum()) if "train_seconds" in self.table else 0.0
        share = f", {saved / (saved + run):.0%} of the search's training" if saved + run > 0 else ""
        return (
            f"pruned: {len(pruned)} of {len(self.table)} trials (jobs {', '.join(map(str, pruned['job']))}), "
            f"stopped early; about {saved:.0f} s of training saved{share}"
        )

    @property
    def best(self) -> pd.Series | None:
        done = self.table[self.table["status"] == "completed"]
        return None if done.empty else done.iloc[0]


def summarize_sweep(sweep_dir: Path) -> SweepSummary:
    """Write sweep_results.csv (and sweep_groups.csv), sweep_summary.png and report.html in `sweep_dir`.

    UserError when `sweep_dir` holds no job directory.
    """
    sweep_dir = Path(sweep_dir)
    rows = [_job_row(job) for job in rundir.job_dirs(sweep_dir)]
    if not rows:
        raise UserError(
            f"{sweep_dir}: no job directories (with .hydra/overrides.yaml) found, so there is no "
            "sweep to summarize (were all its jobs killed before they started?)"
        )
    table = pd.DataFrame(rows)
    override_keys = [c for c in table.columns if c not in ("job", "status", "error", "dir", *METRICS)]
    swept = [k for k in override_keys if table[k].astype(str).nunique() > 1] or override_keys  # noqa: PD101 (a few rows)
    table = table[["job", *swept, "status", *[m for m in METRICS if m in table], "error", "dir"]]
    if OBJECTIVE in table:  # not when no job got as far as its figures (every one failed)
        table = table.sort_values(OBJECTIVE, ascending=False, na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    groups = _replicate_groups(table, swept)

    artifacts.write_csv(sweep_dir / "sweep_results.csv", table)
    if groups is not None:
        artifacts.write_csv(sweep_dir / "sweep_groups.csv", groups)
    plots.plot_sweep_summary(table, swept, OBJECTIVE, sweep_dir / "sweep_summary.png")
    summary = SweepSummary(table, swept, groups)
    from mnist_hydra.runs.html_report import write_sweep_report

    write_sweep_report(sweep_dir, summary)
    return summary


def report(summary: SweepSummary, sweep_dir: Path) -> str:
    """What a user reads at the end of a sweep: the table, replicate statistics, failures, the best run."""
    shown = summary.table.drop(columns=["dir", "error"])
    lines = [
        f"sweep summary ({len(summary.table)} jobs) -> {Path(sweep_dir) / 'sweep_results.csv'}",
        shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
    ]
    if summary.groups is not None:
        # The CSV has every metric; the screen gets the two accuracies.
        wanted = [
            c
            for c in summary.groups.columns
            if not c.startswith(tuple(METRICS)) or c.split("_")[0] in ("val", "test") and "accuracy" in c
        ]
        lines += [
            "mean and standard deviation over " + ", ".join(k for k in REPLICATE_KEYS if k in summary.swept),
            summary.groups[wanted].to_string(index=False, float_format=lambda v: f"{v:.4f}"),
        ]
    if not summary.pruned.empty:
        lines.append(summary.pruned_line())
    for _, job in summary.failed.iterrows():
        lines.append(f"job {job['job']} {job['status']}: {job['error']}")
    best = summary.best
    if best is None:
        lines.append("no job completed")
    else:
        setting = " ".join(f"{k}={best[k]}" for k in summary.swept) or "(no overrides)"
        lines.append(
            f"best: job {best['job']} {setting}: val_accuracy {best['val_accuracy']:.4f}, "
            f"test_accuracy {best['test_accuracy']:.4f}; {best['dir']}"
        )
    return "\n".join(lines)


def _job_row(job: Path) -> dict[str, object]:
    row: dict[str, object] = {"job": job.name}
    for override in rundir.read_overrides(job):
        key, _, value = override.partition("=")
        row[key.lstrip("+~")] = _number_or_text(value)
    metrics = rundir.read_metrics(job)
    if metrics:
        row["status"] = metrics.get("status", "completed")
        row["error"] = metrics.get("error", "")
        # A figure that is no number (a hand-edited or foreign metrics.json) is left out: it cannot be ranked.
        row.update({m: metrics[m] for m in METRICS if _is_number(metrics.get(m))})
        run, seconds, epochs = (metrics.get(key) for key in ("epochs_run", "train_seconds", "epochs"))
        if row["status"] == "pruned" and _is_number(run) and run > 0 and _is_number(seconds) and _is_number(epochs):
            row["saved_seconds"] = max(0, int(epochs) - run) * seconds / run
    else:
        # Killed, crashed hard, or still running: no metrics.json was written.
        row["status"], row["error"] = "incomplete", "no metrics.json in the job directory"
    row["dir"] = str(job)
    return row


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_or_text(value: str) -> object:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def _replicate_groups(table: pd.DataFrame, swept: list[str]) -> pd.DataFrame | None:
    replicates = [k for k in REPLICATE_KEYS if k in swept]
    if not replicates:
        return None
    done = table[table["status"] == "completed"]
    if done.empty:
        return None
    settings = [k for k in swept if k not in replicates]
    metrics = [m for m in METRICS if m in done]
    keyed = done.assign(_all="all") if not settings else done
    by = settings or ["_all"]
    stats = keyed.groupby(by, dropna=False, sort=False)[metrics].agg(["mean", "std", "count"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    counts = stats.filter(like="_count")
    stats = stats.drop(columns=counts.columns).assign(runs=counts.iloc[:, 0].astype(int)).reset_index()
    groups: pd.DataFrame = (
        stats.sort_values(f"{OBJECTIVE}_mean", ascending=False)
        .reset_index(drop=True)
        .rename(columns={"_all": "setting"})
    )
    return groups
