"""`python -m mnist_hydra [overrides]`: see mnist_hydra.cli."""

from mnist_hydra.cli import main

if __name__ == "__main__":
    main()
