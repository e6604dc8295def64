"""``grade --format canvas|moodle|gradescope``: the class's scores in the files the platforms read.

All three are made from the same reports (:func:`helper_lib.tools.grading.grade`'s
``reports/<student>.json``), so they agree with ``grades.csv`` and with each other.

* **Canvas** (``canvas.csv``): the gradebook import CSV, as Canvas's importer reads it
  (instructure/canvas-lms, ``app/models/gradebook_importer.rb``): the header ``Student, ID,
  SIS User ID, SIS Login ID, Section``, then one column per assignment, here one per course
  notebook (its points, out of its number of exercises); a second row ``Points Possible``. A
  blank cell is no score (the importer reads blank and ``-`` alike).
* **Moodle** (``moodle.csv``): a CSV for Moodle's grade import (``grade/import/csv``), which
  asks which column identifies the user (``Email address``, ``ID number`` or ``Username`` here)
  and which column fills which grade item. Moodle refuses the whole file at a user it cannot
  find, and takes a row whose identity is blank as the previous row's user: so a row is never
  written with a blank identity (see :func:`moodle_rows`).
* **Gradescope** (``gradescope/<student>.json``): the autograder's ``results.json``
  (gradescope-autograders.readthedocs.io, "Autograder Specifications"), a test per exercise:
  its score, ``max_score``, the verdict and hint as its output, and its visibility. No reference
  value and no check's code is in a report, so none is in a results file.

Canvas and Moodle name students by the LMS's identities, which the grader does not know: they
come from a roster (:func:`read_roster`), a CSV that maps each submission's folder name to them.
A graded student missing from the roster, and a roster student who handed in nothing, each keep
a row, with one warning line per kind.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .grades import GradingError, csv_cell

__all__ = ["FORMATS", "ROSTER_COLUMNS", "Roster", "canvas_rows", "gradescope_results",
           "moodle_rows", "read_roster", "write_exports", "write_gradescope"]

#: What ``--format`` accepts.
FORMATS = ("canvas", "moodle", "gradescope")
#: The roster's columns: ``student`` is required (the submission's folder name, or its file
#: name without ``.ipynb``, as ``grade`` names it); the others are the LMS's identities.
ROSTER_COLUMNS = ("student", "name", "canvas_id", "sis_user_id", "login_id", "section", "email")
#: The roster columns that can identify a student in each format (at least one is required).
_IDENTITIES = {"canvas": ("canvas_id", "sis_user_id", "login_id", "name"),
               "moodle": ("email", "sis_user_id", "login_id")}
_MAX_ROSTER_BYTES = 20_000_000
#: What a Moodle row carries as its identity when the roster does not name the student: no
#: Moodle user has it (a username cannot hold spaces or ':'), so Moodle refuses the file instead
#: of giving the grade to someone else.
NOT_ON_ROSTER = "not on the roster: "


@dataclass(frozen=True)
class Roster:
    """A roster: each student's row (``ROSTER_COLUMNS``, missing ones as ``""``) by their
    submission's name, in the file's order; ``columns``: the known columns the file has."""

    people: dict[str, dict[str, str]]
    columns: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The roster as plain data (a shard's manifest carries it to ``grade merge``)."""
        return {"columns": list(self.columns), "people": self.people}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Roster:
        """The inverse of :meth:`to_json`."""
        return cls({str(k): {c: str(v.get(c, "")) for c in ROSTER_COLUMNS}
                    for k, v in data["people"].items()}, tuple(data["columns"]))


def read_roster(path: str | Path, formats: Sequence[str] = ()) -> Roster:
    """Read a roster CSV (UTF-8, a byte-order mark allowed, a header row; column names in any
    order and case; columns that are not :data:`ROSTER_COLUMNS` are ignored).

    Raises:
        GradingError: no such file, not UTF-8 text, no ``student`` column, a row without a
            student or a student named twice, or (for each of ``formats``) no column that can
            identify a student on that platform.
    """
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_ROSTER_BYTES:
            raise GradingError(f"--roster {path}: larger than {_MAX_ROSTER_BYTES // 10**6} MB")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise GradingError(f"--roster {path}: no such file") from None
    except UnicodeDecodeError:
        raise GradingError(f"--roster {path}: not UTF-8 text (save it as CSV UTF-8)") from None
    except OSError as err:
        raise GradingError(f"--roster {path}: cannot read it: {err}") from None
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise GradingError(f"--roster {path}: not a CSV file: {err}") from None
    if not table:
        raise GradingError(f"--roster {path}: empty; its first row names the columns "
                           f"({', '.join(ROSTER_COLUMNS)})")
    header = [h.strip().lower() for h in table[0]]
    known = tuple(c for c in ROSTER_COLUMNS if c in header)
    if "student" not in header:
        raise GradingError(f"--roster {path}: no 'student' column (the submission's folder "
                           f"name); its columns: {', '.join(ROSTER_COLUMNS)}")
    for fmt in formats:
        if fmt in _IDENTITIES and not set(_IDENTITIES[fmt]) & set(known):
            raise GradingError(f"--roster {path}: --format {fmt} needs one of the columns "
                               f"{', '.join(_IDENTITIES[fmt])} to identify students")
    where = {c: header.index(c) for c in known}
    people: dict[str, dict[str, str]] = {}
    for number, row in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        person = {c: (row[where[c]].strip() if where.get(c, len(row)) < len(row) else "")
                  for c in ROSTER_COLUMNS}
        student = person["student"]
        if not student:
            raise GradingError(f"--roster {path}: row {number} has no student")
        if student in people:
            raise GradingError(f"--roster {path}: row {number} names {student!r} again")
        people[student] = person
    return Roster(people, known)


