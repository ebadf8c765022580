"""POST /collect (serve.collect_dir): labelled drawings saved as DIR/<class>/<time>.png, never over another file."""

from __future__ import annotations

import datetime
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_hydra.data.digits import preprocess_file
from mnist_hydra.errors import UserError
from mnist_hydra.serving import collect
from mnist_hydra.serving.api import create_app
from mnist_hydra.serving.collect import Collector, folder_name, prepare_collect_dir
from mnist_hydra.serving.inputs import InputError
from mnist_hydra.serving.settings import ServeSettings
from tests.conftest import LIMITS
from tests.test_serve_api import picture, upload

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class NamedPredictor:
    """A stand-in model with Fashion-MNIST's class names (no TensorFlow): it reads every image as class 8."""

    def __init__(self, names: tuple[str, ...] = FASHION) -> None:
        self.class_names, self.num_classes = names, len(names)
        self.info = {
            "run": "fake/run",
            "run_dir": "/fake/run",
            "model": "cnn",
            "data": "fashion_mnist",
            "precision": "float32",
            "params": 1,
            "class_names": list(names),
            "config": {},
            "metrics": {},
        }

    def predict(self, images: np.ndarray) -> np.ndarray:
        out = np.full((len(images), self.num_classes), 0.01, np.float32)
        out[:, 8] = 1 - 0.01 * (self.num_classes - 1)
        return out


def settings_for(folder: Path) -> ServeSettings:
    return ServeSettings(**{**vars(LIMITS), "collect_dir": str(folder)})


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("collected")


