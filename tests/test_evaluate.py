import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from helper_lib.evaluate import (
    active_units,
    collect_latents,
    evaluate_autoencoder,
    evaluate_model,
    evaluate_vae,
    importance_weighted_log_likelihood,
    reconstruct,
)
from helper_lib.losses import vae_loss
from helper_lib.models import ConvAutoencoder, ConvVAE, MnistClassifier


@pytest.fixture(scope="module")
def small_test(mnist_loaders):
    from helper_lib.data import get_dataloaders

    return get_dataloaders(batch_size=100)[2]


def test_evaluate_vae_is_seeded_runs_in_eval_and_restores_the_mode(small_test):
    torch.manual_seed(0)
    model = ConvVAE().train()
    state = torch.get_rng_state()
    a = evaluate_vae(model, small_test, max_items=300)
    b = evaluate_vae(model, small_test, max_items=300)
    assert a == b
    assert model.training
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    assert a["total"] == pytest.approx(a["reconstruction"] + a["kl"])


def test_evaluate_vae_matches_the_training_loss_definition(small_test):
    torch.manual_seed(0)
    model = ConvVAE().eval()
    x, _ = next(iter(small_test))
    torch.manual_seed(11)
    with torch.no_grad():
        _, mu, logvar, x_hat = model(x)
    expected = vae_loss(x_hat, x, mu, logvar)
    got = evaluate_vae(model, small_test, seed=11, max_items=100)
    # evaluate_vae accumulates in float64, the batch mean is float32: agree to ~1e-5
    assert got["reconstruction"] == pytest.approx(expected.reconstruction.item(), rel=1e-4)
    assert got["kl"] == pytest.approx(expected.kl.item(), rel=1e-4)


def test_evaluate_autoencoder_is_per_pixel_mse(small_test):
    model = ConvAutoencoder()
    x, _ = next(iter(small_test))
    with torch.no_grad():
        expected = ((model(x)[1] - x) ** 2).mean().item()
    assert evaluate_autoencoder(model, small_test, max_items=100)["mse"] == pytest.approx(
        expected, rel=1e-5)


@pytest.mark.parametrize("kind", ["bce", "mse"])
def test_iw_log_likelihood_is_a_tighter_bound_than_the_elbo(small_test, kind):
    torch.manual_seed(0)
    model = ConvVAE()
    with torch.no_grad():  # a too-wide posterior (sigma^2 = e^2): the ELBO pays ~4.4 nats of KL
        model.z_log_var.weight.zero_()
        model.z_log_var.bias.fill_(2.0)
    elbo_loss = evaluate_vae(model, small_test, kind=kind, max_items=200)["total"]
    ll1 = importance_weighted_log_likelihood(model, small_test, k=1, kind=kind, max_items=200)
    ll20 = importance_weighted_log_likelihood(model, small_test, k=20, kind=kind, max_items=200)
    const = 0.0 if kind == "bce" else 0.5 * 784 * torch.log(torch.tensor(torch.pi)).item()
    # k = 1 is an unbiased estimate of the ELBO; k = 20 is a tighter (larger) bound
    assert ll1 == pytest.approx(-elbo_loss - const, rel=0.02)
    # importance weighting recovers most of that gap (an untrained decoder ignores z, so
    # log p(x) = ELBO + KL here, and the k = 20 bound gets within ~1 nat of it)
    assert ll20 > ll1 + 3.0
    assert ll20 < -elbo_loss - const + evaluate_vae(model, small_test, max_items=200)["kl"]


def test_active_units_counts_dims_whose_mean_varies(small_test):
    torch.manual_seed(0)
    model = ConvVAE(latent_dim=4)
    with torch.no_grad():  # switch off dims 2 and 3: their mu ignores the input
        model.z_mean.weight[2:] = 0.0
    au = active_units(model, small_test, max_items=500, threshold=1e-6)
    assert au.count == 2
    assert au.variances.shape == (4,)
    assert (au.variances[2:] == 0).all()


