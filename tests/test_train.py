import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helper_lib import utils
from helper_lib.fast import precision as fast_precision
from helper_lib.fast.precision import resolve_precision
from helper_lib.history import History
from helper_lib.models import ConvAutoencoder, ConvVAE
from helper_lib.train import train_autoencoder, train_vae


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


def test_precision_auto_resolves_by_device_and_capability(monkeypatch):
    monkeypatch.delenv("VAE_PRECISION", raising=False)
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    with mock.patch.object(fast_precision, "cpu_has_native_bf16", return_value=True):
        p = resolve_precision("auto", cpu)
        assert (p.name, p.autocast_dtype, p.channels_last) == ("bf16", torch.bfloat16, True)
    with mock.patch.object(fast_precision, "cpu_has_native_bf16", return_value=False):
        p = resolve_precision("auto", cpu)
        assert (p.name, p.autocast_dtype, p.channels_last) == ("fp32", None, True)
        assert resolve_precision("auto", mps) == fast_precision.Precision("fp32", None, False)
        assert resolve_precision("bf16", cpu).name == "bf16"  # explicit choice wins
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", cpu)
    # CUDA: bf16 only with bf16 tensor cores (Ampere on); a T4 (7.5) or V100 (7.0) stays fp32.
    with mock.patch.object(torch.version, "hip", None):
        for capability, expected in [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 5), "fp32")]:
            with mock.patch.object(torch.cuda, "get_device_capability", return_value=capability):
                p = resolve_precision("auto", cuda)
                assert (p.name, p.channels_last) == (expected, True)


@pytest.mark.parametrize(("env", "native", "expected"), [
    ("fp32", True, "fp32"), ("BF16", False, "bf16"), (" auto ", True, "bf16"),
    ("auto", False, "fp32"), ("", True, "bf16"),
])
def test_vae_precision_environment_variable_overrides_auto_but_not_an_explicit_choice(
        monkeypatch, env, native, expected):
    monkeypatch.setenv("VAE_PRECISION", env)
    with mock.patch.object(fast_precision, "cpu_has_native_bf16", return_value=native):
        assert resolve_precision("auto", torch.device("cpu")).name == expected
        assert resolve_precision("fp32", torch.device("cpu")).name == "fp32"
        assert resolve_precision("bf16", torch.device("cpu")).name == "bf16"


def test_a_misspelled_vae_precision_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("VAE_PRECISION", "bfloat16")
    with pytest.raises(ValueError, match="VAE_PRECISION must be fp32, bf16 or auto"):
        resolve_precision("auto", torch.device("cpu"))


def _cpu(monkeypatch, amx=False, avx512_bf16=False, avx512=False, avx2=True, onednn_bf16=None,
         isa_cap=None):
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("VAE_PRECISION", raising=False)
    if isa_cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa_cap)
    if onednn_bf16 is None:  # oneDNN reports bf16 (emulated or not) on every AVX-512 CPU
        onednn_bf16 = avx512 or avx512_bf16 or amx
    for name, value in [("_is_amx_tile_supported", amx), ("_is_avx512_bf16_supported",
                        avx512_bf16), ("_is_avx512_supported", avx512),
                        ("_is_avx2_supported", avx2)]:
        monkeypatch.setattr(torch.cpu, name, lambda v=value: v)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)


#: torch 2.4 has no AMX / AVX512-BF16 probes (torch.cpu._is_amx_tile_supported and the rest):
#: there cpu_kind() is "other" and "auto" stays fp32 (test_old_torch_without_probes_stays_fp32).
_NEEDS_PROBES = pytest.mark.skipif(not hasattr(torch.cpu, "_is_amx_tile_supported"),
                                   reason="this torch has no CPU-feature probes (torch < 2.5)")


def test_old_torch_without_probes_stays_fp32(monkeypatch):
    from helper_lib.fast.precision import cpu_kind, resolve_precision

    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delenv("VAE_PRECISION", raising=False)
    assert cpu_kind() == "other"
    assert resolve_precision("auto", torch.device("cpu")).name == "fp32"


_SPR = dict(amx=True, avx512_bf16=True, avx512=True)  # Intel Xeon, Sapphire Rapids on
_ZEN4 = dict(avx512_bf16=True, avx512=True)  # AMD EPYC Zen 4/5, Intel Cooper Lake
_ICL = dict(avx512=True)  # Ice Lake / Tiger Lake laptops, Skylake-X, Cascade Lake
_AVX2 = dict()  # most laptops


