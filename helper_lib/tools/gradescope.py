"""``python -m helper_lib autograder --out autograder.zip``: this grader as a Gradescope autograder.

Gradescope grades a "Programming Assignment" on its own machines: for every submission it starts
a fresh container of an Ubuntu image that it built once from the instructor's zip, puts the
student's files in ``/autograder/submission`` and runs ``/autograder/run_autograder``, which
must write ``/autograder/results/results.json`` (gradescope-autograders.readthedocs.io,
"Autograder Specifications"). :func:`build_autograder` writes that zip:

* ``setup.sh``: what Gradescope runs once, as root, to build the image: bubblewrap, Python and
  the course's exact pins (``requirements.txt`` of the clone, torch from PyTorch's CPU-only
  index) in a virtual environment of their own (:data:`VENV`, outside ``/autograder``), then
  ``python -m helper_lib.tools.gradescope setup`` (:func:`setup`): the datasets, fetched and
  checked against the package's sha256, and the models checked;
* ``run_autograder``: for each submission, ``python -m helper_lib.tools.gradescope run``
  (:func:`run`), which grades the one notebook of the submission with
  :func:`helper_lib.tools.grading.grade` (in its bubblewrap sandbox, as for a class) and writes
  its ``results.json`` with :func:`helper_lib.tools.lms.gradescope_results`; if even that
  fails, the script writes a score of 0 that says so, so that Gradescope always shows one;
* ``autograder.json``: the settings chosen when the zip was built (:class:`AutograderSettings`);
* the package itself, ``helper_lib/``, with ``pyproject.toml`` and ``data/pretrained/`` beside
  it, laid out as a clone: the grader runs from ``/autograder/source`` and finds the shipped
  models there, and nothing is installed into the Python that the sandbox mounts, so a
  submission never sees the checks (the sandbox's copy of helper_lib has a stub in their place).
  ``notebooks/`` holds each course notebook's title only, by which the grader recognises a
  notebook whose metadata a tool dropped.

The paths can be moved for a test: ``AUTOGRADER_ROOT`` (default ``/autograder``) and
``AUTOGRADER_PYTHON`` (default the virtual environment's Python) are read by both scripts.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..assets.project import CLONE_ROOT, VERSION

__all__ = ["DEFAULT_ROOT", "DEV_ONLY", "PYTHON_ENV", "ROOT_ENV", "SETTINGS_FILE", "TORCH_INDEX",
           "VENV", "AutograderSettings", "build_autograder", "failed_results",
           "grading_requirements", "main", "run", "setup"]

#: Where Gradescope puts everything (the working directory of ``run_autograder``).
DEFAULT_ROOT = "/autograder"
#: Moves :data:`DEFAULT_ROOT` (a test's simulated tree).
ROOT_ENV = "AUTOGRADER_ROOT"
#: The Python that ``run_autograder`` runs the grader with (default: :data:`VENV`'s).
PYTHON_ENV = "AUTOGRADER_PYTHON"
#: The virtual environment that ``setup.sh`` makes: outside ``/autograder``, since the sandbox
#: mounts the Python installation read-only at its own path.
VENV = "/opt/vae-grader"
#: The settings chosen when the zip was built, in its root (``/autograder/source``).
SETTINGS_FILE = "autograder.json"
#: PyTorch's index of CPU-only wheels: no CUDA libraries, which Gradescope's CPUs cannot use.
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
#: What ``requirements.txt`` pins for development and the site only: left out of the image
#: (the ONNX packages export the site's live explorer, issue #35; grading never imports them).
DEV_ONLY = frozenset({"jupyter", "jupyterlab-rise", "playwright", "pytest", "nbmake", "ruff",
                      "import-linter", "zizmor", "onnx", "onnxscript", "onnxruntime"})
#: Files that deflate by a few per cent at most (a torch checkpoint is a zip file itself).
_STORED = (".pt", ".npz", ".png", ".gif")
#: Every entry of the zip gets this time, so that the same inputs give the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==")


@dataclass(frozen=True)
class AutograderSettings:
    """What the zip's ``run_autograder`` grades with: the course notebooks it accepts (``None``:
    any), the time limit per submission, the memory limit per process, the visibility of the
    results (Gradescope's: ``visible``, ``after_due_date``, ``after_published``, ``hidden``),
    whether to grade without the sandbox's protections, and the helper_lib version that wrote
    the zip."""

    notebooks: tuple[str, ...] | None = None
    timeout: float = 300.0
    memory_mb: int = 4000
    visibility: str = "visible"
    unprotected: bool = False
    version: str = VERSION

    def to_json(self) -> str:
        """The settings as ``autograder.json`` holds them."""
        data = asdict(self)
        data["notebooks"] = list(self.notebooks) if self.notebooks is not None else None
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def read(cls, path: str | os.PathLike) -> AutograderSettings:
        """The settings in ``path`` (``autograder.json``).

        Raises:
            OSError: no such file. ValueError: not the settings' JSON.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object")
        notebooks = data.get("notebooks")
        return cls(notebooks=tuple(map(str, notebooks)) if notebooks else None,
                   timeout=float(data.get("timeout", 300)),
                   memory_mb=int(data.get("memory_mb", 4000)),
                   visibility=str(data.get("visibility", "visible")),
                   unprotected=data.get("unprotected") is True,
                   version=str(data.get("version", "")))


def grading_requirements(requirements: str) -> tuple[list[str], list[str]]:
    """``(torch's pins, the other pins)`` for the image, from the text of the clone's
    ``requirements.txt``: its exact pins less the editable install of helper_lib (the image runs
    the zip's copy) and :data:`DEV_ONLY`; ``torch`` and ``torchvision`` apart, since
    ``setup.sh`` installs them from :data:`TORCH_INDEX`. Comments are dropped.

    Raises:
        ValueError: a line that is no exact pin (``name==version``), or no torch pin.
    """
    torch, rest = [], []
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-e"):
            continue
        match = _NAME.match(line)
        if match is None:
            raise ValueError(f"requirements.txt: {line!r} is no exact pin (name==version)")
        name = match.group(1).lower().replace("_", "-")
        if name in DEV_ONLY:
            continue
        (torch if name in ("torch", "torchvision") else rest).append(line)
    if not any(_NAME.match(p).group(1).lower() == "torch" for p in torch):
        raise ValueError("requirements.txt pins no torch")
    return torch, rest


SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu 22.04 or
# 24.04). Written by `python -m helper_lib autograder` (helper_lib {version}); docs/grading.md.
#
# It installs bubblewrap (the grader's sandbox) and Python, puts the course's exact pins in a
# virtual environment of their own, {venv} (outside /autograder: the sandbox mounts the
# Python installation read-only), torch from PyTorch's CPU-only index, then fetches the
# datasets and checks the models. helper_lib is not installed: it runs from
# /autograder/source, so that the Python the sandbox mounts holds no copy of the checks.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$ROOT/source"
VENV="{venv}"
export DEBIAN_FRONTEND=noninteractive

apt-get update
apt-get install -y --no-install-recommends bubblewrap util-linux ca-certificates \\
    python3 python3-venv
PYTHON=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    apt-get install -y --no-install-recommends python3.11 python3.11-venv  # Ubuntu 22.04
    PYTHON=python3.11
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --no-cache-dir --upgrade pip
"$VENV/bin/python" -m pip install --no-cache-dir --index-url {torch_index} {torch}
"$VENV/bin/python" -m pip install --no-cache-dir -r "$SOURCE/requirements.txt"
"$VENV/bin/python" -m compileall -q "$SOURCE/helper_lib"
PYTHONPATH="$SOURCE" VAE_SMOKE=0 "$VENV/bin/python" -m helper_lib.tools.gradescope setup
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission, as root, in a fresh container. Written by
# `python -m helper_lib autograder` (helper_lib {version}); docs/grading.md.
#
# It grades the one notebook in /autograder/submission with helper_lib's grader (the notebook
# runs in a bubblewrap sandbox, and its answers are scored outside it) and writes
# /autograder/results/results.json. If the grader cannot write it, this script writes a score
# of 0 that says so. The output of this script is Gradescope's log for the instructor.
set -u
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{AUTOGRADER_PYTHON:-{venv}/bin/python}}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
export AUTOGRADER_ROOT="$ROOT" PYTHONPATH="$ROOT/source" VAE_SMOKE=0 MPLBACKEND=Agg
"$PYTHON" -m helper_lib.tools.gradescope run
status=$?
if [ ! -s "$RESULTS" ]; then
    echo "run_autograder: the grader wrote no results (exit status $status): a score of 0"
    cat > "$RESULTS" <<'JSON'
{failed}
JSON
fi
exit 0
"""

#: What a student reads when the grader could not run at all (the reason is in the log).
MACHINE_FAILURE = ("Your notebook could not be graded: the autograder failed before it could "
                   "score it. This is not about your work; your instructor can see the reason "
                   "in the autograder's log.")


def failed_results(output: str, visibility: str = "visible") -> dict[str, Any]:
    """A ``results.json`` that gives 0 points and says why in ``output`` (what the student
    reads): for a submission that cannot be graded, and for a grader that failed."""
    return {"score": 0.0, "output": output, "output_format": "text", "visibility": visibility,
            "stdout_visibility": "hidden", "tests": []}


def _course_titles() -> dict[str, str]:
    """Each course notebook's title (the clone's notebooks), by notebook; ``{}`` outside a
    clone."""
    import nbformat

    from .book import notebook_title
    from .exercises import NOTEBOOKS

    if CLONE_ROOT is None:
        return {}
    titles = {}
    for stem in NOTEBOOKS:
        path = CLONE_ROOT / "notebooks" / f"{stem}.ipynb"
        if path.is_file():
            titles[stem] = notebook_title(nbformat.read(path, as_version=4))
    return titles


def _title_notebook(stem: str, title: str) -> str:
    """A notebook that holds ``title`` and nothing else: the grader recognises a course notebook
    by its title where the metadata is gone (:func:`helper_lib.tools.grading.recognise`)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}", id="title")]  # not a random id
    nb.metadata["helper_lib"] = {"notebook": stem, "title_only": True}
    return nbformat.writes(nb)


