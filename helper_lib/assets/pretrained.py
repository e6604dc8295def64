"""The pretrained files, wherever a notebook runs: the clone, the user cache, or a download.

:func:`pretrained_file` finds one file of ``data/pretrained/`` (a checkpoint, its history, the
film's snapshots) by looking in three places in turn:

1. the clone's ``data/pretrained/`` (when ``helper_lib`` runs from a checkout);
2. the user cache, ``<cache>/pretrained/`` (:func:`helper_lib.assets.downloads.cache_dir`,
   overridable with ``VAE_CACHE_DIR``);
3. a download from the repository at this version's tag
   (:func:`helper_lib.assets.project.pretrained_base_url`), or from
   ``$VAE_PRETRAINED_URL/<file name>`` when that is set; it lands in the cache and is reused from
   there.

Every copy, wherever it was found, is checked against the sha256 in :data:`MANIFEST`, which the
package carries (``pretrained_files.json``, written by ``python -m helper_lib manifest``, i.e.
:func:`helper_lib.checkpoints.write_manifest`, and checked against the clone's files by the
tests).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .downloads import DownloadError, cache_dir, check_base_url, fetch, sha256_file
from .project import CLONE_ROOT, REPO_ROOT, pretrained_base_url

__all__ = ["PRETRAINED_URL_ENV_VAR", "MANIFEST_PATH", "PRETRAINED_DIR", "CLONE_PRETRAINED_DIR",
           "PretrainedCorruptError", "PretrainedUnavailableError", "manifest", "pretrained_url",
           "SHIPPED_MODELS", "Location", "locate", "pretrained_file"]

#: Overrides the download address: every file is then fetched as ``$VAE_PRETRAINED_URL/<name>``.
PRETRAINED_URL_ENV_VAR = "VAE_PRETRAINED_URL"
MANIFEST_PATH = Path(__file__).resolve().parent / "pretrained_files.json"
#: The folder of shipped files in a clone: ``data/pretrained/`` beside the package (committed to
#: git; see data/pretrained/README.md). Outside a clone it does not exist.
PRETRAINED_DIR = REPO_ROOT / "data" / "pretrained"
#: :data:`PRETRAINED_DIR` when helper_lib runs from a clone that has it, else ``None``.
CLONE_PRETRAINED_DIR: Path | None = (
    PRETRAINED_DIR if CLONE_ROOT is not None and PRETRAINED_DIR.is_dir() else None)


class PretrainedCorruptError(DownloadError):
    """The clone's copy of a pretrained file is not the file this helper_lib expects."""


class PretrainedUnavailableError(DownloadError):
    """A pretrained file is in no folder and cannot be downloaded; the message says why, what
    to do, and what training the model here instead would cost."""


@cache
def manifest() -> dict[str, dict[str, Any]]:
    """``{file name: {"sha256": ..., "bytes": ..., ["epochs": ..., "command": ...]}}``."""
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["files"]


#: The name of every shipped model (``<name>.pt`` in the manifest), e.g. ``"conv_vae_mnist"``.
SHIPPED_MODELS: tuple[str, ...] = tuple(
    n.removesuffix(".pt") for n in sorted(manifest()) if n.endswith(".pt"))


def _check_file_name(name: str) -> dict[str, Any]:
    files = manifest()
    if name not in files:
        kind = "is a path, not a file name" if ("/" in name or "\\" in name or name in ("", ".",
                                                                                  "..")) else \
            "is not one of them"
        raise ValueError(f"{name!r} {kind}; the pretrained files are: {', '.join(sorted(files))}")
    return files[name]


def pretrained_url() -> str:
    """The download address (no final slash): ``$VAE_PRETRAINED_URL`` or this version's tag."""
    env = os.environ.get(PRETRAINED_URL_ENV_VAR, "").strip()
    return check_base_url(env, PRETRAINED_URL_ENV_VAR) if env else pretrained_base_url()


@dataclass(frozen=True)
class Location:
    """Where a pretrained file is: ``"clone"``, ``"cache"`` or ``"missing"`` (to download)."""

    where: str
    path: Path  # the file, or where a download would put it
    bytes: int


def _cache_path(name: str) -> Path:
    return cache_dir() / "pretrained" / name


def locate(name: str, verify: bool = True) -> Location:
    """Where ``name`` would be read from, without downloading anything.

    A copy whose hash is wrong counts as missing (``verify=False`` skips hashing)."""
    entry = _check_file_name(name)
    for where, folder in (("clone", CLONE_PRETRAINED_DIR), ("cache", _cache_path(name).parent)):
        if folder is None:
            continue
        path = folder / name
        if path.is_file() and (not verify or sha256_file(path) == entry["sha256"]):
            return Location(where, path, entry["bytes"])
    return Location("missing", _cache_path(name), entry["bytes"])


def pretrained_file(name: str) -> Path:
    """The verified local path of the pretrained file ``name`` (e.g. ``"conv_vae_mnist.pt"``),
    downloaded into the cache first if no folder has it.

    Raises:
        ValueError: ``name`` is not in the manifest (the message lists the names).
        CheckpointError: the clone's copy is damaged (restore it with ``git checkout``).
        PretrainedUnavailableError: not found and the download failed (see the message).
    """
    entry = _check_file_name(name)
    if CLONE_PRETRAINED_DIR is not None and (CLONE_PRETRAINED_DIR / name).is_file():
        path = CLONE_PRETRAINED_DIR / name
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise PretrainedCorruptError(
                f"{path} is corrupted or was replaced: its sha256 is {actual}, this helper_lib "
                f"expects {entry['sha256']}. Restore it with `git checkout -- {path}` (or, "
                "after retraining on purpose, run `python -m helper_lib manifest`).")
        return path
    url = f"{pretrained_url()}/{name}"
    try:
        return fetch([url], _cache_path(name), entry["sha256"], what=name)
    except DownloadError as err:
        raise PretrainedUnavailableError(f"{err}\n{_training_cost(entry)}") from None


def _training_cost(entry: dict[str, Any]) -> str:
    """What training the model here instead would take: its epochs and its recorded command.

    Nothing is timed here (an error message must come at once): ``python -m helper_lib doctor``
    measures one epoch on this machine."""
    epochs = entry.get("epochs")
    if not epochs:
        return ""
    return (f"Training it here instead would take {epochs} epochs (`python -m helper_lib doctor` "
            f"measures how long one epoch takes on this machine). The notebook does not do that "
            f"silently: set TRAIN_FROM_SCRATCH = True, or run "
            f"`{entry.get('command', 'python -m helper_lib train ...')}`.")
