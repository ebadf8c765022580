"""Export a run's model.keras for other runtimes, and check every export against the original.

Formats, each written to RUN_DIR/export/<format>/:

- saved_model: a TensorFlow SavedModel (tf.saved_model.save). Its `serving_default` signature
  takes `images`, float32 [batch, 28, 28, 1] in [0, 1] (white digit on black, as MNIST), and
  returns `probabilities`, float32 [batch, classes]: what TF Serving serves.
- litert: model.tflite for LiteRT (TensorFlow Lite), converted from that SavedModel by
  `tf.lite.TFLiteConverter`; the same `serving_default` signature, input and output names.
- onnx: model.onnx, converted by tf2onnx from the same function; input `images`, output
  `probabilities`, the batch dimension named `batch`.

Every export carries the run's class names (mnist_hydra.runs.rundir.class_names), by label: in export.json
beside it ("class_names"), and for ONNX also in the model's metadata_props ("class_names", a JSON list), where
onnxruntime's `get_modelmeta().custom_metadata_map` reads them. `verify` checks that they still match the run's.

Each export is loaded back in its own runtime (tf.saved_model.load, the LiteRT interpreter of
ai-edge-litert, onnxruntime) and the run's test images go through it and through model.keras.
It passes when every image gets the same class and the largest difference of any probability
is at most TOLERANCES[precision]. A mixed_bfloat16 run is exported with float32 compute (its
weights are float32 already; LiteRT and ONNX Runtime have no bf16 convolutions), so it is
compared with its bf16 original within the bf16 tolerance. The figures go to export.json.
An export is written to a temporary folder and moved into place only once it has passed:
a failed export never replaces a good one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnist_hydra.errors import UserError
from mnist_hydra.extras import require_extra
from mnist_hydra.runs.artifacts import read_json, write_json
from mnist_hydra.runs.rundir import class_names, load_model, read_config, require_run

if TYPE_CHECKING:
    import keras

FORMATS = ("saved_model", "litert", "onnx")
# The largest absolute difference of a class probability between an export and model.keras.
# float32: the same arithmetic in another order (observed: under 2e-6). mixed_bfloat16: the original
# computes in bf16 (8-bit mantissa, relative error 2^-8 per operation), the export in float32
# (observed: under 7e-3 on MNIST's test set); near-ties closer than the tolerance may change class.
TOLERANCES = {"float32": 1e-4, "mixed_bfloat16": 2e-2}
ONNX_OPSET = 17  # run by every onnxruntime since 1.13
LATENCY_CALLS = 200  # single-image calls timed, after a warm-up
BATCH = 256  # images per call when comparing


class ExportError(UserError):
    """An export that cannot be produced or does not match model.keras: the run's files, not the command, are at
    fault (exit 1, like damaged data)."""

    exit_code = 1


@dataclass(frozen=True)
class Runtime:
    """An export loaded in its own runtime: `predict` maps float32 (n, 28, 28, 1) to probabilities."""

    name: str
    version: str
    predict: Callable[[np.ndarray], np.ndarray]
    class_names: list[str] | None = None  # what the export says its classes are, where it says it itself


def export_run(run_dir: str | os.PathLike[str], fmt: str, limit: int | None = None) -> dict[str, Any]:
    """Write RUN_DIR/export/<fmt>/, check it against model.keras on the run's test images, and
    return the check's record (also written to export.json there).

    Args:
      run_dir: a training run's directory (it holds model.keras).
      fmt: one of FORMATS.
      limit: compare on only the first `limit` test images (default: the run's test set).
    """
    run_dir = Path(run_dir)
    model_path = require_run(run_dir)
    check_format(fmt)
    require_runtime(fmt)
    images, data_name = test_images(run_dir, limit)
    model = load_model(model_path)
    precision = model_precision(model)
    names = list(class_names(run_dir, int(model.output_shape[-1])))
    export_root = run_dir / "export"
    export_root.mkdir(exist_ok=True)
    staging = export_root / f".{fmt}.tmp-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
        started = time.perf_counter()
        WRITERS[fmt](float32_copy(model) if precision != "float32" else model, staging, names)
        seconds = time.perf_counter() - started
        record = compare(model, LOADERS[fmt](staging), images, precision, names)
        record.update(
            format=fmt,
            run=str(run_dir.resolve()),
            data=data_name,
            export_seconds=round(seconds, 2),
            files=_files(staging),
            bytes=_size(staging),
        )
        write_json(staging / "export.json", record)
        if not record["passed"]:
            raise ExportError(
                f"format={fmt}: the export does not match model.keras ({mismatch_words(record)}); nothing was replaced"
            )
        _move_into_place(staging, export_root / fmt)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record["path"] = str(export_root / fmt)
    return record


def verify_export(run_dir: str | os.PathLike[str], fmt: str, limit: int | None = None) -> dict[str, Any]:
    """Check an existing RUN_DIR/export/<fmt>/ against model.keras again; the record, `passed` saying how it went."""
    run_dir = Path(run_dir)
    model_path = require_run(run_dir)
    check_format(fmt)
    folder = run_dir / "export" / fmt
    if not folder.is_dir():
        raise ExportError(
            f"format={fmt}: {folder} does not exist; export it first with "
            f"python -m mnist_hydra.export run={run_dir} format={fmt}"
        )
    require_runtime(fmt)
    images, data_name = test_images(run_dir, limit)
    model = load_model(model_path)
    try:
        runtime = LOADERS[fmt](folder)
    except Exception as err:  # a truncated or tampered file fails to load: that is a failed check, not a bug
        raise ExportError(f"format={fmt}: {folder} cannot be loaded ({_one_line(err)})") from err
    names = list(class_names(run_dir, int(model.output_shape[-1])))
    recorded = read_json(folder / "export.json").get("class_names")
    if runtime.class_names is None and recorded is not None:  # no names inside the export: those beside it
        runtime = dataclasses.replace(runtime, class_names=recorded)
    record = compare(model, runtime, images, model_precision(model), names)
    record.update(
        format=fmt,
        run=str(run_dir.resolve()),
        data=data_name,
        files=_files(folder),
        bytes=_size(folder),
        path=str(folder),
    )
    return record


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt} is not an export format; choose one of: {', '.join(FORMATS)}")


def require_runtime(fmt: str) -> None:
    """MissingExtra naming the packages to install when `fmt`'s converter or runtime is missing."""
    needed = {"saved_model": (), "litert": ("ai_edge_litert",), "onnx": ("tf2onnx", "onnx", "onnxruntime")}[fmt]
    if needed:
        require_extra("export", f"format={fmt}", needed)


def test_images(run_dir: Path, limit: int | None) -> tuple[np.ndarray, str]:
    """The run's own test images, float32 (n, 28, 28, 1) in [0, 1] as the model was scored on, and the data's name."""
    from mnist_hydra.config import typed_group
    from mnist_hydra.data.datasets import load_splits

    data = typed_group("data", dict(read_config(run_dir)["data"]))
    splits = load_splits(data, seed=0)  # the seed picks only the validation split
    x = splits.x_test[:limit] if limit else splits.x_test
    return x[..., np.newaxis].astype(np.float32) / np.float32(255), data.name


def model_precision(model: keras.Model) -> str:
    """mixed_bfloat16 when any layer computes in bf16, else float32."""
    names = {getattr(layer.dtype_policy, "name", "float32") for layer in model.layers}
    return "mixed_bfloat16" if "mixed_bfloat16" in names else "float32"


def float32_copy(model: keras.Model) -> keras.Model:
    """The same network and weights computing in float32 (mixed precision keeps float32 weights)."""
    config = _replace_policy(model.get_config(), "mixed_bfloat16", "float32")
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _replace_policy(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: (new if k == "name" and v == old else _replace_policy(v, old, new)) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_policy(v, old, new) for v in value]
    return value


# Writers: each fills an empty folder.


def _signature(model: keras.Model) -> tuple[Any, Callable[[Any], dict[str, Any]]]:
    import tensorflow as tf

    spec = tf.TensorSpec((None, 28, 28, 1), tf.float32, name="images")
    return spec, (lambda images: {"probabilities": model(images, training=False)})


def write_saved_model(model: keras.Model, folder: Path, names: list[str] | None = None) -> None:
    """A SavedModel whose serving_default maps `images` to `probabilities`.

    A tf.Module that tracks the model's TensorFlow variables themselves. Keras's ExportArchive
    (TensorFlow 2.21, Keras 3.15) stores every weight twice, once per wrapper (4.9 MB against 2.5 MB
    for the reference network); tracking the Keras model instead of its variables makes
    TFLiteConverter leave the weights out (the .tflite then computes NaN).
    """
    import tensorflow as tf

    spec, serve = _signature(model)

    class Serving(tf.Module):  # type: ignore[misc]  # tensorflow ships no types: tf.Module is Any
        def __init__(self) -> None:
            super().__init__()
            self.weights = [weight.value for weight in model.weights]  # the tf.Variables behind Keras's

        @tf.function(input_signature=[spec])  # type: ignore[untyped-decorator]  # tensorflow ships no types
        def serving_default(self, images: Any) -> dict[str, Any]:
            return serve(images)

    module = Serving()
    with _native_output_quiet():
        tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serving_default})


