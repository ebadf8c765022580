"""Optuna search and the joblib and submitit launchers: they compose, and small sweeps really run."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.conftest import TINY_SEARCH, call_app, run_app
from tests.test_report import parse

SEARCHED = {"optimizer.lr", "trainer.batch_size", "model.dense_units", "model.dropout"}


def _hydra_config(tmp_path: Path, *overrides: str) -> dict:
    result = call_app("--cfg", "all", "--resolve", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["hydra"]


# The smallest real run: the MLP on 300 images, scored on 100, validated on 600, one epoch.
TINY_RUN = [o for o in TINY_SEARCH if not o.startswith("hydra.sweeper.")] + ["data.val_split=0.01"]
# The search preset's own space (it fits the CNN) on the same few images.
TINY_CNN = [o for o in TINY_RUN if o != "model=mlp"]


def _sweep(
    tmp_path: Path, mnist_dir: Path, *overrides: str, multirun: bool = False, process: bool = False, tiny=TINY_RUN
) -> tuple:
    """Run a sweep of `tiny` jobs (overrides win) into tmp_path/sweep, in-process or, with `process`, as a
    process of its own (the launchers that start worker processes); return (result, sweep dir)."""
    sweep = tmp_path / "sweep"
    flags = ["--multirun"] if multirun else []  # hparams_search=optuna needs none: it sets hydra.mode
    result = (run_app if process else call_app)(
        *flags,
        *tiny,
        *overrides,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result, sweep


def _jobs(sweep: Path) -> dict[int, Path]:
    return {int(p.name): p for p in sweep.iterdir() if p.name.isdigit()}


def _metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def _overrides(job: Path) -> dict[str, str]:
    return dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["hydra/launcher=joblib"], {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}),
        (
            ["hydra/launcher=submitit_local"],
            {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"},
        ),
        (
            [
                "hydra/launcher=submitit_slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.timeout_min=120",
                "hydra.launcher.gpus_per_node=1",
            ],
            {
                "_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                "partition": "gpu",
                "timeout_min": 120,
                "gpus_per_node": 1,
            },
        ),
        (
            ["hydra/launcher=ray", "trainer.threads=2"],  # each job reserves its trainer.threads CPUs
            {
                "_target_": "hydra_plugins.mnist_hydra_plugins.ray_launcher.RayLauncher",
                "ray": {
                    "init": {"address": None, "include_dashboard": False},
                    "remote": {"num_cpus": 2},
                    "env": ["MNIST_HYDRA_DATA", "TF_CPP_MIN_LOG_LEVEL", "MLFLOW_TRACKING_URI"],
                    "stop_timeout_s": 60.0,
                },
            },
        ),
        (
            ["hydra/launcher=ray", "trainer.threads=1", "hydra.launcher.ray.init.address=auto"],
            {
                "ray": {
                    "init": {"address": "auto", "include_dashboard": False},
                    "remote": {"num_cpus": 1},
                    "env": ["MNIST_HYDRA_DATA", "TF_CPP_MIN_LOG_LEVEL", "MLFLOW_TRACKING_URI"],
                    "stop_timeout_s": 60.0,
                }
            },
        ),
        (
            ["hydra/launcher=slurm"],  # our preset on top of submitit_slurm
            {
                "_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                "partition": None,
                "cpus_per_task": 4,
                "mem_gb": 8,
                "gpus_per_node": None,
                "timeout_min": 30,
                "array_parallelism": 8,
            },
        ),
        (
            [
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.gpus_per_node=1",
                "hydra.launcher.timeout_min=90",
            ],
            {"partition": "gpu", "gpus_per_node": 1, "timeout_min": 90, "cpus_per_task": 4},
        ),
    ],
)
def test_every_launcher_composes_with_its_overrides(tmp_path, overrides, expected):
    launcher = _hydra_config(tmp_path, *overrides)["launcher"]
    assert {key: launcher[key] for key in expected} == expected
    if "submitit" in launcher["_target_"]:
        assert launcher["submitit_folder"].endswith("/.submitit/%j")  # under the sweep directory


def test_optuna_search_composes_as_a_seeded_maximizing_multirun(tmp_path):
    hydra = _hydra_config(tmp_path, "hparams_search=optuna", "seed=7", "hydra.sweeper.n_trials=5")
    sweeper = hydra["sweeper"]
    assert hydra["mode"] == "MULTIRUN"
    assert sweeper["_target_"] == "hydra_plugins.mnist_hydra_plugins.optuna_sweeper.OptunaSweeper"
    assert (sweeper["direction"], sweeper["n_trials"], sweeper["max_failure_rate"]) == ("maximize", 5, 1.0)
    assert sweeper["sampler"] == {"name": "tpe", "seed": 7}
    assert (sweeper["storage"], sweeper["pruner"], sweeper["study_name"]) == (None, None, "mnist_hydra")
    assert set(sweeper["params"]) == SEARCHED
    assert sweeper["params"]["optimizer.lr"].startswith("tag(log, interval(")


def test_help_lists_the_search_option(tmp_path):
    result = call_app("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hparams_search: optuna" in result.stdout


# One search of three trials, seed 3: job 0 gets trainer.epochs=0, which validation rejects; jobs 1 and 2 train 1
# and 2 epochs. Tied to the job number, not to what the sampler proposes, so the failure is certain.
SEARCH = ["hparams_search=optuna", "hydra.sweeper.n_trials=3", "seed=3"]


@pytest.fixture(scope="module")
def search(tmp_path_factory, mnist_dir) -> tuple:
    """A real Optuna search with a failed trial: (its result, its sweep directory)."""
    cwd = tmp_path_factory.mktemp("search")
    return _sweep(cwd, mnist_dir, *SEARCH, "trainer.epochs=${hydra:job.num}", tiny=TINY_CNN)


def _trials(sweep: Path) -> dict[int, tuple[dict, dict[str, str]]]:
    """Each trial's metrics and searched parameters, checked against the search space."""
    jobs = _jobs(sweep)
    assert sorted(jobs) == [0, 1, 2]
    trials = {}
    for num, job in jobs.items():
        params = {key: value for key, value in _overrides(job).items() if key in SEARCHED}
        assert set(params) == SEARCHED
        assert 1e-4 <= float(params["optimizer.lr"]) <= 1e-2
        assert int(params["trainer.batch_size"]) in (32, 64, 128)
        assert int(params["model.dense_units"]) in (64, 128, 256)
        assert 0.0 <= float(params["model.dropout"]) <= 0.5
        trials[num] = (_metrics(job), params)
    return trials


