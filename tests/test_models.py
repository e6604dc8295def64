import os
import platform
import subprocess
import sys
from unittest import mock

import pytest
import torch
from torch import nn

from helper_lib.fast import layers
from helper_lib.fast.layers import ConvStack, ConvTranspose2d
from helper_lib.models import ConvAutoencoder, ConvVAE, count_parameters, layer_shapes


def test_parameter_counts_match_the_lecture():
    assert count_parameters(ConvVAE(latent_dim=2)) == 207_237
    assert count_parameters(ConvAutoencoder(latent_dim=2)) == 200_963


def test_parameter_count_scales_with_latent_dim():
    # each extra latent dim adds 2 x 3137 (mu and logvar heads) + 3136 (decoder Linear)
    assert count_parameters(ConvVAE(latent_dim=3)) - count_parameters(ConvVAE(2)) == 2 * 3137 + 3136


def test_vae_forward_shapes_and_decoder_range(mnist_batch):
    torch.manual_seed(0)
    model = ConvVAE(latent_dim=2)
    z, mu, logvar, x_hat = model(mnist_batch)
    assert z.shape == mu.shape == logvar.shape == (64, 2)
    assert x_hat.shape == (64, 1, 28, 28)
    assert 0.0 <= x_hat.min().item() and x_hat.max().item() <= 1.0
    decoded = model.decode(torch.randn(5, 2) * 10)  # far outside the prior too
    assert decoded.shape == (5, 1, 28, 28)
    assert decoded.min() >= 0.0 and decoded.max() <= 1.0


def test_autoencoder_forward_is_deterministic(mnist_batch):
    model = ConvAutoencoder().eval()
    z1, x1 = model(mnist_batch)
    z2, x2 = model(mnist_batch)
    assert z1.shape == (64, 2) and x1.shape == (64, 1, 28, 28)
    assert torch.equal(x1, x2)
    assert torch.equal(model.embed(mnist_batch), z1)


def test_vae_embed_is_the_posterior_mean(mnist_batch):
    model = ConvVAE().eval()
    mu, _ = model.encode(mnist_batch)
    assert torch.equal(model.embed(mnist_batch), mu)


def test_reparameterize_gradients_reach_mu_and_logvar():
    mu = torch.zeros(8, 2, requires_grad=True)
    logvar = torch.zeros(8, 2, requires_grad=True)
    z = ConvVAE.reparameterize(mu, logvar)
    (z**2).sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0


def test_reparameterize_sample_mean_and_variance():
    torch.manual_seed(0)
    n = 200_000
    mu = torch.tensor([1.5, -2.0]).expand(n, 2)
    logvar = torch.log(torch.tensor([0.25, 4.0])).expand(n, 2)
    z = ConvVAE.reparameterize(mu, logvar)
    assert torch.allclose(z.mean(0), torch.tensor([1.5, -2.0]), atol=0.02)
    assert torch.allclose(z.var(0), torch.tensor([0.25, 4.0]), rtol=0.02)


def test_reparameterize_follows_the_input_dtype():
    mu = torch.zeros(4, 2, dtype=torch.float64)
    assert ConvVAE.reparameterize(mu, mu).dtype == torch.float64


@pytest.mark.parametrize("cls", [ConvVAE, ConvAutoencoder])
def test_layer_shapes_trace_the_architecture(cls):
    rows = layer_shapes(cls(), torch.rand(3, 1, 28, 28))
    shapes = [shape for _, _, shape in rows]
    assert (3, 3136) in shapes  # flattened encoder output
    assert (3, 1, 29, 29) in shapes  # before trimming
    assert shapes[-1] == (3, 1, 28, 28)


