"""What the server says about the run it serves: name, model, data, accuracy, date, config, metrics."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from mnist_hydra.serving.project import UserError, read_json, read_run_config

def read_run_info(run_dir: Path, model_path: Path, class_names: tuple[str, ...], params: int) -> dict[str, Any]:
    """The run's identity and record, for GET /model and the page's header."""
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    provenance = read_json(run_dir / "provenance.json")
    try:
        config = read_run_config(run_dir)
    except UserError:
        config = {}
    model = config.get("model", {}) if isinstance(config.get("model"), dict) else {}
    data = config.get("data", {}) if isinstance(config.get("data"), dict) else {}
    trainer = config.get("trainer", {}) if isinstance(config.get("trainer"), dict) else {}
    return {
        "run": run_dir.resolve().name,
        "run_dir": str(run_dir.resolve()),
        "model": model.get("name", "unknown"),
        "data": data.get("name", "unknown"),
        "precision": trainer.get("precision", "float32"),
        "params": params,
        "test_accuracy": metrics.get("test_accuracy"),
        "trained": provenance.get("started") or _modified(model_path),
        "class_names": list(class_names),
        "config": config,
        "metrics": metrics,
    }


def _modified(path: Path) -> str:
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.timezone.utc)
    return stamp.isoformat(timespec="seconds")
