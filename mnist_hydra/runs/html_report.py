"""report.html: one self-contained page per run and per sweep (images inlined, CSS inline, no URLs).

A run's page holds its config, final metrics, training curves, confusion matrix, misclassified
digits and per-epoch history. A sweep's page holds the sweep table, the replicate groups, the
summary plot and a relative link to each job's own report.html. Both are rebuilt from the files
in the directory, so they can be written again at any time (`python -m mnist_hydra.report DIR`);
every text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import yaml

from mnist_hydra.runs import rundir
from mnist_hydra.runs.artifacts import atomic_write, read_json

REPORT = "report.html"
# Run metrics shown first, in this order; other plain values follow.
HEADLINE = [
    "status",
    "error",
    "test_accuracy",
    "test_loss",
    "val_accuracy",
    "val_loss",
    "best_val_accuracy",
    "best_epoch",
    "epochs_run",
    "stopped_early",
    "keep",
    "kept_epoch",
    "train_seconds",
    "params",
    "train_images",
    "val_images",
    "test_images",
    "val_is_test",
    "seed",
    "strategy",
    "replicas",
    "data_source",
]
PLOTS = [
    ("training_curves.png", "curves", "Training curves", "Loss and accuracy per epoch, train and validation"),
    ("confusion_matrix.png", "confusion-matrix", "Confusion matrix", "The test set: rows true, columns predicted"),
    ("misclassified.png", "misclassified", "Misclassified digits", "The most confident mistakes on the test set"),
]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd;
       padding-bottom: .2rem; margin-top: 2rem; }
.meta { color: #666; margin-top: 0; } .missing { color: #999; font-style: italic; }
.failed { color: #b00020; } .completed { color: #1b5e20; } .incomplete { color: #8a6d00; } .pruned { color: #5d4037; }
table { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #eef7ee; }
.scroll { overflow-x: auto; max-width: 100%; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: .6rem; overflow-x: auto; font-size: .85rem; }
figure { margin: .5rem 0; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #666; font-size: .85rem; }
"""


def write_run_report(run_dir: str | os.PathLike[str], metrics: dict[str, Any] | None = None) -> Path:
    """Write run_dir/report.html from the run's files; `metrics` stands in for a metrics.json not yet written."""
    run_dir = Path(run_dir)
    if metrics is None:
        metrics = rundir.read_metrics(run_dir)
    provenance = read_json(run_dir / "provenance.json")
    status = str(metrics.get("status", "completed" if metrics else "incomplete"))
    title = f"Run {run_dir.name}"
    body = [
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(str(run_dir.absolute()))} &middot; <span class="{_e(status)}">{_e(status)}</span>'
        + (f" &middot; started {_e(provenance['started'])}" if provenance.get("started") else "")
        + "</p>",
        "</header>",
        _section("metrics", "Final metrics", _metrics_table(metrics)),
        _section("config", "Config", _config_html(run_dir, provenance)),
    ]
    for name, anchor, heading, caption in PLOTS:
        body.append(_section(anchor, heading, _figure(run_dir / name, caption)))
    body.append(_section("history", "History", _history_html(run_dir, metrics)))
    body.append(_section("provenance", "Provenance", _provenance_html(provenance, metrics)))
    return _write_page(run_dir / REPORT, title, body)


