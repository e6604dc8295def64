"""The latent explorer, live on the site without a kernel (issue #35).

One small site serves every test here: a notebook whose one cell shows
``latent_explorer(vae, ..., compare=ae)`` with the shipped VAE and autoencoder, built as the
course site is (``build_site``: the models exported to ONNX, onnxruntime-web from npm in
``.ci/onnxruntime-web``). Then:

- each ONNX file, run by onnxruntime, equals torch within 1e-5;
- in Chromium, from disk and from a loopback HTTP server, the panel starts, the point moves by
  mouse and by keys, and the canvas shows torch's decode of that z within 1/255, with torch's
  classifier verdict; no request leaves the machine; axe finds no WCAG 2.1 AA violation; the
  map takes the focus by Tab, with a visible outline;
- interpolation between two test digits lands on the line between their codes;
- without JavaScript the static picture stays, with its alt text;
- the panel's slide fits the 960 x 700 deck, and the arrow keys move z, not the slides.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from slide_fit import chromium, count_overflowing, describe, measure_deck
from test_site_browser import LOCAL_SCHEMES, _axe, _browser_or_skip

from helper_lib.checkpoints import load_pretrained
from helper_lib.tools.book import build_site
from helper_lib.tools.export import EXPORTS, module_of
from helper_lib.tools.site_explorer import ORT_DIST, ORT_FILES

CODES = 400  # test images on the map


def _notebook(path: Path) -> Path:
    """The explorer cell as the site build gets it from a kernel, made here (no kernel: a
    second of work instead of ten): its display bundle, as IPython formats it."""
    from IPython.core.interactiveshell import InteractiveShell

    from helper_lib import get_dataloaders
    from helper_lib.evaluate import collect_latents
    from helper_lib.interactive import latent_explorer

    vae, ae = load_pretrained("conv_vae_mnist"), load_pretrained("conv_ae_mnist")
    codes, labels = collect_latents(vae, get_dataloaders("mnist", batch_size=200)[2],
                                    max_items=CODES)
    explorer = latent_explorer(vae, codes=codes, labels=labels, compare=ae)
    data, metadata = InteractiveShell.instance().display_formatter.format(explorer)
    data = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v  # as the kernel sends
            for k, v in data.items()}
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A live explorer"),
        nbformat.v4.new_code_cell("latent_explorer(vae, codes=codes, labels=labels, compare=ae)",
                                  metadata={"slideshow": {"slide_type": "slide"}},
                                  outputs=[nbformat.v4.new_output(
                                      "display_data", data=data, metadata=metadata)])]
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def live_site(tmp_path_factory):
    _browser_or_skip()
    if not all((ORT_DIST / f).is_file() for f in ORT_FILES):
        reason = "onnxruntime-web is not installed (npm ci --prefix .ci/onnxruntime-web)"
        if os.environ.get("VAE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"VAE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("live")
    logs: list[str] = []
    build_site(root / "site", notebooks=[_notebook(root / "01_live.ipynb")], execute=False,
               log=logs.append)
    assert any(line.startswith("live explorers: ") and " MB in _static/explorer/" in line
               for line in logs), logs
    return root / "site"


@pytest.fixture(scope="module")
def browser(live_site):
    with chromium() as b:  # offline, as tests/test_site_browser.py launches it
        yield b


@pytest.fixture(scope="module")
def torch_models():
    return {spec.name: module_of(load_pretrained(spec.name), spec.part) for spec in EXPORTS}


def _exported(site: Path) -> dict[str, bytes]:
    """The ONNX files as the page gets them: models.js, ``window.VAE_MODELS = {name: b64}``."""
    text = (site / "_static" / "explorer" / "models.js").read_text()
    return {k: base64.b64decode(v) for k, v in json.loads(
        text.split("=", 1)[1].strip().rstrip(";")).items()}


def test_each_onnx_file_equals_torch(live_site, torch_models):
    import onnxruntime

    models = _exported(live_site)
    assert sorted(models) == sorted(s.name for s in EXPORTS)
    g = torch.Generator().manual_seed(0)
    for spec in EXPORTS:
        session = onnxruntime.InferenceSession(models[spec.name],
                                               providers=["CPUExecutionProvider"])
        if spec.part == "decoder":  # codes inside the map and far beyond it
            inputs = torch.randn(64, 2, generator=g) * 3
        else:  # decoded digits and noise
            inputs = torch.cat([torch_models["conv_vae_mnist"](torch.randn(32, 2, generator=g)),
                                torch.rand(32, 1, 28, 28, generator=g)]).detach()
        for batch in (inputs[:1], inputs):
            (got,) = session.run(None, {"input": batch.numpy()})
            with torch.no_grad():
                want = torch_models[spec.name](batch).numpy()
            assert got.shape == want.shape
            assert np.abs(got - want).max() <= 1e-5, spec.name


@pytest.fixture(scope="module")
def server(live_site):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(live_site))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


_STATE = ("f => ({z: JSON.parse(f.dataset.z), reads: JSON.parse(f.dataset.reads), "
          "frames: f.vaeExplorer.frames, text: f.querySelector('.vae-live-text').textContent, "
          "pixels: [...f.querySelectorAll('.vae-live-digit canvas')].map(c => Array.from("
          "c.getContext('2d').getImageData(0, 0, 28, 28).data).filter((_, i) => i % 4 === 0))})")


def _settled(page, frames_before: int) -> dict:
    """The panel's state once it has drawn a new frame and has nothing more to draw."""
    page.wait_for_function("n => { const p = document.querySelector('figure.vae-live')"
                           ".vaeExplorer; return p.frames > n && !p.busy && !p.pending; }",
                           arg=frames_before, timeout=30_000)
    return page.eval_on_selector("figure.vae-live", _STATE)


