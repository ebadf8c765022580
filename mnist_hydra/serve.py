"""`python -m mnist_hydra.serve`: see mnist_hydra/apps/serve.py."""

from mnist_hydra.apps import launch

if __name__ == "__main__":
    launch("serve", "mnist_hydra.serve")
