"""How live the site's latent explorer is (issue #35): time to the first live frame, updates per
second while dragging, and the bytes it adds, in headless Chromium on this machine.

    python -m helper_lib book --out build/site --notebooks notebooks/05_conv_vae_mnist.ipynb
    python benchmarks/live_explorer.py build/site/05_conv_vae_mnist.html --loads 5

- **first frame**: milliseconds from the start of navigation (``performance.now()``) to the
  panel's first decoded frame, opened from disk (``file://``), the median of ``--loads`` loads,
  each in a fresh browser context (nothing cached).
- **dragging**: pointer events sent in the page, one per animation frame for 3 s (as a mouse
  sends them), and the frames the panel drew: what a user sees. Then ``--updates`` moves sent as
  fast as the panel takes them (each waits for the last frame): the ceiling, in updates/s.
- **bytes**: ``_static/explorer/`` and the panel's part of the page (its settings and picture).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
from pathlib import Path

DRAG = """async (seconds) => {
  const f = document.querySelector('figure.vae-live'), p = f.vaeExplorer;
  const map = f.querySelector('.vae-live-map'), r = map.getBoundingClientRect();
  const send = (type, i) => map.dispatchEvent(new PointerEvent(type, {bubbles: true,
    clientX: r.left + 150 + 120 * Math.cos(i / 20), clientY: r.top + 150 + 120 * Math.sin(i / 20),
    pointerId: 1}));
  send('pointerdown', 0);
  const n0 = p.frames, t0 = performance.now();
  let i = 0;
  await new Promise(done => { const step = () => { send('pointermove', ++i);
    if (performance.now() - t0 < 1000 * seconds) requestAnimationFrame(step); else done(); };
    requestAnimationFrame(step); });
  while (p.busy || p.pending) await new Promise(r => setTimeout(r, 5));
  send('pointerup', i);
  const t1 = performance.now();
  return {events: i, frames: p.frames - n0, seconds: (t1 - t0) / 1000};
}"""

CEILING = """async (n) => {
  const p = document.querySelector('figure.vae-live').vaeExplorer;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) { p.set([2.5 * Math.cos(i / 15), 2.5 * Math.sin(i / 15)]);
    while (p.busy || p.pending) await new Promise(r => setTimeout(r, 0)); }
  return (performance.now() - t0) / n;
}"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="a built page with a live explorer")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--updates", type=int, default=300)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    static = args.page.parent / "_static" / "explorer"
    html = args.page.read_text()
    panel = re.search(r'<figure class="vae-live".*?</figure>', html, re.S)
    result = {"page": args.page.name, "explorer_files_bytes": {
        p.name: p.stat().st_size for p in sorted(static.iterdir())},
        "panel_in_page_bytes": len(panel.group(0).encode()) if panel else 0}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        firsts, marks = [], []
        for _ in range(args.loads):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(args.page.resolve().as_uri())
            page.wait_for_selector("figure.vae-live[data-live=ready]", state="attached",
                                   timeout=60_000)
            firsts.append(page.eval_on_selector("figure.vae-live",
                                                "f => f.vaeExplorer.firstFrame"))
            marks.append(page.evaluate("window.vaeExplorer.marks"))
            context.close()
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(args.page.resolve().as_uri())
        page.wait_for_selector("figure.vae-live[data-live=ready]", state="attached",
                               timeout=60_000)
        page.locator("figure.vae-live").scroll_into_view_if_needed()
        drag = page.evaluate(DRAG, 3)
        ms = page.evaluate(CEILING, args.updates)
        browser.close()
    result.update({
        "first_frame_ms": {"median": statistics.median(firsts), "min": min(firsts),
                           "max": max(firsts)},
        "stages_ms_median": {k: statistics.median(m[k] for m in marks) for k in marks[0]},
        "drag": {**drag, "frames_per_s": drag["frames"] / drag["seconds"],
                 "events_per_s": drag["events"] / drag["seconds"]},
        "ceiling": {"ms_per_update": ms, "updates_per_s": 1000 / ms}})
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
