"""mnist_hydra's Hydra plugins: an Optuna sweeper over the ask-and-tell API, a launcher over Ray, and the config
source of mnist_hydra's typed schemas (schemas.py).

Hydra imports every module of the `hydra_plugins` namespace package at start-up (for --help too), so these
modules import neither Optuna nor Ray at the top.
"""
