"""Every logger of mnist_hydra, registered in LOGGERS on import (each imports its tracker only when used)."""

from mnist_hydra.tracking import mlflow_logger, tensorboard_logger
from mnist_hydra.tracking.base import LOGGERS

__all__ = ["LOGGERS", "mlflow_logger", "tensorboard_logger"]
