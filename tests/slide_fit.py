"""Does every slide of a reveal.js deck fit the deck, with all its fragments shown?

Each slide is shown in headless chromium (reveal.js at scale 1, no transitions), every fragment
is stepped to, MathJax is let finish and the images load; then the content's real extent is
measured: the bounding box of the slide and of everything in it, plus what any scroll box in it
hides (``scrollHeight`` / ``scrollWidth``), so neither a scrolling slide nor an
``overflow-x: auto`` ``<pre>`` can hide an overflow. What an element clips
(``overflow: hidden``, as MathJax's own boxes do) is not counted, nor the inside of a collapsed
solution (``<details>``, only its summary): the reader never sees them.

    python tests/slide_fit.py SITE_DIR     # every *.slides.html in SITE_DIR; exit 1 on overflow

Imported by tests/test_slides_fit.py; the browser set-up is tests/test_site_browser.py's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a script: helper_lib from this clone, as pytest finds it
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from test_site_browser import CHROMIUM, CHROMIUM_ARGS, _browser_or_skip, _open

#: Sub-pixel layout and MathJax's rounding move a box by a pixel; more than this is an overflow.
TOLERANCE_PX = 2.0


@dataclass(frozen=True)
class SlideSize:
    """One slide as measured, in the deck's own CSS pixels (independent of the window)."""

    deck: str  #: the deck's file name, ``05_conv_vae_mnist.slides.html``
    h: int  #: reveal.js's horizontal index (0-based, as in the URL ``#/h/v``)
    v: int  #: vertical index within the stack (0-based)
    number: str  #: the slide number the presenter sees (reveal's slide-number, or its "h.v")
    height: float  #: from the top of the deck to the bottom of the lowest content
    width: float  #: from the deck's left edge to the right of the widest content
    deck_width: float  #: ``Reveal.getConfig().width``
    deck_height: float  #: ``Reveal.getConfig().height``
    snippet: str  #: the first heading, else the first 60 characters of the slide's text

    @property
    def excess_height(self) -> float:
        return self.height - self.deck_height

    @property
    def excess_width(self) -> float:
        return self.width - self.deck_width


# Reveal.js at scale 1 and without transitions, so that boxes are measured where they settle.
_SETUP = """() => {
  Reveal.configure({transition: 'none', backgroundTransition: 'none', minScale: 1, maxScale: 1});
  const style = document.createElement('style');
  style.textContent = '.reveal *, .reveal *::before { transition: none !important; }';
  document.head.appendChild(style);
  return Reveal.getSlides().map(s => Reveal.getIndices(s));
}"""

# Go to slide (h, v) and step through every fragment.
_SHOW = """([h, v]) => {
  Reveal.slide(h, v);
  for (let i = 0; i < 500 && Reveal.nextFragment(); i++) {}
  Reveal.getCurrentSlide().querySelectorAll('.fragment').forEach(f => f.classList.add('visible'));
}"""

_SETTLED = """() => MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0
  && Array.from(Reveal.getCurrentSlide().querySelectorAll('img')).every(i => i.complete)"""

_MEASURE = """() => {
  const slide = Reveal.getCurrentSlide(), config = Reveal.getConfig(), scale = Reveal.getScale();
  const origin = document.querySelector('.reveal .slides').getBoundingClientRect();
  let left = 0, right = 0, bottom = 0;
  // clip: the box that clipping or scrolling ancestors leave visible; a scroll box's own
  // scroll extent counts in full (the reader has to scroll to it), a hidden box's does not.
  const visit = (el, clip) => {
    const cs = getComputedStyle(el);
    if (cs.display === 'none') return;
    const r = el.getBoundingClientRect();
    const x = (r.left - origin.left) / scale, y = (r.top - origin.top) / scale;
    const x2 = x + r.width / scale, y2 = y + r.height / scale;
    if (r.width > 0 || r.height > 0) {
      left = Math.min(left, Math.max(x, clip.left));
      right = Math.max(right, Math.min(x2, clip.right));
      bottom = Math.max(bottom, Math.min(y2, clip.bottom));
    }
    const ox = cs.overflowX, oy = cs.overflowY, hides = o => o === 'hidden' || o === 'clip';
    if (!hides(ox)) right = Math.max(right, ox === 'visible'
      ? Math.min(x + el.scrollWidth, clip.right) : x + el.scrollWidth);
    if (!hides(oy)) bottom = Math.max(bottom, oy === 'visible'
      ? Math.min(y + el.scrollHeight, clip.bottom) : y + el.scrollHeight);
    const inner = {left: ox === 'visible' ? clip.left : Math.max(clip.left, x),
                   right: ox === 'visible' ? clip.right : Math.min(clip.right, x2),
                   bottom: oy === 'visible' ? clip.bottom : Math.min(clip.bottom, y2)};
    const closed = el.tagName === 'DETAILS' && !el.open;  // a collapsed solution: its summary
    for (const child of el.children) {
      if (!closed || child.tagName === 'SUMMARY') visit(child, inner);
    }
  };
  visit(slide, {left: -Infinity, right: Infinity, bottom: Infinity});
  // the text as written: TeX for typeset math, no prompts, notes or anchor marks
  const copy = slide.cloneNode(true);
  copy.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_Preview, .MJX_Assistive_MathML,'
    + ' .MathJax_SVG, aside.notes, style, .anchor-link, .jp-InputPrompt, .jp-OutputPrompt')
    .forEach(e => e.remove());
  copy.querySelectorAll('script').forEach(
    s => s.replaceWith(/math.tex/.test(s.type) ? '$' + s.textContent + '$' : ''));
  const heading = copy.querySelector('h1, h2, h3, h4, h5, h6');
  const text = (heading && heading.textContent.trim()) || copy.textContent;
  const shown = document.querySelector('.reveal .slide-number');
  const idx = Reveal.getIndices();
  const number = (shown && shown.offsetParent && shown.innerText.trim())
    || String(idx.h + 1) + (Reveal.isVerticalSlide() ? '.' + (idx.v + 1) : '');
  return {number, height: bottom, width: right - left, deck_width: config.width,
          deck_height: config.height, snippet: text.replace(/\\s+/g, ' ').trim().slice(0, 60)};
}"""