def _add(zf: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
    info.create_system = 3  # Unix, so that unzip reads the permissions
    info.compress_type = (zipfile.ZIP_STORED if name.endswith(_STORED)
                          else zipfile.ZIP_DEFLATED)
    zf.writestr(info, data)


def build_autograder(out: str | os.PathLike, notebooks: Sequence[str] | None = None,
                     timeout: float = 300.0, memory_mb: int = 4000,
                     visibility: str = "visible", unprotected: bool = False,
                     log: Callable[[str], None] = print) -> Path:
    """Write Gradescope's autograder zip to ``out`` (see the module's docstring); returns it.

    ``notebooks`` (``--notebook``: ``03`` or ``03_logvar_trick``, repeatable) names the course
    notebooks the assignment accepts (default: any); ``timeout`` (seconds per submission) and
    ``memory_mb`` (per process) are the grader's limits; ``visibility`` is the results'
    (Gradescope's values); ``unprotected`` grades even where the container cannot run the
    sandbox, so that a submission runs as root beside the grader (unsafe: docs/grading.md).
    Built from a clone: it takes the exact pins of its ``requirements.txt``. The shipped models
    are checked against the package's sha256 as they are copied. The same inputs give the same
    bytes (every entry has the same time); ``out`` is written whole or not at all.

    Raises:
        GradingError: not in a clone, an unknown notebook or visibility, a limit out of range,
            ``out`` a folder.
    """
    from ..assets.pretrained import manifest, pretrained_file
    from .exercises import NOTEBOOKS
    from .grading import GradingError, expected_notebooks
    from .lms import VISIBILITIES

    expected = expected_notebooks(notebooks)
    if visibility not in VISIBILITIES:
        raise GradingError(f"--visibility {visibility!r} is none of {', '.join(VISIBILITIES)}")
    if timeout <= 0 or memory_mb < 500:
        raise GradingError("--timeout must be > 0 and --memory at least 500")
    if CLONE_ROOT is None or not (CLONE_ROOT / "requirements.txt").is_file():
        raise GradingError("build the autograder in a clone of the course's repository: its "
                           "requirements.txt holds the exact pins that the image installs")
    try:
        torch_pins, pins = grading_requirements((CLONE_ROOT / "requirements.txt").read_text())
    except ValueError as err:
        raise GradingError(str(err)) from None
    if Path(out).is_dir():
        raise GradingError(f"--out {out}: a folder; name the zip to write (autograder.zip)")
    settings = AutograderSettings(tuple(sorted(expected)) if expected else None, float(timeout),
                                  int(memory_mb), visibility, unprotected)
    import helper_lib

    package = Path(helper_lib.__file__).resolve().parent
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    fill = {"version": VERSION, "venv": VENV, "torch_index": TORCH_INDEX}
    failed = json.dumps(failed_results(MACHINE_FAILURE, visibility))
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _add(zf, "setup.sh", SETUP_SH.format(torch=" ".join(torch_pins), **fill).encode(), 0o755)
        _add(zf, "run_autograder", RUN_AUTOGRADER.format(failed=failed, **fill).encode(), 0o755)
        _add(zf, SETTINGS_FILE, settings.to_json().encode())
        _add(zf, "requirements.txt", ("# the course's exact pins for grading (torch and "
                                      "torchvision: setup.sh, from the CPU-only index)\n"
                                      + "".join(f"{p}\n" for p in torch_pins + pins)).encode())
        _add(zf, "pyproject.toml", b"# helper_lib's autograder: marks this folder as a checkout "
                                   b"(the models in data/ beside the package)\n")
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                _add(zf, f"helper_lib/{path.relative_to(package).as_posix()}", path.read_bytes())
        for name in sorted(manifest()):
            _add(zf, f"data/pretrained/{name}", pretrained_file(name).read_bytes())
        for stem, title in _course_titles().items():
            if title:
                _add(zf, f"notebooks/{stem}.ipynb", _title_notebook(stem, title).encode())
    partial.replace(out)
    graded = sorted(expected) if expected else sorted(NOTEBOOKS)
    points = ", ".join(f"{nb.split('_', 1)[0]}: {len(NOTEBOOKS[nb])}" for nb in graded)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): helper_lib {VERSION}, grading "
        f"{'notebook ' + ', '.join(graded) if expected else 'any course notebook'}, "
        f"{timeout:g} s and {memory_mb:,} MB per submission, results {visibility}"
        + (", WITHOUT the sandbox (--unprotected)" if unprotected else ""))
    log(f"points (one per exercise; the assignment's autograder points): {points}")
    return out


