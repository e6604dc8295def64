"""Accessibility checks (issue #34): the notebooks' markdown, and the figures' colours.

:func:`cvd_separation` measures how far apart a palette's colours stay for a reader with a
colour-vision deficiency. :func:`markdown_problems` reads a notebook's markdown cells as the
site does (mistune, the parser nbconvert uses) and lists what a screen reader's user would
stumble on: a notebook without exactly one level-1 heading, a heading that skips a level
(``##`` then ``####``), an image without alt text, and a link whose text says nothing read
alone ("here", "link", a bare URL).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..assets.project import REPO_ROOT

__all__ = ["AXE_JS", "AXE_RUN", "CVD_THRESHOLD", "SHOW_ALL_SLIDES", "VAGUE_LINK_TEXT", "WCAG_AA",
           "MAX_ALT_CHARS", "MUTE_ALT", "AuditError", "audit_site", "cvd_separation",
           "figure_problems", "markdown_problems", "unbacked_alt_numbers"]

#: axe-core, installed from npm by ``npm ci --prefix .ci/axe`` (in a clone).
AXE_JS = REPO_ROOT / ".ci" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
#: axe-core's rule tags for WCAG 2.0 and 2.1, levels A and AA.
WCAG_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
#: Runs axe-core on the open page with the rule tags passed in; returns its violations.
AXE_RUN = ("async (tags) => { const r = await axe.run(document, {runOnly: {type: 'tag', "
            "values: tags}, resultTypes: ['violations']}); return r.violations.map(v => "
            "({id: v.id, nodes: v.nodes.length, first: v.nodes[0].target.join(' '), "
            "help: v.help})); }")

#: In reveal.js's print layout every slide is on view, but those not current keep the
#: presenter's marks (``hidden``, ``aria-hidden``), which axe would read as hidden content
#: that can take the focus: they go before an audit.
SHOW_ALL_SLIDES = ("document.querySelectorAll('.reveal section').forEach(s => {"
                   " s.removeAttribute('hidden'); s.removeAttribute('aria-hidden'); })")


class AuditError(Exception):
    """The audit cannot run here: no Chromium, no Playwright or no axe-core."""


def audit_site(site: Path, axe: Path = AXE_JS, log: Callable[[str], None] = print,
               browser: Any = None) -> dict[str, list[dict[str, Any]]]:
    """Audit every page and slide deck of a built site (``python -m helper_lib book``) with
    axe-core in Chromium, for WCAG 2.0/2.1 A and AA: ``{file: [violation, ...]}``, each an
    ``{id, nodes, first, help}``; an empty list for a file that passes. A deck is audited in
    reveal.js's print layout (``?print-pdf``: every slide laid out, fragments shown). Pass a
    Playwright ``browser`` that is already running to use it (else Chromium is started).

    Raises:
        AuditError: Chromium, Playwright or axe-core is missing (with how to install it).
    """
    import shutil
    from contextlib import ExitStack

    if not axe.is_file():
        raise AuditError(f"axe-core is missing ({axe}): npm ci --prefix .ci/axe")
    found: dict[str, list[dict[str, Any]]] = {}
    with ExitStack() as stack:
        if browser is None:
            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            try:
                from playwright.sync_api import sync_playwright
            except ImportError:
                raise AuditError("playwright is missing: pip install -r requirements.txt") \
                    from None
            p = stack.enter_context(sync_playwright())
            try:  # the system's chromium (Debian's), else Playwright's own (GitHub's runners)
                browser = p.chromium.launch(executable_path=chromium, headless=True,
                                            args=["--no-sandbox", "--disable-gpu",
                                                  "--disable-background-networking"])
            except Exception as err:  # playwright's Error: no browser at all
                raise AuditError("no chromium on this machine (Debian: apt-get install -y "
                                 "chromium; elsewhere: python -m playwright install "
                                 f"chromium): {str(err).splitlines()[0]}") from None
            stack.callback(browser.close)
        for path in sorted(site.glob("*.html")):
            deck = path.name.endswith(".slides.html")
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(path.as_uri() + ("?print-pdf" if deck else ""), wait_until="load")
            # a deck in print layout typesets once reveal.js has laid it out: data-mathjax
            page.wait_for_function("document.readyState === 'complete' && (!window.MathJax "
                                   "|| (document.documentElement.dataset.mathjax === 'done' && "
                                   "MathJax.Hub.queue.pending === 0 && "
                                   "MathJax.Hub.queue.running === 0))", timeout=120_000)
            page.wait_for_timeout(500)
            if deck:
                page.evaluate(SHOW_ALL_SLIDES)
            page.add_script_tag(path=str(axe))
            found[path.name] = page.evaluate(AXE_RUN, list(WCAG_AA))
            log(f"{path.name}: " + (", ".join(f"{v['id']} ({v['nodes']})"
                                             for v in found[path.name]) or "no violation"))
            page.close()
    return found

#: How far apart (Euclidean distance in CAM02-UCS, colorspacious's perceptually uniform space)
#: two categories' colours must stay under every simulated deficiency. Distances of 1.6 and 4.3
#: are what matplotlib's tab10 gives its worst pairs of digits, which look the same; 10 is what
#: the course's palettes are held to.
CVD_THRESHOLD = 10.0


def cvd_separation(colours: Sequence[str]) -> dict[str, tuple[float, int, int]]:
    """For each of ``normal`` vision and full (severity 100) ``protanomaly``, ``deuteranomaly``
    and ``tritanomaly`` (colorspacious's simulation, Machado et al. 2009): the smallest
    CAM02-UCS distance between two of ``colours`` (any matplotlib colour), and which two
    (their indices)."""
    import itertools

    import numpy as np
    from colorspacious import cspace_convert
    from matplotlib.colors import to_rgb

    rgb = np.array([to_rgb(c) for c in colours])
    out = {}
    for vision in ("normal", "protanomaly", "deuteranomaly", "tritanomaly"):
        seen = rgb if vision == "normal" else np.clip(cspace_convert(
            rgb, {"name": "sRGB1+CVD", "cvd_type": vision, "severity": 100}, "sRGB1"), 0, 1)
        jab = cspace_convert(seen, "sRGB1", "CAM02-UCS")
        out[vision] = min((float(np.linalg.norm(jab[i] - jab[j])), i, j)
                          for i, j in itertools.combinations(range(len(colours)), 2))
    return out

#: Link texts that say nothing read alone (WCAG 2.4.4, "Link Purpose (In Context)").
VAGUE_LINK_TEXT = frozenset({"here", "click here", "this", "link", "this link", "more",
                             "read more", "see here", "this page", "page"})


def _tokens(source: str) -> list[dict[str, Any]]:
    import mistune

    parse = mistune.create_markdown(renderer=None, plugins=["table", "strikethrough", "math"])
    return parse(source)


def _walk(tokens: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for token in tokens:
        yield token
        children = token.get("children")
        if isinstance(children, list):
            yield from _walk(children)


def _text(token: Mapping[str, Any]) -> str:
    if token.get("type") in ("text", "codespan", "inline_math"):
        return str(token.get("raw", ""))
    return "".join(_text(child) for child in token.get("children") or [])


def markdown_problems(nb: Mapping[str, Any]) -> list[str]:
    """What in the notebook ``nb``'s markdown cells fails the static check, one line each
    (``[]`` when nothing does): exactly one H1, no skipped heading level, alt text on every
    image, link texts that make sense read alone."""
    problems: list[str] = []
    levels: list[int] = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown" or not isinstance(cell.get("source"), str):
            continue
        for token in _walk(_tokens(cell["source"])):
            kind = token.get("type")
            if kind == "heading":
                level = int(token["attrs"]["level"])
                if levels and level > levels[-1] + 1:
                    problems.append(f"cell {index}: heading level {level} after level "
                                    f"{levels[-1]} (skips {levels[-1] + 1}): "
                                    f"{_text(token)[:60]!r}")
                levels.append(level)
            elif kind == "image" and not _text(token).strip():
                url = str(token.get("attrs", {}).get("url", ""))[:60]
                problems.append(f"cell {index}: an image without alt text ({url})")
            elif kind == "link":
                text = " ".join(_text(token).split())
                if text.lower().strip(".:!") in VAGUE_LINK_TEXT or re.fullmatch(
                        r"(https?://|www\.)\S+", text) or not text:
                    problems.append(f"cell {index}: a link whose text says nothing read alone: "
                                    f"{text[:60]!r}")
    if levels.count(1) != 1:
        problems.append(f"{levels.count(1)} level-1 headings (a notebook has exactly one)")
    if levels and levels[0] != 1:
        problems.append(f"the first heading is level {levels[0]}, not the notebook's title")
    return problems


#: What a figure's description must not be: nbconvert's placeholder, or a figure's repr.
MUTE_ALT = ("No description has been provided", "<Figure", "<matplotlib", "<Animation")
#: The longest a figure's description may be (about 300 characters, as screen readers advise).
MAX_ALT_CHARS = 320


def _figures(nb: Mapping[str, Any]) -> Iterator[tuple[int, str]]:
    """``(cell index, alt text or "")`` for each image output of the executed ``nb``."""
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            mime = next((m for m in _IMAGES if m in output.get("data", {})), None)
            if mime is not None:
                yield index, str(output.get("metadata", {}).get(mime, {}).get("alt", "") or "")


_IMAGES = ("image/png", "image/svg+xml", "image/jpeg")


def figure_problems(nb: Mapping[str, Any]) -> list[str]:
    """What in the executed notebook ``nb``'s figures fails a screen reader's user, one line
    each (``[]`` when nothing does). Every image output (``image/png``, ``image/svg+xml``,
    ``image/jpeg``) must carry alt text, in its metadata ``alt`` as helper_lib writes it
    (JupyterLab, Colab and the site's ``<img alt>`` read it there), that is neither a
    placeholder nor a repr (:data:`MUTE_ALT`) and is at most :data:`MAX_ALT_CHARS` long."""
    problems = []
    for index, alt in _figures(nb):
        if not alt.strip():
            problems.append(f"cell {index}: a figure without alt text")
        elif alt.startswith(MUTE_ALT):
            problems.append(f"cell {index}: a figure whose alt text says nothing: {alt[:60]!r}")
        elif len(alt) > MAX_ALT_CHARS:
            problems.append(f"cell {index}: alt text of {len(alt)} characters (at most "
                            f"{MAX_ALT_CHARS}): {alt[:60]!r}…")
    return problems


def unbacked_alt_numbers(nb: Mapping[str, Any]) -> list[str]:
    """The figures of the executed ``nb`` whose alt text quotes a number (a decimal or a
    percentage, as :mod:`~helper_lib.tools.prose_numbers` reads prose) that no text output
    prints and no code cell writes, by the prose check's rule of rounding; one line each. The
    figures' own descriptions back no other. helper_lib's alt text reads its numbers from the
    data drawn (:func:`helper_lib.plotting.describe_figure`), so such a number is not wrong,
    only not printed: the full site build reports them."""
    from .prose_numbers import code_numbers, is_backed, output_numbers, prose_numbers

    text_only = {**nb, "cells": [
        {**cell, "outputs": [o for o in cell.get("outputs", [])
                             if not any(m in o.get("data", {}) for m in _IMAGES)]}
        if cell.get("cell_type") == "code" else cell for cell in nb.get("cells", [])]}
    evidence = output_numbers(text_only) + code_numbers(nb)
    found = []
    for index, alt in _figures(nb):
        unbacked = [n.text for n in prose_numbers(alt) if not is_backed(n, evidence)]
        if unbacked:
            found.append(f"cell {index}: {', '.join(dict.fromkeys(unbacked))} in {alt!r}")
    return found