def write_sweep_report(sweep_dir: str | os.PathLike[str], summary: Any) -> Path:
    """Write sweep_dir/report.html from a SweepSummary (mnist_hydra.runs.sweeps), linking each job's report.html.

    A job directory without a report.html (a failed job, or one from before reports existed)
    gets one first, so that no link is broken.
    """
    sweep_dir = Path(sweep_dir)
    table: pd.DataFrame = summary.table
    links: dict[str, str] = {}
    for _, job in table.iterrows():
        job_dir = Path(str(job["dir"]))
        if job_dir.is_dir() and not (job_dir / REPORT).is_file():
            write_run_report(job_dir)
        if (job_dir / REPORT).is_file():
            links[str(job["job"])] = quote(Path(os.path.relpath(job_dir / REPORT, sweep_dir)).as_posix())

    completed = int((table["status"] == "completed").sum())
    pruned = len(summary.pruned)
    title = f"Sweep {sweep_dir.name}"
    body = [
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(str(sweep_dir.absolute()))} &middot; {len(table)} jobs, {completed} completed'
        + (f', <span class="pruned">{pruned} pruned</span>' if pruned else "")
        + (
            f', <span class="failed">{len(table) - completed - pruned} not completed</span>'
            if completed + pruned < len(table)
            else ""
        )
        + (f" &middot; swept: {_e(', '.join(summary.swept))}" if summary.swept else "")
        + "</p>",
        "</header>",
        _section("best", "Best run", _best_html(summary, links)),
        _section("jobs", "Jobs", _jobs_table(table, summary.swept, links)),
    ]
    if summary.groups is not None:
        body.append(_section("groups", "Mean and standard deviation over replicates", _frame_table(summary.groups)))
    body.append(
        _section(
            "summary-plot",
            "Summary plot",
            _figure(sweep_dir / "sweep_summary.png", "Validation accuracy against each swept key"),
        )
    )
    if pruned:
        body.append(_section("pruned", "Pruned trials", f"<p>{_e(summary.pruned_line())}</p>"))
    failed = summary.failed
    if not failed.empty:
        items = "".join(
            f'<li>job {_link_or_text(str(job["job"]), links)} <span class="failed">'
            f"{_e(str(job['status']))}</span>: {_e(str(job['error']))}</li>"
            for _, job in failed.iterrows()
        )
        body.append(_section("failures", "Failures", f"<ul>{items}</ul>"))
    return _write_page(sweep_dir / REPORT, title, body)


# Pieces of a page.


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _section(anchor: str, heading: str, content: str) -> str:
    return f'<section id="{_e(anchor)}">\n<h2>{_e(heading)}</h2>\n{content}\n</section>'


def _missing(what: str) -> str:
    return f'<p class="missing">{_e(what)}</p>'


def _figure(path: Path, caption: str) -> str:
    """The PNG inlined as a data URI; a note when it was not written or is not a PNG."""
    try:
        data = path.read_bytes()
    except OSError:
        return _missing(f"{path.name} was not written")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _missing(f"{path.name} is not a PNG file")
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img src="{uri}" alt="{_e(caption)}"><figcaption>{_e(path.name)}: {_e(caption)}</figcaption></figure>'
    )


