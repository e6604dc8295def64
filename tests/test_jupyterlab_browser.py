"""The explorer and the animation, live in JupyterLab, driven in Debian's chromium (slow).

Starts a JupyterLab server on a free local port, opens a notebook with the latent explorer of
the lecture's VAE and notebook 07's animation, runs it, moves the z1 slider with the keyboard
and presses the player's Play button. Run with ``python -m pytest -m slow``; it needs the
shipped checkpoints, chromium and playwright (skipped otherwise).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from test_site_browser import CHROMIUM, CHROMIUM_ARGS

EXPLORER = """from helper_lib import get_dataloaders
from helper_lib.checkpoints import load_pretrained
from helper_lib.evaluate import collect_latents
from helper_lib.interactive import latent_explorer
model = load_pretrained("conv_vae_mnist")
_, _, test_loader = get_dataloaders(batch_size=256)
codes, labels = collect_latents(model, test_loader, max_items=2000)
latent_explorer(model, codes, labels)"""
FILM = """from IPython.display import HTML
from helper_lib.assets.pretrained import PRETRAINED_DIR
from helper_lib.analysis.film import load_film
from helper_lib.analysis.film_plots import animate_film, film_html
HTML(film_html(animate_film(load_film(PRETRAINED_DIR / "conv_vae_mnist_fast.snapshots.npz"))))"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    pytest.importorskip("playwright")
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(EXPLORER), nbformat.v4.new_code_cell(FILM)]
    nbformat.write(nb, tmp_path / "try.ipynb")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
         f"--ServerApp.root_dir={tmp_path}", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start")
        yield f"{url}/lab/tree/try.ipynb", tmp_path
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp_path / ".ipynb_checkpoints", ignore_errors=True)


@pytest.mark.slow
def test_the_explorer_and_the_animation_work_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    address, folder = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(address, wait_until="networkidle")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        page.wait_for_timeout(2000)  # the kernel starts
        page.locator("text=Run").first.click()
        page.locator("text=Run All Cells").first.click()
        page.wait_for_selector(".widget-slider", timeout=120_000)
        page.wait_for_timeout(2000)
        digit = page.locator(".jupyter-widgets img").last  # the decoded image
        before = digit.get_attribute("src")
        page.locator(".widget-slider [role=slider], .widget-slider .noUi-handle").first.focus()
        for _ in range(20):  # 20 steps of 0.05: z1 from 0 to 1
            page.keyboard.press("ArrowRight")
        page.wait_for_function("document.querySelector('.widget-readout').innerText === '1.00'",
                               timeout=10_000)
        page.wait_for_timeout(2000)  # the kernel redraws the image
        assert digit.get_attribute("src") != before, "the decoded image did not follow z1"
        page.screenshot(path=str(folder / "explorer.png"))

        player = page.locator(".animation").first
        player.wait_for(timeout=60_000)
        player.scroll_into_view_if_needed()
        frame = "document.querySelector('.animation img').src"
        first = page.evaluate(frame)
        player.locator("button[title='Play']").click()
        page.wait_for_timeout(2500)
        assert page.evaluate(frame) != first, "the animation did not play"
        page.screenshot(path=str(folder / "animation.png"))
        browser.close()
