"""`python -m mnist_hydra.serve run=RUN_DIR`: the draw-a-digit page and the prediction API of a trained run."""

from __future__ import annotations

from dataclasses import dataclass, field

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mnist_hydra.apps import prepare_hydra
from mnist_hydra.apps.boundary import guard, run_app
from mnist_hydra.config import require_values
from mnist_hydra.errors import require
from mnist_hydra.runs.rundir import RUN_EXAMPLE
from mnist_hydra.serving.settings import ServeSettings

PROG = "mnist_hydra.serve"
EXAMPLES = {"run": RUN_EXAMPLE}


@dataclass
class ServeConfig:
    """Which run to serve, and how."""

    run: str = MISSING  # the training run's directory: holds model.keras
    top_k: int = 3  # classes listed per prediction, most probable first (a request may ask for more)
    serve: ServeSettings = field(default_factory=ServeSettings)

    def check(self) -> None:
        require(self.top_k >= 1, "top_k", self.top_k, "an integer >= 1")
        self.serve.check()


prepare_hydra()
ConfigStore.instance().store(name="serve_schema", node=ServeConfig)


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="serve")
@guard(PROG)
def serve(cfg: DictConfig) -> None:
    """Serve `cfg.run` until SIGINT or SIGTERM."""
    from mnist_hydra.serving.server import serve as run_server  # uvicorn and TensorFlow load only now

    require_values(cfg, EXAMPLES)
    settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ServeConfig), cfg))
    settings.check()
    run_server(settings.run, settings.serve, settings.top_k, PROG)


def main() -> None:
    """Run the serve app inside the error boundary."""
    run_app(serve, PROG)
