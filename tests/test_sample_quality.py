"""The Fréchet distance, sample scores, the classifier and binarized MNIST (notebook 06)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helper_lib.analysis.sample_quality import (
    decode_prior_samples,
    fit_code_gaussian,
    frechet_distance,
    gaussian_stats,
    sample_quality,
)
from helper_lib.data import BINARIZED_TEST_SEED, get_dataloaders
from helper_lib.evaluate import evaluate_classifier
from helper_lib.models import MnistClassifier, count_parameters
from helper_lib.train import train_classifier


def test_frechet_distance_of_a_set_with_itself_is_zero():
    torch.manual_seed(0)
    a = torch.randn(2000, 16) @ torch.randn(16, 16)  # correlated features
    assert frechet_distance(*gaussian_stats(a), *gaussian_stats(a)) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    # Diagonal covariances: ||m1 - m2||^2 + sum (sqrt(a) - sqrt(b))^2.
    m1, m2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(m1, torch.diag(a), m2, torch.diag(b)) == pytest.approx(expected)
    # Rotating both Gaussians the same way changes nothing, although the covariances no
    # longer commute with the axes (the cross term needs the full matrix square root).
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64,
                                       generator=torch.Generator().manual_seed(1)))
    m1, m2, a, b = (t.double() for t in (m1, m2, a, b))
    rotated = frechet_distance(q @ m1, q @ torch.diag(a) @ q.T, q @ m2, q @ torch.diag(b) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)
    # and a non-commuting pair in 2-D against its closed form for equal traces:
    # W2^2 = tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), with S1 = I it is sum (1 - sqrt(l))^2
    s2 = torch.tensor([[2.0, 1.0], [1.0, 2.0]])  # eigenvalues 1 and 3
    assert frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(2), s2) == pytest.approx(
        (1 - 1) ** 2 + (1 - math.sqrt(3)) ** 2)


def test_frechet_distance_of_samples_approaches_the_population_value():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(20000, 2, generator=gen)
    y = torch.randn(20000, 2, generator=gen) * 2 + 1
    # population: ||(1, 1)||^2 + 2 * (1 - 2)^2 = 4
    assert frechet_distance(*gaussian_stats(x), *gaussian_stats(y)) == pytest.approx(4, rel=0.05)


class _Identity(nn.Module):
    """A fake 'decoder' whose images are the codes themselves (for the sampling tests)."""

    latent_dim = 2

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def decode(self, z):
        return z

    def embed(self, x):
        return x.flatten(1)[:, :2]


def test_prior_samples_follow_the_requested_gaussian_and_are_seeded():
    mean, cov = torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 0.6], [0.6, 0.5]])
    z = decode_prior_samples(_Identity(), 20000, seed=3, gaussian=(mean, cov))
    m, c = gaussian_stats(z)
    torch.testing.assert_close(m.float(), mean, atol=0.04, rtol=0)
    torch.testing.assert_close(c.float(), cov, atol=0.05, rtol=0)
    assert torch.equal(z, decode_prior_samples(_Identity(), 20000, seed=3, gaussian=(mean, cov)))
    plain = decode_prior_samples(_Identity(), 20000, seed=3)
    torch.testing.assert_close(gaussian_stats(plain)[1].float(), torch.eye(2), atol=0.04, rtol=0)


def test_fit_code_gaussian_recovers_the_codes_moments():
    x = torch.randn(4000, 1, 1, 2) * torch.tensor([1.0, 3.0]) + torch.tensor([5.0, 0.0])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(4000)),
                                         batch_size=500)
    mean, cov = fit_code_gaussian(_Identity(), loader)
    torch.testing.assert_close(mean, torch.tensor([5.0, 0.0]), atol=0.15, rtol=0)
    torch.testing.assert_close(torch.diagonal(cov), torch.tensor([1.0, 9.0]), atol=0.5, rtol=0)


class _ByBrightness(nn.Module):
    """A fake classifier: the class is the image's first pixel times 10 (a one-hot logit)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Identity()
        self.dummy = nn.Parameter(torch.zeros(1))

    def features(self, x):
        return 50.0 * nn.functional.one_hot((x.flatten(1)[:, 0] * 10).long().clamp(0, 9),
                                            10).float()


def test_sample_quality_measures_confidence_and_class_coverage():
    judge = _ByBrightness()
    uniform = torch.arange(1000).float().remainder(10).div(10).add(0.01).view(-1, 1, 1, 1)
    only_ones = torch.full((1000, 1, 1, 1), 0.15)
    reference = gaussian_stats(judge.features(uniform))
    every = sample_quality(judge, uniform, reference)
    assert every.class_entropy == pytest.approx(math.log(10))
    assert every.confidence == pytest.approx(1.0, abs=1e-6)
    assert every.frechet == pytest.approx(0, abs=1e-6)
    torch.testing.assert_close(every.class_share, torch.full((10,), 0.1))
    ones = sample_quality(judge, only_ones, reference)
    assert ones.class_entropy == pytest.approx(0) and ones.class_share[1] == 1
    assert ones.frechet > 100


def test_binarized_mnist_is_binary_unbiased_dynamic_and_its_test_set_fixed():
    train, _, test = get_dataloaders("binarized-mnist", batch_size=512, train_subset=2048,
                                     seed=0)
    grey_train, _, grey_test = get_dataloaders("mnist", batch_size=512, train_subset=2048,
                                               seed=0)
    a = torch.cat([x for x, _ in train])
    b = torch.cat([x for x, _ in train])  # a second epoch: same images, new draws
    grey = torch.cat([x for x, _ in grey_train])
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(a, b)
    assert a.mean().item() == pytest.approx(grey.mean().item(), abs=0.003)  # E[Bernoulli(x)] = x
    # Every pixel is a Bernoulli(x): zero where the grey image is 0, one where it is 1.
    assert (a[grey == 0] == 0).all() and (a[grey == 1] == 1).all()
    t1 = next(iter(test))[0]
    t2 = next(iter(get_dataloaders("binarized-mnist", batch_size=512, seed=7)[2]))[0]
    assert torch.equal(t1, t2), f"the test set is binarized once, with seed {BINARIZED_TEST_SEED}"
    assert t1.mean().item() == pytest.approx(next(iter(grey_test))[0].mean().item(), abs=0.005)


def test_the_classifier_learns_digits_from_a_few_hundred_steps():
    train, _, test = get_dataloaders("mnist", batch_size=64, train_subset=4096, seed=0)
    torch.manual_seed(0)
    model = MnistClassifier()
    assert count_parameters(model) == 467_818
    before = evaluate_classifier(model, test, max_items=1000)
    history = train_classifier(model, train, epochs=2, lr=2e-3, seed=0, progress=False)
    after = evaluate_classifier(model, test, max_items=1000)
    assert before["accuracy"] < 0.3 and after["accuracy"] > 0.9
    assert after["cross_entropy"] < before["cross_entropy"] / 4
    assert history.train["error"][-1] < history.train["error"][0]
