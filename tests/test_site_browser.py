"""The course site in a real browser: Debian's chromium, headless, opening the files from disk.

The smoke-mode site (conftest's ``smoke_site``: built once from this session's smoke executions,
with ``execute=False``, and shared with tests/test_slides_fit.py); then the index, the pages of
notebooks 04 (math, figures, exercises with solutions) and 08 (an animation, the most
script-heavy output) and 04's slide deck are each checked for: every image loaded, the math
typeset, no request to anything but ``file://`` (a ``data:`` image or ``about:blank`` frame is
not a request that leaves the machine), and the solutions collapsed. A screenshot of each is
written to the test's temporary folder.

Runs in the default test run when chromium and playwright are installed (``.ci/run`` installs
chromium with apt-get); skipped with the reason otherwise, unless ``VAE_REQUIRE_BROWSER=1``
(as in ``.ci/run``) turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helper_lib.tools.accessibility import AXE_JS, AXE_RUN, SHOW_ALL_SLIDES, WCAG_AA

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Flags for a closed network: without the background-networking ones chromium keeps trying to
#: reach Google's hosts, and those attempts would count as requests.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps"]
LOCAL_SCHEMES = ("file://", "data:", "about:blank", "blob:")


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -r requirements.txt)"
    else:
        if CHROMIUM is not None:
            return sync_playwright
        reason = "no chromium on this machine (Debian: apt-get install -y chromium)"
    if os.environ.get("VAE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"VAE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site(smoke_site) -> Path:
    """The smoke site (conftest: built from this session's smoke executions, shared with
    tests/test_slides_fit.py)."""
    _browser_or_skip()
    return smoke_site


@pytest.fixture(scope="module")
def browser(site):
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _open(browser, path: Path, query: str = ""):
    """Open ``path``; return the page and every URL it requested, once MathJax is done."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri() + query, wait_until="load")
    leaving = [u for u in requests if not u.startswith(LOCAL_SCHEMES)]
    assert leaving == [], f"{path.name} requested {leaving}"  # e.g. MathJax from a CDN
    # the template marks the page when MathJax's first pass is over; then its queue must be idle
    try:
        page.wait_for_function(
            "document.documentElement.dataset.mathjax === 'done'"
            " && MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0"
            " && document.readyState === 'complete'", timeout=60_000)
    except Exception as err:  # playwright's TimeoutError
        raise AssertionError(f"{path.name}: MathJax never finished typesetting ({err})") from None
    page.wait_for_timeout(300)  # let the last typeset pass paint
    return page, requests


AXE = AXE_JS  # from npm: npm ci --prefix .ci/axe


def _axe(page) -> list[dict] | None:
    """axe-core's (npm, .ci/axe) WCAG 2.0/2.1 A and AA violations on the open page, or
    ``None`` where axe-core is not installed (a failure with ``VAE_REQUIRE_BROWSER=1``)."""
    if not AXE.is_file():
        if os.environ.get("VAE_REQUIRE_BROWSER") == "1":
            pytest.fail("VAE_REQUIRE_BROWSER=1 but axe-core is not installed "
                        "(npm ci --prefix .ci/axe)")
        return None
    page.add_script_tag(path=str(AXE))
    return page.evaluate(AXE_RUN, list(WCAG_AA))


_RECORD_FOCUS = ("() => { window.__focused = []; document.addEventListener('focusin', e => "
                 "window.__focused.push({tag: e.target.tagName, title: e.target.title || '', "
                 "solution: !!e.target.closest('details.vae-solution'), outline: "
                 "getComputedStyle(e.target).outlineStyle}), true); }")


def _tab_until(page, done: str, limit: int = 1000, batch: int = 20) -> list[dict]:
    """Press Tab, ``batch`` at a time, until the JavaScript condition ``done`` holds (or
    ``limit`` presses); return every element that took the focus on the way."""
    page.evaluate(_RECORD_FOCUS)
    for _ in range(0, limit, batch):
        for _ in range(batch):
            page.keyboard.press("Tab")
        if page.evaluate(done):
            break
    return page.evaluate("window.__focused")


