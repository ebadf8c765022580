"""`python -m mnist_hydra [overrides]`: the train app (mnist_hydra/apps/train.py)."""

from mnist_hydra.apps import main_train

if __name__ == "__main__":
    main_train()
