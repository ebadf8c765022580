"""Typed config: the trainer and top-level schemas, their ConfigStore entries, and validation.

Each data set, model and optimizer declares its own schema where its builder lives and
registers both under one name; `store_schemas` files every schema under `schema/<group>/<name>`,
which the YAML options in conf/ name in their defaults lists. This is the one library module that
knows OmegaConf (and Hydra's ConfigStore): everything after `validate` takes plain dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError

from mnist_hydra.data.datasets import DATASETS
from mnist_hydra.errors import ConfigError, FieldError, one_line, require
from mnist_hydra.models.augment import AugmentConfig
from mnist_hydra.models.networks import MODELS, check_fits
from mnist_hydra.models.optimizers import OPTIMIZERS
from mnist_hydra.plugins import load_plugins
from mnist_hydra.registry import Registry
from mnist_hydra.tracking.loggers import LOGGERS

STRATEGIES = ("default", "mirrored", "multi_worker")
MAX_SEED = 2**32 - 1
# TensorFlow takes sizes, counts and thread numbers as 32-bit integers; a larger one fails deep inside it.
MAX_INT = 2**31 - 1
# More threads than any CPU has cores; each costs its stack (about 90 KB here), so a million are a SIGKILL.
MAX_THREADS = 4096
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
KEEPS = ("last", "best")
MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss")  # the per-epoch figures Keras reports
MODES = ("auto", "min", "max")
STOP_AT_FIGURES = {"val_accuracy": "max", "val_loss": "min"}  # trainer.stop_at: validation figures only, never test


@dataclass
class EarlyStoppingConfig:
    """Stop when a per-epoch figure has not improved for `patience` epochs in a row."""

    patience: int | None = None  # epochs in a row without improvement that end training; null = never stop early
    monitor: str = "val_accuracy"  # the figure watched (also the one trainer.keep=best goes by): val_accuracy, val_loss, accuracy, loss
    min_delta: float = 0.0  # the least change of the monitored figure that counts as an improvement
    mode: str = "auto"  # min, max, or auto: max for an accuracy, min for a loss

    def check(self) -> None:
        require(
            self.patience is None or self.patience >= 0,
            "patience",
            self.patience,
            "null (off) or a number of epochs >= 0",
        )
        require(self.monitor in MONITORS, "monitor", self.monitor, f"one of {', '.join(MONITORS)}")
        require(self.min_delta >= 0, "min_delta", self.min_delta, "a number >= 0")
        require(self.mode in MODES, "mode", self.mode, f"one of {', '.join(MODES)}")

    @property
    def direction(self) -> str:
        """min or max: `mode`, or for auto, max for an accuracy and min for a loss (as Keras decides)."""
        if self.mode != "auto":
            return self.mode
        return "max" if "acc" in self.monitor else "min"


@dataclass
class TrainerConfig:
    """How the network is fitted."""

    name: str = "default"  # preset name, kept for the record
    # Passes over the training set; a fraction counts steps (0.8 = 80% of one epoch's steps, 2.5 = two and a half
    # epochs): the schedule spans exactly those steps. Any: an integer stays an integer (OmegaConf has no int|float).
    epochs: Any = 10
    batch_size: int = 64  # images per gradient step
    verbose: int | None = (
        None  # Keras's output: 0 none, 1 progress bar, 2 its line per epoch; null = 1 on a terminal, else 0 (our log line is the epoch's one line)
    )
    deterministic: bool = True  # TensorFlow op determinism: same seed, same figures
    threads: int | None = None  # TensorFlow intra- and inter-op threads; null = all cores
    # Ops run side by side, each still using `threads`; null = 1 under strategy=default, else as threads.
    inter_op_threads: int | None = None
    strategy: str = "default"  # tf.distribute: default (one device), mirrored (local devices), multi_worker (TF_CONFIG)
    # float32; mixed_bfloat16 (CPUs with bf16, recent GPUs) or mixed_float16 (GPUs): float32 weights and output
    # layer; auto: mixed_bfloat16 where the CPU or GPU computes in bf16, float32 elsewhere
    precision: str = "float32"
    # Steps per call into TensorFlow, fewer Python round trips; the largest divisor of an epoch's steps up to this.
    steps_per_execution: int = 32
    eval_batch_size: int | None = None  # images per validation/test batch (no gradients); null = batch_size
    # Adam/AdamW's weight update in TensorFlow's one-pass kernel: faster, but not bit for bit Keras's own step.
    fused_adam: bool = False
    # Off until early_stopping.patience is set (trainer.early_stopping.patience=2); null = off as well.
    early_stopping: EarlyStoppingConfig | None = field(default_factory=EarlyStoppingConfig)
    keep: str = (
        "last"  # the weights scored and saved: last (the last epoch's), or best (the best early_stopping.monitor)
    )
    # FIGURE:TARGET, e.g. val_accuracy:0.99 or val_loss:0.05: stop after the first epoch whose validation figure
    # reaches the target (metrics.json records the epoch and the seconds it took); null = train every epoch.
    stop_at: str | None = None

    def check(self) -> None:
        if not isinstance(self.epochs, (int, float)) or isinstance(self.epochs, bool):
            # The schema's type is Any (an integer stays an integer), so OmegaConf does not check it: said here
            # as OmegaConf would say it.
            shown = (
                "null"
                if self.epochs is None
                else str(self.epochs).lower()
                if self.epochs in (True, False)
                else self.epochs
            )
            raise ConfigError(
                f"trainer.epochs={shown} has the wrong type: expected an integer, or a fraction of epochs that "
                "counts steps (trainer.epochs=0.8)"
            )
        require(
            0 < self.epochs <= MAX_INT,
            "epochs",
            self.epochs,
            "an integer >= 1, or a fraction > 0 that counts steps (trainer.epochs=0.8)",
        )
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        require(self.verbose in (None, 0, 1, 2), "verbose", self.verbose, "null (auto), 0, 1 or 2")
        for key, value, default in (
            ("threads", self.threads, "all cores"),
            ("inter_op_threads", self.inter_op_threads, "auto"),
        ):
            require(
                value is None or 1 <= value <= MAX_THREADS,
                key,
                value,
                f"null ({default}) or a count from 1 to {MAX_THREADS}",
            )
        require(self.strategy in STRATEGIES, "strategy", self.strategy, f"one of {', '.join(STRATEGIES)}")
        require(self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        require(self.steps_per_execution >= 1, "steps_per_execution", self.steps_per_execution, "an integer >= 1")
        require(
            self.eval_batch_size is None or self.eval_batch_size >= 1,
            "eval_batch_size",
            self.eval_batch_size,
            "null (= batch_size) or an integer >= 1",
        )
        require(self.keep in KEEPS, "keep", self.keep, f"one of {', '.join(KEEPS)}")
        parse_stop_at(self.stop_at)
        if self.early_stopping is not None:
            try:
                self.early_stopping.check()
            except FieldError as err:
                err.key = f"early_stopping.{err.key}"
                raise

    @property
    def whole_epochs(self) -> int:
        """The epochs Keras runs: `epochs` rounded up (the last one cut short when `epochs` is a fraction)."""
        return math.ceil(float(self.epochs))

    def total_steps(self, steps_per_epoch: int) -> int:
        """The run's gradient steps: `epochs` x `steps_per_epoch`, rounded, and at least one."""
        return max(1, round(float(self.epochs) * steps_per_epoch))

    @property
    def target(self) -> tuple[str, str, float] | None:
        """stop_at as (figure, min|max, target value), or None when off."""
        return parse_stop_at(self.stop_at)

    @property
    def stopping(self) -> EarlyStoppingConfig | None:
        """The early-stopping settings when early stopping is on, else None."""
        on = self.early_stopping is not None and self.early_stopping.patience is not None
        return self.early_stopping if on else None

    @property
    def best_monitor(self) -> tuple[str, str]:
        """(figure, min|max) by which keep=best picks its epoch: early_stopping's monitor, val_accuracy by default."""
        watch = self.early_stopping or EarlyStoppingConfig()
        return watch.monitor, watch.direction


