"""`python -m mnist_hydra.export run=RUN_DIR format=saved_model|litert|onnx`: export a trained run and check it."""

from __future__ import annotations

from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mnist_hydra.apps import prepare_hydra
from mnist_hydra.apps.boundary import guard, run_app
from mnist_hydra.config import require_values
from mnist_hydra.errors import require
from mnist_hydra.runs.rundir import RUN_EXAMPLE

PROG = "mnist_hydra.export"
FORMATS = ("saved_model", "litert", "onnx")  # mnist_hydra.serving.export.FORMATS, without importing it for --help
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


prepare_hydra()
ConfigStore.instance().store(name="export_schema", node=ExportConfig)


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="export")
@guard(PROG)
def export(cfg: DictConfig) -> None:
    """Export `cfg.run` to `cfg.format` (or verify an export); exit 1 when it does not match model.keras."""
    require_values(cfg, EXAMPLES)
    settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ExportConfig), cfg))
    settings.check()
    from mnist_hydra.serving import export as library  # TensorFlow loads only now

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


def main() -> None:
    """Run the export app inside the error boundary."""
    run_app(export, PROG)
