"""The real entry point reaches model.fit through at most five frames of ours: the error boundaries, the launch
and the loggers' lifecycle are context managers, and every preparation step returns before the fit."""

from __future__ import annotations

import inspect
import logging
import runpy
import sys
from pathlib import Path

import keras
import pytest

from tests.conftest import SMALL_RUN

PACKAGE = Path(__file__).resolve().parents[1] / "mnist_hydra"
MAX_FRAMES = 5


class FitEntered(Exception):
    """Raised by the patched Model.fit: it travels out through every boundary as a bug would."""


def test_model_fit_is_at_most_five_frames_below_python_m_mnist_hydra(tmp_path, mnist_dir, monkeypatch):
    from hydra.core.global_hydra import GlobalHydra

    from mnist_hydra.runs import claims

    seen: list[inspect.FrameInfo] = []
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def fit(self, *args, **kwargs):
        seen.extend(inspect.stack()[1:])
        raise FitEntered()

    monkeypatch.setattr(keras.Model, "fit", fit)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_HYDRA_DATA", str(mnist_dir))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["mnist_hydra", *SMALL_RUN, f"hydra.run.dir={tmp_path}/run"])
    try:
        # A bug's exception ends the process the ordinary way: with its traceback, past every boundary.
        with pytest.raises(FitEntered):
            runpy.run_module("mnist_hydra", run_name="__main__")
    finally:
        claims.release()
        GlobalHydra.instance().clear()
        for handler in root.handlers[:]:  # Hydra's job logging: the run's log file and the console
            root.removeHandler(handler)
            if isinstance(handler, logging.FileHandler):
                handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    ours = [f"{Path(f.filename).relative_to(PACKAGE.parent)}:{f.lineno} {f.function}" for f in seen if _ours(f)]
    assert ours, "model.fit was not reached from the entry point"
    assert ours[-1].startswith("mnist_hydra/__main__.py:"), ours
    assert len(ours) <= MAX_FRAMES, "frames of mnist_hydra under model.fit:\n" + "\n".join(ours)
    # The run directory held no result: the boundary removed it, as for any failure.
    assert not (tmp_path / "run").exists()


def _ours(frame: inspect.FrameInfo) -> bool:
    return Path(frame.filename).resolve().is_relative_to(PACKAGE)
