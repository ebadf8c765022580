"""What serving uses from the rest of mnist_hydra, imported in this one module.

The run-directory helpers still live in the old flat layout (evaluate.py, predict.py, data.py);
when they move to runs/rundir.py and data/, only these imports change.
"""

from mnist_hydra.artifacts import read_json, write_json
from mnist_hydra.data import DATASETS, DataConfig, load_splits
from mnist_hydra.errors import UserError
from mnist_hydra.evaluate import check_run_dir as require_run
from mnist_hydra.evaluate import load_model, read_run_config, typed_data_config
from mnist_hydra.predict import class_names_of as class_names
from mnist_hydra.preprocess import FIELD, ImageError, preprocess_bytes

__all__ = [
    "DATASETS", "DataConfig", "FIELD", "ImageError", "UserError", "class_names", "load_model", "load_splits",
    "preprocess_bytes", "read_json", "read_run_config", "require_run", "typed_data_config", "write_json",
]
