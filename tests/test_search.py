"""hparams_search=optuna on a current Optuna: the search space, samplers, storages shared and continued, pruning."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.mnist_hydra_plugins._search import distribution
from mnist_hydra.errors import ConfigError
from mnist_hydra.search import study as studies
from mnist_hydra.training.pruning import PRUNED_AT, PruneTrial
from tests.conftest import TINY_SEARCH, call_app, run_app

TINY = TINY_SEARCH  # the space is what each test adds: a choice of learning rate, or a grid


def _parse(override: str):
    return distribution(OverridesParser.create().parse_overrides([override])[0])


@pytest.mark.parametrize(
    "override,expected",
    [
        ("a=choice(32, 64)", CategoricalDistribution([32, 64])),
        ("a=interval(0.0, 0.5)", FloatDistribution(0.0, 0.5)),
        ("a=tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
        ("a=interval(1, 8)", FloatDistribution(1.0, 8.0)),  # Hydra's interval() is of floats
        ("a=tag(int, interval(1, 8))", IntDistribution(1, 8)),
        ("a=tag(log, int, interval(1, 64))", IntDistribution(1, 64, log=True)),
        ("a=range(1, 5)", IntDistribution(1, 4)),  # Hydra's range leaves out its stop; Optuna's bounds hold theirs
        ("a=range(0.0, 1.0, 0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
        ("a=7", "7"),  # a fixed value passes through
    ],
)
def test_hydra_sweep_syntax_becomes_optuna_distributions(override, expected):
    assert _parse(override) == expected  # Optuna's distributions compare by type and bounds


@pytest.mark.parametrize("name", studies.SAMPLERS)
def test_every_sampler_repeats_its_trials_from_the_seed(name):
    space = (
        {"x": FloatDistribution(0.0, 1.0), "n": IntDistribution(1, 8)}
        if name != "grid"
        else {"x": CategoricalDistribution([0.1, 0.2, 0.3]), "n": CategoricalDistribution([1, 2])}
    )
    grid = {key: list(dist.choices) for key, dist in space.items()} if name == "grid" else None

    def search(seed: int) -> list[dict]:
        study = optuna.create_study(sampler=studies.make_sampler(name, seed, grid), direction="maximize")
        for _ in range(6):
            trial = study.ask(space)
            with contextlib.suppress(RuntimeError):  # the grid sampler's study.stop() after its last point
                study.tell(trial, trial.params["x"] * trial.params["n"])
        return [t.params for t in study.trials]

    studies.quiet_optuna()
    first, again, other = search(3), search(3), search(4)
    assert first == again
    assert first != other
    if name == "grid":
        assert sorted((p["x"], p["n"]) for p in first) == sorted((x, n) for x in (0.1, 0.2, 0.3) for n in (1, 2))


def test_relative_storage_paths_are_made_absolute_from_the_launch_directory(tmp_path):
    assert studies.storage_url(None, tmp_path) is None
    assert studies.storage_url("sqlite:///study.db", tmp_path) == f"sqlite:///{tmp_path}/study.db"
    assert studies.storage_url("sqlite:////abs/study.db", tmp_path) == "sqlite:////abs/study.db"
    assert studies.storage_url("journal:runs/study.journal", tmp_path) == f"journal:{tmp_path}/runs/study.journal"
    assert studies.shown("postgresql://me:secret@db.example/optuna") == "postgresql://me:***@db.example/optuna"
    with pytest.raises(ConfigError, match="is not a storage"):
        studies.storage_url("study.db", tmp_path)


class _Trial:
    """Optuna's Trial as PruneTrial uses it: pruned once a reported value falls below `floor`."""

    def __init__(self, floor: float) -> None:
        self.floor, self.reports, self.user_attrs, self.number = floor, {}, {}, 0

    def report(self, value: float, step: int) -> None:
        self.reports[step] = value

    def should_prune(self) -> bool:
        return min(self.reports.values()) < self.floor

    def set_user_attr(self, key: str, value) -> None:
        self.user_attrs[key] = value


