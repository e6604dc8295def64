"""Static accessibility checks of the notebooks' markdown (issue #34, item 6).

:func:`markdown_problems` reads a notebook's markdown cells as the site does (mistune, the parser
nbconvert uses) and lists what a screen reader's user would stumble on: a notebook without
exactly one level-1 heading, a heading that skips a level (``##`` then ``####``), an image
without alt text, and a link whose text says nothing read alone ("here", "link", a bare URL).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["VAGUE_LINK_TEXT", "markdown_problems"]

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
