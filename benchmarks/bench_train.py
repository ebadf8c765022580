"""Time mnist_hydra against a plain Keras script and a PyTorch peer on the real MNIST, and check the targets.

Usage (from the repo root):
  python benchmarks/bench_train.py [--data DIR] [--epochs N] [--repeats R] [--overhead-runs N]
      [--fast-overrides "k=v k=v"] [--only a,b,c,torch,best,cli,load,peak] [--json PATH]

First the machine: its CPU model and ISA flags (AMX, AVX-512-bf16, AVX-512F), the float32 and bf16 matmul
peaks, and what they make the floor of one epoch. Then the cases, each run as its own subprocess, in turn:
  (a) `python -m mnist_hydra` with the default config, as users call it (no overrides but the run
      directory; trainer.epochs only when --epochs is not 10);
  (b) a plain Keras script: the same network fed numpy float32 arrays, all 60,000 training images,
      validating on the test set each epoch (the original notebook);
  (c) `python -m mnist_hydra` with the fastest setting that keeps the reference network
      (FAST_OVERRIDES, or --fast-overrides);
  torch f32-64, bf16-64, bf16-256: the PyTorch peer (benchmarks/bench_torch.py; skipped, with a line saying
      so, where torch is not installed): eager, float32 batch 64 and bf16 autocast batch 64 and 256,
      60,000 images an epoch, no validation pass.
(a) and (c) train on 54,000 images and validate on 6,000 (data.val_split=0.1), (b) on 60,000 and
10,000, the peer on 60,000 with no validation, so an epoch is not the same work: the ratios are also
given per training image (seconds per epoch / training images), and the targets are judged on that one.
Each run's whole-command wall time and its overhead (wall minus its epochs' own time) are kept; (a) runs
--overhead-runs times in all for the overhead target. `best` (not in the default --only: about 15
minutes) runs `+experiment=best` over seeds 0, 1, 2 (benchmarks/bench_best.py). Then: wall time of
`--help`, `--cfg job` and `import tensorflow`; MNIST load time through `mnist_hydra.data.splits.load_splits`.
The benchmark process itself never imports TensorFlow, so every figure comes from a fresh child.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402,F401
    JSON_MARK,
    REPO,
    TARGET_BEST_ACCURACY,
    TARGET_BEST_WALL,
    Child,
    busy_cpu_seconds,
    child_env,
    io_stall_seconds,
    run_child,
    run_mnist_hydra,
    verdict,
    wait_for_quiet,
)

from mnist_hydra.training.precision import cpu_flags  # noqa: E402

# The framework's fastest setting that keeps the reference network (conf/trainer/fastest.yaml).
FAST_OVERRIDES: list[str] = ["trainer=fastest"]
DEFAULT_EPOCHS = 10  # the default config's trainer.epochs

CASES = ("a", "b", "c", "torch", "best", "cli", "load", "peak")
DEFAULT_ONLY = ("a", "b", "c", "torch", "cli", "load", "peak")  # best takes ~15 minutes: asked for by name
TORCH_CASES = ("f32-64", "bf16-64", "bf16-256")  # benchmarks/bench_torch.py's cases

# Targets (docs/performance.md). Ratios are of seconds per training image; s/epoch is the median of epochs 2..N.
TARGET_A_OVER_B = 0.6  # default config against the plain script, per training image
TARGET_C_EPOCH_AMX = 1.0  # trainer=fastest, s/epoch, on a CPU with AMX
TARGET_C_EPOCH_AVX512 = 1.5  # ... on one without (AVX-512)
TARGET_C_ACCURACY = 0.985
TARGET_C_WALL = 20.0  # trainer=fastest's whole command, seconds
TARGET_A_OVERHEAD = 6.0  # the default run's wall time minus its epochs' time, seconds, in every run
TARGET_OVER_TORCH = 4.0  # trainer=fastest per training image, times faster than the best PyTorch case
TARGET_CLI_SECONDS = 1.0
TARGET_LOAD_SECONDS = 1.0
TARGET_A_PEAK_BYTES = 2.5e9  # 2.5 GB (10^9 bytes)

# The reference network, for the analytic FLOP count.
FILTERS, KERNEL, POOL, DENSE, CLASSES, SIDE = 28, 3, 2, 128, 10, 28

PLAIN_SCRIPT = r'''
"""The original notebook: numpy float32 arrays into model.fit, validating on the test set."""
import gzip, json, os, sys, time
import numpy as np

root, epochs = sys.argv[1], int(sys.argv[2])

def read(name, offset):
    with gzip.open(os.path.join(root, name), "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)

start = time.perf_counter()
x_train = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
y_train = read("train-labels-idx1-ubyte.gz", 8)
x_test = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
y_test = read("t10k-labels-idx1-ubyte.gz", 8)
load_seconds = time.perf_counter() - start

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

class Timer(keras.callbacks.Callback):
    seconds = []
    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):  # after validation: an epoch includes it, as in (a)
        self.seconds.append(time.perf_counter() - self.t)

start = time.perf_counter()
fit = model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=epochs, batch_size=64,
                verbose=0, callbacks=[Timer()])
train_seconds = time.perf_counter() - start
print("BENCH_JSON " + json.dumps({
    "test_accuracy": float(fit.history["val_accuracy"][-1]),  # the validation set is the test set
    "epoch_seconds": Timer.seconds, "train_seconds": train_seconds, "load_seconds": load_seconds,
    "train_images": len(y_train), "val_images": len(y_test),
}))
'''

MATMUL_SCRIPT = r"""
import json, sys, time
import tensorflow as tf

