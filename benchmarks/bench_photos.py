"""How well a trained run reads photos of digits: the synthetic photo set of tests/photos.py, per kind of paper.

Usage (from the repo root):
  python benchmarks/bench_photos.py RUN_DIR [--n 2000] [--offset 1000] [--data DIR] [--preprocess FILE]

Draws one photo per MNIST test digit (offset .. offset+n): enlarged, on flat, graded, vignetted or
shadowed paper, dark ink or chalk, noise, JPEG. Prints the run's accuracy on the original 28x28
digits, on the photos (all, and per paper and polarity), how often a clean enlargement gets the
original's prediction, and milliseconds of preprocessing per photo.

--preprocess FILE measures another version of mnist_hydra/data/digits.py, e.g. one of another commit:
`git show REV:mnist_hydra/data/digits.py > /tmp/other.py`.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mnist_hydra.data.idx_format import read_idx  # noqa: E402
from mnist_hydra.runs.rundir import load_model  # noqa: E402
from tests.photos import BACKGROUNDS, clean, make_photos  # noqa: E402


def load_preprocess(path: str | None):
    """mnist_hydra.data.digits, or the module in `path`."""
    if path is None:
        from mnist_hydra.data import digits

        return digits
    spec = importlib.util.spec_from_file_location("preprocess_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory holding model.keras")
    parser.add_argument("--n", type=int, default=2000, help="photos, one per test digit")
    parser.add_argument("--offset", type=int, default=1000, help="first test digit used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MNIST_HYDRA_DATA", "")),
        help="the MNIST folder (default: $MNIST_HYDRA_DATA)",
    )
    parser.add_argument("--preprocess", help="another preprocess.py to measure")
    args = parser.parse_args()

    pre = load_preprocess(args.preprocess)
    window = slice(args.offset, args.offset + args.n)
    digits = read_idx(args.data / "t10k-images-idx3-ubyte.gz")[window]
    labels = read_idx(args.data / "t10k-labels-idx1-ubyte.gz")[window]
    photos = make_photos(digits, labels, seed=args.seed)
    model = load_model(args.run / "model.keras")

    def predict(images):
        return model.predict(np.stack(images)[..., np.newaxis], batch_size=256, verbose=0).argmax(axis=1)

    def prepare(image):
        try:
            return pre.to_mnist(pre.to_grayscale(image))
        except pre.ImageError:
            return np.zeros((28, 28), np.float32)  # counted as wrong

    start = time.perf_counter()
    inputs = [prepare(Image.open(io.BytesIO(p.jpeg))) for p in photos]
    per_photo = (time.perf_counter() - start) / len(photos) * 1000
    rng = np.random.default_rng(args.seed + 1)
    redrawn = predict([prepare(clean(d, rng)) for d in digits])
    original = predict(list(digits / 255.0))
    right = predict(inputs) == labels

    print(f"{args.n} MNIST test digits from {args.offset}, run {args.run}, preprocess {pre.__file__}")
    print(f"originals (28x28)        {np.mean(original == labels):.3f}")
    print(
        f"photos                   {right.mean():.3f}  ({right.mean() / np.mean(original == labels):.2f} of the originals)"
    )
    for key, values in (("background", BACKGROUNDS), ("polarity", ("ink", "chalk"))):
        for value in values:
            group = np.array([getattr(p, key) == value for p in photos])
            print(f"  {value:<22} {right[group].mean():.3f}  ({group.sum()} photos)")
    print(f"clean enlargements agree {np.mean(redrawn == original):.3f}")
    print(f"preprocessing            {per_photo:.1f} ms per photo")


if __name__ == "__main__":
    main()
