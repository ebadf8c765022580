"""The export formats and their writers: each fills an empty folder with one format of a Keras model."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_hydra.errors import UserError, one_line
from mnist_hydra.export.native_output import native_output_quiet

if TYPE_CHECKING:
    import keras

FORMATS = ("saved_model", "litert", "onnx")
ONNX_OPSET = 17  # run by every onnxruntime since 1.13


class ExportError(UserError):
    """An export that cannot be produced or does not match model.keras: the run's files, not the command, are at
    fault (exit 1, like damaged data)."""

    exit_code = 1


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt} is not an export format; choose one of: {', '.join(FORMATS)}")


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


def short_reason(err: BaseException) -> str:
    """A converter's error folded onto one short line, for the one-line message that names the format."""
    return one_line(err)[:300] or type(err).__name__


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
    with native_output_quiet():
        tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serving_default})


def write_litert(model: keras.Model, folder: Path, names: list[str] | None = None) -> None:
    """model.tflite, converted from the SavedModel above (same signature)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        write_saved_model(model, Path(tmp) / "saved_model")
        try:
            with native_output_quiet():
                flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved_model")).convert()
        except Exception as err:
            raise ExportError(
                f"format=litert: TFLiteConverter cannot convert this model ({short_reason(err)}); "
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
        with native_output_quiet():
            proto, _ = tf2onnx.convert.from_function(
                tf.function(serve, input_signature=[spec]), input_signature=[spec], opset=ONNX_OPSET
            )
    except Exception as err:
        raise ExportError(
            f"format=onnx: tf2onnx cannot convert this model ({short_reason(err)}); use format=saved_model "
            "and convert it with python -m tf2onnx.convert --saved-model DIR --output model.onnx"
        ) from err
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    if names is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "class_names", json.dumps(names)
    (folder / "model.onnx").write_bytes(proto.SerializeToString())


WRITERS = {"saved_model": write_saved_model, "litert": write_litert, "onnx": write_onnx}