def parse_stop_at(stop_at: str | None) -> tuple[str, str, float] | None:
    """trainer.stop_at as (figure, min|max, target value), None for null; FieldError for anything but FIGURE:TARGET."""
    if stop_at is None:
        return None
    figure, _, number = str(stop_at).partition(":")
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    require(
        figure in STOP_AT_FIGURES and math.isfinite(value),
        "stop_at",
        stop_at,
        f"FIGURE:TARGET, FIGURE one of {', '.join(STOP_AT_FIGURES)} (validation, never test), e.g. "
        "val_accuracy:0.99; or null",
    )
    if figure == "val_accuracy":
        require(0 < value <= 1, "stop_at", stop_at, "an accuracy in (0, 1] after val_accuracy:, e.g. 0.99")
    else:
        require(value >= 0, "stop_at", stop_at, "a loss >= 0 after val_loss:, e.g. val_loss:0.05")
    return figure, STOP_AT_FIGURES[figure], value


@dataclass
class Config:
    """The composed config: one option from each group plus the run's seed."""

    seed: int = 0  # seeds Python, NumPy, TensorFlow and the validation split
    resume: str | None = None  # a run or sweep directory to continue (mnist_hydra/apps/resume.py)
    init_from: str | None = None  # a finished run whose weights this run starts from (fine-tuning); null = fresh
    plugins: list[str] = field(default_factory=list)  # modules imported before validation: your own builders
    data: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    trainer: Any = MISSING
    # Random changes to the training images (augment=digits, photos); a run saved without the group had none.
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    logger: dict[str, Any] = field(default_factory=dict)  # chosen loggers by name: logger=[tensorboard,mlflow]


