"""Every figure of every notebook, as a smoke-mode run leaves it, says what it shows (issue #34).

The notebooks' smoke executions are the acceptance test's (``smoke_executed_notebooks`` in
conftest, which tests/test_open_anywhere.py fills; this file sorts after it, so nothing is
executed again). ``pytest -m slow`` holds the full-mode executions to the same check
(tests/test_notebooks_full.py), and a full site build reports it too.
"""

from __future__ import annotations

import nbformat

from helper_lib.plotting import MIN_TEXT_PT
from helper_lib.tools.accessibility import figure_problems, unbacked_alt_numbers


def test_every_figure_of_every_notebook_says_what_it_shows(
        smoke_executed_notebooks):
    """Alt text on every figure (accessibility.figure_problems) whose numbers an output prints
    (accessibility.unbacked_alt_numbers), and no text under 9 pt on any figure helper_lib drew
    (finish_figure records its smallest text in the output)."""
    problems, figures, measured = [], 0, 0
    for path in smoke_executed_notebooks:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
                if "image/png" not in output.get("data", {}):
                    continue
                figures += 1
                smallest = output.get("metadata", {}).get("image/png", {}).get(
                    "smallest_text_pt")
                measured += smallest is not None
                if smallest is not None and smallest < MIN_TEXT_PT:
                    problems.append(f"{path.stem}, cell {index}: text of {smallest:g} pt")
        problems += [f"{path.stem}, {line}" for line in figure_problems(nb)
                     + unbacked_alt_numbers(nb)]
    assert figures >= 40, f"only {figures} figures in the smoke executions"
    assert measured == figures, f"the text of only {measured} of {figures} figures measured"
    assert problems == [], "\n".join(problems)
