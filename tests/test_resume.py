"""Checkpoints and resume: runs and sweeps stopped by SIGINT and SIGTERM mid-epoch or at an epoch's end, then
resumed (a SIGKILL's: tests/test_crashes.py).

A resumed run must end with exactly the figures of a run that was never stopped: same seed, same
batches in the same order, same optimizer state. The stops are signals raised in this process at a chosen
step (conftest.signal_at_step); the sweep's is a signal from outside, to a process paused after a chosen epoch.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import call_app, paused_at, snapshot, start_paused

# Two epochs of 5 steps on 300 images, one step per execution so that a stop can land on any step; validated
# on 600, scored on 100.
RUN = [
    "model=mlp",
    "data.train_limit=300",
    "data.val_split=0.01",
    "data.test_limit=100",
    "trainer.epochs=2",
    "trainer.steps_per_execution=1",
]


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _assert_same_run(resumed: dict, reference: dict) -> None:
    assert resumed["status"] == "completed"
    for key in ("test_accuracy", "test_loss", "val_accuracy", "epochs_run", "confusion_matrix"):
        assert resumed[key] == reference[key], key
    assert resumed["history"] == reference["history"]  # every epoch's figures, bit for bit


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_dir) -> tuple[Path, dict]:
    """The same run, never stopped: its directory and metrics."""
    cwd = tmp_path_factory.mktemp("reference")
    result = call_app(*RUN, f"hydra.run.dir={cwd}/run", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run", _metrics(cwd / "run")


@pytest.mark.parametrize(
    "sig, code, epoch, step, kept",
    [
        (signal.SIGINT, 130, 2, 2, 1),  # mid-epoch: epoch 1's checkpoint stays, epoch 2 is dropped
        (signal.SIGTERM, 143, 1, 5, 0),  # on an epoch's last step: that epoch is dropped too, nothing is kept
    ],
    ids=["ctrl-c mid-epoch", "sigterm at an epoch's end"],
)
def test_a_stopped_run_resumes_to_the_same_figures(
    sig, code, epoch, step, kept, reference, tmp_path, mnist_dir, signal_at_step
):
    run = tmp_path / "run"
    signal_at_step(sig, epoch, step)
    stopped = call_app(*RUN, f"hydra.run.dir={run}", cwd=tmp_path)
    assert stopped.returncode == code, stopped.stderr
    name = signal.Signals(sig).name
    # A clean stop: recorded, and the way on is printed.
    record = _metrics(run)
    assert (record["status"], record["signal"], record["epochs_run"]) == ("interrupted", name, kept)
    assert stopped.stderr.splitlines() == [
        f"mnist_hydra: {name} stopped training after {kept} of 2 epochs; the checkpoint is kept. "
        f"Resume with: python -m mnist_hydra resume={run}"
    ]
    assert not (run / "model.keras").exists()
    # The cut epoch shows as dropped, in the log and in what the command printed, never with figures.
    log = (run / "train.log").read_text()
    assert f"epoch {epoch}/2 dropped" in log and f"epoch {epoch}/2:" not in log
    assert f"epoch {epoch}/2 dropped: training stopped before it ended" in stopped.stdout
    assert f"epoch {epoch}/2:" not in stopped.stdout
    if kept:
        pointer = json.loads((run / "checkpoints" / "checkpoint.json").read_text())
        assert pointer["epoch"] == kept and (run / "checkpoints" / pointer["file"]).is_file()
    else:
        assert not (run / "checkpoints" / "checkpoint.json").exists()

    resumed = call_app(f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(_metrics(run), reference[1])
    log = (run / "train.log").read_text()
    assert (f"resuming after epoch {kept} of 2" if kept else "starting from the first epoch") in log
    assert not (run / "checkpoints").exists()  # model.keras holds the final model
    # The first start's config stays where Hydra put it; the resume's goes beside it.
    assert (run / ".hydra" / "config.yaml").is_file()
    assert len(list((run / ".hydra").glob("resumed-*/config.yaml"))) == 1


def test_a_sweep_stopped_mid_job_resumes_its_unfinished_jobs(reference, tmp_path, mnist_dir, signal_at_step):
    """SIGTERM in this process, in job 1's second epoch; the resumed sweep skips job 0 and ends job 1 as if never
    stopped. (A real signal from outside to the process, with a failed job and one never started: the slow
    test_sweep_stopped_by_sigterm_resumes_its_unfinished_jobs.)"""
    sweep = tmp_path / "sweep"
    signal_at_step(signal.SIGTERM, 2, 2, fit=2)
    # Job 1 (seed 0) is the reference's config, so its resumed figures can be compared with it.
    stopped = call_app("-m", *RUN, "seed=1,0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert stopped.returncode == 143, stopped.stderr
    assert f"Resume with: python -m mnist_hydra resume={sweep}" in stopped.stderr
    assert [_metrics(sweep / job)["status"] for job in "01"] == ["completed", "interrupted"]
    assert _metrics(sweep / "1")["epochs_run"] == 1
    first_job = (sweep / "0" / "metrics.json").stat().st_mtime_ns

    resumed = call_app(f"resume={sweep}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == first_job  # complete: skipped
    assert "resuming after epoch 1 of 2" in (sweep / "1" / "train.log").read_text()
    _assert_same_run(_metrics(sweep / "1"), reference[1])  # the resumed job ends as if never stopped
    table = pd.read_csv(sweep / "sweep_results.csv").set_index("job")
    assert sorted(table.index) == [0, 1] and table.loc[1, "test_accuracy"] == reference[1]["test_accuracy"]


@pytest.mark.slow
def test_sweep_stopped_by_sigterm_resumes_its_unfinished_jobs(reference, tmp_path, mnist_dir):
    """A real SIGTERM from outside, to the process, between job 2's first and second epoch. In the default suite:
    test_a_sweep_stopped_mid_job_resumes_its_unfinished_jobs, the same sweep stopped in this process."""
    sweep = tmp_path / "sweep"
    # Job 0 completes, job 1 diverges (a failed job: the sweep goes on), job 2 is stopped, job 3 never starts.
    # Job 2 (seed 0, lr 1e-3) is the reference's config, so its resumed figures can be compared with it.
    args = ["-m", *RUN, "seed=1,0", "optimizer.lr=1e-3,1e6", f"hydra.sweep.dir={sweep}"]
    proc = start_paused(args, sweep / "2", 1, tmp_path, {"MNIST_HYDRA_DATA": str(mnist_dir)})
    try:
        paused_at(proc, sweep / "2", 1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert f"Resume with: python -m mnist_hydra resume={sweep}" in err
    assert [_metrics(sweep / job)["status"] for job in "012"] == ["completed", "failed", "interrupted"]
    assert _metrics(sweep / "2")["epochs_run"] == 1
    assert not (sweep / "3").exists()
    first_job = (sweep / "0" / "metrics.json").stat().st_mtime_ns

    resumed = call_app(f"resume={sweep}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == first_job  # complete: skipped
    assert [_metrics(sweep / job)["status"] for job in "0123"] == ["completed", "failed", "completed", "failed"]
    assert "resuming after epoch 1 of 2" in (sweep / "2" / "train.log").read_text()
    _assert_same_run(_metrics(sweep / "2"), reference[1])  # the resumed job ends as if never stopped
    table = pd.read_csv(sweep / "sweep_results.csv").set_index("job")
    assert sorted(table.index) == [0, 1, 2, 3] and "resume" not in table.columns
    assert table.loc[2, "val_accuracy"] == reference[1]["val_accuracy"]
    assert table.loc[2, "test_accuracy"] == reference[1]["test_accuracy"]


# A run that exercises everything a resume must restore: batch norm statistics, dropout, the random
# augmentation layers' seed state, AdamW's moments, the cosine schedule's step, and multi-step executions
# (8 steps an epoch: trainer.steps_per_execution=6 becomes 4, so each epoch is 2 calls of 4 steps).
DEEP_RUN = [
    "model=cnn_deep",
    "model.filters=[8,16]",
    "model.convs_per_block=1",
    "model.dense_units=32",
    "augment=digits",
    "optimizer=adamw",
    "optimizer.schedule=cosine",
    "optimizer.warmup_fraction=0.1",
    "trainer.epochs=2",
    "trainer.batch_size=32",
    "trainer.steps_per_execution=6",
    "trainer.verbose=0",
    "data.train_limit=256",
    "data.val_split=0.01",
    "data.test_limit=100",
    "trainer.fused_adam=true",
]


def _final_weights(run: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(run / "model.keras").get_weights()


def test_deep_augmented_cosine_fused_adamw_run_stopped_by_sigterm_resumes_to_the_same_weights(
    tmp_path, mnist_dir, signal_at_step
):
    never_stopped = tmp_path / "reference"
    result = call_app(*DEEP_RUN, f"hydra.run.dir={never_stopped}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "steps per execution: 4 (trainer.steps_per_execution=6; a divisor of the 8 steps an epoch)"
        in (never_stopped / "train.log").read_text()
    )

    run = tmp_path / "run"
    signal_at_step(signal.SIGTERM, 2, 4)  # after epoch 2's first execution
    stopped = call_app(*DEEP_RUN, f"hydra.run.dir={run}", cwd=tmp_path)
    assert stopped.returncode == 143, stopped.stderr  # 128 + SIGTERM, on a single run as on a sweep
    record = _metrics(run)
    assert record["status"] == "interrupted" and record["signal"] == "SIGTERM" and record["epochs_run"] == 1
    assert "mnist_hydra: SIGTERM stopped training after 1 of 2 epochs" in stopped.stderr
    assert not (run / "model.keras").exists()

    resumed = call_app(f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1 of 2" in (run / "train.log").read_text()
    _assert_same_run(_metrics(run), _metrics(never_stopped))
    final, expected = _final_weights(run), _final_weights(never_stopped)
    assert len(final) == len(expected) and all(np.array_equal(a, b) for a, b in zip(final, expected, strict=False))
    digests = [re.findall(r"final weights: sha256 (\w+)", (d / "train.log").read_text()) for d in (run, never_stopped)]
    assert digests[0] == digests[1] and len(digests[0]) == 1


@pytest.mark.parametrize(
    "limit, steps, expected",
    [
        (32, 844, 4),  # the reference run: 54,000 images at batch 64
        (32, 79, 1),  # a prime: one step per call
        (32, 16, 16),  # a whole epoch in one call
        (6, 16, 4),
        (32, 64, 32),
        (1, 844, 1),
        (100, 5, 5),
    ],
)
def test_steps_per_execution_is_the_largest_divisor_of_an_epoch_up_to_the_limit(limit, steps, expected):
    from mnist_hydra.training.build import steps_per_execution

    assert steps_per_execution(limit, steps) == expected


def test_diverging_loss_ends_the_run_with_one_line_and_a_record(tmp_path, mnist_dir):
    result = call_app(*RUN, "optimizer.lr=1e6", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("mnist_hydra: error:")]
    assert len(errors) == 1 and "training diverged at epoch 1" in errors[0] and "optimizer.lr" in errors[0]
    assert "Traceback" not in result.stderr
    record = _metrics(tmp_path / "run")
    assert record["status"] == "failed" and "diverged" in record["error"]
    assert not (tmp_path / "run" / "model.keras").exists()


def test_resuming_a_complete_run_trains_nothing(reference, tmp_path):
    run = reference[0]
    before = (run / "metrics.json").read_bytes()
    again = call_app(f"resume={run}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (run / "metrics.json").read_bytes() == before
    assert f"{run} is complete already: nothing to resume" in again.stdout
    assert f"run directory: {run}" in again.stdout


@pytest.mark.parametrize(
    "target, extra, expected",
    [
        ("nowhere", [], "resume=nowhere is not a run directory"),
        ("run", ["trainer.epochs=5"], "resume=run continues with the config saved there: drop trainer.epochs=5"),
    ],
)
def test_resume_mistakes_are_one_line_and_create_nothing(target, extra, expected, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = call_app(f"resume={target}", *extra, cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("mnist_hydra: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def _search_dir(folder: Path, storage: str | None) -> None:
    """What a finished Optuna search leaves: job directories, its sweep files, and no multirun.yaml."""
    for job in ("0", "1"):
        (folder / job / ".hydra").mkdir(parents=True)
        (folder / job / ".hydra" / "config.yaml").write_text("seed: 0\n")
        (folder / job / ".hydra" / "overrides.yaml").write_text("- optimizer.lr=0.01\n")
        sweeper = {"storage": storage, "study_name": "cnn-lr", "n_trials": 2}
        (folder / job / ".hydra" / "hydra.yaml").write_text(
            json.dumps({"hydra": {"sweeper": sweeper, "mode": "MULTIRUN"}})
        )
        (folder / job / "metrics.json").write_text('{"status": "completed", "val_accuracy": 0.9}')
    (folder / "report.html").write_text("<title>Sweep search - mnist_hydra</title>")
    (folder / "optimization_results.yaml").write_text("best_value: 0.9\n")


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["resume=search"],
            "resume=search is a search's sweep directory (its job directories, no multirun.yaml): a search "
            "continues from its study, not from a directory; start the search's command again with "
            "hydra.sweeper.storage=sqlite:///study.db hydra.sweeper.study_name=cnn-lr",
        ),
        (["-m", "resume=search"], "resume=search is a search's sweep directory"),
        (["resume=memory"], "its study was kept in memory only (no hydra.sweeper.storage), so it cannot be continued"),
        (["hydra.run.dir=search"], "hydra.run.dir=search holds a sweep; a run never writes into a sweep's directory"),
        (["hydra.run.dir=grid"], "hydra.run.dir=grid holds a sweep; a run never writes into a sweep's directory"),
        (["-m", "resume=run"], "resume=run is a run's directory, not a sweep's: drop --multirun"),
        (["--multirun", "hydra.sweep.dir=run", "seed=1,2"], "hydra.sweep.dir=run holds a run; a sweep never writes"),
        (["-m", "hydra.sweep.dir=search/1", "seed=1,2"], "hydra.sweep.dir=search/1 holds a run"),
        (["hydra.run.dir=search/2"], "hydra.run.dir=search/2 is inside the sweep directory search"),
        (["hydra.run.dir=grid/0"], "hydra.run.dir=grid/0 is inside the sweep directory grid"),
        (["-m", "hydra.sweep.dir=run/more", "seed=1,2"], "hydra.sweep.dir=run/more is inside the run directory run"),
    ],
)
def test_no_run_writes_into_a_sweep_nor_a_sweep_into_a_run(args, expected, tmp_path):
    """Every way to point a command at an existing directory: resume= with and without -m, hydra.run.dir=,
    hydra.sweep.dir=; refused in one line before anything is written."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run / "metrics.json").write_text('{"status": "completed"}')
    _search_dir(tmp_path / "search", "sqlite:///study.db")
    _search_dir(tmp_path / "memory", None)
    (tmp_path / "grid" / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "grid" / "0" / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (tmp_path / "grid" / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: [seed=1,2]\n")
    before = snapshot(tmp_path)
    result = call_app(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith("mnist_hydra: error: ")
    assert expected in result.stderr, result.stderr
    assert snapshot(tmp_path) == before  # nothing created, changed or removed


def test_checkpoints_keep_the_newest_epoch_and_drop_leftovers(tmp_path):
    import keras

    from mnist_hydra.training.checkpoints import Checkpoints, TrainingState

    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    checkpoints = Checkpoints(tmp_path)
    assert checkpoints.latest() is None
    checkpoints.save(model, TrainingState(1, {"loss": [0.5]}, [1.0]))
    (checkpoints.folder / ".epoch-0002.keras.tmp-dead.keras").write_bytes(b"half")  # a killed writer's file
    checkpoints.save(model, TrainingState(2, {"loss": [0.5, 0.4]}, [1.0, 1.1]))
    assert sorted(p.name for p in checkpoints.folder.iterdir()) == ["checkpoint.json", "epoch-0002.keras"]
    model_file, state = checkpoints.latest()
    assert (model_file.name, state.epoch, state.history, state.epoch_seconds) == (
        "epoch-0002.keras",
        2,
        {"loss": [0.5, 0.4]},
        [1.0, 1.1],
    )
    restored = keras.models.load_model(model_file)
    assert all(np.array_equal(a, b) for a, b in zip(restored.get_weights(), model.get_weights(), strict=False))
    checkpoints.remove()
    assert not checkpoints.folder.exists()


def test_checkpoints_keep_the_random_layers_seed_states(tmp_path):
    import keras

    from mnist_hydra.training.checkpoints import Checkpoints, TrainingState, random_states, restore_random_states

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(4, 4, 1)),
            keras.layers.RandomTranslation(0.2, 0.2, name="shift"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.Dense(2),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4, 4, 1)), np.ones((8, 2)), batch_size=4, epochs=1, verbose=0)
    trained = random_states(model)
    assert sorted(trained) == ["drop", "shift"] and all(s[0][1] > 0 for s in trained.values())
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(model, TrainingState(1, {"loss": [0.5]}, [1.0]))
    model_file, state = checkpoints.latest()
    assert state.random_states == trained
    restored = keras.models.load_model(model_file)
    assert random_states(restored) != trained  # Keras's own file leaves them out...
    restore_random_states(restored, state.random_states)
    assert random_states(restored) == trained  # ...the checkpoint puts them back


