"""The command-line apps: each composes its config with Hydra and makes one library call."""
