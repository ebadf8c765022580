"""The docs site: the configuration reference lists every key of every schema, and the pages' links hold.

The site itself is built once, by .ci/run (python -m zensical build --strict), not here."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOK = DOCS / "hooks" / "config_reference.py"


@pytest.fixture(scope="module")
def reference():
    """docs/hooks/config_reference.py, loaded from its file."""
    spec = importlib.util.spec_from_file_location("config_reference", HOOK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def expected_sections() -> dict[str, tuple[type, str]]:
    """Section title -> (schema, key prefix), found here from the registries and apps, not from the generator."""
    from mnist_hydra.apps.evaluate import EvaluateConfig
    from mnist_hydra.apps.export import ExportConfig
    from mnist_hydra.apps.predict import PredictConfig
    from mnist_hydra.apps.serve import ServeConfig
    from mnist_hydra.config import Config, TrainerConfig
    from mnist_hydra.data.datasets import DATASETS
    from mnist_hydra.models.networks import MODELS
    from mnist_hydra.models.optimizers import OPTIMIZERS
    from mnist_hydra.tracking.loggers import LOGGERS

    found = {"python -m mnist_hydra: the top level": (Config, ""), "trainer": (TrainerConfig, "trainer.")}
    for group, registry in (("data", DATASETS), ("model", MODELS), ("optimizer", OPTIMIZERS)):
        found.update({f"{group}={name}": (registry.schema(name), f"{group}.") for name in registry.names()})
    found.update({f"logger={name}": (LOGGERS.schema(name), f"logger.{name}.") for name in LOGGERS.names()})
    for app, schema in (
        ("evaluate", EvaluateConfig),
        ("predict", PredictConfig),
        ("serve", ServeConfig),
        ("export", ExportConfig),
    ):
        found[f"python -m mnist_hydra.{app}"] = (schema, "")
    return found


def leaf_keys(schema: type, prefix: str) -> list[str]:
    """Every settable key of `schema`: a nested schema (trainer.early_stopping, serve) by its own keys."""
    from mnist_hydra.config import EarlyStoppingConfig
    from mnist_hydra.serving.settings import ServeSettings

    keys = []
    for f in dataclasses.fields(schema):
        nested = {"early_stopping": EarlyStoppingConfig, "serve": ServeSettings}.get(f.name)
        keys += leaf_keys(nested, f"{prefix}{f.name}.") if nested else [f"{prefix}{f.name}"]
    return keys


def test_every_key_of_every_schema_is_in_the_reference(reference):
    sections = {s.title: s for s in reference.sections()}
    expected = expected_sections()
    assert set(expected) <= set(sections), set(expected) - set(sections)
    page = reference.render()
    for title, (schema, prefix) in expected.items():
        rows = {r.key: r for r in sections[title].rows}
        for key in leaf_keys(schema, prefix):
            assert key in rows, f"{title}: {key} is not in the reference"
            row = rows[key]
            assert row.type and row.default and row.meaning, (title, row)
            assert f"| `{key}` | {row.type} | {row.default} | " in page, (title, key)


def test_the_reference_shows_types_defaults_and_the_source_comments(reference):
    rows = {(s.title, r.key): r for s in reference.sections() for r in s.rows}
    patience = rows["trainer", "trainer.early_stopping.patience"]
    assert (patience.type, patience.default) == ("int or null", "`null`")
    assert patience.meaning == "epochs in a row without improvement that end training; null = never stop early"
    # A comment on the lines above the field, and one inherited from the base schema (OptimizerConfig).
    assert rows["trainer", "trainer.inter_op_threads"].meaning.startswith("Ops run side by side")
    assert rows["optimizer=sgd", "optimizer.lr"].default == "`0.01`"
    assert rows["optimizer=adamw", "optimizer.plateau_patience"].meaning.startswith("plateau: epochs in a row")
    assert rows["python -m mnist_hydra.serve", "serve.max_pixels"].default == "`16777216`"
    assert rows["python -m mnist_hydra.export", "format"].default == "required"
    assert rows["model=cnn_deep", "model.filters"].default == "`[32, 64]`"
    assert rows["data=fashion_mnist", "data.name"].default == "`fashion_mnist`"


@dataclass
class _Base:
    width: int = 3  # the base's meaning


@dataclass
class _Schema(_Base):
    # Said on the line above,
    # over two lines.
    depth: int | None = None
    names: list[str] = field(default_factory=lambda: ["a", "b"])  # names, in order
    ratio: float = 0.5


def test_a_new_field_reaches_the_reference_with_its_comment(reference):
    rows = {r.key: r for r in reference.rows(_Schema, "x.")}
    assert rows["x.width"] == reference.Row("x.width", "int", "`3`", "the base's meaning")
    assert rows["x.depth"] == reference.Row(
        "x.depth", "int or null", "`null`", "Said on the line above, over two lines."
    )
    assert rows["x.names"] == reference.Row("x.names", "list of string", "`[a, b]`", "names, in order")
    assert rows["x.ratio"].meaning == ""  # what test_every_key_of_every_schema_is_in_the_reference refuses


def test_every_option_and_experiment_yaml_is_described(reference):
    page = reference.render()
    conf = ROOT / "mnist_hydra" / "conf"
    for group in ("data", "model", "optimizer", "trainer", "logger"):
        for path in (conf / group).glob("*.yaml"):
            assert f"`{group}={path.stem}`: " in page, path
    for path in (conf / "experiment").glob("*.yaml"):
        assert f"`+experiment={path.stem}`: " in page, path
    # trainer=fastest's YAML changes trainer and optimizer keys, each with the comment on its line.
    assert "| `trainer.batch_size` | `1024` | 53 steps an epoch" in page
    assert "| `optimizer.lr` | `0.004` | sqrt(1024 / 64) x Adam's 1e-3 |" in page


def test_the_configuration_page_has_the_marker_the_hook_fills(reference):
    assert reference.MARKER in (ROOT / "docs" / reference.PAGE).read_text()


def test_the_extension_fills_the_marker_as_the_site_build_does(reference):
    """The build (.ci/run: python -m zensical build --strict) loads the generator as a Markdown extension."""
    import markdown

    assert "docs.hooks.config_reference" in yaml.safe_load((ROOT / "mkdocs.yml").read_text())["markdown_extensions"]
    page = (ROOT / "docs" / reference.PAGE).read_text()
    html = markdown.Markdown(extensions=[reference.makeExtension(), "tables"]).convert(page)
    assert "<td><code>trainer.early_stopping.patience</code></td>" in html
    assert reference.MARKER not in html


def _slugs(page: Path) -> set[str]:
    """The ids of a page's headings, as the toc extension (and GitHub) makes them."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(), flags=re.M)
    return {re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}


def test_every_link_between_the_pages_reaches_a_page_and_a_heading():
    """What the strict site build refuses, checked on the Markdown: a link to a missing page or #heading."""
    checked = 0
    for page in DOCS.glob("*.md"):
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            linked = DOCS / target if target else page
            assert linked.exists(), f"{page.name} links to {target}, which is not there"
            if anchor and linked.suffix == ".md":
                assert anchor in _slugs(linked), f"{page.name} links to {target}#{anchor}: no such heading there"
            checked += 1
    assert checked >= 20, checked


def test_every_page_is_in_the_nav():
    nav = {next(iter(entry.values())) for entry in yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]}
    assert {page.name for page in DOCS.glob("*.md")} == nav
