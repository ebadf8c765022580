"""docs/architecture.md's map names every module of the tree, and only those: a new module gets its line, a removed
or renamed one loses it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP_HEADING = "## Every module"
# A line of the map: "- `apps/train.py`, `apps/evaluate.py`: what they do".
ENTRY = re.compile(r"`([\w/]+\.py)`")


def _mapped() -> set[str]:
    """The modules the map names, as paths from the repository's root."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    found: set[str] = set()
    for line in section.splitlines():
        if line.startswith("- "):
            head = line.split(": ", 1)[0]  # the names before the description
            found |= {
                name if name.startswith("hydra_plugins/") else f"mnist_hydra/{name}" for name in ENTRY.findall(head)
            }
    return found


def _holds_code(path: Path) -> bool:
    """Whether a module has more than a docstring (a package's __init__.py that only describes it does not)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def _modules() -> set[str]:
    """Every module of the package and of the Hydra plugins, as paths from the repository's root."""
    paths = [*ROOT.joinpath("mnist_hydra").rglob("*.py"), *ROOT.joinpath("hydra_plugins").rglob("*.py")]
    return {
        path.relative_to(ROOT).as_posix()
        for path in paths
        if "__pycache__" not in path.parts and (path.name != "__init__.py" or _holds_code(path))
    }


def test_the_map_names_every_module_and_only_those():
    mapped, modules = _mapped(), _modules()
    assert sorted(modules - mapped) == [], "modules without a line in docs/architecture.md's map"
    assert sorted(mapped - modules) == [], "lines of docs/architecture.md's map naming no module"


def test_a_line_s_names_are_read_from_before_its_description():
    assert ENTRY.findall(["- `apps/train.py`, `apps/evaluate.py`", "see `runs/rundir.py`"][0]) == [
        "apps/train.py",
        "apps/evaluate.py",
    ]