# Show a slide, wait until MathJax is idle and its images are loaded, let the last typeset
# paint (two animation frames), then measure.
_STEP = f"""async ([h, v]) => {{
  ({_SHOW})([h, v]);
  const frame = () => new Promise(r => requestAnimationFrame(r));
  await frame();
  const start = performance.now();
  while (!({_SETTLED})()) {{
    if (performance.now() - start > 60000) throw new Error(`slide ${{h}}/${{v}} never settles`);
    await new Promise(r => setTimeout(r, 10));
  }}
  await frame(); await frame();
  return ({_MEASURE})();
}}"""


def measure_deck(browser, deck: Path) -> list[SlideSize]:
    """Measure every slide of the reveal.js ``deck`` (a ``*.slides.html``) in ``browser``
    (a playwright chromium ``Browser``), in reveal's order, each with all its fragments shown."""
    page, _ = _open(browser, deck)  # waits for MathJax's first pass; asserts nothing left file://
    try:
        sizes = []
        for ix in page.evaluate(_SETUP):  # one round trip a slide: show, settle, measure
            sizes.append(SlideSize(deck=deck.name, h=ix["h"], v=ix.get("v") or 0,
                                   **page.evaluate(_STEP, [ix["h"], ix.get("v") or 0])))
        return sizes
    finally:
        page.close()


def overflowing(sizes: Sequence[SlideSize], tolerance_px: float = TOLERANCE_PX
                ) -> tuple[list[SlideSize], list[SlideSize]]:
    """``(too_tall, too_wide)``: the slides more than ``tolerance_px`` taller (wider) than their
    deck, each list worst first. A slide can be in both."""
    tall = [s for s in sizes if s.excess_height > tolerance_px]
    wide = [s for s in sizes if s.excess_width > tolerance_px]
    return (sorted(tall, key=lambda s: -s.excess_height),
            sorted(wide, key=lambda s: -s.excess_width))


def describe(sizes: Sequence[SlideSize], tolerance_px: float = TOLERANCE_PX) -> list[str]:
    """One line per overflowing slide, too tall first, then too wide; empty when all fit."""
    tall, wide = overflowing(sizes, tolerance_px)
    return ([f"  too tall: {s.deck} slide {s.number} (#/{s.h}/{s.v}): height {s.height:.0f} px"
             f' vs {s.deck_height:.0f} (+{s.excess_height:.0f})  "{s.snippet}"' for s in tall]
            + [f"  too wide: {s.deck} slide {s.number} (#/{s.h}/{s.v}): width {s.width:.0f} px"
               f' vs {s.deck_width:.0f} (+{s.excess_width:.0f})  "{s.snippet}"' for s in wide])


def count_overflowing(sizes: Sequence[SlideSize], tolerance_px: float = TOLERANCE_PX) -> int:
    """How many slides are too tall, too wide or both."""
    tall, wide = overflowing(sizes, tolerance_px)
    return len({(s.deck, s.h, s.v) for s in tall + wide})


@contextmanager
def chromium() -> Iterator[object]:
    """Headless chromium, offline, as tests/test_site_browser.py launches it (skips under pytest
    when chromium or playwright is missing)."""
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python tests/slide_fit.py SITE_DIR", file=sys.stderr)
        return 2
    decks = sorted(Path(argv[0]).glob("*.slides.html"))
    total = bad = 0
    with chromium() as browser:
        for deck in decks:
            sizes = measure_deck(browser, deck)
            n = count_overflowing(sizes)
            total, bad = total + len(sizes), bad + n
            w, h = (sizes[0].deck_width, sizes[0].deck_height) if sizes else (0, 0)
            print(f"{deck.name} ({w:.0f} x {h:.0f}): {n} of {len(sizes)} slides overflow")
            print("\n".join(describe(sizes)) or "  every slide fits", flush=True)
    print(f"{bad} of {total} slides overflow ({len(decks)} decks, tolerance {TOLERANCE_PX:g} px)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
