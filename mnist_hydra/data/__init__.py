"""Data sets: finding, reading and verifying them, input pipelines, and MNIST-style preprocessing of pictures."""
