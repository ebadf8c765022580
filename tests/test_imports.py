"""No import cycles: in the package, and between the benchmarks (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_graph(folder: Path, package: str | None) -> dict[str, set[str]]:
    """module -> the modules of the same tree it imports, anywhere in its body."""
    names = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(([package] if package else []) + list(parts))] = path
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {other for other in found if other in names and other != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk, each once (as the path that closes it)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for other in sorted(graph[node]):
            if state.get(other) == "open":
                found.append(path[path.index(other) :] + [other] if other in path else [node, other])
            elif other not in state:
                visit(other, path + [other])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


@pytest.mark.parametrize("folder, package", [("mnist_hydra", "mnist_hydra"), ("benchmarks", None)])
def test_no_import_cycles(folder, package):
    graph = module_graph(ROOT / folder, package)
    # A package's __init__ is imported by its modules' import anyway; only module-to-module edges count.
    graph = {
        name: {o for o in deps if not (name.startswith(o + ".") or o.startswith(name + "."))}
        for name, deps in graph.items()
    }
    assert cycles(graph) == []


def test_the_walk_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
