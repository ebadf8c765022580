"""The app of one server process when `serve.workers` > 1: uvicorn imports it in each worker it spawns."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from fastapi import FastAPI

from mnist_hydra.serving.api import create_app
from mnist_hydra.serving.predictor import Predictor
from mnist_hydra.serving.project import UserError
from mnist_hydra.serving.settings import ServeSettings

ENV_VAR = "MNIST_HYDRA_SERVE_WORKER"  # the parent's settings, as JSON: spawned workers inherit the environment
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that cannot start: its supervisor then stops


def worker_spec(run_dir: str, settings: ServeSettings, top_k: int, prog: str) -> str:
    """What a worker needs to build its app, as the JSON value of ENV_VAR."""
    return json.dumps({"run": str(run_dir), "settings": vars(settings), "top_k": top_k, "prog": prog})


def create_worker_app() -> FastAPI:
    """Load the model in this worker process and return its app (a uvicorn factory)."""
    spec: dict[str, Any] = json.loads(os.environ[ENV_VAR])
    try:
        predictor = Predictor(spec["run"])
    except UserError as err:
        print(f"{spec['prog']}: error: {err}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    return create_app(predictor=predictor, settings=ServeSettings(**spec["settings"]), top_k=spec["top_k"])
