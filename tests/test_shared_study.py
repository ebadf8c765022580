"""A study shared by several commands: distinct configurations, heartbeats, stale trials run again.

In-process on a journal, SQLite and PostgreSQL; two commands at once, one of them SIGKILLed, as processes on a journal."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import wsgiref.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from mnist_hydra.search import shared
from mnist_hydra.search import study as studies
from tests import postgres
from tests.conftest import IN_CI, TINY_SEARCH, call_app, skip_unless_ci

SPACE = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "units": IntDistribution(16, 256)}


KINDS = ["journal", "sqlite", "postgresql"]


@pytest.fixture(scope="module")
def postgresql_server() -> Iterator[str | None]:
    """A PostgreSQL server of the module's own on loopback (Debian's postgresql; .ci/run installs it), or None
    where it is not installed (under CI=true: a failure)."""
    if postgres.bindir() is None:
        if IN_CI:
            pytest.fail(
                f"PostgreSQL is not installed (no {postgres.BINARIES}/*/bin/initdb) (CI=true: nothing may skip)"
            )
        yield None
        return
    with postgres.server() as url:
        yield url


_databases = itertools.count()


def _url(kind: str, folder: Path, server: str | None) -> str:
    """An absolute storage URL of `kind` on a new file in `folder`, or on a new database of `server`."""
    if kind == "journal":
        return f"journal:{folder}/j.log"
    if kind == "sqlite":
        return f"sqlite:///{folder}/s.db"
    if server is None:
        skip_unless_ci(f"PostgreSQL is not installed (no {postgres.BINARIES}/*/bin/initdb): apt-get install postgresql")
    import sqlalchemy

    name = f"study{next(_databases)}"
    engine = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


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


# Each sampler on each file storage; PostgreSQL's server under the default sampler.
@pytest.mark.parametrize(
    "kind,name", [*itertools.product(["journal", "sqlite"], ["tpe", "random", "cmaes"]), ("postgresql", "tpe")]
)
def test_commands_sharing_and_continuing_a_study_ask_distinct_configurations(kind, name, tmp_path, postgresql_server):
    storage = _url(kind, tmp_path, postgresql_server)
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


# The sweeper's space for the app's own runs below: a continuous learning rate, so only two commands drawing one
# stream could repeat a configuration.
APP_SPACE = {"optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True)}
GRACE = 2  # seconds without a heartbeat before a trial is stale (the least allowed with heartbeats each second)


@pytest.fixture(scope="module")
def dead_commands(tmp_path_factory, postgresql_server) -> dict[str, dict[str, Any]]:
    """On a new journal, SQLite file and PostgreSQL database each, studies as a command that died leaves them, and
    what a live command saw while the dead one's heartbeat was fresh; returned once that heartbeat is stale.

    One wait for the grace period serves every study of every kind: "stale" (a batch of two asked and beaten once),
    "app" (one trial in the sweeper's space complete, one beaten once) and "dashboard" (two complete, one beaten
    once). Each kind: {"storage": URL, "asked": the stale study's params, "fresh": what fail_stale and waiting_for
    said before the grace period ended}.
    """
    found: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        if kind == "postgresql" and postgresql_server is None:
            continue
        storage = _url(kind, tmp_path_factory.mktemp(kind), postgresql_server)
        dead = shared.Heartbeat(interval=1, grace_period=GRACE)
        killed = _command(storage, "random", heartbeat=dead)
        trials = shared.ask_distinct(killed, SPACE, 2)  # a batch of two: one started, one asked and waiting
        with dead.beating([t._trial_id for t in trials]):
            pass  # the command beat once, then died
        alive = shared.Heartbeat(interval=1, grace_period=GRACE)
        survivor = _command(storage, "random", seed=5, heartbeat=alive)
        fresh = (alive.fail_stale(survivor), alive.waiting_for(survivor))  # within the grace period: still running

        app = studies.open_study("app", storage, "maximize", heartbeat=dead)
        done, died = shared.ask_distinct(app, APP_SPACE, 2)
        app.tell(done, 0.5)
        with dead.beating([died._trial_id]):
            pass

        dashboard = studies.open_study("dashboard", storage, "maximize", heartbeat=dead)
        three = shared.ask_distinct(dashboard, SPACE, 3)
        with dead.beating([t._trial_id for t in three]):
            for trial in three[:2]:
                dashboard.tell(trial, trial.params["lr"])
        found[kind] = {"storage": storage, "asked": [t.params for t in trials], "fresh": fresh}
    time.sleep(GRACE + 1.5)  # every heartbeat above goes stale
    return found


def _dead(dead_commands: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    if kind not in dead_commands:
        skip_unless_ci(f"PostgreSQL is not installed (no {postgres.BINARIES}/*/bin/initdb): apt-get install postgresql")
    return dead_commands[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_a_stale_trial_is_failed_and_its_configuration_asked_again(dead_commands, kind):
    found = _dead(dead_commands, kind)
    storage = found["storage"]
    assert found["fresh"] == ([], [0, 1])  # while its heartbeat was fresh: running, waited for
    alive = shared.Heartbeat(interval=1, grace_period=GRACE)
    survivor = _command(storage, "random", seed=5, heartbeat=alive)
    assert alive.fail_stale(survivor) == [0, 1]
    assert alive.fail_stale(_command(storage, "random", heartbeat=shared.Heartbeat(1, GRACE))) == []  # failed once
    counts = shared.tally(survivor.get_trials(deepcopy=False))
    assert (counts.stale, counts.waiting, counts.running, counts.counted) == (2, 2, 0, 0)
    again = shared.ask_distinct(survivor, SPACE, 2)
    assert [t.params for t in again] == found["asked"]  # the same configurations, run again
    assert [t.number for t in again] == [2, 3]
    with alive.beating([t._trial_id for t in again]):
        for trial in again:
            survivor.tell(trial, 0.5)
    counts = shared.tally(survivor.get_trials(deepcopy=False))
    assert (counts.complete, counts.stale, counts.counted) == (2, 2, 2)


# The smallest real search (the MLP on 300 images, scored on 100) over a continuous learning rate: a repeated
# configuration can only come from two commands drawing one stream.
SHARED = [
    "hparams_search=optuna",
    *TINY_SEARCH,
    "seed=0",
    "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
    "hydra.sweeper.study_name=shared",
    "hydra.sweeper.heartbeat_interval=1",
]


def _completed_lrs(study: optuna.Study) -> list[float]:
    return [t.params["optimizer.lr"] for t in study.trials if t.state == TrialState.COMPLETE]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])  # the journal's: the killed command's race below
def test_a_command_continues_a_study_whose_command_died_to_n_trials_all_distinct(
    dead_commands, kind, tmp_path, mnist_dir
):
    storage = _dead(dead_commands, kind)["storage"]
    result = call_app(
        *SHARED,
        "hydra.sweeper.study_name=app",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.grace_period={GRACE}",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert f"trial(s) 1 had no heartbeat for {GRACE} s (their command stopped): failed, and queued to run again" in out
    assert "1 of 3 trials there already" in out  # the complete one; the stale one is run again, not counted
    assert "2 trial(s) run here" in out and "the study has 3 complete, 0 pruned, 0 failed, 1 stale (run again)" in out
    study = optuna.load_study(study_name="app", storage=storage)
    (stale,) = [t for t in study.trials if t.state == TrialState.FAIL]
    (rerun,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == stale.number]
    assert rerun.params == stale.params and rerun.state == TrialState.COMPLETE
    ran = {
        yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]["sweeper"]["trial"]
        for job in (tmp_path / "sweep").iterdir()
        if job.name.isdigit()
    }
    assert ran == {rerun.number, 3}  # the stale configuration and one new trial, each in a job of its own
    done = _completed_lrs(study)
    assert len(done) == 3 and len(set(done)) == 3, done
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_value"] == study.best_value and results["trials"]["complete"] == 3


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

# Heartbeats each second, stale after 4 s: a live command's beat is not late by that much on a busy machine.
RACE = [*SHARED, "hydra.sweeper.grace_period=4"]


def _start(cwd: Path, mnist_dir: Path, name: str, *overrides: str) -> subprocess.Popen:
    inherited = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env = {**inherited, "TF_CPP_MIN_LOG_LEVEL": "2", "MNIST_HYDRA_DATA": str(mnist_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_hydra", *RACE, *overrides, f"hydra.sweep.dir={cwd / name}"],
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
    other one completes the study to its 3 trials, all distinct; then (unless not `continued`) a third command,
    in-process, continues it to 4."""
    url = f"hydra.sweeper.storage={storage}"
    doomed = _start(cwd, mnist_dir, "a", url, "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2")
    survivor = _start(cwd, mnist_dir, "b", url, "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1")
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
    assert counts.complete == 3 and counts.stale in (1, 2) and counts.failed == counts.running == 0, counts
    assert "had no heartbeat for 4 s (their command stopped): failed, and queued to run again" in out
    assert f"the study has 3 complete, 0 pruned, 0 failed, {counts.stale} stale (run again)" in out
    stale = [t for t in study.trials if t.state == TrialState.FAIL]
    rerun = {t.system_attrs["failed_trial"]: t for t in study.trials if "failed_trial" in t.system_attrs}
    assert all(rerun[t.number].params == t.params and rerun[t.number].state == TrialState.COMPLETE for t in stale)
    done = _completed_lrs(study)
    assert len(set(done)) == 3, done
    if not continued:
        return
    third = call_app(
        *RACE,
        url,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweep.dir={cwd / 'c'}",
        cwd=cwd,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-3000:]
    assert "3 of 4 trials there already" in third.stdout
    done = _completed_lrs(optuna.load_study(study_name="shared", storage=open_storage()))
    assert len(done) == 4 and len(set(done)) == 4, done


