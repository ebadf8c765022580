"""Networks, one registered builder each; Keras is imported only when a model is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mnist_hydra.errors import require
from mnist_hydra.registry import Registry

if TYPE_CHECKING:
    import keras

MODELS: Registry[Callable[[Any, Shape, int], keras.Model]] = Registry("model")

Shape = tuple[int, int, int]


@dataclass
class CNNConfig:
    """The reference network: one conv block, one hidden dense layer."""

    name: str = "cnn"
    filters: int = 28  # Conv2D filters
    kernel_size: int = 3  # Conv2D kernel side, pixels
    pool_size: int = 2  # MaxPooling2D window side, pixels
    dense_units: int = 128  # width of the hidden Dense layer
    dropout: float = 0.0  # dropout rate before the output layer; 0 = no dropout layer

    def check(self) -> None:
        require(self.filters >= 1, "filters", self.filters, "an integer >= 1")
        require(self.kernel_size >= 1, "kernel_size", self.kernel_size, "an integer >= 1")
        require(self.pool_size >= 1, "pool_size", self.pool_size, "an integer >= 1")
        require(self.dense_units >= 1, "dense_units", self.dense_units, "an integer >= 1")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "a rate in [0, 1)")

    def check_shape(self, shape: Shape) -> None:
        """FieldError when a kernel or pool window is larger than what the data's images leave it."""
        side = min(shape[:2])
        require(self.kernel_size <= side, "kernel_size", self.kernel_size, f"an integer from 1 to {side}{_of(shape)}")
        conv_side = side - self.kernel_size + 1
        require(
            self.pool_size <= conv_side,
            "pool_size",
            self.pool_size,
            f"an integer from 1 to {conv_side} (the conv output side for kernel_size={self.kernel_size}{_of(shape)})",
        )


@dataclass
class DeepCNNConfig:
    """Conv blocks of [Conv-BatchNorm-ReLU] x convs_per_block -> MaxPool -> Dropout, then a dense head."""

    name: str = "cnn_deep"
    filters: list[int] = field(default_factory=lambda: [32, 64])  # Conv2D filters, one entry per block
    convs_per_block: int = 2  # Conv-BatchNorm-ReLU layers in each block
    kernel_size: int = 3  # Conv2D kernel side, pixels ("same" padding)
    dense_units: int = 128  # width of the hidden Dense layer
    dropout: float = 0.25  # dropout rate after each conv block
    dense_dropout: float = 0.5  # dropout rate after the hidden Dense layer

    def check(self) -> None:
        # Each block halves the side: 28 -> 14 -> 7 -> 3; a fourth would leave 1 pixel.
        require(1 <= len(self.filters) <= 3, "filters", list(self.filters), "a list of 1 to 3 filter counts")
        require(all(f >= 1 for f in self.filters), "filters", list(self.filters), "filter counts >= 1")
        require(self.convs_per_block >= 1, "convs_per_block", self.convs_per_block, "an integer >= 1")
        require(1 <= self.kernel_size <= 7, "kernel_size", self.kernel_size, "an integer from 1 to 7")
        require(self.dense_units >= 1, "dense_units", self.dense_units, "an integer >= 1")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "a rate in [0, 1)")
        require(0 <= self.dense_dropout < 1, "dense_dropout", self.dense_dropout, "a rate in [0, 1)")

    def check_shape(self, shape: Shape) -> None:
        """FieldError when the blocks' poolings would leave no pixel of the data's images."""
        side = min(shape[:2])
        require(
            side >> len(self.filters) >= 1,
            "filters",
            list(self.filters),
            f"at most {side.bit_length() - 1} blocks{_of(shape)}, each halving the side",
        )


