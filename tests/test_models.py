import pytest
import torch

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
