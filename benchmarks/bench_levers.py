"""Measure one speed lever at a time: `python -m mnist_hydra` with each override set, a few epochs each.

Usage (from the repo root):
  python benchmarks/bench_levers.py [--epochs 3] [--data DIR] [--set "name=k=v k=v" ...]

Without --set it runs LEVERS below, one after another, each in a fresh process (thread pools and
oneDNN state do not carry over), and prints median seconds per epoch (epochs 2..N), the change
against the first row, test accuracy after N epochs, peak memory, and the share of the CPUs that
other processes used meanwhile (it waits for them to go quiet first, up to --wait-quiet seconds).
Accuracy after 3 epochs only shows that a lever does not break training; the 10-epoch figures
come from bench_train.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import REPO, run_mnist_hydra, wait_for_quiet  # noqa: E402

# name -> overrides; the first row is the baseline the others are compared with.
LEVERS: list[tuple[str, list[str]]] = [
    ("before: spe 1, float32, batch 64", ["trainer.steps_per_execution=1"]),
    ("steps_per_execution=32 (default now)", []),
    ("eval_batch_size=1000", ["trainer.steps_per_execution=1", "trainer.eval_batch_size=1000"]),
    ("precision=mixed_bfloat16", ["trainer.steps_per_execution=1", "trainer.precision=mixed_bfloat16"]),
    ("threads=1", ["trainer.steps_per_execution=1", "trainer.threads=1"]),
    ("deterministic=false", ["trainer.steps_per_execution=1", "trainer.deterministic=false"]),
    ("spe 32 + mixed_bfloat16", ["trainer.precision=mixed_bfloat16"]),
    (
        "spe 1000 + batch 256, float32",
        ["trainer.steps_per_execution=1000", "trainer.batch_size=256", "trainer.eval_batch_size=2000"],
    ),
    ("inter_op_threads=2 (TensorFlow's own choice on 2 cores; the default is now 1)", ["trainer.inter_op_threads=2"]),
    (
        "fastest before: bf16, batch 256, lr 1e-3 constant, inter-op 2",
        [
            "trainer=fastest",
            "trainer.precision=mixed_bfloat16",
            "trainer.batch_size=256",
            "optimizer.lr=0.001",
            "optimizer.schedule=constant",
            "optimizer.warmup_fraction=0",
            "trainer.inter_op_threads=2",
        ],
    ),
    ("fastest with batch 512, lr 2e-3", ["trainer=fastest", "trainer.batch_size=512", "optimizer.lr=0.002"]),
    (
        "trainer=fastest (bf16 where the CPU has it, batch 1024, lr 4e-3 warm-up + cosine, inter-op 1)",
        ["trainer=fastest"],
    ),
]


def run(overrides: list[str], epochs: int, data: Path) -> dict:
    """One `python -m mnist_hydra` run: its epoch times, test accuracy, peak RSS, and what other processes used."""
    metrics, child = run_mnist_hydra(["trainer.verbose=0", f"trainer.epochs={epochs}", *overrides], data)
    seconds = metrics["epoch_seconds"]
    return {
        "epoch_seconds": seconds,
        "median": statistics.median(seconds[1:] or seconds),
        "test_accuracy": metrics["test_accuracy"],
        "peak_rss_gb": child.peak_rss_bytes / 1e9,
        "others": child.other_cpu or 0.0,
    }


def main() -> int:
    default_data = os.environ.get("MNIST_HYDRA_DATA") or str(REPO.parent / "shared" / "data" / "mnist")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default %(default)s)")
    parser.add_argument("--data", type=Path, default=Path(default_data), help="MNIST folder (default %(default)s)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        metavar="SECONDS",
        help="before each run, wait up to this long for other processes to go quiet (default %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=OVERRIDES",
        help='a row of its own, e.g. --set "bf16=trainer.precision=mixed_bfloat16"; repeatable',
    )
    args = parser.parse_args()
    rows = [(s.split("=", 1)[0], s.split("=", 1)[1].split()) for s in args.set] or LEVERS
    print(f"{args.epochs} epochs per run; s/epoch = median of epochs 2..{args.epochs}", flush=True)
    print(f"{'lever':<44}{'s/epoch':>8}{'change':>8}{'test acc':>9}{'RSS GB':>8}{'others':>7}  epochs (s)")
    base = None
    for name, overrides in rows:
        wait_for_quiet(args.wait_quiet)
        try:
            r = run(overrides, args.epochs, args.data.expanduser().absolute())
        except RuntimeError as e:
            print(f"{name:<44} failed: {e}", flush=True)
            continue
        base = base or r["median"]
        change = f"{(r['median'] / base - 1) * 100:+.0f}%"
        print(
            f"{name:<44}{r['median']:>8.2f}{change:>8}{r['test_accuracy']:>9.4f}{r['peak_rss_gb']:>8.2f}"
            f"{r['others'] * 100:>6.0f}%  {', '.join(f'{s:.2f}' for s in r['epoch_seconds'])}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
