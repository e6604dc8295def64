"""The shipped models that the site's live latent explorer runs, as ONNX files (issue #35).

``python -m helper_lib export --out DIR`` writes, for each model of :data:`EXPORTS`:

- the **decoders** of the two 2-D models the notebooks explore, the lecture's VAE
  (``conv_vae_mnist``) and the autoencoder that notebook 02 sets beside it (``conv_ae_mnist``):
  ``z [N, 2] -> x̂ [N, 1, 28, 28]`` in [0, 1];
- the shipped **classifier** (``classifier_mnist``), with a softmax added so that it gives what
  the page shows: ``x [N, 1, 28, 28] -> probabilities [N, 10]``;

and ``DIR/models.json``, their names, shapes and SHA-256. The site build (``python -m
helper_lib book``) calls the same :func:`export_models`; the files are build products, never
committed. tests/test_live_explorer.py runs each file with onnxruntime against torch.

torch's own exporter (``torch.onnx.export(..., dynamo=True)``, with onnx and onnxscript) writes
them; its TorchScript exporter (``dynamo=False``) stops on the decoder with an internal assert.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["EXPORTS", "Export", "ExportError", "export_models", "export_onnx", "module_of"]


@dataclass(frozen=True)
class Export:
    """One exported model: the shipped checkpoint ``name``, which ``part`` of it, and the
    shape of one input (without the batch dimension)."""

    name: str
    part: str  # "decoder" or "classifier"
    input_shape: tuple[int, ...]


#: What the live explorer needs: the two 2-D decoders and the classifier that reads the digit.
EXPORTS = (Export("conv_vae_mnist", "decoder", (2,)),
           Export("conv_ae_mnist", "decoder", (2,)),
           Export("classifier_mnist", "classifier", (1, 28, 28)))


class ExportError(RuntimeError):
    """The models cannot be exported here (a missing package, or a model that is not 2-D)."""


def module_of(model: nn.Module, part: str) -> nn.Module:
    """The part of a shipped model that is exported: its decoder (``z -> x̂``), or a classifier
    with a softmax (``x -> p``), in ``eval()`` mode."""
    if part == "decoder":
        return model.decoder.eval()
    return nn.Sequential(model, nn.Softmax(dim=1)).eval()


def export_onnx(module: nn.Module, example: Tensor, path: str | os.PathLike) -> Path:
    """Write ``module`` (called on ``example [N, ...]``; any batch size N) to ``path`` as one
    self-contained ONNX file (weights inside, as a browser needs them).

    Raises:
        ExportError: onnx or onnxscript is missing.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(f"{err.name} is missing; exporting to ONNX needs onnx and onnxscript: "
                          "pip install -r requirements.txt") from None
    path = Path(path)
    batch = torch.export.Dim("batch", min=1, max=4096)
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # their passes log each step at INFO
        logger.setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():  # its progress lines
        torch.onnx.export(module, (example,), str(path), input_names=["input"],
                          output_names=["output"], dynamic_shapes=({0: batch},), dynamo=True,
                          external_data=False, verbose=False)
    for logger, level in zip(quiet, levels, strict=True):
        logger.setLevel(level)
    return path


def export_models(out: str | os.PathLike, exports: tuple[Export, ...] = EXPORTS,
                  log: Callable[[str], None] = print) -> dict[str, Path]:
    """Export ``exports`` (default :data:`EXPORTS`) into the folder ``out``: ``NAME.onnx`` each,
    and ``models.json`` (``{name: {part, input, output, sha256, bytes}}``). Returns
    ``{name: path}``.

    Raises:
        ExportError: onnx or onnxscript is missing, ``out`` cannot be made, or a decoder's
            model is not 2-D.
    """
    from ..checkpoints import load_pretrained

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, no permission: before any model is loaded
        raise ExportError(f"cannot write the models into {out}: {err.strerror}") from None
    written, manifest = {}, {}
    for spec in exports:
        model = load_pretrained(spec.name)
        if spec.part == "decoder" and int(model.latent_dim) != 2:
            raise ExportError(f"{spec.name} has a {model.latent_dim}-D code; the explorer's map "
                              "needs 2-D")
        module = module_of(model, spec.part)
        example = torch.zeros((2, *spec.input_shape))
        path = export_onnx(module, example, out / f"{spec.name}.onnx")
        with torch.no_grad():
            output = list(module(example).shape[1:])
        data = path.read_bytes()
        manifest[spec.name] = {"part": spec.part, "input": ["N", *spec.input_shape],
                               "output": ["N", *output], "bytes": len(data),
                               "sha256": hashlib.sha256(data).hexdigest()}
        written[spec.name] = path
        log(f"{spec.name} ({spec.part}): {path} ({len(data) / 1e3:,.0f} kB)")
    (out / "models.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return written
