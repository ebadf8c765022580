"""The data says its shape: data=folder data.preprocess=resize keeps colour at the size asked for, the run records
it, and predict and the server read an upload the way the run's data was made."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_hydra.data.folder import FolderConfig
from mnist_hydra.data.preparation import DIGIT, Preparation, fit_picture, prepare_bytes, prepare_file
from mnist_hydra.data.splits import load_splits
from tests.conftest import call_app

# Two colours of the same luminance (Pillow's "L": 0.299 R + 0.587 G + 0.114 B, both about 60): a grey
# conversion makes them one class, so only a colour run can tell them apart.
COLOURS = {"red": (200, 0, 0), "green": (0, 102, 0)}
PER_CLASS = 30
SIZE = ["data.preprocess=resize", "data.image_size=[16,16]", "data.channels=3"]


def picture(colour: tuple[int, int, int], width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A square of `colour` (with a little noise) on a grey field: its size and place carry no class."""
    field = np.full((height, width, 3), 128, np.int16)
    side = int(min(width, height) * rng.uniform(0.6, 0.9))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    field[top : top + side, left : left + side] = colour
    field += rng.integers(-6, 7, field.shape)
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8), "RGB")


def write_as(image: Image.Image, path: Path, form: int) -> Path:
    """`image` saved in one of five forms: RGB PNG, RGBA PNG, a palette PNG, a CMYK JPEG, an EXIF-rotated JPEG."""
    if form == 0:
        image.save(path.with_suffix(".png"))
    elif form == 1:
        image.convert("RGBA").save(path.with_suffix(".png"))
    elif form == 2:
        image.quantize(64).save(path.with_suffix(".png"))
    elif form == 3:
        image.convert("CMYK").save(path.with_suffix(".jpg"), quality=95)
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # stored turned: the viewer rotates it 90 degrees clockwise
        image.transpose(Image.Transpose.ROTATE_90).save(path.with_suffix(".jpg"), quality=95, exif=exif)
    return path.with_suffix(".png" if form < 3 else ".jpg")


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    """root/red and root/green: squares of varied sizes, places and file modes; colour alone tells them apart."""
    root = tmp_path_factory.mktemp("colours") / "photos"
    rng = np.random.default_rng(7)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            width, height = (int(v) for v in rng.integers(20, 60, 2))
            write_as(picture(colour, width, height, rng), root / name / f"{i:02d}", i % 5)
    return root


def test_every_mode_is_fitted_to_the_size_and_channels_asked_for():
    prep = Preparation("resize", (12, 20), 3, "white", "pad")
    for mode in ("RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1"):
        image = Image.new("RGB", (30, 50), (10, 200, 30)).convert(mode)
        assert fit_picture(image, prep).shape == (12, 20, 3), mode
        grey = fit_picture(image, Preparation("resize", (12, 20), 1))
        assert grey.shape == (12, 20, 1) and grey.dtype == np.uint8, mode


def test_crop_keeps_the_middle_and_pad_fills_with_the_background():
    image = Image.new("RGB", (40, 10), (0, 0, 255))  # a wide blue strip
    cropped = fit_picture(image, Preparation("resize", (10, 10), 3, "white", "crop"))
    padded = fit_picture(image, Preparation("resize", (10, 10), 3, "white", "pad"))
    assert (cropped == (0, 0, 255)).all()
    assert (padded[0] == 255).all() and (padded[5, :, 2] == 255).all() and (padded[5, :, 0] < 32).all()


def test_transparency_is_flattened_onto_the_stated_background(tmp_path):
    clear = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    for background, expected in (("white", 1.0), ("black", 0.0)):
        prep = Preparation("resize", (8, 8), 3, background)
        assert np.allclose(prepare_file(tmp_path / "clear.png", prep), expected)


def test_exif_orientation_is_applied(tmp_path):
    tall = np.zeros((40, 20, 3), np.uint8)
    tall[:20] = (255, 0, 0)  # red on top, as the viewer shows it
    path = write_as(Image.fromarray(tall), tmp_path / "turned", 4)
    assert Image.open(path).size == (40, 20)  # stored sideways
    image = prepare_file(path, Preparation("resize", (8, 4), 3, fit="pad"))
    assert image[1, 2, 0] > 0.8 and image[6, 2, 0] < 0.2


def test_the_upload_path_and_the_loader_make_the_same_image(colour_folder):
    prep = Preparation("resize", (16, 16), 3)
    path = next((colour_folder / "red").iterdir())
    assert np.array_equal(prepare_file(path, prep), prepare_bytes(path.read_bytes(), prep))


def test_a_grey_conversion_cannot_tell_the_two_colours_apart():
    grey = Preparation("resize", (8, 8), 1)
    red, green = (fit_picture(Image.new("RGB", (8, 8), c), grey) for c in COLOURS.values())
    assert np.abs(red.astype(int) - green.astype(int)).max() <= 1


