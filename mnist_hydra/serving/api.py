"""The HTTP API and the draw-a-digit page: `create_app(...)` returns the FastAPI application.

GET / (the page), GET /health, GET /model, POST /predict (an image upload, {"pixels": ...} or
{"images": [...]}), POST /collect (one image and its label, saved when serve.collect_dir is set). Every bad
request gets a 4xx JSON body {"detail": "..."} naming the problem.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import PIL.Image
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from mnist_hydra.data.image_files import ImageError
from mnist_hydra.data.preparation import DIGIT, DIGIT_SHAPE, Preparation, prepare_bytes
from mnist_hydra.runs import rundir
from mnist_hydra.serving import schemas
from mnist_hydra.serving.batcher import MicroBatcher
from mnist_hydra.serving.collect import Collector
from mnist_hydra.serving.compiled_model import Predictor, describe
from mnist_hydra.serving.inputs import JSON_FORMS, InputError, decode_json, json_images
from mnist_hydra.serving.limits import BodyLimit, BodyTimeout, BodyTooLarge
from mnist_hydra.serving.settings import ServeSettings

log = logging.getLogger(__name__)

# Uploads up to this many pixels are preprocessed on the event loop (about a millisecond for a
# 280x280 drawing); larger ones in a worker thread.
INLINE_PIXELS = 640 * 640

ACCEPTED = f"multipart/form-data with the image in the field 'file', or application/json with {JSON_FORMS}"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": words}
    for status, words in (
        (400, "An empty or malformed body"),
        (408, "A body not all arrived serve.body_timeout_s seconds after the request's headers"),
        (413, "A body over serve.max_bytes"),
        (415, "A content type other than multipart/form-data or application/json"),
        (
            422,
            "Not an image, no digit in it, too many pixels, a wrong pixel shape, NaN or out-of-range values, "
            "a batch over serve.max_batch",
        ),
    )
}
COLLECT_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: ERRORS[status] for status in (400, 408, 413, 415)},
    403: {
        "model": schemas.ErrorResponse,
        "description": "Collection is off: start the server with serve.collect_dir=DIR",
    },
    422: {
        "model": schemas.ErrorResponse,
        "description": "As for /predict; a missing label or one that is not a class "
        "of the model; a batch (send one image)",
    },
    503: {
        "model": schemas.ErrorResponse,
        "description": "The server cannot write in serve.collect_dir (507: its disk is full); /predict still works",
    },
}
COLLECT_OFF = (
    "collecting labelled drawings is off on this server; start it with serve.collect_dir=DIR "
    "(python -m mnist_hydra.serve run=RUN_DIR serve.collect_dir=DIR) to save them as DIR/CLASS/TIME.png"
)


def create_app(
    run_dir: str | os.PathLike[str] | None = None,
    *,
    predictor: Predictor | None = None,
    settings: ServeSettings | None = None,
    top_k: int = 3,
) -> FastAPI:
    """The API for `run_dir`'s model (loaded at start-up), or for an already loaded `predictor`.

    Args:
      run_dir: a training run's directory; loaded in the app's lifespan unless `predictor` is given.
      predictor: a loaded model to serve instead (tests, or a server that loads it before it serves).
      settings: request limits and batching (ServeSettings' defaults if None).
      top_k: classes listed per prediction unless the request asks for another count.
    """
    if (run_dir is None) == (predictor is None):
        raise ValueError("give exactly one of run_dir and predictor")
    settings = settings or ServeSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        served = predictor
        if served is None:
            assert run_dir is not None  # create_app takes exactly one of the two
            served = await anyio.to_thread.run_sync(Predictor, Path(run_dir), settings.threads)
        collector = Collector(settings.collect_dir, served.class_names) if settings.collect_dir else None
        batcher = MicroBatcher(
            served.predict, max_images=max(settings.max_batch, 64), wait_s=settings.batch_wait_ms / 1000
        )
        await batcher.start()
        app.state.predictor, app.state.batcher, app.state.started = served, batcher, time.monotonic()
        app.state.collector = collector
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="mnist_hydra",
        version="1",
        lifespan=lifespan,
        summary="Predict handwritten digits (or Fashion-MNIST articles) with a trained run's model.",
    )
    app.state.settings, app.state.top_k = settings, top_k
    # The run's input shape, for the schema before the model is loaded: as the run recorded it.
    app.state.input_shape = _input_shape(predictor) if predictor is not None else rundir.input_shape(Path(str(run_dir)))
    # Decoding a big image is CPU-bound and takes memory: at most one per core at a time.
    app.state.decoders = anyio.CapacityLimiter(max(os.cpu_count() or 1, 1))
    app.include_router(page_router)
    app.include_router(api_router)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_bytes, timeout_s=settings.body_timeout_s)
    app.openapi = functools.partial(_openapi_with_limits, app, settings)  # type: ignore[method-assign]
    return app


def _openapi_with_limits(app: FastAPI, settings: ServeSettings) -> dict[str, Any]:
    """FastAPI's schema, with this server's own batch limit (serve.max_batch) on `images` where a body takes it."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        image = schemas.image_schema(app.state.input_shape)
        forms = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
        collect = schema["paths"]["/collect"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        for form in [*forms, collect]:
            properties = form.get("properties", {})
            if "pixels" in properties:
                properties["pixels"] = {**properties["pixels"], **image}
                properties["pixels"].pop("anyOf", None)
            if "images" in properties:
                properties["images"]["items"] = image
                properties["images"]["maxItems"] = settings.max_batch
        app.openapi_schema = schema
    return app.openapi_schema


page_router = APIRouter(tags=["page"])
api_router = APIRouter(tags=["api"], responses={500: {"model": schemas.ErrorResponse, "description": "A bug"}})


# HEAD too, for the uptime checks and load balancers that ask for a page or health without its body.
@page_router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, summary="The draw-a-digit page")
async def page() -> HTMLResponse:
    return HTMLResponse(_page_html(), headers={"Cache-Control": "no-cache"})


@functools.cache
def _page_html() -> str:
    return resources.files("mnist_hydra.serving").joinpath("page.html").read_text(encoding="utf-8")


@api_router.api_route("/health", methods=["GET", "HEAD"], response_model=schemas.Health, summary="Is the server up")
async def health(request: Request) -> dict[str, Any]:
    state = request.app.state
    return {
        "status": "ok",
        "run": state.predictor.info["run"],
        "uptime_seconds": round(time.monotonic() - state.started, 3),
        "images_predicted": state.batcher.images,
        "model_calls": state.batcher.calls,
        "worker_pid": os.getpid(),
    }


@api_router.get("/model", response_model=schemas.ModelInfo, summary="The run being served")
async def model_info(request: Request) -> dict[str, Any]:
    return {**request.app.state.predictor.info, "collecting": request.app.state.collector is not None}


PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": schemas.UploadRequest.model_json_schema()},
        "application/json": {
            "schema": {"oneOf": [schemas.PixelsRequest.model_json_schema(), schemas.BatchRequest.model_json_schema()]}
        },
    },
}


