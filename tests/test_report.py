"""report.html: one valid, self-contained page per run and per sweep, every text escaped."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from PIL import Image

from mnist_hydra.apps.report import main as report_main
from mnist_hydra.runs.html_report import write_run_report, write_sweep_report
from mnist_hydra.runs.sweeps import summarize_sweep

RUN_SECTIONS = {"metrics", "config", "curves", "confusion-matrix", "misclassified", "history", "provenance"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Parses a page, checking that every element is closed in order; keeps what the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.tags: list[str] = []
        self.ids: set[str] = set()
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []
        self.doctype = False
        self.feed(text)
        self.close()
        if self.open:
            self.problems.append(f"never closed: {self.open}")

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "src" in attrs:
            self.srcs.append(attrs["src"])
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.open.pop()

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Page:
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert page.doctype and page.problems == [], page.problems
    assert page.tags[:3] == ["html", "head", "meta"] and "body" in page.tags
    # Self-contained: nothing fetched from anywhere, not even a stylesheet or a font.
    assert "http://" not in text and "https://" not in text and "url(" not in text and "@import" not in text
    assert not {"link", "script", "iframe", "object"} & set(page.tags)
    for src in page.srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
            image.verify()
    return page


def test_run_report_holds_config_metrics_plots_and_history(trained_run):
    path = trained_run / "report.html"  # as training wrote it, not rewritten here
    page = parse(path)
    assert page.ids >= RUN_SECTIONS
    assert len(page.srcs) == 3 and page.hrefs == []  # the three plots, inlined; no links at all
    text = " ".join(page.text)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert f"{metrics['test_accuracy']:.4f}" in text and f"{metrics['val_loss']:.4f}" in text
    assert "train_limit: 2000" in text and "data.test_limit=500" in text  # the config and its overrides
    assert "607,394" in text
    assert path.read_text().count("<tr>") >= len(metrics["history"]["loss"]) + 10  # history rows + metric rows
    assert "completed" in text  # written just before metrics.json, from the same metrics


def test_rewriting_a_runs_report_gives_the_page_training_wrote(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("model.keras", "evaluate"))
    written = (run / "report.html").read_text()
    assert write_run_report(run) == run / "report.html"
    rewritten = (run / "report.html").read_text().replace(str(run), str(trained_run))
    when = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00")  # the footer's "written at"
    assert when.sub("TIME", rewritten) == when.sub("TIME", written)


def test_run_report_can_be_written_before_metrics_json(trained_run, tmp_path):
    """train.py writes report.html just before metrics.json, which marks a complete run: the metrics come in."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("model.keras", "metrics.json", "report.html"))
    metrics = json.loads((trained_run / "metrics.json").read_text())
    page = parse(write_run_report(run, {**metrics, "test_accuracy": 0.12345}))
    assert "0.1235" in " ".join(page.text) and len(page.srcs) == 3
    assert not (run / "metrics.json").exists()


def test_run_report_without_plots_or_metrics_says_what_is_missing(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 3\ndata:\n  name: mnist\n")
    (tmp_path / "training_curves.png").write_bytes(b"not a png")
    page = parse(write_run_report(tmp_path))
    text = " ".join(page.text)
    assert page.srcs == [] and page.ids >= RUN_SECTIONS
    assert "no metrics.json" in text and "training_curves.png is not a PNG file" in text
    assert "misclassified.png was not written" in text and "seed: 3" in text


def test_every_text_is_escaped(tmp_path):
    evil = '<script>alert("x")</script>&<b>'
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "failed", "error": evil}))
    (tmp_path / "provenance.json").write_text(
        json.dumps({"overrides": [f"+note={evil}"], "config": {"note": evil}, "command": ["python", evil]})
    )
    path = write_run_report(tmp_path)
    raw = path.read_text()
    page = parse(path)
    assert "<script>" not in raw and "<b>" not in raw
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&lt;b&gt;" in raw
    assert " ".join(page.text).count(evil) >= 3  # it still reads as typed


def make_sweep(run: Path, sweep: Path) -> None:
    """A sweep of three jobs from one real run: seed=0 and seed=1 completed, seed=2 failed."""
    for job, seed in (("0", 0), ("1", 1)):
        shutil.copytree(run, sweep / job, ignore=shutil.ignore_patterns("model.keras", "report.html", "evaluate"))
        (sweep / job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}"]))
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        metrics["val_accuracy"] -= 0.01 * seed
        (sweep / job / "metrics.json").write_text(json.dumps(metrics))
    (sweep / "2" / ".hydra").mkdir(parents=True)
    (sweep / "2" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=2"]))
    (sweep / "2" / "metrics.json").write_text(json.dumps({"status": "failed", "error": "boom <&> at epoch 1"}))


def test_sweep_report_has_table_groups_plot_and_relative_links_to_job_reports(trained_run, tmp_path):
    sweep = tmp_path / "sweep"
    make_sweep(trained_run, sweep)
    path = write_sweep_report(sweep, summarize_sweep(sweep))
    assert path == sweep / "report.html"
    page = parse(path)
    assert {"best", "jobs", "groups", "summary-plot", "failures"} <= page.ids
    assert len(page.srcs) == 1  # sweep_summary.png
    # Links only to the jobs' own reports, relative, each written if it was missing (the failed job's too).
    assert set(page.hrefs) == {"0/report.html", "1/report.html", "2/report.html"}
    for href in page.hrefs:
        job_page = parse(sweep / href)
        assert job_page.hrefs == []
    assert "boom <&> at epoch 1" in " ".join(page.text) and "boom <&>" not in path.read_text()
    best_row = path.read_text().split('<tr class="best">')[1].split("</tr>")[0]
    assert 'href="0/report.html"' in best_row  # seed=0 has the higher val_accuracy
    assert "failed" in " ".join(parse(sweep / "2" / "report.html").text)


def test_report_command_rewrites_a_sweeps_or_a_runs_page(trained_run, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_sweep(trained_run, sweep)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    assert (
        report_main([str(sweep)]) == 0 and (sweep / "report.html").is_file() and (sweep / "sweep_results.csv").is_file()
    )
    (sweep / "0" / "report.html").unlink()
    assert report_main([str(sweep / "0")]) == 0 and (sweep / "0" / "report.html").is_file()
    assert capsys.readouterr().out.split() == [str(sweep / "report.html"), str(sweep / "0" / "report.html")]
    with pytest.raises(SystemExit) as stop:
        report_main([str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    assert "is not a directory" in capsys.readouterr().err
