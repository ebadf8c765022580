"""The catalogue of bad inputs: every app, every class of mistake, one table.

Each row runs one command, in a sandbox folder of its own that holds finished, stopped, failed and killed
runs, a sweep, files and folders to misuse, and asserts:

- the exit code (2 for config and usage, 1 for data, model, image and output trouble);
- exactly one line on stderr, `PROG: error: ...`, holding the fragments listed (no TensorFlow line,
  no traceback: TF_CPP_MIN_LOG_LEVEL is left unset, as a user leaves it), of at most MAX_LINE characters
  besides the paths and words the user gave (line_length);
- nothing created, changed or removed in the sandbox (every folder, and every file with its size and
  mtime, before and after), except the files a row names because the docs say the app writes them.

Most rows run in-process: the app's main() with the row's command line, working directory and environment
(conftest's call_app), inside as_a_fresh_process, which gives the call what a new process has and shows what
one would print (a library's warnings and log lines, anything written to file descriptor 2), puts the
process's state back afterwards, and refuses TensorFlow and Keras. They share one sandbox per interpreter,
each row judged on its own snapshots before and after, and are split between this process and one spawned
interpreter (IN_PROCESS_WORKERS), since each pays for Hydra composing the config. The rest run as a user runs
them, `python -m ...` in a process of their own, one at a time meanwhile: every slow=True row (it loads
TensorFlow, whose C++ start-up lines only a fresh process can leak) and PROCESS_SAMPLE, one row per app and
exit code, chosen for what only a process shows: the real entry point's refusal before Hydra runs, a
process's exit hooks after a run directory was claimed (each entry says why).

DATA_CASES are bad data that need no process to show it: the loaders and the split step every data option
passes through, called in-process, with the error worded by the apps' boundary (`describe`) as it is printed,
under the same rules (one line, MAX_LINE, exit code 1, nothing written).

Serve and export rows go in APPS and CATALOGUE the same way. The docs' "What can go wrong" table
(docs/what-can-go-wrong.md) lists every `kind` below (test_readme_lists_every_kind).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import io
import json
import logging
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.cifar_files import write_bad_cifar
from tests.conftest import call_app, snapshot

ROOT = Path(__file__).resolve().parents[1]

# app -> (module run with python -m, the program name its errors start with)
APPS = {
    "train": ("mnist_hydra", "mnist_hydra"),
    "evaluate": ("mnist_hydra.evaluate", "mnist_hydra.evaluate"),
    "predict": ("mnist_hydra.predict", "mnist_hydra.predict"),
    "summarize": ("mnist_hydra.summarize", "mnist_hydra.summarize"),
    "report": ("mnist_hydra.report", "mnist_hydra.report"),
}
TIMEOUT = 90  # seconds per row; a row that loads TensorFlow takes ~10-30 s on a busy 2-core machine
IN_PROCESS_WORKERS = 2  # interpreters that share the in-process rows: this one and one spawned
MAX_LINE = 300  # characters of an error line, not counting the user's own long words (line_length)


@dataclass(frozen=True)
class Case:
    """One bad input: the command, and what it must do."""

    app: str
    kind: str  # the class of input, as the docs' "What can go wrong" table names it
    args: str  # shell words, run in the sandbox (relative paths name its fixtures)
    code: int  # the exit code
    says: tuple[str, ...]  # fragments of the one error line
    writes: tuple[str, ...] = ()  # sandbox paths (globs) the docs let this command write
    data: bool = False  # needs the real MNIST files (MNIST_HYDRA_DATA)
    env: tuple[tuple[str, str], ...] = ()  # variables set for this row ({root}: its sandbox)
    slow: bool = False  # imports TensorFlow

    @property
    def id(self) -> str:
        return f"{self.app}: {self.args or '(no arguments)'}"


def case(app: str, kind: str, args: str, code: int, *says: str, **options) -> Case:
    return Case(app, kind, args, code, tuple(says), **options)


LONG_NAME = "x" * 300  # longer than a file name may be (255)

CATALOGUE = [
    # --- train: config values (validated before anything is read or written) ---
    case("train", "unknown key", "trainer.epochz=3", 2, "trainer.epochz is not a config key", "epochs"),
    case("train", "unknown key", "foo=1", 2, "foo is not a config key", "the top level accepts"),
    case("train", "unknown key", "+foo=1", 2, "foo is not a config key"),
    case("train", "unknown key", "+model.depth=3", 2, "model.depth is not a config key", "filters"),
    case(
        "train",
        "unknown key",
        "+experiment=best model=mlp",
        2,
        "model.filters is not a config key",
        "+experiment=best sets model.filters for its model=cnn_deep",
    ),
    case("train", "unknown key", "optimizer.momentum=0.5", 2, "optimizer.momentum is not a config key"),
    case("train", "wrong type", "trainer.epochs=ten", 2, "trainer.epochs=ten has the wrong type", "an integer"),
    case("train", "wrong type", "trainer.epochs=null", 2, "trainer.epochs", "an integer"),
    case("train", "wrong type", "trainer.deterministic=maybe", 2, "trainer.deterministic=maybe", "true or false"),
    case("train", "wrong type", "data.train_limit=[1,2]", 2, "data.train_limit"),
    case("train", "wrong type", "seed=abc", 2, "seed=abc", "an integer"),
    case("train", "out of range", "trainer.epochs=0", 2, "trainer.epochs=0 is not allowed", "an integer >= 1"),
    case("train", "out of range", "trainer.batch_size=-1", 2, "trainer.batch_size=-1 is not allowed"),
    case("train", "out of range", "optimizer.lr=-1", 2, "optimizer.lr=-1.0 is not allowed", "> 0"),
    case("train", "out of range", "optimizer.lr=inf", 2, "optimizer.lr=inf is not allowed", "finite"),
    case("train", "out of range", "optimizer.lr=nan", 2, "optimizer.lr=nan is not allowed"),
    case("train", "out of range", "data.val_split=1.5", 2, "data.val_split=1.5 is not allowed", "[0, 1)"),
    case("train", "out of range", "data.train_limit=-5", 2, "data.train_limit=-5 is not allowed"),
    case("train", "out of range", "seed=-1", 2, "seed=-1 is not allowed"),
    case("train", "out of range", "seed=4294967296", 2, "seed=4294967296 is not allowed", "4294967295"),
    case("train", "out of range", "trainer.threads=100000000000", 2, "trainer.threads=100000000000 is not allowed"),
    # A million threads' stacks ended in the kernel's SIGKILL (exit 137, no word) before this was refused.
    case(
        "train", "out of range", "trainer.threads=999999", 2, "trainer.threads=999999 is not allowed", "from 1 to 4096"
    ),
    case(
        "train",
        "out of range",
        "model=mlp data.train_limit=300",
        2,
        "TF_NUM_INTRAOP_THREADS=-1 in the environment would abort TensorFlow",
        ">= 1",
        data=True,
        env=(("TF_NUM_INTRAOP_THREADS", "-1"),),
    ),
    case("train", "out of range", "model.filters=99999999999", 2, "model.filters=99999999999 is not allowed"),
    case("train", "out of range", "trainer.verbose=3", 2, "trainer.verbose=3 is not allowed"),
    case("train", "out of range", "trainer.precision=float16", 2, "trainer.precision=float16", "mixed_bfloat16"),
    case("train", "out of range", "model.dropout=1.5", 2, "model.dropout=1.5 is not allowed"),
    case("train", "out of range", "augment.rotation=400", 2, "augment.rotation=400", "degrees in [0, 180]"),
    case("train", "out of range", "augment.zoom=-0.5", 2, "augment.zoom=-0.5 is not allowed", "[0, 0.5]"),
    case("train", "out of range", "augment.flip=diagonal", 2, "augment.flip=diagonal", "horizontal"),
    case("train", "out of range", "data.folds=5 data.fold=7", 2, "data.fold=7 is not allowed", "0 to 4"),
    # --- train: config groups and options ---
    case("train", "unknown option", "model=resnet9000", 2, "model=resnet9000 is not a model option", "cnn2, cnn_deep"),
    case("train", "unknown option", "optimizer=adagrad", 2, "optimizer=adagrad is not an optimizer option", "sgd"),
    case("train", "unknown option", "data=cifar10", 2, "data=cifar10 is not a data option", "fashion_mnist"),
    case("train", "unknown option", "trainer=slowest", 2, "trainer=slowest is not a trainer option", "fastest"),
    case(
        "train",
        "unknown option",
        "+experiment=nonexistent",
        2,
        "experiment=nonexistent is not an experiment option",
        "best",
    ),
    case(
        "train", "unknown option", "experiment=speedrun", 2, "experiment needs a plus", "+experiment=NAME", "speedrun"
    ),
    case("train", "unknown option", "model.name=mlp", 2, "model.name=mlp does not match", "model=mlp"),
    case("train", "unknown option", "model=5", 2, "cannot apply the override model=5", "--help"),
    case("train", "unknown option", "data=[1]", 2, "config groups' options", "model=cnn"),
    case("train", "unknown key", "plugins.x=1", 2, "cannot apply the override plugins.x=1", "--cfg job"),
    case("train", "unknown option", "plugins=[no_such_module_here]", 2, "plugins=[no_such_module_here]", "no module"),
    # --- train: the command line itself ---
    case("train", "override syntax", "model.filters=[1", 2, "cannot parse the override model.filters=[1", "quoted"),
    case("train", "override syntax", "data.root=/my data/x", 2, "cannot parse the override data/x", "quoted"),
    case("train", "override syntax", '"data.root=\'/unclosed"', 2, "cannot parse the override", "quoted"),
    case("train", "override syntax", "=3", 2, "cannot parse the override =3"),
    case("train", "override syntax", "data.root=/data/données", 2, "override data.root=/data/données", "non-ASCII"),
    case(
        "train",
        "unknown option",
        "+experiment=speedrun +experiment=best",
        2,
        "experiment is given more than once",
        "+experiment=[a,b]",
    ),
    case("train", "unknown flag", "--bogus", 2, "unrecognized arguments: --bogus", "--help"),
    case(
        "train",
        "unknown flag",
        "model=mlp -m seed=1,2",
        2,
        "unrecognized arguments: seed=1,2 (after -m:",
        "flags first",
    ),
    case("train", "unknown flag", "--cfg bogus", 2, "invalid choice: 'bogus'", "job"),
    # --- train: output paths (README: "one line naming the path, whatever the errno") ---
    case("train", "output path", "hydra.run.dir=/proc/forbidden", 1, "cannot write /proc/forbidden"),
    case("train", "output path", "hydra.run.dir=/etc/passwd", 1, "cannot write /etc/passwd", "not a directory"),
    case("train", "output path", "hydra.run.dir=notes.txt", 1, "cannot write notes.txt", "not a directory"),
    case("train", "output path", "hydra.run.dir=notes.txt/run", 1, "cannot write notes.txt/run"),
    case("train", "output path", f"hydra.run.dir=out/{LONG_NAME}", 1, f"cannot write out/{LONG_NAME}", "too long"),
    case("train", "output path", "hydra.run.dir=", 2, "hydra.run.dir", "empty"),
    case("train", "output path", "-m hydra.sweep.dir=/proc/forbidden seed=1,2", 1, "cannot write /proc/forbidden"),
    case("train", "output path", "-m hydra.sweep.dir=notes.txt seed=1,2", 1, "cannot write notes.txt"),
    case("train", "output path", "hydra.job.name=a/b", 2, "hydra.job.name=a/b", "without '/'"),
    case("train", "output path", "hydra.job.name=..", 2, "hydra.job.name=..", "plain name"),
    # --- train: hparams_search=optuna settings, each refused before any trial starts ---
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra.sweeper.sampler.name=bayes",
        2,
        "hydra.sweeper.sampler.name=bayes is not a sampler",
        "tpe, random, cmaes, grid",
    ),
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra/sweeper/sampler=bayes",
        2,
        "hydra/sweeper/sampler=bayes is not a hydra/sweeper/sampler option",
        "cmaes, grid, random, tpe",
    ),
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra.sweeper.pruner=mean",
        2,
        "hydra.sweeper.pruner=mean is not a pruner",
        "median, hyperband, or null",
    ),
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra.sweeper.n_trials=0",
        2,
        "hydra.sweeper.n_trials=0 is not allowed",
        ">= 1",
    ),
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra.sweeper.direction=up",
        2,
        "hydra.sweeper.direction=up",
        "maximize or minimize",
    ),
    case(
        "train",
        "search setting",
        "hparams_search=optuna 'optimizer.lr=interval(0.1,0.01)'",
        2,
        "optimizer.lr=interval(0.1,0.01): not a search space Optuna can sample",
        "low <= high",
    ),
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra.sweeper.params=null 'optimizer.lr=tag(log,interval(0,1))'",
        2,
        "optimizer.lr=tag(log,interval(0,1)): not a search space Optuna can sample",
        "low > 0",
    ),
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra/sweeper/sampler=grid",
        2,
        "sampler.name=grid needs a finite set of values",
        "optimizer.lr is continuous",
    ),
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra.sweeper.pruner=median hydra/launcher=joblib",
        2,
        "pruner=median with hydra/launcher=joblib needs a study storage",
        "hydra.sweeper.storage=sqlite:///",
    ),
    case(
        "train",
        "search storage",
        "hparams_search=optuna hydra.sweeper.storage=notaurl",
        2,
        "hydra.sweeper.storage=notaurl is not a storage",
        "journal:PATH",
    ),
    case(
        "train",
        "search storage",
        "hparams_search=optuna hydra.sweeper.storage=sqlite:///nowhere/study.db",
        2,
        "nowhere/study.db: cannot open the database: unable to open database file",
    ),
    case(
        "train",
        "search storage",
        "hparams_search=optuna hydra.sweeper.storage=sqlite:///notes.txt",
        2,
        "notes.txt: cannot open the database: file is not a database",
    ),
    case(
        "train",
        "search storage",
        "hparams_search=optuna hydra.sweeper.storage=journal:nowhere/study.journal",
        2,
        "the folder",
        "nowhere does not exist",
    ),
    case(
        "train",
        "search storage",
        "hparams_search=optuna hydra.sweeper.storage=postgresql://me:secret@127.0.0.1:1/db",
        2,
        "storage=postgresql://me:***@127.0.0.1:1/db: cannot open the database",
    ),
    # --- train: hydra/launcher=ray settings, refused before Ray starts or is reached ---
    case(
        "train",
        "launcher setting",
        "-m hydra/launcher=ray seed=1,2",
        2,
        "hydra/launcher=ray reserves trainer.threads CPUs for each job",
        "set trainer.threads=N",
    ),
    case(
        "train",
        "launcher setting",
        "-m hydra/launcher=ray hydra.launcher.ray.remote.num_cpus=-1 seed=1,2",
        2,
        "hydra.launcher.ray.remote.num_cpus=-1 is not allowed",
        "a number > 0",
    ),
    case(
        "train",
        "launcher setting",
        "-m hydra/launcher=ray trainer.threads=1 hydra.launcher.ray.init.address=127.0.0.1:9 seed=1,2",
        2,
        "address=127.0.0.1:9: no Ray cluster answers there",
        "ray start --head",
    ),
    # --- train: a directory that holds a run is never written by a new run ---
    case(
        "train",
        "existing run",
        "hydra.run.dir=run",
        2,
        "hydra.run.dir=run already holds a run (completed)",
        "resume=run",
    ),
    case("train", "existing run", "hydra.run.dir=stopped", 2, "already holds a run (interrupted)", "resume=stopped"),
    case("train", "existing run", "hydra.run.dir=failed", 2, "already holds a run (failed)", "resume=failed"),
    case("train", "existing run", "hydra.run.dir=killed", 2, "already holds a run", "resume=killed"),
    case("train", "existing run", "-m hydra.sweep.dir=sweep seed=1,2", 2, "already holds a sweep", "resume=sweep"),
    # --- train: resume mistakes ---
    case("train", "resume", "resume=nowhere", 2, "resume=nowhere is not a run directory"),
    case("train", "resume", "resume=notes.txt", 2, "resume=notes.txt is not a run directory"),
    case("train", "resume", "resume=empty", 2, "resume=empty is not a run directory"),
    case("train", "resume", "resume=stopped trainer.epochs=5", 2, "drop trainer.epochs=5"),
    case("train", "resume", "resume=", 2, "resume"),
    # --- train: data paths ---
    case("train", "data path", "data.root=nowhere", 1, "nowhere", "no such folder"),
    case("train", "data path", "data.root=notes.txt", 1, "notes.txt is a file, not a folder"),
    case("train", "data path", "data.root=/etc/passwd", 1, "/etc/passwd is a file, not a folder"),
    case("train", "data path", "data.root=empty", 1, "empty", "train-images-idx3-ubyte"),
    case("train", "data path", "data.root=/proc/self", 1, "/proc/self", "train-images-idx3-ubyte"),
    case("train", "data path", "'data.root=\"my data\"'", 1, "my data", "train-images-idx3-ubyte"),
    # A run that fails after its directory was claimed leaves nothing, in a new folder or in one that existed.
    case("train", "data path", "'hydra.run.dir=my data/run' data.root=nowhere", 1, "nowhere", "no such folder"),
    case("train", "data path", "hydra.run.dir=empty data.root=nowhere", 1, "nowhere", "no such folder"),
    case(
        "train",
        "data path",
        "data.download=false",
        1,
        "data.root=",
        "MNIST_HYDRA_DATA",
        env=(("MNIST_HYDRA_DATA", ""), ("KERAS_HOME", "{root}/keras-home")),
    ),
    # --- train: your own data (data=folder, csv, idx); the cache would be in the sandbox, and must stay unwritten ---
    case("train", "your data", "data=folder", 2, "data.root=null is not allowed", "data.root=/path/to/images"),
    case("train", "your data", "data=csv", 2, "data.root=null is not allowed", "train.csv"),
    case(
        "train", "your data", "data=cifar data.root=nowhere", 1, "no such folder", "cifar-10-batches-py/", "kriz/cifar"
    ),
    case("train", "your data", "data=folder data.root=nowhere", 1, "nowhere: no such folder", "one subfolder"),
    case("train", "your data", "data=folder data.root=notes.txt", 1, "is a file, not a folder"),
    case("train", "your data", "data=folder data.root=empty", 1, "has no class subfolders", "one subfolder per class"),
    case(
        "train",
        "your data",
        "data=folder data.root=pictures",
        1,
        "has no class subfolders",
        "it holds 2 image files directly",
    ),
    case("train", "your data", "data=folder data.root=imgs/oneclass", 1, "only one class (7)", "at least two"),
    case(
        "train",
        "your data",
        "data=folder data.root=imgs/noimage",
        1,
        "class folder",
        "/5 holds no image file",
        env=(("MNIST_HYDRA_CACHE", "{root}/cache"),),
    ),
    case(
        "train",
        "your data",
        "data=folder data.root=imgs/unreadable",
        1,
        "no readable image of class 5",
        env=(("MNIST_HYDRA_CACHE", "{root}/cache"),),
    ),
    case(
        "train",
        "your data",
        "data=folder data.root=imgs/split",
        1,
        "test/5: no such folder",
        env=(("MNIST_HYDRA_CACHE", "{root}/cache"),),
    ),
    case(
        "train",
        "your data",
        "data=folder data.root=imgs/unreadable data.classes=[3,4]",
        1,
        "data.classes names 4",
        "its subfolders: 3, 5",
    ),
    case(
        "train",
        "out of range",
        "data=folder data.root=imgs/unreadable data.test_split=1",
        2,
        "data.test_split=1.0 is not allowed",
        "(0, 1)",
    ),
    case(
        "train",
        "out of range",
        "data=folder data.root=imgs/unreadable data.preprocess=resize data.image_size=[4,4]",
        2,
        "data.image_size=[4, 4] is not allowed",
        "each from 8 to 1024 pixels",
    ),
    case(
        "train",
        "out of range",
        "data=folder data.root=imgs/unreadable data.preprocess=resize data.image_size=[0,32]",
        2,
        "data.image_size=[0, 32] is not allowed",
        "[height, width]",
    ),
    case(
        "train",
        "out of range",
        "data=folder data.root=imgs/unreadable data.preprocess=resize data.channels=2",
        2,
        "data.channels=2 is not allowed",
        "1 (grey) or 3 (colour, RGB)",
    ),
    case(
        "train",
        "out of range",
        "data=folder data.root=imgs/unreadable data.preprocess=blur",
        2,
        "data.preprocess=blur is not allowed",
        "digit (digits, handwriting) or resize",
    ),
    case(
        "train",
        "out of range",
        "data=folder data.root=imgs/unreadable data.channels=3",
        2,
        "data.channels=3 is not allowed",
        "set data.preprocess=resize for colour",
    ),
    case(
        "train",
        "out of range",
        "data=folder data.root=imgs/unreadable data.preprocess=resize data.image_size=[16,16] model.kernel_size=20",
        2,
        "model.kernel_size=20 is not allowed",
        "from 1 to 16, for the data's 16x16 grey images",
    ),
    case("train", "your data", "data=csv data.root=nowhere.csv", 1, "no such file", "label"),
    case("train", "your data", "data=csv data.root=/dev/zero", 1, "/dev/zero: not a regular file", "label"),
    case("train", "your data", "data=csv data.root=csv/columns.csv", 1, "10 pixel columns", "expected 784"),
    case(
        "train",
        "your data",
        "data=csv data.root=csv/nolabel.csv",
        1,
        "no 'label' column",
        "test.csv",
        "data.label_column",
    ),
    case(
        "train",
        "your data",
        "data=csv data.root=csv/text.csv",
        1,
        "row 3, column 'pixel5': 'dark' is not a number",
    ),
    case(
        "train",
        "your data",
        "data=csv data.root=csv/range.csv",
        1,
        "row 2, column 'pixel0': pixel 300 is outside 0..255",
    ),
    case(
        "train",
        "your data",
        "data=csv data.root=csv/labels.csv",
        1,
        "row 3, column 'label': 1.5 is not an integer label",
    ),
    case("train", "your data", "data=csv data.root=csv/empty.csv", 1, "cannot read it as CSV"),
    # Data that every loader's own checks let through: refused by the one step every data option passes
    # (load_splits) before a checkpoint is written; the sandbox stays as it was.
    case(
        "train",
        "your data",
        "data=folder data.root=imgs/emptytest data.cache=false",
        1,
        "imgs/emptytest: the test split is empty",
        "not one test image that could be read",
    ),
    case("train", "your data", "data=csv data.root=csv/two.csv", 1, "the test split is empty", "data.test_split=0.2"),
    # A link to nowhere and a name that is not UTF-8 are files that cannot be read, like a truncated image.
    case(
        "train",
        "your data",
        "data=folder data.root=imgs/dangling data.cache=false",
        1,
        "no readable image of class 5",
    ),
    case(
        "train",
        "your data",
        "data=folder data.root=imgs/latin1 data.cache=false",
        1,
        "no readable image of class 5",
    ),
    case("train", "your data", "data=idx data.root=idx/counts", 1, "9 labels for the 10 images", "counts must agree"),
    case(
        "train",
        "your data",
        "data=idx data.root=idx/labels",
        1,
        "label 5 is out of range for the 2 classes",
        "classes.txt",
    ),
    case("train", "your data", "data=idx data.root=idx/labels/classes.txt", 1, "is a file, not a folder"),
    case("train", "your data", "data=idx data.root=empty", 1, "has no train images file", "train-images-idx3-ubyte"),
    case("train", "your data", "init_from=empty", 2, "init_from=empty: no model.keras in it", "a finished run"),
    case("train", "your data", "init_from=nowhere", 2, "init_from=nowhere: no such directory"),
    case("train", "your data", "init_from=stopped", 2, "init_from=stopped: no model.keras in it (the run interrupted)"),
    case("train", "your data", "init_from=damaged", 1, "damaged/model.keras: damaged or not a Keras archive"),
    # --- evaluate ---
    case("evaluate", "missing value", "", 2, "run has no value", "run=outputs/"),
    case("evaluate", "run path", "run=nowhere", 2, "run=nowhere: no such directory"),
    case("evaluate", "run path", "run=notes.txt", 2, "run=notes.txt: is a file"),
    case("evaluate", "run path", "run=empty", 2, "run=empty: no model.keras"),
    case("evaluate", "run path", "run=sweep", 2, "run=sweep: no model.keras", "numbered sub-directories"),
    case("evaluate", "run path", "run=stopped", 2, "run=stopped: no model.keras", "interrupted"),
    case("evaluate", "run path", "'run=my data'", 2, "run=my data: no model.keras"),
    case("evaluate", "run path", "run=noconfig", 2, "run=noconfig", "data=OPTION"),
    case("evaluate", "run path", "run=badconfig", 2, "run=badconfig: cannot read its config"),
    case("evaluate", "unknown key", "run=run model=mlp", 2, "model is not a config group of this command", "--help"),
    case("evaluate", "unknown key", "run=run experiment=best", 2, "experiment needs a plus", "python -m mnist_hydra +"),
    case(
        "evaluate", "unknown key", "run=run trainer.epochs=3", 2, "trainer is not a config key", "batch_size, data, run"
    ),
    case("evaluate", "unknown key", "run=run +foo=1", 2, "foo is not a key of mnist_hydra.evaluate"),
    case("evaluate", "out of range", "run=run batch_size=0", 2, "batch_size=0 is not allowed"),
    case("evaluate", "wrong type", "run=run data.test_limit=abc", 2, "data.test_limit=abc has the wrong type"),
    case("evaluate", "unknown option", "run=run data=cifar10", 2, "data=cifar10 is not a data option"),
    case("evaluate", "unknown flag", "run=run --bogus", 2, "unrecognized arguments: --bogus"),
    case("evaluate", "output path", "run=run hydra.run.dir=/proc/x", 1, "cannot write /proc/x"),
    case("evaluate", "output path", "run=run hydra.run.dir=notes.txt", 1, "cannot write notes.txt"),
    case("evaluate", "data path", "run=run data.root=nowhere", 1, "nowhere", "no such folder"),
    case("evaluate", "data path", "run=run hydra.run.dir=empty data.root=nowhere", 1, "nowhere", "no such folder"),
    # resume= continues a training; evaluate's advice is its own.
    case(
        "evaluate",
        "existing run",
        "run=run hydra.run.dir=run",
        2,
        "hydra.run.dir=run holds a run (completed)",
        "beside",
    ),
    case(
        "evaluate",
        "damaged model",
        "run=damaged",
        1,
        "damaged/model.keras: damaged or not a Keras archive",
        "14 bytes that are not a zip archive",
    ),
    # --- predict ---
    case("predict", "missing value", "", 2, "has no value", "set it on the command line"),
    case("predict", "missing value", "run=run", 2, "images has no value", "images=my_digits/"),
    case("predict", "run path", "run=nowhere images=digit.png", 2, "run=nowhere: no such directory"),
    case("predict", "run path", "run=stopped images=digit.png", 2, "run=stopped: no model.keras"),
    case("predict", "images", "run=run images=nowhere.png", 2, "images=nowhere.png: no such file or folder"),
    case("predict", "images", "run=run images=empty", 2, "images=empty: no image in this folder"),
    case("predict", "images", "run=run images=/proc", 2, "images=/proc: no"),
    case("predict", "images", "run=run images=notes.txt", 1, "notes.txt: not a readable image"),
    case("predict", "images", "run=run images=zero.png", 1, "zero.png"),
    case("predict", "images", "run=run images=truncated.png", 1, "truncated.png"),
    case("predict", "images", "run=run images=blank.png", 1, "blank.png", "no digit"),
    case("predict", "images", "run=run images=/proc/self/status", 1, "/proc/self/status: not a readable image"),
    # A file whose read never returns (it waits for the next kernel message): refused, not waited on.
    case("predict", "images", "run=run images=/proc/kmsg", 1, "/proc/kmsg: not a readable image"),
    case("predict", "images", "run=run images=/dev/null", 2, "images=/dev/null: not a regular file or a folder"),
    case("predict", "images", "run=run images=pictures", 1, "pictures", "notes.png", "zero.png"),
    case("predict", "out of range", "run=run images=digit.png output=xml", 2, "output=xml is not allowed", "json"),
    case("predict", "out of range", "run=run images=digit.png top_k=0", 2, "top_k=0 is not allowed"),
    case("predict", "wrong type", "run=run images=digit.png top_k=ten", 2, "top_k=ten has the wrong type"),
    case("predict", "unknown key", "run=run images=digit.png foo=1", 2, "foo", "not"),
    case("predict", "unknown flag", "run=run images=digit.png --bogus", 2, "unrecognized arguments: --bogus"),
    case(
        "predict",
        "damaged model",
        "run=run images=digit.png",
        1,
        "run/model.keras: damaged or not a Keras model, it cannot be loaded: Could not locate class 'NoSuchLayer'",
        slow=True,
    ),
    case(
        "predict",
        "damaged model",
        "run=damaged images=digit.png",
        1,
        "damaged/model.keras: damaged or not a Keras archive",
        "not a zip archive",
    ),
    case(
        "predict",
        "damaged model",
        "run=garbled images=digit.png",
        1,
        "garbled/model.keras: damaged or not a Keras archive: metadata.json is not JSON (Expecting property name",
    ),
    case(
        "evaluate",
        "damaged model",
        "run=nohdf5",
        1,
        "nohdf5/model.keras: damaged or not a Keras archive",
        "not an HDF5",
    ),
    case(
        "predict",
        "damaged model",
        "run=foreign images=digit.png",
        1,
        "foreign/model.keras: damaged or not a Keras "
        "archive: the zip archive lacks metadata.json, config.json, model.weights.h5",
    ),
    # --- summarize ---
    case("summarize", "usage", "", 2, "the following arguments are required: dir", "usage:"),
    case("summarize", "usage", "a b", 2, "unrecognized arguments: b"),
    case("summarize", "usage", "--bogus empty", 2, "unrecognized arguments: --bogus"),
    case("summarize", "run path", "nowhere", 2, "nowhere is not a directory"),
    case("summarize", "run path", "notes.txt", 2, "notes.txt is not a directory"),
    case("summarize", "run path", "empty", 2, "no runs", "empty"),
    case("summarize", "run path", "/proc/self/fdinfo", 2, "no runs", "/proc/self/fdinfo"),
    case("summarize", "run path", "emptysweep", 2, "emptysweep", "no job directories"),
    # --- report ---
    case("report", "usage", "", 2, "the following arguments are required: dir"),
    case("report", "usage", "--bogus empty", 2, "unrecognized arguments: --bogus"),
    case("report", "run path", "nowhere", 2, "nowhere is not a directory"),
    case("report", "run path", "notes.txt", 2, "notes.txt is not a directory"),
    case("report", "run path", "empty", 2, "empty holds neither a run", "nor a sweep"),
    case("report", "run path", "/proc/self", 2, "/proc/self holds neither a run"),
    case("report", "run path", "emptysweep", 2, "emptysweep", "no job directories"),
    case(
        "train",
        "search setting",
        "hparams_search=optuna hydra.sweeper.grace_period=5",
        2,
        "hydra.sweeper.grace_period=5 is not allowed",
        "> hydra.sweeper.heartbeat_interval=10",
    ),
    # --- train: a run never writes into a sweep's directory, nor a sweep into a run's ---
    case("train", "existing run", "hydra.run.dir=sweep", 2, "hydra.run.dir=sweep holds a sweep", "never writes"),
    case(
        "train", "existing run", "-m hydra.sweep.dir=run seed=1,2", 2, "hydra.sweep.dir=run holds a run", "resume=run"
    ),
    case("train", "existing run", "-m hydra.sweep.dir=sweep/0 seed=1,2", 2, "hydra.sweep.dir=sweep/0 holds a run"),
    case("train", "existing run", "-m hydra.sweep.dir=failed seed=1,2", 2, "hydra.sweep.dir=failed holds a run"),
    case("train", "resume", "-m resume=stopped", 2, "resume=stopped is a run's directory, not a sweep's", "--multirun"),
    case("train", "resume", "--multirun resume=sweep/0", 2, "resume=sweep/0 is a run's directory, not a sweep's"),
    case("train", "existing run", "hydra.run.dir=sweep/7", 2, "hydra.run.dir=sweep/7 is inside the sweep directory"),
    case("train", "existing run", "-m hydra.sweep.dir=run/more seed=1,2", 2, "is inside the run directory run"),
    case("train", "existing run", "-m hydra.sweep.subdir=same seed=1,2", 2, "hydra.sweep.subdir=same is the same"),
    case("train", "out of range", "-m seed=range(0,0)", 2, "seed=range(0,0) sweeps over no value", "seed=range(0,3)"),
    case("train", "existing run", "-m hydra.sweep.subdir=. seed=1,2", 2, "hydra.sweep.subdir=. is the same directory"),
]


# The rows that run as a user runs them, `python -m ...` in a process of their own (with every slow=True row,
# which loads TensorFlow), and why: one per app and exit code, and what only a process shows.
PROCESS_SAMPLE = {
    "train: --bogus": "refused before Hydra runs, by the real entry point (launch, its exit without teardown)",
    "train: 'hydra.run.dir=my data/run' data.root=nowhere": "exit 1 after the run directory was claimed: the "
    "process's exit hooks (the job log closed) must leave no directory behind",
    "evaluate: run=nowhere": "evaluate, exit 2",
    "evaluate: run=damaged": "evaluate, exit 1: a model archive read, without TensorFlow",
    "predict: run=run images=nowhere.png": "predict, exit 2",
    "summarize: (no arguments)": "summarize: argparse, no Hydra, exit 2",
    "report: empty": "report, exit 2",
}


# Bad data that needs no process to show: the loaders and the one split step, called in-process, and the error
# worded by the apps' boundary as it would be printed (data=OPTION, data.root=PATH in the sandbox, more keys).
DATA_CASES = [
    ("csv", "csv/six.csv", {}, ("the validation split is empty: data.val_split=0.1 of 4", "data.val_split=0.25")),
    ("csv", "csv/binary.csv", {}, ("the largest pixel is 1", "data.pixel_scale=1")),
    ("csv", "csv/unit.csv", {}, ("the largest pixel is 0.5", "data.pixel_scale=1")),
    ("csv", "csv/unit.csv", {"pixel_scale": 0.25}, ("pixel 0.5 is outside 0..0.25", "data.pixel_scale=255")),
    ("idx", "idx/binary", {}, ("the largest pixel is 1", "data.pixel_scale=1")),
    ("csv", "csv/colons.csv", {}, ("its header line 'label:pixel0:", "is one column", "semicolons, tabs")),
    ("csv", "csv/noheader.csv", {}, ("has no header line", "data.label_column=0")),
    ("csv", "csv/thousand.csv", {}, ("1000 pixel columns beside 'label' is not an image", "3072 = 32x32x3")),
    ("idx", "idx/twins", {}, ("t10k-labels-idx1-ubyte.gz and t10k-labels-idx1-ubyte beside it hold different",)),
    ("csv", "csv/ten.csv", {"folds": 9}, ("data.folds=9 needs at least 9 training images", "there are 8")),
    ("cifar", "cifar/missing", {}, ("has no data_batch_3", "data_batch_1..data_batch_5", "kriz/cifar.html")),
    ("cifar", "cifar/cutpickle", {}, ("data_batch_2: cannot unpickle it: it ends early: the file is truncated",)),
    ("cifar", "cifar/cutbin", {}, ("test.bin: 6138 bytes is not a whole number of 3074-byte records",)),
    ("cifar", "cifar/neither", {}, ("holds no CIFAR data", "cifar-10-batches-py/", "kriz/cifar.html")),
    ("cifar", "cifar/nowhere", {}, ("no such folder", "cifar-100-python/", "kriz/cifar.html")),
]


@pytest.fixture(scope="module")
def data_sandbox(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data_sandbox")
    build_sandbox(root)
    return root


@pytest.mark.parametrize("option, path, fields, says", DATA_CASES, ids=[f"{c[0]}: {c[1]} {c[2]}" for c in DATA_CASES])
def test_bad_data(option, path, fields, says, data_sandbox, monkeypatch):
    from mnist_hydra.apps.boundary import describe, exit_code
    from mnist_hydra.config import typed_group
    from mnist_hydra.data.splits import load_splits
    from mnist_hydra.errors import UserError

    monkeypatch.chdir(data_sandbox)
    before = snapshot(data_sandbox)
    cfg = typed_group("data", {"name": option, "root": path, **fields})
    with pytest.raises(UserError) as info:
        load_splits(cfg, seed=0)
    line = describe(info.value)
    assert line is not None and "\n" not in line
    for fragment in says:
        assert fragment in line, f"{fragment!r} missing from: {line}"
    assert line_length(line, path, data_sandbox) <= MAX_LINE, f"longer than {MAX_LINE}: {line}"
    assert exit_code(info.value) == 1
    assert snapshot(data_sandbox) == before


def build_sandbox(root: Path) -> None:
    """The files and folders the catalogue misuses: runs in every state, a sweep, files that are not images."""
    from PIL import Image, ImageDraw

    config = (
        "seed: 0\nresume: null\nplugins: []\ndata:\n  name: mnist\n  root: null\n  val_split: 0.1\n"
        "  train_limit: 2000\n  test_limit: 100\n  download: false\n  verify: true\n  folds: null\n"
        "  fold: 0\n"
    )

    def run(name: str, metrics: str | None = None, model: bool = False, checkpoint: bool = False) -> Path:
        folder = root / name
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "config.yaml").write_text(config)
        (folder / ".hydra" / "overrides.yaml").write_text("- trainer.epochs=1\n")
        if metrics is not None:
            (folder / "metrics.json").write_text(metrics)
        if model:  # a Keras archive's members, each of the right kind but garbage: passes check_model_file,
            # then Keras (TensorFlow) loads and fails
            with zipfile.ZipFile(folder / "model.keras", "w") as archive:
                archive.writestr("metadata.json", '{"keras_version": "3.0.0"}')
                archive.writestr("config.json", '{"class_name": "NoSuchLayer", "config": {}}')
                archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n then garbage")
        if checkpoint:
            (folder / "checkpoints").mkdir()
            (folder / "checkpoints" / "checkpoint.json").write_text('{"file": "epoch-0001.keras", "epoch": 1}')
            (folder / "checkpoints" / "epoch-0001.keras").write_bytes(b"PK")
        return folder

    run("run", '{"status": "completed", "test_accuracy": 0.9}', model=True)
    run("stopped", '{"status": "interrupted", "signal": "SIGINT", "epochs_run": 1}', checkpoint=True)
    run("failed", '{"status": "failed", "error": "training diverged"}')
    damaged = run("damaged", '{"status": "completed", "test_accuracy": 0.9}')
    (damaged / "model.keras").write_bytes(b"PK\x03\x04 cut short")  # a truncated archive
    foreign = run("foreign", '{"status": "completed", "test_accuracy": 0.9}')
    with zipfile.ZipFile(foreign / "model.keras", "w") as archive:  # a zip, but not what Keras writes
        archive.writestr("readme.txt", "hello")
    run("killed", checkpoint=True)
    garbled = run("garbled", '{"status": "completed", "test_accuracy": 0.9}')
    with zipfile.ZipFile(garbled / "model.keras", "w") as archive:  # Keras's members, garbled
        for member in ("metadata.json", "config.json", "model.weights.h5"):
            archive.writestr(member, "{not json")
    nohdf5 = run("nohdf5", '{"status": "completed", "test_accuracy": 0.9}')
    with zipfile.ZipFile(nohdf5 / "model.keras", "w") as archive:  # the JSON right, the weights not HDF5
        archive.writestr("metadata.json", '{"keras_version": "3.0.0"}')
        archive.writestr("config.json", '{"class_name": "Sequential", "config": {}}')
        archive.writestr("model.weights.h5", b"weights")
    noconfig = root / "noconfig"
    noconfig.mkdir()
    (noconfig / "model.keras").write_bytes(b"PK junk")
    bad = run("badconfig", model=True)
    (bad / ".hydra" / "config.yaml").write_text("data: [unclosed\n  - {\n")

    sweep = root / "sweep"
    run("sweep/0", '{"status": "completed", "val_accuracy": 0.9, "test_accuracy": 0.9}')
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: [seed=1,2]\n")
    (root / "emptysweep").mkdir()
    (root / "emptysweep" / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: []\n")

    for name in ("empty", "my data"):
        (root / name).mkdir()
    (root / "notes.txt").write_text("not an image\n")
    digit = Image.new("L", (56, 56), 255)
    ImageDraw.Draw(digit).line([(14, 10), (42, 10), (24, 48)], fill=0, width=5)  # a 7
    digit.save(root / "digit.png")
    Image.new("L", (28, 28), 200).save(root / "blank.png")
    (root / "truncated.png").write_bytes((root / "digit.png").read_bytes()[:60])
    (root / "zero.png").write_bytes(b"")
    pictures = root / "pictures"
    pictures.mkdir()
    (pictures / "notes.png").write_text("not an image\n")
    (pictures / "zero.png").write_bytes(b"")
    build_your_data(root, digit)


def build_your_data(root: Path, digit) -> None:
    """Folders, CSVs and IDX sets with one mistake each, for the data=folder, csv and idx rows."""
    from mnist_hydra.data.idx_format import write_idx

    def image_folder(*paths: str) -> None:
        for path in paths:
            (root / "imgs" / path).parent.mkdir(parents=True, exist_ok=True)
            if path.endswith(".txt"):
                (root / "imgs" / path).write_text("not an image\n")
            elif path.endswith("truncated.png"):
                (root / "imgs" / path).write_bytes((root / "truncated.png").read_bytes())
            else:
                digit.save(root / "imgs" / path)

    image_folder(
        "oneclass/7/a.png",
        "noimage/3/a.png",
        "noimage/5/notes.txt",
        "unreadable/3/a.png",
        "unreadable/5/truncated.png",
        "split/train/3/a.png",
        "split/train/5/a.png",
        "split/test/3/a.png",
        "emptytest/train/3/a.png",
        "emptytest/train/5/a.png",
        "emptytest/test/3/truncated.png",
        "emptytest/test/5/truncated.png",
        "dangling/3/a.png",
        "latin1/3/a.png",
    )
    (root / "imgs" / "dangling" / "5").mkdir()
    (root / "imgs" / "dangling" / "5" / "a.png").symlink_to(root / "nowhere.png")
    (root / "imgs" / "latin1" / "5").mkdir()
    (root / "imgs" / "latin1" / "5" / os.fsdecode(b"caf\xe9.png")).write_bytes(b"not an image")
    csv = root / "csv"
    csv.mkdir()
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    row = lambda label, pixels: f"{label}," + ",".join(map(str, pixels))  # noqa: E731
    zeros = [0] * 784
    (csv / "columns.csv").write_text(
        "label," + ",".join(f"p{i}" for i in range(10)) + "\n1," + ",".join("0" * 10) + "\n"
    )
    (csv / "nolabel.csv").write_text(",".join(f"pixel{i}" for i in range(784)) + "\n" + ",".join("0" * 784) + "\n")
    (csv / "text.csv").write_text("\n".join([header, row(1, zeros), row(2, zeros[:5] + ["dark"] + zeros[6:])]) + "\n")
    (csv / "range.csv").write_text("\n".join([header, row(1, [300] + zeros[1:]), row(2, zeros)]) + "\n")
    (csv / "labels.csv").write_text("\n".join([header, row(1, zeros), row(1.5, zeros)]) + "\n")
    (csv / "empty.csv").write_text("")
    some = [0] * 700 + [255] * 84
    (csv / "two.csv").write_text("\n".join([header, row(0, some), row(1, some)]) + "\n")
    (csv / "six.csv").write_text("\n".join([header] + [row(i % 2, some) for i in range(6)]) + "\n")
    (csv / "binary.csv").write_text("\n".join([header] + [row(i % 2, [0, 1] * 392) for i in range(10)]) + "\n")
    (csv / "unit.csv").write_text("\n".join([header] + [row(i % 2, [0.0, 0.5] * 392) for i in range(10)]) + "\n")
    (csv / "colons.csv").write_text(header.replace(",", ":") + "\n" + row(1, some).replace(",", ":") + "\n")
    (csv / "ten.csv").write_text("\n".join([header] + [row(i % 2, some) for i in range(10)]) + "\n")
    (csv / "thousand.csv").write_text(
        "label," + ",".join(f"p{i}" for i in range(1000)) + "\n" + "\n".join(row(i % 2, [9] * 1000) for i in range(4))
    )
    (csv / "noheader.csv").write_text("\n".join(row(i % 2, some) for i in range(10)) + "\n")
    images = np.zeros((10, 28, 28), np.uint8)
    for name, labels, test_labels in (
        ("counts", np.zeros(9, np.uint8), np.zeros(10, np.uint8)),
        ("labels", np.array([0, 1] * 5, np.uint8), np.array([0, 5] * 5, np.uint8)),
    ):
        folder = root / "idx" / name
        folder.mkdir(parents=True)
        write_idx(folder / "train-images-idx3-ubyte.gz", images)
        write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
        write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_labels)
    (root / "idx" / "labels" / "classes.txt").write_text("zero\none\n")
    binary = root / "idx" / "binary"
    binary.mkdir()
    for name, array in (
        ("train-images-idx3-ubyte.gz", (np.arange(10 * 28 * 28).reshape(10, 28, 28) % 2).astype(np.uint8)),
        ("train-labels-idx1-ubyte.gz", np.array([0, 1] * 5, np.uint8)),
        ("t10k-images-idx3-ubyte.gz", np.ones((4, 28, 28), np.uint8)),
        ("t10k-labels-idx1-ubyte.gz", np.array([0, 1] * 2, np.uint8)),
    ):
        write_idx(binary / name, array)
    twins = root / "idx" / "twins"
    twins.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (twins / name).write_bytes((binary / name).read_bytes())
    write_idx(twins / "t10k-labels-idx1-ubyte.gz", np.array([0, 1] * 2, np.uint8))
    write_idx(twins / "t10k-labels-idx1-ubyte", np.array([1, 0] * 2, np.uint8))
    write_bad_cifar(root / "cifar")


@dataclass
class Outcome:
    result: subprocess.CompletedProcess
    before: dict
    after: dict
    seconds: float
    root: Path  # the row's sandbox
    how: str  # "process" or "in-process"


def line_length(line: str, args: str, root: Path) -> int:
    """How long `line` is as its user reads it: the sandbox's absolute path (where a user's launch directory
    would be) counted as '.', and a word longer than 60 characters that the command gave (a path made too
    long on purpose) as one character: what the user wrote is repeated whole, the rest must stay short."""
    line = line.replace(str(root), ".")
    for word in shlex.split(args):
        value = word.split("=", 1)[-1]
        if len(value) > 60:
            line = line.replace(value, "W")
    return len(line)


def base_env() -> dict[str, str]:
    """The environment of every row: the user's, without the switches that change what is printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "TF_CPP_MIN_LOG_LEVEL")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def as_process(item: Case) -> bool:
    """Whether the row runs as `python -m ...` (it loads TensorFlow, or it is in PROCESS_SAMPLE)."""
    return item.slow or item.id in PROCESS_SAMPLE