def test_the_folder_loader_declares_the_shape_and_caches_by_it(colour_folder, tmp_path):
    cache = f"{tmp_path}/cache"
    colour = FolderConfig(
        root=str(colour_folder), preprocess="resize", image_size=[16, 16], channels=3, cache_dir=cache
    )
    splits = load_splits(colour, seed=0)
    assert splits.input_shape == (16, 16, 3) and splits.x_train.dtype == np.uint8
    assert splits.preparation.record() == {
        "preprocess": "resize",
        "image_size": [16, 16],
        "channels": 3,
        "background": "white",
        "fit": "crop",
    }
    grey = FolderConfig(root=str(colour_folder), preprocess="resize", image_size=[12, 20], cache_dir=cache)
    assert load_splits(grey, seed=0).input_shape == (12, 20, 1)  # another key: not the colour cache
    assert len(list(Path(cache).iterdir())) == 2


@pytest.fixture(scope="module")
def colour_run(colour_folder, tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("colour_run")
    result = call_app(
        "data=folder",
        f"data.root={colour_folder}",
        f"data.cache_dir={cwd}/cache",
        *SIZE,
        "model.filters=8",
        "model.dense_units=16",
        "trainer.epochs=8",
        "trainer.batch_size=8",
        "trainer.verbose=0",
        f"hydra.run.dir={cwd}/run",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return cwd / "run"


def test_a_colour_run_records_its_shape_and_learns_colour(colour_run):
    metrics = json.loads((colour_run / "metrics.json").read_text())
    assert metrics["input_shape"] == [16, 16, 3]
    assert metrics["preprocessing"]["preprocess"] == "resize" and metrics["preprocessing"]["channels"] == 3
    assert metrics["test_accuracy"] >= 0.9  # chance is 0.5, and all a grey copy could reach


def test_predict_reads_a_file_as_the_run_was_trained(colour_run, colour_folder):
    from mnist_hydra.serving.classify_files import predict_images

    records, failures = predict_images(colour_run, colour_folder / "green")
    assert not failures and len(records) == PER_CLASS
    assert sum(r["class"] == "green" for r in records) >= 0.9 * PER_CLASS


def test_the_server_takes_uploads_and_pixels_of_the_runs_shape(colour_run, colour_folder):
    from fastapi.testclient import TestClient

    from mnist_hydra.serving.api import create_app

    with TestClient(create_app(colour_run)) as client:
        assert client.get("/model").json()["input_shape"] == [16, 16, 3]
        path = next((colour_folder / "red").glob("*.png"))
        answer = client.post("/predict", files={"file": (path.name, path.read_bytes())}, params={"include_image": 1})
        assert answer.status_code == 200, answer.text
        assert answer.json()["class_name"] == "red" and np.shape(answer.json()["image"]) == (16, 16, 3)
        red = np.tile(np.array(COLOURS["red"], np.float32) / 255, (16, 16, 1)).tolist()
        assert client.post("/predict", json={"pixels": red}).json()["class_name"] == "red"
        wrong = client.post("/predict", json={"pixels": [[0.5] * 16] * 16})
        assert wrong.status_code == 422 and "16 rows of 16 [r, g, b] lists" in wrong.json()["detail"]
        schema = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
        pixels = schema["application/json"]["schema"]["oneOf"][0]["properties"]["pixels"]
        assert (pixels["maxItems"], pixels["items"]["maxItems"], pixels["items"]["items"]["maxItems"]) == (16, 16, 3)


def test_an_upload_is_a_digit_for_a_run_without_the_record(tmp_path):
    from mnist_hydra.runs import rundir

    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed"}))
    assert rundir.preparation(tmp_path) == DIGIT and rundir.input_shape(tmp_path) == (28, 28, 1)


def test_a_png_in_memory_is_read_like_a_file():
    buffer = io.BytesIO()
    Image.new("RGB", (30, 10), COLOURS["green"]).save(buffer, "PNG")
    image = prepare_bytes(buffer.getvalue(), Preparation("resize", (8, 8), 3))
    assert image.shape == (8, 8, 3) and np.allclose(image[4, 4], np.array(COLOURS["green"]) / 255, atol=0.01)


def test_init_from_a_run_of_another_input_shape_is_one_line(colour_run, tmp_path, mnist_dir):
    result = call_app(
        f"init_from={colour_run}",
        "data.train_limit=100",
        "data.test_limit=50",
        "trainer.epochs=1",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line == (
        f"mnist_hydra: error: init_from={colour_run}: its model takes 16x16 RGB images and this data is 28x28 grey; "
        "init_from takes a run trained on images of the same size and channels (data.image_size, data.channels)"
    )
    assert not (tmp_path / "run").exists()