# Groups whose `name` picks a registered builder; trainer has a single schema.
REGISTRIES: dict[str, Registry[Callable[..., Any]]] = {"data": DATASETS, "model": MODELS, "optimizer": OPTIMIZERS}


def schema_nodes() -> dict[str, Any]:
    """The typed schemas the YAML defaults lists name, by config path: `config_schema` (the primary config's)
    and `schema/GROUP/NAME` for every registered builder, plugins' included.

    Hydra reads them through the config source in hydra_plugins/mnist_hydra_plugins/schemas.py, on the search
    path of every config composed from mnist_hydra's conf/, not through its ConfigStore: Hydra deep-copies the whole store once
    per config group and call (about 120 times for --help), and a source that only names its schemas costs
    nothing to copy; each node is built when a config is composed with it.
    """
    nodes: dict[str, Any] = {
        "config_schema": Config,
        "schema/trainer/default": TrainerConfig,
        "schema/augment/default": AugmentConfig,
    }
    for group, registry in REGISTRIES.items():
        for name in registry.names():
            nodes[f"schema/{group}/{name}"] = registry.schema(name)
    for name in LOGGERS.names():
        nodes[f"schema/logger/{name}"] = LOGGERS.schema(name)
    return nodes


def store_schemas() -> None:
    """File in Hydra's ConfigStore, as the option itself, each builder that a plugin registered without a YAML
    option in the package's conf/: `model=NAME` picks it with its schema's defaults and no YAML file anywhere.
    (The schemas themselves are served by schema_nodes' config source; imported here: validation needs no Hydra.)
    """
    from importlib import resources

    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    conf = resources.files("mnist_hydra.conf")
    for group, registry in REGISTRIES.items():
        for name in registry.names():
            if not (conf / group / f"{name}.yaml").is_file():
                store.store(group=group, name=name, node=registry.schema(name))
    for name in LOGGERS.names():
        if not (conf / "logger" / f"{name}.yaml").is_file():
            # A list-valued group: each option sits under its own name, logger.NAME.
            store.store(group="logger", name=name, node={name: LOGGERS.schema(name)})


