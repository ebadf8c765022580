"""PNGs: a run's training curves, confusion matrix and most confident mistakes; a sweep's summary."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mnist_hydra.runs.artifacts import atomic_write

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

DPI = 110


def plot_training_curves(history: dict[str, list[float]], path: str | os.PathLike[str]) -> None:
    """Draw loss and accuracy per epoch, train against validation, side by side."""
    # Fixed margins, wide enough for six-digit ticks: the constrained layout measured every text twice over,
    # half the figure's cost, and this figure's texts are always the same few.
    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.13, top=0.91, wspace=0.24)
    epochs = max((len(values) for values in history.values()), default=0)
    for ax, metric, label in zip(fig.subplots(1, 2), ("loss", "accuracy"), ("Loss", "Accuracy"), strict=False):
        drawn = False
        for key, name in ((metric, "train"), (f"val_{metric}", "validation")):
            values = history.get(key)
            if values is None or len(values) == 0:
                continue
            # Markers, so a one-epoch run still shows its single point.
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=4, label=name)
            drawn = True
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if drawn:
            # Half-epoch margins and min_n_ticks=1: otherwise one epoch gets ticks 0.95, 0.96, ...
            ax.set_xlim(0.5, epochs + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            ax.grid(alpha=0.3)
            ax.legend()
        else:
            _write_centered(ax, f"no {metric} recorded")
    _save(fig, path)


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "Confusion matrix",
) -> None:
    """Draw the confusion matrix as a heatmap with each cell's count written in it."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    if matrix.shape != (n, n):
        raise ValueError(f"matrix has shape {matrix.shape}; expected ({n}, {n}) for {n} class names")
    side = max(5.0, 0.55 * n + 2.5)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="count")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        # White on dark cells; zeros in grey so the few mistakes stand out.
        color = "white" if count > threshold else ("0.6" if count == 0 else "black")
        # Out of the layout: inside their cells they cannot overlap anything, and measuring each of them for
        # the constrained layout costs more than the rest of the figure.
        ax.text(col, row, f"{count:g}", ha="center", va="center", color=color, fontsize=8, in_layout=False)
    ticks = np.arange(n)
    # Long names (Fashion-MNIST) would overlap unrotated; digits read better upright.
    if max((len(str(name)) for name in class_names), default=0) > 2:
        ax.set_xticks(ticks, labels=class_names, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(ticks, labels=class_names)
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    _save(fig, path)


def plot_misclassified(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    max_images: int = 25,
) -> None:
    """Draw the most confident mistakes among all `images`, or a note that there are none."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    if not len(images) == len(y_true) == len(y_pred) == len(confidence):
        raise ValueError(
            f"got {len(images)} images, {len(y_true)} y_true, {len(y_pred)} y_pred "
            f"and {len(confidence)} confidences; expected one of each per image"
        )
    wrong = np.flatnonzero(y_true != y_pred)
    shown = _pick_mistakes(y_true, y_pred, confidence, max_images)
    if len(shown) == 0:
        fig = Figure(figsize=(5, 2.5), layout="constrained")
        ax = fig.subplots()
        _write_centered(ax, f"No misclassified images\n(0 of {len(images)})", fontsize=14)
        _save(fig, path)
        return

    cols = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    height = 2.0 * rows + 0.7  # 0.7 in on top: the figure's title, then a cell title of up to two lines
    fig = Figure(figsize=(max(1.9 * cols, 5.0), height))
    # One Axes showing one montage, its cells titled by text: an Axes per image costs its ticks, spines and
    # layout each time, several times the drawing of the images themselves.
    ax = fig.add_axes((0.01, 0.01, 0.98, 1 - 0.7 / height - 0.01))
    vmax = 255 if np.issubdtype(images.dtype, np.integer) else 1.0
    montage, cell_height, cell_width, title = _montage(images[shown], rows, cols, blank=vmax)
    ax.imshow(montage, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
    for slot, index in enumerate(shown):
        row, col = divmod(slot, cols)
        ax.text(
            (col + 0.5) * cell_width,
            row * cell_height + title - 1,  # just above the image, in its title band
            _describe_mistake(class_names, y_true[index], y_pred[index], confidence[index]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_axis_off()
    fig.suptitle(f"{len(shown)} most confident of {len(wrong)} misclassified (of {len(images)} images)")
    _save(fig, path)


def plot_test_results(
    folder: Path,
    matrix: np.ndarray,
    images: np.ndarray,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    title: str = "Confusion matrix",
) -> None:
    """confusion_matrix.png and misclassified.png in `folder`, from the test set's predicted probabilities."""
    plot_confusion_matrix(matrix, class_names, folder / "confusion_matrix.png", title=title)
    predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    plot_misclassified(images, y_true, predicted, confidence, class_names, folder / "misclassified.png")


def _montage(images: np.ndarray, rows: int, cols: int, blank: float) -> tuple[np.ndarray, int, int, int]:
    """`images` laid out `rows` x `cols` on a background of `blank` (white), each cell with room for its title
    above the image; returns the montage, a cell's height and width and its title band's height, in pixels."""
    height, width = images.shape[1:3]
    gap, title = max(1, width // 14), height // 2  # a cell's margins, and the band its title sits in
    cell_height, cell_width = title + height + gap, width + 2 * gap
    montage = np.full((rows * cell_height, cols * cell_width, *images.shape[3:]), blank, dtype=images.dtype)
    for slot, image in enumerate(images):
        row, col = divmod(slot, cols)
        top, left = row * cell_height + title, col * cell_width + gap
        montage[top : top + height, left : left + width] = image
    return montage, cell_height, cell_width, title


def _pick_mistakes(y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, max_images: int) -> np.ndarray:
    """Indices of at most `max_images` mistakes, most confident first."""
    wrong = np.flatnonzero(y_true != y_pred)
    # The most confident mistakes tell the most about what the model got wrong.
    return wrong[np.argsort(-confidence[wrong], kind="stable")][: max(max_images, 0)]


def _describe_mistake(class_names: Sequence[str], true: int, pred: int, confidence: float) -> str:
    """Cell title "true 7 / pred 2 (0.93)"; long class names go on two lines."""
    title = f"true {class_names[true]} / pred {class_names[pred]} ({confidence:.2f})"
    return title.replace(" / ", "\n") if len(title) > 24 else title


def plot_sweep_summary(table: pd.DataFrame, swept: Sequence[str], objective: str, path: str | os.PathLike[str]) -> None:
    """The objective against each swept key: one point per job, mean and std where values repeat."""
    done = table[table["status"] == "completed"]
    keys = list(swept) or ["job"]
    # At least 6 inches: the title of a one-key sweep must fit (constrained layout does not shrink a suptitle).
    fig = Figure(figsize=(max(6.0, 4.2 * len(keys)), 3.8), layout="constrained")
    failed = len(table) - len(done)
    fig.suptitle(
        f"{objective} of {len(done)} completed jobs" + (f"\n({failed} not completed, not shown)" if failed else ""),
        fontsize=11,
    )
    for ax, key in zip(np.atleast_1d(fig.subplots(1, len(keys))), keys, strict=False):
        ax.set_xlabel(key)
        ax.set_ylabel(objective)
        if done.empty:
            _write_centered(ax, "no completed job")
            continue
        values = done[key].tolist()
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            x = np.asarray(values, dtype=float)
            if x.min() > 0 and x.max() / x.min() >= 20:
                ax.set_xscale("log")  # learning rates and the like span decades
            elif all(isinstance(v, int) for v in values):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # seeds, folds, epochs
        else:
            categories = sorted({str(v) for v in values})
            x = np.array([categories.index(str(v)) for v in values], dtype=float)
            ax.set_xticks(range(len(categories)), categories, rotation=30 if len(categories) > 4 else 0)
        y = done[objective].to_numpy(dtype=float)
        ax.scatter(x, y, alpha=0.6, label="job")
        points = {value: y[x == value] for value in np.unique(x)}
        if any(len(ys) > 1 for ys in points.values()):
            xs = sorted(points)
            ax.errorbar(
                xs,
                [points[v].mean() for v in xs],
                yerr=[points[v].std(ddof=1) if len(points[v]) > 1 else 0 for v in xs],
                color="black",
                marker="_",
                markersize=14,
                capsize=4,
                linestyle="none",
                label="mean ± std",
            )
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    _save(fig, path)


def _write_centered(ax: Axes, text: str, fontsize: float = 11) -> None:
    """Put a note where a plot would have been."""
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=fontsize, transform=ax.transAxes)
    ax.set_axis_off()


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Save `fig` atomically; the format comes from the path's suffix."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI))