def _notebooks_in(folder: Path) -> list[Path]:
    """The notebooks of a submission: every ``*.ipynb`` below ``folder`` but those below hidden
    folders (``.ipynb_checkpoints``) and folders named ``*.ipynb``; links are kept, for the
    grader to refuse."""
    found = []
    for path in sorted(folder.rglob("*.ipynb")) if folder.is_dir() else []:
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in parts):
            continue
        if path.is_dir() and not path.is_symlink():
            continue
        found.append(path)
    return found


def _write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    partial.replace(path)


def _grade_one(notebook: Path, settings: AutograderSettings,
               log: Callable[[str], None]) -> dict[str, Any]:
    """Grade ``notebook`` alone, in a folder of its own, into its report."""
    from .grading import grade

    with tempfile.TemporaryDirectory(prefix="vae-gradescope-") as tmp:
        out = Path(tmp) / "out"
        grade([notebook], out, timeout=settings.timeout, memory_mb=settings.memory_mb, jobs=1,
              unprotected=settings.unprotected, notebooks=settings.notebooks, log=log)
        reports = sorted((out / "reports").glob("*.json"))
        if len(reports) != 1:
            raise RuntimeError(f"the grader wrote {len(reports)} reports, not one")
        return json.loads(reports[0].read_text(encoding="utf-8"))