@pytest.mark.parametrize(
    ("cpu", "isa_cap", "onednn_bf16", "kind", "expected"),
    [
        (_SPR, None, None, "amx", "bf16"),  # measured 2.2x faster than fp32
        (_ZEN4, None, None, "avx512-bf16", "bf16"),  # measured 1.75x faster on a Zen 4
        (_ICL, None, None, "avx512", "fp32"),  # oneDNN says yes, but emulated: 0.24x
        (_AVX2, None, None, "avx2", "fp32"),
        (_SPR, None, False, "amx", "fp32"),  # a build whose oneDNN has no bf16
        (_SPR, "AVX512_CORE_BF16", None, "avx512-bf16", "bf16"),  # capped below AMX
        (_SPR, "avx512_core_amx", None, "amx", "bf16"),
        (_SPR, "ALL", None, "amx", "bf16"),
        (_SPR, "AVX512_CORE", None, "avx512", "fp32"),  # capped below bf16
        (_ZEN4, "AVX2", None, "avx2", "fp32"),
        (_SPR, "AVX", None, "other", "fp32"),
    ],
)
@_NEEDS_PROBES
def test_auto_picks_bf16_exactly_where_the_cpu_computes_it_natively(
        monkeypatch, cpu, isa_cap, onednn_bf16, kind, expected):
    _cpu(monkeypatch, **cpu, onednn_bf16=onednn_bf16, isa_cap=isa_cap)
    assert fast_precision.cpu_kind() == kind
    assert fast_precision.cpu_has_native_bf16() is (expected == "bf16")
    assert resolve_precision("auto", torch.device("cpu")).name == expected


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux's /proc/cpuinfo")
@pytest.mark.skipif(bool(os.environ.get("ONEDNN_MAX_CPU_ISA")
                         or os.environ.get("DNNL_MAX_CPU_ISA")),
                    reason="oneDNN was capped for this whole process")
