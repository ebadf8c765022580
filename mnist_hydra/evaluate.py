"""`python -m mnist_hydra.evaluate`: see mnist_hydra/apps/evaluate.py."""

from mnist_hydra.apps import launch

if __name__ == "__main__":
    launch("evaluate", "mnist_hydra.evaluate")
