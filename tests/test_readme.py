"""The README and the docs tell the truth: the test command is CI's, the examples run, the errors are real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import call_app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def _blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [line for block in _blocks("") for line in block.splitlines() if "pytest" in line]
    assert len(commands) == 1, commands
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci_lines


def test_the_readme_links_only_to_docs_pages_that_exist():
    links = re.findall(r"\]\(((?:docs/)[^)#]*)(#[^)]*)?\)", README)
    assert len(links) >= 10, links
    for path, anchor in links:
        assert (ROOT / path).exists(), f"the README links to {path}, which is not there"
        if anchor:  # the heading's id as the site's toc (and GitHub) makes it: lower case, punctuation out, spaces to -
            headings = re.findall(r"^#+ (.*)$", (ROOT / path).read_text(), flags=re.M)
            slugs = {re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}
            assert anchor[1:] in slugs, f"the README links to {path}{anchor}: no such heading there"
    assert not re.findall(r"\]\(#", README), "a README anchor: its sections moved into docs/"


def test_the_docs_home_page_repeats_the_readme_install_command():
    for line in (line for block in _blocks("", (DOCS / "index.md").read_text()) for line in block.splitlines()):
        assert line in README, line


@pytest.mark.parametrize(
    "override, page",
    [
        ("trainer.epochs=0", "running.md"),
        ("model=resnet9000", "running.md"),
        ("logger=[tensorboard,wandb]", "tracking.md"),
    ],
)
def test_docs_error_examples_are_what_the_app_prints(tmp_path, override, page):
    text = (DOCS / page).read_text()
    shown = re.search(rf"\$ python -m mnist_hydra {re.escape(override)}\n(.*)\n", text).group(1)
    result = call_app(override, cwd=tmp_path)
    assert result.stderr.strip() == shown


def test_adding_a_model_as_the_docs_show(tmp_path, mnist_dir, forget_plugins):
    """docs/extending.md's two no-fork ways, pasted into a user's folder and run with the page's own commands."""
    page = (DOCS / "extending.md").read_text()
    python = next(b for b in _blocks("python", page) if "MODELS.register" in b)
    module = re.search(r"# (\w+)\.py", python).group(1)
    (tmp_path / f"{module}.py").write_text(python)
    command = re.search(rf"python -m mnist_hydra (plugins=\[{module}\] .*)", page).group(1).split()
    result = call_app(
        *command,
        "trainer.epochs=1",
        "trainer.verbose=0",
        "data.train_limit=300",
        "data.test_limit=100",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env={"MNIST_HYDRA_DATA": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "run" / ".hydra" / "config.yaml").read_text())
    assert config["model"] == {"name": "lenet", "dense_units": 120} and config["plugins"] == [module]

    variant = next(b for b in _blocks("yaml", page) if "/schema/model/" in b)
    path = re.search(r"# (\S+\.yaml)", variant).group(1)
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(variant)
    command = re.search(r"python -m mnist_hydra (--config-dir .*)", page).group(1).split()
    result = call_app(*command, "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["model"] == {
        "name": "cnn",
        "filters": 8,
        "kernel_size": 3,
        "pool_size": 2,
        "dense_units": 16,
        "dropout": 0.0,
    }