@pytest.mark.parametrize("stride, padding, size", [(1, 1, 7), (2, 1, 7), (2, 0, 13)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_transpose_with_separate_bias_matches_pytorch(stride, padding, size, channels_last):
    """Same output and gradients as nn.ConvTranspose2d, only the bias is added separately."""
    torch.manual_seed(0)
    ours = ConvTranspose2d(8, 4, kernel_size=3, stride=stride, padding=padding)
    ref = nn.ConvTranspose2d(8, 4, kernel_size=3, stride=stride, padding=padding)
    ref.load_state_dict(ours.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(5, 8, size, size).contiguous(memory_format=fmt)
    y_ours, y_ref = ours(x), ref(x)
    assert y_ours.shape == y_ref.shape
    assert torch.allclose(y_ours, y_ref, atol=1e-5)
    assert y_ours.is_contiguous(memory_format=fmt)
    g = torch.randn_like(y_ref)
    y_ours.backward(g)
    y_ref.backward(g)
    assert torch.allclose(ours.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)
    assert torch.allclose(ours.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-4)
    assert torch.allclose(ours.bias.grad, g.sum(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)


def test_conv_transpose_with_separate_bias_keeps_bf16_under_autocast():
    layer = ConvTranspose2d(8, 4, kernel_size=3, stride=2)
    x = torch.randn(2, 8, 13, 13)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16  # the fp32 bias must not promote the output to fp32
    assert torch.allclose(y.float(), nn.functional.conv_transpose2d(
        x, layer.weight, layer.bias, stride=2).detach(), atol=0.05)


def test_decoder_uses_drop_in_conv_transpose_with_pytorch_state_dict_keys():
    model = ConvVAE()
    layers = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert len(layers) == 4 and all(type(m) is ConvTranspose2d for m in layers)
    assert "decoder.2.weight" in model.state_dict() and "decoder.2.bias" in model.state_dict()


def _stack_pair(transposed: bool, stride: int, padding: int) -> ConvStack:
    conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    return ConvStack(conv_cls(6, 5, kernel_size=3, stride=stride, padding=padding),
                     nn.LeakyReLU(0.01), nn.Conv2d(5, 3, kernel_size=1), nn.LeakyReLU(0.2))


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (2, 0)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_stack_fuses_conv_and_leaky_relu_with_the_same_results(transposed, stride, padding,
                                                                    channels_last):
    torch.manual_seed(0)
    fused = _stack_pair(transposed, stride, padding)
    plain = nn.Sequential(*fused)  # the very same layers, run one by one
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fused.to(memory_format=fmt)
    x = torch.randn(4, 6, 9, 9).contiguous(memory_format=fmt).requires_grad_()
    y = fused(x)
    assert "ConvLeakyReLU" in y.grad_fn.name()  # the fused path really ran
    g = torch.randn_like(y)
    y.backward(g)
    grads = [x.grad.clone()] + [p.grad.clone() for p in fused.parameters()]
    x.grad = None
    fused.zero_grad()
    y_ref = plain(x)
    assert "ConvLeakyReLU" not in y_ref.grad_fn.name()
    y_ref.backward(g)
    grads_ref = [x.grad] + [p.grad for p in plain.parameters()]
    assert torch.allclose(y, y_ref, atol=1e-5)
    for a, b in zip(grads, grads_ref, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_stack_under_bf16_autocast_computes_in_bf16_with_fp32_gradients():
    torch.manual_seed(0)
    fused = _stack_pair(transposed=True, stride=2, padding=0)
    plain = nn.Sequential(*fused)
    x = torch.randn(8, 6, 7, 7)
    results = []
    for stack in (fused, plain):
        stack.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = stack(x)
        y.float().square().sum().backward()
        results.append((y, [p.grad.clone() for p in stack.parameters()]))
    (y, grads), (y_ref, grads_ref) = results
    assert y.dtype == y_ref.dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in grads)
    assert torch.allclose(y.float(), y_ref.float(), rtol=0.02, atol=0.02)
    for a, b in zip(grads, grads_ref, strict=True):
        assert (a - b).norm() / b.norm() < 0.02


def test_conv_stack_under_bf16_falls_back_where_onednn_has_no_bf16():
    """On AVX2-only CPUs oneDNN's fused ops refuse bf16; the stack must run torch's layers."""
    torch.manual_seed(0)
    stack = _stack_pair(transposed=True, stride=2, padding=0)
    x = torch.randn(4, 6, 7, 7, requires_grad=True)
    with mock.patch.object(layers, "_onednn_has_bf16", return_value=False), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        y = stack(x)
    assert y.dtype == torch.bfloat16
    assert _count_nodes(y.grad_fn, "ConvLeakyReLU") == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):  # unmocked: fused wherever oneDNN can
        fused_pairs = _count_nodes(stack(x).grad_fn, "ConvLeakyReLU")
    assert fused_pairs == (2 if layers._onednn_has_bf16() else 0)


_AVX2_SCRIPT = """
import torch
from helper_lib.models import ConvVAE
from helper_lib.fast.precision import cpu_has_native_bf16, cpu_kind, resolve_precision
assert not torch.ops.mkldnn._is_mkldnn_bf16_supported()
assert not cpu_has_native_bf16() and cpu_kind() == "avx2"
assert resolve_precision("auto", torch.device("cpu")).name == "fp32"
torch.manual_seed(0)
model = ConvVAE().to(memory_format=torch.channels_last)
x = torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
with torch.autocast("cpu", dtype=torch.bfloat16):  # an explicit precision="bf16"
    z, mu, logvar, x_hat = model(x)
x_hat.float().square().sum().backward()
assert x_hat.shape == (4, 1, 28, 28) and x_hat.dtype == torch.float32  # fp32 sigmoid
assert mu.dtype == torch.bfloat16  # the rest ran in bf16
assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
print("ok")
"""


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64")
                    or not hasattr(torch.cpu, "_is_amx_tile_supported"),
                    reason="an x86 ISA cap, and torch's CPU-feature probes (torch >= 2.5)")
def test_models_train_in_bf16_and_auto_picks_fp32_on_an_avx2_only_cpu():
    """With oneDNN capped at AVX2 (a typical laptop), explicit bf16 still works, "auto" is fp32."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    env.pop("DNNL_MAX_CPU_ISA", None)
    result = subprocess.run([sys.executable, "-c", _AVX2_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_conv_stack_runs_layer_by_layer_when_a_layer_has_hooks():
    stack = _stack_pair(transposed=False, stride=1, padding=1)
    seen = []
    stack[1].register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    y = stack(torch.randn(2, 6, 5, 5, requires_grad=True))
    assert seen == [(2, 5, 5, 5)]  # the hooked LeakyReLU ran as its own layer
    assert _count_nodes(y.grad_fn, "ConvLeakyReLU") == 1  # only the second, hook-free pair fused


def test_vae_fuses_six_conv_activation_pairs_and_matches_stock_layers(mnist_batch):
    torch.manual_seed(0)
    model = ConvVAE()
    stock = ConvVAE()
    stock.encoder, stock.decoder = nn.Sequential(*model.encoder), nn.Sequential(*model.decoder)
    stock.z_mean, stock.z_log_var = model.z_mean, model.z_log_var
    assert isinstance(model.encoder, ConvStack) and isinstance(model.decoder, ConvStack)
    assert list(model.state_dict()) == list(stock.state_dict())
    model.eval()
    with torch.no_grad():
        mu, _ = model.encode(mnist_batch)
        mu_ref, _ = stock.encode(mnist_batch)
        assert torch.allclose(mu, mu_ref, atol=1e-5)
        assert torch.allclose(model.decode(mu), stock.decode(mu), atol=1e-5)
    x_hat = model.train()(mnist_batch)[3]
    assert _count_nodes(x_hat.grad_fn, "ConvLeakyReLU") == 6  # 3 in the encoder, 3 in the decoder


def _count_nodes(root, name: str) -> int:
    """How many nodes of the autograd graph below ``root`` have ``name`` in their name."""
    seen, todo = set(), [root]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            try:
                todo.extend(n for n, _ in node.next_functions)
            except RuntimeError:  # torch 2.4 cannot walk past a custom Function's node
                pytest.skip("this torch cannot walk a custom autograd.Function's graph")
    return sum(name in node.name() for node in seen)


def test_conv_stack_supports_double_backward_like_stock_layers():
    torch.manual_seed(0)
    fused = _stack_pair(transposed=True, stride=2, padding=1)
    plain = nn.Sequential(*fused)
    x = torch.randn(3, 6, 7, 7, requires_grad=True)
    grads = []
    for stack in (fused, plain):
        stack.zero_grad()
        y = stack(x)
        (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        g.square().sum().backward()  # e.g. a gradient penalty
        grads.append([p.grad.clone() for p in stack.parameters()])
    assert _count_nodes(fused(x).grad_fn, "ConvLeakyReLU") == 2
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [ConvVAE, ConvAutoencoder])
def test_decoder_output_keeps_fp32_precision_near_one_under_bf16_autocast(cls):
    # bf16 has 8 significant bits, so a bf16 sigmoid rounds everything above ~0.998 to exactly
    # 1.0: BCE against a grey target then saturates and that pixel's gradient is zero.
    torch.manual_seed(0)
    model = cls(latent_dim=2)
    last = model.decoder[-3]  # the final ConvTranspose2d(32, 1)
    with torch.no_grad():
        last.bias.fill_(7.0)  # logits around 7: sigmoid ~0.9991
    z = torch.zeros(4, 2)
    with torch.autocast("cpu", torch.bfloat16):
        x_hat = model.decode(z)
    assert x_hat.dtype == torch.float32
    assert (x_hat < 1).all()
    target = torch.full_like(x_hat, 0.5)
    with torch.autocast("cpu", torch.bfloat16):
        x_hat = model.decode(z)
    loss = torch.nn.functional.binary_cross_entropy(x_hat, target, reduction="sum") / 4
    loss.backward()
    # d(BCE)/d(logit) = x_hat - target ~ 0.5 per pixel, 784 pixels per image
    assert last.bias.grad.item() == pytest.approx(784 * 0.4991, rel=0.01)
