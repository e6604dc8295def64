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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["CVD_THRESHOLD", "VAGUE_LINK_TEXT", "cvd_separation", "markdown_problems"]

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
