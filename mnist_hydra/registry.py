"""Name -> builder registries: the one way a config's `name` becomes an object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from mnist_hydra.errors import ConfigError

B = TypeVar("B", bound=Callable[..., Any])


class Registry(Generic[B]):
    """Builders of one kind (datasets, models, optimizers), each with the schema of its config."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, B] = {}
        self._schemas: dict[str, type] = {}

    def register(self, name: str, schema: type) -> Callable[[B], B]:
        """Decorator: file `builder` under `name`; its config is checked against `schema`."""

        def add(builder: B) -> B:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice; registered: {', '.join(self.names())}")
            self._builders[name] = builder
            self._schemas[name] = schema
            return builder

        return add

    def get(self, name: str) -> B:
        """The builder registered as `name`."""
        self._require(name)
        return self._builders[name]

    def schema(self, name: str) -> type:
        """The config dataclass of the builder registered as `name`."""
        self._require(name)
        return self._schemas[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def _require(self, name: str) -> None:
        if name not in self._builders:
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names()) or 'none'}")
