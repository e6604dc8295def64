"""``python -m helper_lib doctor``: one screen, a ✗ with what to do, exit 0 only when a notebook
can run."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import torch
from loopback import Loopback

from helper_lib import train
from helper_lib.assets import pretrained
from helper_lib.assets.pretrained import PRETRAINED_DIR, manifest
from helper_lib.fast.precision import resolve_precision
from helper_lib.models import ConvVAE
from helper_lib.tools import speed
from helper_lib.tools.cli import main
from helper_lib.tools.doctor import run_doctor


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_in_the_clone_with_the_data_everything_is_found(capsys):
    assert main(["doctor", "--no-timing"]) == 0
    out = capsys.readouterr().out
    assert "helper_lib doctor" in out and "torch " in out and "precision 'auto' picks" in out
    assert "✓ MNIST: found in" in out and "✓ FashionMNIST: found in" in out
    assert "conv_vae_mnist.pt" in out and "found (the clone)" in out
    assert "✗" not in out and out.strip().endswith("a notebook can run here")
    assert len(out.splitlines()) < 40, "one screen"


def test_missing_data_and_unreachable_models_are_crosses_with_a_fix(tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.setattr(pretrained, "CLONE_PRETRAINED_DIR", None)
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "nodata"))
    monkeypatch.setenv("VAE_PRETRAINED_URL", f"http://127.0.0.1:{_closed_port()}")
    assert main(["doctor", "--no-timing"]) == 1
    out = capsys.readouterr().out
    assert "✗ MNIST: 4 of 4 files missing" in out and "→ put the files there" in out
    assert "not here and not downloadable" in out
    assert "→ copy data/pretrained/" in out
    assert "a notebook cannot run here yet" in out


def test_models_on_a_mirror_and_data_to_download_count_as_ready(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "CLONE_PRETRAINED_DIR", None)
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    import helper_lib.assets.datasets as data

    monkeypatch.setattr(data, "IN_CLONE", False)  # data goes to <cache>/data
    with Loopback() as srv:
        srv.add_folder("/models", PRETRAINED_DIR)
        for folder in ("MNIST", "FashionMNIST"):
            srv.files[f"/data/{folder}/train-images-idx3-ubyte.gz"] = b"x"
        monkeypatch.setenv("VAE_PRETRAINED_URL", f"{srv.url}/models")
        monkeypatch.setenv("VAE_DATA_URL", f"{srv.url}/data")
        checks, ok = run_doctor(measure=False)
        text = "\n".join(c.text for c in checks)
        assert ok, text
        assert "MNIST: not here yet; downloadable from" in text
        assert text.count("downloadable") >= 20
        assert not any(r.startswith("/models") and not r.endswith((".pt", ".json", ".csv",
                                                                   ".npz"))
                       for r in srv.requests)
        # HEAD requests only, so nothing is downloaded: one per model file and one per dataset
        assert srv.calls and {method for method, _ in srv.calls} == {"HEAD"}, srv.calls
        asked = sorted(path for _, path in srv.calls)
        assert asked == sorted([*(f"/models/{name}" for name in manifest()),
                                "/data/FashionMNIST/train-images-idx3-ubyte.gz",
                                "/data/MNIST/train-images-idx3-ubyte.gz"])
        assert not (tmp_path / "cache" / "pretrained").exists()


def _fake_clock_steps(monkeypatch, durations: list[float]) -> list[SimpleNamespace]:
    """The speed probe's ``train_step`` stays the training loop's own, counted, and each of its
    calls takes the next of ``durations`` seconds on a fake ``time.perf_counter`` (the probe's
    only)."""
    now, calls, real = [0.0], [], train.train_step

    def step(model, x, y, loss_fn, optimizer, precision):
        calls.append(SimpleNamespace(model=model, shape=tuple(x.shape), y=y,
                                     precision=precision))
        terms = real(model, x, y, loss_fn, optimizer, precision)
        now[0] += durations[len(calls) - 1]
        return terms

    monkeypatch.setattr(speed, "train_step", step)
    monkeypatch.setattr(speed, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    return calls


def test_the_epoch_estimate_extrapolates_the_timed_train_steps_after_a_warm_up(monkeypatch):
    """Four calls of the real train_step (one warm-up, not counted, then 1 s, 2 s, 3 s): 2 s a
    batch, times the batches of an epoch, partial ones pro rata."""
    assert speed.train_step is train.train_step, "the probe times the loop's own step"
    durations = [50.0, 1.0, 2.0, 3.0]
    rng = torch.get_rng_state()
    for images, expected in [(80, 20.0), (160, 40.0), (100, 25.0)]:  # batches of 8
        calls = _fake_clock_steps(monkeypatch, durations)
        seconds = speed.seconds_per_epoch(batch_size=8, steps=3, images=images, device="cpu")
        assert seconds == expected, (images, seconds)
        assert len(calls) == 3 + 1, "steps + 1 calls of train_step: the first warms up"
        assert {c.shape for c in calls} == {(8, 1, 28, 28)} and {c.y for c in calls} == {None}
        assert all(isinstance(c.model, ConvVAE) and c.model is calls[0].model for c in calls)
        assert calls[0].precision == resolve_precision("auto", torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng), "the global RNG is left as it was"
