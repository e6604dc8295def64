"""What ``grade`` writes after the runs: the platforms' files, and a class graded in shards.

No kernel and no sandbox: each run is replaced by a deterministic fake that fills in the answers
(``grading._run_one``), and the grader's own scoring, reports and writers do the rest. The
formats are checked against what the platforms publish:

* Canvas: the rules of its gradebook importer (instructure/canvas-lms,
  ``app/models/gradebook_importer.rb``): a header row whose first cells are ``Student`` and
  ``ID``, then ``SIS User ID`` and ``SIS Login ID``, then ``Section`` as the last column about
  the student; a ``Points Possible`` row; a score is a number or blank (no score).
* Moodle: its CSV grade import (``grade/import/csv/classes/load_data.php``) maps one column to
  the user and refuses the whole file at a user it cannot find, and takes a blank identity for
  the previous row's user; a grade is a number, or blank for none.
* Gradescope: the autograder's ``results.json`` (gradescope-autograders.readthedocs.io,
  "Autograder Specifications").
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import nbformat
import pytest
import torch

from helper_lib.assets.project import VERSION
from helper_lib.tools import cli
from helper_lib.tools.exercises import answer_to_plain
from helper_lib.tools.grading import GradingError, grade
from helper_lib.tools.lms import NOT_ON_ROSTER, VISIBILITIES, gradescope_results
from helper_lib.tools.shards import MANIFEST, merge, shard_of

NOTEBOOK = "03_logvar_trick"
STUDENTS = ["ann", "bo", "cy", "dee", "eve", "fay", "gus", '=HYPERLINK("x","appeal")']
RIGHT = {"03.1": answer_to_plain("03.1", (torch.exp(torch.tensor([-4.0, 0.0, 2.0]) / 2),
                                          2 * math.log(0.1))),
         "03.3": [0.5, -1.0]}
WRONG = {"03.1": [[1.0, 1.0, 1.0], 0.0], "03.3": [0.0, 0.0]}
#: The references of the exercises above, which no output may show (03.1: sigmas and a
#: log-variance; 03.3: mu's gradient).
REFERENCES = [math.exp(-2), math.exp(1), 2 * math.log(0.1)]
ROSTER = ("Student,Name,Canvas_ID,SIS_User_ID,Login_ID,Section,Email,Notes\n"
          "ann,\"Ann, A.\",101,S01,ann1,L01,ann@uni.example,keen\n"
          "bo,Bo B,102,S02,bo2,L01,bo@uni.example,\n"
          "cy,Cy C,103,S03,cy3,L02,cy@uni.example,\n"
          "ghost,Gho St,109,S09,gh9,L02,gh@uni.example,never came\n")


def _fake_run(sub, *args, **kwargs) -> None:
    """A run that 'answers' by the student's name: the same answers for the same name."""
    h = int(hashlib.sha256(sub.student.encode()).hexdigest(), 16)
    sub.result = {"seconds": 2.0, "answers": {k: (RIGHT if (h >> i) % 3 else WRONG)[k]
                                              for i, k in enumerate(RIGHT)},
                  "errors": [{"cell": 4, "error": "NameError: name '<b>x</b>' is not defined"}]
                  if h % 2 else []}


@pytest.fixture(scope="module")
def fake_grading(tmp_path_factory):
    """``grade`` with the runs replaced by :func:`_fake_run` (no sandbox, no kernel), and a
    class of nine: eight notebooks of 03 and one file that is no notebook."""
    import helper_lib.tools.grading as grading
    import helper_lib.tools.sandbox as sandbox

    root = tmp_path_factory.mktemp("outputs")
    subs = root / "S"
    for student in STUDENTS:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"# {student}")])
        nb.metadata["helper_lib"] = {"notebook": NOTEBOOK, "version": VERSION}
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / "lab.ipynb")
    (subs / "zed").mkdir()
    (subs / "zed" / "lab.ipynb").write_text("not a notebook")
    (root / "roster.csv").write_text(ROSTER, encoding="utf-8-sig")  # as Excel saves CSV UTF-8
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sandbox, "_bwrap", lambda: None)
        mp.setattr(grading, "_inputs", lambda notebooks: root)
        mp.setattr(grading, "_library_copy", lambda where, *args: where)
        mp.setattr(grading, "_run_one", _fake_run)

        def run(out: str, **options) -> list[str]:
            lines: list[str] = []
            options = {"formats": ["canvas", "moodle", "gradescope"], "feedback": True,
                       "similarity": True, "roster": root / "roster.csv", **options}
            grade([subs], root / out, unprotected=True, log=lines.append,
                  **{"timeout": 30, **options})
            return lines

        yield {"root": root, "subs": subs, "run": run, "whole": run("whole")}