def test_a_broken_pointer_says_how_to_start_over(tmp_path):
    from mnist_hydra.errors import UserError
    from mnist_hydra.training.checkpoints import Checkpoints

    checkpoints = Checkpoints(tmp_path)
    checkpoints.folder.mkdir()
    (checkpoints.folder / "checkpoint.json").write_text(
        '{"file": "epoch-0003.keras", "epoch": 3, "history": {}, "epoch_seconds": []}'
    )
    with pytest.raises(UserError, match="epoch-0003.keras, which is missing; delete"):
        checkpoints.latest()


def test_each_epochs_order_depends_on_the_seed_and_epoch_alone():
    from mnist_hydra.data.pipeline import make_training_dataset

    images = np.arange(10 * 28 * 28, dtype=np.uint8).reshape(10, 28, 28)
    labels = np.arange(10, dtype=np.uint8)

    def epochs(seed, first, last):
        batches = [y.numpy().tolist() for _, y in make_training_dataset(images, labels, 4, seed, first, last)]
        return [sum(batches[i : i + 3], []) for i in range(0, len(batches), 3)]  # 3 batches an epoch

    whole = epochs(0, 0, 3)
    assert epochs(0, 1, 3) == whole[1:]  # a resumed run sees the epochs it missed, as they were
    assert all(sorted(order) == list(range(10)) for order in whole)  # every image once an epoch
    assert whole[0] != whole[1] and epochs(1, 0, 1)[0] != whole[0]