@dataclass
class CNN2Config:
    """A small two-conv network made for wall-clock time (tuomaso/train_mnist_fast's): 99% MNIST in one epoch."""

    name: str = "cnn2"
    filters: list[int] = field(default_factory=lambda: [24, 32])  # Conv2D filters, first and second conv
    kernel_sizes: list[int] = field(default_factory=lambda: [5, 3])  # each conv's kernel side ("valid" padding)
    dense_units: int = 256  # width of the hidden Dense layer

    def check(self) -> None:
        require(len(self.filters) == 2, "filters", list(self.filters), "two filter counts, e.g. [24,32]")
        require(all(f >= 1 for f in self.filters), "filters", list(self.filters), "filter counts >= 1")
        require(len(self.kernel_sizes) == 2, "kernel_sizes", list(self.kernel_sizes), "two kernel sides, e.g. [5,3]")
        require(all(k >= 1 for k in self.kernel_sizes), "kernel_sizes", list(self.kernel_sizes), "kernel sides >= 1")
        require(self.dense_units >= 1, "dense_units", self.dense_units, "an integer >= 1")

    def check_shape(self, shape: Shape) -> None:
        """FieldError unless conv -> pool 2 -> conv -> pool 2 leaves at least one pixel of the data's images."""
        side = min(shape[:2])
        first, second = self.kernel_sizes
        ok = first <= side - 1 and second <= (side - first + 1) // 2 - 1
        require(
            ok,
            "kernel_sizes",
            list(self.kernel_sizes),
            f"kernel sides that leave a pixel after both convs{_of(shape)}, e.g. [5,3]",
        )


@dataclass
class MLPConfig:
    """A fully connected network on the flattened image."""

    name: str = "mlp"
    hidden_units: list[int] = field(default_factory=lambda: [256, 128])  # width of each hidden layer
    dropout: float = 0.2  # dropout rate after each hidden layer

    def check(self) -> None:
        require(
            all(u >= 1 for u in self.hidden_units),
            "hidden_units",
            list(self.hidden_units),
            "a list of layer widths >= 1",
        )
        require(0 <= self.dropout < 1, "dropout", self.dropout, "a rate in [0, 1)")


@dataclass
class ResNetConfig:
    """A small residual network for 32-64 px colour images (ResNet-20 by default, as in He et al. 2016, section 4.2)."""

    name: str = "resnet"
    width: int = 16  # filters of the stem and the first stage; each later stage doubles them
    depth: int = 3  # residual blocks per stage (3: ResNet-20, 5: ResNet-32, 9: ResNet-56)
    stages: int = 3  # stages of blocks; each after the first halves the image side (stride 2)
    dropout: float = 0.0  # dropout rate before the output layer; 0 = no dropout layer

    def check(self) -> None:
        require(self.width >= 1, "width", self.width, "an integer >= 1 (16 in ResNet-20)")
        require(self.depth >= 1, "depth", self.depth, "an integer >= 1 blocks per stage (3 in ResNet-20)")
        # Five stages take a 32 px image down to 2 px; a sixth would leave 1.
        require(1 <= self.stages <= 5, "stages", self.stages, "an integer from 1 to 5 (3 in ResNet-20)")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "a rate in [0, 1)")

    def check_shape(self, shape: Shape) -> None:
        """FieldError when the stages' halvings would leave no pixel of the data's images."""
        side = min(shape[:2])
        require(
            side >> (self.stages - 1) >= 1,
            "stages",
            self.stages,
            f"at most {side.bit_length()} stages{_of(shape)}, each after the first halving the side",
        )


def check_fits(cfg: Any, shape: Shape) -> None:
    """FieldError (its key relative to `model`) when the network `cfg` describes cannot take images of `shape`;
    a network without a `check_shape` (a plugin's) takes any."""
    check = getattr(cfg, "check_shape", None)
    if check is not None:
        check(shape)


def _of(shape: Shape) -> str:
    """', for the data's 28x28 grey images': what a limit that follows the images says of them."""
    from mnist_hydra.data.preparation import describe

    return f", for the data's {describe(shape)} images"


@MODELS.register("cnn", schema=CNNConfig)
def build_cnn(cfg: CNNConfig, input_shape: Shape, num_classes: int) -> keras.Model:
    """Conv2D -> MaxPooling2D -> Flatten -> Dense -> [Dropout] -> Dense softmax."""
    import keras
    from keras import layers

    stack = [
        keras.Input(shape=input_shape),
        layers.Conv2D(cfg.filters, cfg.kernel_size, activation="relu"),
        layers.MaxPooling2D(cfg.pool_size),
        layers.Flatten(),
        layers.Dense(cfg.dense_units, activation="relu"),
    ]
    if cfg.dropout:
        stack.append(layers.Dropout(cfg.dropout))
    stack.append(layers.Dense(num_classes, activation="softmax"))
    return keras.Sequential(stack, name="cnn")


