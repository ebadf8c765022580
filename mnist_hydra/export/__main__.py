"""`python -m mnist_hydra.export`: see mnist_hydra/apps/export.py."""

from mnist_hydra.apps import launch

if __name__ == "__main__":
    launch("export", "mnist_hydra.export")
