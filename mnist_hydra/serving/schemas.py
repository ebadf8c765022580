"""The HTTP API's request and response bodies, as pydantic models (they are the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

# The ranges the API checks (serving/inputs.py), in the schema, so that clients and generated code see them:
# finite numbers in 0..255 (all in [0, 1] are taken as they are). The shape is the served run's own
# (height rows of width numbers, or of [r, g, b] triples): create_app writes it into its OpenAPI with
# `image_schema`, as inputs.py checks it.
Pixel = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False)]
Image28 = list[list[Pixel]] | list[list[list[Pixel]]]


def image_schema(shape: tuple[int, int, int]) -> dict[str, Any]:
    """The JSON schema of one image of `shape` (height, width, channels): rows of numbers, or of channel lists."""
    height, width, channels = shape
    pixel: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 255}
    if channels > 1:
        pixel = {"type": "array", "items": pixel, "minItems": channels, "maxItems": channels}
    row = {"type": "array", "items": pixel, "minItems": width, "maxItems": width}
    return {"type": "array", "items": row, "minItems": height, "maxItems": height}


class PixelsRequest(BaseModel):
    """One image as numbers, in the served run's shape (GET /model's input_shape)."""

    pixels: Image28 = Field(
        description="One image as the model takes it: height rows of width numbers (grey; for a digit run "
        "28 rows of 28, white digit on black, as MNIST), or of [r, g, b] for a colour run. All in [0, 1] "
        "are taken as they are; otherwise they must lie in 0..255 and are divided by 255. Not preprocessed."
    )


class BatchRequest(BaseModel):
    """Several images as numbers, predicted in one call."""

    # min_length 1; the most is the server's serve.max_batch, which create_app writes into its own schema.
    images: list[Image28] = Field(
        min_length=1, description="Images as in `pixels`, each of the run's shape; at most serve.max_batch."
    )


class UploadRequest(BaseModel):
    """One image file (PNG, JPEG or any format Pillow reads), preprocessed as `mnist_hydra.predict` does."""

    file: bytes = Field(
        json_schema_extra={"format": "binary"},
        description="The picture: any size, colour or grayscale, dark on light or light on dark.",
    )


LABEL = "The image's class: a class name of GET /model's class_names, or its index"
# A class is named by a non-empty name or a non-negative index: "" and -1 name none, and the schema says so.
ClassName = Annotated[str, Field(min_length=1)]
ClassIndex = Annotated[int, Field(ge=0)]


class LabelledPixels(PixelsRequest):
    """POST /collect: one image as numbers, and its class."""

    label: ClassIndex | ClassName = Field(description=LABEL)


class LabelledUpload(UploadRequest):
    """POST /collect: one image file, preprocessed as for /predict, and its class."""

    label: ClassName = Field(description=LABEL)


class Collected(BaseModel):
    """Where POST /collect saved the image."""

    label: int = Field(description="Class index")
    class_name: str
    file: str = Field(
        description="The PNG's path inside serve.collect_dir: CLASS_FOLDER/TIME.png (the class name, "
        "with / and \\ as -)"
    )


class ClassProbability(BaseModel):
    label: int = Field(description="Class index")
    class_name: str = Field(description="The class's name: the digit, or the Fashion-MNIST article")
    probability: float


class Prediction(BaseModel):
    """What the model reads in one image."""

    label: int = Field(description="The most probable class")
    class_name: str
    probability: float = Field(description="Its probability")
    probabilities: list[float] = Field(description="Every class's probability, by label")
    top_k: list[ClassProbability] = Field(description="The top_k classes, most probable first")
    image: Image28 | None = Field(
        None,
        description="With ?include_image=true: the image the model saw, in its input shape, "
        "in [0, 1] (after preprocessing, for uploads)",
    )


class BatchPrediction(BaseModel):
    predictions: list[Prediction] = Field(description="One per image, in the request's order")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong with the request, and what would be accepted")


class Health(BaseModel):
    status: str = "ok"
    run: str
    uptime_seconds: float
    images_predicted: int  # by this worker process, since it started
    model_calls: int  # this worker's model calls (several requests can share one)
    worker_pid: int  # the process that answered: with serve.workers > 1, each keeps its own counts


class ModelInfo(BaseModel):
    """The run being served."""

    run: str = Field(description="The run directory's name")
    run_dir: str
    model: str = Field(description="model.name of the run's config")
    data: str = Field(description="data.name: mnist or fashion_mnist")
    precision: str
    params: int
    test_accuracy: float | None = None
    trained: str | None = Field(None, description="When the run started (ISO 8601)")
    class_names: list[str] = Field(description="Every class's name, by label: the run's own")
    # Defaults: what a run without the record is, 28x28 grey digits.
    input_shape: list[int] = Field(
        default_factory=lambda: [28, 28, 1], description="[height, width, channels] of the images the model takes"
    )
    preprocessing: dict[str, Any] = Field(
        default_factory=lambda: {"preprocess": "digit"},
        description="How an uploaded file is made such an image: digit, or resize with its size and channels",
    )
    collecting: bool = Field(False, description="Whether POST /collect saves labelled images (serve.collect_dir)")
    config: dict[str, Any] = Field(description="The run's composed config")
    metrics: dict[str, Any] = Field(description="The run's metrics.json")
