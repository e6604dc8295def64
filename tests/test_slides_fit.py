"""Every slide of every notebook's reveal.js deck fits the deck, with all its fragments shown.

Every ``notebooks/*.ipynb`` executed in smoke mode (``smoke_executed_notebooks`` in conftest:
the acceptance test's executions of this session, else executed here), the site built from
those copies with ``execute=False`` (``--no-execute``), and each slide measured in headless
chromium by tests/slide_fit.py (``python tests/slide_fit.py SITE_DIR`` prints the same report for
any built site, e.g. a full-mode one). In the default run: about a minute and a half on two CPU
cores when the executions are reused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from slide_fit import chromium, count_overflowing, describe, measure_deck
from test_site_browser import _browser_or_skip


@pytest.fixture(scope="session")
def browser_available() -> None:
    """Skip (or fail under ``VAE_REQUIRE_BROWSER=1``) before minutes of executing notebooks."""
    _browser_or_skip()


@pytest.fixture(scope="module")
def slide_decks(smoke_site) -> list[Path]:
    """The ``*.slides.html`` of the smoke site (conftest: built from the executed notebooks as
    they are), in the notebooks' order."""
    return sorted(smoke_site.glob("*.slides.html"))


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
