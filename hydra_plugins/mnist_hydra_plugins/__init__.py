"""mnist_hydra's Hydra plugins: an Optuna sweeper over the ask-and-tell API, and a launcher over Ray.

Hydra imports every module of the `hydra_plugins` namespace package at start-up (for --help too), so these
modules import neither Optuna nor Ray at the top.
"""
