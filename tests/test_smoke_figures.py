"""Every figure of every notebook, as a smoke-mode run leaves it, says what it shows (issue #34).

The notebooks' smoke executions are the acceptance test's (``smoke_executed_notebooks`` in
conftest, which tests/test_open_anywhere.py fills; this file sorts after it, so nothing is
executed again). ``pytest -m slow`` holds the full-mode executions to the same check
(tests/test_notebooks_full.py), and a full site build reports it too.
"""

from __future__ import annotations

import nbformat

from helper_lib.tools.accessibility import figure_problems


def test_every_figure_of_every_notebook_says_what_it_shows(
        smoke_executed_notebooks):
    problems, figures = [], 0
    for path in smoke_executed_notebooks:
        nb = nbformat.read(path, as_version=4)
        figures += sum("image/png" in o.get("data", {}) for c in nb.cells
                       if c.cell_type == "code" for o in c.outputs)
        problems += [f"{path.stem}, {line}" for line in figure_problems(nb)]
    assert figures >= 40, f"only {figures} figures in the smoke executions"
    assert problems == [], "\n".join(problems)