@MODELS.register("cnn_deep", schema=DeepCNNConfig)
def build_cnn_deep(cfg: DeepCNNConfig, input_shape: Shape, num_classes: int) -> keras.Model:
    """VGG-style conv blocks with batch norm and dropout, a dense head."""
    import keras
    from keras import layers

    stack: list[keras.layers.Layer] = [keras.Input(shape=input_shape)]
    for filters in cfg.filters:
        for _ in range(cfg.convs_per_block):
            # No bias: batch norm's beta does that job.
            stack += [
                layers.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=False),
                layers.BatchNormalization(),
                layers.Activation("relu"),
            ]
        stack += [layers.MaxPooling2D(2), layers.Dropout(cfg.dropout)]
    stack += [
        layers.Flatten(),
        layers.Dense(cfg.dense_units, use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.Dropout(cfg.dense_dropout),
        layers.Dense(num_classes, activation="softmax"),
    ]
    return keras.Sequential(stack, name="cnn_deep")


@MODELS.register("cnn2", schema=CNN2Config)
def build_cnn2(cfg: CNN2Config, input_shape: Shape, num_classes: int) -> keras.Model:
    """[Conv2D ReLU -> MaxPooling2D] x 2 -> Flatten -> Dense ReLU -> Dense softmax."""
    import keras
    from keras import layers

    stack: list[keras.layers.Layer] = [keras.Input(shape=input_shape)]
    for filters, kernel in zip(cfg.filters, cfg.kernel_sizes, strict=True):
        stack += [layers.Conv2D(filters, kernel, activation="relu"), layers.MaxPooling2D(2)]
    stack += [
        layers.Flatten(),
        layers.Dense(cfg.dense_units, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ]
    return keras.Sequential(stack, name="cnn2")


@MODELS.register("resnet", schema=ResNetConfig)
def build_resnet(cfg: ResNetConfig, input_shape: Shape, num_classes: int) -> keras.Model:
    """Conv-BN-ReLU stem -> stages of residual blocks (stride 2 between stages) -> global average pool -> softmax."""
    import keras
    from keras import layers

    def conv_bn(x: Any, filters: int, kernel: int, stride: int) -> Any:
        # No bias: batch norm's beta does that job. Momentum 0.9 (PyTorch's 0.1) as the ResNet recipes use: the
        # moving statistics a short run evaluates with catch up in tens of steps, not hundreds.
        x = layers.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=False, kernel_initializer="he_normal"
        )(x)
        return layers.BatchNormalization(momentum=0.9)(x)

    inputs = keras.Input(shape=input_shape)
    x = layers.Activation("relu")(conv_bn(inputs, cfg.width, 3, 1))
    for stage in range(cfg.stages):
        filters = cfg.width * 2**stage
        for block in range(cfg.depth):
            stride = 2 if stage > 0 and block == 0 else 1
            residual = layers.Activation("relu")(conv_bn(x, filters, 3, stride))
            residual = conv_bn(residual, filters, 3, 1)
            # A 1x1 projection where the block changes the side or the filters (He et al.'s option B).
            shortcut = conv_bn(x, filters, 1, stride) if stride != 1 or x.shape[-1] != filters else x
            x = layers.Activation("relu")(layers.Add()([shortcut, residual]))
    x = layers.GlobalAveragePooling2D()(x)
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet")


@MODELS.register("mlp", schema=MLPConfig)
def build_mlp(cfg: MLPConfig, input_shape: Shape, num_classes: int) -> keras.Model:
    """Flatten -> [Dense ReLU -> Dropout] per hidden layer -> Dense softmax."""
    import keras
    from keras import layers

    stack: list[keras.layers.Layer] = [keras.Input(shape=input_shape), layers.Flatten()]
    for units in cfg.hidden_units:
        stack.append(layers.Dense(units, activation="relu"))
        if cfg.dropout:
            stack.append(layers.Dropout(cfg.dropout))
    stack.append(layers.Dense(num_classes, activation="softmax"))
    return keras.Sequential(stack, name="mlp")