def row_env(item: Case, root: Path) -> dict[str, str]:
    return {key: value.replace("{root}", str(root)) for key, value in item.env}


def run_process(item: Case, root: Path, env: dict[str, str]) -> Outcome:
    """Build the row's sandbox, run its command there as a process, and snapshot the sandbox before and after."""
    root.mkdir(parents=True)
    build_sandbox(root)
    before = snapshot(root)
    start = time.perf_counter()
    command = [sys.executable, "-m", APPS[item.app][0], *shlex.split(item.args)]
    # A session of its own: a row still running at TIMEOUT is killed with whatever it started (a launcher's jobs).
    with subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            out, err = process.communicate(timeout=TIMEOUT)
            result = subprocess.CompletedProcess(command, process.returncode, out, err)
        except subprocess.TimeoutExpired:  # it went on to train: the bad input was not caught
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            result = subprocess.CompletedProcess(
                command, None, out, f"{err}\n(still running after {TIMEOUT} s: killed)"
            )
    return Outcome(result, before, snapshot(root), time.perf_counter() - start, root, "process")


class RowTimeout(BaseException):
    """A row still running in this process after TIMEOUT seconds (not an Exception: no boundary catches it)."""


BLOCKED = ("tensorflow", "keras")  # what a row run in this process may not import: mark it slow=True instead
# A fresh interpreter's warning filters (Python's defaults; pytest's own are set aside meanwhile).
FRESH_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
)