def require_values(cfg: DictConfig, examples: dict[str, str] | None = None) -> None:
    """ConfigError for the first key left `???` (Hydra does not check: hydra #2193), with an example value."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra."))
    if missing:
        example = (examples or {}).get(missing[0], f"{missing[0]}=...")
        raise ConfigError(f"{missing[0]} has no value: set it on the command line, e.g. {example}")


def validate(cfg: DictConfig) -> Config:
    """Check a composed config against its schemas and ranges; return it as typed dataclasses."""
    require_values(cfg)
    load_plugins(cfg.get("plugins") or [])  # before the groups: a plugin registers the builders they name
    known = {f.name for f in dataclasses.fields(Config)} | {"hydra"}
    _reject_unknown_keys("", cfg, known)
    require(
        isinstance(cfg.seed, int) and 0 <= cfg.seed <= MAX_SEED,
        "seed",
        cfg.seed,
        f"an integer from 0 to {MAX_SEED} (NumPy's seeds are 32-bit)",
    )
    groups = {group: typed_group(group, cfg[group]) for group in REGISTRIES}
    groups["trainer"] = _typed(cfg.trainer, TrainerConfig, "trainer")
    shape = groups["data"].declared_shape()
    if shape is not None:  # else the model is checked against the data once it is read
        check_model_fits(groups["model"], shape)
    augment = cfg.get("augment")
    groups["augment"] = AugmentConfig() if augment is None else _typed(augment, AugmentConfig, "augment")
    init_from = cfg.get("init_from")
    require(
        init_from is None or (isinstance(init_from, str) and bool(init_from.strip())),
        "init_from",
        init_from,
        "null, or a finished run's directory, e.g. init_from=outputs/2026-11-24/13-20-02.850171",
    )
    return Config(
        seed=cfg.seed,
        resume=cfg.get("resume"),
        init_from=init_from,
        plugins=list(cfg.get("plugins") or []),
        logger=validate_loggers(cfg.get("logger")),
        **groups,
    )


def check_model_fits(model: Any, shape: tuple[int, int, int]) -> None:
    """FieldError naming the model's key when its network cannot take the data's images of `shape`."""
    try:
        check_fits(model, shape)
    except FieldError as err:
        err.key = f"model.{err.key}"
        raise


def validate_loggers(node: DictConfig | None) -> dict[str, Any]:
    """The `logger` group (name -> settings) as typed configs; an unknown name or a bad setting is a ConfigError."""
    if node is None:
        return {}
    loggers: dict[str, Any] = {}
    for name in node:
        if name not in LOGGERS:
            raise ConfigError(
                f"logger={name!s} is not a logger option; choose any of: {', '.join(LOGGERS.names())}, "
                "e.g. logger=[tensorboard,mlflow]"
            )
        assert isinstance(name, str)  # a registered name
        loggers[name] = _typed(node[name], LOGGERS.schema(name), f"logger.{name}")
    return loggers


def typed_group(group: str, node: DictConfig | Mapping[str, Any]) -> Any:
    """A data/model/optimizer node (composed, or a dict read back from a run) as its registered schema, checked."""
    registry = REGISTRIES[group]
    _require_mapping(group, node, registry.names())
    name = node.get("name")
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(
            f"{group}.name={name} is not a registered {registry.kind}; registered: {', '.join(registry.names())}"
        )
    schema = registry.schema(name)
    actual = OmegaConf.get_type(node) if isinstance(node, DictConfig) else dict
    if actual is not dict and actual is not schema:
        # `model.name=mlp` on top of the cnn option would hand cnn's fields to the mlp builder.
        raise ConfigError(
            f"{group}.name={name} does not match the fields of the chosen {group} option "
            f"({getattr(actual, '__name__', actual)}); pick the option itself with {group}={name}"
        )
    return _typed(node, schema, group)


def _require_mapping(group: str, node: Any, options: Sequence[str] = ()) -> None:
    """ConfigError when a group's node is not a mapping of its keys: a group replaced by a value (`++data=null`)."""
    if not isinstance(node, (DictConfig, Mapping)):
        shown = "null" if node is None else (OmegaConf.to_container(node) if OmegaConf.is_config(node) else node)
        choose = f": {', '.join(options)}" if options else ""
        raise ConfigError(f"{group}={shown} is not a {group} option; pick one with {group}=OPTION{choose}")


