"""mnist_hydra: config-driven MNIST training with Hydra and TensorFlow/Keras."""

__version__ = "0.1.0"
