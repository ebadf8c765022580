"""Time to accuracy: each case a whole command, from its start to its exit, side by side on one machine.

Usage (from the repo root; run it alone: `cpu-exclusive .venv/bin/python benchmarks/bench_speedrun.py`):
  python benchmarks/bench_speedrun.py [--data DIR] [--seeds 10] [--reference-seeds 5] [--case NAME ...]

Cases:
  plain      the plain Keras script (the original notebook: the reference CNN, Adam 1e-3, batch 64, 10 epochs on
             all 60,000 images, validating on the test set, float32 arrays into model.fit), seed 0
  fastest    python -m mnist_hydra trainer=fastest, seed 0
  reference  python -m mnist_hydra +experiment=reference_fast, seeds 0..--reference-seeds - 1
  speedrun   python -m mnist_hydra +experiment=speedrun, seeds 0..--seeds - 1
  torch-f32, torch-bf16
             the speedrun's network and schedule in eager PyTorch (float32, and bf16 autocast), seed 0: the same
             58,800 training images, batch 256, one epoch, Adam lr 1e-2 betas (0.7, 0.9) on the same one-cycle
             curve; skipped with a line when torch is not installed (it is in the `bench` extra)

For each case: test accuracy (mean, min, max over its runs), wall time (median, worst), and the time to reach
98.5% and 99.0%: from the command's start to the end of the first epoch whose held-out accuracy reached it
(mnist_hydra: validation accuracy, read from train.log's epoch lines; the plain script validates on the test
set), or the whole command when only its final test accuracy did. Then MET / NOT MET for each goal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import JSON_MARK, child_env, cpu_model, load_average, run_child, verdict, wait_for_quiet

TARGETS = (0.985, 0.990)  # the accuracies whose time is reported
SPEEDRUN_ACCURACY, SPEEDRUN_MIN, SPEEDRUN_WALL = 0.990, 0.988, 10.0  # mean over seeds, every seed, every run (s)
REFERENCE_ACCURACY, REFERENCE_WALL = 0.985, 12.0  # +experiment=reference_fast: mean over seeds, every run (s)
FASTEST_ACCURACY = 0.985  # trainer=fastest keeps it
CASES = ("plain", "fastest", "reference", "speedrun", "torch-f32", "torch-bf16")

PLAIN_SCRIPT = r'''
"""The original notebook: numpy float32 arrays into model.fit, validating on the test set."""
import gzip, json, os, sys, time
import numpy as np

root = sys.argv[1]

def read(name, offset):
    with gzip.open(os.path.join(root, name), "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)

x_train = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
y_train = read("train-labels-idx1-ubyte.gz", 8)
x_test = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
y_test = read("t10k-labels-idx1-ubyte.gz", 8)

import keras
from keras import layers

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    layers.Conv2D(28, 3, activation="relu"),
    layers.MaxPooling2D(2),
    layers.Flatten(),
    layers.Dense(128, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

class Clock(keras.callbacks.Callback):
    ends = []
    def on_epoch_end(self, epoch, logs=None):  # after validation
        self.ends.append(time.time())

fit = model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=10, batch_size=64, verbose=0,
                callbacks=[Clock()])
print("BENCH_JSON " + json.dumps({
    "test_accuracy": float(fit.history["val_accuracy"][-1]),  # the validation set is the test set
    "val_accuracy": [float(v) for v in fit.history["val_accuracy"]], "epoch_ends": Clock.ends,
}))
'''

TORCH_SCRIPT = r'''
"""The speedrun in eager PyTorch: the cnn2 network, Adam lr 1e-2 betas (0.7, 0.9), one epoch of batch 256 on the
one-cycle curve of +experiment=speedrun (linear from lr/25 to lr over 20% of the steps, cosine to 0)."""
import gzip, json, math, os, sys, time
import numpy as np
import torch
from torch import nn

root, precision, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.manual_seed(seed)

def read(name, offset):
    with gzip.open(os.path.join(root, name), "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)

def images(name):
    return torch.from_numpy(read(name, 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)

x_train, x_test = images("train-images-idx3-ubyte.gz"), images("t10k-images-idx3-ubyte.gz")
y_train = torch.from_numpy(read("train-labels-idx1-ubyte.gz", 8).astype(np.int64))
y_test = torch.from_numpy(read("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
# The speedrun's split: 2% held out (mnist_hydra validates on it; here it is simply left out).
order = np.random.default_rng(seed).permutation(len(y_train))[round(len(y_train) * 0.02):]
x_train, y_train = x_train[order], y_train[order]

model = nn.Sequential(
    nn.Conv2d(1, 24, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(24, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(800, 256), nn.ReLU(), nn.Linear(256, 10),
)
batch, peak, warmup_share = 256, 1e-2, 0.2
steps = math.ceil(len(y_train) / batch)
warmup = round(steps * warmup_share)

def curve(step):
    if step < warmup:
        return (0.04 + (1 - 0.04) * step / warmup)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, steps - warmup) / (steps - warmup)))

optimizer = torch.optim.Adam(model.parameters(), lr=peak, betas=(0.7, 0.9), eps=1e-7)
schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, curve)
loss_fn = nn.CrossEntropyLoss()
bf16 = precision == "bf16"
start = time.perf_counter()
shuffle = torch.randperm(len(y_train))
for first in range(0, len(shuffle), batch):
    index = shuffle[first : first + batch]
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(model(x_train[index]), y_train[index])
    loss.backward()
    optimizer.step()
    schedule.step()
train_seconds = time.perf_counter() - start
model.eval()
correct = 0
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
    for first in range(0, len(y_test), 2000):
        correct += int((model(x_test[first : first + 2000]).argmax(1) == y_test[first : first + 2000]).sum())
print("BENCH_JSON " + json.dumps({"test_accuracy": correct / len(y_test), "train_seconds": train_seconds,
                                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
'''


# Where a run's time goes, from train.log's timestamps: each phase ends at the first line that holds its mark.
PHASES = (
    ("start-up, imports, Hydra, config, data read and verified", "images from"),
    ("TensorFlow and Keras imported, seeded", "[mnist_hydra.training.run][INFO] - data:"),
    ("model built and compiled", "[INFO] - model:"),
    ("fit: tracing, training, validation", "[INFO] - epoch "),
    ("test set scored", "final weights:"),
    ("artifacts: model.keras, plots, report, metrics.json", "test accuracy"),
)
EXIT_PHASE = "summary printed, process exit"


@dataclass
class Run:
    """One command: its test accuracy, wall time, and when (seconds from its start) it reached each target."""

    test_accuracy: float
    wall: float
    reached: dict[float, float | None]
    phases: dict[str, float] = field(default_factory=dict)  # seconds each phase took (mnist_hydra runs)


@dataclass
class Case:
    name: str
    command: str
    runs: list[Run] = field(default_factory=list)
    skipped: str | None = None

    def accuracies(self) -> list[float]:
        return [r.test_accuracy for r in self.runs]

    def walls(self) -> list[float]:
        return [r.wall for r in self.runs]


def reached_times(
    epoch_ends: list[float], held_out: list[float], start: float, test_accuracy: float, wall: float
) -> dict[float, float | None]:
    """Seconds from `start` to the first epoch end whose held-out accuracy reached each target; else the whole
    command when the final test accuracy did; else None."""
    times: dict[float, float | None] = {}
    for target in TARGETS:
        hit = next((end - start for end, acc in zip(epoch_ends, held_out, strict=False) if acc >= target), None)
        times[target] = hit if hit is not None else (wall if test_accuracy >= target else None)
    return times


def stamped_lines(log: Path) -> list[tuple[float, str]]:
    """(Unix time, line) for each line of a run's train.log (Hydra's format: [YYYY-mm-dd HH:MM:SS,mmm]...)."""
    lines = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            lines.append((datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp(), line))
        except ValueError:  # a continuation line
            continue
    return lines


def epoch_ends(lines: list[tuple[float, str]]) -> list[float]:
    """The time of each complete epoch's `epoch N/M:` line."""
    return [t for t, line in lines if "][INFO] - epoch " in line and "dropped" not in line]