def test_optuna_runs_its_trials_and_records_the_best(search):
    _, sweep = search
    trials = _trials(sweep)
    assert len({tuple(sorted(params.items())) for _, params in trials.values()}) == 3  # three different trials
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best_metrics, best_params = max(
        (trial for trial in trials.values() if trial[0]["status"] == "completed"),
        key=lambda trial: trial[0]["val_accuracy"],
    )
    assert results["best_value"] == best_metrics["val_accuracy"]
    assert {key: str(value) for key, value in results["best_params"].items()} == best_params


def test_a_failed_trial_is_recorded_and_the_search_goes_on(search):
    result, sweep = search
    trials = _trials(sweep)
    failed = trials[0][0]
    assert failed["status"] == "failed" and "trainer.epochs=0" in failed["error"]
    completed = [trials[num][0] for num in (1, 2)]  # the second batch (job 2) ran after the failure in the first
    assert [m["status"] for m in completed] == ["completed", "completed"]
    assert [m["epochs_run"] for m in completed] == [1, 2]
    assert "trial 0 failed: its job returned no value (its metrics.json says why)" in result.stdout  # trial FAIL
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == max(m["val_accuracy"] for m in completed)


def test_optuna_sweep_directory_holds_the_table_the_plot_and_the_report(search):
    _, sweep = search
    trials = _trials(sweep)
    table = pd.read_csv(sweep / "sweep_results.csv")
    assert sorted(table["job"]) == [0, 1, 2]
    assert dict(zip(table["job"], table["status"], strict=True)) == {0: "failed", 1: "completed", 2: "completed"}
    assert set(table.columns) >= SEARCHED  # each trial's parameters are columns
    for _, row in table.iterrows():
        metrics, params = trials[row["job"]]
        if metrics["status"] == "completed":
            assert row["val_accuracy"] == metrics["val_accuracy"]
        assert float(row["optimizer.lr"]) == float(params["optimizer.lr"])
    with Image.open(sweep / "sweep_summary.png") as image:
        image.verify()
        assert image.format == "PNG"
    page = parse(sweep / "report.html")  # written by the sweep, not regenerated here
    assert set(page.hrefs) == {"0/report.html", "1/report.html", "2/report.html"} and len(page.srcs) == 1
    for href in page.hrefs:
        parse(sweep / href)