class _Model:
    stop_training = False


def test_prune_control_reports_each_epoch_and_stops_when_pruned():
    trial, model = _Trial(floor=0.5), _Model()
    prune = PruneTrial(trial)
    prune.after_epoch(1, {"val_accuracy": 0.7}, model)
    assert (trial.reports, model.stop_training, prune.stopped_epoch) == ({1: 0.7}, False, None)
    prune.after_epoch(2, {"val_accuracy": 0.4}, model)
    assert trial.reports == {1: 0.7, 2: 0.4} and model.stop_training and prune.stopped_epoch == 2
    assert trial.user_attrs == {PRUNED_AT: 2}
    again = PruneTrial(_Trial(floor=0.5))
    again.restore(prune.state())  # a resumed trial knows it was pruned
    assert again.stopped_epoch == 2


def _search(
    cwd: Path, mnist_dir: Path, *overrides: str, name: str = "sweep", background: bool = False, process: bool = False
):
    """A tiny search in-process; as a process with `process`, or started in the background with `background`."""
    args = ["hparams_search=optuna", *TINY, *overrides, f"hydra.sweep.dir={cwd / name}"]
    env = {"MNIST_HYDRA_DATA": str(mnist_dir)}
    if background:
        import os

        return subprocess.Popen(
            [sys.executable, "-m", "mnist_hydra", *args],
            cwd=cwd,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    result = (run_app if process else call_app)(*args, cwd=cwd, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def _job_trials(sweep: Path) -> dict[int, str]:
    """Trial number -> the job directory that ran it, from each job's Hydra record."""
    found = {}
    for job in sweep.iterdir():
        if job.name.isdigit():
            number = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]["sweeper"]["trial"]
            assert number not in found, f"trial {number} ran twice"
            found[number] = str(job)
            assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
    return found


@pytest.mark.slow
def test_two_commands_share_one_sqlite_study_and_a_third_continues_it(tmp_path, mnist_dir):
    """In the default suite: tests/test_shared_study.py's test_commands_sharing_and_continuing_a_study_ask_distinct_
    configurations[sqlite-*] (commands asking in turn, distinct), test_a_command_continues_a_study_whose_command_died_
    to_n_trials_all_distinct[sqlite] (a command continues a study: "N of M trials there already", only what it lacks
    run, all distinct) and the journal's race of two processes."""
    common = [
        "hydra.sweeper.storage=sqlite:///study.db",
        "hydra.sweeper.study_name=shared",
        "hydra.sweeper.n_jobs=1",
        "seed=0",  # both commands on one seed: each still draws its own stream (mnist_hydra.search.shared)
        "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
        "hydra.sweeper.n_trials=3",
    ]
    both = [_search(tmp_path, mnist_dir, *common, name=name, background=True) for name in ("a", "b")]
    for process in both:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, out[-2000:] + err[-3000:]
    ran = [_job_trials(tmp_path / name) for name in ("a", "b")]
    assert ran[0] and ran[1], ran  # each command ran trials of the one study
    assert not set(ran[0]) & set(ran[1])  # no trial ran in both
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path}/study.db")
    numbers = sorted({*ran[0], *ran[1]})
    assert [t.number for t in study.trials] == numbers  # none lost: every trial of the study has its job
    # Each command stops once the study holds n_trials; started at the same moment both may ask the last one.
    assert 3 <= len(numbers) <= 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # The same command again, with one trial more: it runs only the one the study lacks.
    more = _search(
        tmp_path, mnist_dir, *common[:-1], f"hydra.sweeper.n_trials={len(numbers) + 1}", name="c", process=True
    )
    assert list(_job_trials(tmp_path / "c")) == [len(numbers)]
    assert f"{len(numbers)} of {len(numbers) + 1} trials there already" in more.stdout
    results = yaml.safe_load((tmp_path / "c" / "optimization_results.yaml").read_text())
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path}/study.db")
    assert results["best_value"] == study.best_value and results["trials"]["complete"] == len(numbers) + 1
    rates = [t.params["optimizer.lr"] for t in study.trials]
    assert len(set(rates)) == len(rates) == len(numbers) + 1  # every trial its own configuration, none dropped