@pytest.mark.slow
def test_a_killed_command_on_a_journal_study_is_recovered_and_every_trial_distinct(tmp_path, mnist_dir):
    """A command killed mid-trial, then two racing on. In the default suite: test_a_stale_trial_is_failed_and_its_
    configuration_asked_again and test_a_command_continues_a_study_whose_command_died_to_n_trials_all_distinct."""
    shared_study_survives_a_kill(
        tmp_path,
        mnist_dir,
        "journal:study.journal",
        lambda: optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(f"{tmp_path}/study.journal")),
    )


@pytest.mark.slow
def test_a_killed_command_on_an_sqlite_study_is_recovered_and_every_trial_distinct(tmp_path, mnist_dir):
    """The journal's race on SQLite. In the default suite: test_a_command_continues_a_study_whose_command_died_to_
    n_trials_all_distinct[sqlite] and test_commands_sharing_and_continuing_a_study_ask_distinct_configurations."""
    shared_study_survives_a_kill(tmp_path, mnist_dir, "sqlite:///study.db", lambda: f"sqlite:///{tmp_path}/study.db")


@pytest.mark.slow
def test_a_killed_command_on_a_postgresql_study_is_recovered_and_every_trial_distinct(
    tmp_path, mnist_dir, postgresql_server
):
    """The journal's race on PostgreSQL. In the default suite: test_a_command_continues_a_study_whose_command_died_
    to_n_trials_all_distinct[postgresql] and test_commands_sharing_and_continuing_a_study_ask_distinct_configurations."""
    storage = _url("postgresql", tmp_path, postgresql_server)
    shared_study_survives_a_kill(tmp_path, mnist_dir, storage, lambda: storage, continued=False)


