"""`python -m mnist_hydra [overrides]`: the train app (mnist_hydra/apps/train.py)."""

from mnist_hydra.apps import launched

if __name__ == "__main__":
    with launched("mnist_hydra"):
        from mnist_hydra.apps.train import main

        main()