def run_in_process(item: Case, root: Path) -> Outcome:
    """Run the row's command in this process (call_app) in the sandbox `root`, snapshotted before and after."""
    before = snapshot(root)
    command = [sys.executable, "-m", APPS[item.app][0], *shlex.split(item.args)]
    start = time.perf_counter()
    with as_a_fresh_process() as native:
        try:
            result = call_app(*command[3:], cwd=root, env=row_env(item, root), module=command[2])
        except RowTimeout:  # it went on to train: the bad input was not caught
            result = subprocess.CompletedProcess(command, None, "", f"(still running after {TIMEOUT} s: stopped)")
        except Exception:  # a bug, or an import of TensorFlow: shown whole, as a process would show it
            hint = f"\n(a row that imports {' or '.join(BLOCKED)} runs as a process: mark it slow=True)"
            result = subprocess.CompletedProcess(command, 1, "", traceback.format_exc() + hint)
    result.stderr += native.getvalue()
    return Outcome(result, before, snapshot(root), time.perf_counter() - start, root, "in-process")


def run_rows_in_process(items: list[Case], root: Path) -> list[Outcome]:
    """Build one sandbox at `root` and run `items` in it one after another, in this process. A row that changed
    the sandbox fails on its own snapshots; the next row gets the sandbox built afresh."""
    done = []
    for item in items:
        if not done or done[-1].after != done[-1].before:
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            build_sandbox(root)
        done.append(run_in_process(item, root))
    return done


