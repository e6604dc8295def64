"""``grade --feedback``: a page per student that they can read, made from their report alone.

Each page (``DIR/feedback/<student>.html``) shows the student's own score, each exercise's
points, verdict and hint (the check's message: the step that went wrong, never the value), what
went wrong with the run, and the errors of their own cells. It is written from that student's
report (:func:`helper_lib.tools.grading.grade`'s ``reports/<student>.json``) and nothing else,
so it cannot hold another student's data, a reference value or the checks' code: the report
holds none. The report's fields for the instructor (the file's path on the grader's machine,
the protections, the run time) are left out. Everything from the submission is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .pages import esc, page

__all__ = ["feedback_page", "write_feedback"]

#: How each status reads, with a mark of its own so that colour is never the only carrier.
_VERDICTS = {"correct": ("\u2713 correct", "right"), "wrong": ("\u2717 wrong", "wrong"),
             "no answer": ("\u2717 no answer", "wrong"),
             "unanswered": ("\u2717 not answered", "wrong")}
_MAX_TEXT = 2_000  # characters of one message or error shown (a report caps them already)


def _text(value: Any) -> str:
    text = str(value)
    return esc(text[:_MAX_TEXT] + ("…" if len(text) > _MAX_TEXT else ""))


def _exercise_rows(exercises: Mapping[str, Any]) -> list[str]:
    rows = []
    for exercise_id, verdict in exercises.items():
        verdict = verdict if isinstance(verdict, Mapping) else {}
        status = str(verdict.get("status", ""))
        shown, style = _VERDICTS.get(status, (status, "muted"))
        rows.append(f'<tr><th scope="row">{_text(exercise_id)}</th>'
                    f"<td>{_text(verdict.get('points', 0))} of 1</td>"
                    f'<td class="{style}">{esc(shown)}</td>'
                    f"<td>{_text(verdict.get('message', ''))}</td></tr>")
    return rows


def feedback_page(report: Mapping[str, Any]) -> str:
    """One student's feedback page (HTML) from their report: their score, each exercise's
    points, verdict and hint, the problem with their run, their cells' errors and the report's
    notes. Every value is escaped; nothing but the report is read."""
    student, notebook = report.get("student", ""), report.get("notebook")
    exercises = report.get("exercises") if isinstance(report.get("exercises"), Mapping) else {}
    what = f"notebook {notebook}" if notebook else "your submission"
    body = [f"<h1>Feedback on {esc(what)}</h1>",
            f"<p>For <strong>{_text(student)}</strong>. Score: <strong>"
            f"{_text(report.get('total', 0))} of {_text(report.get('of', 0))}</strong> points.</p>"]
    if report.get("problem"):
        body += ["<h2>What went wrong with the run</h2>", f"<p>{_text(report['problem'])}</p>"]
    body.append("<h2>Exercises</h2>")
    if exercises:
        body += ["<table>", "<caption>Each exercise: its points, the verdict, and what to do "
                 "next</caption>",
                 '<thead><tr><th scope="col">Exercise</th><th scope="col">Points</th>'
                 '<th scope="col">Verdict</th><th scope="col">What to do next</th></tr></thead>',
                 "<tbody>", *_exercise_rows(exercises), "</tbody>", "</table>"]
    else:
        body.append("<p>No exercise was scored (the reason is above).</p>")
    errors = report.get("cell_errors") if isinstance(report.get("cell_errors"), list) else []
    body.append("<h2>Errors in your cells</h2>")
    if errors:
        body.append("<p>Cells are counted from 1, markdown cells included; the grader ran your "
                    "notebook from the top.</p>")
        items = []
        for error in errors:
            error = error if isinstance(error, Mapping) else {"error": error}
            cell = error.get("cell")
            where = f"cell {cell + 1}" if isinstance(cell, int) and not isinstance(cell, bool) \
                else "a cell"
            items.append(f"<li>{esc(where)}: <code>{_text(error.get('error', ''))}</code></li>")
        body += ["<ul>", *items, "</ul>"]
    else:
        body.append("<p>None of your cells raised an error.</p>")
    notes = report.get("notes") if isinstance(report.get("notes"), list) else []
    if notes:
        body += ["<h2>Notes</h2>", "<ul>", *(f"<li>{_text(n)}</li>" for n in notes), "</ul>"]
    return page(f"Feedback for {student}: {what}", "\n".join(body))


def write_feedback(out: Path, reports: Iterable[tuple[str, Mapping[str, Any]]]) -> Path:
    """Write ``out/feedback/<file name>.html`` for each ``(file name, report)``; returns the
    folder. The file names are the reports' (:func:`helper_lib.tools.grading.grade` makes them
    safe and unique)."""
    folder = Path(out) / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, report in reports:
        (folder / f"{file_name}.html").write_text(feedback_page(report), encoding="utf-8")
    return folder
