"""The project as published (:mod:`helper_lib.assets.project`): the version and the public
address are written once and everything agrees with them, the dependencies are ranges locked by
requirements.txt, and every notebook opens with the install cell, which costs nothing where
helper_lib is installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

import helper_lib
from helper_lib.assets import project

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_version_is_one_number():
    assert helper_lib.__version__ == project.VERSION == version("helper_lib")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"] == \
        "helper_lib.assets.project.VERSION"


def test_dependencies_are_ranges_and_requirements_txt_is_an_exact_lock():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = pyproject["project"]["dependencies"]
    assert all(">=" in d and "==" not in d for d in deps), deps
    assert "torch>=2.4" in deps  # is_autocast_enabled("cpu") and CPU fused Adam need 2.4
    lines = [line.split("#")[0].strip() for line in
             (REPO / "requirements.txt").read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("-")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^ ]*", p) for p in pins), pins
    for dep in deps:
        name = re.split(r"[<>=]", dep)[0]
        assert any(p.lower().startswith(f"{name.lower()}==") for p in pins), f"{name} unpinned"


def test_the_public_address_is_written_once_and_everything_agrees():
    """The install cells, the README's launch links, pyproject's URLs and the download address
    all come from helper_lib.assets.project.REPOSITORY."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["urls"]["Repository"] == project.REPOSITORY
    assert project.pretrained_base_url().startswith(project.REPOSITORY + "/raw/v")
    readme = (REPO / "README.md").read_text()
    for path in NOTEBOOKS:
        assert project.colab_url(path.name) in readme, path.name
        assert project.binder_url(path.name) in readme, path.name
        install = "".join(json.loads(path.read_text())["cells"][_first_code(path)]["source"])
        assert f'"{project.install_source()}"' in install, path.name
    # No other address of a GitHub repository of ours anywhere in the notebooks or README.
    owner = project.REPOSITORY.removeprefix("https://github.com/").split("/")[0]
    for path in [*NOTEBOOKS, REPO / "README.md", REPO / "binder" / "requirements.txt"]:
        if not path.exists():
            continue
        for found in re.findall(rf"github\.com/{re.escape(owner)}/[\w.-]+", path.read_text()):
            assert found == project.REPOSITORY.removeprefix("https://"), (path.name, found)


def _first_code(path: Path) -> int:
    cells = json.loads(path.read_text())["cells"]
    return next(i for i, c in enumerate(cells) if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_opens_with_the_install_cell_hidden_from_the_slides(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    install, params = code[0], code[1]
    assert install["metadata"]["tags"] == ["install"]
    assert install["metadata"]["slideshow"]["slide_type"] == "skip"
    assert "parameters" in params["metadata"]["tags"]
    source = "".join(install["source"])
    assert 'find_spec("helper_lib") is None' in source
    assert '"-c", pins.name' in source, "the machine's torch is kept by a constraint"


def test_the_install_cell_costs_nothing_where_helper_lib_is_installed():
    source = "".join(json.loads(NOTEBOOKS[0].read_text())["cells"][_first_code(NOTEBOOKS[0])]
                     ["source"])
    out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout == "" and out.stderr == ""