@api_router.post(
    "/predict",
    response_model=schemas.Prediction | schemas.BatchPrediction,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra={"requestBody": PREDICT_BODY},
    summary="Predict one image file, one image as pixels, or a batch",
)
async def predict(
    request: Request,
    top_k: int | None = Query(None, ge=1, description="Classes in top_k (default: the server's top_k)"),
    include_image: bool = Query(False, description="Also return the 28x28 image the model saw"),
) -> dict[str, Any]:
    """An image file (multipart field `file`): preprocessed exactly as `mnist_hydra.predict` does.
    `{"pixels": 28x28}` or `{"images": [28x28, ...]}`: taken as MNIST-style images, not preprocessed."""
    state = request.app.state
    predictor: Predictor = state.predictor
    k = min(top_k or state.top_k, predictor.num_classes)
    received = await _read_images(request, state)
    probabilities = await state.batcher.predict(received.images)
    predictions = [describe(p, predictor.class_names, k) for p in probabilities]
    if include_image:
        for prediction, image in zip(predictions, received.images, strict=False):
            prediction["image"] = np.round(_as_rows(image), 3).tolist()
    return {"predictions": predictions} if received.batch else predictions[0]


COLLECT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": schemas.LabelledUpload.model_json_schema()},
        "application/json": {"schema": schemas.LabelledPixels.model_json_schema()},
    },
}


@api_router.post(
    "/collect",
    status_code=201,
    response_model=schemas.Collected,
    responses=COLLECT_ERRORS,
    openapi_extra={"requestBody": COLLECT_BODY},
    summary="Save one image with its class, for training (serve.collect_dir)",
)
async def collect(request: Request) -> dict[str, Any]:
    """The image as /predict takes it (a file, preprocessed; or `pixels`) and its `label`, a class name or index:
    the 28x28 image the model sees is saved as serve.collect_dir/CLASS/TIME.png, never over another file."""
    state = request.app.state
    collector: Collector | None = state.collector
    if collector is None:
        raise InputError(403, COLLECT_OFF)
    received = await _read_images(request, state)
    if received.batch:
        raise InputError(
            422, 'send one image to /collect ({"pixels": ..., "label": ...} or a file with a label field), not "images"'
        )
    if "label" not in received.fields:
        raise InputError(
            422,
            f"the request has no label; send the image's class, a name or an index "
            f'0..{len(collector.class_names) - 1}: -F label=7 beside the file, or "label": 7 '
            f'beside "pixels"',
        )
    label = collector.label(received.fields["label"])
    saved = await anyio.to_thread.run_sync(collector.save, received.images[0], label)
    return {"label": label, "class_name": collector.class_names[label], "file": saved.as_posix()}


