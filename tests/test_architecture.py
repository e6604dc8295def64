"""The package's layers (docs/architecture.md), held by import-linter's contract in pyproject.toml.

``tools > analysis > the lecture's library > assets | fast > utils``: a module imports only from
its own layer and the layers below. The contract is checked on the package as it is, and on a
copy with a violation planted, to show that the check can fail.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the ``helper_lib`` found in ``root``, with ``root/pyproject.toml``."""
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(root),
                                                       "PATH": "/usr/bin:/bin"})


def test_the_package_keeps_its_layers():
    out = _lint(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


@pytest.fixture(scope="module")
def copy_of_the_package(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copytree(REPO / "helper_lib", root / "helper_lib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.j2"))
    return root


@pytest.mark.parametrize(("module", "planted", "expected"), [
    # the lecture's library imports a course tool
    ("data.py", "from .tools import cli", "helper_lib.data -> helper_lib.tools.cli"),
    # ... or the analysis, inside a function (function-level imports count)
    ("train.py", "def _f():\n    from .analysis import film", "helper_lib.train -> "
                                                             "helper_lib.analysis.film"),
    # the two bottom siblings import each other
    ("assets/downloads.py", "from ..fast import allocator",
     "helper_lib.assets.downloads -> helper_lib.fast.allocator"),
    # a new top-level module that no layer names (the contract is exhaustive)
    ("notes.py", "", "helper_lib.notes"),
])
def test_a_planted_violation_breaks_the_contract(copy_of_the_package, module, planted,
                                                  expected):
    path = copy_of_the_package / "helper_lib" / module
    before = path.read_text() if path.exists() else None
    path.write_text((before or "") + f"\n{planted}\n")
    try:
        out = _lint(copy_of_the_package)
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_text(before)
    assert out.returncode != 0, out.stdout
    assert "0 kept, 1 broken" in out.stdout
    assert expected in out.stdout
