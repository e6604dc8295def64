"""``python -m helper_lib grade``: a class of submissions, hostile ones among them, and bad input.

The sandbox needs bubblewrap (``apt-get install bubblewrap``); without it these tests skip, or
fail with ``VAE_REQUIRE_SANDBOX=1`` (CI sets it). One grading run serves all the hostile
submissions: each must get exactly the points its real answers earn, and the grader (this test's
own process) must finish with every report saying what happened.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shutil
import socket
import sys
import threading
from pathlib import Path

import nbformat
import pytest
import torch

from helper_lib.assets.project import VERSION
from helper_lib.tools import cli, grading
from helper_lib.tools.book import handout
from helper_lib.tools.grading import (
    GradingError,
    grade,
    parse_json,
    parse_result,
    recognise,
    recorded_version,
    students,
    version_note,
)
from helper_lib.tools.sandbox import protections
from helper_lib.tools.zygote import ZygoteError, drop_privileges, unprivileged

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "notebooks" / "03_logvar_trick.ipynb"
NEEDS_SANDBOX = pytest.mark.skipif(
    shutil.which("bwrap") is None and os.environ.get("VAE_REQUIRE_SANDBOX") != "1",
    reason="bubblewrap is not installed (apt-get install bubblewrap)")

RIGHT_1 = ("answer_1 = (torch.exp(torch.tensor([-4.0, 0.0, 2.0]) / 2), 2 * math.log(0.1))\n"
           'check("03.1", answer_1)')


def _minimal(*cells: str) -> nbformat.NotebookNode:
    """A short submission of notebook 03: its imports, a right answer to 03.1, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["helper_lib"] = {"notebook": "03_logvar_trick"}
    nb.cells = [nbformat.v4.new_code_cell("import math\nimport torch\n"
                                          "from helper_lib.tools.checks import check"),
                nbformat.v4.new_code_cell(RIGHT_1)]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs, out = root / "SUBMISSIONS", root / "out"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port, connections = listener.getsockname()[1], []
    threading.Thread(target=lambda: connections.append(listener.accept()), daemon=True).start()
    real_checks = REPO / "helper_lib" / "tools" / "checks.py"
    alice = subs / "alice" / "03_logvar_trick.ipynb"
    from helper_lib.assets.datasets import resolve_data_root

    hosts = sorted({str(REPO), str(Path.cwd()), str(resolve_data_root()), str(root)})
    targets = [out / "grades.csv", out / "reports" / "alice.json", alice, real_checks,
               Path("/grader/lib/helper_lib/tools/checks.py")]
    hostile = {
        "faker": [  # fakes verdicts, a result file, and the zygote's word for a failed start
            'import os\nos.write(2, b"zygote: the run could not start: faked\\n")\n'
            'print("✓ exercise 03.2: correct\\n✓ exercise 03.3: correct\\nScore: 3/3")\n'
            'open("result.answers.json", "w").write(\'{"03.2": "correct", "03.3": "correct"}\')'],
        "patcher": [
            "import helper_lib.tools.exercises as ex, helper_lib.tools.checks as ch\n"
            "fake = lambda *a, **k: '{\"03.2\": {\"points\": 1}, \"03.3\": \"correct\"}'\n"
            "ex.harvest, ex.answer_to_plain = fake, fake\n"
            "ch.check = check = lambda *a: print('✓ correct')\n"
            'answer_2 = "correct"'],
        "writer": [
            f"targets = {[str(t) for t in targets]!r}\nfailed = []\n"
            "for t in targets:\n"
            "    try:\n        open(t, 'w').write('owned')\n"
            "    except OSError as e:\n        failed.append(type(e).__name__)\n"
            "raise PermissionError(f'could not write: {failed}')"],
        "reader": [
            f"paths = {[str(alice), str(real_checks), str(out), '/root/.bashrc']!r}\n"
            f"hosts = {hosts!r}\n"
            "import glob, os, sys\nanswer_3 = [os.path.exists(p) for p in paths]\n"
            "shown = ['/proc/self/mountinfo', *glob.glob('/proc/[0-9]*/cmdline'),\n"
            "         *glob.glob(os.path.dirname(os.__file__) + '/site-packages/__editable__*')]\n"
            "def text(path):\n    try:\n"
            "        return open(path, 'rb').read().decode('utf-8', 'replace')\n"
            "    except OSError:\n        return ''\n"
            "answer_3.append(any(h in text(p) for p in shown for h in hosts))\n"
            "print(open(paths[1]).read()[:100])"],
        "planter": [  # fakes a result file, fills its disk, writes into the runner's pipe
            "import os\nos.mkfifo('result.answers.json')\n"
            "os.symlink('/proc/self/cwd/answers/alice.json', 'result.json')\n"
            "fake = b'{\"errors\": []}\\n{\"03.2\": 1, \"03.3\": 1}'\nreached, full = [], []\n"
            "pids = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]\n"
            "for pid in pids:\n"
            "    try:\n        fds = os.listdir(f'/proc/{pid}/fd')\n"
            "    except OSError:\n        continue\n"
            "    for fd in fds:\n        try:\n"
            "            with open(f'/proc/{pid}/fd/{fd}', 'wb') as f:\n"
            "                f.write(fake)\n            reached.append(pid)\n"
            "        except OSError:\n            pass\n"
            "for i in range(3):\n    try:\n"
            "        with open(f'big{i}', 'wb') as f:\n            f.write(bytes(50 * 2**20))\n"
            "    except OSError as e:\n        full.append(e.strerror)\n"
            "raise RuntimeError(f'reached {reached}, full {full}')"],
        "signaller": [
            f"import os, signal\nerrors = []\nfor pid in ({os.getpid()}, 1):\n"
            "    try:\n        os.kill(pid, signal.SIGTERM)\n"
            "    except OSError as e:\n        errors.append(type(e).__name__)\n"
            "raise ProcessLookupError(f'could not signal: {errors}')"],
        "looper": ["while True:\n    pass"],
        # deaf to the interrupt, so the grader must kill it: named to start early (the runs go
        # in name order), so that its 25 s overlap the others' runs instead of ending the class
        "deaf": ["import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                     "while True:\n    pass"],
        "hog": ["hog = bytearray(8 * 2**30)  # 8 GB"],
        "network": [
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)"],
        # #36: what one submission changes must not reach the next: the leaker changes a
        # global, files, modules, torch and the environment; the victim, named to run last, loses
        # its point if it sees any of that (the leak and the check: _LEAK and _CLEAN, below)
        "leaker": [_LEAK],
        "zz_victim": [_CLEAN],
        # #36: a run forked from the zygote is as unprivileged as one started from scratch,
        # and in its own sandbox's PID namespace (_PROBE, below)
        "prober": [_PROBE],
        # leaves processes running in sessions of their own: they end with its sandbox
        "lingerer": ["import os, subprocess\n"
                     "subprocess.Popen(['sleep', '301'], start_new_session=True)\n"
                     "if os.fork() == 0:\n"
                     "    os.setsid()\n    os.execvp('sleep', ['sleep', '302'])"],
    }
    for name, cells in hostile.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(_minimal(*cells), subs / name / "03_logvar_trick.ipynb")
    alice.parent.mkdir(parents=True)
    right = nbformat.read(SOURCE, as_version=4)  # its parameters, imports, solutions, answers
    code = [c for c in right.cells if c.cell_type == "code"]
    right.cells = code[1:3] + [c for c in code if {"answer", "solution"} & set(
        c.metadata.get("tags", []))]
    nbformat.write(right, alice)
    (subs / "blank").mkdir()  # the handout's answer cells: stubs
    blank = handout(SOURCE)
    blank.cells = [_minimal().cells[0]] + [c for c in blank.cells
                                           if "answer" in c.metadata.get("tags", [])]
    nbformat.write(blank, subs / "blank" / "lab3.ipynb")
    (subs / "notanotebook").mkdir()
    (subs / "notanotebook" / "03.ipynb").write_text("hello, grader")
    (subs / "truncated").mkdir()
    (subs / "truncated" / "03.ipynb").write_bytes(SOURCE.read_bytes()[:20_000])
    checks_hash = _sha(real_checks)
    lines: list[str] = []
    forked = grading._forked_run

    def alice_from_scratch(zygote, sub, *args, **kwargs):  # the fallback, and the path it takes
        if sub.student == "alice":
            raise ZygoteError("planted by the test")
        return forked(zygote, sub, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grading, "_forked_run", alice_from_scratch)
        rows = grade([subs], out, timeout=20, memory_mb=2500, keep_answers=True,
                     log=lines.append, disk_mb=64, feedback=True, formats=["gradescope"])
    listener.close()
    return {"rows": {r["student"]: r for r in rows}, "out": out, "log": lines, "alice": alice,
            "checks_hash": checks_hash, "connections": connections, "real_checks": real_checks}


def _report(graded, student):
    return json.loads((graded["out"] / "reports" / f"{student}.json").read_text())


@NEEDS_SANDBOX
def test_every_submission_gets_the_points_its_real_answers_earn(graded):
    totals = {name: row["total"] for name, row in graded["rows"].items()}
    assert totals == {"alice": 3, "blank": 0, "faker": 1, "patcher": 1, "writer": 1,
                      "reader": 1, "planter": 1, "signaller": 1, "looper": 1, "deaf": 0,
                      "hog": 1,
                      "network": 1, "notanotebook": 0, "truncated": 0, "leaker": 1,
                      "zz_victim": 1, "prober": 1, "lingerer": 1}
    with open(graded["out"] / "grades.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["student"] for r in table] == sorted(totals)
    assert list(table[0]) == ["student", "03.1", "03.2", "03.3", "total"]
    assert (graded["out"] / "scores.png").stat().st_size > 5_000


@NEEDS_SANDBOX
def test_the_reports_say_what_happened(graded):
    blank = _report(graded, "blank")["exercises"]
    assert all(v["status"] == "unanswered" and "not answered yet" in v["message"]
               for v in blank.values())
    assert "03.2" in _report(graded, "patcher")["exercises"]
    assert _report(graded, "patcher")["exercises"]["03.2"]["status"] == "wrong"

    def errors(name):
        return " ".join(e["error"] for e in _report(graded, name)["cell_errors"])

    assert "PermissionError: could not write" in errors("writer")
    assert "FileNotFoundError" in errors("reader")  # the real checks are not in the sandbox
    assert "could not signal: ['ProcessLookupError', 'PermissionError']" in errors("signaller")
    assert "MemoryError" in errors("hog")
    # no process's file descriptors open to it (the runner is not dumpable); the disk is full
    # at 64 MB, the second file of 50 MB
    assert "reached [], full ['No space left on device', 'No space left on device']" in \
        errors("planter")
    assert "OSError" in errors("network") or "ConnectionRefusedError" in errors("network")
    assert "time limit" in _report(graded, "deaf")["problem"]
    assert "not a notebook" in _report(graded, "notanotebook")["problem"]
    assert "not a notebook" in _report(graded, "truncated")["problem"]
    assert any("✓ no network" in line for line in graded["log"])
    # every run was forked from the zygote, but alice's, which the test kept from it: hers
    # started from scratch, and says so
    assert any("forked from a zygote" in line for line in graded["log"])
    notes = {name: " ".join(_report(graded, name)["notes"]) for name in graded["rows"]}
    assert "started from scratch: the zygote could not take the run (planted" in notes["alice"]
    assert not [name for name, note in notes.items() if "scratch" in note and name != "alice"]


@NEEDS_SANDBOX
def test_hostile_submissions_reach_nothing_outside_their_scratch_folder(graded):
    assert _sha(graded["real_checks"]) == graded["checks_hash"]
    assert nbformat.read(graded["alice"], as_version=4).metadata["helper_lib"]
    assert json.loads((graded["out"] / "reports" / "alice.json").read_text())["total"] == 3
    seen = json.loads((graded["out"] / "answers" / "reader.json").read_text())["03.3"]
    # other students, the checks, the grades, /root; and no host folder named inside
    assert seen == [False, False, False, False, False]
    assert graded["connections"] == []  # no connection reached the grader's loopback
    assert _report(graded, "lingerer")["cell_errors"] == []  # its processes started,
    assert _lingering() == []  # and ended with its sandbox
    import subprocess

    control = subprocess.Popen(["sleep", "301"])  # and the search sees one that runs
    try:
        assert _lingering() == [f"/proc/{control.pid}/cmdline"]
    finally:
        control.kill()
        control.wait()


def _lingering() -> list[str]:
    """The processes on this machine that run ``sleep 301`` or ``sleep 302``."""
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if re.fullmatch(rb"sleep\x0030[12]\x00", path.read_bytes()):
                found.append(str(path))
        except OSError:
            pass
    return found


def _references(notebook: str) -> list[float]:
    """Every number of every reference of ``notebook``'s exercises: the answers that
    checks.py scores correct (the solutions' answers, tests/data/solution_answers.json.gz;
    function answers: their results on the checker's own inputs), confirmed here by
    ``checks.score``. Whole numbers under 10 are left out: a hint may say "from 0 to 1"."""
    import gzip

    from helper_lib.tools.checks import score
    from helper_lib.tools.exercises import NOTEBOOKS

    solutions = json.loads(gzip.decompress((REPO / "tests" / "data" /
                                            "solution_answers.json.gz").read_bytes()))

    def numbers(value):
        if isinstance(value, dict):
            return [n for v in value.values() for n in numbers(v)]
        if isinstance(value, list):
            return [n for v in value for n in numbers(v)]
        return [] if isinstance(value, bool) or not isinstance(value, (int, float)) else [value]

    found = []
    for ex in NOTEBOOKS[notebook]:
        assert score(ex.id, solutions[ex.id]).status == "correct"
        found += [float(n) for n in numbers(solutions[ex.id])]
    return [n for n in found if not (n == int(n) and abs(n) < 10)]


#: A number as a page writes it: ``0.135``, ``.14``, ``1,234``, ``13.5 %`` (the sign apart);
#: not a part of a version (``0.4.0``) or of a longer number.
_WRITTEN = __import__("re").compile(
    r"(?<![\d.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+|\d+)(?![\d.]*\d)(\s*%)?")


def _shown(reference: float, text: str, asked: str = "") -> list[str]:
    """The numbers of ``text`` that are ``reference`` at the decimals they are written with
    (rounded or cut, at any number of decimals; a percentage as its fraction); a whole number
    only for a reference of 10 or more. A number that the question itself states (``asked``:
    "the log sigma^2 that gives sigma = 0.1") is no reference shown."""
    def written(digits: str, percent: str) -> tuple[float, int]:
        return (float(digits.replace(",", "")) / (100 if percent else 1),
                len(digits.partition(".")[2]) + (2 if percent else 0))

    r, out = abs(reference), []
    stated = {written(*found) for found in _WRITTEN.findall(asked)}
    for digits, percent in _WRITTEN.findall(text):
        value, decimals = written(digits, percent)
        if (value, decimals) not in stated and (decimals > 0 or r >= 10) and \
                abs(r - value) < 10.0 ** -decimals:
            out.append(digits + percent)
    return out


@NEEDS_SANDBOX
def test_each_student_gets_a_feedback_page_with_their_own_work_only(graded):
    """Every page shows its student's points, verdicts, hints and cell errors, escaped; and
    none shows a reference value at any rounding, a line of the checks' code, or another
    student's name, errors or problem."""
    import html as html_module
    import re

    out = graded["out"]
    reports = {p.stem: json.loads(p.read_text()) for p in (out / "reports").glob("*.json")}
    pages = {p.stem: p.read_text(encoding="utf-8") for p in (out / "feedback").glob("*.html")}
    assert set(pages) == set(reports) and len(pages) == 18
    from helper_lib.tools.exercises import NOTEBOOKS

    references = _references("03_logvar_trick")
    assert len(references) > 50  # 03.1's four numbers, 03.2's gradients, 03.3's
    asked = " ".join(ex.expects for ex in NOTEBOOKS["03_logvar_trick"])
    assert _shown(0.135335, "σ is 0.1353 here, or 0.14, or .1", asked) == ["0.1353", "0.14"]
    code_lines = [line.strip() for line in graded["real_checks"].read_text().splitlines()
                  if len(line.strip()) > 24 and line.strip()[0] not in "\"'#)"]
    for name, page in pages.items():
        report = reports[name]
        text = re.sub(r"<style>.*?</style>|<[^>]+>", " ", page, flags=re.S)
        text = re.sub(r"\s+", " ", html_module.unescape(text))
        assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
        assert f"<title>Feedback for {report['student']}: " in page and page.count("<h1>") == 1
        assert f"Score: {report['total']} of {report['of']} points." in text
        for reference in references:
            assert not _shown(reference, text, asked), (name, reference)
        assert not [line for line in code_lines if line in text], name
        for other, theirs in reports.items():
            if other == name:
                continue
            assert not re.search(rf"\b{re.escape(theirs['student'])}\b", text), (name, other)
            for error in theirs["cell_errors"]:
                assert error["error"] not in text or any(
                    error["error"] == e["error"] for e in report["cell_errors"]), (name, other)
        for ex, verdict in report["exercises"].items():
            row = page.split(f'<th scope="row">{ex}</th>')[1].split("</tr>")[0]
            assert html_module.escape(verdict["message"]) in row and f"{verdict['points']} of 1" \
                in row
    assert '<th scope="col">Verdict</th>' in pages["alice"] and "✓ correct" in pages["alice"]
    assert "could not write: [" in pages["writer"]
    assert "could not signal: [&#x27;ProcessLookupError&#x27;" in pages["signaller"]  # escaped
    assert "ran past the time limit" in pages["deaf"]
    assert "not a notebook" in pages["notanotebook"] and "No exercise was scored" in \
        pages["notanotebook"]
    assert "<script" not in "".join(pages.values())
    result = json.loads((out / "gradescope" / "alice.json").read_text())
    assert result["score"] == 3 and [t["score"] for t in result["tests"]] == [1, 1, 1]
    for path in (out / "gradescope").glob("*.json"):  # what a student reads: the outputs
        result = json.loads(path.read_text())
        shown = " ".join([result["output"], *(t["output"] for t in result["tests"])])
        assert all(not _shown(r, shown, asked) for r in references), path.name


def test_students_are_named_by_their_folder_or_else_by_their_file(tmp_path):
    a, b = tmp_path / "S" / "ann" / "lab.ipynb", tmp_path / "S" / "bo" / "x" / "lab.ipynb"
    assert students([a, b]) == ["ann", "bo"]
    assert students([tmp_path / "ann.ipynb", tmp_path / "bo.ipynb"]) == ["ann", "bo"]


def test_a_notebook_is_recognised_by_its_content_not_its_name(tmp_path):
    nb = handout(SOURCE)
    nb.metadata.pop("helper_lib")
    nbformat.write(nb, tmp_path / "whatever.ipynb")  # the title still says which it is
    assert recognise(tmp_path / "whatever.ipynb") == ("03_logvar_trick", "")
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# My own project")])
    nbformat.write(other, tmp_path / "03_logvar_trick.ipynb")
    with pytest.raises(GradingError, match="not a notebook of this course"):
        recognise(tmp_path / "03_logvar_trick.ipynb")


def _with_metadata(path: Path, helper_lib_metadata: object) -> nbformat.NotebookNode:
    """A one-cell notebook whose ``helper_lib`` metadata is ``helper_lib_metadata`` (left out
    if it is ``...``), written to ``path`` and read back as the grader reads it."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# My notebook")])
    if helper_lib_metadata is not ...:
        nb.metadata["helper_lib"] = helper_lib_metadata
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def test_the_version_a_submission_records_is_compared_with_the_graders(tmp_path):
    path, name = tmp_path / "nb.ipynb", "03_logvar_trick"
    same = _with_metadata(path, {"notebook": name, "version": VERSION})
    assert recorded_version(same) == VERSION and version_note(same) is None
    other = _with_metadata(path, {"notebook": name, "version": "0.1.0"})
    assert recorded_version(other) == "0.1.0"
    assert f"handed out by helper_lib 0.1.0, and graded with helper_lib {VERSION}" in \
        version_note(other)
    for missing in ({"notebook": name}, "03_logvar_trick", [name], ...):  # older handouts, others
        nb = _with_metadata(path, missing)
        assert recorded_version(nb) is None
        assert version_note(nb).startswith("the notebook records no helper_lib version")
    hostile = [(["0.1.0"], "<array>"), ({"major": 0}, "<object>"), (3, "<number>"),
               (None, "<null>"), (True, "<boolean>"), ("", "''"),
               ("9" * 10_000_000, "'" + "9" * 40 + "'…"), ("0.1\x1b[2J\n", "'0.1\\x1b[2J\\n'")]
    for value, shown in hostile:  # never a crash, never more than a short printable line
        nb = _with_metadata(path, {"notebook": name, "version": value})
        assert recorded_version(nb) == shown
        note = version_note(nb)
        assert note.endswith(f"holds {shown}, no version; graded with helper_lib {VERSION}")
        assert len(note) < 200 and note.isprintable()


def test_hostile_helper_lib_metadata_is_bad_input_not_a_crash(tmp_path):
    for i, named in enumerate([["03_logvar_trick"], {"a": 1}, 3]):
        nb = _with_metadata(tmp_path / f"{i}.ipynb", {"notebook": named})
        nb.cells = [nbformat.v4.new_markdown_cell(source) for source in ("", "#", "# \n")]
        nbformat.write(nb, tmp_path / f"{i}.ipynb")
        with pytest.raises(GradingError, match="not a notebook of this course"):
            recognise(tmp_path / f"{i}.ipynb")


def test_another_version_is_noted_in_the_report_and_once_on_the_console(tmp_path, monkeypatch):
    """``grade`` with the runs replaced by their answers (no sandbox, no kernel): the same
    answers get the same points whatever version the notebook records."""
    import helper_lib.tools.grading as grading
    import helper_lib.tools.sandbox as sandbox
    from helper_lib.tools.exercises import answer_to_plain

    right = answer_to_plain("03.1", (torch.exp(torch.tensor([-4.0, 0.0, 2.0]) / 2),
                                     2 * math.log(0.1)))
    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    monkeypatch.setattr(grading, "_inputs", lambda notebooks: tmp_path)
    monkeypatch.setattr(grading, "_library_copy", lambda root, *args: root)
    monkeypatch.setattr(grading, "_run_one", lambda sub, *args, **kwargs: sub.result.update(
        answers={"03.1": right}, errors=[]))
    versions = {"ann": VERSION, "bo": "0.1.0", "cy": ..., "dee": ["0.1.0"]}
    for student, version in versions.items():
        (tmp_path / "S" / student).mkdir(parents=True)
        nb = handout(SOURCE)
        if version is ...:
            del nb.metadata["helper_lib"]["version"]
        else:
            nb.metadata["helper_lib"]["version"] = version
        nbformat.write(nb, tmp_path / "S" / student / "03.ipynb")
    lines: list[str] = []
    rows = grade([tmp_path / "S"], tmp_path / "out", unprotected=True, log=lines.append)
    assert {r["student"]: r["total"] for r in rows} == dict.fromkeys(versions, 1)
    warnings = [line for line in lines if "another helper_lib version" in line]
    assert len(warnings) == 1 and warnings[0].endswith(": bo (0.1.0), dee (<array>)")
    notes = {s: _report({"out": tmp_path / "out"}, s)["notes"] for s in versions}
    assert notes["ann"] == [] and len(notes["bo"]) == len(notes["cy"]) == len(notes["dee"]) == 1
    assert "helper_lib 0.1.0" in notes["bo"][0] and "no helper_lib version" in notes["cy"][0]


def _grade_cli(capsys, *args) -> tuple[int, str]:
    code = cli.main(["grade", *map(str, args)])
    return code, capsys.readouterr().err.strip()


def test_bad_input_is_one_line_and_exit_2_with_nothing_written(tmp_path, capsys):
    subs = tmp_path / "S"
    for student in ("ann", "bo"):
        (subs / student).mkdir(parents=True)
        shutil.copyfile(SOURCE, subs / student / "03.ipynb")
    out = tmp_path / "out"
    out.mkdir()
    (out / "grades.csv").write_text("student,total\nold,3\n")
    code, err = _grade_cli(capsys, subs, "--out", out)
    assert code == 2 and err.count("\n") == 0 and "already holds grades" in err
    assert (out / "grades.csv").read_text() == "student,total\nold,3\n"
    fresh = tmp_path / "fresh"
    code, err = _grade_cli(capsys, "--out", fresh)
    assert code == 2 and err.count("\n") == 0 and "no submissions" in err
    code, err = _grade_cli(capsys, tmp_path / "nobody", "--out", fresh)
    assert code == 2 and err.count("\n") == 0 and "no such file or folder" in err
    assert not fresh.exists()


def test_without_the_sandbox_it_refuses_unless_told(tmp_path, monkeypatch, capsys):
    import helper_lib.tools.sandbox as sandbox

    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    missing = [p.name for p in protections(60, 1000) if not p.active]
    assert missing == ["unprivileged", "filesystem", "no network", "cannot signal the grader",
                       "disk limit"]
    monkeypatch.setattr(sandbox, "cgroup_roots", lambda: {})  # no cgroups: one run at a time
    assert [p.active for p in protections(60, 1000, jobs=1) if p.name == "CPU share"] == [True]
    assert [p.active for p in protections(60, 1000, jobs=2) if p.name == "CPU share"] == [False]
    (tmp_path / "ann").mkdir()
    shutil.copyfile(SOURCE, tmp_path / "ann" / "03.ipynb")
    code, err = _grade_cli(capsys, tmp_path / "ann" / "03.ipynb", "--out", tmp_path / "out")
    assert code == 2 and "unprotected" in err and "--unprotected" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@NEEDS_SANDBOX
def test_the_source_notebooks_score_full_marks_through_the_sandbox(tmp_path):
    """Every source notebook's solutions, run in full mode in the sandbox, earn every point;
    their answers are the ones tests/data/solution_answers.json.gz holds (within the checks'
    tolerances). About 2 minutes on 2 cores."""
    import gzip

    from helper_lib.tools.checks import score
    from helper_lib.tools.exercises import NOTEBOOKS

    for stem in NOTEBOOKS:
        (tmp_path / "S" / stem).mkdir(parents=True)
        shutil.copyfile(REPO / "notebooks" / f"{stem}.ipynb", tmp_path / "S" / stem / "nb.ipynb")
    rows = grade([tmp_path / "S"], tmp_path / "out", keep_answers=True, log=lambda line: None)
    assert {r["student"]: r["total"] for r in rows} == {s: len(e) for s, e in NOTEBOOKS.items()}
    stored = json.loads(gzip.decompress((REPO / "tests" / "data" /
                                         "solution_answers.json.gz").read_bytes()))
    for stem in NOTEBOOKS:
        fresh = json.loads((tmp_path / "out" / "answers" / f"{stem}.json").read_text())
        for exercise_id, answer in fresh.items():
            assert score(exercise_id, answer).points == score(exercise_id,
                                                              stored[exercise_id]).points == 1


# --- A red team's files (issue #33): each one costs only its own student, and quickly ---------

def _right_03() -> dict:
    from helper_lib.tools.exercises import answer_to_plain

    return {"03.1": answer_to_plain("03.1", (torch.exp(torch.tensor([-4.0, 0.0, 2.0]) / 2),
                                             2 * math.log(0.1)))}


def _payload(answers: object, info: object = None) -> bytes:
    """What a run sends back through its result pipe (grading_run's two parts)."""
    return (json.dumps({"errors": []} if info is None else info).encode() + b"\n"
            + (answers if isinstance(answers, bytes) else json.dumps(answers).encode()))


@pytest.mark.parametrize(("payload", "why"), [
    (b"", "nothing was sent back"),
    (b'{"errors": []}', "the harvest sent no answers"),
    (_payload(b"[" * 1_000 + b"]" * 1_000), "the answers: nested deeper than 16 levels"),
    (_payload(b"{" + b" " * 5_000_000 + b"}"), "the answers: over 4,000,000 bytes"),
    (_payload(b'{"03.1": '), "the answers: not valid JSON"),
    (b"[[[[" * 20_000 + b"\n{}", "the run's report: nested deeper"),
    (b"not json\n{}", "the run's report: not valid JSON"),
    (b'"a string"\n{}', "the run's report: no JSON object"),
], ids=["empty", "no-answers", "deep", "large", "truncated", "deep-report", "not-json",
        "not-object"])
def test_what_a_run_sends_back_is_parsed_with_bounded_size_and_depth(payload, why):
    info, answers, reason = parse_result(payload)
    assert why in reason, reason
    assert answers is None or not isinstance(answers, dict)
    assert parse_result(_payload(_right_03())) == ({"errors": []}, _right_03(), "")
    assert parse_result(_payload(_right_03()), overflow=True)[1] is None


def _fake_runs(monkeypatch, tmp_path, send) -> None:
    """``grade`` without a sandbox or a kernel: each run sends back ``send(student)`` (bytes)
    through its result pipe, and the grader's own reading and scoring do the rest."""
    import helper_lib.tools.grading as grading
    import helper_lib.tools.sandbox as sandbox

    def run(cmd, env, timeout, preexec_fn=None, on_start=None, **kwargs):
        on_start()
        nb = nbformat.read(cmd[2], as_version=4)  # unsandboxed: the copy of the submission
        return grading.RunOutput(b"", False, send(nb.metadata.get("student", "")))

    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    monkeypatch.setattr(grading, "_inputs", lambda notebooks: tmp_path)
    monkeypatch.setattr(grading, "_library_copy", lambda root, *args: root)
    monkeypatch.setattr(grading, "run_with_log_tail", run)


def test_hostile_files_and_names_cost_only_their_own_row(tmp_path, monkeypatch):
    subs, out = tmp_path / "S", tmp_path / "out"

    def hand_in(student: str, name: str = "03.ipynb") -> Path:
        path = subs / student / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nb = handout(SOURCE)
        nb.metadata["student"] = student
        nbformat.write(nb, path)
        return path

    def send(student: str) -> bytes:
        return {"typo": _payload(_right_03(), {"errors": 5}),
                "deep": _payload(b"[" * 400_000 + b"]" * 400_000),
                "garbage": b"\xff" * 1_000,
                "huge": _payload(b"[" + b"1," * 3_000_000 + b"1]")}.get(student,
                                                                   _payload(_right_03()))

    _fake_runs(monkeypatch, tmp_path, send)
    honest = ["alice", "typo", '=HYPERLINK("evil.example","appeal")', "+1", "@SUM(A1)",
              "$x^2$", "n" * 255]
    for student in [*honest, "deep", "garbage", "huge"]:
        hand_in(student)
    hand_in("twice")
    hand_in("twice", "03_again.ipynb")
    hand_in("alice", ".ipynb_checkpoints/03-checkpoint.ipynb")
    (subs / "folder" / "dir.ipynb").mkdir(parents=True)
    (subs / "mallory").mkdir()
    (subs / "mallory" / "03.ipynb").symlink_to(SOURCE)
    (subs / "stranger").mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Other")]),
                   subs / "stranger" / "03.ipynb")
    listed = json.loads(hand_in("listed").read_text())  # helper_lib.notebook: a list
    listed["metadata"]["helper_lib"]["notebook"] = ["03_logvar_trick"]
    listed["cells"] = [{"cell_type": "markdown", "id": "n3", "metadata": {}, "source": 3}]
    (subs / "listed" / "03.ipynb").write_text(json.dumps(listed))
    (subs / "piped").mkdir()
    os.mkfifo(subs / "piped" / "03.ipynb")  # reading it would wait forever
    numbered = json.loads(hand_in("numbered").read_text())  # a markdown cell's source: 3
    numbered["cells"].insert(0, {"cell_type": "markdown", "id": "n3", "metadata": {}, "source": 3})
    (subs / "numbered" / "03.ipynb").write_text(json.dumps(numbered))
    lines: list[str] = []
    rows = grade([subs], out, unprotected=True, timeout=30, log=lines.append)
    total = {r["student"]: r["total"] for r in rows}
    assert total == {**dict.fromkeys(honest, 1), "deep": 0, "garbage": 0, "huge": 0, "twice": 0,
                     "mallory": 0, "stranger": 0, "listed": 0, "numbered": 1, "piped": 0}
    assert any("skipped 2" in line and ".ipynb_checkpoints" in line and "(a folder)" in line
               for line in lines)
    reports = {json.loads(p.read_text())["student"]: json.loads(p.read_text())
               for p in (out / "reports").glob("*.json")}
    assert set(reports) == set(total)
    assert all(len(p.name) <= 100 for p in (out / "reports").iterdir())
    assert "2 files for one student" in reports["twice"]["problem"]
    assert "a link, not a file" in reports["mallory"]["problem"]
    assert "not a regular file" in reports["piped"]["problem"]
    assert "not a notebook of this course" in reports["stranger"]["problem"]
    assert "the answers: nested deeper than 16 levels" in reports["deep"]["problem"]
    assert "the run's report: not valid JSON" in reports["garbage"]["problem"]
    assert "the answers: over 4,000,000 bytes" in reports["huge"]["problem"]
    with open(out / "grades.csv", newline="") as f:
        students = [row["student"] for row in csv.DictReader(f)]
    assert {"'=HYPERLINK(\"evil.example\",\"appeal\")", "'+1", "'@SUM(A1)"} <= set(students)
    assert "$x^2$" in students and "n" * 255 in students
    assert (out / "scores.png").stat().st_size > 10_000


def test_the_scores_figure_marks_every_cell_and_keeps_its_text_readable(tmp_path, monkeypatch):
    """Colour is not the only carrier (a mark in each cell), no text under 9 pt however large
    the class, and a class without a course notebook draws without a warning."""
    import warnings

    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from helper_lib.tools.grades import write_grades

    drawn, save = [], Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig),
                                                                 save(fig, *a, **k)))
    rows = [{"student": f"s{i}", "03.1": i % 2, "03.2": "" if i == 3 else 1, "total": 0}
            for i in range(40)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_grades(tmp_path, rows, ["03.1", "03.2"])  # grades.csv and scores.png
        (tmp_path / "none").mkdir()
        write_grades(tmp_path / "none", [{"student": "x", "total": 0}], [])
    texts = [t for t in drawn[0].findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert min(t.get_fontsize() for t in texts) >= 9
    marks = [t.get_text() for t in drawn[0].axes[1].texts]
    assert (marks.count("\u2713"), marks.count("\u2717"), marks.count("\u2013")) == (59, 20, 1)
    assert [t.get_text() for t in drawn[0].axes[0].texts] == ["50%", "100%"]


def test_a_class_of_one_is_named_after_its_folder(tmp_path):
    from helper_lib.tools.grading import _collect

    (tmp_path / "S" / "alice").mkdir(parents=True)
    shutil.copyfile(SOURCE, tmp_path / "S" / "alice" / "03.ipynb")
    assert _collect([tmp_path / "S"], print) == [("alice", tmp_path / "S" / "alice" / "03.ipynb")]


def test_only_the_notebooks_a_run_names_are_graded(tmp_path, monkeypatch):
    _fake_runs(monkeypatch, tmp_path, lambda student: _payload(_right_03()))
    (tmp_path / "S" / "ann").mkdir(parents=True)
    (tmp_path / "S" / "bo").mkdir(parents=True)
    nbformat.write(handout(SOURCE), tmp_path / "S" / "ann" / "03.ipynb")
    nbformat.write(handout(REPO / "notebooks" / "04_vae_loss.ipynb"),
                   tmp_path / "S" / "bo" / "03.ipynb")  # 04, under 03's name
    rows = grade([tmp_path / "S"], tmp_path / "out", unprotected=True, notebooks=["03"],
                 log=lambda line: None)
    assert {r["student"]: r["total"] for r in rows} == {"ann": 1, "bo": 0}
    assert set(rows[0]) == {"student", "03.1", "03.2", "03.3", "total"}
    assert "this is 04_vae_loss, and this run grades 03_logvar_trick only" in json.loads(
        (tmp_path / "out" / "reports" / "bo.json").read_text())["problem"]
    with pytest.raises(GradingError, match="--notebook '3' is none of the course's"):
        grade([tmp_path / "S"], tmp_path / "out2", unprotected=True, notebooks=["3"])


def test_the_grader_keeps_only_a_bounded_tail_of_a_flood_of_output():
    """A 400 MB flood on the run's stdout: the grader keeps its last 1 MB, and its own peak
    memory grows by a few MB at most (measured in a fresh process; 2 GB: 7 MB, docs/grading.md)."""
    import subprocess
    import sys

    script = ("import resource, sys\n"
              "from helper_lib.tools.grading import run_with_log_tail\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "run = run_with_log_tail(['sh', '-c', 'head -c 400000000 /dev/zero; "
              "echo END >&2'], {'PATH': '/usr/bin:/bin'}, 120)\n"
              "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "print(len(run.log), run.log.endswith(b'END\\n'), run.timed_out, "
              "(after - before) // 1024)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=180, check=True).stdout.split()
    size, ends, killed, grown_mb = int(out[0]), out[1], out[2], int(out[3])
    assert size == 1_000_000 and ends == "True" and killed == "False"
    assert grown_mb < 20, f"the grader grew by {grown_mb} MB"
    from helper_lib.tools.grading import run_with_log_tail

    run = run_with_log_tail(["sh", "-c", "echo started; sleep 60"], {"PATH": "/usr/bin:/bin"}, 1,
                            os.setsid)
    assert run.timed_out and run.log == b"started\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="a pids cgroup, or RLIMIT_NPROC, needs root here")
def test_a_fork_bomb_ends_its_own_run_and_leaves_nothing_behind():
    """200 background processes under a cap of 40: the shell cannot start the rest and gives
    up, and what it started is killed with the run (its pids cgroup then removed)."""
    import subprocess
    import time

    from helper_lib.tools.grading import run_with_log_tail
    from helper_lib.tools.sandbox import RunCap, limits

    bomb = "for i in $(seq 200); do sleep 301 & done; echo all started; sleep 1"
    t0 = time.perf_counter()
    with RunCap(40) as cap:
        folder = cap.path
        if folder is None:
            pytest.skip("no pids cgroup here (RLIMIT_NPROC does not bind root)")
        assert (folder / "pids.max").read_text().strip() == "40"
        run = run_with_log_tail(["sh", "-c", bomb], {"PATH": "/usr/bin:/bin"}, 60,
                                limits(1000, cap), cleanup=cap.kill_all)
    assert not run.timed_out and time.perf_counter() - t0 < 20
    assert b"fork" in run.log.lower() and b"all started" not in run.log, run.log[-300:]
    assert not folder.exists()
    left = subprocess.run(["pgrep", "-f", "sleep 301"], capture_output=True, text=True).stdout
    assert left == "", f"processes of the run are still alive: {left}"


@NEEDS_SANDBOX
def test_the_sandbox_bounds_its_disk_and_shows_nothing_of_the_host(tmp_path):
    """Inside: a private, writable /tmp and scratch folder, each a tmpfs that refuses what
    goes past its size (one large file, or many small ones); and neither the mount table, nor
    pid 1's command line, nor the files the Python installation shows name the clone, the data
    or the grader's working directory."""
    import subprocess

    from helper_lib.assets.datasets import resolve_data_root
    from helper_lib.tools.sandbox import TMP_MB, WORK, hidden_files, sandbox_command

    (tmp_path / "lib" / "data" / "pretrained").mkdir(parents=True)
    (tmp_path / "models").mkdir()
    for folder in tmp_path.rglob("*"):
        folder.chmod(0o755)
    hosts = sorted({str(REPO), str(Path.cwd().resolve()), str(resolve_data_root())})
    site = [p for p in __import__("sys").path if p.endswith("-packages")]
    script = (
        f"cd {WORK} && cat submission.ipynb && echo && echo hi > /tmp/note && cat /tmp/note; "
        f"head -c {TMP_MB + 10}M /dev/zero > /tmp/big 2>/dev/null; echo tmp=$?; "
        "head -c 70M /dev/zero > big 2>/dev/null; echo one=$?; rm -f big; "
        "for i in 1 2 3 4 5 6 7 8; do head -c 10M /dev/zero > f$i 2>/dev/null || break; done; "
        "echo many=$i; ls -ld /tmp . | cut -c1-10 | tr '\\n' ' '; echo; "
        "found=$( (cat /proc/self/mountinfo /proc/1/cmdline /proc/self/environ; "
        f"find {' '.join(site)} -maxdepth 3 -type f \\( -name '*.pth' -o -name '__editable__*' "
        "-o -name '*.json' -o -name '*.egg-link' -o -name '*.txt' \\) -exec cat {} + ) "
        f"| grep -c -a -F -f {WORK}/hosts); echo named=$found")
    needles = "\n".join(hosts).encode()
    launch = sandbox_command(["sh", "-c", script],
                             {"submission.ipynb": b"mine", "hosts": needles},
                             tmp_path / "lib", None, tmp_path / "models", disk_mb=64)
    try:
        out = subprocess.run(launch.cmd, capture_output=True, text=True, timeout=120,
                             env={"PATH": "/usr/bin:/bin"}, pass_fds=launch.pass_fds).stdout
    finally:
        launch.close()
    assert out.split() == ["mine", "hi", "tmp=1", "one=1", "many=7", "drwxrwxrwt",
                           "drwxrwxrwt", "named=0"], out
    assert [Path(f).name for f in hidden_files()] == [Path(f).name for f in hidden_files(
        folders=[REPO])]  # here, what is hidden is the editable install of the clone


def test_a_result_built_to_slow_the_nesting_scan_is_read_at_once():
    import time

    text = b'"\\' * 1_000_000  # 2 MB of an escape after an escape, never closed
    t0 = time.perf_counter()
    data, why = parse_json(text, 4_000_000, "the answers")
    assert data is None and "not valid JSON" in why and time.perf_counter() - t0 < 2


@pytest.mark.skipif(not __import__("helper_lib.tools.sandbox", fromlist=["x"]).cpu_shared(),
                    reason="no cpuset or cpu cgroup here (it needs root)")
def test_a_run_spinning_on_every_core_leaves_its_neighbour_its_share():
    """Two runs at once (``--jobs 2``), each in a cpu cgroup of its own: one spins four
    processes, each in a session of its own (which escapes the kernel's per-session fairness),
    and the other's CPU-bound loop takes about as long as it does alone; without the cgroups it
    took 2.6 times as long (AMD EPYC, 2 cores)."""
    import subprocess
    import sys
    import time

    from helper_lib.tools.grading import run_with_log_tail
    from helper_lib.tools.sandbox import RunCap, cores_for, limits

    honest = [sys.executable, "-c", "import time\nt = time.perf_counter()\nx = 0\n"
              "for i in range(4_000_000):\n    x += i\nprint(time.perf_counter() - t)"]
    spin = "for i in 1 2 3 4; do setsid sh -c 'while :; do :; done' & done; wait"

    def timed(capped: bool) -> float:
        with RunCap(64, cpus=cores_for(0, 2) if capped else None) as cap:
            assert cap.cpu_capped == capped
            run = run_with_log_tail(honest, {"PATH": "/usr/bin:/bin"}, 60, limits(1000, cap),
                                    cleanup=cap.kill_all)
        return float(run.log)

    def beside_a_spinner(capped: bool) -> float:
        with RunCap(64, cpus=cores_for(1, 2) if capped else None) as spinner:
            proc = subprocess.Popen(["sh", "-c", spin], preexec_fn=limits(1000, spinner))
            time.sleep(0.3)
            taken = min(timed(capped), timed(capped))  # the better of two: no flaking
            proc.kill()
        proc.wait()
        return taken

    alone = min(timed(True), timed(True))
    beside, uncapped = beside_a_spinner(True), beside_a_spinner(False)
    # the caps are what keeps it: without them the same neighbour takes far longer
    assert beside < 0.7 * uncapped, f"capped {beside:.2f} s, uncapped {uncapped:.2f} s"
    assert beside < 2 * alone, f"alone {alone:.2f} s, beside a spinning run {beside:.2f} s"


def test_the_runner_reads_notebooks_without_jsonschema_s_unused_iri_checker():
    """grading_run.skip_unused_iri_checker: nbformat then imports without rfc3987_syntax (1.3 s
    of Lark parsers per graded run), and still validates a notebook and refuses a broken one."""
    import subprocess
    import sys

    tools = REPO / "helper_lib" / "tools"
    code = (f"import sys\nsys.path.insert(0, {str(tools)!r})\nimport grading_run\n"
            "grading_run.skip_unused_iri_checker()\nimport nbformat\n"
            f"nb = nbformat.read({str(SOURCE)!r}, as_version=4)\nnbformat.validate(nb)\n"
            "nb.cells[0]['cell_type'] = 'nonsense'\n"
            "try:\n    nbformat.validate(nb)\nexcept nbformat.ValidationError:\n"
            "    print('refused')\n"
            "print(sys.modules.get('rfc3987_syntax') is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.split() == ["refused", "False"]


_LEAK = """import os, sys, math, torch
import helper_lib.tools.checks as checks
LEAKED = 42                                       # a global
for path in ("/tmp/leak.txt", "leak.txt", os.path.expanduser("~/leak.txt")):
    try:
        open(path, "w").write("from the last submission")  # a file
    except OSError:
        pass
checks.check = lambda *args, **kwargs: print("✓ correct")  # a monkey-patched module
math.log = lambda *args: 0.0
torch.set_default_dtype(torch.float64)            # torch's settings
torch.set_num_threads(1)
os.environ["LEAKED"] = "1"
sys.modules["leaked_module"] = sys"""

_CLEAN = """import os, sys, math, torch
import helper_lib.tools.checks as checks
leaks = [name for name, leaked in [
    ("global", "LEAKED" in globals()),
    ("file", any(os.path.exists(p) for p in ("/tmp/leak.txt", "leak.txt",
                                              os.path.expanduser("~/leak.txt")))),
    ("module", checks.check.__name__ != "check" or math.log(math.e) != 1.0
               or "leaked_module" in sys.modules),
    ("torch", torch.get_default_dtype() != torch.float32),
    ("environment", "LEAKED" in os.environ)] if leaked]
print("leaks:", leaks)
if leaks:  # an answer that scores 0 where anything carried over
    answer_1 = (torch.zeros(3), 0.0)"""


_PROBE = """import os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines()
              if ":" in line)
nobody, none = "65534 65534 65534 65534", "0" * 16
wrong = [key for key, want in [("Uid", nobody), ("Gid", nobody), ("Groups", ""),
                               ("CapInh", none), ("CapPrm", none), ("CapEff", none),
                               ("CapBnd", none), ("CapAmb", none), ("NoNewPrivs", "1")]
         if " ".join(status.get(key, "?").split()) != want]
others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
if len(others) > 3:  # bubblewrap's first process, the holder or none, the runner
    wrong.append(f"sees {len(others)} other processes")
if os.readlink("/proc/self") != str(os.getpid()):  # its pid is not of the sandbox's /proc
    wrong.append("is outside its sandbox's PID namespace")
print("privileged:", wrong)
if wrong:  # an answer that scores 0 where the kernel is privileged or sees too much
    answer_1 = (torch.zeros(3), 0.0)"""


def test_the_leak_check_sees_each_leak_within_one_process(tmp_path):
    """The positive control of #36's isolation check (the class above runs "leaker", then
    "zz_victim", each in a process of its own: the victim keeps its point): run one after the
    other in one process, the check sees every leak."""
    import subprocess

    control = subprocess.run([sys.executable, "-c", _LEAK + "\n" + _CLEAN], cwd=tmp_path,
                             env={**os.environ, "HOME": str(tmp_path)}, capture_output=True,
                             text=True, timeout=120, check=True)
    Path("/tmp/leak.txt").unlink(missing_ok=True)
    assert "leaks: ['global', 'file', 'module', 'torch', 'environment']" in control.stdout


_STATUS = ("Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t\n"
           "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
           "CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n")


@pytest.mark.parametrize("key, value", [("Uid", "0\t0\t0\t0"), ("Gid", "65534\t0\t65534\t65534"),
                                        ("Groups", "0"), ("CapBnd", "000001ffffffffff"),
                                        ("CapAmb", "0000000000000001"), ("NoNewPrivs", "0")])
def test_a_forked_run_that_would_keep_a_privilege_is_caught(key, value):
    """The zygote's child checks /proc/self/status before any runner or kernel starts; each
    planted privilege is named (and the run stops: drop_privileges raises)."""
    assert unprivileged(_STATUS) == []
    planted = re.sub(rf"^{key}:.*$", f"{key}:\t{value}", _STATUS, flags=re.M)
    assert unprivileged(planted) == [f"{key} is {' '.join(value.split())!r}"]
    assert unprivileged(_STATUS.replace("NoNewPrivs:\t1\n", "")) == ["NoNewPrivs is '(missing)'"]


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping root's privileges needs root")
def test_dropping_privileges_leaves_root_nothing():
    """drop_privileges, in a child of root: nobody, no groups, every capability set empty,
    no_new_privs, as the kernel's /proc/self/status reports it; and root is out of reach."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            drop_privileges()
            try:
                os.setuid(0)
                code = 3
            except PermissionError:
                code = 0 if unprivileged() == [] else 2
        finally:
            os._exit(code)
    os.close(write)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    os.close(read)


def test_without_root_or_when_told_the_runs_start_from_scratch(monkeypatch, tmp_path):
    """The zygote needs root; without it (or with VAE_GRADE_ZYGOTE=0) grade says how the runs
    start, and starts no zygote."""
    lines: list[str] = []
    monkeypatch.setattr(grading.os, "geteuid", lambda: 1000)
    assert grading._start_zygote(tmp_path, None, tmp_path, [], lines.append) is None
    assert lines == ["runs start from scratch: forking them from a zygote needs root"]
    monkeypatch.setenv("VAE_GRADE_ZYGOTE", "0")
    assert grading._start_zygote(tmp_path, None, tmp_path, [], lines.append) is None
    assert lines[1:] == ["runs start from scratch: VAE_GRADE_ZYGOTE=0"]


@NEEDS_SANDBOX
@pytest.mark.skipif(os.geteuid() != 0, reason="the zygote needs root")
def test_the_zygote_keeps_five_capabilities_and_one_socket(tmp_path):
    """The zygote (root, in a sandbox of its own) holds exactly ZYGOTE_CAPABILITIES, in its
    permitted, effective and bounding sets, none inheritable or ambient, with no_new_privs;
    besides stdin, stdout and stderr its one descriptor is the grader's socket; it ends when the
    grader closes it. (As root, bubblewrap alone would have left it all of root's.)"""
    from helper_lib.tools.sandbox import ZYGOTE_CAPABILITIES, hidden_files
    from helper_lib.tools.zygote import _CAP_NUMBERS

    root = tmp_path / "stage"
    root.mkdir()
    pretrained = grading._stage(root, grading._inputs({"03_logvar_trick"}), "models")
    lib = grading._library_copy(root, pretrained, True)
    lines: list[str] = []
    zygote = grading._start_zygote(lib, None, pretrained, hidden_files(), lines.append)
    assert zygote is not None, lines
    try:
        bwrap = zygote.proc.pid
        [pid] = Path(f"/proc/{bwrap}/task/{bwrap}/children").read_text().split()
        status = dict(line.split(":\t", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
        five = f"{sum(1 << _CAP_NUMBERS[name] for name in ZYGOTE_CAPABILITIES):016x}"
        assert five == "00000000002401c0"
        assert [status[k] for k in ("CapPrm", "CapEff", "CapBnd")] == [five] * 3
        assert [status[k] for k in ("CapInh", "CapAmb", "NoNewPrivs")] == ["0" * 16] * 2 + ["1"]
        fds = {fd.name: os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        assert len(fds) == 4 and [t for fd, t in fds.items() if fd not in "012"][0].startswith(
            "socket:")
        assert str(REPO).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        zygote.close()
    assert zygote.proc.poll() is not None
