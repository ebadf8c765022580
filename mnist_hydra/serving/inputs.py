"""Request bodies to model inputs: JSON pixels and batches checked, with errors that name the problem."""

from __future__ import annotations

from typing import Any

import numpy as np
import pydantic_core

from mnist_hydra.data.preparation import DIGIT_SHAPE

JSON_FORMS = '{"pixels": [[...width numbers...] x height]} or {"images": [pixels, ...]}'
Shape = tuple[int, int, int]


class InputError(Exception):
    """A request the API cannot use: its HTTP status and a one-line reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def parse_json(body: bytes, max_batch: int, shape: Shape = DIGIT_SHAPE) -> tuple[np.ndarray, bool]:
    """A JSON body as float32 images (n, height, width[, channels]) in [0, 1], and whether it was a batch."""
    return json_images(decode_json(body), max_batch, shape)


def decode_json(body: bytes) -> Any:
    """The body's JSON value (NaN and Infinity allowed: json_images names them); InputError if it is not JSON."""
    try:
        return pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError as err:
        raise InputError(400, f"the body is not valid JSON ({err}); send {JSON_FORMS}") from None


def json_images(value: Any, max_batch: int, shape: Shape = DIGIT_SHAPE) -> tuple[np.ndarray, bool]:
    """A decoded JSON body's images of `shape`, float32 (n, height, width) when grey, else (n, height, width,
    channels), in [0, 1]; and whether it was a batch."""
    if not isinstance(value, dict) or not ({"pixels", "images"} & set(value)):
        got = f"an object with keys {sorted(value)[:5]}" if isinstance(value, dict) else f"a JSON {_kind(value)}"
        raise InputError(422, f"expected {JSON_FORMS}; got {got}")
    if "pixels" in value and "images" in value:
        raise InputError(422, 'send either "pixels" (one image) or "images" (a batch), not both')
    if "pixels" in value:
        return pixels_array(value["pixels"], "pixels", shape)[np.newaxis], False
    images = value["images"]
    if not isinstance(images, list) or not images:
        raise InputError(422, f'"images" must be a non-empty list of {_size(shape)} images; got {_describe(images)}')
    if len(images) > max_batch:
        raise InputError(
            422,
            f'"images" holds {len(images)} images, over the limit of {max_batch} a request '
            "(serve.max_batch); split the batch",
        )
    try:
        batch = _numbers(images)
    except (ValueError, TypeError):
        batch = None
    if batch is None or batch.shape[1:] != _array_shape(shape):
        for i, image in enumerate(images):  # find and name the first bad one
            pixels_array(image, f"images[{i}]", shape)
        assert batch is not None  # images that each pass make an array
        raise InputError(422, f'"images" must be a list of {_size(shape)} images; got shape {batch.shape}')
    return np.stack([_scaled(image, f"images[{i}]") for i, image in enumerate(batch)]), True


def pixels_array(value: Any, where: str, shape: Shape = DIGIT_SHAPE) -> np.ndarray:
    """One image's numbers as float32 of `shape` ((height, width) when grey) in [0, 1]; InputError naming
    `where` otherwise."""
    try:
        array = _numbers(value)
    except (ValueError, TypeError):
        raise InputError(422, f"{where} must be {_rows_of(shape)}; got {_describe(value, shape)}") from None
    if array.shape != _array_shape(shape):
        raise InputError(422, f"{where} must be {_rows_of(shape)}; got {_describe(value, shape)}")
    return _scaled(array, where)


def _numbers(value: Any) -> np.ndarray:
    """JSON's nested lists of numbers as float32 (a null as NaN); TypeError for strings or booleans among them
    (NumPy would read "0" and true as numbers), ValueError for ragged lists."""
    array = np.asarray(value)  # ValueError for ragged lists
    # NumPy reads true, false and "0" among numbers as numbers, so each leaf is looked at (a few ms for a batch);
    # a null among numbers is NaN, refused by _scaled with its place.
    leaves = array if array.dtype.kind == "O" else np.asarray(value, dtype=object)
    if array.dtype.kind not in "iufO" or not all(x is None or type(x) in (int, float) for x in leaves.flat):
        raise TypeError(f"not numbers: {array.dtype}")
    with np.errstate(over="ignore"):  # 1e308 becomes inf, refused by _scaled with its place
        return np.asarray(array, dtype=np.float32)


def _array_shape(shape: Shape) -> tuple[int, ...]:
    """One image's array shape in JSON: rows of numbers when grey, rows of channel lists otherwise."""
    return shape[:2] if shape[2] == 1 else shape


def _size(shape: Shape) -> str:
    return f"{shape[0]}x{shape[1]}" + ("" if shape[2] == 1 else f"x{shape[2]}")


def _rows_of(shape: Shape) -> str:
    """'28 rows of 28 numbers', '32 rows of 32 [r, g, b] lists'."""
    cell = "numbers" if shape[2] == 1 else ("[r, g, b] lists" if shape[2] == 3 else f"lists of {shape[2]} numbers")
    return f"{shape[0]} rows of {shape[1]} {cell}"


def _scaled(array: np.ndarray, where: str) -> np.ndarray:
    finite = np.isfinite(array)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise InputError(
            422,
            f"{where} holds NaN, infinite or null values (first at row {row}, column {col}); "
            "send numbers in [0, 1] or 0..255",
        )
    low, high = float(array.min()), float(array.max())
    if low >= 0 and high <= 1:
        return array
    if low >= 0 and high <= 255:
        scaled: np.ndarray = array / np.float32(255)
        return scaled
    raise InputError(422, f"{where} values must lie in [0, 1] or in 0..255; got min {low:g}, max {high:g}")


def _describe(value: Any, shape: Shape = DIGIT_SHAPE) -> str:
    """'a list of 27 rows', 'rows of lengths 28 to 30', 'a JSON string' for an error message."""
    if not isinstance(value, list):
        return f"a JSON {_kind(value)}"
    if not value:
        return "an empty list"
    lengths = {len(row) if isinstance(row, list) else -1 for row in value}
    if -1 in lengths:
        bad = next(row for row in value if not isinstance(row, list))
        return f"{_rows(len(value))}, one of them a JSON {_kind(bad)} instead of a list of numbers"
    if len(lengths) > 1:
        return f"{_rows(len(value))} of lengths {min(lengths)} to {max(lengths)}"
    width = lengths.pop()
    inner = [x for row in value for x in row if not isinstance(x, (int, float)) or isinstance(x, bool)]
    if inner and width == shape[1] and len(value) == shape[0]:
        return f"a JSON {_kind(inner[0])} among the numbers"
    return f"{_rows(len(value))} of {width}"


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
