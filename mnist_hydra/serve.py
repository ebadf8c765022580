"""`python -m mnist_hydra.serve run=RUN_DIR`: serve a trained run over HTTP (see mnist_hydra/apps/serve.py)."""

from mnist_hydra.apps.serve import main

if __name__ == "__main__":
    main()
