"""The HTTP API through FastAPI's TestClient: every form of /predict, the page, the docs, and every bad input."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_hydra.data.digits import preprocess_file
from mnist_hydra.serving.api import create_app
from mnist_hydra.serving.inputs import InputError, parse_json
from tests.conftest import DIGITS, LIMITS


def picture(digit: np.ndarray, size: int = 200, fmt: str = "PNG") -> bytes:
    """The digit as a user would photograph or draw it: dark on white, enlarged."""
    buffer = io.BytesIO()
    Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BICUBIC).save(buffer, fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds (almost) no data: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def upload(client, data: bytes, name: str = "digit.png", **params):
    return client.post("/predict", files={"file": (name, data, "image/png")}, params=params)


# The three forms of /predict.


def test_an_uploaded_picture_is_predicted_with_every_probability_and_the_top_k(client, digits):
    images, labels = digits
    right = 0
    for digit, label in zip(images, labels, strict=False):
        response = upload(client, picture(digit))
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"label", "class_name", "probability", "probabilities", "top_k"}
        assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-4
        assert body["label"] == int(np.argmax(body["probabilities"])) and body["class_name"] == str(body["label"])
        assert [t["label"] for t in body["top_k"]][0] == body["label"] and len(body["top_k"]) == 3
        assert [t["probability"] for t in body["top_k"]] == sorted(
            (t["probability"] for t in body["top_k"]), reverse=True
        )
        right += body["label"] == label
    assert right >= 0.75 * DIGITS  # the small test run scores about 0.85


def test_jpeg_works_and_top_k_and_the_image_the_model_saw_can_be_asked_for(client, digits):
    response = upload(client, picture(digits[0][0], fmt="JPEG"), "digit.jpg", top_k=10, include_image="true")
    body = response.json()
    assert response.status_code == 200 and len(body["top_k"]) == 10
    image = np.array(body["image"])
    assert image.shape == (28, 28) and image.min() == 0 and image.max() == 1


def test_uploads_go_through_exactly_the_preprocessing_and_model_of_the_predict_command(
    client, digits, trained_run, tmp_path
):
    from mnist_hydra.serving.classify_files import predict_images

    path = tmp_path / "seven.png"
    path.write_bytes(picture(digits[0][0], size=300))
    body = upload(client, path.read_bytes(), include_image="true").json()
    assert np.abs(np.array(body["image"]) - preprocess_file(path)).max() <= 0.0005  # the API rounds to 3 decimals
    [record], failures = predict_images(trained_run, path, top_k=3)
    assert failures == [] and record["label"] == body["label"]
    assert record["probability"] == pytest.approx(body["probability"], abs=1e-5)


def test_pixels_in_0_1_and_in_0_255_give_the_same_prediction(client, digits):
    images, labels = digits
    as_bytes = client.post("/predict", json={"pixels": images[0].tolist()}).json()
    as_shares = client.post("/predict", json={"pixels": (images[0] / 255).tolist()}).json()
    assert as_bytes["label"] == as_shares["label"] == labels[0]
    assert np.allclose(as_bytes["probabilities"], as_shares["probabilities"], atol=1e-6)


@pytest.mark.parametrize("key", ["pixels", "images"])
def test_a_pixel_of_255_is_full_ink_and_one_of_256_or_below_0_is_refused(client, digits, key):
    """The edges of 0..255 from both sides, in a real digit: 255 and 0 are read as 1 and 0, as the same image in
    [0, 1] is; 256 and -1 are named in a 422 and the server goes on."""
    image = digits[0][0].astype(np.float64)
    assert image.max() == 255 and image.min() == 0

    def ask(pixels: np.ndarray):
        return client.post(
            "/predict", json={"pixels": pixels.tolist()} if key == "pixels" else {"images": [pixels.tolist()]}
        )

    def probabilities(answer) -> list[float]:
        body = answer.json()
        return (body if key == "pixels" else body["predictions"][0])["probabilities"]

    inside = ask(image)
    assert inside.status_code == 200, inside.text
    assert np.allclose(probabilities(inside), probabilities(ask(image / 255)), atol=1e-6)
    where = "pixels" if key == "pixels" else "images[0]"
    for value, seen in ((256, "got min 0, max 256"), (-1, "got min -1, max 255")):
        outside = image.copy()
        outside[14, 14] = value
        refused = ask(outside)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"] == f"{where} values must lie in [0, 1] or in 0..255; {seen}"
    assert ask(image).status_code == 200


def test_a_batch_returns_one_prediction_per_image_in_order(client, digits):
    images, labels = digits
    batch = client.post("/predict", json={"images": images[:8].tolist()}).json()["predictions"]
    singles = [client.post("/predict", json={"pixels": image.tolist()}).json() for image in images[:8]]
    assert [p["label"] for p in batch] == [p["label"] for p in singles]
    assert np.allclose([p["probabilities"] for p in batch], [p["probabilities"] for p in singles], atol=1e-5)
    assert sum(p["label"] == label for p, label in zip(batch, labels, strict=False)) >= 6


def test_concurrent_requests_share_model_calls_and_get_their_own_answers(predictor, digits):
    import httpx2

    images, _ = digits
    app = create_app(predictor=predictor, settings=LIMITS)

    async def run() -> tuple[list[dict], int]:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
                responses = await asyncio.gather(
                    *(http.post("/predict", json={"pixels": image.tolist()}) for image in images)
                )
                return [r.json() for r in responses], app.state.batcher.calls

    answers, calls = asyncio.run(run())
    alone = predictor.predict(images.astype(np.float32) / 255)
    assert [a["label"] for a in answers] == list(alone.argmax(axis=1))
    assert np.allclose([a["probabilities"] for a in answers], alone, atol=1e-5)
    assert calls < len(images)  # batched: fewer model calls than requests


# The other endpoints.


def test_health_and_model(client, predictor, trained_run):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["images_predicted"] >= 0
    assert health["worker_pid"] == os.getpid()  # the TestClient's app runs in this process
    info = client.get("/model").json()
    assert info["class_names"] == [str(i) for i in range(10)]
    assert info["collecting"] is False  # serve.collect_dir is off by default: the page shows no "this is a ..."
    assert info["model"] == "cnn" and info["data"] == "mnist" and info["params"] == 607_394
    assert info["test_accuracy"] == json.loads((trained_run / "metrics.json").read_text())["test_accuracy"]
    assert info["config"]["trainer"]["epochs"] == 1 and info["metrics"]["status"] == "completed"
    assert re.match(r"\d{4}-\d\d-\d\dT", info["trained"])


def test_a_fashion_mnist_run_answers_with_its_class_names(trained_run, tmp_path, digits):
    import shutil

    import yaml

    from mnist_hydra.serving.compiled_model import Predictor

    run = tmp_path / "fashion"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export"))
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    config["data"]["name"] = "fashion_mnist"  # the names come from the run's data config
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    # ... when its metrics.json records none (a run of an older version; newer ones record them, and those win).
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["class_names"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    with TestClient(create_app(predictor=Predictor(run))) as fashion:
        names = fashion.get("/model").json()["class_names"]
        assert names[0] == "T-shirt/top" and names[9] == "Ankle boot" and len(names) == 10
        answer = fashion.post("/predict", json={"pixels": digits[0][0].tolist()}).json()
        assert answer["class_name"] == names[answer["label"]]
        assert [t["class_name"] for t in answer["top_k"]] == [names[t["label"]] for t in answer["top_k"]]


def test_the_page_is_one_self_contained_html_file(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<canvas id="pad"' in html and 'id="preview"' in html and 'type="file"' in html
    # No outside reference: no URL with a host, no external script, style sheet or font.
    assert not re.search(r"(?:src|href)\s*=\s*[\"'](?!data:|#)", html), re.findall(r"(?:src|href)\s*=\s*\S+", html)
    assert "http://" not in html and "https://" not in html and "@import" not in html and "url(" not in html


def test_head_asks_for_the_page_and_health_without_their_bodies(client):
    for path, kind in (("/", "text/html"), ("/health", "application/json")):
        response = client.head(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), path
        assert response.content == b""
    assert client.head("/predict").status_code == 405  # the others keep their one method


def test_openapi_describes_the_typed_models_and_both_body_forms(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert {"Prediction", "BatchPrediction", "ModelInfo", "Health", "ErrorResponse"} <= set(
        spec["components"]["schemas"]
    )
    assert {"413", "415", "422"} <= set(spec["paths"]["/predict"]["post"]["responses"])
    assert client.get("/docs").status_code == 200


def test_openapi_gives_the_shapes_ranges_and_this_servers_batch_limit(client):
    forms = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
    pixels, batch = forms["application/json"]["schema"]["oneOf"]
    image = pixels["properties"]["pixels"]
    assert (image["minItems"], image["maxItems"]) == (28, 28)
    assert (image["items"]["minItems"], image["items"]["maxItems"]) == (28, 28)
    assert image["items"]["items"] == {"type": "number", "minimum": 0, "maximum": 255}
    assert batch["properties"]["images"]["minItems"] == 1
    assert batch["properties"]["images"]["maxItems"] == LIMITS.max_batch
    assert {k: v for k, v in batch["properties"]["images"]["items"].items() if k != "title"} == {
        k: v for k, v in image.items() if k not in ("title", "description")
    }


# Bodies built from the schema alone, as an OpenAPI fuzzer builds them: each one is accepted.
PIXEL = st.floats(min_value=0, max_value=255, allow_nan=False, allow_infinity=False)
SCHEMA_IMAGE = st.lists(st.lists(PIXEL, min_size=28, max_size=28), min_size=28, max_size=28)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.large_base_example, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        st.builds(lambda x: {"pixels": x}, SCHEMA_IMAGE),
        st.builds(lambda xs: {"images": xs}, st.lists(SCHEMA_IMAGE, min_size=1, max_size=LIMITS.max_batch)),
    )
)
def test_every_body_the_schema_allows_is_predicted(client, body):
    answer = client.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    count = len(body.get("images", [None]))
    assert len(answer.json().get("predictions", [answer.json()])) == count


# Bad input: always a 4xx JSON error naming the problem, and the server goes on serving.

BOMB = png_header(100_000, 100_000)  # 10^10 pixels declared in a few dozen bytes
TOO_MANY_PIXELS = png_header(2000, 2000)  # over LIMITS.max_pixels, under Pillow's own limit
BLANK = picture(np.zeros((28, 28), np.uint8))
NOT_AN_IMAGE = b"%PDF-1.4 this is not a picture"
ZERO_SIZE = png_header(0, 10)
NAN_BODY = b'{"pixels": [' + b",".join([b"[" + b",".join([b"NaN"] * 28) + b"]"] * 28) + b"]}"
ROWS_27 = {"pixels": [[0] * 28] * 27}


@pytest.mark.parametrize(
    "request_args, status, words",
    [
        ({"files": {"file": ("notes.pdf", NOT_AN_IMAGE, "image/png")}}, 422, "notes.pdf: not a readable image"),
        ({"files": {"file": ("zero.png", ZERO_SIZE, "image/png")}}, 422, "zero.png: not a readable image"),
        ({"files": {"file": ("empty.png", b"", "image/png")}}, 422, "empty.png: the uploaded file is empty"),
        ({"files": {"file": ("blank.png", BLANK, "image/png")}}, 422, "blank.png: no digit found"),
        ({"files": {"file": ("bomb.png", BOMB, "image/png")}}, 422, "decompression bomb"),
        (
            {"files": {"file": ("big.png", TOO_MANY_PIXELS, "image/png")}},
            422,
            "2000x2000 = 4000000 pixels is over the limit of 1000000",
        ),
        ({"files": {"picture": ("d.png", BLANK, "image/png")}}, 422, "no field 'file'"),
        ({"data": {"file": "not a file"}, "files": {"other": ("x", b"x")}}, 422, "holds text, not a file"),
        (
            {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},
            400,
            "could not be read (Missing boundary in multipart); send one image in the field 'file'",
        ),
        (
            {"files": [("file", ("a.png", BLANK, "image/png")), ("file", ("b.png", BLANK, "image/png"))]},
            400,
            "could not be read (Too many files. Maximum number of files is 1); send one image",
        ),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "the request body is empty"),
        ({}, 400, "the request body is empty"),
        (
            {"content": b"x" * 300_000, "headers": {"content-type": "application/json"}},
            413,
            "over the limit of 200000 bytes",
        ),
        (
            {"content": (b"x" * 50_000 for _ in range(6)), "headers": {"content-type": "application/json"}},
            413,
            "over the limit of 200000 bytes",
        ),  # chunked, no Content-Length: counted as it arrives
        ({"content": b"7", "headers": {"content-type": "text/plain"}}, 415, "content type text/plain is not accepted"),
        ({"content": b"7"}, 415, "content type (none) is not accepted"),
        ({"content": b"{pixels:", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": [1, 2, 3]}, 422, 'expected {"pixels"'),
        ({"json": ROWS_27}, 422, "pixels must be 28 rows of 28 numbers; got 27 rows of 28"),
        ({"json": {"pixels": [[0] * 28] * 27 + [[0] * 30]}}, 422, "28 rows of lengths 28 to 30"),
        ({"json": {"pixels": [[[0]] * 28] * 28}}, 422, "pixels must be 28 rows of 28 numbers"),
        ({"json": {"pixels": [["a"] * 28] * 28}}, 422, "a JSON string among the numbers"),
        # Numbers written as text, and booleans: NumPy would read "0" and true as numbers.
        ({"json": {"pixels": [["0"] * 28] * 28}}, 422, "a JSON string among the numbers"),
        ({"json": {"pixels": [[True] * 28] * 28}}, 422, "a JSON boolean among the numbers"),
        ({"json": {"pixels": [[0.5] * 27 + [True]] * 28}}, 422, "a JSON boolean among the numbers"),
        ({"json": {"images": [[[0] * 28] * 28, [[1] * 27 + [False]] * 28]}}, 422, "images[1] must be 28 rows"),
        ({"json": {"images": [[[0] * 28] * 28, [["1"] * 28] * 28]}}, 422, "images[1] must be 28 rows of 28 numbers"),
        ({"content": NAN_BODY, "headers": {"content-type": "application/json"}}, 422, "NaN, infinite or null"),
        ({"json": {"pixels": [[None] * 28] * 28}}, 422, "NaN, infinite or null"),
        ({"json": {"pixels": [[-1] * 28] * 28}}, 422, "values must lie in [0, 1] or in 0..255; got min -1"),
        ({"json": {"pixels": [[256] * 28] * 28}}, 422, "got min 256, max 256"),
        ({"json": {"images": []}}, 422, '"images" must be a non-empty list'),
        ({"json": {"images": [[[0] * 28] * 28] * 9}}, 422, "holds 9 images, over the limit of 8"),
        ({"json": {"images": [[[0] * 28] * 28, [[0] * 28] * 3]}}, 422, "images[1] must be 28 rows of 28 numbers"),
        ({"json": {"pixels": [[0] * 28] * 28, "images": []}}, 422, "not both"),
        (
            {"json": {"pixels": [[0] * 28] * 28}, "params": {"top_k": 0}},
            422,
            "top_k: Input should be greater than or equal to 1",
        ),
    ],
    ids=lambda value: None,
)
def test_every_bad_input_is_a_4xx_json_error_and_the_server_goes_on(client, digits, request_args, status, words):
    response = client.post("/predict", **request_args)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str) and words in detail, detail
    assert "\n" not in detail
    after = client.post("/predict", json={"pixels": digits[0][0].tolist()})
    assert after.status_code == 200 and after.json()["label"] == digits[1][0]


def test_wrong_methods_and_paths_are_json_too(client):
    for response, status in ((client.get("/predict"), 405), (client.get("/nothing-here"), 404)):
        assert response.status_code == status and response.json()["detail"]


def test_a_bug_is_a_500_json_error_and_the_next_request_is_served(digits):
    class FlakyPredictor:  # fails on its first call, as a bug in the model call would
        num_classes, class_names = 10, tuple("0123456789")
        info = {"run": "fake", "class_names": list("0123456789")}
        calls = 0

        def predict(self, images: np.ndarray) -> np.ndarray:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("an unexpected bug")
            return np.full((len(images), 10), 0.1, np.float32)

    with TestClient(create_app(predictor=FlakyPredictor()), raise_server_exceptions=False) as flaky:
        first = flaky.post("/predict", json={"pixels": digits[0][0].tolist()})
        assert first.status_code == 500 and "internal error (RuntimeError)" in first.json()["detail"]
        assert flaky.post("/predict", json={"pixels": digits[0][0].tolist()}).status_code == 200


# Fuzzing: whatever arrives, the answer is an image or a 4xx, never a crash.

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-300, 300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=30) | st.dictionaries(st.sampled_from(["pixels", "images", "x"]), inner, max_size=2)
    ),
    max_leaves=60,
)


@settings(max_examples=80, deadline=None)
@given(value=JSON_VALUES, key=st.sampled_from(["pixels", "images"]))
def test_any_json_is_either_images_in_0_1_or_a_4xx(value, key):
    body = json.dumps({key: value}).encode()
    try:
        images, batch = parse_json(body, max_batch=8)
    except InputError as err:
        assert 400 <= err.status < 500 and err.detail
        return
    assert images.shape[1:] == (28, 28) and np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    assert batch == (key == "images")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000) | st.sampled_from([BOMB, ZERO_SIZE, BLANK]).map(lambda b: b[: len(b) // 2]))
def test_any_uploaded_bytes_are_either_predicted_or_a_422(client, data):
    response = upload(client, data)
    assert response.status_code in (200, 422), response.text
