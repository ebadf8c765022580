"""Export to SavedModel, LiteRT and ONNX: each round-trips through its own runtime, and a tampered export fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnist_hydra.export import formats, parity, runtimes
from mnist_hydra.export import run as export
from tests.conftest import call_app

EXPORT = "mnist_hydra.export"
LIMIT = 300  # test images compared: enough to see a change of class, quick on two cores
MAIN_FILE = {"saved_model": "saved_model.pb", "litert": "model.tflite", "onnx": "model.onnx"}


@pytest.fixture(scope="module")
def run_copy(trained_run, tmp_path_factory) -> Path:
    """A copy of the trained run, so that exports and tampering stay out of the shared run directory."""
    copy = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("export"))
    return copy


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_each_format_round_trips_through_its_own_runtime(run_copy, fmt):
    record = export.export_run(run_copy, fmt, limit=LIMIT)
    folder = run_copy / "export" / fmt
    assert record["passed"] and record["path"] == str(folder)
    assert record["images"] == LIMIT and record["same_class"] == LIMIT and record["different_class"] == 0
    assert record["max_abs_probability_difference"] <= 1e-4 == record["tolerance"]
    assert record["precision"] == "float32" and record["latency_ms"]["median"] > 0
    assert (folder / MAIN_FILE[fmt]).is_file() and record["bytes"] > 2_000_000  # 607,394 float32 weights
    written = json.loads((folder / "export.json").read_text())
    assert written["max_abs_probability_difference"] == record["max_abs_probability_difference"]
    assert written["class_names"] == record["class_names"] == [str(i) for i in range(10)]  # beside every export
    assert record["class_names_match"]
    if fmt == "onnx":  # and inside the ONNX model, where onnxruntime reads them
        import onnx

        metadata = {entry.key: entry.value for entry in onnx.load(str(folder / "model.onnx")).metadata_props}
        assert json.loads(metadata["class_names"]) == record["class_names"]
    assert not [p for p in (run_copy / "export").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_the_saved_model_signature_is_the_documented_one(run_copy):
    import tensorflow as tf

    if not (run_copy / "export" / "saved_model").is_dir():
        export.export_run(run_copy, "saved_model", limit=LIMIT)
    serving = tf.saved_model.load(str(run_copy / "export" / "saved_model")).signatures["serving_default"]
    _, inputs = serving.structured_input_signature
    assert list(inputs) == ["images"] and inputs["images"].shape.as_list() == [None, 28, 28, 1]
    assert inputs["images"].dtype == tf.float32
    assert list(serving.structured_outputs) == ["probabilities"]
    out = serving(images=tf.zeros((3, 28, 28, 1)))["probabilities"].numpy()
    assert out.shape == (3, 10) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def tamper(folder: Path, bias: np.ndarray) -> Path:
    """Overwrite the output layer's bias where the export stores it: class 0 gets +50, so it wins everywhere."""
    original = np.asarray(bias, np.float32).tobytes()
    changed = bias.astype(np.float32).copy()
    changed[0] += 50
    for path in folder.rglob("*"):
        if path.is_file() and original in (content := path.read_bytes()):
            path.write_bytes(content.replace(original, changed.tobytes()))
            return path
    raise AssertionError(f"the output bias is not stored as such in {folder}")


