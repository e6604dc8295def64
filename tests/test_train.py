import json
import os
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helper_lib import utils
from helper_lib.models import ConvAutoencoder, ConvVAE
from helper_lib.train import History, train_autoencoder, train_vae
from helper_lib.utils import resolve_precision


def _vae(seed=0):
    torch.manual_seed(seed)
    return ConvVAE(latent_dim=2)


def test_a_few_hundred_steps_on_real_mnist_lower_the_loss(mnist_loaders):
    train, _, test = mnist_loaders  # 2,048 real images, batches of 64 -> 32 steps per epoch
    model = _vae()
    history = train_vae(model, train, epochs=8, seed=0, device="cpu", progress=False)
    steps = len(history.batch["total"])
    assert steps == 256
    first = sum(history.batch["total"][:20]) / 20
    last = sum(history.batch["total"][-20:]) / 20
    assert last < 0.6 * first  # roughly 180 -> 60 on this subset
    assert history.train["total"][-1] < history.train["total"][0]
    # the reconstruction improves on held-out images too
    x, _ = next(iter(test))
    untrained = _vae()
    with torch.no_grad():
        err_trained = ((model.decode(model.embed(x)) - x) ** 2).sum((1, 2, 3)).mean()
        err_untrained = ((untrained.decode(untrained.embed(x)) - x) ** 2).sum((1, 2, 3)).mean()
    assert err_trained < 0.7 * err_untrained


def test_autoencoder_training_lowers_the_per_pixel_mse(mnist_loaders):
    from helper_lib.evaluate import evaluate_autoencoder

    train, _, test = mnist_loaders
    torch.manual_seed(0)
    model = ConvAutoencoder()
    before = evaluate_autoencoder(model, test, max_items=500)["mse"]  # about 0.23
    history = train_autoencoder(model, train, epochs=3, progress=False)
    assert history.names == ("mse",)
    assert history.train["mse"][-1] < history.train["mse"][0]
    assert evaluate_autoencoder(model, test, max_items=500)["mse"] < 0.6 * before


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_same_seed_gives_an_identical_cpu_history(mnist_loaders, precision):
    from helper_lib.data import get_dataloaders

    def run():
        train, _, _ = get_dataloaders(batch_size=64, train_subset=256, seed=7)
        torch.manual_seed(7)
        return train_vae(ConvVAE(), train, epochs=2, seed=7, device="cpu",
                         precision=precision, progress=False)

    a, b = run(), run()
    assert a.batch == b.batch
    assert a.train == b.train


def test_training_resumes_from_its_checkpoint(tmp_path):
    from helper_lib.data import get_dataloaders

    def fresh():
        train, valid, _ = get_dataloaders(batch_size=64, train_subset=256, seed=3,
                                          validation_fraction=0.01)
        torch.manual_seed(3)
        return ConvVAE(), train, valid

    model, train, valid = fresh()
    straight = train_vae(model, train, epochs=2, seed=3, valid_loader=valid, precision="fp32",
                         device="cpu", progress=False)

    model, train, valid = fresh()
    ckpt = tmp_path / "state.pt"
    first = train_vae(model, train, epochs=1, seed=3, valid_loader=valid, precision="fp32",
                      device="cpu", checkpoint_path=ckpt, progress=False)
    assert first.epochs == 1 and ckpt.is_file()
    model, train, valid = fresh()  # a new process would start like this
    resumed = train_vae(model, train, epochs=2, seed=3, valid_loader=valid, precision="fp32",
                        device="cpu", checkpoint_path=ckpt, progress=False)
    assert resumed.epochs == 2
    assert resumed.batch == straight.batch
    assert resumed.valid == straight.valid
    assert len(resumed.valid["total"]) == 2


def test_nan_loss_stops_training_naming_epoch_and_batch():
    images = torch.rand(64, 1, 28, 28)
    images[40] = float("nan")  # in the 3rd batch of 16
    loader = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=16)
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 3.*lower learning rate"):
        train_vae(ConvVAE(), loader, epochs=2, precision="fp32", progress=False)


