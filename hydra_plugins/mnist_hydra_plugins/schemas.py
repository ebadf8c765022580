"""A config source of mnist_hydra's typed schemas (`config_schema`, `schema/GROUP/NAME`), for the YAML defaults lists.

SchemaSearchPath puts it on the search path of every config composed from `pkg://mnist_hydra.conf`.
The nodes are built from mnist_hydra.config.schema_nodes when a config is composed, so the registries' builders
(plugins' included) are always current, and the source itself holds nothing that Hydra's per-group deep copy
of its config repository would have to copy.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin


class SchemaSource(ConfigSource):
    """mnist_hydra's schemas as Hydra configs: a group per folder of `schema/GROUP/NAME`, a config per schema."""

    @staticmethod
    def scheme() -> str:
        return "mnist-hydra-schemas"

    @staticmethod
    def _nodes() -> dict[str, Any]:
        from mnist_hydra.config import schema_nodes

        return schema_nodes()

    def load_config(self, config_path: str) -> ConfigResult:
        from omegaconf import OmegaConf

        name = self._normalize_file_name(config_path)[: -len(".yaml")]
        node = self._nodes().get(name)
        if node is None:
            raise ConfigLoadError(f"Config not found: {config_path}")
        return ConfigResult(
            config=OmegaConf.structured(node),
            path=self.full_path(),
            provider=self.provider,
            header={"package": None},
        )

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        prefix = config_path.strip("/")
        return prefix == "" or any(name.startswith(f"{prefix}/") for name in self._nodes())

    def is_config(self, config_path: str) -> bool:
        name = config_path.strip("/")
        return name.removesuffix(".yaml") in self._nodes()

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        prefix = config_path.strip("/")
        found: set[str] = set()
        for name in self._nodes():
            parent, _, _ = name.rpartition("/")
            if parent == prefix and results_filter in (None, ObjectType.CONFIG):
                found.add(name.rpartition("/")[2])
            head = f"{prefix}/" if prefix else ""
            if name.startswith(head) and "/" in name[len(head) :] and results_filter in (None, ObjectType.GROUP):
                found.add(name[len(head) :].split("/")[0])
        return sorted(found)


class SchemaSearchPath(SearchPathPlugin):
    """Puts the schema source on the search path of mnist_hydra's own configs, and of no other Hydra app."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if any(element.path == "pkg://mnist_hydra.conf" for element in search_path.get_path()):
            search_path.append(provider="mnist_hydra", path=f"{SchemaSource.scheme()}://mnist_hydra")
