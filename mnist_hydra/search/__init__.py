"""Hyperparameter search on Optuna's own study and storages, without Hydra (the sweeper plugin drives it)."""
