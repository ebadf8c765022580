"""Predicting your own pictures: MNIST-style preprocessing, then `python -m mnist_hydra.predict` end to end."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from mnist_hydra.data import digits
from mnist_hydra.data.digits import preprocess_file, stroke_width, to_mnist
from mnist_hydra.data.image_files import ImageError, image_suffixes, read_image
from mnist_hydra.errors import UserError
from mnist_hydra.serving.classify_files import find_images, predict_images
from tests.conftest import call_app

PREDICT = "mnist_hydra.predict"
DIGITS = 20  # test-set digits drawn per variant


def drawn_seven(size=(300, 400), ink=0, paper=255, width=24, mode="L") -> Image.Image:
    """A thick 7 on a plain background."""
    image = Image.new(mode, size, paper if mode == "L" else (paper,) * 3)
    fill = ink if mode == "L" else (ink,) * 3
    w, h = size
    ImageDraw.Draw(image).line([(w * 0.2, h * 0.15), (w * 0.8, h * 0.15), (w * 0.4, h * 0.85)], fill=fill, width=width)
    return image


def extent(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    return (ys * image).sum() / image.sum(), (xs * image).sum() / image.sum()


# Preprocessing, on drawn images.


def test_output_is_a_centred_digit_fitted_into_20x20():
    out = to_mnist(np.asarray(drawn_seven(), dtype=np.float32))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() == 0 and out.max() == pytest.approx(1.0)
    assert max(extent(out)) == 20  # the longer side (height) fills the box
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert out[0].sum() == out[-1].sum() == out[:, 0].sum() == out[:, -1].sum() == 0  # black border


def test_dark_on_light_colour_and_light_on_dark_gray_give_the_same_image(tmp_path):
    drawn_seven(mode="RGB").save(tmp_path / "ink.png")
    drawn_seven(ink=255, paper=0).save(tmp_path / "chalk.png")
    ink, chalk = preprocess_file(tmp_path / "ink.png"), preprocess_file(tmp_path / "chalk.png")
    assert np.abs(ink - chalk).max() < 1e-5
    assert ink[14].max() > 0.5  # not blank: the 7's stroke crosses the middle row


def test_aspect_ratio_is_kept():
    bar = np.zeros((400, 100), np.float32)
    bar[:, 40:60] = 255  # a vertical stroke 20 px wide, 400 px tall
    height, width = extent(to_mnist(bar))
    assert height == 20 and 1 <= width <= 3  # 20/400 of 20 px is 1 px (plus anti-aliasing)


def test_paper_background_level_and_position_do_not_matter():
    centred = to_mnist(np.asarray(drawn_seven(size=(300, 400), paper=255), dtype=np.float32))
    canvas = Image.new("L", (1200, 900), 200)  # gray paper, the digit in a corner
    canvas.paste(drawn_seven(size=(300, 400), paper=200, ink=40), (850, 20))
    cornered = to_mnist(np.asarray(canvas, dtype=np.float32))
    assert np.corrcoef(centred.ravel(), cornered.ravel())[0, 1] > 0.95


def test_transparent_background_counts_as_paper(tmp_path):
    seven = drawn_seven(paper=255)
    rgba = Image.new("RGBA", seven.size, (0, 0, 0, 0))  # a canvas export: black ink, transparent elsewhere
    rgba.putalpha(Image.eval(seven, lambda v: 255 - v))
    rgba.save(tmp_path / "transparent.png")
    assert np.abs(preprocess_file(tmp_path / "transparent.png") - to_mnist(np.asarray(seven, np.float32))).max() < 0.02


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    seven = np.asarray(drawn_seven(ink=255, paper=0), dtype=np.uint16) * 257
    Image.fromarray(seven).save(tmp_path / "deep.png")
    assert read_image(tmp_path / "deep.png").max() == pytest.approx(255, abs=0.5)
    assert extent(preprocess_file(tmp_path / "deep.png"))[0] == 20


def test_a_fine_pen_on_a_big_canvas_is_thickened_to_an_mnist_stroke():
    thin = drawn_seven(size=(1500, 2000), width=3)
    out = to_mnist(np.asarray(thin, dtype=np.float32))
    assert stroke_width(out) >= digits.MIN_STROKE  # unthickened it would be 3 * 20/2000 = 0.03 px
    assert max(extent(out)) == 20


def test_otsu_on_a_box_with_the_zeros_around_it_counted_is_otsu_on_the_whole_image():
    rng = np.random.default_rng(0)
    box = rng.uniform(0.0, 1.0, size=(60, 40)).astype(np.float32)  # antialiased edges at every level
    whole = np.pad(box, ((100, 80), (30, 170)))
    assert digits._otsu(box, zeros=whole.size - box.size) == digits._otsu(whole)
    assert digits._otsu(box) != digits._otsu(whole)  # the zeros do move the threshold


@pytest.mark.parametrize("shape", [(8, 8), (9, 7), (1, 5), (13, 2)])
@pytest.mark.parametrize("factor", [2, 3])
def test_max_pool_is_the_maximum_of_each_block_the_edges_cut_short(shape, factor):
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    h, w = (-(-n // factor) * factor for n in shape)
    padded = np.pad(image, ((0, h - shape[0]), (0, w - shape[1])))
    expected = padded.reshape(h // factor, factor, w // factor, factor).max(axis=(1, 3))
    np.testing.assert_array_equal(digits._max_pool(image, factor), expected)


def test_a_drawing_is_read_in_its_marks_box_and_the_box_gives_what_the_whole_canvas_gives(monkeypatch):
    # Soft edges, as a browser's antialiased strokes have: ink at every level, so Otsu's threshold matters.
    canvas = np.asarray(drawn_seven(size=(280, 280), width=18).filter(ImageFilter.GaussianBlur(4)), dtype=np.uint8)
    assert digits._around_marks(canvas, np.uint8(255)).shape < canvas.shape
    boxed = to_mnist(canvas)
    monkeypatch.setattr(digits, "_around_marks", lambda g, paper: g)  # every pixel of the canvas
    np.testing.assert_array_equal(boxed, to_mnist(canvas))


def test_blank_and_broken_files_raise_image_error_naming_the_file(tmp_path):
    Image.new("RGB", (64, 64), (250, 250, 250)).save(tmp_path / "blank.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    for name, words in (
        ("blank.png", "no digit found"),
        ("broken.png", "not a readable image"),
        ("absent.png", "no such file"),
    ):
        with pytest.raises(ImageError, match=re.escape(str(tmp_path / name)) + ".*" + words):
            preprocess_file(tmp_path / name)


# Real MNIST digits, redrawn the ways people draw them.


@pytest.fixture(scope="module")
def test_digits(mnist_dir):
    """The first DIGITS test images (uint8, 28x28) and their labels."""
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:DIGITS]
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:DIGITS]
    return images, labels


def render_on_paper(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The digit enlarged, dark on cream paper, somewhere on a big RGB canvas."""
    size = int(rng.integers(120, 260))
    ink = Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BICUBIC).convert("RGB")
    canvas = Image.new("RGB", (700, 500), (245, 240, 230))
    canvas.paste(ink, (int(rng.integers(0, 700 - size)), int(rng.integers(0, 500 - size))))
    return canvas