def _get(app: Any, path: str) -> Any:
    """GET `path` of the WSGI application `app`: its JSON answer."""
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    wsgiref.util.setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status[0].startswith("200"), (path, status, body[:500])
    return json.loads(body)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_optuna_dashboard_reads_our_studies(dead_commands, kind):
    # A study as our commands leave it: beating trials, a stale one run again.
    storage = _dead(dead_commands, kind)["storage"]
    beat = shared.Heartbeat(interval=1, grace_period=GRACE)
    study = studies.open_study("dashboard", storage, "maximize", heartbeat=beat)
    assert beat.fail_stale(study) == [2]
    (again,) = shared.ask_distinct(study, SPACE, 1)
    with beat.beating([again._trial_id]):
        study.tell(again, 0.5)
    # The dashboard's own application over the storage as its command line names it (it tells a journal file
    # from a database URL itself), called as its server would.
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage.removeprefix("journal:"))
    listed = {s["study_name"]: s for s in _get(app, "/api/studies")["study_summaries"]}
    assert set(listed) == {"s", "app", "dashboard"}, kind
    detail = _get(app, f"/api/studies/{listed['dashboard']['study_id']}")
    states = [t["state"] for t in detail["trials"]]
    assert states == ["Complete", "Complete", "Fail", "Complete"], (kind, states)
    params = {t["number"]: {p["name"]: p["param_internal_value"] for p in t["params"]} for t in detail["trials"]}
    assert params[3]["lr"] == params[2]["lr"]  # the stale trial's configuration, run again