def _agrees_with_torch(state: dict, models: dict) -> None:
    """The canvas shows torch's decode of the panel's z within 1/255, and the classifier's
    verdict on each decoded digit is torch's."""
    z = torch.tensor([state["z"]], dtype=torch.float32)
    for k, name in enumerate(["conv_vae_mnist", "conv_ae_mnist"]):
        with torch.no_grad():
            x = models[name](z)
            verdict = int(models["classifier_mnist"](x).argmax())
        want = np.round(255 * (1 - x.clamp(0, 1).numpy().reshape(-1)))
        assert np.abs(np.array(state["pixels"][k]) - want).max() <= 1, name
        assert state["reads"][k] == verdict, (name, state["text"])


def _open_live(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url, wait_until="load")
    page.wait_for_selector("figure.vae-live[data-live=ready]", timeout=60_000)
    return page, requests


def _first_frame_ms(page) -> float:
    return page.eval_on_selector("figure.vae-live", "f => f.vaeExplorer.firstFrame")


def test_the_panel_runs_from_disk_and_over_http(live_site, browser, server, torch_models):
    page_path = live_site / "01_live.html"
    for url in (page_path.as_uri(), f"{server}/01_live.html"):
        page, requests = _open_live(browser, url)
        leaving = [u for u in requests if not u.startswith((*LOCAL_SCHEMES, server))]
        assert leaving == [], leaving
        assert _first_frame_ms(page) < 10_000
        assert page.locator("figure.vae-live img").is_hidden()
        state = page.eval_on_selector("figure.vae-live", _STATE)
        assert state["z"] == [0, 0] and state["text"].startswith("z = (0.00, 0.00): the "
                                                                 "classifier reads a")
        _agrees_with_torch(state, torch_models)
        box = page.locator(".vae-live-map").bounding_box()  # 300 px span z from -3 to 3
        frames = state["frames"]
        page.mouse.move(box["x"] + 150, box["y"] + 150)
        page.mouse.down()
        page.mouse.move(box["x"] + 200, box["y"] + 100, steps=5)
        page.mouse.up()
        state = _settled(page, frames)
        assert state["z"] == pytest.approx([1.0, 1.0], abs=0.03), "dragged to (+50, -50) px"
        _agrees_with_torch(state, torch_models)
        page.focus(".vae-live-map")
        before, frames = state["z"], state["frames"]
        for key in ("ArrowLeft", "ArrowDown", "ArrowDown", "Shift+ArrowLeft"):
            page.keyboard.press(key)
        state = _settled(page, frames)
        assert state["z"] == pytest.approx([before[0] - 0.6, before[1] - 0.2], abs=1e-9)
        _agrees_with_torch(state, torch_models)
        assert len(page.locator(".vae-live-sr[aria-live=polite]").all()) == 1
        page.close()


