"""`python -m mnist_hydra.report`: see mnist_hydra/apps/report.py."""

from mnist_hydra.apps import launch

if __name__ == "__main__":
    launch("report", "mnist_hydra.report")