def run(root: str | os.PathLike | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """What ``run_autograder`` does: grade the one notebook in ``ROOT/submission`` (``ROOT``:
    ``root``, else ``$AUTOGRADER_ROOT``, else ``/autograder``) with the settings of
    ``ROOT/source/autograder.json``, and write its ``results.json`` to
    ``ROOT/results/results.json`` (:func:`helper_lib.tools.lms.gradescope_results`: a test per
    exercise; the hints, never a reference). A submission without a notebook, or with several,
    gets 0 points and the reason; a grader that fails (a missing protection, say) gets 0 points,
    a line for the student and the reason in the log. Returns what it wrote."""
    from .grading import GradingError
    from .lms import gradescope_results

    root = Path(root if root is not None else os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
    results_path = root / "results" / "results.json"
    visibility = "visible"
    try:
        import helper_lib

        log(f"helper_lib {VERSION} from {Path(helper_lib.__file__).parent}")
        settings = AutograderSettings.read(root / "source" / SETTINGS_FILE)
        visibility = settings.visibility
        log(f"settings: {settings}")
        found = _notebooks_in(root / "submission")
        if not found:
            results = failed_results("No notebook (.ipynb file) was found in your submission: "
                                     "upload the notebook itself.", visibility)
        elif len(found) > 1:
            named = ", ".join(str(p.relative_to(root / "submission"))[:80] for p in found[:10])
            results = failed_results(f"Your submission holds {len(found)} notebooks ({named}"
                                     f"{' ...' if len(found) > 10 else ''}): upload exactly "
                                     "one.", visibility)
        else:
            report = _grade_one(found[0], settings, log)
            results = gradescope_results(report, visibility=visibility)
    except Exception as err:  # whatever happened, Gradescope gets a result that says so
        log("the grader failed:\n" + traceback.format_exc())
        if isinstance(err, GradingError) and str(err).startswith("unprotected"):
            log("The sandbox cannot run in this container. To grade without it (a submission "
                "then runs as root beside the grader), rebuild the zip with python -m "
                "helper_lib autograder --unprotected: docs/grading.md says what that risks.")
        results = failed_results(MACHINE_FAILURE, visibility)
    _write(results_path, results)
    log(f"wrote {results_path}: {results['score']:g} point(s)")
    return results


def setup(root: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> int:
    """What ``setup.sh`` does once helper_lib's dependencies are installed: fetch the datasets
    the notebooks read into ``ROOT/source/data`` (each file checked against the sha256 that the
    package carries), check every shipped model against its sha256, build matplotlib's font
    list, and print the sandbox's protections on the machine that builds the image (the
    grading containers may differ). Returns 0, or 1 if the datasets or models are not right."""
    from matplotlib import font_manager  # noqa: F401 - builds the font list once, here

    from ..assets.datasets import fetch_raw_files
    from ..assets.downloads import DownloadError
    from ..assets.pretrained import manifest, pretrained_file
    from .sandbox import protections

    root = Path(root if root is not None else os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
    settings = AutograderSettings.read(root / "source" / SETTINGS_FILE)
    datasets = ["mnist"]
    if settings.notebooks is None or "09_latent_arithmetic" in settings.notebooks:
        datasets.append("fashion-mnist")
    try:
        for dataset in datasets:
            log(f"{dataset}: {fetch_raw_files(dataset, root / 'source' / 'data')}")
        for name in sorted(manifest()):
            pretrained_file(name)
        log(f"the {len(manifest())} shipped models: each one's sha256 is right")
    except (DownloadError, ValueError) as err:
        log(f"setup failed: {err}")
        return 1
    for protection in protections(settings.timeout, settings.memory_mb):
        log(f"here, at the image's build: {protection}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helper_lib.tools.gradescope run|setup``: the zip's scripts call it."""
    from .grading_run import skip_unused_iri_checker

    skip_unused_iri_checker()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["run"]:
        run()
        return 0
    if argv == ["setup"]:
        return setup()
    print("usage: python -m helper_lib.tools.gradescope run|setup", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