@_NEEDS_PROBES
def test_cpu_probe_matches_this_machines_cpu_flags(monkeypatch):
    """Unmocked: the probe agrees with the kernel's CPU flags, whatever CPU runs the tests."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if "amx_tile" in flags and "amx_bf16" in flags:
        kind = "amx"
    elif "avx512_bf16" in flags:
        kind = "avx512-bf16"
    elif "avx512f" in flags:
        kind = "avx512"
    elif "avx2" in flags:
        kind = "avx2"
    else:
        kind = "other"
    assert fast_precision.cpu_kind() == kind
    assert fast_precision.cpu_has_native_bf16() is (kind in ("amx", "avx512-bf16"))


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


def test_a_nan_loss_stops_before_its_step_so_the_weights_stay_finite():
    """The guard used to look every 25 steps: the model could already hold NaN weights."""
    torch.manual_seed(0)
    images = torch.rand(64, 1, 28, 28)
    images[20] = float("nan")  # the 2nd batch of 16
    loader = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=16)
    model = ConvVAE()
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 2\. Training stopped before"):
        train_vae(model, loader, epochs=1, precision="fp32", progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _onecycle_state(tmp_path):
    images = torch.rand(32, 1, 28, 28)
    loader = DataLoader(TensorDataset(images, torch.zeros(32, dtype=torch.long)), batch_size=16)
    ckpt = tmp_path / "state.pt"
    train_vae(ConvVAE(), loader, epochs=1, schedule="onecycle", lr=1e-3, precision="fp32",
              checkpoint_path=ckpt, progress=False)
    return loader, ckpt


@pytest.mark.parametrize("damage", ["no scheduler_state", "no lr"])
def test_a_resume_without_the_schedule_or_lr_is_one_clear_error(tmp_path, damage):
    """These used to raise KeyError or TypeError inside the error message itself."""
    loader, ckpt = _onecycle_state(tmp_path)
    state = torch.load(ckpt, weights_only=True)
    if damage == "no scheduler_state":
        del state["scheduler_state"]
        match = "holds no state of the schedule"
    else:
        del state["metadata"]["lr"]
        match = "peak lr=unrecorded"
    torch.save(state, ckpt)
    ckpt.with_name(ckpt.name + ".sha256").unlink(missing_ok=True)
    with pytest.raises(utils.SettingsError, match=match):
        train_vae(ConvVAE(), loader, epochs=2, schedule="onecycle", lr=1e-3, precision="fp32",
                  checkpoint_path=ckpt, progress=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()


class _StopAfter:
    """A loader that raises KeyboardInterrupt after ``n`` batches in all, as if the run was
    killed mid-epoch."""

    def __init__(self, loader, n):
        self.loader, self.n, self.generator = loader, n, getattr(loader, "generator", None)
        self.sampler = loader.sampler

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.n == 0:
                raise KeyboardInterrupt
            self.n -= 1
            yield batch


def test_onecycle_warms_up_to_the_peak_then_anneals_and_resumes_on_the_same_curve(tmp_path):
    from helper_lib.data import get_dataloaders

    def fresh():
        train, _, _ = get_dataloaders(batch_size=64, train_subset=256, seed=5)
        torch.manual_seed(5)
        return ConvVAE(), train

    kw = dict(epochs=3, lr=4e-3, schedule="onecycle", seed=5, precision="fp32", device="cpu",
              progress=False)
    model, train = fresh()
    straight = train_vae(model, train, **kw)
    steps = 3 * len(train)
    assert len(straight.lr) == steps
    peak = max(range(steps), key=straight.lr.__getitem__)
    assert straight.lr[0] == pytest.approx(4e-3 / 25)  # OneCycleLR's div_factor
    assert peak == round(0.3 * steps) - 1 or peak == round(0.3 * steps)
    assert straight.lr[peak] == pytest.approx(4e-3, rel=0.02)
    assert straight.lr[-1] < 4e-3 / 1000

    # Killed in the middle of epoch 2, then resumed: the same steps as without the kill.
    model, train = fresh()
    ckpt = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_vae(model, _StopAfter(train, len(train) + 2), checkpoint_path=ckpt, **kw)
    model, train = fresh()
    resumed = train_vae(model, train, checkpoint_path=ckpt, **kw)
    assert resumed.lr == straight.lr
    assert resumed.batch == straight.batch

    # Constant (the lecture's) is another run entirely; and a one-cycle run cannot be stretched.
    model, train = fresh()
    constant = train_vae(model, train, **{**kw, "schedule": "constant"})
    assert set(constant.lr) == {4e-3} and constant.batch != straight.batch
    model, train = fresh()
    with pytest.raises(ValueError, match="one-cycle run of 3 epochs.*asked: 4 epochs"):
        train_vae(model, train, checkpoint_path=ckpt, **{**kw, "epochs": 4})
    with pytest.raises(ValueError, match="schedule='onecycle', not 'constant'"):
        train_vae(model, train, checkpoint_path=ckpt, **{**kw, "schedule": "constant"})
    with pytest.raises(ValueError, match="schedule must be one of constant, onecycle"):
        train_autoencoder(ConvAutoencoder(), train, epochs=1, schedule="cosine")


def test_snapshots_record_the_latent_space_at_the_chosen_steps_and_survive_a_resume(tmp_path):
    from helper_lib.data import get_dataloaders
    from helper_lib.history import Snapshots

    def fresh():
        train, _, test = get_dataloaders(batch_size=64, train_subset=256, seed=4)
        torch.manual_seed(4)
        images = next(iter(test))[0][:32]
        grid = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-2.0, 0.5]])
        return ConvVAE(), train, Snapshots(steps=[0, 1, 3, 6], images=images, codes=grid)

    model, train, snaps = fresh()
    initial_mu = model.eval().embed(snaps.images).detach()
    kw = dict(epochs=2, seed=4, precision="fp32", device="cpu", progress=False)
    train_vae(model, train, snapshots=snaps, **kw)  # 4 steps per epoch: 8 in all
    assert [r["step"] for r in snaps.records] == [0, 1, 3, 6]
    first = snaps.records[0]
    assert first["mu"].shape == (32, 2) and first["mu"].dtype == torch.float16
    assert first["decoded"].shape == (3, 28, 28) and first["decoded"].dtype == torch.uint8
    torch.testing.assert_close(first["mu"].float(), initial_mu, atol=2e-3, rtol=1e-3)
    assert not torch.equal(snaps.records[3]["mu"], first["mu"])  # the codes moved
    with torch.no_grad():  # the last snapshot is not the final model (step 6 of 8)
        assert not torch.equal(model.embed(snaps.images).half(), snaps.records[3]["mu"])

    # The same run cut after epoch 1 and resumed: the same snapshots, none recorded twice.
    model, train, cut = fresh()
    ckpt = tmp_path / "state.pt"
    train_vae(model, train, snapshots=cut, checkpoint_path=ckpt, **{**kw, "epochs": 1})
    assert [r["step"] for r in cut.records] == [0, 1, 3]
    model, train, resumed = fresh()
    train_vae(model, train, snapshots=resumed, checkpoint_path=ckpt, **kw)
    assert [r["step"] for r in resumed.records] == [0, 1, 3, 6]
    for a, b in zip(resumed.records, snaps.records, strict=True):
        torch.testing.assert_close(a["mu"], b["mu"], atol=0, rtol=0)
        assert torch.equal(a["decoded"], b["decoded"])


def test_train_step_is_one_step_of_adam_on_the_negative_elbo():
    """The public step: the same update as writing the lecture's loop out by hand."""
    from helper_lib.losses import vae_loss
    from helper_lib.train import train_step

    torch.manual_seed(0)
    x = torch.rand(16, 1, 28, 28)
    by_hand, stepped = ConvVAE(), ConvVAE()
    stepped.load_state_dict(by_hand.state_dict())
    opt_a = torch.optim.Adam(by_hand.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(stepped.parameters(), lr=1e-3)
    torch.manual_seed(1)
    _, mu, logvar, x_hat = by_hand(x)
    loss = vae_loss(x_hat, x, mu, logvar)
    opt_a.zero_grad()
    loss.total.backward()
    opt_a.step()
    torch.manual_seed(1)
    terms = train_step(stepped, x, None, lambda out, x, y: vae_loss(out[3], x, out[1], out[2]),
                       opt_b, resolve_precision("fp32", torch.device("cpu")))
    assert terms.shape == (3,) and not terms.requires_grad
    torch.testing.assert_close(terms[0], loss.total.detach())
    for a, b in zip(by_hand.parameters(), stepped.parameters(), strict=True):
        torch.testing.assert_close(a, b)
