"""Every slide of every notebook's reveal.js deck fits the deck, with all its fragments shown.

Every ``notebooks/*.ipynb`` is executed in smoke mode (``smoke_executed_notebooks``: a
session-scoped fixture, so a conftest may supply the same executions to other tests), the site
is built from those copies with ``execute=False`` (``--no-execute``), and each slide is measured
in headless chromium by tests/slide_fit.py (``python tests/slide_fit.py SITE_DIR`` prints the
same report for any built site). Slow: about four minutes on two CPU cores (3 executing and
building, 1 measuring about 150 slides).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from slide_fit import chromium, count_overflowing, describe, measure_deck
from test_site_browser import _browser_or_skip

from helper_lib.book import REPO, build_site, execute_notebook

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def browser_available() -> None:
    """Skip (or fail under ``VAE_REQUIRE_BROWSER=1``) before minutes of executing notebooks."""
    _browser_or_skip()


@pytest.fixture(scope="session")
def smoke_executed_notebooks(tmp_path_factory) -> list[Path]:
    """Every ``notebooks/*.ipynb``, executed in smoke mode (in notebooks/, as the site build
    does) and written under its own name to a temporary folder, in name order."""
    folder = tmp_path_factory.mktemp("smoke_executed")
    paths = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert paths, "no notebooks in notebooks/"
    for path in paths:
        nbformat.write(execute_notebook(path, smoke=True), folder / path.name)
    return [folder / path.name for path in paths]


@pytest.fixture(scope="module")
def slide_decks(smoke_executed_notebooks, tmp_path_factory) -> list[Path]:
    """The ``*.slides.html`` of a site built from the executed notebooks as they are."""
    out = tmp_path_factory.mktemp("slides_fit") / "site"
    report = build_site(out, notebooks=smoke_executed_notebooks, smoke=True, execute=False,
                        log=lambda line: None)
    return [out / name for name in report.slides]


def test_every_slide_fits_its_deck(browser_available, slide_decks):
    sizes = []
    with chromium() as browser:
        for deck in slide_decks:
            sizes += measure_deck(browser, deck)
    assert len(sizes) >= len(slide_decks)
    bad = count_overflowing(sizes)
    assert bad == 0, (f"{bad} of {len(sizes)} slides do not fit their deck with every fragment"
                      " shown (python tests/slide_fit.py SITE_DIR to re-measure a site):\n"
                      + "\n".join(describe(sizes)))
