"""The app of one server process when `serve.workers` > 1: uvicorn imports it in each worker it spawns."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mnist_hydra.errors import UserError
from mnist_hydra.serving.api import create_app
from mnist_hydra.serving.compiled_model import Predictor
from mnist_hydra.serving.process import prepare_process
from mnist_hydra.serving.settings import ServeSettings

ENV_VAR = "MNIST_HYDRA_SERVE_WORKER"  # the parent's settings, as JSON: spawned workers inherit the environment
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that cannot start: its supervisor then stops


def worker_spec(run_dir: str, settings: ServeSettings, top_k: int, error_file: Path) -> str:
    """What a worker needs to build its app, and where it says why it could not: the JSON value of ENV_VAR."""
    return json.dumps({"run": str(run_dir), "settings": vars(settings), "top_k": top_k, "error_file": str(error_file)})


def create_worker_app() -> FastAPI:
    """Load the model in this worker process and return its app (a uvicorn factory)."""
    spec: dict[str, Any] = json.loads(os.environ[ENV_VAR])
    try:
        predictor = Predictor(spec["run"], spec["settings"]["threads"])
    except UserError as err:  # the parent prints it once, for all its workers
        Path(spec["error_file"]).write_text(str(err), encoding="utf-8")
        sys.exit(STARTUP_FAILURE)
    prepare_process()
    return create_app(predictor=predictor, settings=ServeSettings(**spec["settings"]), top_k=spec["top_k"])
