"""The grades table that ``grade`` and ``grade merge`` write: ``grades.csv`` with every text cell
safe in a spreadsheet (:func:`csv_cell`), and ``scores.png``; and :class:`GradingError`, the
grader's one error for bad input. Below :mod:`~helper_lib.tools.grading`,
:mod:`~helper_lib.tools.lms` and :mod:`~helper_lib.tools.shards`, which all use them."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["GradingError", "csv_cell", "write_grades"]


class GradingError(Exception):
    """Bad input: the command stops before grading anything (exit status 2)."""


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A cell of grades.csv that a spreadsheet shows as text: a string that starts like a
    formula gets a leading ``'``, as OWASP advises; numbers are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


#: The grid's marks, each with its own colour (Okabe-Ito, told apart under colour-vision
#: deficiency) and its own symbol, so that colour is never the only carrier.
_MARKS = {1: ("\u2713", "#0072B2", "white"),   # ✓ right: blue
          0: ("\u2717", "#E69F00", "black"),   # ✗ wrong or missing: orange
          -1: ("\u2013", "#DDDDDD", "black")}  # – not in that notebook: grey


def _figure(rows: list[dict[str, Any]], columns: list[str], out: Path) -> None:
    """``scores.png``: the share of the class that got each exercise right (bars with their
    percentage written on them), and a grid with a row per student and a mark in each cell:
    ✓ right, ✗ wrong or missing, – not in that student's notebook. Text is 9 pt or larger at
    any class size: the figure grows with the class instead."""
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.array([[row.get(c, np.nan) if row.get(c, "") != "" else np.nan for c in columns]
                     for row in rows], dtype=float).reshape(len(rows), len(columns))
    height = 2.2 + 0.24 * len(rows)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 0.6 * len(columns) + 2.5), height),
                                      gridspec_kw={"height_ratios": [1.6, max(1, len(rows) / 6)]},
                                      layout="constrained")
    if not columns or not rows:  # nobody handed in a notebook of the course, or a shard is empty
        for ax in (top, bottom):
            ax.set_axis_off()
        top.set_title(f"{len(rows)} submissions, none of them a notebook of the course" if rows
                      else "no submissions in this share of the class")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of a column of all NaN
        share = np.nan_to_num(np.nanmean(grid, axis=0)) if len(rows) else np.zeros(len(columns))
    top.bar(range(len(columns)), share, color=_MARKS[1][1])
    for x, value in enumerate(share):
        top.text(x, value + 0.03, f"{value:.0%}", ha="center", va="bottom", fontsize=9)
    top.set_xticks(range(len(columns)), columns, fontsize=9)
    top.set_ylim(0, 1.15)
    top.set_ylabel("share correct")
    top.set_title(f"{len(rows)} submissions: the share that got each exercise right")
    code = np.nan_to_num(grid, nan=-1).round().astype(int)
    bottom.imshow(code, cmap=matplotlib.colors.ListedColormap([_MARKS[k][1] for k in (-1, 0, 1)]),
                  vmin=-1.5, vmax=1.5, aspect="auto")
    for (y, x), value in np.ndenumerate(code):
        mark, _, ink = _MARKS[int(value)]
        bottom.text(x, y, mark, ha="center", va="center", color=ink, fontsize=9)
    bottom.set_xticks(range(len(columns)), columns, fontsize=9)
    bottom.set_yticks(range(len(rows)), [r["student"][:40] + ("…" if len(r["student"]) > 40
                                                               else "") for r in rows],
                      fontsize=9)
    for label in bottom.get_yticklabels():  # a name is text: "$x$" is no formula
        label.set_parse_math(False)
    bottom.set_title("\u2713 right (blue), \u2717 wrong or missing (orange), "
                     "\u2013 not in that notebook (grey)", fontsize=10)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_grades(out: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write ``out/grades.csv`` (``rows`` under the header ``student, *columns, total``, each
    text cell neutralised by :func:`csv_cell`) and ``out/scores.png`` (:func:`_figure`):
    ``grade`` and ``grade merge`` both write them so."""
    with open(Path(out) / "grades.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["student", *columns, "total"])
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    _figure([dict(row) for row in rows], list(columns), Path(out) / "scores.png")
