"""``python -m helper_lib doctor``: can a notebook run here? One screen, and an exit status.

It checks, without downloading anything: the versions, the device and the precision that
``"auto"`` picks, where the data is (or whether it can be downloaded), where each pretrained
model is (clone, cache, or downloadable, with its size), and how long one epoch of the
lecture's VAE takes here, measured on a few batches. Every ✗ comes with what to do about it.
The exit status is 0 only when a notebook can run.
"""

from __future__ import annotations

import os
import platform
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Check", "run_doctor", "format_report"]

_HEAD_TIMEOUT_S = 5.0


@dataclass
class Check:
    """One line of the report: ``ok`` is True (✓), False (✗) or None (information only)."""

    ok: bool | None
    text: str
    fix: str = ""


def _reachable(url: str) -> str | None:
    """None if ``url`` answers a HEAD request with success, else the reason."""
    if url.startswith("file://"):
        return None if Path(urllib.request.url2pathname(url[7:])).is_file() else "no such file"
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=_HEAD_TIMEOUT_S):
            return None
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return str(reason) or type(err).__name__


def _versions() -> Check:
    import torchvision

    from ..assets.project import VERSION

    return Check(True, f"Python {platform.python_version()}, torch {torch.__version__}, "
                       f"torchvision {torchvision.__version__}, helper_lib {VERSION}")


def _device() -> Check:
    from ..fast.precision import cpu_kind, resolve_precision
    from ..utils import get_device

    device = get_device("auto")
    try:
        precision = resolve_precision("auto", device).name
    except ValueError as err:
        return Check(False, f"device {device}; precision: {err}",
                     "fix or unset the environment variable VAE_PRECISION")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"{platform.machine()}, {cpu_kind()}" if device.type == "cpu" else device.type)
    return Check(True, f"device {device} ({where}); precision 'auto' picks {precision}")


def _data_checks() -> list[Check]:
    from ..assets.datasets import (
        DATA_ENV_VAR,
        RAW_FILES,
        data_mirrors,
        dataset_folder,
        resolve_data_root,
    )

    checks = []
    for dataset in ("mnist", "fashion-mnist"):
        folder = dataset_folder(dataset)
        raw = resolve_data_root() / folder / "raw"
        missing = [f for f in RAW_FILES if not (raw / f).is_file()]
        if not missing:
            checks.append(Check(True, f"{folder}: found in {raw}"))
            continue
        if os.environ.get(DATA_ENV_VAR):
            checks.append(Check(False, f"{folder}: {len(missing)} of 4 files missing in {raw}, "
                                       f"where {DATA_ENV_VAR} points (nothing is downloaded "
                                       "then)", f"put the files there, or unset {DATA_ENV_VAR}"))
            continue
        mirrors = data_mirrors(dataset)
        reasons = [(m, _reachable(f"{m}{missing[0]}.gz")) for m in mirrors]
        good = next((m for m, why in reasons if why is None), None)
        if good:
            checks.append(Check(True, f"{folder}: not here yet; downloadable from {good} "
                                      f"into {raw}"))
        else:
            tried = "; ".join(f"{m}: {why}" for m, why in reasons)
            checks.append(Check(False, f"{folder}: missing in {raw}, and no mirror answers "
                                       f"({tried})", f"put the four IDX files in {raw}, or set "
                                       f"{DATA_ENV_VAR} to a folder that has them"))
    return checks


def _pretrained_checks() -> list[Check]:
    from ..assets.pretrained import PRETRAINED_URL_ENV_VAR, locate, manifest, pretrained_url

    try:
        base = pretrained_url()
    except ValueError as err:
        return [Check(False, f"pretrained models: {err}", f"fix {PRETRAINED_URL_ENV_VAR}")]
    checks = []
    unreachable: str | None = None
    others = {"found": 0, "missing": 0, "bytes": 0}
    for name in sorted(manifest()):
        place = locate(name)
        size = f"{place.bytes / 1e6:.1f} MB"
        if place.where != "missing":
            status = (True, f"found ({'the clone' if place.where == 'clone' else 'cached'})")
        elif unreachable is None and (why := _reachable(f"{base}/{name}")) is None:
            status = (True, "downloadable")
        else:
            unreachable = unreachable or why
            status = (False, f"not here and not downloadable ({unreachable})")
        if name.endswith(".pt"):
            checks.append(Check(status[0], f"  {name:<31} {size:>8}  {status[1]}"))
        else:
            others["found" if status[0] else "missing"] += 1
            others["bytes"] += place.bytes
    checks.append(Check(others["missing"] == 0,
                        f"  histories and snapshots: {others['found']} of "
                        f"{others['found'] + others['missing']} files found or downloadable "
                        f"({others['bytes'] / 1e6:.1f} MB)"))
    if unreachable:
        checks.append(Check(False, f"pretrained download address {base} is not reachable",
                            "copy data/pretrained/ from a clone into the cache (python -m "
                            "helper_lib doctor shows where), or set "
                            f"{PRETRAINED_URL_ENV_VAR} to a mirror"))
    return checks


def run_doctor(measure: bool = True) -> tuple[list[Check], bool]:
    """All the checks, and whether a notebook can run here."""
    from ..assets.downloads import cache_dir

    checks = [_versions(), _device(), Check(None, f"cache folder {cache_dir()}")]
    checks += _data_checks()
    checks.append(Check(None, "pretrained models:"))
    checks += _pretrained_checks()
    if measure:
        from .speed import seconds_per_epoch

        t0 = time.perf_counter()
        try:
            per_epoch = seconds_per_epoch()
            checks.append(Check(True, f"one epoch of the lecture's VAE takes about "
                                      f"{per_epoch:.0f} s here (measured on 4 batches in "
                                      f"{time.perf_counter() - t0:.0f} s); its 50 epochs "
                                      f"about {50 * per_epoch / 60:.0f} min"))
        except Exception as err:  # report it, do not crash the report
            checks.append(Check(False, f"training a few batches failed: {err}",
                                "see the message; python -m pytest tests/test_train.py"))
    return checks, all(c.ok is not False for c in checks)


def format_report(checks: list[Check], ok: bool) -> str:
    """The report as text, one line per check and one per fix."""
    marks = {True: "✓", False: "✗", None: " "}
    lines = ["helper_lib doctor"]
    for check in checks:
        lines.append(f"{marks[check.ok]} {check.text}")
        if check.ok is False and check.fix:
            lines.append(f"    → {check.fix}")
    lines.append("a notebook can run here" if ok else "✗ a notebook cannot run here yet: "
                 "see the → lines")
    return "\n".join(lines)
