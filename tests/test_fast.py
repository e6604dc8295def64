"""The speed machinery, :mod:`helper_lib.fast`: the precision rule (bf16 exactly where the CPU or
GPU computes it natively), the fused layers and their fallback to the plain ones on any machine,
and glibc's allocator, tuned only when training starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from torch import nn

from helper_lib.fast import layers
from helper_lib.fast import precision as fast_precision
from helper_lib.fast.precision import resolve_precision
from helper_lib.models import ConvVAE


# ------------------------------------------------------------------ precision: bf16 or fp32
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


# ------------------------------------------------- layers: fused where they can be, else plain
@pytest.fixture
def fresh_fusion(monkeypatch):
    monkeypatch.setitem(layers._FUSION, "failed", False)
    return layers


def _grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    torch.manual_seed(0)
    _, mu, logvar, x_hat = model(x)
    (x_hat.sum() + mu.sum() + logvar.sum()).backward()
    return x_hat.detach(), [p.grad.clone() for p in model.parameters()]


def _plain_reference(model: nn.Module, x: torch.Tensor, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("VAE_FUSED", "0")
        return _grads(model, x)


def test_vae_fused_0_turns_fusion_off(fresh_fusion, monkeypatch):
    assert layers.fusion_enabled() is layers._fused_ops_available()
    monkeypatch.setenv("VAE_FUSED", "0")
    assert not layers.fusion_enabled()


@pytest.mark.skipif(not layers._fused_ops_available(), reason="this torch has no oneDNN ops")
def test_missing_private_ops_fall_back_to_the_plain_layers(fresh_fusion, monkeypatch):
    torch.manual_seed(0)
    model, x = ConvVAE(), torch.rand(8, 1, 28, 28)
    ref_out, ref_grads = _plain_reference(model, x, monkeypatch)
    monkeypatch.setattr(layers, "_OPS", SimpleNamespace())  # an older torch, an ARM build
    assert not layers.fusion_enabled()
    out, grads = _grads(model, x)
    torch.testing.assert_close(out, ref_out)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)


@pytest.mark.skipif(not layers._fused_ops_available(), reason="this torch has no oneDNN ops")
def test_a_private_op_that_raises_is_given_up_once_with_a_warning(fresh_fusion, monkeypatch):
    torch.manual_seed(0)
    model, x = ConvVAE(), torch.rand(8, 1, 28, 28)
    ref_out, ref_grads = _plain_reference(model, x, monkeypatch)
    calls = []

    def refuses(*args, **kwargs):
        calls.append(1)
        raise TypeError("_convolution_pointwise() got an unexpected keyword (a new signature)")

    monkeypatch.setattr(layers, "_OPS", SimpleNamespace(_convolution_pointwise=refuses,
                                                        _convolution_transpose_pointwise=refuses))
    with pytest.warns(RuntimeWarning, match="using the plain layers from now on"):
        out, grads = _grads(model, x)
    torch.testing.assert_close(out, ref_out)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)
    _grads(model, x)
    assert len(calls) == 1, "once and for all: the op is not tried again"


@pytest.mark.skipif(not layers._fused_ops_available(), reason="this torch has no oneDNN ops")
def test_backward_hooks_are_respected(fresh_fusion, monkeypatch):
    """A full backward hook on a fused convolution fires with that layer's own gradients, and
    the model's gradients stay those of the plain layers."""
    torch.manual_seed(0)
    model = ConvVAE()
    x = torch.rand(4, 1, 28, 28, requires_grad=True)  # so the hook sees grad_input too
    ref_out, ref_grads = _plain_reference(model, x, monkeypatch)
    seen = []
    conv = model.encoder[0]
    conv.register_full_backward_hook(
        lambda m, gi, go: seen.append((gi[0].shape, go[0].shape)))
    out, grads = _grads(model, x)
    assert seen == [(torch.Size([4, 1, 28, 28]), torch.Size([4, 32, 28, 28]))], \
        "the hooked layer ran on its own"
    torch.testing.assert_close(out, ref_out)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)


# --------------------------------------------------- allocator: tuned when training starts
def _allocator_tuned_after(*steps: str, env: dict[str, str] | None = None) -> list[bool]:
    """Run ``steps`` in one fresh process; whether the allocator was tuned after each."""
    script = "import helper_lib.fast.allocator as u\n" + "".join(
        f"{code}\nprint('TUNED', u._ALLOCATOR_TUNED)\n" for code in steps)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=True)
    return [line == "TUNED True" for line in out.stdout.splitlines() if line.startswith("TUNED")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_the_allocator_is_tuned_when_training_starts_and_never_before():
    evaluate = ("import torch; from helper_lib import ConvVAE; from helper_lib.evaluate import "
                "evaluate_vae; from torch.utils.data import DataLoader, TensorDataset\n"
                "x = torch.rand(16, 1, 28, 28); dl = DataLoader(TensorDataset(x, x[:, 0, 0, 0]), "
                "batch_size=8)\nevaluate_vae(ConvVAE(), dl)\n"
                "import helper_lib.plotting, helper_lib.interactive")
    train = "from helper_lib import train_vae\ntrain_vae(ConvVAE(), dl, 1, progress=False)"
    assert _allocator_tuned_after(evaluate, train) == [False, True]
    assert _allocator_tuned_after(evaluate, train, env={"VAE_TUNE_ALLOCATOR": "0"}) == [False,
                                                                                      False]