def _table(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _reports(out: Path) -> dict[str, dict]:
    return {r["student"]: r for r in (json.loads(p.read_text()) for p in
                                      (out / "reports").glob("*.json"))}


def test_canvas_csv_follows_the_gradebook_importers_rules(fake_grading):
    out = fake_grading["root"] / "whole"
    table = _table(out / "canvas.csv")
    header, possible, rows = table[0], table[1], table[2:]
    # gradebook_importer.rb: header? and update_column_count
    assert len(header) > 3 and "Student" in header[0] and "ID" in header[1]
    assert header[2:5] == ["SIS User ID", "SIS Login ID", "Section"]
    assert header[5:] == [NOTEBOOK]  # one assignment column per notebook
    assert "Points Possible" in possible[0] and possible[5:] == ["3"]
    assert all(len(row) == len(header) for row in table)
    for row in rows:
        assert row[0] and (row[1] == "" or row[1].isdigit())
        assert row[5] == "" or 0 <= float(row[5]) <= 3
    by_name = {row[0]: row for row in rows}
    totals = {s: r["total"] for s, r in _reports(out).items()}
    assert by_name["Ann, A."] == ["Ann, A.", "101", "S01", "ann1", "L01", str(totals["ann"])]
    assert by_name["Gho St"][1:] == ["109", "S09", "gh9", "L02", ""]  # no submission: no score
    assert by_name["dee"] == ["dee", "", "", "", "", str(totals["dee"])]  # not on the roster
    assert by_name["zed"][5] == "0"  # handed in no notebook: 0, the reason in the report
    assert "'=HYPERLINK(\"x\",\"appeal\")" in by_name  # a name is never a formula
    assert [r[0] for r in rows[:4]] == ["Ann, A.", "Bo B", "Cy C", "Gho St"]  # roster's order


def test_a_roster_missing_students_or_naming_absent_ones_costs_a_row_and_one_line(fake_grading):
    lines = fake_grading["whole"]
    for platform in ("canvas", "moodle"):
        ours = [line for line in lines if line.startswith(f"WARNING: {platform}:")]
        assert len(ours) == 2, ours
        assert "6 graded student(s) not on the roster" in ours[0] and "dee" in ours[0]
        assert "1 student(s) on the roster handed in nothing" in ours[1]
        assert ours[1].endswith(": ghost")
    rows = _table(fake_grading["root"] / "whole" / "canvas.csv")[2:]
    assert len(rows) == len(STUDENTS) + 1 + 1  # the class, zed, and the ghost


def test_moodle_csv_never_leaves_a_row_without_an_identity(fake_grading):
    out = fake_grading["root"] / "whole"
    table = _table(out / "moodle.csv")
    header, rows = table[0], table[1:]
    assert header == ["Full name", "Email address", "ID number", "Username", NOTEBOOK]
    assert len(set(header)) == len(header)
    totals = {s: r["total"] for s, r in _reports(out).items()}
    for row in rows:
        assert all(row[1:4]), row  # load_data.php: a blank identity is the previous row's user
        assert row[4] == "" or float(row[4]) == int(row[4])
    ann = next(r for r in rows if r[1] == "ann@uni.example")
    assert ann == ["Ann, A.", "ann@uni.example", "S01", "ann1", str(totals["ann"])]
    dee = next(r for r in rows if r[0] == "dee")
    assert dee[1:4] == [NOT_ON_ROSTER + "dee"] * 3 and " " in NOT_ON_ROSTER
    assert next(r for r in rows if r[0] == "Gho St")[4] == ""


def test_gradescope_results_follow_the_specification(fake_grading):
    out = fake_grading["root"] / "whole"
    reports = _reports(out)
    files = sorted((out / "gradescope").glob("*.json"))
    assert len(files) == len(reports) == len(STUDENTS) + 1
    allowed = {"score", "execution_time", "output", "output_format", "test_output_format",
               "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
               "leaderboard"}
    test_keys = {"score", "max_score", "status", "name", "name_format", "number", "output",
                 "output_format", "tags", "visibility", "extra_data"}
    for path in files:
        result = json.loads(path.read_text())
        report = json.loads((out / "reports" / path.name).read_text())
        assert set(result) <= allowed and result["stdout_visibility"] in VISIBILITIES
        assert result["score"] == sum(t["score"] for t in result["tests"]) == report["total"]
        assert result.get("execution_time") == (None if report["seconds"] is None else 2)
        for test in result["tests"]:
            assert set(test) <= test_keys and test["visibility"] == "visible"
            assert isinstance(test["name"], str) and isinstance(test["output"], str)
            assert test["max_score"] == 1.0 and test["status"] in ("passed", "failed")
        if report["notebook"] is None:
            assert result["tests"] == [] and "not a notebook" in result["output"]
    ann = gradescope_results(reports["ann"])
    assert [t["number"] for t in ann["tests"]] == ["03.1", "03.2", "03.3"]
    assert ann["tests"][1]["output"] == "no answer. answer_2 was not harvested"
    wrong = gradescope_results({"exercises": {"03.1": {"points": 0, "status": "wrong",
                                                       "message": "hint: σ² = exp(log σ²)"}}},
                               visibility="after_due_date")
    assert wrong["tests"][0]["output"] == "wrong. hint: σ² = exp(log σ²)"
    assert wrong["tests"][0]["visibility"] == wrong["visibility"] == "after_due_date"
    text = " ".join(p.read_text() for p in files)
    for reference in REFERENCES:
        for decimals in range(1, 6):
            assert f"{reference:.{decimals}f}".lstrip("-") not in text, reference
    with pytest.raises(ValueError, match="visibility 'public'"):
        gradescope_results(reports["ann"], visibility="public")


def _cli(capsys, *args) -> tuple[int, str]:
    code = cli.main([*map(str, args)])
    return code, capsys.readouterr().err.strip()


def test_bad_rosters_and_formats_are_one_line_and_exit_2_with_nothing_written(
        fake_grading, tmp_path, capsys):
    subs = fake_grading["subs"]
    rosters = {"missing.csv": None, "nostudent.csv": "name,email\nAnn,a@x\n",
               "twice.csv": "student,email\nann,a@x\nann,b@x\n",
               "latin1.csv": "student,name\nzoë,Zoë\n".encode("latin-1"),
               "noone.csv": "student,email\n,a@x\n", "noid.csv": "student,section\nann,L01\n"}
    expected = {"missing.csv": "no such file", "nostudent.csv": "no 'student' column",
                "twice.csv": "row 3 names 'ann' again", "latin1.csv": "not UTF-8",
                "noone.csv": "row 2 has no student",
                "noid.csv": "--format moodle needs one of the columns email, sis_user_id"}
    for name, content in rosters.items():
        if isinstance(content, str):
            (tmp_path / name).write_text(content)
        elif content is not None:
            (tmp_path / name).write_bytes(content)
        code, err = _cli(capsys, "grade", subs, "--out", tmp_path / "out", "--unprotected",
                         "--format", "moodle", "--roster", tmp_path / name)
        assert code == 2 and err.count("\n") == 0 and expected[name] in err, (name, err)
    code, err = _cli(capsys, "grade", subs, "--out", tmp_path / "out", "--format", "canvas")
    assert code == 2 and "--format canvas needs --roster FILE" in err
    code, err = _cli(capsys, "grade", subs, "--out", tmp_path / "out", "--format", "blackboard")
    assert code == 2 and "--format 'blackboard' is none of canvas, moodle, gradescope" in err
    assert not (tmp_path / "out").exists()


# --- one class on several machines --------------------------------------------------------------

@pytest.fixture(scope="module")
def sharded(fake_grading):
    """The class graded as three shards (given the command line's options in another order),
    and merged."""
    root, run = fake_grading["root"], fake_grading["run"]
    logs = {k: run(f"shard{k}", shard=(k, 3), formats=["gradescope", "moodle", "canvas"])
            for k in (1, 2, 3)}
    merged: list[str] = []
    rows = merge([root / "shard3", root / "shard1", root / "shard2"], root / "merged",
                 log=merged.append)
    return {"logs": logs, "rows": rows, "merge_log": merged}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_shards_merged_give_the_one_machine_grades_byte_for_byte(fake_grading, sharded):
    root = fake_grading["root"]
    whole, merged = _files(root / "whole"), _files(root / "merged")
    assert merged["grades.csv"] == whole["grades.csv"]
    assert merged == whole  # and the reports, feedback, exports and figure
    # grades.csv, scores.png, canvas.csv, moodle.csv, similarity.html; a report, a feedback
    # page and a results.json per student
    assert len(whole) == 5 + 3 * (len(STUDENTS) + 1)
    shares = [json.loads((root / f"shard{k}" / MANIFEST).read_text())["students"]
              for k in (1, 2, 3)]
    assert all(shares) and sorted(sum(shares, [])) == sorted([*STUDENTS, "zed"])
    for k, share in enumerate(shares, start=1):  # a shard writes no Canvas or Moodle file,
        assert not (root / f"shard{k}" / "canvas.csv").exists()  # and only the first compares
        assert (root / f"shard{k}" / "similarity.html").exists() == (k == 1)  # the whole class
        assert sorted(p.stem for p in (root / f"shard{k}" / "feedback").glob("*.html")) == \
            sorted(p.stem for p in (root / f"shard{k}" / "reports").glob("*.json"))
        assert all(shard_of(s, 3) == k for s in share)
    assert "merged 3 shard(s)" in sharded["merge_log"][-1]


def test_a_students_shard_is_stable_when_the_class_grows():
    before = {f"student{i}": shard_of(f"student{i}", 4) for i in range(200)}
    after = {f"student{i}": shard_of(f"student{i}", 4) for i in range(300)}
    assert all(after[s] == k for s, k in before.items())
    assert set(before.values()) == {1, 2, 3, 4}
    assert shard_of("zoë", 4) == shard_of("zoë", 4) and 1 <= shard_of("\udcff", 4) <= 4


def test_merge_refuses_what_is_not_one_whole_run_and_writes_nothing(fake_grading, sharded,
                                                                   tmp_path, capsys):
    root = fake_grading["root"]
    shards = [root / f"shard{k}" for k in (1, 2, 3)]
    import helper_lib.tools.shards as shards_module

    other, older = tmp_path / "other1", tmp_path / "older2"
    fake_grading["run"](str(other), shard=(1, 3), timeout=60)  # shard 1, another setting
    with pytest.MonkeyPatch.context() as mp:  # shard 2, by another version of helper_lib
        mp.setattr(shards_module, "VERSION", "0.3.0")
        fake_grading["run"](str(older), shard=(2, 3))
    out = tmp_path / "out"
    cases = [([shards[0], shards[1]], "shard 3/3 missing: merge needs all 3"),
             ([shards[0], shards[1], shards[1], shards[2]], "shard 2/3 is given twice"),
             ([other, shards[1], shards[2]], "shards of different runs"),
             ([shards[0], older, shards[2]], "shards of different helper_lib versions"),
             ([shards[0], fake_grading["subs"]], "no shard.json: not the output of grade --shard"),
             ([], "no shard folders given")]
    for folders, why in cases:
        code, err = _cli(capsys, "grade", "merge", *folders, "--out", out)
        assert code == 2 and err.count("\n") == 0 and why in err, (why, err)
        assert not out.exists() and not list(tmp_path.glob(".out-merging-*"))
    code, err = _cli(capsys, "grade", "merge", *shards, "--out", root / "merged")
    assert code == 2 and "already holds grades" in err


def test_a_shard_out_of_range_is_one_line_and_exit_2(fake_grading, tmp_path, capsys):
    for shard, why in [("0/2", "--shard 0/2 is out of range"), ("3/2", "--shard 3/2 is out"),
                       ("a/b", "--shard 'a/b' is not K/N"), ("1/0", "--shard 1/0 is out"),
                       ("2", "--shard '2' is not K/N")]:
        code, err = _cli(capsys, "grade", fake_grading["subs"], "--out", tmp_path / "out",
                         "--unprotected", "--shard", shard)
        assert code == 2 and err.count("\n") == 0 and why in err, (shard, err)
    assert not (tmp_path / "out").exists()
    with pytest.raises(GradingError, match="out of range"):
        grade([fake_grading["subs"]], tmp_path / "out", unprotected=True, shard=(4, 3))


def test_a_shard_with_no_student_of_a_small_class_still_merges(fake_grading, tmp_path,
                                                               monkeypatch):
    """More shards than the class fills (a matrix is fixed before the class is known): the
    empty ones write their manifest, an empty grades.csv and a figure that says so."""
    import warnings

    import helper_lib.tools.grading as grading
    import helper_lib.tools.sandbox as sandbox

    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    monkeypatch.setattr(grading, "_inputs", lambda notebooks: tmp_path)
    monkeypatch.setattr(grading, "_library_copy", lambda where, *args: where)
    monkeypatch.setattr(grading, "_run_one", _fake_run)
    (tmp_path / "S" / "ann").mkdir(parents=True)
    (tmp_path / "S" / "ann" / "lab.ipynb").write_bytes(
        (fake_grading["subs"] / "ann" / "lab.ipynb").read_bytes())
    n = 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty figure too draws without a warning
        for k in range(1, n + 1):
            grade([tmp_path / "S"], tmp_path / f"s{k}", unprotected=True, shard=(k, n),
                  log=lambda line: None)
    empty = [k for k in range(1, n + 1) if k != shard_of("ann", n)]
    assert (tmp_path / f"s{empty[0]}" / "grades.csv").read_bytes() == \
        b"student,03.1,03.2,03.3,total\r\n"
    rows = merge([tmp_path / f"s{k}" for k in range(1, n + 1)], tmp_path / "merged",
                 log=lambda line: None)
    grade([tmp_path / "S"], tmp_path / "whole", unprotected=True, log=lambda line: None)
    assert [r["student"] for r in rows] == ["ann"]
    assert (tmp_path / "merged" / "grades.csv").read_bytes() == \
        (tmp_path / "whole" / "grades.csv").read_bytes()
