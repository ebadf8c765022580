"""Every module and `python -m` command that the docs, docstrings and comments name exists, and none of them tells
development history: no issue numbers, no "the bug report"."""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXTS = sorted(
    {
        *ROOT.glob("mnist_hydra/**/*.py"),
        *ROOT.glob("mnist_hydra/conf/**/*.yaml"),
        *ROOT.glob("hydra_plugins/**/*.py"),
        *ROOT.glob("tests/*.py"),
        *ROOT.glob("benchmarks/*.py"),
        *ROOT.glob("docs/**/*.md"),
        *ROOT.glob("docs/hooks/*.py"),
        *ROOT.glob(".ci/*"),
        ROOT / "README.md",
        ROOT / "pyproject.toml",
        ROOT / "mkdocs.yml",
        ROOT / ".pre-commit-config.yaml",
    }
)
# A dotted name in our packages: mnist_hydra.serving.api, hydra_plugins.mnist_hydra_plugins.ray_launcher.RayLauncher.
DOTTED = re.compile(r"(?<![\w/.-])((?:mnist_hydra|hydra_plugins\.mnist_hydra_plugins)(?:\.[A-Za-z_]\w*)+)(?![\w-])")
# A command's module, in lower case: `python -m MODULE` is a placeholder.
COMMAND = re.compile(r"python3? -m ([a-z_]\w*(?:\.[A-Za-z_]\w*)*)")
# Names under mnist_hydra. that are no modules: the OmegaConf resolvers (apps/resolvers.py registers them) and the
# MLflow tags (tracking/loggers/mlflow.py writes mnist_hydra.<key>).
MLFLOW_TAGS = {"status", "job", "kind", "overrides", "run_dir", "git_commit", "NAME"}


def _resolvers() -> set[str]:
    source = (ROOT / "mnist_hydra" / "apps" / "resolvers.py").read_text()
    return set(re.findall(r'"mnist_hydra\.(\w+)"', source))


def _module_file(name: str) -> Path | None:
    """The source file of module `name` in this tree, or None."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _top_level_names(path: Path) -> set[str]:
    """What a module defines at its top: functions, classes, assignments, imports."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def resolves(name: str) -> bool:
    """Whether `name` is a module of this tree, or a module and then a name defined at its top (a class, a
    function, a constant; `__file__` and the like count)."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module = _module_file(".".join(parts[:cut]))
        if module is not None:
            rest = parts[cut:]
            return not rest or rest[0].startswith("__") or rest[0] in _top_level_names(module)
    return False


def runnable(module: str) -> bool:
    """Whether `python -m module` runs something: a module with a `__main__` block, or a package with __main__.py."""
    path = _module_file(module)
    if path is None:
        return False
    if path.name == "__init__.py":
        return (path.parent / "__main__.py").is_file()
    return "__main__" in path.read_text(encoding="utf-8")


# A path in this tree, from the root or from inside the package (runs/html_report.py): mnist_hydra/serving/api.py.
FOLDERS = ("mnist_hydra", "hydra_plugins", "tests", "benchmarks", "docs", ".ci")
PACKAGES = tuple(p.name for p in (ROOT / "mnist_hydra").iterdir() if (p / "__init__.py").is_file())
PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(map(re.escape, FOLDERS + PACKAGES))})/[\w./-]*\.(?:py|md|yaml))\b")


def test_every_file_named_exists():
    missing = {}
    for path in TEXTS:
        for match in PATH.finditer(path.read_text(encoding="utf-8")):
            name = match.group(1)
            if re.search(r"\b[A-Z][A-Z_]+\b", name):  # a placeholder: conf/NAME.yaml
                continue
            if not (ROOT / name).exists() and not (ROOT / "mnist_hydra" / name).exists():
                missing.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    assert missing == {}, f"named but not there: {missing}"


def named() -> dict[str, set[str]]:
    """Every dotted name of ours and every `python -m` target in the texts -> the files naming it."""
    found: dict[str, set[str]] = {}
    not_modules = {f"mnist_hydra.{word}" for word in MLFLOW_TAGS | _resolvers()}
    for path in TEXTS:
        if path.name == Path(__file__).name:  # its own examples of names that do not resolve
            continue
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT).as_posix()
        for match in DOTTED.finditer(text):
            if match.group(1) not in not_modules:
                found.setdefault(match.group(1), set()).add(where)
        for match in COMMAND.finditer(text):
            found.setdefault(f"python -m {match.group(1)}", set()).add(where)
    return found


def test_every_module_and_command_named_exists():
    missing = {}
    for name, where in named().items():
        if name.startswith("python -m "):
            module = name.removeprefix("python -m ")
            ours = module.split(".")[0] in ("mnist_hydra", "benchmarks", "tests")
            exists = runnable(module) if ours else importlib.util.find_spec(module.split(".")[0]) is not None
        else:
            exists = resolves(name)
        if not exists:
            missing[name] = sorted(where)
    assert missing == {}, f"named but not there: {missing}"


@pytest.mark.parametrize(
    "name, exists",
    [
        ("mnist_hydra.serving.api", True),
        ("mnist_hydra.config.validate", True),
        ("mnist_hydra.tracking.fanout.Loggers", True),
        ("mnist_hydra.serving", True),
        ("mnist_hydra.runs.nothing_here", False),
        ("mnist_hydra.config.no_such_function", False),
    ],
)
def test_a_name_resolves_only_when_its_module_and_attribute_exist(name, exists):
    assert resolves(name) is exists


HISTORY = re.compile(r"\b(?:[Ii]ssue \d+|[Ii]ssues? #\d+|the bug report)")


def test_no_text_tells_development_history():
    told = {
        path.relative_to(ROOT).as_posix(): HISTORY.findall(path.read_text(encoding="utf-8"))
        for path in TEXTS
        if path.name != Path(__file__).name
    }
    assert {where: words for where, words in told.items() if words} == {}
