"""Static checks of the committed notebooks (test_open_anywhere.py executes them)."""

import ast
import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_vae_overview", "02_sampling_from_a_vae", "03_logvar_trick", "04_vae_loss",
            "05_conv_vae_mnist", "06_evaluating_the_vae", "07_measuring_the_claims",
            "08_inside_the_latent_space", "09_latent_arithmetic"]
SLIDE_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}


def _cells(path):
    return json.loads(path.read_text())["cells"]


def test_the_five_lectures_and_the_four_beyond_them_have_a_notebook():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], "strip outputs before committing"
            assert cell["execution_count"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_structure(path):
    cells = _cells(path)
    code = [c for c in cells if c["cell_type"] == "code"]
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in code]
    assert tags[0] == {"install"}, "the first code cell installs helper_lib where it is missing"
    assert "parameters" in tags[1], "the second code cell is the parameters cell"
    assert sum("parameters" in t for t in tags) == 1
    assert any("solution" in t for t in tags), "exercises need solution cells"
    for cell in cells:
        assert cell["metadata"].get("slideshow", {}).get("slide_type") in SLIDE_TYPES
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").lower()
    assert "what you will learn" in text and "summary" in text and "exercise" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_helper_code_and_no_hard_coded_device(path):
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        assert "cuda:" not in source
        tree = ast.parse("\n".join(line for line in source.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
        defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        if "solution" in cell["metadata"].get("tags", []):  # an answer may be a function
            defs = [d for d in defs if not isinstance(d, ast.FunctionDef)]
        assert not defs, f"helper code belongs in helper_lib: {[d.name for d in defs]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_an_answer_cell_that_checks_it(path):
    """After each solution: a cell tagged ``answer`` that sets the exercise's variable and
    calls check() on it, in the order of helper_lib.tools.exercises.NOTEBOOKS."""
    from helper_lib.tools.exercises import NOTEBOOKS as EXERCISES_OF

    cells = _cells(path)
    answers = [(i, "".join(c["source"])) for i, c in enumerate(cells)
               if "answer" in c["metadata"].get("tags", [])]
    expected = EXERCISES_OF[path.stem]
    assert len(answers) == len(expected)
    for (i, source), ex in zip(answers, expected, strict=True):
        assert "solution" in cells[i - 1]["metadata"].get("tags", []), ex.id
        assert source.startswith(f"{ex.variable} = ") and source.rstrip().endswith(
            f'check("{ex.id}", {ex.variable})'), source
        assert "*Check:*" in "".join(cells[i - 2]["source"]), ex.id  # the question says what


def test_the_readme_gives_the_one_command_for_site_slides_and_handouts():
    """The handouts used to need a long nbconvert command; the book command writes them (its
    output is checked in test_book.py and, in a browser, test_site_browser.py)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "python -m helper_lib book --out build/site" in readme
    assert "jupyter nbconvert" not in readme


def test_no_placeholder_is_left_in_the_text():
    import re

    for path in NOTEBOOKS:
        for cell in _cells(path):
            assert not re.search(r"__[A-Z0-9_]+__", "".join(cell["source"])), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_markdown_passes_the_static_accessibility_check(path):
    """One H1, no skipped heading level, alt text on every image, link texts that make sense
    read alone (helper_lib.tools.accessibility)."""
    from helper_lib.tools.accessibility import markdown_problems

    assert markdown_problems(nbformat.read(path, as_version=4)) == []


def test_the_static_accessibility_check_finds_each_kind_of_barrier():
    from helper_lib.tools.accessibility import markdown_problems

    def notebook(*sources):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(s)
                                               for s in sources])

    assert markdown_problems(notebook("# Title\n\n## Part\n\n### Detail", "## Next")) == []
    bad = markdown_problems(notebook(
        "## Not a title", "# Title\n\n#### Too deep", "# A second title",
        "![](figure.png) and ![a plot of the loss](loss.png)",
        "[click here](https://example.org), [https://example.org](https://example.org), "
        "[the loss derivation](04.html)", "```\n# a comment in code, not a heading\n```"))
    assert bad == [
        "cell 1: heading level 4 after level 1 (skips 2): 'Too deep'",
        "cell 3: an image without alt text (figure.png)",
        "cell 4: a link whose text says nothing read alone: 'click here'",
        "cell 4: a link whose text says nothing read alone: 'https://example.org'",
        "2 level-1 headings (a notebook has exactly one)",
        "the first heading is level 2, not the notebook's title",
    ]


def test_the_figure_check_finds_each_kind_of_mute_figure():
    """helper_lib.tools.accessibility: figure_problems wants alt text on every figure, not a
    placeholder or a repr, at most 320 characters; unbacked_alt_numbers lists the numbers of
    alt texts that no text output prints and no code writes (a figure's own text backs none)."""
    from helper_lib.tools.accessibility import figure_problems, unbacked_alt_numbers

    def figure(alt=None):
        meta = {"image/png": {"alt": alt}} if alt is not None else {}
        return nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                                            "text/plain": alt or ""},
                                      metadata=meta)

    code = nbformat.v4.new_code_cell("beta = 0.25")
    code.outputs = [nbformat.v4.new_output("stream", text="loss 190.23 -> 36.12, KL 6.93\n")]
    shown = nbformat.v4.new_code_cell("plot()")
    shown.outputs = [figure("Loss from 190.2 to 36.1; KL ends at 6.9 with beta 0.25, 3 epochs")]
    good = nbformat.v4.new_notebook(cells=[code, shown])
    assert figure_problems(good) == [] and unbacked_alt_numbers(good) == []
    bad = nbformat.v4.new_code_cell("plot()")
    bad.outputs = [figure(), figure("No description has been provided for this image"),
                   figure("<Figure size 640x480 with 1 Axes>"), figure("a" * 321),
                   figure("Loss falls to 36.2 (KL 6.9)"), figure("Loss from 12.50 to 36.2")]
    nb = nbformat.v4.new_notebook(cells=[code, shown, bad])
    assert [line.split(":")[1].strip() for line in figure_problems(nb)] == [
        "a figure without alt text", "a figure whose alt text says nothing",
        "a figure whose alt text says nothing", "alt text of 321 characters (at most 320)"]
    assert [line.split(" in ")[0] for line in unbacked_alt_numbers(nb)] == [
        "cell 2: 36.2", "cell 2: 12.50, 36.2"]  # 36.2: in the figure before, but no output