def _typed(node: DictConfig | Mapping[str, Any], schema: type, group: str) -> Any:
    _require_mapping(group, node)
    _reject_unknown_keys(f"{group}.", node, {f.name for f in dataclasses.fields(schema)})
    try:
        # An instance of `schema`: OmegaConf's return type does not cover structured configs.
        typed: Any = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
    except ValidationError as err:  # a value read back from a file, or a plain-YAML option, of the wrong type
        raise ConfigError(describe_field(err, prefix=f"{group}.")) from None
    try:
        typed.check()
        check_numbers(typed)
    except FieldError as err:
        err.key = f"{group}.{err.key}"
        raise
    return typed


def check_numbers(typed: Any) -> None:
    """FieldError for a number no schema field can mean: NaN or infinite, or an integer beyond 32 bits.

    Every float and int field, lists included, whatever its own check() says: one rule for the class.
    """
    for spec in dataclasses.fields(typed):
        value = getattr(typed, spec.name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, float):
                require(math.isfinite(item), spec.name, value, "a finite number")
            elif isinstance(item, int) and not isinstance(item, bool):
                require(-MAX_INT <= item <= MAX_INT, spec.name, value, f"an integer of at most {MAX_INT}")


def _reject_unknown_keys(prefix: str, node: DictConfig | Mapping[str, Any], known: set[str]) -> None:
    # `+group.key=...` can add keys a structured config does not declare; nothing would read them.
    unknown = sorted(map(str, set(node.keys()) - known))
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]} is not a config key; {prefix.rstrip('.') or 'the top level'} accepts: "
            f"{', '.join(sorted(known - {'hydra'}))}"
        )


def describe_field(cause: OmegaConfBaseException, prefix: str = "") -> str:
    """One line for OmegaConf's error about one key: an unknown key, or a value of the wrong type."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    key = prefix + str(cause.full_key)
    schema = cause.object_type
    fields = typing.get_type_hints(schema) if dataclasses.is_dataclass(schema) else {}
    parent, _, leaf = key.rpartition(".")
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        return f"{key} is not a config key; {parent or 'the top level'} accepts: {', '.join(sorted(fields))}"
    if isinstance(cause, ValidationError) and leaf in fields:
        value = "null" if cause.value is None else cause.value
        return f"{key}={value} has the wrong type: expected {type_words(fields[leaf])}"
    return f"{key}: {one_line(str(cause).splitlines()[0])}"


def type_words(annotation: Any) -> str:
    """'an integer', 'a number or null', 'a list of integers' for a field's annotation."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{type_words(inner[0])} or null"
    if origin is list and args:
        return f"a list of {type_words(args[0]).split(' ', 1)[1]}s, e.g. [1,2]"
    return words.get(annotation, "a value of the schema's type")


def plain_dict(node: Any, resolve: bool = True) -> dict[str, Any]:
    """A config node (a mapping) as a plain dict with string keys; ConfigError for a node that is no mapping."""
    container = OmegaConf.to_container(node, resolve=resolve) if OmegaConf.is_config(node) else node
    if not isinstance(container, dict):
        raise ConfigError(f"expected a mapping of keys, found {type(container).__name__}: {container!r}"[:300])
    return {str(key): value for key, value in container.items()}
