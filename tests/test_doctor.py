"""``python -m helper_lib doctor``: one screen, a ✗ with what to do, exit 0 only when a notebook
can run."""

from __future__ import annotations

import socket

import pytest
from loopback import Loopback

from helper_lib.assets import pretrained
from helper_lib.assets.pretrained import PRETRAINED_DIR
from helper_lib.tools.cli import main
from helper_lib.tools.doctor import run_doctor
from helper_lib.tools.speed import seconds_per_epoch


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
        assert srv.requests, "HEAD requests only: nothing is downloaded"
        assert not (tmp_path / "cache" / "pretrained").exists()


@pytest.mark.parametrize("batch_size", [64])
def test_the_epoch_estimate_is_a_positive_extrapolation(batch_size):
    seconds = seconds_per_epoch(batch_size=batch_size, steps=2, images=batch_size * 10)
    assert 0 < seconds < 120
