"""The core install trains and evaluates without any extra, and a command that needs one names it in one line."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_hydra.extras import EXTRAS, MissingExtra, missing_message, plugin_option_message, require_extra

ROOT = Path(__file__).resolve().parents[1]

# What the extras install, as Python sees it: their own modules and the packages they bring (fastapi brings
# starlette and pydantic, Optuna SQLAlchemy, MLflow Flask, scikit-learn and SciPy).
EXTRA_MODULES = sorted(
    {name.split(".")[0] for modules in EXTRAS.values() for name in modules if not name.startswith("hydra_plugins.")}
    | {"starlette", "pydantic", "pydantic_core", "multipart", "sqlalchemy", "flask", "sklearn", "scipy", "submitit"}
    | {"hydra_plugins.hydra_joblib_launcher", "hydra_plugins.hydra_submitit_launcher", "optuna_dashboard"}
)

# The modules that belong to an extra: they may import its packages at the top, since only its commands load them.
OF_AN_EXTRA = {
    "mnist_hydra/serving/api.py",
    "mnist_hydra/serving/inputs.py",
    "mnist_hydra/serving/schemas.py",
    "mnist_hydra/serving/worker.py",
    "hydra_plugins/mnist_hydra_plugins/_search.py",
    "mnist_hydra/search/shared.py",  # what a shared study promises: only the search extra's sweeper imports it
    "hydra_plugins/mnist_hydra_plugins/_ray.py",
}


def _top_level_imports(tree: ast.Module) -> set[str]:
    """The modules imported by the module's own body (not inside functions, not under `if TYPE_CHECKING`)."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Try):
            found |= _top_level_imports(ast.Module(body=node.body, type_ignores=[]))
    return found


def test_no_core_module_imports_an_extra_at_the_top():
    offenders = {}
    for path in [*ROOT.joinpath("mnist_hydra").rglob("*.py"), *ROOT.joinpath("hydra_plugins").rglob("*.py")]:
        relative = path.relative_to(ROOT).as_posix()
        if relative in OF_AN_EXTRA:
            continue
        imported = _top_level_imports(ast.parse(path.read_text(encoding="utf-8")))
        extras = {name for name in imported if any(name == m or name.startswith(m + ".") for m in EXTRA_MODULES)}
        if extras:
            offenders[relative] = sorted(extras)
    assert offenders == {}, f"imports an extra's package at module level: {offenders}"


def test_the_line_names_the_missing_distributions_and_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    absent = {"fastapi", "python_multipart", "hydra_plugins.hydra_joblib_launcher"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a))
    assert missing_message("serve", "python -m mnist_hydra.serve") == (
        "python -m mnist_hydra.serve needs fastapi, python-multipart: pip install 'mnist-hydra[serve]'"
    )
    with pytest.raises(MissingExtra, match=r"^logger=x needs fastapi: pip install 'mnist-hydra\[serve\]'$"):
        require_extra("serve", "logger=x", ["fastapi"])
    require_extra("serve", "python -m mnist_hydra.serve", ["uvicorn"])  # installed: no error
    assert plugin_option_message("hydra/launcher/joblib") == (
        "hydra/launcher=joblib needs hydra-joblib-launcher: pip install 'mnist-hydra[launchers]'"
    )
    assert plugin_option_message("hydra/launcher/submitit_slurm") is None  # installed
    assert plugin_option_message("model/resnet") is None  # not an extra's option


def test_every_extra_in_the_code_is_an_extra_of_the_package():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(declared), set(EXTRAS) - set(declared)
    for extra, modules in EXTRAS.items():
        pinned = " ".join(declared[extra]).lower()
        for distribution in modules.values():
            assert distribution in pinned, f"{distribution} is not in the {extra} extra"
    assert declared["all"] == [f"mnist-hydra[{','.join(sorted(EXTRAS))}]"]
    assert "mnist-hydra[all]" in declared["test"]


# In a fresh process with every extra's package made unimportable: the apps' own functions, one after another.
CORE_ONLY = """
import contextlib, io, json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` now raises ImportError, as on a core install
from mnist_hydra.apps import evaluate, predict, serve, train
results = {{}}
def call(key, app, *argv):
    sys.argv = [key, *argv]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app.main()
        except SystemExit as stop:
            code = stop.code
    results[key] = {{"code": code, "out": out.getvalue(), "err": err.getvalue()}}
call("cfg", train, "--cfg", "job")
call("train", train, *{train!r})
call("evaluate", evaluate, "run={run}")
call("predict", predict, "run={run}", "images={tmp}/seven.png")
call("sweep", train, "--multirun", *{train!r}[:-1], "seed=1,2", "hydra.sweep.dir={tmp}/basic")
call("serve", serve, "run={run}")
call("mlflow", train, "logger=mlflow", "hydra.run.dir={tmp}/mlflow")
call("joblib", train, "--multirun", "hydra/launcher=joblib", "hydra.sweep.dir={tmp}/sweep")
print(json.dumps(results))
"""


@pytest.mark.slow
def test_the_core_install_trains_evaluates_predicts_sweeps_and_names_the_extra_it_lacks(tmp_path, mnist_dir):
    """Every app in a process that cannot import an extra. In the default suite: test_no_core_module_imports_an_
    extra_at_the_top and test_the_line_names_the_missing_distributions_and_the_extra."""
    from PIL import Image

    from mnist_hydra.data.idx_format import read_idx

    digits = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    seven = next(i for i, label in enumerate(read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")) if label == 7)
    Image.fromarray(255 - digits[seven]).save(tmp_path / "seven.png")  # dark ink on white paper
    run = tmp_path / "run"
    # The smallest real run: the MLP on 300 images, scored on 100, validated on 600.
    train = ["model=mlp", "trainer.epochs=1", "trainer.verbose=0", "data.train_limit=300", "data.test_limit=100"]
    train += ["data.val_split=0.01"]
    script = CORE_ONLY.format(blocked=EXTRA_MODULES, train=[*train, f"hydra.run.dir={run}"], run=run, tmp=tmp_path)
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "MNIST_HYDRA_DATA": str(mnist_dir), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    apps = json.loads(result.stdout.splitlines()[-1])
    assert apps["cfg"]["code"] == 0 and "name: cnn" in apps["cfg"]["out"], apps["cfg"]
    assert apps["train"]["code"] == 0, apps["train"]["err"][-2000:]
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert apps["evaluate"]["code"] == 0 and "on 100 mnist test images" in apps["evaluate"]["out"], apps["evaluate"]
    assert apps["predict"]["code"] == 0 and "seven.png" in apps["predict"]["out"], apps["predict"]
    assert apps["sweep"]["code"] == 0, apps["sweep"]["err"][-2000:]
    assert len((tmp_path / "basic" / "sweep_results.csv").read_text().splitlines()) == 3  # header and two jobs
    for key, line in [
        ("serve", "mnist_hydra.serve: error: python -m mnist_hydra.serve needs fastapi, uvicorn, python-multipart: "),
        ("mlflow", "mnist_hydra: error: logger=mlflow needs mlflow: "),
        ("joblib", "mnist_hydra: error: hydra/launcher=joblib needs hydra-joblib-launcher: "),
    ]:
        assert apps[key]["code"] == 1, (key, apps[key])
        assert apps[key]["err"].startswith(line) and apps[key]["err"].count("\n") == 1, (key, apps[key]["err"])
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "sweep").exists()  # nothing half-made is left