@contextlib.contextmanager
def as_a_fresh_process() -> Iterator[io.StringIO]:
    """What a row run in this process would otherwise get from, or leave to, the rows and tests before and after
    it, set as a new process has it meanwhile and put back afterwards (call_app itself does the working
    directory, argv, the environment's variables it sets, Hydra's global state and the root logger's handlers):

    - the whole environment (an app may set variables for itself);
    - every logger's level, handlers and switches, with no handler on the root logger (pytest's would swallow a
      library's warning that a user reads on stderr), and logging's module switches;
    - the warning filters and their once-only registries, warnings printed to sys.stderr (pytest records them);
    - the SIGINT and SIGTERM handlers;
    - TensorFlow and Keras cannot be imported (their C++ output at start-up and their global state only a
      process shows: a row that needs them is slow=True, a process row);
    - file descriptor 2: what is written below sys.stderr (C code, sys.__stderr__) is yielded, to be added
      to the row's stderr;
    - a row still running after TIMEOUT seconds raises RowTimeout.
    """
    environ = dict(os.environ)
    loggers = _logger_states()
    switches = (logging.root.manager.disable, logging.raiseExceptions)
    signals = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    modules = {name: sys.modules[name] for name in BLOCKED if name in sys.modules}
    native = io.StringIO()
    saved_fd2 = os.dup(2)
    with tempfile.TemporaryFile() as below, warnings.catch_warnings():
        warnings.resetwarnings()
        for action, category, module in reversed(FRESH_FILTERS):
            warnings.filterwarnings(action, category=category, module=module)
        warnings.showwarning = _print_warning
        for handler in logging.root.handlers[:]:
            logging.root.removeHandler(handler)
        logging.root.setLevel(logging.WARNING)
        for name in BLOCKED:
            sys.modules[name] = None  # type: ignore[assignment]  # None: `import tensorflow` raises ImportError
        os.dup2(below.fileno(), 2)
        previous = signal.signal(signal.SIGALRM, _stop_row)
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
        try:
            yield native
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            sys.__stderr__.flush()
            os.dup2(saved_fd2, 2)
            os.close(saved_fd2)
            below.seek(0)
            native.write(below.read().decode(errors="replace"))
            for name in BLOCKED:
                del sys.modules[name]
            sys.modules.update(modules)
            for signum, handler in signals.items():
                signal.signal(signum, handler)
            logging.root.manager.disable, logging.raiseExceptions = switches
            _restore_loggers(loggers)
            for key in os.environ.keys() - environ.keys():
                del os.environ[key]
            os.environ.update(environ)