def test_collect_latents_and_reconstruct(small_test):
    model = ConvVAE()
    codes, labels = collect_latents(model, small_test, max_items=250)
    assert codes.shape == (250, 2) and labels.shape == (250,)
    x, y = next(iter(small_test))
    n = min(len(x), 250)
    assert torch.equal(codes[:n], model.encode(x[:n])[0].detach())  # mu, in loader order
    assert torch.equal(labels[:n], y[:n])
    model.train()
    x_hat = reconstruct(model, x[:5])
    assert x_hat.shape == (5, 1, 28, 28)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():  # decodes mu itself, not a random z: repeatable
        assert torch.allclose(x_hat, model.decode(model.encode(x[:5])[0]), atol=1e-6)
    assert torch.equal(x_hat, reconstruct(model, x[:5]))


@pytest.mark.parametrize("fn", [evaluate_vae, evaluate_autoencoder,
                                importance_weighted_log_likelihood])
def test_evaluating_the_wrong_kind_of_model_raises_a_clear_type_error(small_test, fn):
    model = ConvVAE() if fn is evaluate_autoencoder else ConvAutoencoder()
    with pytest.raises(TypeError, match="like Conv"):
        fn(model, small_test, max_items=8)


class _LinearGaussianVAE(torch.nn.Module):
    """x = W z + b + noise, noise ~ N(0, sigma^2 I), z ~ N(0, I), with W's columns orthogonal,
    and an encoder that returns the *exact* posterior. Then p(x) = N(b, W W^T + sigma^2 I) in
    closed form, and every importance weight equals p(x), so the estimate is exact for any k."""

    latent_dim = 2

    def __init__(self, sigma2):
        super().__init__()
        w = torch.zeros(6, 2, dtype=torch.float64)
        w[0, 0], w[1, 1] = 1.5, 0.7
        self.register_buffer("w", w)
        self.register_buffer("b", torch.linspace(-0.5, 0.5, 6, dtype=torch.float64))
        self.sigma2 = sigma2
        self.dummy = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def encode(self, x):
        precision = 1 + (self.w**2).sum(0) / self.sigma2  # diagonal, columns orthogonal
        var = 1 / precision
        mu = var * ((x.flatten(1).double() - self.b) @ self.w) / self.sigma2
        return mu, var.log().expand_as(mu)

    def decode(self, z):
        return (z.double() @ self.w.T + self.b).view(-1, 1, 2, 3)

    def log_px(self, x):
        cov = self.w @ self.w.T + self.sigma2 * torch.eye(6, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x.flatten(1).double())


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.25])
def test_iw_log_likelihood_is_exact_for_a_linear_gaussian_model_with_any_alpha(alpha):
    model = _LinearGaussianVAE(sigma2=1 / (2 * alpha))
    x = torch.randn(40, 1, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loader = DataLoader(TensorDataset(x, torch.zeros(40)), batch_size=16)
    exact = model.log_px(x)
    for k in (1, 7):
        got = importance_weighted_log_likelihood(model, loader, k=k, kind="mse", per_image=True,
                                                 reconstruction_weight=alpha)
        torch.testing.assert_close(got, exact, rtol=0, atol=2e-5)  # fp32 inside the loss
    if alpha != 1.0:  # the old behaviour, sigma^2 = 1/2 whatever the model: a different number
        wrong = importance_weighted_log_likelihood(model, loader, k=1, kind="mse")
        assert abs(wrong - exact.mean().item()) > 0.5


def test_the_grid_posterior_matches_the_closed_form_of_a_linear_gaussian_model():
    from helper_lib.analysis.posterior import true_posterior_grid

    model = _LinearGaussianVAE(sigma2=0.5)
    x = torch.randn(1, 1, 2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grid = true_posterior_grid(model, x, kind="mse", limit=5.0, n=251)
    assert grid.log_px == pytest.approx(model.log_px(x).item(), abs=1e-3)
    assert grid.kl_q_to_posterior == pytest.approx(0.0, abs=1e-3)  # the encoder is exact
    # an encoder whose mean is off by 0.5 in z_1: KL(q || p(z|x)) = 0.5^2 / (2 var_1)
    exact_encode = model.encode
    model.encode = lambda xx: (exact_encode(xx)[0] + torch.tensor([0.5, 0.0], dtype=xx.dtype),
                               exact_encode(xx)[1])
    var_1 = 1 / (1 + 1.5**2 / 0.5)
    shifted = true_posterior_grid(model, x, kind="mse", limit=5.0, n=251)
    assert shifted.kl_q_to_posterior == pytest.approx(0.25 / (2 * var_1), rel=1e-3)
    assert shifted.log_px == pytest.approx(grid.log_px, abs=1e-9)  # p(x) does not depend on q


def test_the_zoomed_grid_agrees_with_one_fine_grid_on_a_shifted_encoder():
    from helper_lib.analysis.posterior import true_posterior_grid, zoomed_posterior_grid

    model = _LinearGaussianVAE(sigma2=0.5)
    x = torch.randn(1, 1, 2, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact_encode = model.encode
    model.encode = lambda xx: (exact_encode(xx)[0] + torch.tensor([0.5, 0.0], dtype=xx.dtype),
                               exact_encode(xx)[1])
    var_1 = 1 / (1 + 1.5**2 / 0.5)
    coarse, fine = zoomed_posterior_grid(model, x, kind="mse", limit=5.0, coarse_n=41, fine_n=61)
    assert fine.kl_q_to_posterior == pytest.approx(0.25 / (2 * var_1), rel=1e-3)
    assert fine.log_px == pytest.approx(model.log_px(x).item(), abs=1e-3)
    assert coarse.z1[0] == -5.0 and fine.z1[-1] - fine.z1[0] < 10.0  # it did zoom in
    assert true_posterior_grid(model, x, kind="mse", n=41, bounds=(-1, 2, -3, 0)).z2[0] == -3


def test_the_aggregate_density_is_the_mixture_of_the_encoder_gaussians():
    from torch import distributions as D

    from helper_lib.analysis.posterior import aggregate_log_density

    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g) * 0.5
    z = torch.randn(70, 3, generator=g) * 2
    mixture = D.MixtureSameFamily(
        D.Categorical(torch.ones(50, dtype=torch.float64)),
        D.Independent(D.Normal(mu.double(), torch.exp(0.5 * logvar.double())), 1))
    got = aggregate_log_density(mu, logvar, z, chunk=16)
    torch.testing.assert_close(got, mixture.log_prob(z.double()), rtol=1e-10, atol=1e-10)


def test_grid_moments_recover_a_gaussians_mean_spread_and_correlation():
    from helper_lib.analysis.posterior import GridPosterior, grid_moments

    axis = torch.linspace(-3, 3, 301, dtype=torch.float64)
    z2, z1 = torch.meshgrid(axis, axis, indexing="ij")
    cov = torch.tensor([[0.25, -0.1], [-0.1, 0.16]], dtype=torch.float64)
    mvn = torch.distributions.MultivariateNormal(torch.tensor([0.5, -0.4], dtype=torch.float64),
                                                 cov)
    logp = mvn.log_prob(torch.stack([z1, z2], -1))
    q = torch.distributions.Normal(0.0, 0.3).log_prob(z1) + torch.distributions.Normal(
        1.0, 0.2).log_prob(z2)
    post, qm = grid_moments(GridPosterior(axis, axis, logp, q, 0.0, 0.0))
    torch.testing.assert_close(post.mean, torch.tensor([0.5, -0.4], dtype=torch.float64),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(post.sd, torch.tensor([0.5, 0.4], dtype=torch.float64),
                               atol=1e-4, rtol=0)
    assert post.corr == pytest.approx(-0.1 / (0.5 * 0.4), abs=1e-4)
    torch.testing.assert_close(qm.mean, torch.tensor([0.0, 1.0], dtype=torch.float64),
                               atol=1e-4, rtol=0)
    assert qm.corr == pytest.approx(0.0, abs=1e-6)


def test_the_report_computes_the_test_losses_in_one_pass(monkeypatch):
    """evaluation_report used to run evaluate_vae and vae_losses_per_image: two passes."""
    from helper_lib import evaluate
    from helper_lib.analysis import report

    torch.manual_seed(0)
    model = ConvVAE().eval()
    loader = DataLoader(TensorDataset(torch.rand(48, 1, 28, 28), torch.zeros(48)), batch_size=16)
    passes = []
    real = evaluate.vae_losses_per_image
    for module in (evaluate, report):
        monkeypatch.setattr(module, "vae_losses_per_image",
                            lambda *a, **k: passes.append(1) or real(*a, **k))
    result = report.evaluation_report(model, loader, k=0)
    assert len(passes) == 1
    expected = evaluate.evaluate_vae(model, loader)
    assert result["test"] == pytest.approx(expected, rel=1e-6)


def test_leave_one_out_drops_each_points_own_component_and_only_that():
    from torch import distributions as D

    from helper_lib.analysis.posterior import aggregate_log_density

    g = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(40, 2, generator=g), torch.full((40, 2), -4.0)  # narrow: sd 0.14
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)  # z_i ~ q(z | x_i)
    own = torch.arange(40)
    own[5] = -1  # point 5 keeps every component
    got = aggregate_log_density(mu, logvar, z, chunk=7, leave_out=own)
    for i in (0, 5, 39):
        keep = torch.arange(40) != i if i != 5 else torch.ones(40, dtype=torch.bool)
        mixture = D.MixtureSameFamily(
            D.Categorical(torch.ones(int(keep.sum()), dtype=torch.float64)),
            D.Independent(D.Normal(mu[keep].double(), torch.exp(0.5 * logvar[keep].double())),
                          1))
        torch.testing.assert_close(got[i], mixture.log_prob(z[i].double()), rtol=1e-10,
                                   atol=1e-10)
    full = aggregate_log_density(mu, logvar, z)
    # with narrow, well separated Gaussians the self-term is most of a typical draw's density;
    # dropping it can raise the density only by the normalizer's change, N/(N-1)
    assert (full - got)[own >= 0].median() > 1.0
    assert (full - got)[own >= 0].min() > -math.log(40 / 39) - 1e-12
    with pytest.raises(ValueError, match="leave_out"):
        aggregate_log_density(mu, logvar, z, leave_out=torch.arange(41))


def test_the_grid_kl_to_the_prior_matches_the_closed_form_of_a_gaussian():
    from helper_lib.analysis.posterior import grid_kl_to_prior

    axis = torch.linspace(-6, 6, 121, dtype=torch.float64)  # step 0.1, one sd of q below
    z2, z1 = torch.meshgrid(axis, axis, indexing="ij")
    q = torch.distributions.Independent(torch.distributions.Normal(
        torch.tensor([0.5, -1.0], dtype=torch.float64),
        torch.tensor([0.1, 0.8], dtype=torch.float64)), 1)
    log_q = q.log_prob(torch.stack([z1, z2], -1))
    prior = torch.distributions.Independent(torch.distributions.Normal(
        torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)), 1)
    kl, mass = grid_kl_to_prior(axis, log_q)
    assert mass == pytest.approx(1.0, abs=1e-6)
    assert kl == pytest.approx(float(torch.distributions.kl_divergence(q, prior)), rel=1e-6)


def test_the_gap_split_adds_up_and_finds_each_cause_alone():
    from helper_lib.analysis.posterior import GridPosterior, gap_split

    axis = torch.linspace(-3, 3, 401, dtype=torch.float64)
    z2, z1 = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([z1, z2], -1)
    d = torch.distributions

    def grid(post_cov, q_mean, q_sd):
        post = d.MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                                    torch.tensor(post_cov, dtype=torch.float64))
        q = d.MultivariateNormal(torch.tensor(q_mean, dtype=torch.float64),
                                 torch.diag(torch.tensor(q_sd, dtype=torch.float64) ** 2))
        kl = float(d.kl_divergence(q, post))
        return GridPosterior(axis, axis, post.log_prob(pts), q.log_prob(pts), 0.0, kl), kl

    # only an offset: the whole gap is the offset
    g, kl = grid([[0.09, 0], [0, 0.04]], [0.3, 0.0], [0.3, 0.2])
    split = gap_split(g)
    assert split.offset == pytest.approx(kl, rel=1e-3) and split.offset == pytest.approx(0.5)
    assert abs(split.width) < 1e-3 and abs(split.tilt) < 1e-3 and abs(split.rest) < 1e-3
    # only a tilt (rho = -0.6): the closed form 1/2 [2/(1-rho^2) - 2 + ln(1-rho^2)]
    g, kl = grid([[0.09, -0.6 * 0.3 * 0.2], [-0.6 * 0.3 * 0.2, 0.04]], [0.0, 0.0], [0.3, 0.2])
    split = gap_split(g)
    assert split.tilt == pytest.approx(0.5 * (2 / 0.64 - 2 + math.log(0.64)), rel=1e-3)
    assert split.tilt == pytest.approx(kl, rel=1e-3) and abs(split.offset) < 1e-3
    # only a width: q twice as wide along z1
    g, kl = grid([[0.09, 0], [0, 0.04]], [0.0, 0.0], [0.6, 0.2])
    split = gap_split(g)
    assert split.width == pytest.approx(0.5 * (4 - 1 - math.log(4)), rel=1e-3)
    assert split.width == pytest.approx(kl, rel=1e-3)
    assert sum(split[1:]) == pytest.approx(split.total, abs=1e-12)


