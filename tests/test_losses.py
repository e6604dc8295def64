import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from helper_lib.losses import kl_divergence, reconstruction_loss, vae_loss


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu = torch.randn(16, 5)
    logvar = torch.randn(16, 5)
    expected = torch.distributions.kl_divergence(
        Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)
    ).sum(-1)
    got = kl_divergence(mu, logvar)
    assert got.shape == (16,)
    assert torch.allclose(got, expected, atol=1e-5)


def test_kl_matches_a_monte_carlo_estimate():
    torch.manual_seed(1)
    mu = torch.tensor([[0.7, -1.2]])
    logvar = torch.tensor([[-0.5, 0.8]])
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = q.sample((400_000,))  # [S, 1, 2]
    mc = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean()
    assert kl_divergence(mu, logvar).item() == pytest.approx(mc.item(), rel=0.01)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zero = torch.zeros(3, 4)
    assert torch.equal(kl_divergence(zero, zero), torch.zeros(3))
    assert (kl_divergence(zero + 0.1, zero) > 0).all()
    assert (kl_divergence(zero, zero - 0.1) > 0).all()


@pytest.mark.parametrize("target, expected", [(0.2, 0.500), (0.4, 0.673)])
def test_bce_is_not_zero_when_prediction_equals_target(target, expected):
    t = torch.full((1, 1), target)
    assert reconstruction_loss(t, t, "bce").item() == pytest.approx(expected, abs=5e-4)
    assert reconstruction_loss(t, t, "mse").item() == 0.0


def test_bce_is_asymmetric_and_mse_is_symmetric_around_a_target():
    target = torch.full((1, 1), 0.8)
    below, above = torch.full((1, 1), 0.7), torch.full((1, 1), 0.9)
    bce_below = reconstruction_loss(below, target, "bce").item()
    bce_above = reconstruction_loss(above, target, "bce").item()
    assert abs(bce_below - bce_above) > 0.01
    mse_below = reconstruction_loss(below, target, "mse").item()
    mse_above = reconstruction_loss(above, target, "mse").item()
    assert mse_below == pytest.approx(mse_above, rel=1e-5)
    assert mse_below == pytest.approx(0.01, rel=1e-5)


def test_reconstruction_loss_sums_over_pixels_per_sample():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    x_hat = torch.rand(4, 1, 28, 28)
    per_sample = reconstruction_loss(x_hat, x, "mse")
    assert per_sample.shape == (4,)
    # summing over 784 pixels = 784 x the per-pixel mean (the hidden-beta factor)
    assert per_sample.mean().item() == pytest.approx(784 * F.mse_loss(x_hat, x).item(), rel=1e-5)
    bce = reconstruction_loss(x_hat, x, "bce")
    assert torch.allclose(bce, F.binary_cross_entropy(x_hat, x, reduction="none").sum((1, 2, 3)))


def test_reconstruction_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        reconstruction_loss(torch.rand(2, 784), torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="kind"):
        reconstruction_loss(torch.rand(2, 3), torch.rand(2, 3), "l1")


def test_vae_loss_is_weighted_sum_of_batch_means():
    torch.manual_seed(0)
    x, x_hat = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    mu, logvar = torch.randn(8, 2), torch.randn(8, 2)
    out = vae_loss(x_hat, x, mu, logvar, kind="mse", reconstruction_weight=2.0, beta=0.5)
    rec = ((x_hat - x) ** 2).sum((1, 2, 3)).mean()
    kl = kl_divergence(mu, logvar).mean()
    assert out.reconstruction.item() == pytest.approx(rec.item(), rel=1e-6)
    assert out.kl.item() == pytest.approx(kl.item(), rel=1e-6)
    assert out.total.item() == pytest.approx(2.0 * rec.item() + 0.5 * kl.item(), rel=1e-6)


def test_mse_loss_is_the_gaussian_negative_log_likelihood_with_variance_one_half():
    torch.manual_seed(0)
    x, x_hat = torch.rand(3, 10), torch.rand(3, 10)
    nll = -Normal(x_hat, math.sqrt(0.5)).log_prob(x).sum(-1)
    const = 0.5 * 10 * math.log(math.pi)
    assert torch.allclose(reconstruction_loss(x_hat, x, "mse") + const, nll, atol=1e-5)


def test_a_nan_reconstruction_gives_a_nan_bce_for_the_nan_guard_not_a_torch_error():
    x = torch.rand(2, 1, 28, 28)
    x_hat = torch.rand(2, 1, 28, 28).clamp(0.01, 0.99)
    x_hat[1, 0, 3, 4] = float("nan")  # a diverged decoder
    loss = reconstruction_loss(x_hat, x, "bce")
    assert torch.isfinite(loss[0]) and torch.isnan(loss[1])
    ours = reconstruction_loss(x_hat[:1].requires_grad_(), x[:1], "bce")
    x_ref = x_hat[:1].detach().clone().requires_grad_()
    theirs = F.binary_cross_entropy(x_ref, x[:1], reduction="sum")
    torch.testing.assert_close(ours.sum(), theirs)
    # gradients agree too (the leaf is a fresh copy for each)
    leaf = x_hat[:1].detach().clone().requires_grad_()
    reconstruction_loss(leaf, x[:1], "bce").sum().backward()
    theirs.backward()
    torch.testing.assert_close(leaf.grad, x_ref.grad)