n, reps, dtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
a = tf.cast(tf.random.uniform((n, n)), dtype)
b = tf.cast(tf.random.uniform((n, n)), dtype)
for _ in range(2):  # warm-up: thread pools, oneDNN primitives
    tf.linalg.matmul(a, b)[0, 0].numpy()
times = []
for _ in range(reps):
    start = time.perf_counter()
    tf.linalg.matmul(a, b)[0, 0].numpy()  # reading one element waits for the product
    times.append(time.perf_counter() - start)
print("BENCH_JSON " + json.dumps({"n": n, "dtype": dtype, "seconds": times,
                                  "gflops": [2 * n**3 / t / 1e9 for t in times]}))
"""

LOAD_SCRIPT = r"""
import json, sys, time
start = time.perf_counter()
from mnist_hydra.data.mnist import DataConfig
from mnist_hydra.data.splits import load_splits
import_seconds = time.perf_counter() - start
root, reps = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(reps):
    start = time.perf_counter()
    splits = load_splits(DataConfig(root=root), seed=0)
    times.append(time.perf_counter() - start)
print("BENCH_JSON " + json.dumps({"seconds": times, "import_seconds": import_seconds,
                                  "train_images": len(splits.y_train)}))
"""


@dataclass
class TrainCase:
    """One training case's figures."""

    key: str
    title: str
    command: str
    epoch_seconds: list[list[float]] = field(default_factory=list)  # per repeat
    test_accuracy: list[float] = field(default_factory=list)
    peak_rss_bytes: list[int] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)
    other_cpu: list[float] = field(default_factory=list)  # share of the CPUs other processes used during each repeat
    train_images: int = 0
    val_images: int = 0
    error: str | None = None

    def median_epoch(self) -> float | None:
        """Median over repeats of each repeat's median of epochs 2..N (epoch 1 when N = 1)."""
        if not self.epoch_seconds:
            return None
        return statistics.median(statistics.median(s[1:] or s) for s in self.epoch_seconds)

    def first_epoch(self) -> float | None:
        return statistics.median(s[0] for s in self.epoch_seconds) if self.epoch_seconds else None

    def images_per_second(self) -> float | None:
        median = self.median_epoch()
        return self.train_images / median if median else None

    def flops_per_epoch(self) -> float:
        return epoch_flops(self.train_images, self.val_images)

    def overheads(self) -> list[float]:
        """Each run's whole-command wall time minus its epochs' own time: start-up, data, scoring, artifacts, exit."""
        return [wall - sum(epochs) for wall, epochs in zip(self.wall_seconds, self.epoch_seconds, strict=False)]

    def seconds_per_image(self) -> float | None:
        median = self.median_epoch()
        return median / self.train_images if median and self.train_images else None


