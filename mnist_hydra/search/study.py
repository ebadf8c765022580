"""An Optuna study from plain settings: its storage (in memory, a database URL, a journal file), sampler, pruner.

Every setting is checked, and the storage opened, before any trial starts, so a bad value is one line
(ConfigError) and not a traceback halfway through a search.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mnist_hydra.errors import ConfigError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


class Heartbeat(Protocol):
    """What open_storage reads of a heartbeat and hands it (mnist_hydra.search.shared.Heartbeat is the one): a
    protocol here, so that this module does not import the one that builds on it."""

    interval: int
    grace_period: int
    storage: Any

    def retry(self, study: Any, trial: Any) -> None: ...


JOURNAL = "journal:"
SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "hyperband")
DIRECTIONS = ("maximize", "minimize")
EXPECTED_STORAGE = (
    "null (a study in memory), an SQLAlchemy URL (sqlite:///study.db, postgresql://USER@HOST/DB, "
    "mysql+pymysql://USER@HOST/DB) or journal:PATH (an Optuna journal file)"
)
# Two processes writing one SQLite file wait for each other's lock this long before giving up (SQLite's default: 5 s).
SQLITE_TIMEOUT_S = 60


def check_settings(sampler: str, pruner: str | None, direction: str) -> None:
    """ConfigError for a sampler, pruner or direction that is not one of ours."""
    if sampler not in SAMPLERS:
        raise ConfigError(
            f"hydra.sweeper.sampler.name={sampler} is not a sampler; choose one of: {', '.join(SAMPLERS)}"
        )
    if pruner is not None and pruner not in PRUNERS:
        raise ConfigError(
            f"hydra.sweeper.pruner={pruner} is not a pruner; choose one of: {', '.join(PRUNERS)}, or null (no pruning)"
        )
    if direction not in DIRECTIONS:
        raise ConfigError(f"hydra.sweeper.direction={direction} is not allowed: expected {' or '.join(DIRECTIONS)}")


def storage_url(storage: str | None, base_dir: Path) -> str | None:
    """`storage` with a relative SQLite or journal path made absolute from `base_dir` (the launch directory), so
    that a job in another process or on another node opens the same file; ConfigError when it is no storage."""
    if storage is None:
        return None
    text = str(storage).strip()
    if text.startswith(JOURNAL):
        path = Path(text[len(JOURNAL) :]).expanduser()
        if not str(path) or str(path) == ".":
            raise ConfigError(f"hydra.sweeper.storage={storage} names no file; expected {EXPECTED_STORAGE}")
        return JOURNAL + str(path if path.is_absolute() else Path(base_dir) / path)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError(f"hydra.sweeper.storage={storage} is not a storage: expected {EXPECTED_STORAGE}") from None
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        if not path.is_absolute():
            url = url.set(database=str(Path(base_dir) / path))
    return url.render_as_string(hide_password=False)


def shown(storage: str | None) -> str:
    """`storage` as a message may show it: a database URL's password hidden."""
    if storage is None or storage.startswith(JOURNAL):
        return str(storage)
    from sqlalchemy.engine import make_url

    return make_url(storage).render_as_string(hide_password=True)