def _format(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if key in ("params",) or key.endswith("_images") else str(value)
    if key.endswith("seconds"):
        return f"{value:.1f} s"
    if any(word in key for word in ("accuracy", "loss", "precision", "recall", "f1")):
        return f"{value:.4f}"
    return f"{value:g}"  # settings such as a learning rate: 1e-05 must not print as 0.0000


def _cell(key: str, value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{_e(_format(key, value))}</td>' if numeric else f"<td>{_e(_format(key, value))}</td>"


def _table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    row_classes: Sequence[str] | None = None,
    raw_columns: Sequence[str] = (),
) -> str:
    """A table; cells of `raw_columns` are HTML made here (already escaped), every other cell is escaped."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    lines = []
    for i, row in enumerate(rows):
        cells = "".join(
            f"<td>{value}</td>" if column in raw_columns else _cell(column, value)
            for column, value in zip(columns, row, strict=False)
        )
        css = f' class="{_e(row_classes[i])}"' if row_classes and row_classes[i] else ""
        lines.append(f"<tr{css}>{cells}</tr>")
    return _scroll(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(lines) + "\n</tbody>\n</table>")


def _frame_table(frame: pd.DataFrame) -> str:
    """A plain table of numbers and text: pandas writes it, escaping every cell."""
    return _scroll(
        frame.to_html(
            escape=True,
            index=False,
            na_rep="",
            border=0,
            float_format=lambda v: f"{v:.4g}" if abs(v) >= 1e4 or 0 < abs(v) < 1e-3 else f"{v:.4f}",
        )
    )


def _scroll(table: str) -> str:
    """A wide table scrolls inside the page instead of pushing it wider than the screen."""
    return f'<div class="scroll">{table}</div>'


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, so they format as numbers."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _metrics_table(metrics: dict[str, Any]) -> str:
    if not metrics:
        return _missing("no metrics.json: the run has not finished, or was stopped")
    plain = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    keys = [k for k in HEADLINE if k in plain] + [k for k in plain if k not in HEADLINE]
    # Each value is formatted by its own key (seconds, counts, ratios), so the cells are made here.
    return _table(["metric", "value"], [[k, _e(_format(k, plain[k]))] for k in keys], raw_columns=("value",))


def _config_html(run_dir: Path, provenance: dict[str, Any]) -> str:
    overrides = provenance.get("overrides")
    if overrides is None:
        overrides = rundir.read_overrides(run_dir)
    parts = [
        f"<p>Overrides: <code>{_e(' '.join(map(str, overrides)))}</code></p>"
        if overrides
        else "<p>Overrides: none (the defaults)</p>"
    ]
    if isinstance(provenance.get("config"), dict):
        text, source = yaml.safe_dump(provenance["config"], sort_keys=False), "provenance.json (validated)"
    else:
        try:
            text, source = (run_dir / ".hydra" / "config.yaml").read_text(encoding="utf-8"), ".hydra/config.yaml"
        except OSError:
            return "".join(parts) + _missing("no provenance.json and no .hydra/config.yaml")
    return "".join(parts) + f'<pre>{_e(text)}</pre><p class="meta">from {_e(source)}</p>'


def _history_html(run_dir: Path, metrics: dict[str, Any]) -> str:
    try:
        frame = pd.read_csv(run_dir / "history.csv")
    except (OSError, ValueError):
        history = metrics.get("history")
        if not isinstance(history, dict) or not history:
            return _missing("history.csv was not written")
        frame = pd.DataFrame(history)
        frame.insert(0, "epoch", range(1, len(frame) + 1))
    return _frame_table(frame)


def _provenance_html(provenance: dict[str, Any], metrics: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    if provenance.get("command"):
        rows.append(["command", " ".join(map(str, provenance["command"]))])
    data = provenance.get("data") or {}
    source = data.get("source") or metrics.get("data_source")
    if source:
        rows.append(["data", source])
    for name, digest in (data.get("checksums") or metrics.get("data_checksums") or {}).items():
        rows.append([f"sha256 {name}", digest])
    git = provenance.get("git")
    if isinstance(git, dict):
        rows.append(["git", f"{git.get('commit')}" + (" (uncommitted changes)" if git.get("dirty") else "")])
    for name, version in (provenance.get("versions") or {}).items():
        rows.append([name, version if version is not None else "not installed"])
    if provenance.get("host"):
        rows.append(["host", provenance["host"]])
    return _table(["item", "value"], rows) if rows else _missing("no provenance.json")


def _link_or_text(job: str, links: dict[str, str]) -> str:
    return f'<a href="{_e(links[job])}">{_e(job)}</a>' if job in links else _e(job)


def _jobs_table(table: pd.DataFrame, swept: Sequence[str], links: dict[str, str]) -> str:
    columns = [c for c in table.columns if c != "dir"]
    rows, classes = [], []
    best = table.index[table["status"] == "completed"]
    for index, job in table.iterrows():
        row = [_plain(job[c]) for c in columns]
        row[columns.index("job")] = _link_or_text(str(job["job"]), links)
        status = str(job["status"])
        row[columns.index("status")] = f'<span class="{_e(status)}">{_e(status)}</span>'
        rows.append(row)
        classes.append("best" if len(best) and index == best[0] else "")
    return _table(columns, rows, classes, raw_columns=("job", "status"))


def _best_html(summary: Any, links: dict[str, str]) -> str:
    best = summary.best
    if best is None:
        return _missing("no job completed")
    setting = " ".join(f"{k}={best[k]}" for k in summary.swept) or "(no overrides)"
    report = f' &middot; <a href="{_e(links[str(best["job"])])}">its report</a>' if str(best["job"]) in links else ""
    return (
        f"<p>job {_link_or_text(str(best['job']), links)}: <code>{_e(setting)}</code> &middot; "
        f"val_accuracy {_e(_format('val_accuracy', _plain(best['val_accuracy'])))} &middot; "
        f"test_accuracy {_e(_format('test_accuracy', _plain(best['test_accuracy'])))}{report}</p>"
    )


def _write_page(path: Path, title: str, body: list[str]) -> Path:
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)} - mnist_hydra</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            *body,
            f'<footer><p class="meta">Written by mnist_hydra.runs.html_report at {_e(stamp)}.</p></footer>',
            "</body>",
            "</html>",
            "",
        ]
    )
    atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return path
