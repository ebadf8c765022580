"""Optimizers: one generic builder over Keras's classes, registered once per name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from mnist_hydra.errors import require
from mnist_hydra.registry import Registry

if TYPE_CHECKING:
    import keras

OPTIMIZERS: Registry = Registry("optimizer")


@dataclass
class OptimizerConfig:
    """Fields every optimizer has; subclasses add Keras's own keyword arguments by name."""

    name: str = "adam"
    lr: float = 1e-3  # learning rate

    def check(self) -> None:
        require(self.lr > 0, "lr", self.lr, "a learning rate > 0")


@dataclass
class AdamConfig(OptimizerConfig):
    beta_1: float = 0.9  # decay of the first-moment estimate
    beta_2: float = 0.999  # decay of the second-moment estimate
    epsilon: float = 1e-7  # added to the denominator for numerical stability

    def check(self) -> None:
        super().check()
        require(0 <= self.beta_1 < 1, "beta_1", self.beta_1, "a number in [0, 1)")
        require(0 <= self.beta_2 < 1, "beta_2", self.beta_2, "a number in [0, 1)")
        require(self.epsilon > 0, "epsilon", self.epsilon, "a number > 0")


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = 0.004  # decoupled weight decay per step, scaled by lr

    def check(self) -> None:
        super().check()
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    lr: float = 0.01  # learning rate
    momentum: float = 0.9  # velocity kept from the previous step; 0 = plain SGD
    nesterov: bool = False  # Nesterov's look-ahead momentum

    def check(self) -> None:
        super().check()
        require(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")


@dataclass
class RMSpropConfig(OptimizerConfig):
    name: str = "rmsprop"
    rho: float = 0.9  # decay of the squared-gradient average
    momentum: float = 0.0  # velocity kept from the previous step
    epsilon: float = 1e-7  # added to the denominator for numerical stability

    def check(self) -> None:
        super().check()
        require(0 <= self.rho < 1, "rho", self.rho, "a number in [0, 1)")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        require(self.epsilon > 0, "epsilon", self.epsilon, "a number > 0")


def build_optimizer(keras_class: str, cfg: OptimizerConfig) -> keras.optimizers.Optimizer:
    """keras.optimizers.<keras_class>, given lr and the schema's other fields by their Keras names."""
    import keras

    kwargs = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in ("name", "lr")}
    return getattr(keras.optimizers, keras_class)(learning_rate=cfg.lr, **kwargs)


OPTIMIZERS.register("adam", schema=AdamConfig)(partial(build_optimizer, "Adam"))
OPTIMIZERS.register("adamw", schema=AdamWConfig)(partial(build_optimizer, "AdamW"))
OPTIMIZERS.register("sgd", schema=SGDConfig)(partial(build_optimizer, "SGD"))
OPTIMIZERS.register("rmsprop", schema=RMSpropConfig)(partial(build_optimizer, "RMSprop"))
