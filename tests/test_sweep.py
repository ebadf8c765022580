"""Sweep tables: every job a row (failures too), replicate statistics, summarize, real sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure
from PIL import Image

from mnist_hydra.apps.summarize import main as summarize_main
from mnist_hydra.runs.rundir import list_runs
from mnist_hydra.runs.sweeps import report, summarize_sweep
from tests.conftest import TINY_SEARCH, call_app
from tests.test_report import parse

# The smallest real run: the MLP on 300 images, scored on 100, one epoch.
SMALL = [o for o in TINY_SEARCH if not o.startswith("hydra.sweeper.")]


def make_job(sweep: Path, num: int, overrides: list[str], metrics: dict | None) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def done(val: float, test: float) -> dict:
    return {
        "status": "completed",
        "val_accuracy": val,
        "test_accuracy": test,
        "test_loss": 1 - test,
        "epochs_run": 1,
        "train_seconds": 1.0,
    }


@pytest.fixture
def fake_sweep(tmp_path) -> Path:
    sweep = tmp_path / "sweep"
    vals = {("adam", 1): 0.90, ("adam", 2): 0.94, ("sgd", 1): 0.80, ("sgd", 2): 0.86}
    for num, ((opt, seed), val) in enumerate(vals.items()):
        make_job(sweep, num, [f"optimizer={opt}", f"seed={seed}", "trainer.epochs=1"], done(val, val - 0.01))
    make_job(
        sweep,
        4,
        ["optimizer=rmsprop", "seed=1", "trainer.epochs=1"],
        {"status": "failed", "error": "optimizer.lr=-1.0 is not allowed"},
    )
    make_job(sweep, 5, ["optimizer=rmsprop", "seed=2", "trainer.epochs=1"], None)  # killed mid-run
    return sweep  # no multirun.yaml: Optuna's sweeper writes none either


def test_table_has_a_row_per_job_swept_columns_and_failures_last(fake_sweep):
    summary = summarize_sweep(fake_sweep)
    table = pd.read_csv(fake_sweep / "sweep_results.csv")
    assert len(table) == 6 and summary.swept == ["optimizer", "seed"]  # trainer.epochs never varied
    assert list(table.columns[:4]) == ["job", "optimizer", "seed", "status"]
    assert list(table["val_accuracy"].iloc[:4]) == [0.94, 0.90, 0.86, 0.80]
    assert list(table["status"].iloc[4:]) == ["failed", "incomplete"]
    assert table["error"].iloc[4] == "optimizer.lr=-1.0 is not allowed"
    assert summary.best["job"] == "1"


def test_jobs_differing_only_by_seed_are_grouped_with_mean_and_std(fake_sweep):
    summarize_sweep(fake_sweep)
    groups = pd.read_csv(fake_sweep / "sweep_groups.csv").set_index("optimizer")
    assert list(groups.index) == ["adam", "sgd"]  # best mean first; rmsprop has no completed job
    assert groups.loc["adam", "val_accuracy_mean"] == pytest.approx(0.92)
    assert groups.loc["adam", "val_accuracy_std"] == pytest.approx(np.std([0.90, 0.94], ddof=1))
    assert groups.loc["sgd", "runs"] == 2


def test_report_names_the_best_run_and_every_failure(fake_sweep):
    text = report(summarize_sweep(fake_sweep), fake_sweep)
    assert "best: job 1 optimizer=adam seed=2: val_accuracy 0.9400" in text
    assert "job 4 failed: optimizer.lr=-1.0 is not allowed" in text
    assert "job 5 incomplete" in text
    assert "mean and standard deviation over seed" in text
    with Image.open(fake_sweep / "sweep_summary.png") as image:
        assert image.format == "PNG" and image.size[0] > 600


def test_sweep_summary_plot_is_drawn_from_the_completed_jobs(fake_sweep, monkeypatch):
    saved: dict[str, Figure] = {}
    real_savefig = Figure.savefig

    def savefig(figure, path, **kwargs):  # keep the figure that is written as sweep_summary.png
        saved[Path(path).name] = figure
        return real_savefig(figure, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    summarize_sweep(fake_sweep)
    (figure,) = [fig for name, fig in saved.items() if "sweep_summary" in name]
    assert figure.get_suptitle() == "val_accuracy of 4 completed jobs\n(2 not completed, not shown)"
    by_optimizer, by_seed = figure.axes[:2]
    assert (by_optimizer.get_xlabel(), by_seed.get_xlabel()) == ("optimizer", "seed")
    assert by_optimizer.get_ylabel() == "val_accuracy"
    assert [label.get_text() for label in by_optimizer.get_xticklabels()] == ["adam", "sgd"]
    # One point per completed job, best first: (optimizer as its tick, val_accuracy); the failed ones absent.
    points = by_optimizer.collections[0].get_offsets()
    np.testing.assert_allclose(points, [[0, 0.94], [0, 0.90], [1, 0.86], [1, 0.80]])
    np.testing.assert_allclose(by_seed.collections[0].get_offsets(), [[2, 0.94], [1, 0.90], [2, 0.86], [1, 0.80]])
    # Mean and sample std per optimizer, over its two seeds.
    means = by_optimizer.lines[0].get_xydata()
    np.testing.assert_allclose(means, [[0, 0.92], [1, 0.83]])
    (bars,) = [c for c in by_optimizer.collections[1:] if len(c.get_segments()) == 2]
    half_heights = [abs(seg[1][1] - seg[0][1]) / 2 for seg in bars.get_segments()]
    np.testing.assert_allclose(half_heights, [np.std([0.90, 0.94], ddof=1), np.std([0.80, 0.86], ddof=1)])


def test_no_groups_without_replicate_keys(tmp_path):
    sweep = tmp_path / "s"
    for num, lr in enumerate(["0.001", "0.01"]):
        make_job(sweep, num, [f"optimizer.lr={lr}"], done(0.9 + num / 100, 0.9))
    summary = summarize_sweep(sweep)
    assert summary.groups is None and not (sweep / "sweep_groups.csv").exists()
    assert summary.table["optimizer.lr"].tolist() == [0.01, 0.001]


def test_figures_that_are_no_numbers_are_left_out_not_ranked(tmp_path):
    """A hand-edited or foreign metrics.json: its text figures would make pandas compare str with float."""
    sweep = tmp_path / "s"
    make_job(sweep, 0, ["seed=1"], done(0.9, 0.89))
    make_job(sweep, 1, ["seed=2"], {**done(0.95, 0.9), "val_accuracy": "high", "train_seconds": True})
    pruned = {"status": "pruned", "val_accuracy": 0.5, "epochs_run": "one", "train_seconds": 3, "epochs": 5}
    make_job(sweep, 2, ["seed=3"], pruned)
    summary = summarize_sweep(sweep)
    table = summary.table.set_index("job")
    assert list(summary.table["job"]) == ["0", "2", "1"]  # ranked by the figures that are numbers
    assert pd.isna(table.loc["1", "val_accuracy"]) and pd.isna(table.loc["1", "train_seconds"])
    assert table.loc["1", "test_accuracy"] == 0.9 and "saved_seconds" not in table  # "one" epoch: nothing to count
    assert summary.best is not None and summary.best["seed"] == 1


def test_list_runs_is_newest_first_with_overrides(tmp_path):
    for stamp, overrides, acc in [
        ("2026-11-20/09-00-00.000001", ["seed=1"], 0.97),
        ("2026-11-24/10-30-00.500000", [], 0.98),
        ("2026-11-22/23-59-59.999999", ["model=mlp"], None),
    ]:
        run = tmp_path / "outputs" / stamp
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if acc is not None:
            (run / "metrics.json").write_text(json.dumps(done(acc, acc)))
    runs = list_runs(tmp_path / "outputs")
    assert [str(t.date()) for t in runs["started"]] == ["2026-11-24", "2026-11-22", "2026-11-20"]
    assert list(runs["overrides"]) == ["(defaults)", "model=mlp", "seed=1"]
    assert list(runs["status"]) == ["completed", "incomplete", "completed"]


def test_summarize_cli_treats_a_folder_of_jobs_as_a_sweep(fake_sweep, capsys):
    assert summarize_main([str(fake_sweep)]) == 0
    assert "best: job 1 optimizer=adam seed=2" in capsys.readouterr().out
    assert (fake_sweep / "sweep_results.csv").is_file()


def test_summarize_cli_errors_are_one_line(tmp_path, capsys):
    for args in ([str(tmp_path / "nope")], [str(tmp_path)]):
        with pytest.raises(SystemExit) as stop:
            summarize_main(args)
        assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("mnist_hydra.summarize: error: ") for line in err)


def test_real_sweep_tabulates_every_job_and_keeps_going_after_a_failure(tmp_path, mnist_dir):
    sweep = tmp_path / "sweep"
    result = call_app(
        "--multirun",
        "optimizer=adam,sgd",
        "data.val_split=0.1,1.5",
        *SMALL,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(sweep / "sweep_results.csv")
    assert len(table) == 4 and {"optimizer", "data.val_split"} <= set(table.columns)
    failed = table[table["status"] == "failed"]
    assert sorted(failed["optimizer"]) == ["adam", "sgd"] and set(failed["data.val_split"]) == {1.5}
    assert failed["error"].str.contains("data.val_split=1.5 is not allowed").all()
    assert (table["status"].iloc[:2] == "completed").all() and table["val_accuracy"].iloc[0] > 0.3
    assert (sweep / "sweep_summary.png").is_file()
    assert f"best: job {table['job'].iloc[0]} " in result.stdout
    # The page the sweep wrote: every job linked, the failed ones too, each job's own page valid.
    page = parse(sweep / "report.html")
    assert set(page.hrefs) == {f"{job}/report.html" for job in range(4)} and len(page.srcs) == 1
    assert "data.val_split=1.5 is not allowed" in " ".join(page.text)
    for href in page.hrefs:
        parse(sweep / href)

    # summarize rebuilds the same table from the files alone.
    (sweep / "sweep_results.csv").unlink()
    again = call_app(str(sweep), cwd=tmp_path, module="mnist_hydra.summarize")
    assert again.returncode == 0, again.stderr
    pd.testing.assert_frame_equal(pd.read_csv(sweep / "sweep_results.csv"), table)


def test_a_sweep_in_which_no_job_completes_is_tabulated_and_exits_1_in_one_line(tmp_path):
    sweep = tmp_path / "sweep"
    result = call_app(
        "--multirun", "seed=1,2", f"data.root={tmp_path / 'nowhere'}", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mnist_hydra: error: no job of the sweep completed (job 0 failed: data.root="), last
    assert str(sweep / "sweep_results.csv") in last and "Traceback" not in result.stderr
    assert "raised" not in result.stderr  # no callback failed on the way (Hydra turns that into a warning)
    table = pd.read_csv(sweep / "sweep_results.csv")
    assert list(table["seed"]) == [1, 2] and (table["status"] == "failed").all()
    assert "no job completed" in result.stdout and (sweep / "sweep_summary.png").is_file()


def test_k_fold_cross_validation_sweep_is_summarised_over_folds(tmp_path, mnist_dir):
    sweep = tmp_path / "cv"
    result = call_app(
        "--multirun",
        "data.folds=2",
        "data.fold=0,1",
        *SMALL,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr
    jobs = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in range(2)]
    assert [job["val_images"] for job in jobs] == [30000, 30000]  # 60,000 / 2 folds
    # What each job recorded it validated on: the folds are disjoint and cover the training file, and each
    # job trained only on the other folds.
    splits = [np.load(sweep / str(i) / "data_split.npz") for i in range(2)]
    vals = [set(split["val"].tolist()) for split in splits]
    assert [len(val) for val in vals] == [30000, 30000]
    assert not vals[0] & vals[1]
    assert vals[0] | vals[1] == set(range(60000))
    for val, split in zip(vals, splits, strict=True):
        assert len(split["train"]) == 300 and not val & set(split["train"].tolist())
    groups = pd.read_csv(sweep / "sweep_groups.csv")
    assert len(groups) == 1 and groups["runs"].iloc[0] == 2
    assert groups["val_accuracy_mean"].iloc[0] == pytest.approx(np.mean([j["val_accuracy"] for j in jobs]))
    assert "mean and standard deviation over data.fold" in result.stdout