# A two-point grid that prunes its second trial: seed=1 runs lr=0.01 first (it completes, 3 epochs), then lr=1e-6,
# which after its first epoch is far behind, so the median pruner (1 startup trial) stops it there.
PRUNED_GRID = [
    "seed=1",
    "hydra/sweeper/sampler=grid",
    "optimizer.lr=choice(0.01,0.000001)",
    "hydra.sweeper.n_jobs=1",
    "hydra.sweeper.pruner=median",
    "hydra.sweeper.pruner_startup_trials=1",
    "trainer.epochs=3",
]


def test_pruning_stops_a_trial_that_falls_behind_and_marks_it_everywhere(tmp_path, mnist_dir):
    result = _search(
        tmp_path,
        mnist_dir,
        *PRUNED_GRID,
        "hydra.sweeper.storage=journal:study.journal",
        "logger=mlflow",
    )
    sweep = tmp_path / "sweep"
    first, second = (json.loads((sweep / job / "metrics.json").read_text()) for job in ("0", "1"))
    assert yaml.safe_load((sweep / "0" / ".hydra" / "overrides.yaml").read_text())[0] == "optimizer.lr=0.01"
    assert (first["status"], first["epochs_run"]) == ("completed", 3)
    assert (second["status"], second["pruned_epoch"], second["epochs_run"], second["epochs"]) == ("pruned", 1, 1, 3)
    table = pd.read_csv(sweep / "sweep_results.csv")
    assert dict(zip(table["job"], table["status"], strict=False)) == {0: "completed", 1: "pruned"}
    saved = table.set_index("job").loc[1, "saved_seconds"]
    assert saved == pytest.approx(2 * second["train_seconds"])  # two epochs not run, at its own epoch time
    assert f"pruned: 1 of 2 trials (jobs 1), stopped early; about {saved:.0f} s of training saved" in result.stdout
    assert '<span class="pruned">1 pruned</span>' in (sweep / "report.html").read_text()
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))
    )
    states = [t.state.name for t in optuna.load_study(study_name="mnist_hydra", storage=journal).trials]
    assert states == ["COMPLETE", "PRUNED"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_job = {r.data.tags.get("mnist_hydra.job"): r for r in runs if r.data.tags.get("mnist_hydra.job") is not None}
    assert by_job["1"].info.status == "FINISHED" and by_job["1"].data.tags["mnist_hydra.status"] == "pruned"
    assert "mnist_hydra.status" not in by_job["0"].data.tags
    sweep_run = next(r for r in runs if r.data.tags.get("mnist_hydra.kind") == "sweep")
    assert {k: sweep_run.data.metrics[k] for k in ("jobs", "jobs_completed", "jobs_pruned", "jobs_failed")} == {
        "jobs": 2,
        "jobs_completed": 1,
        "jobs_pruned": 1,
        "jobs_failed": 0,
    }


@pytest.mark.slow  # two joblib workers that each import TensorFlow: about a minute on two cores
def test_a_parallel_launcher_prunes_through_the_storage(tmp_path, mnist_dir):
    # Batches of one trial in a joblib worker: the job reaches its trial through the SQLite study, not the sweeper.
    _search(
        tmp_path,
        mnist_dir,
        *PRUNED_GRID,
        "hydra.sweeper.storage=sqlite:///study.db",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer.threads=1",
        process=True,
    )
    statuses = [json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())["status"] for job in ("0", "1")]
    assert statuses == ["completed", "pruned"]
    study = optuna.load_study(study_name="mnist_hydra", storage=f"sqlite:///{tmp_path}/study.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
