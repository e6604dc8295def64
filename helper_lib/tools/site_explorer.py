"""The latent explorer, live on the course site and its slides without a kernel (issue #35).

In a notebook, :func:`helper_lib.interactive.latent_explorer` is an ipywidgets explorer; its
display bundle also carries a static picture and, where the models are shipped ones, the
settings of a live panel (:data:`~helper_lib.interactive.EXPLORER_MIME`). The site build
(:func:`helper_lib.tools.book.build_site`) hands each executed notebook to :func:`make_live`,
which replaces such an output by a ``<figure class="vae-live">``: the static picture, with its
alt text, and ``_static/explorer/explorer.js``, which turns it into the live panel where
JavaScript and WebAssembly run. :func:`write_runtime` puts into ``_static/explorer/``:

- ``explorer.js`` and ``explorer.css``: the panel;
- ``ort-runtime.js``: onnxruntime-web's WebAssembly build (its bundle and binary, from npm:
  ``npm ci --prefix .ci/onnxruntime-web``), as base64;
- ``models.js``: the ONNX files of :func:`helper_lib.tools.export.export_models`, as base64.

Base64 in ``<script>`` tags, because a page opened from disk (``file://``) may load scripts but
not ``fetch()`` files or import modules; see docs/site.md for what was tried and measured.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..assets.project import REPO_ROOT
from ..interactive import EXPLORER_MIME

__all__ = ["ORT_DIST", "RuntimeMissing", "explorer_outputs", "make_live", "write_runtime"]

#: onnxruntime-web's files, installed by ``npm ci --prefix .ci/onnxruntime-web`` (in a clone).
ORT_DIST = REPO_ROOT / ".ci" / "onnxruntime-web" / "node_modules" / "onnxruntime-web" / "dist"
#: The two files of onnxruntime-web the panel needs: the WebAssembly build's JavaScript (its
#: module with the Emscripten glue inside) and its binary (SIMD; run on one thread).
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
_PANEL = Path(__file__).resolve().parent / "book_templates" / "explorer"


class RuntimeMissing(RuntimeError):
    """onnxruntime-web (npm) or the ONNX exporter (pip) is missing: the site keeps the static
    pictures."""


def explorer_outputs(nb: Any) -> list[dict[str, Any]]:
    """The outputs of the executed ``nb`` that carry a live panel's settings."""
    return [out for cell in nb.get("cells", []) if cell.get("cell_type") == "code"
            for out in cell.get("outputs", []) if EXPLORER_MIME in out.get("data", {})]


def make_live(nb: Any, live: bool, static: str = "_static/explorer/") -> int:
    """Replace each explorer output of ``nb`` (in place) by the live panel's ``<figure>`` when
    ``live``, or else drop its settings and keep the picture; returns how many were made live.
    The figure keeps the static picture and its alt text: the panel replaces it only once it
    runs."""
    made = 0
    for out in explorer_outputs(nb):
        settings = out["data"].pop(EXPLORER_MIME)
        png = out["data"].get("image/png")
        if not live or png is None:
            continue
        alt = out.get("metadata", {}).get("image/png", {}).get("alt", "")
        out["data"] = {"text/html": (
            f'<figure class="vae-live" data-explorer="{html.escape(json.dumps(settings))}">'
            f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt)}">'
            "<figcaption>A static picture; the live explorer starts here once the page has "
            "loaded (JavaScript and WebAssembly).</figcaption></figure>"
            f'<link rel="stylesheet" href="{static}explorer.css">'
            f'<script src="{static}explorer.js"></script>'), "text/plain": alt}
        out["metadata"] = {}
        made += 1
    return made


def _script(name: str, value: Any) -> str:
    return f"window.{name} = {json.dumps(value)};\n"


def write_runtime(folder: Path, log: Callable[[str], None] = print,
                  dist: Path = ORT_DIST) -> int:
    """Write the panel, onnxruntime-web and the exported models into ``folder`` (the site's
    ``_static/explorer``); returns the bytes written.

    Raises:
        RuntimeMissing: onnxruntime-web is not installed, or the models cannot be exported.
    """
    from .export import ExportError, export_models

    missing = [f for f in ORT_FILES if not (dist / f).is_file()]
    if missing:
        raise RuntimeMissing(f"onnxruntime-web is missing ({dist / missing[0]}): "
                             "npm ci --prefix .ci/onnxruntime-web")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vae-onnx-") as tmp:
        try:
            paths = export_models(tmp, log=lambda line: log(f"  exported {line}"))
        except ExportError as err:
            raise RuntimeMissing(str(err)) from None
        models = {name: base64.b64encode(p.read_bytes()).decode() for name, p in paths.items()}
    (folder / "models.js").write_text(_script("VAE_MODELS", models))
    bundle, wasm = ((dist / f).read_bytes() for f in ORT_FILES)
    (folder / "ort-runtime.js").write_text(_script("VAE_ORT", {
        "bundle": base64.b64encode(bundle).decode(), "wasm": base64.b64encode(wasm).decode()}))
    for name in ("explorer.js", "explorer.css"):
        shutil.copyfile(_PANEL / name, folder / name)
    return sum(p.stat().st_size for p in folder.iterdir())
