"""The offline course site (``python -m helper_lib book``): what it writes, without a browser.

The browser checks (images loaded, math typeset, no network, solutions collapsed) are in
``test_site_browser.py``.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import nbformat
import pytest

from helper_lib.assets.project import REPO_ROOT as REPO
from helper_lib.assets.project import VERSION
from helper_lib.tools.book import MARKER, BookError, _drop_widget_views, build_site, notebook_title
from helper_lib.tools.cli import main
from helper_lib.tools.exercises import NOTEBOOKS

NB04 = REPO / "notebooks" / "04_vae_loss.ipynb"


@pytest.fixture(scope="module")
def unexecuted_site(tmp_path_factory) -> Path:
    """The site of notebooks 03 and 04, converted without running them (fast)."""
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(out, notebooks=[REPO / "notebooks" / "03_logvar_trick.ipynb", NB04],
               execute=False, log=lambda _: None)
    return out


def _external_references(html: str) -> list[str]:
    """Addresses that a browser would fetch: script src, link href (stylesheets, icons), img
    src, CSS @import and url(...), anything with a scheme other than data:."""
    refs = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)
    refs += re.findall(r"<link[^>]*\bhref=\"([^\"]+)\"", html)
    refs += re.findall(r"<img[^>]*\bsrc=\"([^\"]+)\"", html)
    refs += re.findall(r"@import\s+(?:url\()?[\"']?([^\"')\s;]+)", html)
    refs += re.findall(r"url\([\"']?([^\"')]+)", html)
    return [r for r in refs if re.match(r"^[a-z]+:", r) and not r.startswith("data:")]


def test_the_site_has_an_index_a_page_slides_and_a_handout_per_notebook(unexecuted_site):
    out = unexecuted_site
    for name in ("03_logvar_trick", "04_vae_loss"):
        assert (out / f"{name}.html").is_file()
        assert (out / f"{name}.slides.html").is_file()
        assert (out / "handouts" / f"{name}.ipynb").is_file()
    index = (out / "index.html").read_text()
    assert 'href="04_vae_loss.html"' in index and 'href="04_vae_loss.slides.html"' in index
    assert 'href="notebooks/04_vae_loss.ipynb"' not in index  # the README's link: the page
    from helper_lib.assets.project import binder_url, colab_url

    for url in (colab_url("04_vae_loss.ipynb"), binder_url("04_vae_loss.ipynb")):
        assert f'href="{html.escape(url)}"' in index  # the launch links, in the README's table
    assert index.count("<h1") == 1  # the README's title is not repeated under the table
    page = (out / "04_vae_loss.html").read_text()
    assert 'rel="prev" title="L17.3' in page and 'href="index.html"' in page
    assert f'href="{html.escape(colab_url("04_vae_loss.ipynb"))}" rel="external">Open in Colab' \
        in page
    assert (out / "_static" / "mathjax" / "MathJax.js").is_file()
    assert (out / "_static" / "reveal.js" / "dist" / "reveal.js").is_file()
    assert (out / MARKER).is_file() and (out / ".nojekyll").is_file()


def test_nothing_in_the_site_is_fetched_from_the_network(unexecuted_site):
    for page in unexecuted_site.glob("*.html"):
        html = page.read_text()
        assert _external_references(html) == [], page.name
        assert "cdnjs" not in html and "unpkg.com" not in html, page.name
    slides = (unexecuted_site / "04_vae_loss.slides.html").read_text()
    assert '<script src="_static/reveal.js/dist/reveal.js">' in slides
    assert '_static/mathjax/MathJax.js?config=' in slides
    # the theme's fonts are local files too
    theme = unexecuted_site / "_static" / "reveal.js" / "dist" / "theme" / "white.css"
    assert _external_references(theme.read_text()) == []


def test_the_reference_check_itself_catches_a_cdn():
    assert _external_references('<script src="https://cdn.example/mathjax.js"></script>') == [
        "https://cdn.example/mathjax.js"]
    assert _external_references('<img src="data:image/png;base64,AAAA">') == []


def test_solutions_are_closed_details_and_the_handout_has_none(unexecuted_site):
    source = nbformat.read(NB04, as_version=4)
    n_solutions = sum("solution" in c.metadata.get("tags", []) for c in source.cells)
    assert n_solutions >= 2
    page = (unexecuted_site / "04_vae_loss.html").read_text()
    assert page.count('<details class="vae-solution">') == n_solutions  # closed: no "open"
    handout = nbformat.read(unexecuted_site / "handouts" / "04_vae_loss.ipynb", as_version=4)
    assert len(handout.cells) == len(source.cells) - n_solutions
    assert not any("solution" in c.metadata.get("tags", []) for c in handout.cells)


def test_a_handout_records_its_notebook_and_the_library_version_and_has_no_outputs(
        unexecuted_site):
    handout = nbformat.read(unexecuted_site / "handouts" / "04_vae_loss.ipynb", as_version=4)
    assert handout.metadata["helper_lib"] == {"notebook": "04_vae_loss", "version": VERSION}
    code = [c for c in handout.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    answers = [c.source for c in code if "answer" in c.metadata.get("tags", [])]
    assert answers == [ex.stub for ex in NOTEBOOKS["04_vae_loss"]]


def test_the_title_is_the_first_level_one_heading_of_the_markdown():
    def nb(*cells):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(c) if
                                               isinstance(c, str) else c for c in cells])

    assert notebook_title(nbformat.read(NB04, as_version=4)) == \
        "L17.4 · The VAE loss: reconstruction + KL"
    code = nbformat.v4.new_code_cell("# Not markdown")
    assert notebook_title(nb(code, "Name: Ann\n## Part 1", "Intro\n  #  The title \n# Later")) \
        == "The title"
    assert notebook_title(nb("#\nnot a title", "#    \n", "#No space", "    # code"), "x") == "x"
    hostile = {"cells": [5, {"cell_type": "markdown", "source": 5}, {"cell_type": "markdown"},
                         {"cell_type": "markdown", "source": ["# a list"]}]}
    assert notebook_title(hostile, "x") == "x" and notebook_title({"cells": "# T"}) == ""


def test_widget_views_give_way_to_their_static_picture():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    cell = nbformat.v4.new_code_cell("latent_explorer(model)")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
            "image/png": "iVBOR", "text/plain": "LatentExplorer(...)"}),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "y"},
            "text/plain": "IntSlider(value=0)"}),
    ]
    nb.cells = [cell]
    _drop_widget_views(nb)
    assert "widgets" not in nb.metadata
    assert len(nb.cells[0].outputs) == 1  # the slider had no picture: gone
    assert set(nb.cells[0].outputs[0].data) == {"image/png", "text/plain"}


def test_the_book_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["book", "--out", str(tmp_path), "--no-execute",
                 "--notebooks", str(NB04)]) == 2
    assert "not empty and was not written by this command" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    with pytest.raises(BookError, match="no notebook"):
        build_site(tmp_path / "new", notebooks=[tmp_path / "missing.ipynb"], execute=False)


def test_a_failing_notebook_is_named_in_the_error(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Broken"), nbformat.v4.new_code_cell("1 / 0")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(BookError, match=r"99_broken.ipynb failed(.|\n)*ZeroDivisionError"):
        build_site(tmp_path / "site", notebooks=[path], log=lambda _: None)
    info = tmp_path / "site" / "build-info.json"
    assert not info.exists()  # no half-built site is passed off as done


def test_build_info_records_the_mode(unexecuted_site):
    info = json.loads((unexecuted_site / "build-info.json").read_text())
    assert info["executed"] is False and set(info["seconds"]) == {"03_logvar_trick",
                                                                  "04_vae_loss"}


@pytest.mark.slow
def test_every_page_of_the_whole_smoke_site_is_offline(tmp_path):
    """All notebooks executed (smoke mode): no page refers to anything but local files."""
    report = build_site(tmp_path / "site", smoke=True, log=lambda _: None)
    assert len(report.pages) == len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))) + 1
    for page in (tmp_path / "site").glob("*.html"):
        html = page.read_text()
        assert _external_references(html) == [], page.name
        assert "font-awesome" not in html and "fa fa-" not in html, page.name
    assert (tmp_path / "site" / "08_inside_the_latent_space.html").read_text().count(
        'class="animation"') == 1


def test_a_full_build_reports_the_prose_numbers_no_output_prints(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T\n\nThe mean is 0.52 and the share 7.5 %."),
                nbformat.v4.new_code_cell("print(f'mean {0.5213:.4f}')"),
                nbformat.v4.new_code_cell(  # a figure whose alt text quotes 0.52 and 3.25
                    "from IPython.display import display\n"
                    "display({'image/png': 'iVBORw0KGgo='}, raw=True, metadata={'image/png': "
                    "{'alt': 'A curve from 0.52 to 3.25'}})")]
    path = tmp_path / "01_numbers.ipynb"
    nbformat.write(nb, path)
    report = build_site(tmp_path / "site", notebooks=[path], smoke=False, log=lambda _: None)
    assert [u.number.text for u in report.unbacked] == ["7.5 %"]  # 0.52 is printed, rounded
    assert report.alt_numbers == ["01_numbers, cell 2: 3.25 in 'A curve from 0.52 to 3.25'"]