def write_litert(model: keras.Model, folder: Path, names: list[str] | None = None) -> None:
    """model.tflite, converted from the SavedModel above (same signature)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        write_saved_model(model, Path(tmp) / "saved_model")
        try:
            with _native_output_quiet():
                flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved_model")).convert()
        except Exception as err:
            raise ExportError(
                f"format=litert: TFLiteConverter cannot convert this model ({_one_line(err)}); "
                "use format=saved_model (TF Serving) instead"
            ) from err
    (folder / "model.tflite").write_bytes(flatbuffer)


def write_onnx(model: keras.Model, folder: Path, names: list[str] | None = None) -> None:
    """model.onnx, converted by tf2onnx from the same function; the batch dimension named `batch`; the class names
    in its metadata_props."""
    import tensorflow as tf
    import tf2onnx

    spec, serve = _signature(model)
    try:
        with _native_output_quiet():
            proto, _ = tf2onnx.convert.from_function(
                tf.function(serve, input_signature=[spec]), input_signature=[spec], opset=ONNX_OPSET
            )
    except Exception as err:
        raise ExportError(
            f"format=onnx: tf2onnx cannot convert this model ({_one_line(err)}); use format=saved_model "
            "and convert it with python -m tf2onnx.convert --saved-model DIR --output model.onnx"
        ) from err
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    if names is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "class_names", json.dumps(names)
    (folder / "model.onnx").write_bytes(proto.SerializeToString())


WRITERS = {"saved_model": write_saved_model, "litert": write_litert, "onnx": write_onnx}


# Loaders: each runs an export in its own runtime.


def load_saved_model(folder: Path) -> Runtime:
    import tensorflow as tf

    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
    return Runtime(
        "TensorFlow SavedModel", tf.__version__, lambda x: serve(images=tf.constant(x))["probabilities"].numpy()
    )


def load_litert(folder: Path) -> Runtime:
    from ai_edge_litert import interpreter as litert

    with _native_output_quiet():  # the XNNPACK delegate announces itself on the first call
        runner = litert.Interpreter(model_path=str(folder / "model.tflite")).get_signature_runner("serving_default")
        runner(images=np.zeros((1, 28, 28, 1), np.float32))
    version = _version("ai-edge-litert")
    return Runtime("LiteRT (ai-edge-litert)", version, lambda x: runner(images=x)["probabilities"])


def load_onnx(folder: Path) -> Runtime:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    stored = session.get_modelmeta().custom_metadata_map.get("class_names")
    return Runtime(
        "ONNX Runtime",
        onnxruntime.__version__,
        lambda x: session.run(["probabilities"], {"images": x})[0],
        _names(stored),
    )


def _names(stored: str | None) -> list[str] | None:
    """The class names of an ONNX model's metadata (a JSON list); None when absent, [] when unreadable."""
    if stored is None:
        return None
    try:
        names = json.loads(stored)
    except ValueError:
        return []
    return [str(name) for name in names] if isinstance(names, list) else []


