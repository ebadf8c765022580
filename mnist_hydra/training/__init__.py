"""Training: train_and_evaluate (run.py), the fit loop, its callbacks, checkpoints, signals, strategies."""
