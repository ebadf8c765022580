"""The wheel: it ships every config, the draw page and the Hydra plugins, and the installed app runs from another
directory (Hydra reads the configs from the package and finds our plugins in it, not in the source tree).
Run by .ci/run from the clone's root, with the environment's Python."""

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path.cwd()


def run_installed(code: str, site: Path, cwd: Path) -> str:
    """`python -c code` with only the unpacked wheel (not the source tree) providing the package; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        sys.exit(f"the wheel: {code!r} failed:\n{result.stderr[-3000:]}")
    first = result.stdout.splitlines()[0]
    if not first.startswith(str(site)):
        sys.exit(f"the wheel: the package came from {first}, not from the installed wheel in {site}")
    return result.stdout


with tempfile.TemporaryDirectory() as tmp:
    tmp_path = Path(tmp)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp, str(ROOT)], check=True)
    wheel = next(tmp_path.glob("mnist_hydra-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mnist_hydra" / "conf").rglob("*.yaml")}
    wanted |= {"mnist_hydra/serving/page.html", "mnist_hydra/py.typed"}  # the page GET / serves; PEP 561
    wanted |= {f"hydra_plugins/mnist_hydra_plugins/{name}.py" for name in ("optuna_sweeper", "ray_launcher")}
    if not wanted <= shipped:
        sys.exit(f"the wheel {wheel.name} lacks: {', '.join(sorted(wanted - shipped))}")

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere.mkdir()
    job = run_installed(
        "import runpy, sys, mnist_hydra; print(mnist_hydra.__file__); "
        "sys.argv = ['mnist_hydra', '--cfg', 'job', 'model=cnn_deep']; runpy.run_module('mnist_hydra', run_name='__main__')",
        site,
        elsewhere,
    )
    if "name: cnn_deep" not in job or "convs_per_block: 2" not in job:
        sys.exit(f"the wheel: --cfg job model=cnn_deep did not compose the packaged option:\n{job[-2000:]}")
    hydra = run_installed(
        "import runpy, sys, hydra_plugins.mnist_hydra_plugins as p; print(p.__file__); "
        "sys.argv = ['mnist_hydra', '--cfg', 'hydra', 'hparams_search=optuna', 'hydra/launcher=ray']; "
        "runpy.run_module('mnist_hydra', run_name='__main__')",
        site,
        elsewhere,
    )
    for target in ("optuna_sweeper.OptunaSweeper", "ray_launcher.RayLauncher"):
        if f"_target_: hydra_plugins.mnist_hydra_plugins.{target}" not in hydra:
            sys.exit(f"the wheel: Hydra did not find {target} in the installed package")
print(f"the wheel {wheel.name}: {len(wanted)} packaged files present; the app and its plugins run from it")
