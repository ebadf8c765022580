"""Each plot writes a PNG that opens, even for one epoch or no mistakes."""

import numpy as np
import pytest
from PIL import Image

from mnist_hydra.runs import plots
from mnist_hydra.runs.metrics import confusion_matrix

DIGITS = [str(i) for i in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def open_png(path):
    """The saved PNG's size, after checking it is one."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()  # a truncated file fails here
        return image.size


def history(epochs):
    e = np.arange(1, epochs + 1)
    return {
        "loss": list(1 / e),
        "accuracy": list(1 - 0.5 / e),
        "val_loss": list(1.1 / e),
        "val_accuracy": list(1 - 0.6 / e),
    }


@pytest.mark.parametrize("epochs", [1, 10])
def test_training_curves_png(tmp_path, epochs):
    path = tmp_path / "curves.png"
    plots.plot_training_curves(history(epochs), path)
    width, height = open_png(path)
    assert 600 <= width <= 2000 and 250 <= height <= 1200
    assert width > height  # two panels side by side
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_training_curves_without_validation_or_accuracy(tmp_path):
    path = tmp_path / "curves.png"
    plots.plot_training_curves({"loss": [0.5, 0.4]}, path)
    assert open_png(path)[0] > 0


@pytest.mark.parametrize("names", [DIGITS, FASHION])
def test_confusion_matrix_png(tmp_path, names):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.random(500) < 0.9, y_true, rng.integers(0, 10, 500))
    path = tmp_path / "confusion.png"
    plots.plot_confusion_matrix(confusion_matrix(y_true, y_pred, 10), names, path, title="test")
    width, height = open_png(path)
    assert 400 <= width <= 2000 and 400 <= height <= 2000


def test_confusion_matrix_rejects_wrong_number_of_names(tmp_path):
    with pytest.raises(ValueError, match="class names"):
        plots.plot_confusion_matrix(np.zeros((3, 3), int), ["a", "b"], tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []


def fake_predictions(n, wrong):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y_true = rng.integers(0, 10, n)
    y_pred = y_true.copy()
    y_pred[:wrong] = (y_true[:wrong] + 1) % 10
    return images, y_true, y_pred, rng.random(n)


@pytest.mark.parametrize("wrong, names", [(3, DIGITS), (40, FASHION)])
def test_misclassified_png(tmp_path, wrong, names):
    path = tmp_path / "misclassified.png"
    plots.plot_misclassified(*fake_predictions(100, wrong), names, path, max_images=25)
    width, height = open_png(path)
    assert 200 <= width <= 2000 and 200 <= height <= 2000


def test_misclassified_grid_grows_with_the_number_shown(tmp_path):
    data = fake_predictions(100, 40)
    plots.plot_misclassified(*data, DIGITS, tmp_path / "few.png", max_images=4)
    plots.plot_misclassified(*data, DIGITS, tmp_path / "many.png", max_images=25)
    assert open_png(tmp_path / "many.png")[1] > open_png(tmp_path / "few.png")[1]


def test_misclassified_without_mistakes_still_writes_a_png(tmp_path):
    path = tmp_path / "misclassified.png"
    plots.plot_misclassified(*fake_predictions(50, 0), DIGITS, path)
    width, height = open_png(path)
    assert width >= 200 and height >= 100


def test_pick_mistakes_orders_by_confidence_and_caps():
    y_true = np.array([0, 1, 2, 3, 4, 5])
    y_pred = np.array([0, 2, 2, 0, 1, 0])  # wrong at 1, 3, 4, 5
    confidence = np.array([0.99, 0.6, 0.95, 0.9, 0.7, 0.8])
    np.testing.assert_array_equal(plots._pick_mistakes(y_true, y_pred, confidence, 3), [3, 5, 4])
    np.testing.assert_array_equal(plots._pick_mistakes(y_true, y_pred, confidence, 10), [3, 5, 4, 1])
    assert plots._pick_mistakes(y_true, y_true, confidence, 10).size == 0


def test_describe_mistake_titles_and_wraps_long_names():
    assert plots._describe_mistake(DIGITS, 7, 2, 0.934) == "true 7 / pred 2 (0.93)"
    assert plots._describe_mistake(FASHION, 9, 7, 0.5) == "true Ankle boot\npred Sneaker (0.50)"


def test_misclassified_rejects_mismatched_lengths(tmp_path):
    images, y_true, y_pred, confidence = fake_predictions(10, 2)
    with pytest.raises(ValueError, match="one of each"):
        plots.plot_misclassified(images, y_true, y_pred[:5], confidence, DIGITS, tmp_path / "m.png")