LOADERS = {"saved_model": load_saved_model, "litert": load_litert, "onnx": load_onnx}


# The check.


def compare(
    model: keras.Model, runtime: Runtime, images: np.ndarray, precision: str, names: list[str] | None = None
) -> dict[str, Any]:
    """model.keras and the export on the same images: classes, probability differences, latency; and the class
    names the export carries against the run's `names`."""
    reference = np.asarray(model.predict(images, batch_size=BATCH, verbose=0), dtype=np.float64)
    exported = np.concatenate(
        [np.asarray(runtime.predict(images[i : i + BATCH]), dtype=np.float64) for i in range(0, len(images), BATCH)]
    )
    tolerance = TOLERANCES[precision]
    if exported.shape != reference.shape:
        raise ExportError(f"the export returns shape {exported.shape[1:]} per batch, model.keras {reference.shape[1:]}")
    same = reference.argmax(axis=1) == exported.argmax(axis=1)
    top_two = np.sort(reference, axis=1)[:, -2:]
    near_ties = (top_two[:, 1] - top_two[:, 0]) <= tolerance
    # float32: every image must keep its class. bf16: a near tie in the original may flip.
    class_ok = bool(same.all()) if precision == "float32" else bool(same[~near_ties].all())
    difference = float(np.abs(reference - exported).max()) if len(images) else 0.0
    names_ok = runtime.class_names is None or names is None or list(runtime.class_names) == list(names)
    return {
        "runtime": runtime.name,
        "runtime_version": runtime.version,
        "precision": precision,
        "images": int(len(images)),
        "same_class": int(same.sum()),
        "different_class": int((~same).sum()),
        "max_abs_probability_difference": difference,
        "tolerance": tolerance,
        "passed": class_ok and difference <= tolerance and names_ok,
        "class_names": names,
        "class_names_match": names_ok,
        "latency_ms": _latency(runtime.predict, images[:1]),
        "keras_latency_ms": _latency(_compiled(model), images[:1]),
    }


