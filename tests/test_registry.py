from dataclasses import dataclass

import pytest

from mnist_hydra.errors import ConfigError
from mnist_hydra.registry import Registry


@dataclass
class Schema:
    name: str = "a"


@pytest.fixture
def registry() -> Registry:
    return Registry("widget")


def test_register_and_get_return_the_builder_and_schema(registry):
    @registry.register("a", schema=Schema)
    def build_a():
        return "built a"

    assert registry.get("a") is build_a
    assert registry.get("a")() == "built a"
    assert registry.schema("a") is Schema
    assert registry.names() == ["a"]
    assert "a" in registry and "b" not in registry


def test_names_are_sorted(registry):
    for name in ("zeta", "alpha", "mid"):
        registry.register(name, schema=Schema)(lambda: None)
    assert registry.names() == ["alpha", "mid", "zeta"]


def test_unknown_name_lists_the_registered_ones(registry):
    registry.register("alpha", schema=Schema)(lambda: None)
    registry.register("beta", schema=Schema)(lambda: None)
    with pytest.raises(ConfigError, match=r"unknown widget 'gamma'; registered: alpha, beta"):
        registry.get("gamma")
    with pytest.raises(ConfigError, match="unknown widget"):
        registry.schema("gamma")


def test_duplicate_name_is_an_error_and_keeps_the_first(registry):
    first = registry.register("alpha", schema=Schema)(lambda: 1)
    with pytest.raises(ValueError, match=r"widget 'alpha' is registered twice; registered: alpha"):
        registry.register("alpha", schema=Schema)(lambda: 2)
    assert registry.get("alpha") is first


def test_registries_are_independent():
    one, two = Registry("one"), Registry("two")
    one.register("x", schema=Schema)(lambda: None)
    assert two.names() == []
