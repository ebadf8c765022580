"""How fast `data=folder` reads a folder of images: first read (decoding) and cached, with peak memory.

Usage (from the repo root):
  MNIST_HYDRA_DATA=../shared/data/mnist python benchmarks/bench_folder.py [--sizes 10000 60000] [--workers N]

Writes the first N images of MNIST's training set as PNG files, one subfolder per class, into a scratch
folder, then loads the folder twice through `load_splits(FolderConfig(...))`, each time in a fresh process:
once with an empty cache (every image decoded and preprocessed as `predict` does), once from the cache.
Prints images per second and the peak resident memory of the loading process (its decoding workers' own
peak beside it), and the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import add_mnist_option, cpu_model, load_average, require_mnist  # noqa: E402

# Run in a fresh process per load, so that its peak memory is its own.
LOAD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from mnist_hydra.data.splits import load_splits
from mnist_hydra.data.folder import FolderConfig
start = time.perf_counter()
splits = load_splits(FolderConfig(root={root!r}, cache_dir={cache!r}, workers={workers!r}, val_split=0), seed=0)
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "images": len(splits.y_train) + len(splits.y_test),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""


def write_pngs(folder: Path, count: int, data: Path) -> float:
    """The first `count` MNIST training images as folder/LABEL/NNNNN.png; the seconds it took."""
    from PIL import Image

    from mnist_hydra.data.idx_format import read_idx

    images = read_idx(data / "train-images-idx3-ubyte.gz")[:count]
    labels = read_idx(data / "train-labels-idx1-ubyte.gz")[:count]
    start = time.perf_counter()
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=False)):
        Image.fromarray(image).save(folder / str(label) / f"{i:05d}.png")
    return time.perf_counter() - start


def load(root: Path, cache: Path, workers: int | None) -> dict:
    code = LOAD.format(repo=str(REPO), root=str(root), cache=str(cache), workers=workers)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 60_000], help="images per folder")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per core)")
    add_mnist_option(parser)
    args = parser.parse_args(argv)
    require_mnist(parser, args.data)
    print(f"CPU: {cpu_model()}; load average {load_average()}; workers: {args.workers or os.cpu_count()}")
    print(
        f"{'images':>8} {'first read':>12} {'images/s':>9} {'peak MB':>8} {'workers MB':>10}   "
        f"{'cached':>8} {'images/s':>9} {'peak MB':>8}"
    )
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_folder-") as scratch:
            root, cache = Path(scratch) / "images", Path(scratch) / "cache"
            write_pngs(root, size, args.data)
            first = load(root, cache, args.workers)
            cached = load(root, cache, args.workers)
            assert first["images"] == cached["images"] == size, (first, cached)
            print(
                f"{size:>8} {first['seconds']:>10.2f} s {size / first['seconds']:>9.0f} {first['peak_mb']:>8.0f} "
                f"{first['workers_peak_mb']:>10.0f}   {cached['seconds']:>6.2f} s {size / cached['seconds']:>9.0f} "
                f"{cached['peak_mb']:>8.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