def test_the_panel_interpolates_between_two_test_digits(live_site, browser, torch_models):
    page, _ = _open_live(browser, (live_site / "01_live.html").as_uri())
    settings = json.loads(page.get_attribute("figure.vae-live", "data-explorer"))
    codes = np.array(settings["codes"])
    page.click("text=Interpolate two test digits")
    assert page.get_attribute(".vae-live-modes button:nth-child(2)", "aria-pressed") == "true"
    box = page.locator(".vae-live-map").bounding_box()
    picks = []
    for a in (codes[0], codes[1]):  # a click lands on the test digit nearest to it
        px = (a[0] + 3) / 6 * 300, (3 - a[1]) / 6 * 300
        page.mouse.click(box["x"] + px[0], box["y"] + px[1])
        picks.append(page.eval_on_selector("figure.vae-live",
                                           "f => f.vaeExplorer.ends.slice(-1)[0]"))
    for pick, a in zip(picks, (codes[0], codes[1]), strict=True):
        assert np.abs(codes - pick).sum(1).min() == 0  # a test digit's code
        assert np.hypot(*(np.array(pick) - a)) < 0.05
    frames = page.eval_on_selector("figure.vae-live", "f => f.vaeExplorer.frames")
    page.locator(".vae-live-lerp input").fill("0.25")
    state = _settled(page, frames)
    a, b = np.array(picks[0]), np.array(picks[1])
    assert state["z"] == pytest.approx((a + 0.25 * (b - a)).tolist(), abs=1e-9)
    _agrees_with_torch(state, torch_models)
    page.close()


def test_the_live_page_passes_axe_and_the_keyboard(live_site, browser):
    page, _ = _open_live(browser, (live_site / "01_live.html").as_uri())
    violations = _axe(page)
    assert violations in ([], None), violations
    for _ in range(40):  # Tab from the top until the map has the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('vae-live-map')"):
            break
    else:
        raise AssertionError("Tab never reached the latent map")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.close()
    still = browser.new_page(java_script_enabled=False)
    still.goto((live_site / "01_live.html").as_uri())
    picture = still.locator("figure.vae-live img")
    assert picture.is_visible()
    assert picture.get_attribute("alt").startswith("Latent explorer, a static picture")
    still.close()


def test_the_panel_fits_its_slide_and_the_arrow_keys_move_z_not_the_slides(live_site, browser):
    deck = live_site / "01_live.slides.html"
    sizes = measure_deck(browser, deck)
    assert count_overflowing(sizes) == 0, "\n".join(describe(sizes))
    page, _ = _open_live(browser, deck.as_uri() + "#/1")
    where = page.evaluate("JSON.stringify(Reveal.getIndices())")
    page.focus(".vae-live-map")
    frames = page.eval_on_selector("figure.vae-live", "f => f.vaeExplorer.frames")
    page.keyboard.press("ArrowRight")
    state = _settled(page, frames)
    assert state["z"] == pytest.approx([0.1, 0.0])
    assert page.evaluate("JSON.stringify(Reveal.getIndices())") == where
    page.close()
