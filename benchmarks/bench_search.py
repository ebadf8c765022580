"""The same 8-trial Optuna search three ways, with and without pruning: one process, joblib n_jobs=2, Ray.

Usage (from the repo root, MNIST_HYDRA_DATA set):
  python benchmarks/bench_search.py [--trials 8] [--epochs 4] [--train-limit 3000] [--ways basic,joblib,ray]
      [--pruning off,on] [--json PATH]

Each search is `python -m mnist_hydra hparams_search=optuna` in a fresh folder, seed 0, 2 trials asked a batch,
trainer.threads=1 (so the three ways run the very same trials: the batch, not the launcher, decides what is
asked), its study in an SQLite file there (a parallel launcher reaches the pruner through it). Pruning on is
`hydra.sweeper.pruner=median` with 2 startup trials. Printed per search: wall time, CPU seconds of the whole
process tree (sampled from /proc every 0.2 s), CPU use (CPU seconds / wall seconds), trials complete and pruned,
and the best validation accuracy; then the CPU model. The Ray search starts a local Ray of its own.
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
from typing import Any

import yaml

WAYS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "ray": ["hydra/launcher=ray"],
}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """The CPU's model name and the cores this process may use."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else 'unknown CPU'}, {len(os.sched_getaffinity(0))} cores"


def _tree_cpu(root: int, seen: dict[int, float]) -> None:
    """Add the CPU seconds so far of `root` and every process below it to `seen` (pid -> seconds)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    for pid in tree:
        if pid in times:
            seen[pid] = max(seen.get(pid, 0.0), times[pid])


def run_search(way: str, pruning: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One search in a fresh folder; its figures."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-search-{way}-"))
    overrides = ["hparams_search=optuna", f"hydra.sweeper.n_trials={args.trials}", "hydra.sweeper.n_jobs=2",
                 "hydra.sweeper.storage=sqlite:///study.db", "seed=0", "trainer.threads=1",
                 f"trainer.epochs={args.epochs}", f"data.train_limit={args.train_limit}", "data.test_limit=2000",
                 "trainer.verbose=0", f"hydra.sweep.dir={folder / 'sweep'}", *WAYS[way]]
    if pruning:
        overrides += ["hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup_trials=2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    seen: dict[int, float] = {}
    start = time.perf_counter()
    with open(folder / "output.txt", "w") as out:
        child = subprocess.Popen([sys.executable, "-m", "mnist_hydra", *overrides], cwd=folder, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
        while child.poll() is None:
            _tree_cpu(child.pid, seen)
            time.sleep(0.2)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        tail = (folder / "output.txt").read_text()[-2000:]
        raise SystemExit(f"bench_search: the {way} search failed (exit {child.returncode}):\n{tail}")
    results = yaml.safe_load((folder / "sweep" / "optimization_results.yaml").read_text())
    cpu = sum(seen.values())
    return {"way": way, "pruning": "median" if pruning else "off", "wall_s": wall, "cpu_s": cpu,
            "cpu_use": cpu / wall, "complete": results["trials"]["complete"], "pruned": results["trials"]["pruned"],
            "best_val_accuracy": results["best_value"], "folder": str(folder)}


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, as the README shows it."""
    lines = ["| launcher | pruning | wall s | CPU s | CPU use | complete | pruned | best val_accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['way']} | {r['pruning']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['cpu_use']:.2f} | "
                     f"{r['complete']} | {r['pruned']} | {r['best_val_accuracy']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-limit", type=int, default=3000)
    parser.add_argument("--ways", default="basic,joblib,ray")
    parser.add_argument("--pruning", default="off,on")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not os.environ.get("MNIST_HYDRA_DATA"):
        raise SystemExit("bench_search: set MNIST_HYDRA_DATA to the MNIST folder")
    rows = []
    for pruning in args.pruning.split(","):
        for way in args.ways.split(","):
            row = run_search(way, pruning == "on", args)
            print(f"{way:7s} pruning {row['pruning']:6s} {row['wall_s']:6.1f} s wall, {row['cpu_s']:6.1f} s CPU, "
                  f"{row['complete']} complete, {row['pruned']} pruned, best {row['best_val_accuracy']:.4f}",
                  flush=True)
            rows.append(row)
    print()
    print(table(rows))
    print(f"\n{args.trials} trials of {args.epochs} epochs on {args.train_limit} images; CPU: {cpu_model()}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
