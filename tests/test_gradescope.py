"""``python -m helper_lib autograder``: the zip that Gradescope builds its autograder from, and its
``run_autograder`` run for real on an honest and a hostile submission.

Gradescope is simulated by a folder tree per submission, ``ROOT/{source,submission,results}``
(``AUTOGRADER_ROOT``), with the zip unpacked into ``source`` as Gradescope unpacks it; the
script then runs the grader from there, through the bubblewrap sandbox, with this machine's
Python (``AUTOGRADER_PYTHON``) in place of the one that ``setup.sh`` installs (its installs are
not run here: only its syntax is checked). Without bubblewrap the runs skip, or fail with
``VAE_REQUIRE_SANDBOX=1``.
"""

from __future__ import annotations

import compileall
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from test_grading import NEEDS_SANDBOX, _minimal, _references, _shown

from helper_lib.assets.pretrained import manifest
from helper_lib.assets.project import VERSION
from helper_lib.tools import cli, gradescope
from helper_lib.tools.exercises import NOTEBOOKS
from helper_lib.tools.grading import GradingError

REPO = Path(__file__).resolve().parent.parent
CHECKS = REPO / "helper_lib" / "tools" / "checks.py"


@pytest.fixture(scope="module")
def autograder(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("autograder")
    lines: list[str] = []
    path = gradescope.build_autograder(folder / "autograder.zip", notebooks=["03"], timeout=60,
                                       memory_mb=2500, log=lines.append)
    return {"zip": path, "log": lines}


def _unpack(zip_path: Path, source: Path) -> Path:
    """The zip unpacked into ``source`` with the permissions it records (as ``unzip`` does),
    and its package compiled (as ``setup.sh`` does); returns ``source``."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(source)
        for info in zf.infolist():
            (source / info.filename).chmod(stat.S_IMODE(info.external_attr >> 16))
    compileall.compile_dir(source / "helper_lib", quiet=1)
    return source


def _tree(root: Path, source: Path) -> Path:
    """``root/{source,submission,results}``, ``source`` the unpacked zip (a link to it, so that
    the runs at once share one copy); returns ``root``."""
    for folder in ("submission", "results"):
        (root / folder).mkdir(parents=True)
    (root / "source").symlink_to(source)
    return root


def _start(root: Path, python: str = sys.executable) -> subprocess.Popen:
    """``run_autograder`` of ``root``, started as Gradescope starts it (in ``root``)."""
    env = {**os.environ, gradescope.ROOT_ENV: str(root), gradescope.PYTHON_ENV: python}
    return subprocess.Popen([str(root / "source" / "run_autograder")], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_zip_holds_what_gradescope_expects(autograder, tmp_path, monkeypatch):
    with zipfile.ZipFile(autograder["zip"]) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        text = {name: zf.read(name).decode() for name in
                ("setup.sh", "run_autograder", "requirements.txt", "autograder.json")}
    modes = {name: info.external_attr >> 16 for name, info in infos.items()}
    # the two scripts at the root, executable; everything else a plain readable file
    assert modes["setup.sh"] == modes["run_autograder"] == 0o100755
    assert all(mode == 0o100644 for name, mode in modes.items()
               if name not in ("setup.sh", "run_autograder"))
    assert text["run_autograder"].startswith("#!/usr/bin/env bash\n")
    assert {"helper_lib/__init__.py", "helper_lib/tools/checks.py", "helper_lib/tools/grading.py",
            "helper_lib/assets/pretrained_files.json", "pyproject.toml"} <= set(infos)
    assert not [n for n in infos if "__pycache__" in n or n.endswith(".pyc")]
    assert {f"data/pretrained/{name}" for name in manifest()} <= set(infos)
    # each course notebook's title, and nothing else of it (no solution leaves the clone)
    titles = [n for n in infos if n.startswith("notebooks/")]
    assert len(titles) == len(NOTEBOOKS)
    with zipfile.ZipFile(autograder["zip"]) as zf:
        title = nbformat.reads(zf.read("notebooks/03_logvar_trick.ipynb").decode(), as_version=4)
    assert [c.cell_type for c in title.cells] == ["markdown"]
    assert title.cells[0].source.startswith("# ")
    settings = json.loads(text["autograder.json"])
    assert settings == {"notebooks": ["03_logvar_trick"], "timeout": 60.0, "memory_mb": 2500,
                        "visibility": "visible", "unprotected": False, "version": VERSION}
    pins = (REPO / "requirements.txt").read_text()
    for pin in ("torch==", "torchvision==", "numpy==", "nbclient==", "ipykernel=="):
        line = next(x for x in pins.splitlines() if x.startswith(pin))
        assert line.split("#")[0].strip() in text["requirements.txt"]
    assert "-e" not in text["requirements.txt"] and "pytest" not in text["requirements.txt"]
    torch_pin = next(x for x in pins.splitlines() if x.startswith("torch=="))
    assert f"--index-url {gradescope.TORCH_INDEX} {torch_pin}" in text["setup.sh"]
    assert "apt-get install -y --no-install-recommends bubblewrap" in text["setup.sh"]
    for name in ("setup.sh", "run_autograder"):  # valid bash
        (tmp_path / name).write_text(text[name])
        check = subprocess.run(["bash", "-n", str(tmp_path / name)], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stderr
    assert any("03: 3" in line for line in autograder["log"])  # the assignment's points
    # the same inputs give the same bytes (the models left out, to keep this quick)
    monkeypatch.setattr("helper_lib.assets.pretrained.manifest", lambda: {})
    first = gradescope.build_autograder(tmp_path / "a.zip", notebooks=["03"], log=print)
    second = gradescope.build_autograder(tmp_path / "b.zip", notebooks=["03"], log=print)
    assert first.read_bytes() == second.read_bytes()
    assert not list(tmp_path.glob("*.partial"))


#: A submission that tries to write the results itself, to plant files on the grader's side,
#: to read the real checks (wherever Gradescope or a pip install would have put them), and to
#: hand in a fake answer and a fake score; then reports what it reached in its cell's error,
#: which the grader shows in results.json.
HOSTILE = '''\
import glob, os, sys
import helper_lib.tools.checks as stub
root = {root!r}
reached, real = [], []
for target in [f"{{root}}/results/results.json", "/autograder/results/results.json",
               f"{{root}}/results/planted.txt", f"{{root}}/submission/planted.txt",
               f"{{root}}/source/helper_lib/tools/checks.py"]:
    try:
        with open(target, "a") as f:
            f.write('{{"score": 100.0, "tests": []}}')
        reached.append(target)
    except OSError:
        pass
for place in [f"{{root}}/source", "/autograder/source", *sys.path]:
    for path in glob.glob(f"{{place}}/helper_lib/tools/checks.py"):
        try:
            if "def score" in open(path).read():
                real.append(path)
        except OSError:
            pass
answer_2 = "correct"
print("✓ exercise 03.2: correct\\n✓ exercise 03.3: correct\\nScore: 3/3")
raise RuntimeError(f"probe: reached {{reached}}, real checks {{real}}, "
                   f"score {{hasattr(stub, 'score')}}")
'''


@NEEDS_SANDBOX
def test_run_autograder_grades_an_honest_and_a_hostile_submission(autograder, tmp_path):
    source = _unpack(autograder["zip"], tmp_path / "source")
    honest = _tree(tmp_path / "honest", source)
    nbformat.write(_minimal(), honest / "submission" / "lab3.ipynb")
    hostile = _tree(tmp_path / "hostile", source)
    (hostile / "submission" / "mine").mkdir()
    nbformat.write(_minimal(HOSTILE.format(root=str(hostile))),
                   hostile / "submission" / "mine" / "03_logvar_trick.ipynb")
    checks = (source / "helper_lib" / "tools" / "checks.py").read_bytes()
    broken = _tree(tmp_path / "broken", source)  # a grader that cannot even start
    runs = {"honest": _start(honest), "hostile": _start(hostile),
            "broken": _start(broken, python="/bin/false")}
    logs = {name: run.communicate(timeout=180)[0] for name, run in runs.items()}
    assert {name: run.returncode for name, run in runs.items()} == dict.fromkeys(runs, 0), logs

    asked = " ".join(ex.expects for ex in NOTEBOOKS["03_logvar_trick"])
    references = _references("03_logvar_trick")
    code = [line.strip() for line in CHECKS.read_text().splitlines()
            if len(line.strip()) > 24 and line.strip()[0] not in "\"'#)"]
    results = {}
    for name, root in (("honest", honest), ("hostile", hostile)):
        log = logs[name]
        assert f"helper_lib {VERSION} from {root / 'source' / 'helper_lib'}" in log, log
        assert "✓ filesystem" in log and "✓ unprivileged" in log, log
        result = results[name] = json.loads((root / "results" / "results.json").read_text())
        assert result["score"] == 1.0, (name, result)  # 03.1 right, and nothing else
        assert [(t["name"], t["score"], t["max_score"], t["status"])
                for t in result["tests"]] == [
            ("exercise 03.1", 1.0, 1.0, "passed"), ("exercise 03.2", 0.0, 1.0, "failed"),
            ("exercise 03.3", 0.0, 1.0, "failed")]
        assert result["stdout_visibility"] == "hidden" and {t["visibility"] for t in
                                                           result["tests"]} == {"visible"}
        shown = " ".join([result["output"], *(t["output"] for t in result["tests"])])
        assert not [r for r in references if _shown(r, shown, asked)], (name, shown)
        assert not [line for line in code if line in shown], name
    assert results["honest"]["tests"][1]["output"].startswith("unanswered.")
    hostile_result = results["hostile"]
    assert hostile_result["tests"][1]["output"].startswith("wrong.")  # "correct" is no answer
    # the probe ran, reached none of the grader's files and found no real checks
    assert "RuntimeError: probe: reached [], real checks [], score False" in \
        hostile_result["output"], hostile_result["output"]
    assert not (hostile / "results" / "planted.txt").exists()
    assert not (hostile / "submission" / "planted.txt").exists()
    assert (source / "helper_lib" / "tools" / "checks.py").read_bytes() == checks
    # a grader that fails before it writes anything still leaves Gradescope a result
    failed = json.loads((broken / "results" / "results.json").read_text())
    assert failed == gradescope.failed_results(gradescope.MACHINE_FAILURE)
    assert "the grader wrote no results (exit status 1): a score of 0" in logs["broken"]


def _settings_tree(tmp_path: Path, **settings) -> Path:
    """``tmp_path/autograder/{source,submission,results}`` with ``settings`` alone in
    ``source``: for :func:`gradescope.run` and :func:`gradescope.setup` in this process."""
    root = tmp_path / "autograder"
    for folder in ("source", "submission", "results"):
        (root / folder).mkdir(parents=True)
    (root / "source" / gradescope.SETTINGS_FILE).write_text(
        gradescope.AutograderSettings(**settings).to_json())
    return root


def test_a_submission_without_exactly_one_notebook_gets_0_and_the_reason(tmp_path):
    root = _settings_tree(tmp_path, notebooks=("03_logvar_trick",))
    (root / "submission" / "README.txt").write_text("my answers are in my head")
    (root / "submission" / ".ipynb_checkpoints").mkdir()
    (root / "submission" / ".ipynb_checkpoints" / "lab-checkpoint.ipynb").write_text("{}")
    result = gradescope.run(root, log=lambda line: None)
    assert result["score"] == 0 and result["tests"] == []
    assert result["output"].startswith("No notebook (.ipynb file) was found")
    assert json.loads((root / "results" / "results.json").read_text()) == result
    for name in ("a.ipynb", "b/c.ipynb"):
        (root / "submission" / name).parent.mkdir(exist_ok=True)
        (root / "submission" / name).write_text("{}")
    result = gradescope.run(root, log=lambda line: None)
    assert result["output"] == ("Your submission holds 2 notebooks (a.ipynb, b/c.ipynb): "
                                "upload exactly one.")


def test_the_results_take_the_zips_visibility_and_a_failure_says_so(tmp_path, monkeypatch):
    root = _settings_tree(tmp_path, visibility="after_due_date")
    nbformat.write(_minimal(), root / "submission" / "lab3.ipynb")
    report = {"student": "lab3", "notebook": "03_logvar_trick", "total": 1, "seconds": 4.2,
              "exercises": {"03.1": {"status": "correct", "points": 1, "message": "σ = …"}},
              "cell_errors": [], "notes": [], "problem": None}
    seen = []
    monkeypatch.setattr(gradescope, "_grade_one",
                        lambda path, settings, log: seen.append((path.name, settings)) or report)
    result = gradescope.run(root, log=lambda line: None)
    assert seen == [("lab3.ipynb", gradescope.AutograderSettings(visibility="after_due_date"))]
    assert result["visibility"] == "after_due_date" and result["score"] == 1.0
    assert result["tests"][0]["visibility"] == "after_due_date" and result["execution_time"] == 4

    def refuse(path, settings, log):
        raise GradingError("unprotected: filesystem (bwrap: Creating new namespace failed)")

    monkeypatch.setattr(gradescope, "_grade_one", refuse)
    lines: list[str] = []
    result = gradescope.run(root, log=lines.append)
    assert result == gradescope.failed_results(gradescope.MACHINE_FAILURE, "after_due_date")
    log = "\n".join(lines)
    assert "Creating new namespace failed" in log and "--unprotected" in log


def test_setup_fetches_the_data_the_graded_notebooks_read(tmp_path, monkeypatch):
    fetched = []
    monkeypatch.setattr("helper_lib.assets.datasets.fetch_raw_files",
                        lambda dataset, root: fetched.append((dataset, root)) or root)
    root = _settings_tree(tmp_path, notebooks=("03_logvar_trick",))
    lines: list[str] = []
    assert gradescope.setup(root, log=lines.append) == 0
    assert fetched == [("mnist", root / "source" / "data")]
    assert any("sha256 is right" in line for line in lines)
    assert any(line.startswith("here, at the image's build: ") for line in lines)
    fetched.clear()
    root = _settings_tree(tmp_path / "any")
    assert gradescope.setup(root, log=lines.append) == 0
    assert [d for d, _ in fetched] == ["mnist", "fashion-mnist"]


def test_the_pins_are_the_clones_less_the_tools_for_development():
    torch, rest = gradescope.grading_requirements(
        "torch==2.15.0\ntorchvision==0.29.2  # pair\nnumpy==2.4.6\npytest==9.0.3\n"
        "import-linter==2.17\nnbclient==0.11.0\n# a comment\n-e .\n")
    assert (torch, rest) == (["torch==2.15.0", "torchvision==0.29.2"],
                             ["numpy==2.4.6", "nbclient==0.11.0"])
    with pytest.raises(ValueError, match="no exact pin"):
        gradescope.grading_requirements("torch>=2.4\n")
    with pytest.raises(ValueError, match="pins no torch"):
        gradescope.grading_requirements("numpy==2.4.6\n")


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for args, says in ((["--notebook", "99"], "none of the course's notebooks"),
                       (["--timeout", "0"], "--timeout must be > 0")):
        assert cli.main(["autograder", "--out", str(tmp_path / "a.zip"), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err and err.count("\n") == 1
    assert cli.main(["autograder", "--out", str(tmp_path)]) == 2
    assert "a folder; name the zip to write" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