def test_redrawn_mnist_digits_come_back_close_to_the_originals(test_digits):
    images, _ = test_digits
    rng = np.random.default_rng(0)
    similarity = [
        np.corrcoef(to_mnist(np.asarray(render_on_paper(d, rng).convert("L"), np.float32)).ravel(), d.ravel())[0, 1]
        for d in images
    ]
    assert np.median(similarity) > 0.9 and min(similarity) > 0.6, similarity


@pytest.fixture(scope="module")
def picture_folder(tmp_path_factory, test_digits) -> Path:
    """Each test digit as a JPEG (dark on paper, off-centre, RGB) and a PNG (white on black, 28x28),
    plus a corrupt PNG and a text file."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for i, (digit, label) in enumerate(zip(*test_digits, strict=False)):
        render_on_paper(digit, rng).save(folder / f"paper_{i:02d}_{label}.jpg", quality=90)
        Image.fromarray(digit).save(folder / f"mnist_{i:02d}_{label}.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    (folder / "notes.txt").write_text("not a picture, not even tried")
    return folder


def our_stderr_lines(stderr: str) -> list[str]:
    """mnist_hydra.predict's own stderr lines (TensorFlow's start-up chatter aside)."""
    return [line for line in stderr.splitlines() if line.startswith(f"{PREDICT}:")]


def test_predicts_a_folder_reporting_the_corrupt_file_and_going_on(trained_run, picture_folder):
    result = call_app(f"run={trained_run}", f"images={picture_folder}", cwd=picture_folder, module=PREDICT)
    assert result.returncode == 0, result.stderr
    errors = our_stderr_lines(result.stderr)
    assert len(errors) == 2, errors
    assert "corrupt.png" in errors[1] and "not a readable image" in errors[1], errors
    assert errors[0] == f"{PREDICT}: skipped {picture_folder / 'notes.txt'}: not an image (no format Pillow reads)"
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 * DIGITS and not any("notes.txt" in line for line in lines)
    line = re.compile(r"^(\S+)  (\d)  (0\.\d{4}|1\.0000)  top-3: (\d) \d\.\d{4}, \d \d\.\d{4}, \d \d\.\d{4}$")
    parsed = [line.match(text) for text in lines]
    assert all(parsed), lines
    predicted = {Path(m.group(1)).name: int(m.group(2)) for m in parsed}
    assert all(m.group(2) == m.group(4) for m in parsed)  # the top-3 starts with the prediction

    truth = {name: int(name.split("_")[2][0]) for name in predicted}
    paper = [name for name in predicted if name.startswith("paper_")]
    right = sum(predicted[name] == truth[name] for name in paper)
    assert right >= 0.75 * DIGITS, {name: (predicted[name], truth[name]) for name in paper}
    # The redrawn digit gets the prediction of the original 28x28 image, nearly always.
    agree = sum(
        predicted[name] == predicted[name.replace("paper_", "mnist_").replace(".jpg", ".png")] for name in paper
    )
    assert agree >= 0.85 * DIGITS


def test_json_output_lists_every_predicted_file_with_its_top_k(trained_run, picture_folder):
    one = next(picture_folder.glob("paper_00_*.jpg"))
    result = call_app(
        f"run={trained_run}", f"images={one}", "output=json", "top_k=5", cwd=picture_folder, module=PREDICT
    )
    assert result.returncode == 0, result.stderr
    [record] = json.loads(result.stdout)
    assert record["file"] == str(one) and record["class"] == str(record["label"])
    probabilities = [t["probability"] for t in record["top"]]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert record["probability"] == probabilities[0] and 0 < sum(probabilities) <= 1 + 1e-6


def test_exit_code_is_non_zero_only_when_nothing_could_be_predicted(trained_run, picture_folder, tmp_path):
    result = call_app(f"run={trained_run}", f"images={picture_folder / 'corrupt.png'}", cwd=tmp_path, module=PREDICT)
    assert result.returncode == 1 and result.stdout == ""
    errors = our_stderr_lines(result.stderr)
    # One mistake, one line: the file and why, not a "skipped" line and then an error.
    assert errors == [
        f"{PREDICT}: error: {picture_folder / 'corrupt.png'}: not a readable image (no format Pillow "
        "knows, or a broken or zero-size image)"
    ], errors
    assert list(tmp_path.iterdir()) == []  # predict writes nothing


# Which files of a folder are pictures.

FORMATS = {"gif": "GIF", "webp": "WEBP", "tif": "TIFF", "bmp": "BMP", "png": "PNG", "jpg": "JPEG"}


@pytest.fixture(scope="module")
def formats_folder(tmp_path_factory, test_digits) -> Path:
    """One test digit per format Pillow writes, a PNG without a name ending, a text file and a sub-folder."""
    folder = tmp_path_factory.mktemp("formats")
    images, labels = test_digits
    for (suffix, name), digit, label in zip(FORMATS.items(), images, labels, strict=False):
        Image.fromarray(255 - digit).resize((84, 84)).save(folder / f"{suffix}_{label}.{suffix}", name)
    Image.fromarray(images[6]).save(folder / f"scan_{labels[6]}", "PNG")  # no suffix: known by its first bytes
    (folder / "notes.txt").write_text("not a picture")
    (folder / "more").mkdir()
    Image.fromarray(images[7]).save(folder / "more" / "deeper.png")  # sub-folders are not searched
    return folder


def test_a_folder_takes_every_format_pillow_reads_and_names_what_it_skips(formats_folder):
    found, skipped = find_images(formats_folder)
    assert sorted(p.name for p in found) == sorted(
        p.name for p in formats_folder.iterdir() if p.name not in ("notes.txt", "more")
    )
    assert len(found) == len(FORMATS) + 1
    assert skipped == [
        f"{formats_folder / 'more'}: a folder (sub-folders are not searched)",
        f"{formats_folder / 'notes.txt'}: not an image (no format Pillow reads)",
    ]
    assert {".gif", ".webp", ".tif", ".tiff", ".bmp", ".png", ".jpg", ".jpeg"} <= image_suffixes()
    assert ".txt" not in image_suffixes() and ".h5" not in image_suffixes()  # HDF5 is a stub: Pillow cannot decode it


def test_a_folder_without_images_is_one_line_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no picture")
    with pytest.raises(UserError, match=r"^images=.*: no image in this folder \(1 entry, none an image\); give PNG"):
        find_images(tmp_path)
    (tmp_path / "notes.txt").unlink()
    with pytest.raises(UserError, match=r"no image in this folder \(it is empty\)"):
        find_images(tmp_path)


def test_predicts_gif_webp_tiff_bmp_in_a_folder_and_reports_the_rest(trained_run, formats_folder):
    # In-process: the app's printing of these messages is checked with corrupt.png and notes.txt above.
    records, failures = predict_images(trained_run, formats_folder)
    names = [Path(r["file"]).name for r in records]
    assert names == sorted(names) and len(names) == len(FORMATS) + 1
    assert {name.split("_")[0] for name in names} == {*FORMATS, "scan"}
    right = sum(int(Path(r["file"]).stem.split("_")[1]) == r["label"] for r in records)
    assert right >= len(records) - 2, records  # the session's model reads about 85% of MNIST right
    assert failures == [
        f"{formats_folder / 'more'}: a folder (sub-folders are not searched)",
        f"{formats_folder / 'notes.txt'}: not an image (no format Pillow reads)",
    ]


@pytest.mark.parametrize(
    "args,fragment,code",
    [
        (["images={pictures}"], "run has no value", 2),
        (["run={run}"], "images has no value", 2),
        (["run={run}", "images={pictures}/nothing-here"], "images={pictures}/nothing-here: no such file or folder", 2),
        (["run={pictures}", "images={pictures}"], "run={pictures}: no model.keras", 2),
        (["run={run}", "images={pictures}", "output=xml"], "output=xml is not allowed", 2),
    ],
)
def test_bad_arguments_fail_with_one_line(trained_run, picture_folder, tmp_path, args, fragment, code):
    values = {"run": trained_run, "pictures": picture_folder}
    result = call_app(*(a.format(**values) for a in args), cwd=tmp_path, module=PREDICT)
    assert result.returncode == code, result.stderr
    [line] = our_stderr_lines(result.stderr)
    assert line.startswith(f"{PREDICT}: error: ") and fragment.format(**values) in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("side", [12_000, 20_000], ids=["over the limit", "over twice the limit"])
def test_a_huge_picture_is_refused_in_one_line_without_pillows_warning(tmp_path, side, recwarn):
    """Pillow warns between its limit and twice it, and raises beyond: either way, one error and no warning."""
    path = tmp_path / "huge.png"
    Image.new("1", (side, side)).save(path)  # a few kB on disk, side**2 pixels once decoded
    with pytest.raises(
        ImageError, match=r"^.*huge\.png: refused, .* pixels is over the limit of \d+ \(a decompression bomb\?\)"
    ):
        read_image(path)
    assert [str(w.message) for w in recwarn] == []
