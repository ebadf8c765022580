"""What the server says about the run it serves: name, model, data, accuracy, date, config, metrics."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from mnist_hydra.errors import UserError
from mnist_hydra.runs.artifacts import read_json
from mnist_hydra.runs.rundir import read_config as read_run_config


def read_served_run(run_dir: Path, model_path: Path) -> dict[str, Any]:
    """The run's identity and record from its files (no TensorFlow), for GET /model and the page's header."""
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    provenance = read_json(run_dir / "provenance.json")
    try:
        config = read_run_config(run_dir)
    except UserError:
        config = {}
    model, data, trainer = (_section(config, key) for key in ("model", "data", "trainer"))
    return {
        "run": "/".join(run_dir.resolve().parts[-2:]),  # outputs/DATE/TIME -> DATE/TIME
        "run_dir": str(run_dir.resolve()),
        "model": model.get("name", "unknown"),
        "data": data.get("name", "unknown"),
        "precision": trainer.get("precision", "float32"),
        "test_accuracy": metrics.get("test_accuracy"),
        "trained": provenance.get("started") or _modified(model_path),
        "config": config,
        "metrics": metrics,
    }


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def headline(info: dict[str, Any]) -> str:
    """'run 13-20-02.850171 (cnn on mnist, test accuracy 0.9865)'."""
    accuracy = "" if info.get("test_accuracy") is None else f", test accuracy {info['test_accuracy']:.4f}"
    return f"run {info['run']} ({info['model']} on {info['data']}{accuracy})"


def _modified(path: Path) -> str:
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.timezone.utc)
    return stamp.isoformat(timespec="seconds")
