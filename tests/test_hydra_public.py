"""mnist_hydra and its Hydra plugins use Hydra and OmegaConf through their public API only: no import of
`hydra._internal`, no reading of stack frames, no attribute of Hydra's or OmegaConf's classes replaced.
Those insides change between Hydra releases without notice; a use of them breaks silently on an upgrade."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "mnist_hydra").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")])
FRAME_NAMES = {"tb_frame", "tb_next", "f_locals", "f_globals", "f_back", "f_code", "_getframe", "currentframe"}
PATCHED_MODULES = ("hydra", "omegaconf")


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Each name bound by an import in `tree`, mapped to the module it comes from."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
    return names


def _problems(path: Path) -> list[str]:
    return _problems_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def _problems_in(text: str, where: str) -> list[str]:
    tree = ast.parse(text, filename=where)
    imported = _imported_names(tree)
    found = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
        if any("._internal" in f".{module}" for module in modules):
            found.append(f"{where}:{node.lineno} imports Hydra's private hydra._internal")
        if isinstance(node, ast.Attribute) and node.attr in FRAME_NAMES:
            found.append(f"{where}:{node.lineno} reads stack frames (.{node.attr})")
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                    source = imported.get(target.value.id, "")
                    if source.split(".")[0] in PATCHED_MODULES:
                        found.append(f"{where}:{node.lineno} replaces {target.value.id}.{target.attr} of {source}")
    return found


def test_the_scan_covers_the_packages():
    assert len(SOURCES) > 20
    assert ROOT / "mnist_hydra" / "apps" / "boundary.py" in SOURCES


@pytest.mark.parametrize(
    "source, problem",
    [
        ("from hydra._internal.utils import get_args_parser\n", "hydra._internal"),
        ("import hydra._internal.utils\n", "hydra._internal"),
        ("from hydra import _internal\n", "hydra._internal"),
        ("def f(err):\n    return err.__traceback__.tb_frame.f_locals\n", "stack frames"),
        ("import sys\nsys._getframe(1)\n", "stack frames"),
        ("from hydra.core.config_store import ConfigStore\nConfigStore.__deepcopy__ = None\n", "replaces"),
        ("from omegaconf import OmegaConf\nOmegaConf.register = print\n", "replaces"),
    ],
)
def test_the_scan_finds_each_kind_of_use(source, problem):
    assert any(problem in line for line in _problems_in(source, "probe.py"))


def test_the_scan_passes_public_use():
    source = (
        "from hydra.core.override_parser.overrides_parser import OverridesParser\n"
        "from hydra.core.config_store import ConfigStore\n"
        "ConfigStore.instance().store(name='x', node={})\n"
    )
    assert _problems_in(source, "probe.py") == []


def test_no_module_uses_hydras_insides():
    problems = [line for path in SOURCES for line in _problems(path)]
    assert problems == []


def test_the_apps_flags_mirror_hydras_own():
    """Our copy of `@hydra.main`'s flags against Hydra's private parser, where this Hydra still has it: the
    test (never the apps) may look inside, so that a Hydra upgrade that adds or changes a flag is noticed."""
    utils = pytest.importorskip("hydra._internal.utils")
    from mnist_hydra.apps.hydra_cli import args_parser

    def flags(parser):
        return sorted(
            (tuple(a.option_strings), a.dest, a.nargs, tuple(a.choices or ()), a.const, type(a).__name__)
            for a in parser._actions
        )

    assert flags(args_parser()) == flags(utils.get_args_parser())