def mismatch_words(record: dict[str, Any]) -> str:
    """'3 of 1000 images change class, max |probability difference| 0.41 > 1e-04'."""
    parts = []
    if record["different_class"]:
        parts.append(f"{record['different_class']} of {record['images']} images change class")
    if not record.get("class_names_match", True):
        parts.append("its class names are not the run's")
    difference, tolerance = record["max_abs_probability_difference"], record["tolerance"]
    if np.isnan(difference):
        parts.append("it computes NaN probabilities")
    else:
        parts.append(
            f"max |probability difference| {difference:.2g} {'>' if difference > tolerance else '<='} {tolerance:.0e}"
        )
    return ", ".join(parts)


def _compiled(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """model.keras as the server calls it: one concrete tf.function."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, 28, 28, 1), tf.float32)
    call = tf.function(lambda x: model(x, training=False), input_signature=[spec]).get_concrete_function()
    return lambda x: call(tf.constant(x)).numpy()


def _latency(predict: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> dict[str, float]:
    """Median and 99th percentile of single-image calls, in milliseconds."""
    if not len(image):
        return {"median": float("nan"), "p99": float("nan")}
    for _ in range(20):
        predict(image)
    times = []
    for _ in range(LATENCY_CALLS):
        start = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - start)
    return {"median": round(float(np.median(times)) * 1e3, 4), "p99": round(float(np.percentile(times, 99)) * 1e3, 4)}


def _files(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "export.json"
    }


def _size(folder: Path) -> int:
    return sum(_files(folder).values())


def _move_into_place(staging: Path, target: Path) -> None:
    """Replace `target` with `staging`: the old export is renamed aside first and removed last."""
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _native_output_quiet() -> Iterator[None]:
    """Hold back what TensorFlow's, LiteRT's and tf2onnx's C++ code writes to stderr (INFO lines about
    delegates and graph passes); it is shown if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


def summary_lines(record: dict[str, Any]) -> list[str]:
    """What the export command prints: where, how big, the comparison, the latency."""
    files = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in record["files"].items() if size > 100_000)
    verdict = "PASSED" if record["passed"] else "FAILED"
    latency, keras_latency = record["latency_ms"], record["keras_latency_ms"]
    return [
        f"{record['path']}: {record['bytes'] / 1e6:.2f} MB ({files}); {record['runtime']} {record['runtime_version']}",
        f"{record['images']} {record['data']} test images: same class for {record['same_class']} of {record['images']}, "
        f"max |probability difference| {record['max_abs_probability_difference']:.2g} (tolerance "
        f"{record['tolerance']:.0e} for {record['precision']}): {verdict}",
        f"single-image latency: median {latency['median']:.3f} ms, p99 {latency['p99']:.3f} ms "
        f"(model.keras through tf.function: median {keras_latency['median']:.3f} ms)",
    ]