@pytest.fixture(scope="module")
def collecting(predictor, saved_dir):
    """The trained run's model, saving labelled images in saved_dir."""
    with TestClient(create_app(predictor=predictor, settings=settings_for(saved_dir))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """A Fashion-MNIST-named model saving in a folder of its own: (client, folder)."""
    folder = tmp_path_factory.mktemp("fashion")
    with TestClient(create_app(predictor=NamedPredictor(), settings=settings_for(folder))) as test_client:
        yield test_client, folder


def pngs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "L" and image.size == (28, 28)
        return np.asarray(image)


def test_a_labelled_upload_is_saved_as_the_28x28_image_the_model_saw(collecting, saved_dir, digits):
    seven = picture(digits[0][0], size=240)
    seen = upload(collecting, seven, include_image="true").json()["image"]
    response = collecting.post("/collect", files={"file": ("seven.png", seven, "image/png")}, data={"label": "7"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["label"] == 7 and body["class_name"] == "7" and body["file"].startswith("7/")
    saved = read_png(saved_dir / body["file"])
    assert saved.dtype == np.uint8 and saved.max() == 255 and saved[0, 0] == 0  # white digit on black, as MNIST
    assert np.abs(saved / 255 - np.array(seen)).max() <= 0.5 / 255 + 0.0005  # /predict rounds to 3 decimals
    assert [p.name for p in saved_dir.iterdir() if p.is_file()] == []  # no temporary file left beside the folders


def test_the_saved_image_read_back_through_preprocessing_gets_the_same_prediction(
    collecting, saved_dir, digits, predictor
):
    """What data=folder does with the saved file: the loop from use back to training."""
    for index in range(1, 6):
        body = collecting.post(
            "/collect",
            files={"file": ("d.png", picture(digits[0][index]), "image/png")},
            data={"label": str(int(digits[1][index]))},
        ).json()
        again = preprocess_file(saved_dir / body["file"])
        original = np.asarray(
            collecting.post(
                "/predict", files={"file": ("d.png", picture(digits[0][index]))}, params={"include_image": "true"}
            ).json()["image"],
            np.float32,
        )
        first, second = predictor.predict(np.stack([original, again]))
        assert first.argmax() == second.argmax() and np.abs(first - second).max() < 0.05


def test_pixels_with_a_label_are_saved_as_they_are(collecting, saved_dir, digits):
    image = digits[0][3]
    response = collecting.post("/collect", json={"pixels": image.tolist(), "label": 0})
    assert response.status_code == 201, response.text
    assert np.array_equal(read_png(saved_dir / response.json()["file"]), image)  # not preprocessed: the same bytes


def test_labels_by_name_and_by_index_go_to_the_class_folder(fashion, digits):
    client, folder = fashion
    pixels = digits[0][0].tolist()
    by_name = client.post("/collect", json={"pixels": pixels, "label": "T-shirt/top"}).json()
    by_index = client.post("/collect", json={"pixels": pixels, "label": 9}).json()
    by_text = client.post("/collect", files={"file": ("d.png", picture(digits[0][0]))}, data={"label": "1"}).json()
    by_form_name = client.post(
        "/collect", files={"file": ("d.png", picture(digits[0][0]))}, data={"label": "Ankle boot"}
    ).json()
    assert (by_name["label"], by_name["class_name"]) == (0, "T-shirt/top")
    assert by_name["file"].startswith("T-shirt-top/")  # "/" in a class name makes no subfolder
    assert (by_index["class_name"], by_text["class_name"], by_form_name["class_name"]) == (
        "Ankle boot",
        "Trouser",
        "Ankle boot",
    )
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["Ankle boot", "T-shirt-top", "Trouser"]
    assert len(pngs(folder / "Ankle boot")) == 2 and len(pngs(folder)) == 4


def test_model_says_whether_collection_is_on(client, collecting, fashion):
    assert client.get("/model").json()["collecting"] is False
    assert collecting.get("/model").json()["collecting"] is True
    assert fashion[0].get("/model").json()["class_names"] == list(FASHION)


def test_saves_in_the_same_microsecond_are_all_kept_and_nothing_is_overwritten(tmp_path):
    collector = Collector(tmp_path, ("a", "b"))
    collector.now = lambda: datetime.datetime(2026, 12, 3, 6, 30, 0, 123456)  # every save sees the same instant
    first = tmp_path / "a" / "2026-12-03T06-30-00.123456Z.png"
    first.parent.mkdir()
    first.write_bytes(b"someone else's file")
    images = [np.full((28, 28), i / 40, np.float32) for i in range(40)]
    saved: list[Path] = []
    threads = [threading.Thread(target=lambda i=i: saved.append(collector.save(images[i], 0))) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.read_bytes() == b"someone else's file"  # the existing file is untouched
    assert len(set(saved)) == 40 and len(pngs(tmp_path / "a")) == 41
    assert sorted(int(read_png(tmp_path / p)[0, 0]) for p in saved) == sorted(round(i / 40 * 255) for i in range(40))
    assert {p.name for p in saved} == {f"2026-12-03T06-30-00.123456Z-{n}.png" for n in range(1, 41)}
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary file left


def test_without_hard_links_the_name_is_reserved_and_still_never_overwritten(tmp_path, monkeypatch):
    import errno
    import os

    def no_link(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(collect.os, "link", no_link)
    collector = Collector(tmp_path, ("a",))
    paths = {collector.save(np.full((28, 28), 0.5, np.float32), 0) for _ in range(3)}
    assert len(paths) == 3 and all(read_png(tmp_path / p)[0, 0] == 128 for p in paths)
    assert os.listdir(tmp_path) == ["a"]


@pytest.mark.parametrize(
    "name, folder",
    [
        ("T-shirt/top", "T-shirt-top"),
        ("a\\b", "a-b"),
        ("7", "7"),
        ("Ankle boot", "Ankle boot"),
        ("..", "_.."),
        ("", "_"),
        ("tab\there", "tab-here"),
        ("ä", "ä"),
    ],
)
def test_class_folder_names_are_safe(name, folder):
    assert folder_name(name) == folder


def test_a_name_is_read_before_an_index(tmp_path):
    collector = Collector(tmp_path, ("2", "1", "0", " 7", "x"))
    assert [collector.label(v) for v in ("0", "2", 0, " 7", "4", 4)] == [2, 0, 0, 3, 4, 4]
    for digits_that_int_refuses in ("\u00b2", "\u2460"):
        with pytest.raises(InputError, match="is not a class"):
            collector.label(digits_that_int_refuses)
    with pytest.raises(InputError, match='label "7" is not a class'):
        collector.label("7")


@settings(max_examples=200, deadline=None)
@given(
    value=st.none()
    | st.booleans()
    | st.integers(-20, 20)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(FASHION)
    | st.lists(st.integers(), max_size=2)
)
def test_any_label_is_a_class_index_or_a_422(tmp_path_factory, value):
    collector = Collector(tmp_path_factory.getbasetemp(), FASHION)
    try:
        label = collector.label(value)
    except InputError as err:
        assert err.status == 422 and "is not a class of this model" in err.detail and "\n" not in err.detail
        return
    assert 0 <= label < len(FASHION) and not isinstance(value, (bool, float, list, type(None)))
    assert value in FASHION or int(str(value).strip()) == label


def test_a_bad_collect_dir_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for path, words in (
        (tmp_path / "notes.txt", "a file, not a folder"),
        (tmp_path / "notes.txt" / "below", "cannot create it"),
        (Path("/proc/forbidden"), "cannot create it"),
    ):
        with pytest.raises(UserError, match=words) as caught:
            prepare_collect_dir(path)
        assert str(caught.value).startswith(f"serve.collect_dir={path}: ") and "\n" not in str(caught.value)
        assert caught.value.exit_code == 2
    assert prepare_collect_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"  # created when missing


def test_a_collect_dir_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):  # what a read-only mount answers, even to root
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(collect.tempfile, "mkstemp", read_only)
    with pytest.raises(UserError, match=r"serve.collect_dir=.*: cannot write in it \(Read-only file system\)"):
        prepare_collect_dir(tmp_path)


def test_a_folder_that_breaks_while_serving_is_a_503_and_predict_goes_on(tmp_path, digits):
    with TestClient(create_app(predictor=NamedPredictor(), settings=settings_for(tmp_path))) as client:
        (tmp_path / "Trouser").write_text("a file where the class folder goes")
        response = client.post("/collect", json={"pixels": digits[0][0].tolist(), "label": 1})
        assert response.status_code == 503 and "cannot save the drawing in" in response.json()["detail"]
        assert client.post("/predict", json={"pixels": digits[0][0].tolist()}).status_code == 200
        assert client.post("/collect", json={"pixels": digits[0][0].tolist(), "label": 2}).status_code == 201


# Bad requests: a 4xx JSON error naming the problem, nothing saved, and the server goes on.

PIXELS = [[0] * 28] * 27 + [[0] * 13 + [255] * 2 + [0] * 13]


@pytest.mark.parametrize(
    "request_args, status, words",
    [
        ({"json": {"pixels": PIXELS}}, 422, "the request has no label; send the image's class"),
        ({"files": {"file": ("d.png", picture(np.eye(28, dtype=np.uint8) * 255))}}, 422, "-F label=7 beside the file"),
        (
            {"json": {"pixels": PIXELS, "label": "Sock"}},
            422,
            'label "Sock" is not a class of this model; send a class name (T-shirt/top, Trouser,',
        ),
        ({"json": {"pixels": PIXELS, "label": 10}}, 422, "label 10 is not a class of this model"),
        ({"json": {"pixels": PIXELS, "label": -1}}, 422, "or an index 0..9"),
        ({"json": {"pixels": PIXELS, "label": True}}, 422, "label true is not a class"),
        ({"json": {"pixels": PIXELS, "label": None}}, 422, "label null is not a class"),
        ({"json": {"pixels": PIXELS, "label": 1.5}}, 422, "label 1.5 is not a class"),
        ({"json": {"pixels": PIXELS, "label": [1]}}, 422, "label [1] is not a class"),
        (
            {"files": {"file": ("d.png", picture(np.eye(28, dtype=np.uint8) * 255))}, "data": {"label": "12"}},
            422,
            'label "12" is not a class',
        ),
        ({"json": {"images": [PIXELS], "label": 1}}, 422, "send one image to /collect"),
        ({"json": {"pixels": [[0] * 28] * 3, "label": 1}}, 422, "pixels must be 28 rows of 28 numbers"),
        (
            {"files": {"file": ("blank.png", picture(np.zeros((28, 28), np.uint8)))}, "data": {"label": "1"}},
            422,
            "blank.png: no digit found",
        ),
        ({"content": b"{label: 1", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"1", "headers": {"content-type": "text/plain"}}, 415, "content type text/plain is not accepted"),
        ({"content": b"x" * 300_000, "headers": {"content-type": "application/json"}}, 413, "over the limit"),
    ],
    ids=lambda value: None,
)
def test_every_bad_collect_request_is_a_4xx_json_error_and_saves_nothing(fashion, request_args, status, words):
    client, folder = fashion
    before = pngs(folder)
    response = client.post("/collect", **request_args)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert words in detail and "\n" not in detail, detail
    assert pngs(folder) == before
    assert client.post("/collect", json={"pixels": PIXELS, "label": "Bag"}).status_code == 201  # still serving


def test_collecting_is_refused_when_off_saying_how_to_turn_it_on(client, digits):
    response = client.post("/collect", json={"pixels": digits[0][0].tolist(), "label": 7})
    assert response.status_code == 403 and response.headers["content-type"] == "application/json"
    assert "serve.collect_dir=DIR" in response.json()["detail"]
    assert client.post("/predict", json={"pixels": digits[0][0].tolist()}).status_code == 200


def test_openapi_describes_collect(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/collect"]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"201", "403", "422", "503"} <= set(post["responses"])
    assert "collecting" in spec["components"]["schemas"]["ModelInfo"]["properties"]
    assert json.dumps(spec["components"]["schemas"]["Collected"])


def test_the_schema_of_a_label_is_what_the_server_takes(fashion):
    """/openapi.json and the server agree: a label is a non-empty class name or an index >= 0; "" and -1 are
    invalid by the schema and refused 422, "Bag" and 8 are valid and saved."""
    client, _ = fashion
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/collect"]["post"]["requestBody"]["content"]
    as_json = body["application/json"]["schema"]["properties"]["label"]["anyOf"]
    assert {"type": "string", "minLength": 1} in as_json and {"type": "integer", "minimum": 0} in as_json
    assert body["multipart/form-data"]["schema"]["properties"]["label"]["minLength"] == 1
    for label, status in (("", 422), (-1, 422), ("Bag", 201), (8, 201)):
        assert client.post("/collect", json={"pixels": PIXELS, "label": label}).status_code == status, label