def _notebook_points(report: Mapping[str, Any], notebooks: Sequence[str]) -> dict[str, Any]:
    """The report's points in its notebook's column, ``""`` in the others. A submission that is
    none of the course's notebooks (0 points, the reason in its report) gets its 0 where the
    class has one notebook only: which assignment it missed is then plain."""
    notebook = report.get("notebook")
    if notebook in notebooks:
        return {nb: (report.get("total", 0) if nb == notebook else "") for nb in notebooks}
    if len(notebooks) == 1:
        return {notebooks[0]: report.get("total", 0)}
    return dict.fromkeys(notebooks, "")


def _roster_order(reports: Sequence[Mapping[str, Any]], roster: Roster,
                  log: Callable[[str], None], platform: str) -> list[tuple[dict[str, str],
                                                                            Mapping | None]]:
    """``(roster row, report or None)``: the roster's students in its order, then the graded
    students it does not name (their rows have only the name); one warning line per kind."""
    by_student = {str(r.get("student")): r for r in reports}
    out = [(person, by_student.get(student)) for student, person in roster.people.items()]
    absent = [s for s in roster.people if s not in by_student]
    unknown = [s for s in by_student if s not in roster.people]
    out += [({**dict.fromkeys(ROSTER_COLUMNS, ""), "student": s}, by_student[s]) for s in unknown]

    def named(names: list[str]) -> str:
        return ", ".join(repr(n)[1:-1][:60] for n in names[:10]) + (
            f" and {len(names) - 10} more" if len(names) > 10 else "")

    if unknown:
        then = ("Canvas matches them by name or asks which student each is" if platform == "canvas"
                else "Moodle refuses the whole file at the first; add them to the roster or "
                     "delete their rows before importing")
        log(f"WARNING: {platform}: {len(unknown)} graded student(s) not on the roster, written "
            f"without an identity ({then}): {named(unknown)}")
    if absent:
        log(f"WARNING: {platform}: {len(absent)} student(s) on the roster handed in nothing, "
            f"written with blank scores (no score from this run; a grade entered by hand may "
            f"be cleared, so check them before importing): {named(absent)}")
    return out


def canvas_rows(reports: Sequence[Mapping[str, Any]], notebooks: Sequence[str],
                roster: Roster, log: Callable[[str], None] = print) -> list[list[Any]]:
    """Canvas's gradebook import table: the header, the ``Points Possible`` row, then a row per
    student (:func:`_roster_order`). A student without a name in the roster is named by their
    submission's name; text cells are neutralised for spreadsheets (:func:`grading.csv_cell`)."""
    from .exercises import NOTEBOOKS

    table: list[list[Any]] = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                               *notebooks],
                              ["Points Possible", "", "", "", "",
                               *(len(NOTEBOOKS[nb]) for nb in notebooks)]]
    for person, report in _roster_order(reports, roster, log, "canvas"):
        points = _notebook_points(report, notebooks) if report is not None else {}
        table.append([csv_cell(person["name"] or person["student"]),
                      *(csv_cell(person[c]) for c in ("canvas_id", "sis_user_id", "login_id",
                                                      "section")),
                      *(points.get(nb, "") for nb in notebooks)])
    return table


def moodle_rows(reports: Sequence[Mapping[str, Any]], notebooks: Sequence[str],
                roster: Roster, log: Callable[[str], None] = print) -> list[list[Any]]:
    """Moodle's grade import table: the header (``Full name, Email address, ID number,
    Username``, a column per notebook), then a row per student (:func:`_roster_order`). A graded
    student whom the roster does not name carries :data:`NOT_ON_ROSTER` and their name in each
    identity column, never a blank one: Moodle gives a row with a blank identity to the row
    before it."""
    table: list[list[Any]] = [["Full name", "Email address", "ID number", "Username",
                               *notebooks]]
    for person, report in _roster_order(reports, roster, log, "moodle"):
        ids = [person["email"], person["sis_user_id"], person["login_id"]]
        if not any(ids):
            ids = [NOT_ON_ROSTER + person["student"]] * 3
        points = _notebook_points(report, notebooks) if report is not None else {}
        table.append([csv_cell(person["name"] or person["student"]), *map(csv_cell, ids),
                      *(points.get(nb, "") for nb in notebooks)])
    return table


