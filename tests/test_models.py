import pytest
import torch
from torch import nn

from helper_lib.models import (
    ConvAutoencoder,
    ConvTranspose2d,
    ConvVAE,
    count_parameters,
    layer_shapes,
)


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
