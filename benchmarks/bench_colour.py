"""Colour images: the folder loader on colour JPEGs, a resnet epoch, Fashion-MNIST to 90% in colour, the accuracies.

Usage (from the repo root):
  MNIST_HYDRA_DATA=../shared/data/mnist python benchmarks/bench_colour.py [--quick] [--skip SECTION ...]

No colour image set exists on these machines, so every set is built from real grey images by
tests/colour_sets.py: MNIST and Fashion-MNIST pictures as RGB JPEGs in class folders, each with a random tint,
background and border that carry no label information, and a red/green set of one luminance. Prints, after
the CPU line:

  loader  the folder loader on 10,000 colour 64x64 JPEGs (Fashion-MNIST's training pictures, tinted): first
          read (decoding) and from the cache, each in a fresh process, seconds and images/s;
  full    `python -m mnist_hydra data=folder ... data.preprocess=resize data.image_size=[32,32] data.channels=3
          model=resnet` on all of Fashion-MNIST as tinted 32x32 JPEGs (its 60,000 training pictures in train/,
          its 10,000 test pictures in test/), with a fresh cache: the test accuracy, each epoch's seconds
          (a resnet epoch on 32x32 colour) and the whole command's wall time, decoding included;
  table   test accuracies of shorter runs of the reference network (model=cnn): MNIST and Fashion-MNIST
          tinted at 32x32 and 64x64 (10,000 training and 2,000 test pictures, 3 epochs), and the red/green set
          (2,000 pictures, 3 epochs) with data.channels=3 and data.channels=1.

--quick cuts every set and epoch count, to try the script, not to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import add_mnist_option, cpu_model, load_average, require_mnist, run_mnist_hydra  # noqa: E402

from tests import colour_sets  # noqa: E402

# The run the 90% figure comes from: ResNet-20's stages and widths with one block a stage (ResNet-8),
# batch 128, Adam at 2e-3 on a cosine decay, and a random mirror image (a garment mirrored is the same garment;
# the tints and the picture's place already vary every picture, so no other augmentation).
RESNET = [
    "model=resnet",
    "model.depth=1",
    "trainer.batch_size=128",
    "optimizer.lr=0.002",
    "optimizer.schedule=cosine",
    "augment.flip=horizontal",
]
FULL_EPOCHS = 20
# The table's shorter runs, by side: (training pictures, test pictures, epochs), with the reference network
# (`model=cnn`: Conv2D 28 3x3, pool, dense 128, built from the data's shape; Adam 1e-3, batch 64): a few minutes
# for the four tinted sets and both red/green runs, where the resnet needs far more steps than that to get going.
TABLE_MODEL = ["model=cnn"]
TABLE = {32: (10_000, 2_000, 3), 64: (10_000, 2_000, 3)}
QUICK_TABLE = {32: (500, 200, 1), 64: (300, 100, 1)}
COLOUR_ONLY_EPOCHS = 3
LOADER_IMAGES = 10_000
COLOUR_ONLY_IMAGES = 2_000
SECTIONS = ("loader", "full", "table")

# Run in a fresh process per load, so that the first read pays for every decode and the cached one for none.
LOAD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from mnist_hydra.data.splits import load_splits
from mnist_hydra.data.folder import FolderConfig
start = time.perf_counter()
config = FolderConfig(root={root!r}, cache_dir={cache!r}, val_split=0, preprocess="resize",
                      image_size=[{side}, {side}], channels=3)
splits = load_splits(config, seed=0)
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "images": len(splits.y_train) + len(splits.y_test),
                  "shape": list(splits.input_shape),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def load(root: Path, cache: Path, side: int) -> dict:
    code = LOAD.format(repo=str(REPO), root=str(root), cache=str(cache), side=side)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def folder_overrides(root: Path, side: int, cache: Path, channels: int = 3) -> list[str]:
    return [
        "data=folder",
        f"data.root={root}",
        "data.preprocess=resize",
        f"data.image_size=[{side},{side}]",
        f"data.channels={channels}",
        f"data.cache_dir={cache}",
        "trainer.verbose=0",
    ]


def loader(scratch: Path, images: int) -> None:
    root, cache = scratch / "loader", scratch / "loader-cache"
    grey, labels = colour_sets.read_source("fashion", "train", images)
    colour_sets.write_jpegs(root, colour_sets.tinted_pictures(grey, 64, seed=0), labels, colour_sets.FASHION_CLASSES)
    first, cached = load(root, cache, 64), load(root, cache, 64)
    assert first["images"] == cached["images"] == images and first["shape"] == [64, 64, 3], (first, cached)
    print(f"loader: {images:,} tinted 64x64 RGB JPEGs (Fashion-MNIST training pictures), {os.cpu_count()} workers")
    print(f"  {'':>10} {'seconds':>8} {'images/s':>9} {'peak MB':>8}")
    for name, result in (("first read", first), ("cached", cached)):
        rate = images / result["seconds"]
        print(f"  {name:>10} {result['seconds']:>8.2f} {rate:>9,.0f} {result['peak_mb']:>8.0f}")


def train(overrides: list[str], data: Path) -> tuple[dict, float, float | None]:
    """(metrics, the command's wall seconds, other processes' share of the CPUs meanwhile)."""
    metrics, child = run_mnist_hydra(overrides, data)
    return metrics, child.wall_seconds, child.other_cpu


def full(scratch: Path, data: Path, epochs: int, train_count: int | None, test_count: int) -> None:
    root = scratch / "fashion32"
    start = time.perf_counter()
    colour_sets.write_tinted(root, "fashion", 32, train_count, test=test_count, seed=0)
    written = time.perf_counter() - start
    overrides = [*folder_overrides(root, 32, scratch / "full-cache"), *RESNET, f"trainer.epochs={epochs}"]
    print(f"full: Fashion-MNIST as tinted 32x32 RGB JPEGs (train/ and test/, written in {written:.0f} s), fresh cache:")
    print(f"  python -m mnist_hydra {' '.join(overrides)}")
    metrics, wall, other = train(overrides, data)
    seconds = metrics["epoch_seconds"]
    print(
        f"  {metrics['train_images']:,} training, {metrics['val_images']:,} validation, "
        f"{metrics['test_images']:,} test images; {len(seconds)} epochs"
    )
    print(f"  a resnet epoch on 32x32 colour: {', '.join(f'{s:.0f}' for s in seconds)} s")
    share = "" if other is None else f"; other processes used {other * 100:.0f}% of the CPUs meanwhile"
    print(
        f"  test accuracy {metrics['test_accuracy']:.4f}; the whole command {wall:.0f} s ({wall / 60:.1f} min){share}"
    )


def table(scratch: Path, data: Path, sizes: dict[int, tuple[int, int, int]], colour_only: tuple[int, int]) -> None:
    print(f"table: {' '.join(TABLE_MODEL)}; each set's first training and test pictures; red/green: a fifth held out")
    print(f"  {'set':<34} {'train':>6} {'test':>6} {'epochs':>6} {'test accuracy':>14} {'wall s':>7}")
    cache = scratch / "table-cache"

    def row(name: str, overrides: list[str], epochs: int) -> None:
        metrics, wall, _ = train([*overrides, *TABLE_MODEL, f"trainer.epochs={epochs}"], data)
        figures = f"{metrics['train_images']:>6} {metrics['test_images']:>6} {epochs:>6}"
        print(f"  {name:<34} {figures} {metrics['test_accuracy']:>14.4f} {wall:>7.0f}", flush=True)

    for source in ("mnist", "fashion"):
        for side, (train_count, test_count, epochs) in sizes.items():
            root = scratch / f"{source}{side}"
            colour_sets.write_tinted(root, source, side, train_count, test=test_count, seed=0)
            name = f"{'MNIST' if source == 'mnist' else 'Fashion-MNIST'} tinted {side}x{side} RGB"
            row(name, folder_overrides(root, side, cache), epochs)
            shutil.rmtree(root)
    root = scratch / "red_green"
    count, epochs = colour_only
    colour_sets.write_colour_only(root, count)
    for channels in (3, 1):
        row(f"red/green 32x32, data.channels={channels}", folder_overrides(root, 32, cache, channels), epochs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sets and 1 epoch: tries the script, no figures")
    parser.add_argument("--skip", nargs="*", choices=SECTIONS, default=[], help="sections left out")
    add_mnist_option(parser)
    args = parser.parse_args(argv)
    require_mnist(parser, args.data)
    if not (colour_sets.FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        parser.error(f"no Fashion-MNIST in {colour_sets.FASHION_DIR} (apt-get install dataset-fashion-mnist)")
    os.environ["MNIST_HYDRA_DATA"] = str(args.data.resolve())  # colour_sets reads MNIST from there
    print(f"CPU: {cpu_model()}; load average {load_average()}", flush=True)
    quick = args.quick
    with tempfile.TemporaryDirectory(prefix="bench_colour-") as name:
        scratch = Path(name)
        if "loader" not in args.skip:
            loader(scratch, 1_000 if quick else LOADER_IMAGES)
            sys.stdout.flush()
        if "full" not in args.skip:
            full(scratch, args.data, 1 if quick else FULL_EPOCHS, 2_000 if quick else None, 500 if quick else 10_000)
            sys.stdout.flush()
        if "table" not in args.skip:
            colour_only = (200, 1) if quick else (COLOUR_ONLY_IMAGES, COLOUR_ONLY_EPOCHS)
            table(scratch, args.data, QUICK_TABLE if quick else TABLE, colour_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
