"""Saving and loading models with enough metadata to rebuild them.

A checkpoint is a ``torch.save`` dict holding only tensors and plain Python values, so it loads
with ``torch.load(weights_only=True)`` (no arbitrary code runs on load)::

    {"format": "helper_lib-checkpoint/1", "model_class": "ConvVAE",
     "model_kwargs": {"latent_dim": 2}, "state_dict": {...}, "metadata": {...},
     # training checkpoints only (for resuming):
     "optimizer_state": {...}, "history": {...}, "rng_state": {...}}

When a file ``<checkpoint>.sha256`` sits beside a checkpoint, :func:`load_model` checks the
checkpoint's hash against it before loading.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import platform
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .assets.downloads import sha256_file
from .assets.pretrained import (
    MANIFEST_PATH,
    PRETRAINED_DIR,
    SHIPPED_MODELS,
    manifest,
    pretrained_file,
)
from .history import History
from .model_types import MODEL_TYPES, model_class, model_type

__all__ = [
    "CheckpointError",
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "remove_partial_writes",
    "write_sha256",
    "library_versions",
    "pretrained_path",
    "load_pretrained",
    "load_pretrained_history",
    "write_manifest",
]

FORMAT = "helper_lib-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupted, truncated, foreign or does not fit its model."""


def library_versions() -> dict[str, str]:
    """Versions of Python, torch, torchvision and numpy, for the metadata."""
    import numpy
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "numpy": str(numpy.__version__),
    }