@pytest.mark.parametrize("type_name", ["vae", "autoencoder", "classifier"])
def test_evaluate_model_gives_each_types_loss_as_computed_by_hand(type_name):
    """evaluate_model against each type's loss written out with torch.nn.functional, in eval
    mode, on the first 6 of 10 images in batches of 4 (the second one cut short); for the VAE
    with its own options away from their defaults."""
    torch.manual_seed(0)
    x, y = torch.rand(10, 1, 28, 28), torch.randint(0, 10, (10,))
    model = {"vae": ConvVAE, "autoencoder": ConvAutoencoder,
             "classifier": MnistClassifier}[type_name]().train()
    vae_options = {}
    if type_name == "vae":  # a wide posterior off the origin: a KL of a few nats per image
        with torch.no_grad():
            model.z_mean.bias.fill_(1.0)
            model.z_log_var.bias.fill_(2.0)
        vae_options = dict(kind="bce", reconstruction_weight=2.0, beta=0.5)
    if type_name == "classifier":  # labels that make the accuracy exactly 4 of the 6
        with torch.no_grad():
            predicted = model.eval()(x).argmax(1)
        y = torch.where(torch.arange(10) < 4, predicted, (predicted + 1) % 10)
        model.train()
    # batches of 4 as a list: a DataLoader would also draw its workers' seed from the RNG
    loader = [(x[i: i + 4], y[i: i + 4]) for i in range(0, 10, 4)]
    got = evaluate_model(model, loader, seed=5, max_items=6, **vae_options)
    assert model.training, "the model is put back in the mode it was in"

    x, y = x[:6], y[:6]
    with torch.no_grad():
        model.eval()
        if type_name == "vae":
            torch.manual_seed(5)  # z drawn batch by batch, as the loader gives them
            _, mu, logvar, x_hat = (torch.cat(t) for t in zip(model(x[:4]), model(x[4:]),
                                                             strict=True))
            rec = F.binary_cross_entropy(x_hat, x, reduction="none").sum((1, 2, 3)).mean()
            kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(1).mean()
            assert kl > 2.0
            expected = {"total": 2.0 * rec + 0.5 * kl, "reconstruction": rec, "kl": kl}
        elif type_name == "autoencoder":
            expected = {"mse": F.mse_loss(model(x)[1], x)}
        else:
            expected = {"cross_entropy": F.cross_entropy(model(x), y), "accuracy": 4 / 6}
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, rel=1e-5)
