"""Export a run's model.keras for other runtimes, and check every export against the original.

Formats, each written to RUN_DIR/export/<format>/ (formats.py):

- saved_model: a TensorFlow SavedModel (tf.saved_model.save). Its `serving_default` signature
  takes `images`, float32 [batch, 28, 28, 1] in [0, 1] (white digit on black, as MNIST), and
  returns `probabilities`, float32 [batch, classes]: what TF Serving serves.
- litert: model.tflite for LiteRT (TensorFlow Lite), converted from that SavedModel by
  `tf.lite.TFLiteConverter`; the same `serving_default` signature, input and output names.
- onnx: model.onnx, converted by tf2onnx from the same function; input `images`, output
  `probabilities`, the batch dimension named `batch`.

Every export carries the run's class names (mnist_hydra.runs.rundir.class_names), by label: in export.json
beside it ("class_names"), and for ONNX also in the model's metadata_props ("class_names", a JSON list), where
onnxruntime's `get_modelmeta().custom_metadata_map` reads them. `verify_export` checks that they still match.

Each export is loaded back in its own runtime (runtimes.py: tf.saved_model.load, the LiteRT interpreter of
ai-edge-litert, onnxruntime) and the run's test images go through it and through model.keras (parity.py).
It passes when every image gets the same class and the largest difference of any probability
is at most parity.TOLERANCES[precision]. A mixed_bfloat16 run is exported with float32 compute (its
weights are float32 already; LiteRT and ONNX Runtime have no bf16 convolutions), so it is
compared with its bf16 original within the bf16 tolerance. The figures, with single-image latency
(latency.py), go to export.json. An export is written to a temporary folder and moved into place only
once it has passed (staging.py): a failed export never replaces a good one. run.py ties these together.

Nothing is imported here, so `python -m mnist_hydra.export --help` stays fast.
"""
