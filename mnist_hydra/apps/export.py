"""`python -m mnist_hydra.export run=RUN_DIR format=saved_model|litert|onnx`: export a trained run and check it."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING, DictConfig

from mnist_hydra.apps.app_kinds import hydra_app
from mnist_hydra.errors import require
from mnist_hydra.runs.rundir import RUN_EXAMPLE

PROG = "mnist_hydra.export"
FORMATS = ("saved_model", "litert", "onnx")  # mnist_hydra.export.formats.FORMATS, without importing it for --help
EXAMPLES = {"run": RUN_EXAMPLE, "format": f"format=onnx (one of {', '.join(FORMATS)})"}


@dataclass
class ExportConfig:
    """Which run, which format, and whether to export or only check an export made before."""

    run: str = MISSING  # the training run's directory: holds model.keras
    format: str = MISSING  # saved_model (TF Serving), litert (.tflite) or onnx
    verify: bool = False  # only check RUN_DIR/export/<format>/ against model.keras again; write nothing
    limit: int | None = None  # compare on the first N test images; null = the run's test set

    def check(self) -> None:
        require(self.format in FORMATS, "format", self.format, f"one of {', '.join(FORMATS)}")
        require(self.limit is None or self.limit >= 1, "limit", self.limit, "null (the run's test set) or a count >= 1")


@hydra_app(PROG, "export", ExportConfig, EXAMPLES, hydra_flags=False)
def export(settings: ExportConfig, cfg: DictConfig) -> None:
    """Export `settings.run` to `settings.format` (or verify an export); exit 1 when it does not match model.keras."""
    from mnist_hydra.export import run as library  # TensorFlow loads only now

    if settings.verify:
        record = library.verify_export(settings.run, settings.format, settings.limit)
    else:
        record = library.export_run(settings.run, settings.format, settings.limit)
    for line in library.summary_lines(record):
        print(f"{PROG}: {line}")
    if not record["passed"]:
        raise library.ExportError(
            f"format={settings.format}: {record['path']} does not match model.keras ({library.mismatch_words(record)})"
        )


main = export.main