def test_history_round_trips_through_json_and_csv(tmp_path):
    h = History(("total", "kl"))
    h.batch["total"] += [3.0, 2.0]
    h.batch["kl"] += [0.5, 0.25]
    h.train["total"].append(2.5)
    h.train["kl"].append(0.375)
    h.valid["total"] = [2.4]
    h.epoch_seconds.append(1.5)
    h.batches_per_epoch.append(2)
    h.to_json(tmp_path / "h.json")
    assert History.from_json(tmp_path / "h.json") == h
    json.loads((tmp_path / "h.json").read_text())
    h.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines == ["epoch,seconds,train_total,train_kl,valid_total", "1,1.5,2.5,0.375,2.4"]


def test_precision_auto_resolves_by_device_and_capability():
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    with mock.patch.object(utils, "cpu_has_amx_bf16", return_value=True):
        p = resolve_precision("auto", cpu)
        assert (p.name, p.autocast_dtype, p.channels_last) == ("bf16", torch.bfloat16, True)
    with mock.patch.object(utils, "cpu_has_amx_bf16", return_value=False):
        p = resolve_precision("auto", cpu)
        assert (p.name, p.autocast_dtype, p.channels_last) == ("fp32", None, True)
        assert resolve_precision("auto", mps) == utils.Precision("fp32", None, False)
        assert resolve_precision("bf16", cpu).name == "bf16"  # explicit choice wins
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", cpu)
    # CUDA: bf16 only with bf16 tensor cores (Ampere on); a T4 (7.5) or V100 (7.0) stays fp32.
    with mock.patch.object(torch.version, "hip", None):
        for capability, expected in [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 5), "fp32")]:
            with mock.patch.object(torch.cuda, "get_device_capability", return_value=capability):
                p = resolve_precision("auto", cuda)
                assert (p.name, p.channels_last) == (expected, True)


@pytest.mark.parametrize(
    ("amx", "onednn_bf16", "isa_cap", "expected"),
    [
        (True, True, None, True),  # AMX CPU (Sapphire Rapids on): bf16 is 2.2x faster
        (False, True, None, False),  # AVX-512 with or without BF16: oneDNN says yes, but slower
        (True, False, None, False),  # a build whose oneDNN has no bf16
        (True, True, "AVX512_CORE_BF16", False),  # oneDNN capped below AMX
        (True, True, "avx512_core_amx", True),
        (True, True, "ALL", True),
    ],
)
def test_cpu_bf16_needs_amx_not_just_onednn_support(monkeypatch, amx, onednn_bf16, isa_cap,
                                                    expected):
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if isa_cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa_cap)
    with mock.patch.object(torch.cpu, "_is_amx_tile_supported", return_value=amx), \
            mock.patch.object(torch.ops.mkldnn, "_is_mkldnn_bf16_supported",
                              return_value=onednn_bf16):
        assert utils.cpu_has_amx_bf16() is expected
        assert resolve_precision("auto", torch.device("cpu")).name == (
            "bf16" if expected else "fp32")


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux's /proc/cpuinfo")
@pytest.mark.skipif(bool(os.environ.get("ONEDNN_MAX_CPU_ISA")
                         or os.environ.get("DNNL_MAX_CPU_ISA")),
                    reason="oneDNN was capped for this whole process")