def open_storage(storage: str | None, heartbeat: Heartbeat | None = None) -> Any:
    """Optuna's storage for an absolute `storage` (see storage_url): None for a study in memory. With `heartbeat`,
    a database's storage is built with its interval, grace period and stale-trial callback, and the heartbeat
    is given the storage to beat on.

    The database is reached (its tables created) here: an unreachable one, a missing driver or a file that
    is not a database is a ConfigError naming the URL.
    """
    if storage is None:
        return None
    import optuna

    if storage.startswith(JOURNAL):
        path = Path(storage[len(JOURNAL) :])
        if not path.parent.is_dir():
            raise ConfigError(
                f"hydra.sweeper.storage={storage}: the folder {path.parent} does not exist; "
                "create it or choose another journal file"
            )
        from optuna.storages.journal import JournalFileBackend

        try:
            journal = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as err:
            raise ConfigError(
                f"hydra.sweeper.storage={storage}: cannot open the journal file: {err.strerror}"
            ) from None
        if heartbeat is not None:
            heartbeat.storage = journal
        return journal
    from sqlalchemy.engine import make_url

    engine: dict[str, Any] = {}
    if make_url(storage).get_backend_name() == "sqlite":
        engine["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    beat: dict[str, Any] = {}
    if heartbeat is not None:
        beat = {
            "heartbeat_interval": heartbeat.interval,
            "grace_period": heartbeat.grace_period,
            "heartbeat_stale_trial_callback": heartbeat.retry,
        }
    try:
        rdb = _rdb_storage(storage, engine, beat)
    except ImportError as err:  # postgresql:// without psycopg (SQLAlchemy 2.1's default driver for it)
        # Optuna re-raises the driver's ModuleNotFoundError as an ImportError that names no module.
        missing = getattr(err.__cause__, "name", None) or err.name or "its driver"
        raise ConfigError(
            f"hydra.sweeper.storage={shown(storage)}: its database driver is not installed "
            f"({missing}); pip install it, or use sqlite:///study.db"
        ) from None
    except Exception as err:  # SQLAlchemy's OperationalError and kin, Optuna's own for a bad schema
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        raise ConfigError(f"hydra.sweeper.storage={shown(storage)}: cannot open the database: {reason}") from None
    if heartbeat is not None:
        heartbeat.storage = rdb
    return rdb


def _rdb_storage(storage: str, engine: dict[str, Any], beat: dict[str, Any], tries: int = 6) -> Any:
    """Optuna's RDBStorage; tried again when another process is creating the same new database's schema meanwhile
    (two commands started at once on a new SQLite file: "UNIQUE constraint failed: alembic_version.version_num",
    "table ... already exists"), which the second one then finds made."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(tries):
        try:
            with warnings.catch_warnings():  # Optuna calls its heartbeat experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(storage, engine_kwargs=engine, **beat)
        except (IntegrityError, OperationalError) as err:
            racing = isinstance(err, IntegrityError) or "already exists" in str(err) or "locked" in str(err)
            if not racing or attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def make_sampler(name: str, seed: int | None, grid: Mapping[str, Sequence[Any]] | None = None) -> Any:
    """Optuna's sampler `name`, seeded; `grid` is the grid sampler's space (each parameter's values)."""
    import optuna

    if name == "tpe":
        # constant_liar: trials asked side by side (a batch, another process) are told apart, not proposed twice.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return optuna.samplers.GridSampler(dict(grid or {}), seed=seed)
    raise ConfigError(f"hydra.sweeper.sampler.name={name} is not a sampler; choose one of: {', '.join(SAMPLERS)}")


def make_pruner(name: str | None, startup_trials: int, warmup_epochs: int) -> Any:
    """Optuna's pruner `name` (None: never prune); trials are pruned on the epochs they report."""
    import optuna

    if name is None:
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup_epochs))
    raise ConfigError(f"hydra.sweeper.pruner={name} is not a pruner; choose one of: {', '.join(PRUNERS)}, or null")


def open_study(
    study_name: str,
    storage: str | None,
    direction: str,
    sampler: Any = None,
    pruner: Any = None,
    heartbeat: Heartbeat | None = None,
) -> optuna.Study:
    """The study `study_name` in `storage` (absolute, see storage_url), created if new, loaded if it exists;
    `heartbeat` as open_storage takes it."""
    import optuna

    backend = open_storage(storage, heartbeat)
    try:
        return optuna.create_study(
            study_name=study_name,
            storage=backend,
            sampler=sampler,
            pruner=pruner,
            direction=optuna.study.StudyDirection[direction.upper()],
            load_if_exists=True,
        )
    except ValueError as err:  # a stored study that minimizes, asked to maximize
        raise ConfigError(f"hydra.sweeper.study_name={study_name} in {shown(storage)}: {err}") from None


def quiet_optuna(level: int = logging.WARNING) -> None:
    """Optuna's own INFO lines ("A new study created ...", one per trial) left out: the sweeper says what matters."""
    import optuna

    optuna.logging.set_verbosity(level)
