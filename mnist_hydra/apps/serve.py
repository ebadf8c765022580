"""`python -m mnist_hydra.serve run=RUN_DIR`: the draw-a-digit page and the prediction API of a trained run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mnist_hydra.config import require_values
from mnist_hydra.console import exit_with, run_app
from mnist_hydra.errors import UserError, require
from mnist_hydra.serving.settings import ServeSettings

PROG = "mnist_hydra.serve"
EXAMPLES = {"run": "run=outputs/2026-11-24/13-20-02.850171 (a run directory of python -m mnist_hydra)"}


@dataclass
class ServeConfig:
    """Which run to serve, and how."""

    run: str = MISSING  # the training run's directory: holds model.keras
    top_k: int = 3  # classes listed per prediction, most probable first (a request may ask for more)
    serve: ServeSettings = field(default_factory=ServeSettings)

    def check(self) -> None:
        require(self.top_k >= 1, "top_k", self.top_k, "an integer >= 1")
        self.serve.check()


ConfigStore.instance().store(name="serve_schema", node=ServeConfig)


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="serve")
def serve(cfg: DictConfig) -> None:
    """Serve `cfg.run` until SIGINT or SIGTERM."""
    from mnist_hydra.serving.server import serve as run_server  # uvicorn and TensorFlow load only now

    try:
        require_values(cfg, EXAMPLES)
        values = OmegaConf.to_container(cfg, resolve=True)
        settings = ServeConfig(run=values["run"], top_k=values["top_k"], serve=ServeSettings(**values["serve"]))
        settings.check()
        run_server(settings.run, settings.serve, settings.top_k, PROG)
    except UserError as err:  # here, not in run_app: Hydra would first log "Error executing job" on stderr
        exit_with(err, PROG)


def main() -> None:
    """Console entry point: the serve app, with user mistakes as one line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_app(serve, PROG)


if __name__ == "__main__":
    main()
