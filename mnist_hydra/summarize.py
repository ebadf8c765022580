"""`python -m mnist_hydra.summarize`: see mnist_hydra/apps/summarize.py."""

from mnist_hydra.apps import launch

if __name__ == "__main__":
    launch("summarize", "mnist_hydra.summarize")