def test_cpu_bf16_probe_matches_this_machines_cpu_flags(monkeypatch):
    """Unmocked: the probe agrees with the kernel's CPU flags (CI's CPU has AMX, a laptop not)."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    assert utils.cpu_has_amx_bf16() is ("amx_tile" in flags and "amx_bf16" in flags)


def test_model_comes_back_in_the_default_memory_format(mnist_loaders):
    train, _, _ = mnist_loaders
    model = ConvVAE()
    train_vae(model, [next(iter(train))], epochs=1, device="cpu", progress=False)
    # encoder[0].weight [32, 1, 3, 3] is contiguous in both formats; the others are not
    assert not torch.randn(64, 32, 3, 3).to(memory_format=torch.channels_last).is_contiguous()
    assert all(p.is_contiguous() for p in model.parameters())


def test_progress_bar_in_a_log_file_is_redrawn_only_every_few_seconds(
        mnist_batch, capsys, monkeypatch):
    # Outside a terminal or notebook (a CI log, `nohup ... > log`), the bar redraws at most
    # every 5 s; the running loss shown every 25 batches must not force extra redraws.
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    batches = [(mnist_batch[:8],)] * 80  # 80 steps: the postfix is updated 4 times
    train_vae(_vae(), batches, epochs=1, progress=True)
    out, err = capsys.readouterr()
    assert "epoch   1/1: total" in out  # the epoch summary line is still printed
    # 6 carriage returns however many steps: the bar opens, gets its description, is cleared
    # for the epoch line (2) and redrawn after it, and closes. One more is allowed for a slow
    # machine (a timed redraw after 5 s). A forced redraw per postfix update would add 4.
    assert err.count("\r") <= 7, err


@pytest.mark.parametrize("train, model, needs, use", [
    (train_vae, ConvAutoencoder, r"needs a VAE .*\(z, mu, logvar, x_hat\)", "train_autoencoder"),
    (train_autoencoder, ConvVAE, r"needs an autoencoder .*\(z, x_hat\)", "train_vae"),
])
def test_training_the_wrong_kind_of_model_names_the_right_function(train, model, needs, use):
    loader = DataLoader(TensorDataset(torch.rand(8, 1, 28, 28), torch.zeros(8)), batch_size=4)
    with pytest.raises(TypeError, match=needs) as err:
        train(model(), loader, epochs=1, progress=False)
    assert f"use {use}" in str(err.value)


def test_resuming_uses_the_new_learning_rate_and_keeps_library_metadata(tmp_path):
    from helper_lib.checkpoints import load_checkpoint

    loader = DataLoader(TensorDataset(torch.rand(8, 1, 28, 28), torch.zeros(8)), batch_size=4)
    ckpt = tmp_path / "state.pt"
    # user metadata may not clobber the library's own keys (it used to raise a TypeError)
    train_vae(_vae(), loader, epochs=1, lr=1e-3, checkpoint_path=ckpt, progress=False,
              checkpoint_metadata={"command": "test", "lr": "ignored"})
    meta = load_checkpoint(ckpt)["metadata"]
    assert meta["command"] == "test" and meta["lr"] == 1e-3 and meta["epoch"] == 1
    assert load_checkpoint(ckpt)["optimizer_state"]["param_groups"][0]["lr"] == 1e-3
    train_vae(_vae(), loader, epochs=2, lr=1e-4, checkpoint_path=ckpt, progress=False)
    state = load_checkpoint(ckpt)
    assert state["optimizer_state"]["param_groups"][0]["lr"] == 1e-4  # not the saved 1e-3
    assert state["metadata"]["lr"] == 1e-4 and state["metadata"]["epoch"] == 2


def test_model_comes_back_in_the_default_memory_format_after_an_error():
    images = torch.full((8, 1, 28, 28), float("nan"))
    loader = DataLoader(TensorDataset(images, torch.zeros(8)), batch_size=4)
    model = _vae()
    with pytest.raises(FloatingPointError):
        train_vae(model, loader, epochs=1, device="cpu", precision="fp32", progress=False)
    assert all(p.is_contiguous() for p in model.parameters())


def test_deterministic_sets_and_then_restores_every_global_setting(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(True, warn_only=True)  # a caller's own setting
    try:
        with utils.deterministic():
            assert torch.are_deterministic_algorithms_enabled()
            assert not torch.backends.cudnn.benchmark
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
            with utils.deterministic(enabled=False):
                assert not torch.are_deterministic_algorithms_enabled()
            assert torch.are_deterministic_algorithms_enabled()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # was reset to False
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    finally:
        torch.use_deterministic_algorithms(False)
    with utils.deterministic():
        pass
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