def phases(lines: list[tuple[float, str]], start: float, wall: float) -> dict[str, float]:
    """Seconds per PHASES entry (the last epoch's line ends the fit), then the rest up to the process's exit."""
    seconds, last = {}, start
    for name, mark in PHASES:
        hits = [t for t, line in lines if mark in line]
        if not hits:
            return {}
        end = hits[-1] if mark == "[INFO] - epoch " else hits[0]
        seconds[name], last = end - last, end
    seconds[EXIT_PHASE] = start + wall - last
    return seconds


def run_app(case: Case, overrides: list[str], data: Path) -> None:
    """`python -m mnist_hydra OVERRIDES` once, into a scratch run directory read and then removed."""
    run_dir = Path(tempfile.mkdtemp(prefix="bench_speedrun_"))
    try:
        start = time.time()
        child = run_child(
            [sys.executable, "-m", "mnist_hydra", f"hydra.run.dir={run_dir}", *overrides], child_env(data)
        )
        metrics_path = run_dir / "metrics.json"
        if child.returncode != 0 or not metrics_path.is_file():
            raise RuntimeError(f"{case.name}: exit code {child.returncode}; stderr ends:\n{child.stderr[-2000:]}")
        metrics = json.loads(metrics_path.read_text())
        lines = stamped_lines(run_dir / "train.log")
        reached = reached_times(
            epoch_ends(lines), metrics["history"]["val_accuracy"], start, metrics["test_accuracy"], child.wall_seconds
        )
        case.runs.append(
            Run(metrics["test_accuracy"], child.wall_seconds, reached, phases(lines, start, child.wall_seconds))
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_script(case: Case, script: str, args: list[str], data: Path) -> None:
    """A helper script (plain Keras, PyTorch) once, from a temporary file; its BENCH_JSON line."""
    with tempfile.NamedTemporaryFile("w", prefix="bench_speedrun_", suffix=".py", delete=False) as f:
        f.write(script)
    try:
        start = time.time()
        child = run_child([sys.executable, f.name, *args], child_env(data))
        result = child.result()
        reached = reached_times(
            result.get("epoch_ends", []),
            result.get("val_accuracy", []),
            start,
            result["test_accuracy"],
            child.wall_seconds,
        )
        case.runs.append(Run(result["test_accuracy"], child.wall_seconds, reached))
    finally:
        os.unlink(f.name)


def fmt_time(case: Case, target: float) -> str:
    """Median time to `target` over the runs that reached it, and how many did."""
    hits = [r.reached[target] for r in case.runs if r.reached[target] is not None]
    if not hits:
        return "never"
    share = "" if len(hits) == len(case.runs) else f" ({len(hits)}/{len(case.runs)})"
    return f"{statistics.median(hits):.1f} s{share}"


def table(cases: list[Case]) -> list[str]:
    """The side-by-side table, one row per case."""
    head = f"{'case':<11}{'runs':>5}{'acc mean':>10}{'min':>8}{'max':>8}{'wall med':>10}{'worst':>8}"
    head += "".join(f"{f'to {t * 100:.1f}%':>14}" for t in TARGETS)
    lines = [head]
    for case in cases:
        if case.skipped:
            lines.append(f"{case.name:<11}  {case.skipped}")
            continue
        acc, walls = case.accuracies(), case.walls()
        row = f"{case.name:<11}{len(acc):>5}{statistics.mean(acc):>10.4f}{min(acc):>8.4f}{max(acc):>8.4f}"
        row += f"{statistics.median(walls):>9.1f}s{max(walls):>7.1f}s"
        row += "".join(f"{fmt_time(case, t):>14}" for t in TARGETS)
        lines.append(row)
    return lines


def phase_table(case: Case) -> list[str]:
    """Where a case's wall time went: each phase's median over its runs, and its share of the median run."""
    timed = [r.phases for r in case.runs if r.phases]
    if not timed:
        return []
    medians = {name: statistics.median(p[name] for p in timed) for name in timed[0]}
    total = sum(medians.values())
    lines = [f"where {case.name}'s time goes (median of {len(timed)} runs, from train.log's timestamps):"]
    lines += [f"  {seconds:6.2f} s {seconds / total:5.0%}  {name}" for name, seconds in medians.items()]
    lines.append(f"  {total:6.2f} s        in all")
    return lines


def goals(cases: dict[str, Case]) -> list[tuple[str, bool | None]]:
    """Each goal and whether the figures meet it (None: its case was not run)."""

    def measured(name: str) -> Case | None:
        case = cases.get(name)
        return case if case is not None and case.runs and not case.skipped else None

    speed, ref, fast = measured("speedrun"), measured("reference"), measured("fastest")
    return [
        (
            f"speedrun: mean test accuracy >= {SPEEDRUN_ACCURACY:.1%}",
            None if speed is None else statistics.mean(speed.accuracies()) >= SPEEDRUN_ACCURACY,
        ),
        (
            f"speedrun: every seed >= {SPEEDRUN_MIN:.1%}",
            None if speed is None else min(speed.accuracies()) >= SPEEDRUN_MIN,
        ),
        (
            f"speedrun: every run <= {SPEEDRUN_WALL:.0f} s wall, start to exit",
            None if speed is None else max(speed.walls()) <= SPEEDRUN_WALL,
        ),
        (
            f"reference_fast: mean test accuracy >= {REFERENCE_ACCURACY:.1%}",
            None if ref is None else statistics.mean(ref.accuracies()) >= REFERENCE_ACCURACY,
        ),
        (
            f"reference_fast: every run <= {REFERENCE_WALL:.0f} s wall",
            None if ref is None else max(ref.walls()) <= REFERENCE_WALL,
        ),
        (
            f"trainer=fastest: test accuracy >= {FASTEST_ACCURACY:.1%}",
            None if fast is None else min(fast.accuracies()) >= FASTEST_ACCURACY,
        ),
    ]


def torch_missing() -> str | None:
    """Why the PyTorch cases cannot run, or None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "PyTorch is not installed (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_data = os.environ.get("MNIST_HYDRA_DATA") or str(Path(__file__).resolve().parents[2] / "shared/data/mnist")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(default_data), help="MNIST folder (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=10, help="speedrun runs, seeds 0.. (default %(default)s)")
    parser.add_argument("--reference-seeds", type=int, default=5, help="reference_fast runs (default %(default)s)")
    parser.add_argument("--case", action="append", choices=CASES, help="repeatable; default: all")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for a quiet machine first")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.reference_seeds < 1:
        parser.error("--seeds and --reference-seeds take a count >= 1")
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder")
    args.data = args.data.expanduser().absolute()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = args.case or list(CASES)
    quiet = wait_for_quiet(args.wait)
    print(
        f"CPU: {cpu_model()}; python {sys.executable}; load average {load_average()} before"
        + (f"; other processes used {quiet * 100:.0f}% of the CPUs just before" if quiet is not None else ""),
        flush=True,
    )
    speedrun_seeds = [f"seed={seed}" for seed in range(args.seeds)]
    reference_seeds = [f"seed={seed}" for seed in range(args.reference_seeds)]
    plan: list[tuple[Case, list[Any]]] = [
        (Case("plain", "python <plain Keras script> DATA"), [("script", PLAIN_SCRIPT, [str(args.data)])]),
        (Case("fastest", "python -m mnist_hydra trainer=fastest"), [("app", ["trainer=fastest"])]),
        (
            Case("reference", "python -m mnist_hydra +experiment=reference_fast seed=S"),
            [("app", ["+experiment=reference_fast", s]) for s in reference_seeds],
        ),
        (
            Case("speedrun", "python -m mnist_hydra +experiment=speedrun seed=S"),
            [("app", ["+experiment=speedrun", s]) for s in speedrun_seeds],
        ),
        (
            Case("torch-f32", "python <torch script> DATA float32 0"),
            [("script", TORCH_SCRIPT, [str(args.data), "f32", "0"])],
        ),
        (
            Case("torch-bf16", "python <torch script> DATA bf16 0"),
            [("script", TORCH_SCRIPT, [str(args.data), "bf16", "0"])],
        ),
    ]
    cases: dict[str, Case] = {}
    for case, runs in plan:
        if case.name not in chosen:
            continue
        cases[case.name] = case
        if case.name.startswith("torch") and torch_missing():
            case.skipped = f"skipped: {torch_missing()}"
            print(f"{case.name}: {case.skipped}", flush=True)
            continue
        for kind, *rest in runs:
            try:
                if kind == "app":
                    run_app(case, rest[0], args.data)
                else:
                    run_script(case, rest[0], rest[1], args.data)
            except RuntimeError as err:  # one failed command: said, and the other cases still run
                case.skipped = f"failed: {str(err).splitlines()[-1][:200]}"
                print(f"  {case.name}: {case.skipped}", flush=True)
                break
            last = case.runs[-1]
            print(f"  {case.name}: test accuracy {last.test_accuracy:.4f}, {last.wall:.1f} s wall", flush=True)
    print(f"\nload average {load_average()} after\n")
    for name, case in cases.items():
        print(f"{name:<11}{case.command}")
    print()
    print("\n".join(table(list(cases.values()))))
    for name in ("speedrun", "reference"):
        if name in cases:
            print("\n" + "\n".join(phase_table(cases[name])))
    print()
    for label, ok in goals(cases):
        print(f"{verdict(ok):>8}  {label}")
    print(JSON_MARK + json.dumps({n: [vars(r) for r in c.runs] for n, c in cases.items()}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
