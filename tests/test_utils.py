"""``helper_lib.utils``: seeding, the device, on/off settings, `deterministic()` and the cuBLAS
setting it needs, made on import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from helper_lib import utils


def test_deterministic_sets_and_then_restores_every_global_setting(monkeypatch):
    torch.use_deterministic_algorithms(True, warn_only=True)  # a caller's own setting
    try:
        with utils.deterministic():
            assert torch.are_deterministic_algorithms_enabled()
            assert not torch.backends.cudnn.benchmark
            with utils.deterministic(enabled=False):
                assert not torch.are_deterministic_algorithms_enabled()
            assert torch.are_deterministic_algorithms_enabled()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # was reset to False
    finally:
        torch.use_deterministic_algorithms(False)
    with utils.deterministic():
        pass


def test_the_cublas_setting_is_made_on_import_before_cuda_can_start():
    """cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when it starts: deterministic() used to set
    it only inside the block, possibly after CUDA had started."""
    code = "import os, helper_lib; print(os.environ.get('CUBLAS_WORKSPACE_CONFIG'))"
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ":4096:8"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "CUBLAS_WORKSPACE_CONFIG": ":16:8"}).stdout.strip()
    assert out == ":16:8", "a user's own setting is kept"


def test_deterministic_warns_when_cuda_started_without_the_cublas_setting(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    with pytest.warns(RuntimeWarning, match="may not be deterministic"), utils.deterministic():
        pass


def test_set_seed_repeats_python_numpy_and_torch_draws():
    import random

    import numpy as np

    def draws():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    utils.set_seed(7)
    first = draws()
    utils.set_seed(7)
    assert draws() == first
    utils.set_seed(8)
    assert draws() != first


def test_get_device_passes_a_device_through_and_auto_falls_back_to_the_cpu(monkeypatch):
    assert utils.get_device("cpu") == torch.device("cpu")
    assert utils.get_device(torch.device("meta")) == torch.device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert utils.get_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert utils.get_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert utils.get_device() == torch.device("cuda")


@pytest.mark.parametrize(("value", "default", "expected"), [
    ("1", False, True), (" TRUE ", False, True), ("yes", False, True), ("on", False, True),
    ("0", True, False), ("False", True, False), ("no", True, False), ("off", True, False),
    ("", True, True), ("maybe", False, False), (None, True, True),
])
def test_env_flag_and_smoke_mode_read_on_off_words(monkeypatch, value, default, expected):
    for name in ("VAE_TEST_FLAG", "VAE_SMOKE"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert utils.env_flag("VAE_TEST_FLAG", default) is expected
    assert utils.smoke_mode() is (expected if value is not None and value.strip() else False)


def test_check_whole_number_refuses_bools_floats_and_small_values():
    utils.check_whole_number("epochs", 0, 0)
    for bad in (True, 1.0, -1, "3"):
        with pytest.raises(utils.SettingsError, match="epochs must be a whole number >= 0"):
            utils.check_whole_number("epochs", bad, 0, "the lecture trains for 50")
