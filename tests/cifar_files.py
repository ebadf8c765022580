"""Small CIFAR folders written in exactly the formats of the archives at https://www.cs.toronto.edu/~kriz/cifar.html:
the python version's pickled dicts (bytes keys, as Python 2's cPickle wrote them) and the binary version's records."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FINE_NAMES = [f"fine_{i}" for i in range(100)]
COARSE_NAMES = [f"coarse_{i}" for i in range(20)]
FOLDERS = {
    "py10": "cifar-10-batches-py",
    "bin10": "cifar-10-batches-bin",
    "py100": "cifar-100-python",
    "bin100": "cifar-100-binary",
}


@dataclass(frozen=True)
class Written:
    """What a written folder holds, as the loader should return it: images (n, 32, 32, 3), labels, names."""

    folder: Path
    x_train: np.ndarray
    fine_train: np.ndarray  # CIFAR-10: its labels
    coarse_train: np.ndarray  # CIFAR-10: empty
    x_test: np.ndarray
    fine_test: np.ndarray
    coarse_test: np.ndarray


def stored(images: np.ndarray) -> np.ndarray:
    """(n, 32, 32, 3) images as CIFAR stores them: (n, 3072), the red plane, then green, then blue, row by row."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def write_cifar(root: Path, kind: str, per_batch: int = 20, seed: int = 0) -> Written:
    """`root/<the archive's folder>` for `kind` (py10, bin10, py100, bin100), with `per_batch` images a batch."""
    rng = np.random.default_rng(seed)
    folder = root / FOLDERS[kind]
    folder.mkdir(parents=True)
    hundred = kind.endswith("100")
    train_files = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    batches = []
    for name in [*train_files, "test"]:
        n = per_batch * (5 if hundred and name == "train" else 1)
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        fine = rng.permutation(np.arange(n) % (100 if hundred else 10))  # every class in the training set
        coarse = fine // 5 if hundred else np.zeros(0, np.int64)
        batches.append((name, images, fine, coarse))
    for name, images, fine, coarse in batches:
        if kind == "py10":
            fname = "test_batch" if name == "test" else name
            _pickle(
                folder / fname, {b"batch_label": b"batch", b"labels": [int(v) for v in fine], b"data": stored(images)}
            )
        elif kind == "py100":
            _pickle(
                folder / name,
                {
                    b"filenames": [b"x.png"] * len(images),
                    b"fine_labels": [int(v) for v in fine],
                    b"coarse_labels": [int(v) for v in coarse],
                    b"data": stored(images),
                },
            )
        else:
            fname = ("test_batch" if name == "test" else name) + ".bin" if kind == "bin10" else f"{name}.bin"
            labels = fine[:, None] if kind == "bin10" else np.stack([coarse, fine], axis=1)
            (folder / fname).write_bytes(np.concatenate([labels.astype(np.uint8), stored(images)], axis=1).tobytes())
    if kind == "py10":
        _pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072})
    elif kind == "py100":
        meta = {
            b"fine_label_names": [n.encode() for n in FINE_NAMES],
            b"coarse_label_names": [n.encode() for n in COARSE_NAMES],
        }
        _pickle(folder / "meta", meta)
    elif kind == "bin10":
        (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    else:
        (folder / "fine_label_names.txt").write_text("\n".join(FINE_NAMES) + "\n")
        (folder / "coarse_label_names.txt").write_text("\n".join(COARSE_NAMES) + "\n")
    train, test = batches[:-1], batches[-1]
    return Written(
        folder,
        np.concatenate([b[1] for b in train]),
        np.concatenate([b[2] for b in train]),
        np.concatenate([b[3] for b in train]),
        test[1],
        test[2],
        test[3],
    )


def _pickle(path: Path, content: dict[bytes, object]) -> None:
    path.write_bytes(pickle.dumps(content, protocol=2))


def write_bad_cifar(root: Path) -> None:
    """The CIFAR folders tests/test_bad_inputs.py misuses, under `root`: a batch missing, a truncated pickle, a
    truncated .bin, a folder that holds neither layout."""
    (write_cifar(root / "missing", "py10", per_batch=2).folder / "data_batch_3").unlink()
    pickled = write_cifar(root / "cutpickle", "py10", per_batch=2).folder / "data_batch_2"
    pickled.write_bytes(pickled.read_bytes()[:-100])
    records = write_cifar(root / "cutbin", "bin100", per_batch=2).folder / "test.bin"
    records.write_bytes(records.read_bytes()[:-10])
    (root / "neither" / "photos").mkdir(parents=True)
    (root / "neither" / "notes.txt").write_text("not CIFAR\n")
