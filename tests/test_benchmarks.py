"""The speed benchmark must compare against the course's model, not the library's faster one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from helper_lib.fast.layers import ConvStack, ConvTranspose2d
from helper_lib.models import ConvVAE, Trim, count_parameters

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


def _train_speed():
    spec = importlib.util.spec_from_file_location("train_speed", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_model_uses_stock_layers_with_the_same_weights(mnist_batch):
    torch.manual_seed(0)
    ours = ConvVAE().eval()
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    course = _train_speed().course_model(ours)
    kinds = [type(m) for m in course.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert kinds == [nn.ConvTranspose2d] * 4
    assert not any(isinstance(m, (ConvTranspose2d, ConvStack)) for m in course.modules())
    assert all(type(m).__module__.startswith("torch.") for m in course.modules()
               if not isinstance(m, (ConvVAE, Trim))), "only torch's layers (and the course's Trim)"
    assert type(course.encoder) is nn.Sequential and type(course.decoder) is nn.Sequential
    assert count_parameters(course) == 207_237
    for key, value in course.state_dict().items():
        assert torch.equal(value, state[key]), key
    torch.manual_seed(1)
    ref_out = course(mnist_batch)[3]
    lib = ConvVAE().eval()
    lib.load_state_dict(state)
    torch.manual_seed(1)
    assert torch.allclose(lib(mnist_batch)[3], ref_out, atol=1e-5)


def test_every_lever_row_names_known_features():
    levers = _train_speed().LEVERS
    known = {"channels_last", "bf16", "fused_adam", "allocator", "no_item", "deconv_bias",
             "fused_conv_act", "implicit_bf16"}
    assert levers["in-memory data"] == set()
    assert all(features <= known for features in levers.values())
    cumulative = [f for name, f in levers.items() if not name.startswith("alt:")]
    assert all(a < b for a, b in zip(cumulative, cumulative[1:], strict=False))


def test_lever_rows_keep_only_their_own_layer_subclasses():
    course_model = _train_speed().course_model
    plain = course_model(ConvVAE())
    assert type(plain.decoder[2]) is nn.ConvTranspose2d and type(plain.encoder) is nn.Sequential
    bias_only = course_model(ConvVAE(), keep=frozenset({"deconv_bias"}))
    assert type(bias_only.decoder[2]) is ConvTranspose2d
    assert type(bias_only.decoder) is nn.Sequential
    both = course_model(ConvVAE(), keep=frozenset({"deconv_bias", "fused_conv_act"}))
    assert type(both.decoder[2]) is ConvTranspose2d and type(both.encoder) is ConvStack