def _stop_row(signum: int, frame: object) -> None:
    raise RowTimeout()


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python's own way of showing a warning (pytest's recorder set aside): to sys.stderr, now the row's."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _logger_states() -> dict[logging.Logger, tuple]:
    loggers = [logging.root, *(x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger))]
    return {x: (x.level, x.disabled, x.propagate, x.handlers[:]) for x in loggers}


def _restore_loggers(saved: dict[logging.Logger, tuple]) -> None:
    """Every logger as it was; one the row made, as a new one is (its handlers closed: they were the row's)."""
    for logger in _logger_states():
        level, disabled, propagate, handlers = saved.get(logger, (logging.NOTSET, False, True, []))
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)
                if isinstance(handler, logging.FileHandler):
                    handler.close()
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.setLevel(level)  # also clears every logger's cache of enabled levels
        logger.disabled, logger.propagate = disabled, propagate


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    """Every selected row: {row id: Outcome}. The process rows run one at a time in the background, while the
    in-process rows are shared between this process and one spawned interpreter (IN_PROCESS_WORKERS)."""
    wanted = [
        item.callspec.params["item"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_bad_input" and hasattr(item, "callspec")
    ]
    if not os.environ.get("MNIST_HYDRA_DATA"):
        wanted = [c for c in wanted if not c.data]
    # Slow rows (TensorFlow) first, so that the quick ones fill the other worker meanwhile.
    wanted.sort(key=lambda c: not c.slow)
    base = tmp_path_factory.mktemp("catalogue")
    local = [c for c in wanted if not as_process(c)]
    shares = [local[i::IN_PROCESS_WORKERS] for i in range(IN_PROCESS_WORKERS)]
    done = {}
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no TensorFlow, no threads forked
    with (
        ThreadPoolExecutor(max_workers=1) as processes,
        ProcessPoolExecutor(max_workers=IN_PROCESS_WORKERS - 1, mp_context=spawn) as helpers,
    ):
        # Each process's environment is made here, before any row changes this one's.
        roots = {c.id: base / f"process-{i:02d}" for i, c in enumerate(wanted) if as_process(c)}
        futures = {
            c.id: processes.submit(run_process, c, roots[c.id], {**base_env(), **row_env(c, roots[c.id])})
            for c in wanted
            if c.id in roots
        }
        shared = [
            helpers.submit(run_rows_in_process, share, base / f"helper-{i}") for i, share in enumerate(shares[1:])
        ]
        for item, outcome in zip(shares[0], run_rows_in_process(shares[0], base / "here"), strict=True):
            done[item.id] = outcome
        for share, future in zip(shares[1:], shared, strict=True):
            for item, outcome in zip(share, future.result(), strict=True):
                done[item.id] = dataclasses.replace(outcome, how="in-process (spawned)")
        done.update({key: future.result() for key, future in futures.items()})
    # What each row printed and how long it took: the docs' table and a slow row are read from here.
    with open(base / "catalogue.tsv", "w", encoding="utf-8") as record:
        for key, outcome in done.items():
            first = (outcome.result.stderr.splitlines() or [""])[0]
            record.write(f"{outcome.seconds:.1f}\t{outcome.result.returncode}\t{key}\t{first}\t{outcome.how}\n")
    return done


def changes(before: dict, after: dict, allowed: tuple[str, ...]) -> list[str]:
    """Sandbox paths created, changed or removed, except those `allowed` (globs)."""
    differ = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    return sorted(p for p in differ if not any(fnmatch.fnmatch(p, pattern) for pattern in allowed))


@pytest.mark.parametrize("item", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input(item: Case, outcomes):
    if item.id not in outcomes:
        pytest.skip("MNIST_HYDRA_DATA is not set: this row reads the real test set")
    outcome = outcomes[item.id]
    result = outcome.result
    prog = APPS[item.app][1]
    lines = result.stderr.splitlines()
    shown = f"exit {result.returncode}\nstderr:\n{result.stderr[-3000:]}\nstdout:\n{result.stdout[-1000:]}"
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert len(lines) == 1, shown
    assert lines[0].startswith(f"{prog}: error: "), shown
    for fragment in item.says:
        assert fragment in lines[0], f"{fragment!r} missing from: {lines[0]}"
    assert line_length(lines[0], item.args, outcome.root) <= MAX_LINE, f"longer than {MAX_LINE}: {lines[0]}"
    assert result.returncode == item.code, shown
    assert changes(outcome.before, outcome.after, item.writes) == [], "the sandbox changed"


def test_the_catalogue_covers_every_app_and_enough_cases():
    assert len(CATALOGUE) >= 60
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE), "two rows with the same command"
    assert {c.app for c in CATALOGUE} == set(APPS)


def test_the_process_sample_names_rows_and_covers_every_app_and_exit_code():
    ids = {c.id: c for c in CATALOGUE}
    assert PROCESS_SAMPLE.keys() <= ids.keys(), "a PROCESS_SAMPLE entry names no row"
    sample = [c for c in CATALOGUE if as_process(c)]
    assert {(c.app, c.code) for c in sample} == {(c.app, c.code) for c in CATALOGUE}


def test_a_row_in_this_process_shows_what_a_process_would_print(tmp_path):
    """The in-process rows' guard: a library's warning, a logged warning and a write below sys.stderr reach the
    row's stderr, as in a process of its own; TensorFlow cannot be imported; the environment is put back."""
    with as_a_fresh_process() as native, contextlib.redirect_stderr(io.StringIO()) as err:
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        logging.getLogger("some.library").warning("a library's log line")
        os.write(2, b"a C library's line\n")
        os.environ["MNIST_HYDRA_ROW_SET_THIS"] = "1"
        with pytest.raises(ImportError):
            import tensorflow  # noqa: F401
    assert "a library's warning" in err.getvalue() and "a library's log line" in err.getvalue()
    assert native.getvalue() == "a C library's line\n"
    assert "MNIST_HYDRA_ROW_SET_THIS" not in os.environ


def test_readme_lists_every_kind():
    """docs/what-can-go-wrong.md's table has a row per kind of input, with the exit codes seen here."""
    page = (ROOT / "docs" / "what-can-go-wrong.md").read_text()
    section = page.split("# What can go wrong", 1)[1].split("\n#", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")][2:]
    rows = {}
    for line in table:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0]] = cells
    assert f"runs {len(CATALOGUE)} such commands" in section
    for kind in sorted({c.kind for c in CATALOGUE}):
        assert kind in rows, f"docs/what-can-go-wrong.md's table has no row {kind!r}"
        codes = {str(c.code) for c in CATALOGUE if c.kind == kind}
        assert set(re.findall(r"\d+", rows[kind][-1])) >= codes, (kind, rows[kind])


