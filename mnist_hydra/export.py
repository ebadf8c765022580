"""`python -m mnist_hydra.export run=RUN_DIR format=FORMAT`: export a trained run (see mnist_hydra/apps/export.py)."""

from mnist_hydra.apps.export import main

if __name__ == "__main__":
    main()
