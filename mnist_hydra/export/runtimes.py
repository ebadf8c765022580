"""The runtimes an export is loaded back in: each maps float32 (n, 28, 28, 1) to probabilities."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_hydra.export.native_output import native_output_quiet
from mnist_hydra.extras import require_extra


@dataclass(frozen=True)
class Runtime:
    """An export loaded in its own runtime: `predict` maps float32 (n, 28, 28, 1) to probabilities."""

    name: str
    version: str
    predict: Callable[[np.ndarray], np.ndarray]
    class_names: list[str] | None = None  # what the export says its classes are, where it says it itself


def require_runtime(fmt: str) -> None:
    """MissingExtra naming the packages to install when `fmt`'s converter or runtime is missing."""
    needed = {"saved_model": (), "litert": ("ai_edge_litert",), "onnx": ("tf2onnx", "onnx", "onnxruntime")}[fmt]
    if needed:
        require_extra("export", f"format={fmt}", needed)


def load_saved_model(folder: Path) -> Runtime:
    import tensorflow as tf

    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
    return Runtime(
        "TensorFlow SavedModel", tf.__version__, lambda x: serve(images=tf.constant(x))["probabilities"].numpy()
    )


def load_litert(folder: Path) -> Runtime:
    from ai_edge_litert import interpreter as litert

    with native_output_quiet():  # the XNNPACK delegate announces itself on the first call
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


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


LOADERS = {"saved_model": load_saved_model, "litert": load_litert, "onnx": load_onnx}
