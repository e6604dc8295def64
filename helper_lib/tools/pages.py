"""The grader's HTML pages (a student's feedback, the similarity report): one accessible skeleton.

Every page declares its language and a title, has one ``h1`` and ``h2`` sections, and draws
its text in colours that meet WCAG 2.1 AA's contrast of 4.5:1 (:data:`COLOURS`, measured by
:func:`contrast_ratio`; a test holds them to it). Whatever comes from a submission or a name is
text, never markup: :func:`esc` escapes it (``html.escape``) and removes what HTML cannot hold.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["COLOURS", "contrast_ratio", "esc", "page"]

#: Each colour pair a page draws text in, ``(text, background)``: all of them 7:1 or more.
COLOURS: dict[str, tuple[str, str]] = {
    "body": ("#1b1b1b", "#ffffff"),
    "muted": ("#444444", "#ffffff"),
    "header": ("#1b1b1b", "#e6ecf2"),  # table headers
    "right": ("#0a5c0a", "#ffffff"),  # ✓ correct (with its mark and its word: never colour alone)
    "wrong": ("#8f1d1d", "#ffffff"),  # ✗ wrong
    "shared": ("#000000", "#ffe169"),  # a passage two submissions share
    "note": ("#1b1b1b", "#fff4d6"),  # the similarity report's warning
    "code": ("#1b1b1b", "#f4f4f4"),
    "link": ("#0645ad", "#ffffff"),
}

#: Characters an HTML page cannot hold (C0 controls but tab and newline, DEL, lone surrogates).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def esc(value: Any) -> str:
    """``value`` as HTML text: ``str`` of it, escaped (``& < > " '``), with the characters a page
    cannot hold (controls, lone surrogates) shown as U+FFFD."""
    return html.escape(_UNPRINTABLE.sub("\ufffd", str(value)), quote=True)


def _luminance(colour: str) -> float:
    """WCAG 2.1's relative luminance of ``#rrggbb``."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(text: str, background: str) -> float:
    """WCAG 2.1's contrast ratio of two ``#rrggbb`` colours, from 1 to 21."""
    light, dark = sorted((_luminance(text), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _css() -> str:
    c = COLOURS
    return f"""
body {{ font-family: system-ui, sans-serif; font-size: 1rem; line-height: 1.5;
       color: {c['body'][0]}; background: {c['body'][1]}; margin: 0 auto; max-width: 80rem;
       padding: 1rem 1.5rem; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
caption {{ text-align: left; font-weight: bold; padding: 0.25rem 0; }}
th, td {{ border: 1px solid #767676; padding: 0.35rem 0.6rem; text-align: left;
         vertical-align: top; }}
thead th {{ color: {c['header'][0]}; background: {c['header'][1]}; }}
.muted {{ color: {c['muted'][0]}; }}
.right {{ color: {c['right'][0]}; font-weight: bold; }}
.wrong {{ color: {c['wrong'][0]}; font-weight: bold; }}
mark {{ color: {c['shared'][0]}; background: {c['shared'][1]}; }}
.note {{ color: {c['note'][0]}; background: {c['note'][1]}; border-left: 0.4rem solid #8a6d00;
        padding: 0.5rem 1rem; }}
pre {{ color: {c['code'][0]}; background: {c['code'][1]}; padding: 0.5rem; overflow-x: auto;
      white-space: pre-wrap; word-break: break-word; font-size: 0.9rem; }}
a {{ color: {c['link'][0]}; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }}
@media (max-width: 50rem) {{ .pair {{ grid-template-columns: 1fr; }} }}
"""


def page(title: str, body: str, lang: str = "en") -> str:
    """A whole HTML document: ``title`` (plain text, escaped here) and ``body`` (HTML whose text
    the caller has escaped with :func:`esc`), with the page's language, a viewport, and the
    style of :data:`COLOURS`; no script, nothing loaded from elsewhere."""
    return (f'<!DOCTYPE html>\n<html lang="{esc(lang)}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{_css()}</style>\n</head>\n<body>\n<main>\n"
            f"{body}\n</main>\n</body>\n</html>\n")