def _check_page(browser, path: Path, shots: Path, expect_math: bool, expect_images: bool,
                query: str = "", plant: bool = False) -> dict:
    """Every check on one page, an axe-core audit for WCAG 2.1 AA among them. For a slide deck
    pass ``query="?print-pdf"``: then every slide is laid out and visible, with its fragments
    shown and nothing fading, so the text of all of them can be read, and audited in one run,
    as the reader sees it. ``plant``: show that the audit catches a planted faint paragraph."""
    page, requests = _open(browser, path, query)
    page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=bool(query))
    leaving = [u for u in requests if not u.startswith(LOCAL_SCHEMES)]
    assert leaving == [], f"{path.name} requested {leaving}"
    images = page.evaluate(
        "Array.from(document.images).map(i => ({src: i.src.slice(0, 80), done: i.complete,"
        " w: i.naturalWidth, h: i.naturalHeight, alt: i.getAttribute('alt')}))")
    broken = [i for i in images if not (i["done"] and i["w"] > 0 and i["h"] > 0)]
    assert broken == [], f"{path.name}: images that did not load: {broken}"
    # every figure says what it shows: alt text, neither nbconvert's placeholder nor a repr
    mute = [i["alt"] for i in images if not i["alt"] or len(i["alt"]) > 320 or i["alt"].startswith(
        ("No description has been provided", "<Figure", "<matplotlib"))]
    assert mute == [], f"{path.name}: images without a description: {mute}"
    if expect_images:
        assert len(images) >= 3, f"{path.name}: only {len(images)} images"
    # The prose (markdown) as the reader sees it: no TeX source may be left in it.
    prose = page.evaluate(
        "Array.from(document.querySelectorAll('.jp-MarkdownCell, .jp-RenderedMarkdown'))"
        ".map(e => e.innerText).join('\\n')")
    for raw in ("$$", "\\frac", "\\mathcal", "\\mid"):
        assert raw not in prose, f"{path.name}: raw TeX {raw!r} left in the text"
    failed = page.locator(".MathJax_Error").count()  # "[Math Processing Error]" in the text
    assert failed == 0, f"{path.name}: MathJax failed on {failed} formulas"
    typeset = page.locator(".MathJax, .MathJax_Display, .MathJax_SVG").count()
    if expect_math:
        assert typeset >= 5, f"{path.name}: MathJax typeset only {typeset} formulas"
    solutions = page.locator("details.vae-solution")
    n = solutions.count()
    for i in range(n):
        details = solutions.nth(i)
        assert details.evaluate("d => d.open") is False
        body = details.locator(".jp-Cell-inputWrapper, .jp-InputArea, .jp-RenderedMarkdown")
        if body.count():
            assert not body.first.is_visible(), f"{path.name}: solution {i} is showing"
    if expect_math:  # every formula has an assistive MathML copy for a screen reader
        try:  # MathJax adds the copies after typesetting: a slow machine needs a moment
            page.wait_for_function(
                "document.querySelectorAll('script[type^=\"math/tex\"]').length === "
                "document.querySelectorAll('.MathJax .MJX_Assistive_MathML').length",
                timeout=20_000)
        except Exception:  # playwright's TimeoutError: the assertion below says how many
            pass
        formulas = page.evaluate("document.querySelectorAll('script[type^=\"math/tex\"]')"
                                 ".length")
        spoken = page.evaluate("document.querySelectorAll('.MathJax .MJX_Assistive_MathML')"
                               ".length")
        assert formulas == spoken, f"{path.name}: {spoken} of {formulas} formulas for readers"
    if query == "?print-pdf":  # every slide is on view: the presenter's hidden marks go
        page.evaluate(SHOW_ALL_SLIDES)
    violations = _axe(page)  # WCAG 2.1 AA: none, on a page or on any slide of a deck
    assert not violations, f"{path.name}: {violations}"
    if plant and violations is not None:  # the audit can fail: a faint paragraph is caught
        page.evaluate("document.body.insertAdjacentHTML('beforeend',"
                      " '<p style=\"color: #aaaaaa\">planted faint text</p>')")
        assert [v["id"] for v in _axe(page)] == ["color-contrast"]
    result = {"images": len(images), "typeset": typeset, "solutions": n,
              "requests": len(requests), "audited": violations is not None}
    page.close()
    return result


def test_the_index_page_in_a_browser(browser, site, tmp_path):
    result = _check_page(browser, site / "index.html", tmp_path, expect_math=False,
                         expect_images=True, plant=True)  # the README's figures
    assert result["images"] >= 4


def test_a_notebook_page_in_a_browser(browser, site, tmp_path):
    result = _check_page(browser, site / "04_vae_loss.html", tmp_path, expect_math=True,
                         expect_images=True)
    assert result["solutions"] >= 2
    # by keys alone the solutions' toggles are reached (the first two: Tab passes every cell
    # and formula on the way), with a visible focus, and Enter opens one
    page, _ = _open(browser, site / "04_vae_loss.html")
    focused = _tab_until(page, "window.__focused.filter(f => f.tag === 'SUMMARY').length >= 2")
    toggles = [f for f in focused if f["tag"] == "SUMMARY" and f["solution"]]
    assert len(toggles) >= 2 and all(f["outline"] != "none" for f in toggles)
    first = page.locator("details.vae-solution").first
    first.locator("summary").focus()
    page.keyboard.press("Enter")
    assert first.evaluate("d => d.open") is True
    assert first.locator(".jp-InputArea, .jp-RenderedMarkdown").first.is_visible()
    page.close()


