"""Hydra config tree of mnist_hydra, shipped as package data (pkg://mnist_hydra.conf)."""
