"""The PyTorch peer of bench_train.py: the reference network in eager PyTorch, on the same MNIST files.

Usage (from the repo root; needs `pip install torch`, which is no dependency of mnist_hydra):
  python benchmarks/bench_torch.py [--data DIR] [--epochs N] [--case f32-64|bf16-64|bf16-256 ...]

The same network as mnist_hydra's reference (Conv2D 28 3x3 ReLU, MaxPool 2, Dense 128 ReLU, Dense 10, Keras's
Glorot-uniform weights and zero biases), Adam lr 1e-3 with Keras's epsilon 1e-7, cross-entropy, eager mode (no
torch.compile). Each epoch trains on all 60,000 training images in a fresh seeded order, with no validation
pass; the 10,000 test images are scored once at the end. The images are float32 tensors in memory, scaled to
[0, 1]; a batch is one index into them. Cases: float32 with batch 64 (the reference), and bf16 autocast
(torch.autocast("cpu", torch.bfloat16): matmuls and convolutions in bf16, weights and optimizer float32) with
batch 64 and 256. Each case prints one line, and one `BENCH_JSON {...}` line for bench_train.py.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

CASES = {"f32-64": ("float32", 64), "bf16-64": ("bf16", 64), "bf16-256": ("bf16", 256)}
JSON_MARK = "BENCH_JSON "


def read_idx(root: Path, stem: str, offset: int) -> np.ndarray:
    """An IDX file's payload, gzip or plain."""
    gz, plain = root / f"{stem}.gz", root / stem
    if gz.is_file():
        with gzip.open(gz, "rb") as f:
            data = f.read()
    else:
        data = plain.read_bytes()
    return np.frombuffer(data, np.uint8, offset=offset)


def load(root: Path):
    """(x_train, y_train, x_test, y_test) as torch tensors: float32 images (N, 1, 28, 28) in [0, 1], int64 labels."""
    import torch

    def images(stem):
        return torch.from_numpy(read_idx(root, stem, 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)

    def labels(stem):
        return torch.from_numpy(read_idx(root, stem, 8).astype(np.int64))

    return (
        images("train-images-idx3-ubyte"),
        labels("train-labels-idx1-ubyte"),
        images("t10k-images-idx3-ubyte"),
        labels("t10k-labels-idx1-ubyte"),
    )


def reference_network():
    """The reference CNN with Keras's initialisers, so both frameworks start from the same kind of weights."""
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(1, 28, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(13 * 13 * 28, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    # PyTorch flattens channels first; Keras channels last. The count of weights, and so the work, is the same.
    assert sum(p.numel() for p in model.parameters()) == 607_394
    return model


def run_case(name: str, data: Path, epochs: int, seed: int = 0) -> dict:
    """Train one case; its epoch times, test accuracy and image counts."""
    import torch
    from torch import nn

    precision, batch = CASES[name]
    torch.manual_seed(seed)
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = load(data)
    load_seconds = time.perf_counter() - start
    model = reference_network()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    bf16 = precision == "bf16"
    generator = torch.Generator().manual_seed(seed)
    epoch_seconds, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        total = 0.0
        for first in range(0, len(order), batch):
            index = order[first : first + batch]
            x, y = x_train[index], y_train[index]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        epoch_seconds.append(time.perf_counter() - start)
        losses.append(total / len(order))
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for first in range(0, len(y_test), 1000):
            correct += int((model(x_test[first : first + 1000]).argmax(1) == y_test[first : first + 1000]).sum())
    return {
        "case": name,
        "precision": precision,
        "batch_size": batch,
        "epoch_seconds": epoch_seconds,
        "loss": losses,
        "test_accuracy": correct / len(y_test),
        "train_images": len(y_train),
        "val_images": 0,
        "load_seconds": load_seconds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main(argv=None) -> int:
    default_data = os.environ.get("MNIST_HYDRA_DATA") or str(Path(__file__).resolve().parents[2] / "shared/data/mnist")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(default_data), help="MNIST folder (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per case (default %(default)s)")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="repeatable; default: all three")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print(
            "bench_torch: skipped: PyTorch is not installed (pip install torch; a CPU build is enough)", file=sys.stderr
        )
        return 3
    if not args.data.is_dir():
        print(f"bench_torch: error: --data {args.data}: no such folder", file=sys.stderr)
        return 2
    for name in args.case or list(CASES):
        result = run_case(name, args.data, args.epochs)
        median = statistics.median(result["epoch_seconds"][1:] or result["epoch_seconds"])
        print(
            f"torch {name}: {median:.2f} s/epoch (median of epochs 2..{args.epochs}), "
            f"{result['train_images'] / median:,.0f} images/s, test accuracy {result['test_accuracy']:.4f}",
            flush=True,
        )
        print(JSON_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
