"""The page of a photo run in a real browser: a file picker and a drop zone instead of the drawing pad, the
picture shown, sent to /predict, and its top classes listed. The same Chromium and server as test_browser.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_browser import browser, running  # noqa: F401  (the browser fixture, and the live server)
from tests.test_image_shapes import COLOURS, colour_folder, colour_run, picture  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def photo_server(colour_run):  # noqa: F811
    from mnist_hydra.serving.compiled_model import Predictor

    with running(Predictor(colour_run)) as url:
        yield url


def open_photo_page(browser, url: str):  # noqa: F811
    page = browser.new_context(viewport={"width": 900, "height": 700}).new_page()
    page.goto(url)
    page.wait_for_function("!document.getElementById('photo').hidden")
    return page


@pytest.mark.parametrize("colour", sorted(COLOURS))
def test_a_chosen_picture_is_shown_and_its_colour_is_the_top_class(browser, photo_server, tmp_path, colour):  # noqa: F811
    page = open_photo_page(browser, photo_server)
    assert page.locator("#pad").is_hidden() and page.locator("#draw").is_hidden()
    camera = page.locator("#photo-camera")
    assert camera.get_attribute("accept") == "image/*" and camera.get_attribute("capture") == "environment"
    assert page.locator("#photo-file").get_attribute("accept") == "image/*"
    assert "16\u00d716 colour" in page.locator("#saw").text_content()

    path = tmp_path / f"{colour}.png"
    picture(COLOURS[colour], 40, 30, np.random.default_rng(3)).save(path)
    page.set_input_files("#photo-file", str(path))
    page.wait_for_function("document.getElementById('photo-preview').naturalWidth === 40")
    assert page.locator("#photo-preview").is_visible() and page.locator("#drop-hint").is_hidden()
    page.wait_for_function(f"document.getElementById('top-class').textContent === {colour!r}", timeout=10_000)
    assert page.locator("#top-class").text_content() == colour
    assert "% sure" in page.locator("#top-prob").text_content()
    rows = page.locator("#bars .bar")
    assert rows.count() == 2  # the top classes: both of this run's two
    assert rows.first.locator(".name").text_content() == colour and "best" in rows.first.get_attribute("class")
    # What the model saw, in the run's shape and colour: the middle of the picture is the class's colour.
    pixel = page.evaluate(
        "() => { const c = document.getElementById('preview'); "
        "return [c.width, c.height, ...c.getContext('2d').getImageData(8, 8, 1, 1).data.slice(0, 3)]; }"
    )
    assert pixel[:2] == [16, 16]
    red, green = pixel[2], pixel[3]
    assert (red > green + 60) if colour == "red" else (green > red + 40)
    assert page.locator("#status").text_content() == ""
    page.context.close()


def test_a_picture_the_server_cannot_read_is_one_line_on_the_page(browser, photo_server, tmp_path):  # noqa: F811
    page = open_photo_page(browser, photo_server)
    path = Path(tmp_path / "notes.png")
    path.write_bytes(b"not a picture at all")
    page.set_input_files("#photo-file", str(path))
    page.wait_for_function("document.getElementById('status').textContent !== ''", timeout=10_000)
    assert "notes.png" in page.locator("#status").text_content()
    assert page.locator("#top-class").text_content() == "?"
    page.context.close()
