"""`python -m mnist_hydra.serve run=RUN_DIR`: the draw-a-digit page and the prediction API of a trained run."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig

from mnist_hydra.apps.app_kinds import hydra_app
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


@hydra_app(PROG, "serve", ServeConfig, EXAMPLES, hydra_flags=False, extra="serve")
def serve(settings: ServeConfig, cfg: DictConfig) -> None:
    """Serve `settings.run` until SIGINT or SIGTERM."""
    from mnist_hydra.serving.server import serve as run_server  # uvicorn and TensorFlow load only now

    run_server(settings.run, settings.serve, settings.top_k, PROG)


main = serve.main