def _model_kwargs(model: nn.Module) -> dict[str, Any]:
    size = model_type(model).size  # "latent_dim", or a classifier's "feature_dim"
    return {size: int(getattr(model, size))}


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    **metadata: Any,
) -> Path:
    """Write ``model``'s weights plus metadata to ``path`` atomically (temp file, then replace).

    Args:
        path: destination file; parent folders are created.
        model: one of the course's models (:data:`helper_lib.model_types.MODEL_TYPES`).
        optimizer: if given, its state is stored too (for resuming training).
        extra: further top-level entries (training history, RNG state); plain values/tensors.
        **metadata: anything JSON-like: epoch, metrics, the command that made the file, ...
            Library versions are added automatically.

    Returns:
        The path written.
    """
    name = type(model).__name__
    if model_class(name) is None:
        names = sorted(t.cls.__name__ for t in MODEL_TYPES.values())
        raise CheckpointError(f"cannot checkpoint {name}: not one of {names}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() if v.is_floating_point()
             else v.detach().cpu() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "model_class": name,
        "model_kwargs": _model_kwargs(model),
        "state_dict": state,
        "metadata": {"versions": library_versions(), **metadata},
    }
    if optimizer is not None:
        payload["optimizer_state"] = optimizer.state_dict()
    if extra:
        payload.update(extra)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_partial_writes(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that an interrupted :func:`save_checkpoint` of ``path`` left.

    ``save_checkpoint`` writes to ``.<name>.<random>.tmp`` and renames it over ``path`` in one
    step, so ``path`` itself is never half-written; a process killed mid-write (SIGKILL, power
    loss) leaves only such a temporary file. Returns the files removed.
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def write_sha256(path: str | os.PathLike) -> str:
    """Write ``<path>.sha256`` (``sha256sum`` format) beside ``path`` and return the hash."""
    digest = sha256_file(path)
    Path(f"{path}.sha256").write_text(f"{digest}  {Path(path).name}\n")
    return digest


def load_checkpoint(
    path: str | os.PathLike, expected_sha256: str | None = None, *, verified: bool = False
) -> dict[str, Any]:
    """Read and validate a checkpoint file; return its dict.

    The hash is checked against ``expected_sha256`` or, if that is ``None``, against a
    ``<path>.sha256`` file when one exists; ``verified=True`` skips that (the caller has just
    checked it, as :func:`helper_lib.assets.pretrained.pretrained_file` does).

    Raises:
        CheckpointError: missing file, hash mismatch, unreadable/truncated file, or a file that
            is not a helper_lib checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    sidecar = Path(f"{path}.sha256")
    if verified:
        pass
    elif expected_sha256 is None and sidecar.is_file():
        expected_sha256 = sidecar.read_text().split()[0]
    if expected_sha256 is not None and not verified:
        actual = sha256_file(path)
        if actual != expected_sha256.lower():
            raise CheckpointError(
                f"{path} is corrupted or was replaced: its sha256 is {actual}, "
                f"expected {expected_sha256}. " + _restore_hint(path)
            )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise CheckpointError(f"cannot read {path}: it is corrupted ({_first_line(err)})"
                                  ) from None
        # torch's own message advises weights_only=False, i.e. running the file's code. No.
        found = re.search(r"GLOBAL (\S+)", str(err))
        raise CheckpointError(
            f"refusing to load {path}: it contains Python objects other than tensors and plain "
            f"values{f' ({found.group(1)})' if found else ''}, which could run code when "
            "unpickled. It will not be loaded. helper_lib checkpoints hold only tensors; "
            "re-create the file with helper_lib.checkpoints.save_checkpoint."
        ) from None
    except Exception as err:  # zip/unpickling errors come in many types
        raise CheckpointError(
            f"cannot read {path}: it is truncated, corrupted or not a PyTorch file "
            f"({_first_line(err)})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a helper_lib checkpoint (expected format {FORMAT!r}); "
            "save models with helper_lib.checkpoints.save_checkpoint"
        )
    if model_class(str(payload.get("model_class"))) is None:
        raise CheckpointError(f"{path}: unknown model class {payload.get('model_class')!r}")
    return payload


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    expected_sha256: str | None = None,
) -> nn.Module:
    """Rebuild the model stored in a checkpoint, load its weights and put it in ``eval()`` mode.

    The checkpoint's metadata is attached as ``model.checkpoint_metadata``.

    Raises:
        CheckpointError: see :func:`load_checkpoint`; also when the weights do not fit the
            model (missing/unexpected keys or wrong shapes).
    """
    return _model_from(load_checkpoint(path, expected_sha256), path, device)


def _model_from(payload: dict[str, Any], path: str | os.PathLike,
                device: str | torch.device) -> nn.Module:
    """The model a validated checkpoint ``payload`` (from :func:`load_checkpoint`) holds."""
    model = model_class(payload["model_class"])(**payload["model_kwargs"])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"{path}: the stored weights do not fit {payload['model_class']}"
            f"({payload['model_kwargs']}): {err}"
        ) from None
    model.checkpoint_metadata = payload.get("metadata", {})
    return model.to(device).eval()


def _restore_hint(path: Path) -> str:
    if PRETRAINED_DIR in path.resolve().parents:
        return f"Restore it with `git checkout -- {path}`."
    return f"Re-create it, or delete it and {path.name}.sha256."


def _check_name(name: str) -> None:
    if name not in SHIPPED_MODELS:
        what = " (a path, not a model name)" if ("/" in name or "\\" in name) else ""
        raise ValueError(f"unknown pretrained model {name!r}{what}; the shipped ones are "
                         f"{', '.join(SHIPPED_MODELS)}")


def pretrained_path(name: str) -> Path:
    """The verified local file of the shipped checkpoint ``name``, e.g.
    ``pretrained_path("conv_vae_mnist")``: the clone's ``data/pretrained/<name>.pt``, else the
    user cache's copy, else downloaded into the cache
    (:func:`helper_lib.assets.pretrained.pretrained_file`).

    Raises:
        ValueError: an unknown name (the message lists the names).
        helper_lib.assets.pretrained.PretrainedUnavailableError: found nowhere and not downloadable.
    """
    _check_name(name)
    return pretrained_file(f"{name}.pt")


def _trained_with(payload: dict[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint written by ``python -m helper_lib train`` was trained with."""
    meta = payload.get("metadata", {})
    settings = {k: v for k, v in meta.items() if not isinstance(v, dict)}
    settings.update(payload.get("model_kwargs", {}))
    settings.update(meta.get("loss", {}))
    settings.setdefault("train_subset", None)  # the shipped runs used every training image
    settings.setdefault("schedule", "constant")  # recorded since the schedules came in
    return settings


def load_pretrained(
    name: str, device: str | torch.device = "cpu", expect: dict[str, Any] | None = None
) -> nn.Module | None:
    """The shipped checkpoint ``name`` (sha256-verified, in ``eval()`` mode; from the clone, the
    cache or a download, see :func:`pretrained_path`), or ``None``, so that notebooks can fall
    back to training when the caller asks for other settings:

    >>> model = load_pretrained("conv_vae_mnist", expect={"epochs": EPOCHS})  # doctest: +SKIP
    >>> if model is None: ...                      # train from scratch

    ``None`` when ``expect`` (the settings the caller would train with) differs from what the
    shipped model was trained with; a ``UserWarning`` then names the differences. The model's
    ``pretrained_name`` is ``name``, and its ``pretrained_from`` says where it was read
    (``"data/pretrained/"`` or the cache). A model that
    is found nowhere and cannot be downloaded is an error, never a silent fallback to a long
    training: the error says what training it here would cost. Keys: ``latent_dim``,
    ``epochs``, ``batch_size``, ``lr``, ``schedule``,
    ``seed``, ``dataset``, ``kind``, ``reconstruction_weight``, ``beta``, ``train_subset``.

    Raises:
        ValueError: ``name`` is not one of
            :data:`helper_lib.assets.pretrained.SHIPPED_MODELS`, or ``expect`` has a key
            the checkpoint does not record.
        CheckpointError: the file exists but is corrupted, truncated or does not fit.
        helper_lib.assets.pretrained.PretrainedUnavailableError: found nowhere, and the download
            failed.
    """
    path = pretrained_path(name)
    payload = load_checkpoint(path, verified=True)  # pretrained_path has hashed it: read once
    if expect:
        trained = _trained_with(payload)
        unknown = sorted(set(expect) - set(trained))
        if unknown:
            raise ValueError(f"{path.name} does not record {unknown}; it records "
                             f"{sorted(trained)}")
        differ = {k: (trained[k], v) for k, v in expect.items() if not _same(trained[k], v)}
        if differ:
            warnings.warn(
                f"{path.name} was trained with "
                + ", ".join(f"{k}={t!r}" for k, (t, _) in differ.items())
                + "; these settings ask for "
                + ", ".join(f"{k}={v!r}" for k, (_, v) in differ.items())
                + ". Not loading it: train with these settings instead.",
                UserWarning, stacklevel=2)
            return None
    model = _model_from(payload, path, device)
    model.pretrained_from = ("data/pretrained/" if path.parent == PRETRAINED_DIR
                             else f"the cache, {path.parent}")
    model.pretrained_name = name  # the site's live explorer runs this model's export
    return model


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def load_pretrained_history(name: str) -> History | None:
    """The full training history (per batch and per epoch) of a shipped checkpoint, or ``None``.

    Read from ``<name>.history.json`` (the clone, the cache or a download, as
    :func:`pretrained_path`); returns a :class:`helper_lib.history.History`, or ``None`` for the
    checkpoints shipped with a per-epoch CSV only.
    """
    _check_name(name)
    file = f"{name}.history.json"
    return History.from_json(pretrained_file(file)) if file in manifest() else None


#: Files of data/pretrained/ that are not in the manifest.
_NOT_SHIPPED = ("README.md", "make_pretrained.sh")


def write_manifest(folder: str | os.PathLike | None = None,
                   out: str | os.PathLike = MANIFEST_PATH) -> Path:
    """Write the manifest of every file in ``folder`` (the clone's ``data/pretrained/``): its
    sha256 and size, and for checkpoints the epochs, batch size and command they were trained
    with. Run after changing a shipped file: ``python -m helper_lib manifest``."""
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    if not folder.is_dir():
        raise FileNotFoundError("write_manifest needs the clone's data/pretrained/")
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.iterdir()):
        if path.name in _NOT_SHIPPED or path.suffix == ".sha256" or path.name.startswith("."):
            continue
        entry: dict[str, Any] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        if path.suffix == ".pt":
            meta = load_checkpoint(path, entry["sha256"]).get("metadata", {})
            entry.update({k: meta[k] for k in ("epochs", "batch_size", "command") if k in meta})
        files[path.name] = entry
    Path(out).write_text(json.dumps({"files": files}, indent=1) + "\n", encoding="utf-8")
    manifest.cache_clear()
    return Path(out)