def test_optuna_search_where_every_trial_fails_ends_in_one_line_and_the_same_seed_proposes_the_same_trials(
    search, tmp_path
):
    sweep = tmp_path / "sweep"
    result = call_app(*SEARCH, *TINY_CNN, "trainer.epochs=0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    # The whole stderr: our one line (Optuna's own INFO lines are left out).
    assert result.stderr.strip() == (
        "mnist_hydra: error: no trial of the search completed, so there is no best one; "
        "each job's metrics.json in the sweep directory says why it failed"
    )
    for job in ("0", "1", "2"):
        assert json.loads((sweep / job / "metrics.json").read_text())["status"] == "failed"
    # The same seed proposed the same parameters, trial by trial, whatever the trials' outcomes.
    assert {num: params for num, (_, params) in _trials(sweep).items()} == {
        num: params for num, (_, params) in _trials(search[1]).items()
    }


def _log_lines(log: Path) -> list[tuple[datetime, str, str]]:
    """(time, pid, message) of each line of a job log written with LOG_FORMAT."""
    found = re.findall(r"^(\S+ \S+) pid (\d+) (.*)$", log.read_text(), re.M)
    return [(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"), pid, message) for stamp, pid, message in found]


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_worker_processes(tmp_path, mnist_dir):
    """Worker processes, each importing TensorFlow. In the default suite: test_every_launcher_composes_with_its_overrides."""
    pid_format = "'%(asctime)s pid %(process)d [%(name)s] %(message)s'"
    result, sweep = _sweep(
        tmp_path,
        mnist_dir,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer.threads=1",
        "seed=0,1",
        f"hydra.hydra_logging.formatters.simple.format={pid_format}",
        f"hydra.job_logging.formatters.simple.format={pid_format}",
        multirun=True,
        process=True,
    )
    jobs = _jobs(sweep)
    assert sorted(jobs) == [0, 1]
    assert [_metrics(jobs[num])["status"] for num in (0, 1)] == ["completed", "completed"]
    launcher_pid = re.search(r" pid (\d+) .*Joblib\.Parallel\(n_jobs=2,", result.stdout).group(1)
    job_pids, spans = [], []
    for num in (0, 1):
        lines = _log_lines(jobs[num] / "train.log")
        assert lines[0][2].startswith("[mnist_hydra.data.mnist] data: ")  # the job's first line...
        assert lines[-1][2].startswith("[mnist_hydra.apps.train] test accuracy")  # ...and its last
        log_pids = {pid for _, pid, _ in lines}
        assert len(log_pids) == 1, log_pids  # the whole job ran in one process
        job_pids.append(log_pids.pop())
        spans.append((lines[0][0], lines[-1][0]))
    assert launcher_pid not in job_pids  # workers, not the launching process
    assert job_pids[0] != job_pids[1]  # one worker per job
    # Side by side: each job started before the other ended.
    (start0, end0), (start1, end1) = spans
    assert start0 < end1 and start1 < end0, spans


@pytest.mark.slow
def test_submitit_local_launches_jobs_that_complete(tmp_path, mnist_dir):
    """Worker processes, each importing TensorFlow. In the default suite: test_every_launcher_composes_with_its_overrides."""
    _, sweep = _sweep(
        tmp_path,
        mnist_dir,
        "hydra/launcher=submitit_local",
        "trainer.threads=1",
        "seed=0,1",
        multirun=True,
        process=True,
    )
    jobs = _jobs(sweep)
    assert sorted(jobs) == [0, 1]
    assert [_metrics(jobs[num])["status"] for num in (0, 1)] == ["completed", "completed"]
    # submitit's own records: one folder per job id, holding its pickled result and log.
    submitted = {p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit()}
    job_ids = {
        yaml.safe_load((jobs[num] / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"] for num in (0, 1)
    }
    assert job_ids == submitted and len(submitted) == 2
    for job_id in submitted:
        folder = sweep / ".submitit" / job_id
        assert (folder / f"{job_id}_0_result.pkl").is_file()
        assert "Job completed successfully" in (folder / f"{job_id}_0_log.out").read_text()
