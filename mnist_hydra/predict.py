"""`python -m mnist_hydra.predict`: see mnist_hydra/apps/predict.py."""

from mnist_hydra.apps import launch

if __name__ == "__main__":
    launch("predict", "mnist_hydra.predict")