def forward_flops_per_image() -> dict[str, int]:
    """Multiply-adds x 2 of each layer of the reference network, from its shapes."""
    conv_side = SIDE - KERNEL + 1
    pooled = conv_side // POOL
    flat = pooled * pooled * FILTERS
    return {
        "conv": 2 * KERNEL * KERNEL * 1 * FILTERS * conv_side * conv_side,
        "dense1": 2 * flat * DENSE,
        "dense2": 2 * DENSE * CLASSES,
    }


def epoch_flops(train_images: int, val_images: int) -> float:
    """Training ~ 3x forward (forward + two backward products) per training image, 1x per validation image."""
    forward = sum(forward_flops_per_image().values())
    return 3.0 * forward * train_images + 1.0 * forward * val_images


FLOPS_FORMULA = (
    "forward/image = conv 2*k*k*Cin*Cout*Hout*Wout (2*3*3*1*28*26*26) + dense 2*in*out (2*4732*128 + 2*128*10); "
    "pooling, bias, ReLU, softmax and the optimizer update ignored; "
    "FLOPs/epoch = 3 * forward * train_images + 1 * forward * val_images"
)


def train_case_mnist_hydra(case: TrainCase, args: argparse.Namespace, overrides: list[str]) -> None:
    """Cases (a) and (c), one repeat: the app in a subprocess, figures read from the run's metrics.json."""
    epochs = [f"trainer.epochs={args.epochs}"] if args.epochs != DEFAULT_EPOCHS else []
    case.command = shlex.join(["python", "-m", "mnist_hydra", "hydra.run.dir=<tmp>", *overrides, *epochs])
    metrics, child = run_mnist_hydra([*overrides, *epochs], args.data)
    record(case, metrics, child)


def train_case_plain(case: TrainCase, args: argparse.Namespace) -> None:
    """Case (b), one repeat: the plain Keras script in a subprocess, figures from its JSON line."""
    case.command = f"python <plain Keras script> {args.data} {args.epochs}"
    with tempfile.NamedTemporaryFile("w", prefix="bench_plain_", suffix=".py", delete=False) as f:
        f.write(PLAIN_SCRIPT)
    try:
        child = run_child([sys.executable, f.name, str(args.data), str(args.epochs)], child_env(args.data))
        record(case, child.result(), child)
    finally:
        os.unlink(f.name)


def train_case_torch(case: TrainCase, args: argparse.Namespace, name: str) -> None:
    """A PyTorch peer case, one repeat: benchmarks/bench_torch.py in a subprocess, figures from its JSON line."""
    argv = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_torch.py"),
        "--data",
        str(args.data),
        "--epochs",
        str(args.torch_epochs),
        "--case",
        name,
    ]
    case.command = shlex.join(
        ["python", "benchmarks/bench_torch.py", "--epochs", str(args.torch_epochs), "--case", name]
    )
    child = run_child(argv, child_env(args.data))
    record(case, child.result(), child)