#: Gradescope's visibility settings for a test or a result (its specification's values).
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


def gradescope_results(report: Mapping[str, Any], visibility: str = "visible",
                       stdout_visibility: str = "hidden") -> dict[str, Any]:
    """One student's ``results.json`` for Gradescope from their report: a test per exercise
    (``name``, ``number``, ``score``, ``max_score`` 1, ``status``, ``output``: the verdict and
    the check's hint, ``visibility``), the total as ``score``, the run's time, and what went
    wrong with the run and their cells' errors as ``output``. The hints are the checks'
    messages, which name the step that went wrong; no reference value and no check's code is in
    a report. ``visibility`` (each test's and the whole result's) and ``stdout_visibility`` take
    :data:`VISIBILITIES`; ``stdout`` (the autograder's own log) is hidden by default.

    Raises:
        ValueError: a visibility that Gradescope does not know.
    """
    for value in (visibility, stdout_visibility):
        if value not in VISIBILITIES:
            raise ValueError(f"visibility {value!r}: one of {', '.join(VISIBILITIES)}")
    exercises = report.get("exercises") if isinstance(report.get("exercises"), Mapping) else {}
    tests = []
    for exercise_id, verdict in exercises.items():
        verdict = verdict if isinstance(verdict, Mapping) else {}
        points = float(verdict.get("points", 0) or 0)
        tests.append({"name": f"exercise {exercise_id}", "number": str(exercise_id),
                      "score": points, "max_score": 1.0,
                      "status": "passed" if points >= 1 else "failed",
                      "output": f"{verdict.get('status', '')}. {verdict.get('message', '')}",
                      "output_format": "text", "visibility": visibility})
    lines = []
    if report.get("problem"):
        lines.append(f"The run: {report['problem']}")
    errors = report.get("cell_errors") if isinstance(report.get("cell_errors"), list) else []
    for error in errors:
        if isinstance(error, Mapping):
            cell = error.get("cell")
            where = f"cell {cell + 1}" if isinstance(cell, int) and not isinstance(cell, bool) \
                else "a cell"
            lines.append(f"Error in {where}: {error.get('error', '')}")
    lines += [str(note) for note in (report.get("notes") or [])]
    result: dict[str, Any] = {"score": float(sum(t["score"] for t in tests)),
                              "output": "\n".join(lines) or "Every cell ran.",
                              "output_format": "text", "visibility": visibility,
                              "stdout_visibility": stdout_visibility, "tests": tests}
    if isinstance(report.get("seconds"), (int, float)):
        result["execution_time"] = round(report["seconds"])
    return result


def write_gradescope(report: Mapping[str, Any], path: str | Path,
                     visibility: str = "visible") -> Path:
    """Write :func:`gradescope_results` of ``report`` to ``path`` (``results.json`` on
    Gradescope: ``/autograder/results/results.json``), atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(gradescope_results(report, visibility), indent=1,
                                  ensure_ascii=False), encoding="utf-8")
    partial.replace(path)
    return path


def _write_csv(path: Path, table: Sequence[Sequence[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table)


def write_exports(out: str | Path, reports: Sequence[tuple[str, Mapping[str, Any]]],
                  notebooks: Sequence[str], formats: Sequence[str], roster: Roster | None,
                  log: Callable[[str], None] = print, whole_class: bool = True) -> list[Path]:
    """Write each of ``formats`` into ``out`` from ``(report file name, report)`` pairs in the
    class's order: ``canvas.csv`` and ``moodle.csv`` (only for the whole class: a shard leaves
    them to ``grade merge``), ``gradescope/<file name>.json``. ``notebooks``: the course
    notebooks of the class, one column each. Returns the paths written."""
    out, written = Path(out), []
    plain = [report for _, report in reports]
    for fmt, rows in (("canvas", canvas_rows), ("moodle", moodle_rows)):
        if fmt in formats and whole_class:
            if roster is None:
                raise GradingError(f"--format {fmt} needs --roster FILE")
            _write_csv(out / f"{fmt}.csv", rows(plain, notebooks, roster, log))
            written.append(out / f"{fmt}.csv")
    if "gradescope" in formats:
        for file_name, report in reports:
            written.append(write_gradescope(report, out / "gradescope" / f"{file_name}.json"))
    return written
