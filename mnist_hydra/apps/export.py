"""`python -m mnist_hydra.export run=RUN_DIR format=saved_model|litert|onnx`: export a trained run and check it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mnist_hydra.config import require_values
from mnist_hydra.console import exit_with, run_app
from mnist_hydra.errors import UserError, require

PROG = "mnist_hydra.export"
FORMATS = ("saved_model", "litert", "onnx")  # mnist_hydra.serving.export.FORMATS, without importing it for --help
EXAMPLES = {"run": "run=outputs/2026-11-24/13-20-02.850171 (a run directory of python -m mnist_hydra)",
            "format": f"format=onnx (one of {', '.join(FORMATS)})"}


@dataclass
class ExportConfig:
    """Which run, which format, and whether to export or only check an export made before."""

    run: str = MISSING  # the training run's directory: holds model.keras
    format: str = MISSING  # saved_model (TF Serving), litert (.tflite) or onnx
    verify: bool = False  # only check RUN_DIR/export/<format>/ against model.keras again; write nothing
    limit: Optional[int] = None  # compare on the first N test images; null = the run's test set

    def check(self) -> None:
        require(self.format in FORMATS, "format", self.format, f"one of {', '.join(FORMATS)}")
        require(self.limit is None or self.limit >= 1, "limit", self.limit, "null (the run's test set) or a count >= 1")


ConfigStore.instance().store(name="export_schema", node=ExportConfig)


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="export")
def export(cfg: DictConfig) -> None:
    """Export `cfg.run` to `cfg.format` (or verify an export); exit 1 when it does not match model.keras."""
    try:
        require_values(cfg, EXAMPLES)
        settings = ExportConfig(**OmegaConf.to_container(cfg, resolve=True))
        settings.check()
        from mnist_hydra.serving import export as library  # TensorFlow loads only now

        if settings.verify:
            record = library.verify_export(settings.run, settings.format, settings.limit)
        else:
            record = library.export_run(settings.run, settings.format, settings.limit)
        for line in library.summary_lines(record):
            print(f"{PROG}: {line}")
        if not record["passed"]:
            raise library.ExportError(f"format={settings.format}: {record['path']} does not match model.keras "
                                      f"({library.mismatch_words(record)})")
    except UserError as err:  # here, not in run_app: Hydra would first log "Error executing job" on stderr
        exit_with(err, PROG)


def main() -> None:
    """Console entry point: the export app, with user mistakes as one line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_app(export, PROG)


if __name__ == "__main__":
    main()
