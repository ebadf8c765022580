"""The `augment` group: random changes to the training images, made by Keras's preprocessing layers at the
model's input, so they act in training (fit) and are identity in evaluate, predict, serving and export.

`augment=none` (the default) adds no layer at all: the model is exactly the network's. `augment=digits` is what
a handwritten digit can undergo and stay the same digit (small shifts and turns, black fill); `augment=photos`
what a photo of an object can (a mirror image, shifts, zoom and contrast, the edges reflected).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnist_hydra.errors import require

if TYPE_CHECKING:
    import keras

FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")
FILLS = ("constant", "reflect", "nearest", "wrap")  # Keras's fill modes


@dataclass
class AugmentConfig:
    """Random layers at the model's input, each off at 0 (or none); they act only in training."""

    name: str = "none"  # preset name, kept for the record: none, digits, photos
    flip: str = "none"  # random mirror image: none, horizontal, vertical, horizontal_and_vertical
    shift: float = 0.0  # largest random translation, as a fraction of the image side; 0 = off
    rotation: float = 0.0  # largest random rotation, degrees either way; 0 = off
    zoom: float = 0.0  # largest random zoom in or out, as a fraction of the image side; 0 = off
    contrast: float = 0.0  # largest random contrast change, as a fraction (0.2: x0.8 to x1.2); 0 = off
    fill_mode: str = "constant"  # what fills the frame a move uncovers: constant (black), reflect, nearest, wrap

    def check(self) -> None:
        require(self.flip in FLIPS, "flip", self.flip, f"one of {', '.join(FLIPS)}")
        require(0 <= self.shift <= 0.5, "shift", self.shift, "a fraction of the side in [0, 0.5]; 0 = off")
        require(0 <= self.rotation <= 180, "rotation", self.rotation, "degrees in [0, 180]; 0 = off")
        require(0 <= self.zoom <= 0.5, "zoom", self.zoom, "a fraction of the side in [0, 0.5]; 0 = off")
        require(0 <= self.contrast < 1, "contrast", self.contrast, "a fraction in [0, 1); 0 = off")
        require(self.fill_mode in FILLS, "fill_mode", self.fill_mode, f"one of {', '.join(FILLS)}")

    @property
    def active(self) -> bool:
        """Whether any layer is on."""
        return self.flip != "none" or any((self.shift, self.rotation, self.zoom, self.contrast))


def augmentation_layers(cfg: AugmentConfig) -> list[keras.layers.Layer]:
    """The configured random layers, in a fixed order; [] when none is on."""
    from keras import layers

    # Constant fill is black (0): MNIST's background; reflect would mirror a digit's strokes into the frame.
    fill = {"fill_mode": cfg.fill_mode, "fill_value": 0.0}
    stack: list[keras.layers.Layer] = []
    if cfg.flip != "none":
        stack.append(layers.RandomFlip(cfg.flip, name="augment_flip"))
    if cfg.shift:
        stack.append(layers.RandomTranslation(cfg.shift, cfg.shift, **fill, name="augment_shift"))
    if cfg.rotation:
        # Keras takes the rotation as a fraction of a full turn.
        stack.append(layers.RandomRotation(cfg.rotation / 360, **fill, name="augment_rotation"))
    if cfg.zoom:
        stack.append(layers.RandomZoom(cfg.zoom, cfg.zoom, **fill, name="augment_zoom"))
    if cfg.contrast:
        # The model's input is scaled to [0, 1]; Keras assumes 0..255 unless told.
        stack.append(layers.RandomContrast(cfg.contrast, value_range=(0.0, 1.0), name="augment_contrast"))
    return stack


def with_augmentation(model: keras.Model, stack: list[keras.layers.Layer]) -> keras.Model:
    """`model` with `stack` at its input; `model` itself when `stack` is empty.

    A Sequential network gets the layers spliced in at its top level (the model a network that built them
    itself would be); any other model is called by a Sequential that runs them first.
    """
    import keras

    if not stack:
        return model
    shape = tuple(model.input_shape[1:])
    inner = model.layers if isinstance(model, keras.Sequential) else [model]
    return keras.Sequential([keras.Input(shape=shape), *stack, *inner], name=model.name)
