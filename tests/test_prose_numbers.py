"""Every number in the prose comes from an output (helper_lib.tools.prose_numbers).

The unit tests build small notebooks by hand; the slow test executes every notebook in
notebooks/ in full mode and checks the real prose: ``pytest -m slow tests/test_prose_numbers.py``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helper_lib.tools.prose_numbers import (
    format_unbacked,
    named_notebooks,
    output_numbers,
    prose_numbers,
    unbacked_numbers,
)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook(markdown: str, printed: str = "", code: str = "pass") -> nbformat.NotebookNode:
    """One markdown cell and one code cell whose source is ``code`` and which printed
    ``printed``."""
    cell = new_code_cell(code)
    if printed:
        cell.outputs = [new_output("stream", name="stdout", text=printed)]
    return new_notebook(cells=[new_markdown_cell(markdown), cell])


def unbacked(markdown: str, printed: str = "", code: str = "pass") -> list[str]:
    """The texts of the unbacked numbers of a one-notebook book."""
    return [u.number.text for u in unbacked_numbers({"01_x": notebook(markdown, printed, code)})]


def texts(markdown: str) -> list[str]:
    return [n.text for n in prose_numbers(markdown)]


# -- what a number is ----------------------------------------------------------------------

def test_decimals_and_percentages_count_plain_integers_do_not():
    numbers = prose_numbers("After 50 epochs on 28 × 28 images (784 pixels, 2,000 of them, "
                            "k = 50, in 2016) the gap is 0.32 nats and 83 % of draws, "
                            "or 3.8 %, land inside.")
    assert [(n.text, n.value, n.decimals, n.percent) for n in numbers] == [
        ("0.32", 0.32, 2, False), ("83 %", 83.0, 0, True), ("3.8 %", 3.8, 1, True)]
    assert numbers[0].sentence.startswith("After 50 epochs")


def test_signs_latex_ranges_plus_minus_and_powers_of_ten():
    assert texts("Means of $-0.25$ and −0.04, $\\sigma \\approx 0.09$–$0.11$, "
                 "a spread of 0.2–0.4 and ±1.00.") == \
        ["-0.25", "−0.04", "0.09", "0.11", "0.2", "0.4", "1.00"]
    assert [n.value for n in prose_numbers("Means of $-0.25$ and −0.04.")] == [-0.25, -0.04]
    powers = prose_numbers("A rate of $5 \\cdot 10^{-4}$, or 5·10⁻⁴, 1e-3 and $10^{-3}$; "
                           "not $10^{3}$.")
    assert [(n.value, n.decimals) for n in powers] == [(5e-4, 4), (5e-4, 4), (1e-3, 3),
                                                       (1e-3, 3)]
    assert [(n.text, n.percent) for n in prose_numbers("It keeps 58–66 % of them.")] == \
        [("58", True), ("66 %", True)]
    assert texts("In LaTeX $1 - e^{-2} \\approx 86\\%$ and 1,000.5 nats.") == ["86\\%", "1,000.5"]


def test_code_links_references_and_versions_are_not_numbers():
    assert texts("See `lr = 0.001` and [the table](data/v0.5/README.md), L17.5, Section 2.3, "
                 "Python 3.11.7, conv2d and <!-- 0.77 --> here.\n```\n0.9\n```") == []


def test_markdown_is_read_as_it_renders():
    """The markdown means what it shows: all but the last of these failed with regexes."""
    # a code span may wrap a line, and its end is not the start of the next one
    assert texts("Run `train --lr\n2e-3` to reach 0.25 nats.") == ["0.25"]
    assert texts("With `--recipe\nfast` the peak is 6e-3. Explicit `--lr` wins.") == ["6e-3"]
    assert texts("A listing:\n\n    x = 0.5\n\nends at 0.75.") == ["0.75"], "indented code"
    assert [(n.text, n.value, n.percent) for n in
            prose_numbers("The gap is _0.32_ nats and **83** % of draws, or 3.8&nbsp;%.")] == \
        [("0.32", 0.32, False), ("83 %", 83.0, True), ("3.8\u00a0%", 3.8, True)]
    assert texts('[ref]: https://example.org/v0.5 "notes for 0.6"\n\nSee [ref] for 0.7.') == \
        ["0.7"], "a link definition, its title included, is not prose"
    assert texts("<div>\nThe gap is 0.32 nats. <!-- 0.77 -->\n</div>") == ["0.32"]


def test_sentences_split_at_full_stops_not_at_et_al():
    numbers = prose_numbers("Cremer et al. (2018) call it a gap. It is 0.32 nats. "
                            "Next comes 1.5.")
    assert [n.sentence for n in numbers] == ["It is 0.32 nats.", "Next comes 1.5."]


# -- matching ------------------------------------------------------------------------------

def test_a_stale_number_fails_and_rounding_is_accepted():
    assert unbacked("The gain is 9.21 nats.", "gain 9.22") == ["9.21"]
    assert unbacked("The gap is 0.035 away.", "offset 0.036") == ["0.035"]
    assert unbacked("The gap is 0.32 nats.", "KL 0.3214") == []
    assert unbacked("The gap is 0.32 nats.", "KL 0.32") == []
    assert unbacked("The gap is 0.32 nats.", "KL 0.3") == ["0.32"], "too few decimals printed"


def test_percentages_match_percentages_or_fractions():
    assert unbacked("About 3 % of draws.", "3.2% of draws") == []
    assert unbacked("About 3 % of draws.", "3.8% of draws") == ["3 %"]
    assert unbacked("It keeps 38 % of them.", "share 0.382") == []
    assert unbacked("It keeps 38 % of them.", "share 0.4") == ["38 %"]
    assert unbacked("A fraction of 0.38.", "38%") == ["0.38"], "a number is not a percentage"


def test_signs_are_ignored_and_code_literals_back_parameters():
    assert unbacked("A gap of 0.32 nats.", "ELBO gap -0.32") == []
    assert unbacked("With $\\sigma = 0.1$ and a rate of $5 \\cdot 10^{-4}$.",
                    code="SIGMA = 0.1  # not 0.7\nLR = 5e-4") == []
    assert unbacked("With $\\sigma = 0.7$.", code="SIGMA = 0.1  # not 0.7") == ["0.7"]


def test_html_tables_and_markdown_outputs_back_numbers_images_do_not():
    nb = notebook("The loss is 37.28, the KL 4.86 and the ink 12.5.")
    nb.cells[1].outputs = [
        new_output("display_data", data={
            "text/html": "<style>.x {width: 12.5em}</style><table><tr><td>37.28</td></tr>",
            "text/plain": "<IPython.core.display.HTML object>"}),
        new_output("display_data", data={"text/markdown": "KL **4.86** nats"}),
        new_output("display_data", data={"image/png": "12.5"})]
    assert [n.text for n in output_numbers(nb)] == ["37.28", "4.86"]
    assert [u.number.text for u in unbacked_numbers({"01_x": nb})] == ["12.5"]


def test_html_outputs_are_parsed_not_cut_at_the_first_angle_bracket():
    nb = notebook("Nothing.")
    nb.cells[1].outputs = [new_output("display_data", data={
        "text/html": '<!-- if p > 0.7 --><table><tr><td title="a>0.8">37.28</td>'
                     "<td>4.86&nbsp;%</td></tr></table><SCRIPT>var x = 0.9;</SCRIPT>",
        "text/plain": "<IPython.core.display.HTML object>"})]
    assert [(n.text, n.value, n.percent) for n in output_numbers(nb)] == \
        [("37.28", 37.28, False), ("4.86\u00a0%", 4.86, True)]


# -- cited sources and named notebooks -----------------------------------------------------

def test_a_cited_sentence_is_exempt_a_derivation_is_not():
    assert unbacked("A VAE reaches 86.76 nats (Burda et al., 2016, Table 1).") == []
    assert unbacked("As Burda et al. (2016) report, 86.76 nats.") == []
    assert unbacked("The lecture quotes 0.28 (L17.4, 12:30).") == []
    assert unbacked("The lecture quotes 0.28 (lecture L17.4).") == []
    assert unbacked("Since ln 9 ≈ 2.197, the bound holds.") == ["2.197"]
    assert unbacked("The same as Burda et al.'s 86.76.") == ["86.76"], "no citation in ()"


def test_a_number_is_backed_by_the_notebook_the_prose_names():
    book = {"05_train": notebook("Trained.", "test loss 52.901"),
            "06_eval": notebook("Loss 9.58 per image."),
            "07_use": notebook("Notebook 5 measured 52.90 per image; notebooks 06 and 08 too."),
            "08_more": notebook("Nothing to say.", "9.58")}
    assert [(u.notebook, u.number.text) for u in unbacked_numbers(book)] == [("06_eval", "9.58")]
    assert named_notebooks("notebooks 02, 05 and 07, or [this](09_x.ipynb)",
                           ["02_a", "05a_b", "05b_c", "07_d.ipynb", "09_x", "10_y"]) == \
        {"02_a", "05a_b", "05b_c", "07_d.ipynb", "09_x"}


def test_the_message_names_notebook_number_sentence_and_near_outputs():
    items = unbacked_numbers({"07_x": notebook("The gain is 9.21 nats.", "gain 9.22")})
    assert items[0].nearest == ("9.22 (07_x)",)
    message = format_unbacked(items)
    assert "07_x, cell 0: 9.21" in message and "The gain is 9.21 nats." in message
    assert format_unbacked([]) == "every number in the prose is backed by an output"


# -- the real notebooks --------------------------------------------------------------------

@pytest.mark.slow
def test_every_number_in_the_prose_of_the_notebooks_is_printed_in_full_mode():
    from helper_lib.tools.book import execute_notebook

    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert paths, f"no notebooks in {NOTEBOOKS}"
    executed = {path.stem: execute_notebook(path, smoke=False) for path in paths}
    found = unbacked_numbers(executed)
    assert found == [], format_unbacked(found)