def test_out_of_memory_is_one_line_with_exit_1():
    """TensorFlow's ResourceExhaustedError (told by its name: the boundary does not import TensorFlow)."""
    from mnist_hydra.apps.boundary import describe, exit_code, user_error

    class ResourceExhaustedError(Exception):
        pass

    err = ResourceExhaustedError(
        "{{function_node __wrapped__StatelessRandomUniformV2}} OOM when allocating tensor "
        "with shape[4732,100000000] and type float on /job:localhost/replica:0/task:0/device:"
        "CPU:0 by allocator mklcpu [Op:StatelessRandomUniformV2] name: "
    )
    assert user_error(err) is err and exit_code(err) == 1
    assert describe(err) == (
        "out of memory: OOM when allocating tensor with shape[4732,100000000]; choose a smaller "
        "model (model.*) or batch (trainer.batch_size, trainer.eval_batch_size)"
    )
    assert describe(MemoryError()).startswith("out of memory; choose a smaller model")


def test_two_runs_started_at_once_on_one_fresh_directory_one_runs_the_other_refuses(tmp_path, mnist_dir):
    """A lock on the directory, not a check-then-write race: whichever process claims it first trains."""
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "mnist_hydra",
        "model=mlp",  # the smallest run: what is raced for is the directory, not the training
        "data.train_limit=300",
        "data.test_limit=100",
        "trainer.epochs=1",
        f"hydra.run.dir={run}",
    ]
    env = {**base_env(), "MNIST_HYDRA_DATA": str(mnist_dir)}
    both = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(proc, *proc.communicate(timeout=300)) for proc in both]
    assert sorted(proc.returncode for proc, _, _ in results) == [0, 2], [err[-2000:] for _, _, err in results]
    [(_, _, refused)] = [r for r in results if r[0].returncode == 2]
    assert len(refused.splitlines()) == 1, refused
    # Claimed by the other one, or (a very slow start) already finished by it: refused either way.
    assert re.match(
        rf"mnist_hydra: error: hydra.run.dir={re.escape(str(run))} (is in use by another mnist_hydra "
        rf"process|already holds a run \(completed\))",
        refused,
    ), refused
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert (run / "train.log").read_text().count("] - model: mlp") == 1  # one process trained, the other wrote nothing