def _input_shape(predictor: Any) -> tuple[int, int, int]:
    """The served model's (height, width, channels); a predictor that does not say (a test's stand-in) takes
    what a run without the record takes: 28x28 grey digits."""
    shape: tuple[int, int, int] = tuple(getattr(predictor, "input_shape", DIGIT_SHAPE))
    return shape


def _as_rows(image: np.ndarray) -> np.ndarray:
    """An image as JSON states it: (height, width) when grey, else (height, width, channels)."""
    return image.reshape(image.shape[:2]) if image.ndim == 2 or image.shape[-1] == 1 else image


@dataclass
class Received:
    """A request's images (n, height, width[, channels]) in [0, 1], whether it was a batch, and its other fields."""

    images: np.ndarray
    batch: bool
    fields: Mapping[str, Any] = field(default_factory=dict)


async def _read_images(request: Request, state: Any) -> Received:
    """The request's images and other form fields or JSON keys; InputError if unusable."""
    settings: ServeSettings = state.settings
    prep: Preparation = getattr(state.predictor, "preparation", DIGIT)
    if request.headers.get("content-length") == "0":
        raise InputError(400, f"the request body is empty; send {ACCEPTED}")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        data, name, fields = await _upload(request)
        if _pixel_count(data) <= INLINE_PIXELS:  # a drawing or a small photo: cheaper than a thread hop
            image = _preprocess(data, name, prep, settings.max_pixels)
        else:  # a big picture would hold up every other request on the event loop
            image = await anyio.to_thread.run_sync(
                _preprocess, data, name, prep, settings.max_pixels, limiter=state.decoders
            )
        return Received(image[np.newaxis], False, fields)
    if media == "application/json" or media.endswith("+json"):
        body = await request.body()
        if not body.strip():
            raise InputError(400, f"the request body is empty; send {JSON_FORMS}")
        value = decode_json(body)
        images, batch = json_images(value, settings.max_batch, _input_shape(state.predictor))
        return Received(images, batch, value)
    raise InputError(415, f"content type {media or '(none)'} is not accepted; send {ACCEPTED}")


async def _upload(request: Request) -> tuple[bytes, str, dict[str, str]]:
    """The uploaded file's bytes, its name, and the form's text fields."""
    try:
        form = await request.form(max_files=1, max_fields=8)
    except StarletteHTTPException as err:  # python-multipart's words for a broken body; add what would do
        raise InputError(
            err.status_code,
            f"the multipart body could not be read ({str(err.detail).rstrip('.')}); "
            "send one image in the field 'file', as curl -F file=@digit.png does",
        ) from None
    upload = form.get("file")
    if upload is None:
        fields = ", ".join(sorted(form.keys())) or "none"
        raise InputError(
            422, f"the multipart body has no field 'file' (its fields: {fields}); send the image as file=@digit.png"
        )
    if not isinstance(upload, UploadFile):
        raise InputError(422, "the multipart field 'file' holds text, not a file; send the image as file=@digit.png")
    data = await upload.read()
    name = os.path.basename(upload.filename or "") or "file"
    if not data:
        raise InputError(422, f"{name}: the uploaded file is empty (0 bytes)")
    return data, name, {key: value for key, value in form.items() if isinstance(value, str)}


def _pixel_count(data: bytes) -> float:
    """Width x height from the image's header (no decoding); infinity when Pillow cannot tell."""
    # Declared: Pillow types __enter__ as typing.Self, which Python 3.10 (our oldest) lacks, so mypy makes it Any.
    image: PIL.Image.Image
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return image.width * image.height
    except Exception:  # not an image, or a decompression bomb: _preprocess words the error
        return math.inf


def _preprocess(data: bytes, name: str, prep: Preparation, max_pixels: int) -> np.ndarray:
    """An uploaded file made the model's input as the run's data was (digit or resize), grey as (height, width)."""
    try:
        return _as_rows(prepare_bytes(data, prep, name, max_pixels))
    except ImageError as err:
        raise InputError(422, str(err)) from None


def _install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON {"detail": one line}: 4xx for the client's mistakes, 500 only for bugs."""

    @app.exception_handler(InputError)
    async def input_error(request: Request, err: InputError) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=err.status)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, err: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=413, headers={"Connection": "close"})

    @app.exception_handler(BodyTimeout)
    async def too_slow(request: Request, err: BodyTimeout) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=408, headers={"Connection": "close"})

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, err: ClientDisconnect) -> Response:
        # The client closed its connection before its body arrived: its own doing, not the server's, and
        # nobody is left to answer. One line for whoever turns the log level down to INFO; no traceback.
        log.info("%s %s: the client closed the connection before its body arrived", request.method, request.url.path)
        return Response(status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{' '.join(str(part) for part in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors()
        )
        return JSONResponse({"detail": problems or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        detail = err.detail if isinstance(err.detail, str) else str(err.detail)
        return JSONResponse({"detail": detail}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(
            {
                "detail": f"internal error ({type(err).__name__}); this is a bug in mnist_hydra, "
                "the server goes on serving"
            },
            status_code=500,
        )
