"""`python -m mnist_hydra +experiment=best` over seeds 0, 1, 2: mean test accuracy and each run's wall time.

Usage (from the repo root; about 15 minutes on two cores):
  python benchmarks/bench_best.py [--data DIR] [--seeds 0,1,2] [--set k=v ...] [--json PATH]

Each seed is its own `python -m mnist_hydra` process into a scratch run directory, one after another.
Targets: mean test accuracy >= 99.5% over the seeds, and every run <= 5 minutes wall.
bench_train.py runs the same with `--only best`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import REPO, TARGET_BEST_ACCURACY, TARGET_BEST_WALL, run_mnist_hydra, verdict, wait_for_quiet  # noqa: E402

SEEDS = (0, 1, 2)


def run_best(data: Path, seeds=SEEDS, overrides: list[str] | None = None, wait_quiet: float = 60) -> dict[str, Any]:
    """Run +experiment=best once per seed; every run's figures, their mean and the two targets' verdicts."""
    runs = []
    for seed in seeds:
        share = wait_for_quiet(wait_quiet)
        print(
            f"best, seed {seed}"
            + ("" if share is None else f" (other processes at {share * 100:.0f}% of the CPUs)")
            + ":",
            flush=True,
        )
        try:
            metrics, child = run_mnist_hydra(["+experiment=best", f"seed={seed}", *(overrides or [])], data)
        except RuntimeError as err:
            print(f"  seed {seed} failed: {str(err).splitlines()[0]}", flush=True)
            runs.append({"seed": seed, "error": str(err)})
            continue
        run = {
            "seed": seed,
            "test_accuracy": metrics["test_accuracy"],
            "wall_seconds": child.wall_seconds,
            "epochs": metrics["epochs_run"],
            "epoch_seconds": metrics["epoch_seconds"],
            "peak_rss_bytes": child.peak_rss_bytes,
            "other_cpu": child.other_cpu,
        }
        runs.append(run)
        print(
            f"  seed {seed}: test accuracy {run['test_accuracy']:.4f}, {run['epochs']} epochs, "
            f"median epoch {statistics.median(run['epoch_seconds']):.1f} s, wall {run['wall_seconds']:.0f} s; "
            f"other processes used {(child.other_cpu or 0) * 100:.0f}% of the CPUs",
            flush=True,
        )
    done = [r for r in runs if "error" not in r]
    mean = statistics.mean(r["test_accuracy"] for r in done) if done else None
    slowest = max((r["wall_seconds"] for r in done), default=None)
    complete = len(done) == len(runs)
    return {
        "overrides": ["+experiment=best", *(overrides or [])],
        "runs": runs,
        "mean_test_accuracy": mean,
        "slowest_wall_seconds": slowest,
        "accuracy_met": None if mean is None else (complete and mean >= TARGET_BEST_ACCURACY),
        "wall_met": None if slowest is None else (complete and slowest <= TARGET_BEST_WALL),
    }


def report(result: dict[str, Any]) -> None:
    """The per-seed table and the two targets."""
    print("\n== +experiment=best ==")
    print(f"{'seed':>4}{'test acc':>10}{'epochs':>8}{'s/epoch':>9}{'wall':>8}")
    for run in result["runs"]:
        if "error" in run:
            print(f"{run['seed']:>4}  failed: {run['error'].splitlines()[0]}")
            continue
        print(
            f"{run['seed']:>4}{run['test_accuracy']:>10.4f}{run['epochs']:>8}"
            f"{statistics.median(run['epoch_seconds']):>9.1f}{run['wall_seconds']:>7.0f}s"
        )
    mean, slowest = result["mean_test_accuracy"], result["slowest_wall_seconds"]
    seeds = ",".join(str(r["seed"]) for r in result["runs"])
    print(
        f"{f'mean test accuracy over seeds {seeds} >= {TARGET_BEST_ACCURACY}':<58}"
        f"{'-' if mean is None else f'{mean:.4f}':>32}  {verdict(result['accuracy_met'])}"
    )
    print(
        f"{f'each +experiment=best run <= {TARGET_BEST_WALL:.0f} s wall':<58}"
        f"{'-' if slowest is None else f'slowest {slowest:.0f} s':>32}  {verdict(result['wall_met'])}"
    )


def main(argv: list[str] | None = None) -> int:
    default_data = os.environ.get("MNIST_HYDRA_DATA") or str(REPO.parent / "shared" / "data" / "mnist")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(default_data), help="MNIST folder (default %(default)s)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default %(default)s)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra override for every run, e.g. --set trainer.epochs=2; repeatable",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        metavar="SECONDS",
        help="before each run, wait up to this long for other processes to go quiet (default %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--seeds {args.seeds}: expected comma-separated integers, e.g. 0,1,2")
    if not args.data.is_dir():
        print(f"bench_best: error: --data {args.data}: no such folder", file=sys.stderr)
        return 2
    result = run_best(args.data.absolute(), seeds, args.set, args.wait_quiet)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all("error" not in r for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