def test_the_animation_plays_offline_in_a_browser(browser, site, tmp_path):
    result = _check_page(browser, site / "08_inside_the_latent_space.html", tmp_path,
                         expect_math=True, expect_images=False)
    assert result["images"] >= 2  # the animation's picture and the posterior figure
    assert result["solutions"] >= 1
    page, requests = _open(browser, site / "08_inside_the_latent_space.html")
    player = page.locator(".animation").first
    player.scroll_into_view_if_needed()
    frame = "document.querySelector('.animation img').src"
    first = page.evaluate(frame)
    # by keys alone: Tab reaches the player's buttons, with a visible focus; Enter steps
    focused = _tab_until(page, "window.__focused.some(f => f.title === 'Next frame')")
    assert any(f["title"] == "Next frame" and f["outline"] != "none" for f in focused)
    player.locator("button[title='Next frame']").focus()
    page.keyboard.press("Enter")
    assert page.evaluate(frame) != first  # a step forward shows another snapshot
    player.locator("button[title='Play']").click()
    page.wait_for_timeout(1500)
    player.locator("button[title='Pause']").click()
    page.screenshot(path=str(tmp_path / "animation.png"))
    assert [u for u in requests if not u.startswith(LOCAL_SCHEMES)] == []
    page.close()


def test_a_slide_deck_in_a_browser(browser, site, tmp_path):
    deck = site / "04_vae_loss.slides.html"
    # As presented: reveal.js starts, and each slide shows typeset math once it is current
    # (slides out of view are not rendered, so their text is only read when shown).
    page, requests = _open(browser, deck)
    page.screenshot(path=str(tmp_path / "slides-first.png"))
    assert [u for u in requests if not u.startswith(LOCAL_SCHEMES)] == []
    assert page.evaluate("Reveal.isReady()") and page.evaluate("Reveal.getTotalSlides()") > 5
    # not an "application" that hides the text from a screen reader's browse mode (reveal.js
    # issue #3772); moved through by the arrow keys
    assert page.evaluate("document.querySelector('.reveal').getAttribute('role')") is None
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("Reveal.getIndices().h") == 2
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("Reveal.getIndices().h") == 1
    for h in range(page.evaluate("Reveal.getHorizontalSlides().length")):
        page.evaluate(f"Reveal.slide({h}, 0)")
        page.wait_for_function("MathJax.Hub.queue.pending === 0"
                               " && MathJax.Hub.queue.running === 0")
        text = page.evaluate("Reveal.getCurrentSlide().innerText")
        assert "$$" not in text and "\\frac" not in text, f"slide {h}: raw TeX"
    page.close()
    # ?print-pdf: every slide laid out for the browser's "Print to PDF", checked in full
    result = _check_page(browser, deck, tmp_path, expect_math=True, expect_images=True,
                         query="?print-pdf")
    assert result["requests"] > 0
    other = site / "08_inside_the_latent_space.slides.html"  # the other deck: audited too
    _check_page(browser, other, tmp_path, expect_math=True, expect_images=False,
                query="?print-pdf")
    page, _ = _open(browser, deck, "?print-pdf")
    assert page.evaluate("document.documentElement.classList.contains('reveal-print')"
                         " || document.querySelectorAll('.pdf-page').length > 0")
    pdf = tmp_path / "slides.pdf"
    page.pdf(path=str(pdf))
    assert pdf.stat().st_size > 10_000
    page.close()




def test_the_site_audit_command_reports_each_file(browser, tmp_path):
    """``book --audit``'s audit (tools.accessibility.audit_site) on two small pages: the
    clean one passes, the one with faint text and an unlabelled field fails with both."""
    if not AXE.is_file():
        if os.environ.get("VAE_REQUIRE_BROWSER") == "1":
            pytest.fail("VAE_REQUIRE_BROWSER=1 but axe-core is not installed")
        pytest.skip("axe-core is not installed (npm ci --prefix .ci/axe)")
    from helper_lib.tools.accessibility import audit_site

    head = "<!doctype html><html lang='en'><head><title>t</title></head><body><main>"
    (tmp_path / "clean.html").write_text(head + "<h1>Clean</h1><p>Plain text.</p></main>")
    (tmp_path / "faint.html").write_text(head + "<h1>Faint</h1><p style='color:#bbb'>faint"
                                         "</p><input type='range'></main>")
    found = audit_site(tmp_path, log=lambda line: None, browser=browser)
    assert found["clean.html"] == []
    assert sorted(v["id"] for v in found["faint.html"]) == ["color-contrast", "label"]
