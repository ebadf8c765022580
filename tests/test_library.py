"""The library below the apps: Hydra-free, and train_and_evaluate callable in-process on a shrunken config."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from mnist_hydra.config import validate
from mnist_hydra.errors import ConfigError, DataError, OutputError

PACKAGE = Path(__file__).resolve().parents[1] / "mnist_hydra"
# The apps are the Hydra boundary; config.py files the schemas in Hydra's ConfigStore and validates with OmegaConf.
ALLOWED = {PACKAGE / "config.py"}
# The MLP: the library seam is the point, not the network.
TINY = ["model=mlp", "trainer.epochs=1", "trainer.verbose=0", "data.train_limit=1000", "data.test_limit=300"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_apps_and_the_config_module_import_hydra_or_omegaconf():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "apps" not in path.relative_to(PACKAGE).parts
        and path not in ALLOWED
        and _imports(path) & {"hydra", "omegaconf"}
    ]
    assert offenders == []
    # ...and the check itself can fail: the apps do import Hydra.
    assert "hydra" in _imports(PACKAGE / "apps" / "train.py")


@pytest.fixture
def small_config(compose_config, mnist_dir, tmp_path):
    def make(*overrides: str):
        return validate(compose_config(*TINY, f"data.root={mnist_dir}", *overrides))

    return make


def test_train_and_evaluate_runs_in_process_and_leaves_every_artifact(small_config, tmp_path):
    from mnist_hydra.training.run import train_and_evaluate

    workdir = tmp_path / "run"
    metrics = train_and_evaluate(small_config(), workdir, overrides=["trainer.epochs=1"])
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 1
    assert (metrics["train_images"], metrics["test_images"]) == (1000, 300)
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1; the MLP's one epoch on 1,000 images reaches about 0.7
    on_disk = json.loads((workdir / "metrics.json").read_text())
    assert on_disk["test_accuracy"] == metrics["test_accuracy"]
    assert np.asarray(on_disk["confusion_matrix"]).sum() == 300
    for name in (
        "provenance.json",
        "history.csv",
        "model.keras",
        "training_curves.png",
        "confusion_matrix.png",
        "misclassified.png",
        "report.html",
    ):
        assert (workdir / name).is_file(), name
    assert json.loads((workdir / "provenance.json").read_text())["overrides"] == ["trainer.epochs=1"]
    assert not (workdir / "checkpoints").exists()  # model.keras replaces them once the run is complete


def test_a_stopped_train_and_evaluate_gives_the_callers_signal_handlers_back(small_config, tmp_path, signal_at_step):
    import signal

    from mnist_hydra.errors import Interrupted
    from mnist_hydra.training.run import train_and_evaluate

    def mine(signum, frame):
        raise AssertionError("the caller's handler ran during training")

    signal.signal(signal.SIGTERM, mine)
    before = signal.getsignal(signal.SIGINT)
    signal_at_step(signal.SIGTERM, 1, 2)
    with pytest.raises(Interrupted):
        train_and_evaluate(small_config("data.train_limit=640"), tmp_path / "run")
    # The run held both while training and recording its stop; a notebook's next Ctrl-C is its own again.
    assert signal.getsignal(signal.SIGTERM) is mine
    assert signal.getsignal(signal.SIGINT) is before
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "interrupted"


def test_train_and_evaluate_checks_data_before_tensorflow_work(small_config, tmp_path):
    from mnist_hydra.training.run import train_and_evaluate

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"data.root={empty}"):
        train_and_evaluate(small_config(f"data.root={empty}"), tmp_path / "run")
    assert not (tmp_path / "run" / "provenance.json").exists()


def test_train_and_evaluate_refuses_an_output_path_under_a_file(small_config, tmp_path):
    from mnist_hydra.training.run import train_and_evaluate

    (tmp_path / "afile").write_text("x")
    with pytest.raises((OutputError, OSError)):
        train_and_evaluate(small_config(), tmp_path / "afile" / "run")


def test_no_training_image_left_is_a_one_line_error(small_config, tmp_path):
    from mnist_hydra.training.run import train_and_evaluate

    config = small_config("data.val_split=0.999999", "data.train_limit=null")
    with pytest.raises(DataError, match="no training images are left: data.val_split=0.999999"):
        train_and_evaluate(config, tmp_path / "run")


def test_few_images_and_a_batch_larger_than_the_data_are_one_warning_line_each(small_config, tmp_path, caplog):
    from mnist_hydra.data.splits import load_splits
    from mnist_hydra.training.run import check_sizes

    config = small_config("data.train_limit=5", "trainer.batch_size=100000")
    with caplog.at_level("WARNING"):
        check_sizes(config, load_splits(config.data, seed=0))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "training on only 5 images (data.train_limit=5, data.val_split=0.1): expect low accuracy",
        "trainer.batch_size=100000 is larger than the 5 training images: each epoch is one batch of 5",
    ]


def test_validate_refuses_what_the_library_cannot_build(compose_config):
    with pytest.raises(ConfigError, match=r"plugins=\[no_such_module\]: no module named no_such_module"):
        validate(compose_config("plugins=[no_such_module]"))