def torch_version() -> str | None:
    """The installed PyTorch's version, without importing it here; None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The CPU's model and the ISA flags that decide the bf16 kernels (Linux /proc/cpuinfo), and the versions."""
    from importlib import metadata

    info: dict[str, Any] = {"cpus": os.cpu_count(), "model": "unknown", "flags": sorted(cpu_flags())}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and info["model"] == "unknown":
            info["model"] = value.strip()
        elif key in ("cpu family", "model", "stepping") and f"cpu {key}".replace("cpu cpu", "cpu") not in info:
            info[f"cpu {key}".replace("cpu cpu", "cpu")] = value.strip()  # "model" is the number here
    flags = set(info["flags"])
    info["isa"] = {name: flag in flags for name, flag in ISA_FLAGS}
    info["has_amx"] = "amx_bf16" in flags or "amx_tile" in flags
    for package in ("tensorflow", "keras", "torch"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    return info


ISA_FLAGS = (
    ("AMX-BF16", "amx_bf16"),
    ("AMX-TILE", "amx_tile"),
    ("AVX-512-BF16", "avx512_bf16"),
    ("AVX-512-VNNI", "avx512_vnni"),
    ("AVX-512F", "avx512f"),
    ("AVX2", "avx2"),
    ("FMA", "fma"),
)


def record(case: TrainCase, metrics: dict[str, Any], child: Child) -> None:
    case.epoch_seconds.append([float(s) for s in metrics["epoch_seconds"]])
    case.test_accuracy.append(float(metrics["test_accuracy"]))
    case.peak_rss_bytes.append(child.peak_rss_bytes)
    case.wall_seconds.append(child.wall_seconds)
    case.other_cpu.append(child.other_cpu or 0.0)
    case.train_images, case.val_images = int(metrics["train_images"]), int(metrics["val_images"])
    print(
        f"  {case.key}: epochs {', '.join(f'{s:.1f}' for s in case.epoch_seconds[-1])} s; "
        f"test accuracy {case.test_accuracy[-1]:.4f}; peak RSS {child.peak_rss_bytes / 1e9:.2f} GB; "
        f"wall {child.wall_seconds:.1f} s (overhead {case.overheads()[-1]:.1f} s); other processes used {(child.other_cpu or 0) * 100:.0f}% of the CPUs "
        f"meanwhile; I/O stalls {child.io_stall_seconds or 0:.1f} s",
        flush=True,
    )


def time_commands(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Wall time of the app's --help and --cfg job against a bare TensorFlow import."""
    env = child_env(args.data)
    commands = [
        ("python -m mnist_hydra --help", [sys.executable, "-m", "mnist_hydra", "--help"], args.cli_runs),
        ("python -m mnist_hydra --cfg job", [sys.executable, "-m", "mnist_hydra", "--cfg", "job"], args.cli_runs),
        ('python -c "import tensorflow"', [sys.executable, "-c", "import tensorflow"], args.tf_runs),
    ]
    rows = []
    for label, argv, runs in commands:
        times = []
        for _ in range(runs):
            child = run_child(argv, env, timeout=300)
            if child.returncode != 0:
                raise RuntimeError(f"{label}: exit code {child.returncode}: {child.stderr[-1000:]}")
            times.append(child.wall_seconds)
        rows.append({"command": label, "runs": runs, "seconds": times, "median_seconds": statistics.median(times)})
        print(f"  {label}: {', '.join(f'{t:.2f}' for t in times)} s", flush=True)
    return rows


def time_load(args: argparse.Namespace) -> dict[str, Any]:
    """load_splits(DataConfig(root=...), seed=0) in a fresh process, several times."""
    child = run_child([sys.executable, "-c", LOAD_SCRIPT, str(args.data), str(args.load_runs)], child_env(args.data))
    result = child.result()
    result["median_seconds"] = statistics.median(result["seconds"])
    print(
        f"  load_splits: {', '.join(f'{t:.2f}' for t in result['seconds'])} s "
        f"(first import of mnist_hydra.data.splits {result['import_seconds']:.2f} s)",
        flush=True,
    )
    return result


def measure_peaks(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Best GFLOP/s of an n x n tf.linalg.matmul in float32 and in bfloat16, over several timed runs after warm-up."""
    peaks = {}
    for dtype in ("float32", "bfloat16"):
        child = run_child(
            [sys.executable, "-c", MATMUL_SCRIPT, str(args.matmul_n), str(args.matmul_runs), dtype],
            child_env(args.data),
        )
        result = child.result()
        result["best_gflops"] = max(result["gflops"])
        peaks[dtype] = result
        print(
            f"  matmul {args.matmul_n}^2 {dtype}: {', '.join(f'{g:.0f}' for g in result['gflops'])} GFLOP/s", flush=True
        )
    return peaks


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def ratio(case: TrainCase | None, base: TrainCase | None) -> float | None:
    """Median seconds per epoch of `case` over that of `base`."""
    if not case or not base or case.error or base.error or case.median_epoch() is None or base.median_epoch() is None:
        return None
    return case.median_epoch() / base.median_epoch()


def image_ratio(case: TrainCase | None, base: TrainCase | None) -> float | None:
    """Seconds per training image (an epoch's time, validation included, over its training images), case / base."""
    epochs = ratio(case, base)
    return None if epochs is None else epochs * base.train_images / case.train_images


def usable(case: TrainCase | None) -> bool:
    return bool(case and not case.error and case.epoch_seconds)


def report(
    args,
    info: dict,
    cases: dict[str, TrainCase],
    cli: list | None,
    load: dict | None,
    peaks: dict | None,
    best: dict | None,
    torch_skipped: str | None,
) -> dict:
    """Print the machine, the tables and every target; return every figure for --json."""
    figures: dict[str, Any] = {"machine": info, "epochs": args.epochs, "repeats": args.repeats, "cases": {}}
    print(
        f"\n== Machine ==\nCPU: {info['model']} (family {info.get('cpu family', '?')}, model {info.get('cpu model', '?')}, "
        f"stepping {info.get('cpu stepping', '?')}), "
        f"{info['cpus']} logical CPUs"
    )
    print("ISA: " + ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in info["isa"].items()))
    print(f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, PyTorch {info['torch'] or 'not installed'}")
    epoch_gflop = epoch_flops(54_000, 6_000) / 1e9
    if peaks:
        f32, bf16 = peaks["float32"]["best_gflops"], peaks["bfloat16"]["best_gflops"]
        print(
            f"matmul peak (tf.linalg.matmul {peaks['float32']['n']}^2, best of {len(peaks['float32']['gflops'])}): "
            f"float32 {f32:.0f} GFLOP/s, bfloat16 {bf16:.0f} GFLOP/s ({bf16 / f32:.1f}x)"
        )
        print(
            f"one epoch of (a)/(c) = {epoch_gflop:.0f} GFLOP: floor {epoch_gflop / f32:.2f} s in float32, "
            f"{epoch_gflop / bf16:.2f} s in bf16"
        )
        figures["matmul"] = peaks
        figures["floor_seconds"] = {"float32": epoch_gflop / f32, "bfloat16": epoch_gflop / bf16}
    bf16_floor = figures.get("floor_seconds", {}).get("bfloat16")

    base = cases.get("b")
    print(
        f"\n== Training, real MNIST: (a) (b) (c) {args.epochs} epochs"
        + (f", torch {args.torch_epochs}" if "torch" in args.only else "")
        + "; "
        f"{args.repeats} repeat(s), (a) {max(args.repeats, args.overhead_runs)} =="
    )
    print(
        "s/epoch = median over epochs 2..N of each run, median over runs (epoch 1 also traces the graphs); an "
        "epoch includes its validation pass. images/s = training images / s/epoch. wall = the whole command; "
        "overhead = wall - the epochs' own time (start-up, data, checkpoints, scoring, artifacts, exit), "
        "median and worst run. /(b) = seconds per training image over (b)'s. x floor = s/epoch over the bf16 "
        "floor. others = share of the CPUs other processes used meanwhile (noise)."
    )
    header = (
        f"{'case':<14}{'train':>7}{'val':>7}{'s/epoch':>9}{'epoch 1':>9}{'images/s':>10}{'test acc':>10}"
        f"{'peak RSS':>10}{'wall':>8}{'overhead':>15}{'/(b)':>7}{'x floor':>9}{'others':>8}"
    )
    print(header)
    print("-" * len(header))
    for key, case in cases.items():
        if not usable(case):
            print(f"{key:<14}failed: {(case.error or 'no run').splitlines()[0]}")
            figures["cases"][key] = {"title": case.title, "command": case.command, "error": case.error}
            continue
        median = case.median_epoch()
        acc = statistics.median(case.test_accuracy)
        rss = max(case.peak_rss_bytes)
        overheads = case.overheads()
        floor_x = (
            median / (bf16_floor * epoch_flops(case.train_images, case.val_images) / 1e9 / epoch_gflop)
            if bf16_floor
            else None
        )
        print(
            f"{key:<14}{case.train_images:>7,}{case.val_images:>7,}{median:9.2f}{fmt(case.first_epoch(), '9.2f')}"
            f"{fmt(case.images_per_second(), '10,.0f')}{acc:>10.4f}{rss / 1e9:>7.2f} GB"
            f"{statistics.median(case.wall_seconds):>7.1f}s{statistics.median(overheads):>7.1f} /{max(overheads):>5.1f}s"
            f"{fmt(image_ratio(case, base), '7.2f')}{fmt(floor_x, '9.1f')}{max(case.other_cpu) * 100:>7.0f}%"
        )
        figures["cases"][key] = {
            "title": case.title,
            "command": case.command,
            "epoch_seconds": case.epoch_seconds,
            "median_epoch_seconds": median,
            "first_epoch_seconds": case.first_epoch(),
            "images_per_second": case.images_per_second(),
            "test_accuracy": case.test_accuracy,
            "peak_rss_bytes": case.peak_rss_bytes,
            "wall_seconds": case.wall_seconds,
            "overhead_seconds": overheads,
            "train_images": case.train_images,
            "val_images": case.val_images,
            "flops_per_epoch": case.flops_per_epoch(),
            "times_bf16_floor": floor_x,
            "per_image_ratio_to_b": image_ratio(case, base),
            "other_cpu": case.other_cpu,
        }
    if torch_skipped:
        print(f"torch         skipped: {torch_skipped}")
        figures["torch_skipped"] = torch_skipped
    for key, case in cases.items():
        print(f"  {key}: {case.title}: {case.command}")
    if "a" in cases and usable(cases["a"]):
        print("  (a) overhead per run: " + ", ".join(f"{o:.1f}" for o in cases["a"].overheads()) + " s")
    print(f"FLOPs: {FLOPS_FORMULA}; forward/image = {sum(forward_flops_per_image().values()):,}")
    figures["flops_formula"] = FLOPS_FORMULA

    if cli:
        print("\n== Start-up (wall time of a fresh process) ==")
        for row in cli:
            print(f"{row['command']:<36}{row['median_seconds']:>7.2f} s  (median of {row['runs']})")
        figures["cli"] = cli
    if load:
        print(
            f"\n== Data ==\nload_splits(DataConfig(root=...), seed=0): {load['median_seconds']:.2f} s "
            f"(median of {len(load['seconds'])}; gunzip + parse + SHA-256 + split)"
        )
        figures["load"] = load
    if best:
        from bench_best import report as best_report

        best_report(best)
        figures["best"] = best

    targets = judge(info, cases, cli, load, best)
    print("\n== Targets ==")
    for label, value, ok in targets:
        print(f"{label:<66}{value:>36}  {verdict(ok)}")
    figures["targets"] = [{"target": t, "value": v, "met": ok} for t, v, ok in targets]
    print(
        f"load average now: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
        "(timings are noisy when other work runs)"
    )
    return figures


def judge(
    info: dict, cases: dict[str, TrainCase], cli: list | None, load: dict | None, best: dict | None
) -> list[tuple[str, str, bool | None]]:
    """(target, measured value, met) for every target; met is None where the figure was not measured."""
    a, b, c = (cases.get(k) for k in ("a", "b", "c"))
    a, b, c = (x if usable(x) else None for x in (a, b, c))
    targets = []
    limit = TARGET_C_EPOCH_AMX if info["has_amx"] else TARGET_C_EPOCH_AVX512
    machine_kind = "AMX" if info["has_amx"] else "no AMX"
    if c:
        c_epoch, c_acc = c.median_epoch(), min(c.test_accuracy)
        targets.append(
            (
                f"(c) fastest s/epoch <= {limit} ({machine_kind}), test acc >= {TARGET_C_ACCURACY}",
                f"{c_epoch:.2f} s, acc {c_acc:.4f} (worst run)",
                c_epoch <= limit and c_acc >= TARGET_C_ACCURACY,
            )
        )
        targets.append(
            (
                f"(c) fastest whole command <= {TARGET_C_WALL:.0f} s (every run)",
                f"{max(c.wall_seconds):.1f} s (worst of {len(c.wall_seconds)})",
                max(c.wall_seconds) <= TARGET_C_WALL,
            )
        )
    else:
        targets += [
            (f"(c) fastest s/epoch <= {limit} ({machine_kind}), test acc >= {TARGET_C_ACCURACY}", "-", None),
            (f"(c) fastest whole command <= {TARGET_C_WALL:.0f} s (every run)", "-", None),
        ]
    r_ab = image_ratio(a, b)
    targets.append(
        (
            f"(a)/(b) s per training image <= {TARGET_A_OVER_B}",
            "-" if r_ab is None else f"{r_ab:.2f} (epoch {ratio(a, b):.2f})",
            None if r_ab is None else r_ab <= TARGET_A_OVER_B,
        )
    )
    if a:
        over = a.overheads()
        within = sum(o <= TARGET_A_OVERHEAD for o in over)
        targets.append(
            (
                f"(a) whole-command overhead <= {TARGET_A_OVERHEAD:.0f} s in every run",
                f"{within} of {len(over)} (worst {max(over):.1f} s)",
                within == len(over),
            )
        )
    else:
        targets.append((f"(a) whole-command overhead <= {TARGET_A_OVERHEAD:.0f} s in every run", "-", None))
    peers = {k: v for k, v in cases.items() if k.startswith("torch") and usable(v)}
    if c and peers:
        fastest_peer = min(peers, key=lambda k: peers[k].seconds_per_image())
        times = peers[fastest_peer].seconds_per_image() / c.seconds_per_image()
        targets.append(
            (
                f"(c) per training image >= {TARGET_OVER_TORCH:.0f}x faster than the best PyTorch case",
                f"{times:.1f}x (best peer: {fastest_peer})",
                times >= TARGET_OVER_TORCH,
            )
        )
    else:
        targets.append(
            (f"(c) per training image >= {TARGET_OVER_TORCH:.0f}x faster than the best PyTorch case", "-", None)
        )
    if best:
        mean, slowest = best["mean_test_accuracy"], best["slowest_wall_seconds"]
        targets.append(
            (
                f"+experiment=best mean test acc over seeds >= {TARGET_BEST_ACCURACY}",
                "-" if mean is None else f"{mean:.4f} ({len(best['runs'])} seeds)",
                best["accuracy_met"],
            )
        )
        targets.append(
            (
                f"+experiment=best each run <= {TARGET_BEST_WALL:.0f} s wall",
                "-" if slowest is None else f"slowest {slowest:.0f} s",
                best["wall_met"],
            )
        )
    else:
        targets += [
            (
                f"+experiment=best mean test acc over seeds >= {TARGET_BEST_ACCURACY}",
                "not run (--only ...,best or bench_best.py)",
                None,
            ),
            (f"+experiment=best each run <= {TARGET_BEST_WALL:.0f} s wall", "not run", None),
        ]
    cli_by = {row["command"]: row["median_seconds"] for row in cli or []}
    for label in ("python -m mnist_hydra --help", "python -m mnist_hydra --cfg job"):
        seconds = cli_by.get(label)
        targets.append(
            (
                f"{label[10:]} < {TARGET_CLI_SECONDS} s",
                fmt(seconds, ".2f") + " s" * (seconds is not None),
                None if seconds is None else seconds < TARGET_CLI_SECONDS,
            )
        )
    load_s = load["median_seconds"] if load else None
    targets.append(
        (
            f"load < {TARGET_LOAD_SECONDS} s",
            fmt(load_s, ".2f") + " s" * (load_s is not None),
            None if load_s is None else load_s < TARGET_LOAD_SECONDS,
        )
    )
    rss_a = max(a.peak_rss_bytes) if a else None
    targets.append(
        (
            f"peak memory of (a) < {TARGET_A_PEAK_BYTES / 1e9} GB",
            "-" if rss_a is None else f"{rss_a / 1e9:.2f} GB",
            None if rss_a is None else rss_a < TARGET_A_PEAK_BYTES,
        )
    )
    return targets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_data = os.environ.get("MNIST_HYDRA_DATA") or str(REPO.parent / "shared" / "data" / "mnist")
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(default_data),
        help="folder with the four MNIST .gz files (default: $MNIST_HYDRA_DATA, else ../shared/data/mnist "
        "beside the repo; now %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="epochs per case (a), (b), (c) (default %(default)s)")
    parser.add_argument(
        "--torch-epochs",
        type=int,
        default=3,
        help="epochs per PyTorch case: s/epoch needs 2 or more (default %(default)s)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="runs of each training case, taken in turn: a b c torch a b c torch (default %(default)s)",
    )
    parser.add_argument(
        "--overhead-runs",
        type=int,
        default=2,
        metavar="N",
        help="runs of (a) in all, for the overhead target (10 make a steady median); those beyond "
        "--repeats come after the rotation (default %(default)s)",
    )
    parser.add_argument(
        "--fast-overrides",
        default=None,
        help=f'overrides for case (c), e.g. "trainer.batch_size=128 k=v" (default: {" ".join(FAST_OVERRIDES)})',
    )
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_ONLY),
        help=f"comma-separated subset of {','.join(CASES)} (default: all but best)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--cli-runs", type=int, default=5, help="runs of --help and --cfg job (default %(default)s)")
    parser.add_argument("--tf-runs", type=int, default=3, help="runs of import tensorflow (default %(default)s)")
    parser.add_argument("--load-runs", type=int, default=5, help="runs of load_splits (default %(default)s)")
    parser.add_argument("--matmul-n", type=int, default=4096, help="matrix side for the peaks (default %(default)s)")
    parser.add_argument("--matmul-runs", type=int, default=5, help="timed matmuls per dtype (default %(default)s)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60,
        metavar="SECONDS",
        help="before each training case, wait up to this long for other processes to use under "
        "10%% of the CPUs (default %(default)s; 0 = do not wait)",
    )
    args = parser.parse_args(argv)
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(args.only) - set(CASES))
    if unknown:
        parser.error(f"--only {','.join(unknown)}: unknown; choose from {','.join(CASES)}")
    if args.epochs < 1 or args.repeats < 1 or args.overhead_runs < 1 or args.torch_epochs < 1:
        parser.error("--epochs, --torch-epochs, --repeats and --overhead-runs must be >= 1")
    args.data = args.data.expanduser().absolute()
    args.fast_overrides = shlex.split(args.fast_overrides) if args.fast_overrides is not None else list(FAST_OVERRIDES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"bench_train: error: --data {args.data}: no such folder", file=sys.stderr)
        return 2
    info = machine()
    print(
        f"data {args.data}; {args.epochs} epoch(s); python {sys.executable}; CPU {info['model']}; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    cli = load = peaks = best = None
    if "cli" in args.only:
        print("start-up times:", flush=True)
        cli = time_commands(args)
    if "load" in args.only:
        print("data load:", flush=True)
        load = time_load(args)
    if "peak" in args.only:
        print("matmul peaks:", flush=True)
        peaks = measure_peaks(args)

    plan = [
        ("a", "mnist_hydra, default config", lambda case: train_case_mnist_hydra(case, args, [])),
        ("b", "plain Keras script, numpy arrays", lambda case: train_case_plain(case, args)),
        ("c", "mnist_hydra, fastest setting", lambda case: train_case_mnist_hydra(case, args, args.fast_overrides)),
    ]
    if "c" in args.only and not args.fast_overrides:
        print("(c) skipped: FAST_OVERRIDES is empty and --fast-overrides was not given", flush=True)
        args.only.remove("c")
    plan = [row for row in plan if row[0] in args.only]
    torch_skipped = None
    if "torch" in args.only:
        if torch_version() is None:
            torch_skipped = (
                "PyTorch is not installed; for the peer: pip install torch==2.13.0 "
                "(a CPU build: --index-url https://download.pytorch.org/whl/cpu)"
            )
            print(f"torch peer skipped: {torch_skipped}", flush=True)
        else:
            plan += [
                (
                    f"torch {name}",
                    f"PyTorch {torch_version()} peer, eager, {name}",
                    lambda case, name=name: train_case_torch(case, args, name),
                )
                for name in TORCH_CASES
            ]
    cases: dict[str, TrainCase] = {key: TrainCase(key, title, "") for key, title, _ in plan}
    # Repeats go round the cases (a b c torch a b c torch), so a drift in the machine's load touches each alike;
    # then (a) alone until it has run --overhead-runs times.
    rounds = [plan] * args.repeats + [[row for row in plan if row[0] == "a"]] * max(
        0, args.overhead_runs - args.repeats
    )
    for _number, rows in enumerate(rounds, 1):
        for key, title, run in rows:
            case = cases[key]
            if case.error:
                continue
            share = wait_for_quiet(args.wait_quiet)
            print(
                f"({key}) {title}, run {len(case.wall_seconds) + 1}"
                + ("" if share is None else f" (other processes at {share * 100:.0f}% of the CPUs)")
                + ":",
                flush=True,
            )
            try:
                run(case)
            except Exception as e:  # one failed case should not lose the others' figures
                case.error = str(e)
                print(f"  ({key}) failed: {e}", flush=True)
    if "best" in args.only:
        from bench_best import run_best

        best = run_best(args.data, wait_quiet=args.wait_quiet)

    figures = report(args, info, cases, cli, load, peaks, best, torch_skipped)
    figures["fast_overrides"] = args.fast_overrides
    figures["data"] = str(args.data)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0 if all(not c.error for c in cases.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
