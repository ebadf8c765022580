"""trainer.strategy: the tf.distribute strategy a run trains under, and which worker writes its files.

TensorFlow is imported only when a strategy is made, so `is_chief` and the TF_CONFIG check stay fast.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, NoReturn

from mnist_hydra.errors import ConfigError

TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}'


def read_tf_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The cluster and this worker's task from TF_CONFIG; ConfigError, in one line, if it cannot describe them."""
    value = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not value.strip():
        _bad_tf_config("is not set")
    try:
        tf_config = json.loads(value)
    except json.JSONDecodeError as err:
        _bad_tf_config(f"is not valid JSON ({err.msg} at character {err.pos})")
    if not isinstance(tf_config, dict):
        _bad_tf_config("is not a JSON object")
    cluster, task = tf_config.get("cluster"), tf_config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        _bad_tf_config('has no "cluster" object')
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        _bad_tf_config(f'names a "{unknown[0]}" job; multi_worker training takes only "chief" and "worker"')
    for job, addresses in cluster.items():
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses)
        ):
            _bad_tf_config(f'has cluster "{job}" = {json.dumps(addresses)}: expected a list of "host:port" strings')
    if not isinstance(task, dict):
        _bad_tf_config('has no "task" object')
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        _bad_tf_config(f"has task type {json.dumps(kind)}, which is not a job of its cluster ({', '.join(cluster)})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        _bad_tf_config(
            f"has task index {json.dumps(index)}, but its cluster lists {len(cluster[kind])} "
            f'"{kind}" address(es), so the index must be 0 to {len(cluster[kind]) - 1}'
        )
    return tf_config


def _bad_tf_config(problem: str) -> NoReturn:
    raise ConfigError(
        f"trainer.strategy=multi_worker reads the cluster from the TF_CONFIG environment variable, which {problem}; "
        f"it must hold JSON like {TF_CONFIG_EXAMPLE}: every worker's host:port, and this process's task"
    )


def is_chief(strategy: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process writes the run's files: always, except on the non-chief workers of a multi_worker run.

    TensorFlow's rule: the "chief" task, or worker 0 when the cluster has no chief. Needs no TensorFlow, so a
    caller can ask before training (and a bad TF_CONFIG fails here, in one line).
    """
    if strategy != "multi_worker":
        return True
    tf_config = read_tf_config(environ)
    task = tf_config["task"]
    if "chief" in tf_config["cluster"]:
        return bool(task["type"] == "chief")
    return bool(task["type"] == "worker" and task["index"] == 0)


def make_strategy(name: str) -> tuple[Any, bool]:
    """(strategy, whether this process is the chief) for trainer.strategy=`name`.

    Call it before TensorFlow runs any op: MultiWorkerMirroredStrategy sets up collective ops at start-up.
    """
    chief = is_chief(name)  # a bad TF_CONFIG fails here, before TensorFlow starts a server
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy(), chief
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(), chief  # every local GPU, or the CPU when there is none
    if name == "multi_worker":
        return _start_multi_worker(), chief
    raise ValueError(f"unknown trainer.strategy {name!r}")  # config validation admits only the names above


_multi_worker_started = False


def _start_multi_worker() -> Any:
    global _multi_worker_started
    if _multi_worker_started:
        # TensorFlow sets up collective ops once per process; a second strategy would fail deep inside it.
        raise ConfigError(
            "trainer.strategy=multi_worker trains one run per process: start the workers afresh for each run "
            "(a --multirun sweep cannot run its jobs one after another in the same worker processes)"
        )
    import tensorflow as tf

    patch_keras_for_multi_worker()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG itself
    _multi_worker_started = True
    return strategy


def patch_keras_for_multi_worker() -> None:
    """Mend two spots where Keras 3's fit() breaks under MultiWorkerMirroredStrategy; idempotent.

    keras-team/keras#20585: before the first step Keras all-reduces a whole (images, labels) batch just to
    learn its shapes, which the multi-worker strategy rejects; this worker's own slice gives the same shapes.
    tensorflow/tensorflow#72388: each step's scalar metric results are reduced across workers along axis 0,
    which scalars lack; a plain mean across replicas is what was meant (the epoch's figures in the history
    are read from the synchronised metric variables either way).
    """
    try:
        from keras import tree
        from keras.src.backend.tensorflow import trainer as tf_trainer

        multi_worker = tf_trainer._collective_all_reduce_multi_worker
        reduce_per_replica = tf_trainer.reduce_per_replica
        symbolic_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    except (ImportError, AttributeError):  # a Keras whose internals moved; nothing to mend where we looked
        return
    if getattr(reduce_per_replica, "_mnist_hydra", False):
        return

    def reduce_scalars_across_workers(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction not in ("auto", "mean") or not multi_worker(strategy):
            return reduce_per_replica(values, strategy, reduction)

        def reduce(value: Any) -> Any:
            if strategy.experimental_local_results(value)[0].shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return reduce_per_replica(value, strategy, reduction)

        return tree.map_structure(reduce, values)

    def build_from_local_batch(self: Any, iterator: Any = None, data_batch: Any = None) -> Any:
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not multi_worker(strategy):
            return symbolic_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tree.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(batches))
            break
        return symbolic_build(self, data_batch=data_batch)

    reduce_scalars_across_workers._mnist_hydra = True  # type: ignore[attr-defined]
    tf_trainer.reduce_per_replica = reduce_scalars_across_workers
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_local_batch


def average_across_replicas(strategy: Any, variables: list[Any]) -> None:
    """Give each variable the mean of its replicas' copies, so every worker holds and saves the same model.

    Keras 3 keeps BatchNorm's moving statistics unsynchronised: each replica updates its copy from its own
    slice of every batch, and after fit() the workers' copies differ (trained weights agree, being updated
    from all-reduced gradients). Averaging them is what tf.keras's on-read variables did.
    """
    if strategy.num_replicas_in_sync == 1 or not variables:
        return
    import tensorflow as tf

    @tf.function  # type: ignore[untyped-decorator]  # tensorflow ships no types
    def averaged() -> Any:
        def replica_means() -> list[Any]:
            context = tf.distribute.get_replica_context()
            return [context.all_reduce("MEAN", tf.identity(v.value)) for v in variables]

        return strategy.run(replica_means)

    for variable, value in zip(variables, averaged(), strict=False):
        variable.assign(strategy.experimental_local_results(value)[0])


def weights_digest(weights: list[Any]) -> str:
    """SHA-256 over a model's weight arrays, in order: equal on every worker of a synchronous run."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
