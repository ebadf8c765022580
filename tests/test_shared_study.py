"""A study shared by several commands: distinct configurations, heartbeats, stale trials run again (in-process)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from mnist_hydra.search import shared
from mnist_hydra.search import study as studies
from tests import postgres
from tests.conftest import TINY_SEARCH, skip_unless_ci

SPACE = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "units": IntDistribution(16, 256)}


@pytest.fixture(params=["journal", "sqlite"])
def storage(request, tmp_path) -> str:
    """An absolute storage URL on a new file of either kind."""
    return f"journal:{tmp_path}/j.log" if request.param == "journal" else f"sqlite:///{tmp_path}/s.db"


def _command(storage: str | None, name: str, seed: int | None = 0, heartbeat=None) -> optuna.Study:
    """A study as one command opens it: its own sampler from `seed`, its own storage object."""
    studies.quiet_optuna()
    sampler = shared.CommandSampler(lambda s: studies.make_sampler(name, s), seed)
    return studies.open_study("s", storage, "maximize", sampler, heartbeat=heartbeat)


def _run(study: optuna.Study, count: int) -> list[dict]:
    trials = shared.ask_distinct(study, SPACE, count)
    for trial in trials:
        study.tell(trial, trial.params["lr"])
    return [t.params for t in trials]


@pytest.mark.parametrize("name", ["tpe", "random"])
def test_a_command_alone_draws_its_seeds_own_stream(name):
    plain = optuna.create_study(sampler=studies.make_sampler(name, 3))
    studies.quiet_optuna()
    for _ in range(4):
        trial = plain.ask(SPACE)
        plain.tell(trial, trial.params["lr"])
    assert _run(_command(None, name, seed=3), 4) == [t.params for t in plain.trials]


@pytest.mark.parametrize("name", ["tpe", "random", "cmaes"])
def test_commands_sharing_and_continuing_a_study_ask_distinct_configurations(storage, name):
    first, second = _command(storage, name), _command(storage, name)
    asked = []
    for _ in range(3):  # the two asking in turn, as two commands started together do
        asked += _run(first, 1) + _run(second, 1)
    asked += _run(_command(storage, name), 3)  # a third command continues the study
    keys = {tuple(sorted(p.items())) for p in asked}
    assert len(asked) == 9 and len(keys) == 9
    # Distinct by their own streams: not one repeat had to be dropped (as the same seed's stream would need).
    assert not [t for t in _command(storage, name).trials if shared.DUPLICATE in t.user_attrs]


def test_a_repeated_configuration_is_dropped_and_a_full_space_asks_nothing(tmp_path):
    space = {"batch": CategoricalDistribution([32, 64, 128])}
    study = _command(f"journal:{tmp_path}/j.log", "random", seed=1)
    asked = []
    for _ in range(3):
        trials = shared.ask_distinct(study, space, 1)
        assert len(trials) == 1
        study.tell(trials[0], 0.5)
        asked.append(trials[0].params["batch"])
    assert sorted(asked) == [32, 64, 128]
    assert shared.ask_distinct(study, space, 1) == []  # every configuration is in the study
    dropped = [t for t in study.trials if shared.DUPLICATE in t.user_attrs]
    assert all(t.state == TrialState.FAIL for t in dropped)  # a random sampler repeats itself on three values
    counts = shared.tally(study.trials)
    assert (counts.complete, counts.failed, counts.not_counted, counts.counted) == (3, 0, len(dropped), 3)


def test_a_configuration_another_command_holds_is_dropped_unrun(tmp_path):
    # Two samplers on one seed, as every command had: the second proposes the first's configuration, and yields.
    space = {"batch": CategoricalDistribution([16, 32, 64, 128, 256])}
    storage = f"journal:{tmp_path}/j.log"
    first, second = (studies.open_study("s", storage, "maximize", studies.make_sampler("random", 0)) for _ in range(2))
    kept = shared.ask_distinct(first, space, 1) + shared.ask_distinct(second, space, 1)
    assert [t.number for t in kept][0] == 0 and kept[1].params != kept[0].params
    repeat = second.trials[1]
    assert (repeat.state, repeat.user_attrs[shared.DUPLICATE]) == (TrialState.FAIL, 0)
    assert repeat.params == kept[0].params


def test_a_stale_trial_is_failed_and_its_configuration_asked_again(storage):
    dead = shared.Heartbeat(interval=1, grace_period=2)
    killed = _command(storage, "random", heartbeat=dead)
    trials = shared.ask_distinct(killed, SPACE, 2)  # a batch of two: one started, one asked and waiting
    with dead.beating([t._trial_id for t in trials]):
        pass  # the command beat once, then died
    alive = shared.Heartbeat(interval=1, grace_period=2)
    survivor = _command(storage, "random", seed=5, heartbeat=alive)
    assert alive.fail_stale(survivor) == []  # within the grace period: still running
    assert alive.waiting_for(survivor) == [0, 1]
    time.sleep(3.5)
    assert alive.fail_stale(survivor) == [0, 1]
    assert alive.fail_stale(_command(storage, "random", heartbeat=shared.Heartbeat(1, 2))) == []  # failed once
    counts = shared.tally(survivor.get_trials(deepcopy=False))
    assert (counts.stale, counts.waiting, counts.running, counts.counted) == (2, 2, 0, 0)
    again = shared.ask_distinct(survivor, SPACE, 2)
    assert [t.params for t in again] == [t.params for t in trials]  # the same configurations, run again
    assert [t.number for t in again] == [2, 3]
    with alive.beating([t._trial_id for t in again]):
        for trial in again:
            survivor.tell(trial, 0.5)
    counts = shared.tally(survivor.get_trials(deepcopy=False))
    assert (counts.complete, counts.stale, counts.counted) == (2, 2, 2)


def test_a_stale_trial_of_a_full_space_is_still_run_again(tmp_path):
    space = {"batch": CategoricalDistribution([32])}  # one configuration: the stale trial's
    storage = f"journal:{tmp_path}/j.log"
    dead = shared.Heartbeat(interval=1, grace_period=2)
    killed = _command(storage, "random", heartbeat=dead)
    (trial,) = shared.ask_distinct(killed, space, 1)
    dead.storage.set_trial_system_attr(trial._trial_id, shared.HEARTBEAT, time.time() - 60)  # its last beat
    alive = shared.Heartbeat(interval=1, grace_period=2)
    survivor = _command(storage, "random", heartbeat=alive)
    assert alive.fail_stale(survivor) == [0]
    (again,) = shared.ask_distinct(survivor, space, 1)
    assert (again.number, again.params) == (1, {"batch": 32})
    survivor.tell(again, 1.0)
    assert shared.ask_distinct(survivor, space, 1) == []


def test_heartbeat_settings_are_checked():
    from hydra_plugins.mnist_hydra_plugins._search import Search

    class Sampler:
        name, seed = "tpe", 0

    settings = {
        "sampler": Sampler(),
        "direction": "maximize",
        "n_trials": 2,
        "n_jobs": 1,
        "max_failure_rate": 0.0,
        "storage": None,
        "study_name": "s",
        "pruner": None,
        "pruner_startup_trials": 0,
        "pruner_warmup_epochs": 0,
        "params": None,
        "base_dir": ".",
        "in_process": True,
        "launcher_name": "basic",
    }
    from mnist_hydra.errors import ConfigError

    with pytest.raises(ConfigError, match=r"grace_period=10 is not allowed: .* > hydra.sweeper.heartbeat_interval=10"):
        Search(**settings, heartbeat_interval=10, grace_period=10)
    with pytest.raises(ConfigError, match=r"heartbeat_interval=0 is not allowed"):
        Search(**settings, heartbeat_interval=0, grace_period=10)


# --- Commands at once on one study (subprocesses: only processes race, and only a process can be killed) ---

# The smallest real search (the MLP on 300 images, scored on 100) over a continuous learning rate: a repeated
# configuration can only come from two commands drawing one stream. Heartbeats each second, stale after 4 s.
SHARED = [
    "hparams_search=optuna",
    *TINY_SEARCH,
    "seed=0",
    "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
    "hydra.sweeper.study_name=shared",
    "hydra.sweeper.heartbeat_interval=1",
    "hydra.sweeper.grace_period=4",
]


def _start(cwd: Path, mnist_dir: Path, name: str, *overrides: str) -> subprocess.Popen:
    inherited = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env = {**inherited, "TF_CPP_MIN_LOG_LEVEL": "2", "MNIST_HYDRA_DATA": str(mnist_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_hydra", *SHARED, *overrides, f"hydra.sweep.dir={cwd / name}"],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=400)
    assert process.returncode == 0, out[-4000:]
    return out


def _kill_in_its_first_trial(process: subprocess.Popen, sweep: Path) -> None:
    """SIGKILL `process` once its first job is under way (its directory made, its metrics not yet written)."""
    deadline = time.monotonic() + 300
    while not (sweep / "0" / ".hydra" / "overrides.yaml").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "the command ended before its first job"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (sweep / "0" / "metrics.json").exists(), "the first trial ended before the kill"


def shared_study_survives_a_kill(
    cwd: Path, mnist_dir: Path, storage: str, open_storage: Any, continued: bool = True
) -> None:
    """Two commands at once on `storage` (one asks two trials a batch), the batch of two killed mid-trial, the
    other one completes the study, a third continues it (unless not `continued`): n_trials complete trials each
    time, all distinct."""
    url = f"hydra.sweeper.storage={storage}"
    doomed = _start(cwd, mnist_dir, "a", url, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2")
    survivor = _start(cwd, mnist_dir, "b", url, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=1")
    try:
        _kill_in_its_first_trial(doomed, cwd / "a")
        out = _finish(survivor)
    finally:
        for process in (doomed, survivor):
            if process.poll() is None:
                process.kill()
                process.wait()
    study = optuna.load_study(study_name="shared", storage=open_storage())
    counts = shared.tally(study.trials)
    # The killed batch (one trial started, one asked and waiting) is failed as stale and run again here.
    assert counts.complete == 4 and counts.stale in (1, 2) and counts.failed == counts.running == 0, counts
    assert "had no heartbeat for 4 s (their command stopped): failed, and queued to run again" in out
    assert f"the study has 4 complete, 0 pruned, 0 failed, {counts.stale} stale (run again)" in out
    stale = [t for t in study.trials if t.state == TrialState.FAIL]
    rerun = {t.system_attrs["failed_trial"]: t for t in study.trials if "failed_trial" in t.system_attrs}
    assert all(rerun[t.number].params == t.params and rerun[t.number].state == TrialState.COMPLETE for t in stale)
    done = [t.params["optimizer.lr"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(set(done)) == 4, done
    if not continued:
        return
    third = _finish(_start(cwd, mnist_dir, "c", url, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=1"))
    assert "4 of 6 trials there already" in third
    study = optuna.load_study(study_name="shared", storage=open_storage())
    done = [t.params["optimizer.lr"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6 and len(set(done)) == 6, done


def test_a_killed_command_on_a_journal_study_is_recovered_and_every_trial_distinct(tmp_path, mnist_dir):
    shared_study_survives_a_kill(
        tmp_path,
        mnist_dir,
        "journal:study.journal",
        lambda: optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(f"{tmp_path}/study.journal")),
    )


@pytest.mark.slow  # the journal and PostgreSQL cases run by default; SQLite's two at once: tests/test_search.py
def test_a_killed_command_on_an_sqlite_study_is_recovered_and_every_trial_distinct(tmp_path, mnist_dir):
    shared_study_survives_a_kill(tmp_path, mnist_dir, "sqlite:///study.db", lambda: f"sqlite:///{tmp_path}/study.db")


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    """A PostgreSQL server of the test's own on loopback (Debian's postgresql; .ci/run installs it)."""
    if postgres.bindir() is None:
        skip_unless_ci(f"PostgreSQL is not installed (no {postgres.BINARIES}/*/bin/initdb): apt-get install postgresql")
    with postgres.server() as url:
        yield url


def test_a_killed_command_on_a_postgresql_study_is_recovered_and_every_trial_distinct(
    tmp_path, mnist_dir, postgresql_url
):
    shared_study_survives_a_kill(tmp_path, mnist_dir, postgresql_url, lambda: postgresql_url, continued=False)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_optuna_dashboard_reads_our_studies(tmp_path):
    # A journal and an SQLite study as our commands leave them: beating trials, a stale one run again, a repeat dropped.
    storages = {"journal": f"journal:{tmp_path}/study.journal", "sqlite": f"sqlite:///{tmp_path}/study.db"}
    for storage in storages.values():
        beat = shared.Heartbeat(interval=1, grace_period=2)
        study = _command(storage, "random", heartbeat=beat)
        trials = shared.ask_distinct(study, SPACE, 3)
        with beat.beating([t._trial_id for t in trials]):
            for trial in trials[:2]:
                study.tell(trial, trial.params["lr"])
    time.sleep(3)  # the third trial's command "died": its heartbeat goes stale
    for storage in storages.values():
        beat = shared.Heartbeat(interval=1, grace_period=2)
        study = _command(storage, "random", heartbeat=beat)
        assert beat.fail_stale(study) == [2]
        (again,) = shared.ask_distinct(study, SPACE, 1)
        with beat.beating([again._trial_id]):
            study.tell(again, 0.5)
    # The dashboard's own command line (its console script, from this interpreter's environment).
    entry = next(iter(importlib.metadata.entry_points(group="console_scripts", name="optuna-dashboard")))
    launcher = f"import sys; from {entry.module} import {entry.attr} as main; sys.exit(main())"
    for kind, storage in storages.items():
        port = postgres.free_port()
        where = storage.removeprefix("journal:")  # the dashboard tells a journal file from a database URL itself
        server = subprocess.Popen(
            [sys.executable, "-c", launcher, where, "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    listed = _get(f"{base}/api/studies")["study_summaries"]
                    break
                except OSError:
                    assert server.poll() is None, server.stderr.read() if server.stderr else ""
                    assert time.monotonic() < deadline, f"optuna-dashboard did not answer on {base}"
                    time.sleep(0.2)
            assert [s["study_name"] for s in listed] == ["s"], kind
            detail = _get(f"{base}/api/studies/{listed[0]['study_id']}")
            states = [t["state"] for t in detail["trials"]]
            assert states == ["Complete", "Complete", "Fail", "Complete"], (kind, states)
            params = {
                t["number"]: {p["name"]: p["param_internal_value"] for p in t["params"]} for t in detail["trials"]
            }
            assert params[3]["lr"] == params[2]["lr"]  # the stale trial's configuration, run again
        finally:
            server.terminate()
            server.wait(timeout=30)