def resave_with_changed_bias(folder: Path) -> None:
    """Load the SavedModel, add 50 to class 0's output bias, save it again: a tamper its checksums cannot see."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))
    [bias] = [v for v in loaded.weights if v.shape == (10,)]
    bias.assign(bias + tf.one_hot(0, 10) * 50)
    tf.saved_model.save(loaded, str(folder), signatures={"serving_default": loaded.signatures["serving_default"]})


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_a_tampered_export_fails_the_check(run_copy, fmt):
    from mnist_hydra.runs.rundir import load_model

    folder = run_copy / "export" / fmt
    if not folder.is_dir():
        export.export_run(run_copy, fmt, limit=LIMIT)
    assert export.verify_export(run_copy, fmt, limit=LIMIT)["passed"]
    bias = load_model(run_copy / "model.keras").layers[-1].get_weights()[1]
    tamper(folder, bias)
    if fmt == "saved_model":  # TensorFlow checksums its variables: the bytes changed, the load refuses
        with pytest.raises(export.ExportError, match="cannot be loaded .*Checksum does not match"):
            export.verify_export(run_copy, fmt, limit=LIMIT)
        shutil.rmtree(folder)
        export.export_run(run_copy, fmt, limit=LIMIT)
        resave_with_changed_bias(folder)
    record = export.verify_export(run_copy, fmt, limit=LIMIT)
    assert not record["passed"] and record["different_class"] > 0.5 * LIMIT
    assert record["max_abs_probability_difference"] > 0.5
    assert "images change class" in export.mismatch_words(record)
    shutil.rmtree(folder)


def test_the_export_command_prints_the_comparison_and_fails_in_one_line_when_tampered(run_copy, tmp_path, mnist_dir):
    env = {"MNIST_HYDRA_DATA": str(mnist_dir)}
    result = call_app(f"run={run_copy}", "format=onnx", "limit=100", cwd=tmp_path, module=EXPORT, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{EXPORT}: ") for line in lines), lines
    assert "model.onnx" in lines[0] and "ONNX Runtime" in lines[0]
    assert "same class for 100 of 100" in lines[1] and lines[1].endswith("(tolerance 1e-04 for float32): PASSED")
    assert "single-image latency: median" in lines[2]

    from mnist_hydra.runs.rundir import load_model

    tamper(run_copy / "export" / "onnx", load_model(run_copy / "model.keras").layers[-1].get_weights()[1])
    result = call_app(
        f"run={run_copy}", "format=onnx", "verify=true", "limit=100", cwd=tmp_path, module=EXPORT, env=env
    )
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if line.startswith(f"{EXPORT}: error:")]
    assert len(ours) == 1 and "does not match model.keras" in ours[0] and "images change class" in ours[0], (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["run={run}"], 2, "format has no value: set it on the command line, e.g. format=onnx"),
        (["run={run}", "format=pickle"], 2, "format=pickle is not allowed: expected one of saved_model, litert, onnx"),
        (["run={tmp}/nothing", "format=onnx"], 2, "run={tmp}/nothing: no such directory"),
        (["run={run}", "format=litert", "verify=true"], 1, "format=litert: {run}/export/litert does not exist"),
    ],
    ids=["no format", "bad format", "missing run", "nothing to verify"],
)
def test_bad_arguments_fail_in_one_line(run_copy, tmp_path, args, code, words):
    values = {"run": run_copy, "tmp": tmp_path}
    shutil.rmtree(run_copy / "export" / "litert", ignore_errors=True)
    result = call_app(*(a.format(**values) for a in args), cwd=tmp_path, module=EXPORT)
    assert result.returncode == code, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith(f"{EXPORT}:")]
    assert len(ours) == 1 and words.format(**values) in ours[0], ours
    assert "Traceback" not in result.stderr


def test_a_bf16_run_exports_in_float32_and_is_checked_within_the_bf16_tolerance(run_copy, tmp_path):
    import keras

    from mnist_hydra.runs.rundir import load_model

    bf16_run = tmp_path / "bf16"
    shutil.copytree(run_copy, bf16_run, ignore=shutil.ignore_patterns("export"))
    original = load_model(run_copy / "model.keras")
    config = original.get_config()  # every layer computes in bf16 but the output layer, as trainer.precision does it
    config["layers"][:-1] = formats._replace_policy(config["layers"][:-1], "float32", "mixed_bfloat16")
    bf16 = original.__class__.from_config(config)
    bf16.set_weights(original.get_weights())
    bf16.save(bf16_run / "model.keras")
    assert formats.model_precision(keras.models.load_model(bf16_run / "model.keras")) == "mixed_bfloat16"

    record = export.export_run(bf16_run, "onnx", limit=LIMIT)
    assert record["precision"] == "mixed_bfloat16" and record["tolerance"] == 2e-2 and record["passed"]
    assert 1e-5 < record["max_abs_probability_difference"] <= 2e-2  # bf16 arithmetic against float32


def test_a_format_that_cannot_be_produced_says_what_to_use_instead(run_copy, monkeypatch):
    import tensorflow as tf

    def refuse(*args, **kwargs):
        raise RuntimeError("ConverterError: op not supported")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", refuse)
    with pytest.raises(
        export.ExportError,
        match=r"format=litert: TFLiteConverter cannot convert this model "
        r"\(ConverterError: op not supported\); use format=saved_model",
    ):
        export.export_run(run_copy, "litert", limit=LIMIT)
    assert not [p for p in (run_copy / "export").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_a_missing_runtime_names_the_extra_to_install(run_copy, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    from mnist_hydra.extras import MissingExtra

    with pytest.raises(MissingExtra, match=r"^format=onnx needs onnxruntime: pip install 'mnist-hydra\[export\]'$"):
        export.export_run(run_copy, "onnx", limit=LIMIT)


def test_the_run_s_class_names_travel_with_the_export_and_verify_checks_them(run_copy, monkeypatch):
    import onnxruntime

    fashion = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    monkeypatch.setattr(export, "class_names", lambda run_dir, n: tuple(fashion[:n]))  # as rundir reads a run's
    record = export.export_run(run_copy, "onnx", limit=50)
    folder = run_copy / "export" / "onnx"
    assert record["passed"] and record["class_names"] == fashion
    assert json.loads((folder / "export.json").read_text())["class_names"] == fashion
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["class_names"]) == fashion

    monkeypatch.setattr(export, "class_names", lambda run_dir, n: tuple(str(i) for i in range(n)))  # renamed since
    record = export.verify_export(run_copy, "onnx", limit=50)
    assert not record["passed"] and not record["class_names_match"] and record["different_class"] == 0
    assert "its class names are not the run's" in export.mismatch_words(record)
    shutil.rmtree(folder)


@pytest.mark.parametrize("precision", sorted(parity.TOLERANCES))
@pytest.mark.parametrize("side", ["just under", "at", "just over"])
def test_a_difference_just_over_the_tolerance_fails_though_no_image_changes_class(run_copy, precision, side):
    """The tolerance's boundary, exactly: an export whose largest probability difference from model.keras is
    the tolerance itself, or the float64 just below it, passes; the float64 just above it fails; no image
    changes class either way."""
    from mnist_hydra.runs.rundir import load_model

    model = load_model(run_copy / "model.keras")
    images, _ = export.test_images(run_copy, 2 * parity.BATCH + 10)  # three calls of the runtime
    tolerance = parity.TOLERANCES[precision]
    difference = {"just under": np.nextafter(tolerance, 0), "at": tolerance, "just over": np.nextafter(tolerance, 1)}
    wanted = float(difference[side])
    reference = np.asarray(model.predict(images, batch_size=parity.BATCH, verbose=0), np.float64)
    shifted = reference.copy()
    # One probability moved, of a class far from winning, where float64 holds the sum exactly: compare()'s
    # |reference - export| is then `wanted` itself, not a rounding of it.
    exact = (reference + wanted) - reference == wanted
    far = reference.max(axis=1, keepdims=True) - reference > 2 * tolerance  # the winner stays the winner
    rows, columns = np.nonzero(exact & far)
    assert len(rows), "no probability where float64 holds the sum exactly"
    row, column = rows[-1], columns[-1]  # in the last call, as it happens
    shifted[row, column] += wanted
    starts = {}  # each call gets a run of consecutive images: the first one says where the run starts
    for index in reversed(range(len(images))):
        starts[images[index].tobytes()] = index

    def predict(batch: np.ndarray) -> np.ndarray:
        start = starts[batch[0].tobytes()]
        return shifted[start : start + len(batch)]

    record = parity.compare(model, runtimes.Runtime("shifted", "1", predict), images, precision)
    assert record["different_class"] == 0 and record["same_class"] == len(images)
    assert record["max_abs_probability_difference"] == wanted
    assert record["passed"] is (side != "just over")
    sign = ">" if side == "just over" else "<="
    assert f"| {wanted:.2g} {sign} {tolerance:.0e}" in export.mismatch_words(record)
