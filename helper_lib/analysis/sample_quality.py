"""How good are a generative model's samples? A classifier's verdict and a Fréchet distance.

Three numbers for a set of generated digits, all from a digit classifier
(:class:`~helper_lib.models.MnistClassifier`) trained on real MNIST:

* **confidence**: the mean of the classifier's top softmax probability. Legible digits get
  confident predictions; blobs between two classes do not.
* **class entropy**: the entropy (nats) of the histogram of predicted classes. ``log 10 =
  2.303`` means every digit is generated equally often; a model that only draws 1s scores 0.
* **Fréchet distance**: between Gaussians fitted to the classifier's penultimate-layer features
  of the samples and of real test images (Heusel et al., 2017, with our small MNIST classifier
  in place of the Inception network, so the numbers are *not* comparable with published FIDs).
  It sees both quality and diversity, but only through the first two moments of one network's
  features: it is a summary, not a proof of realism.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..evaluate import collect_latents, inference

__all__ = [
    "gaussian_stats",
    "frechet_distance",
    "classifier_features",
    "SampleQuality",
    "sample_quality",
    "decode_prior_samples",
    "fit_code_gaussian",
    "prior_sample_report",
]


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[F]`` and covariance ``[F, F]`` (unbiased, float64) of ``features [N, F]``."""
    f = features.double()
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features of shape [N >= 2, F], got {tuple(features.shape)}")
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative eigenvalues -> 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Fréchet (2-Wasserstein) distance² between N(mu1, cov1) and N(mu2, cov2).

    .. math:: \\lVert \\mu_1 - \\mu_2 \\rVert^2 + \\operatorname{tr}\\bigl(\\Sigma_1 + \\Sigma_2
              - 2 (\\Sigma_1^{1/2} \\Sigma_2 \\Sigma_1^{1/2})^{1/2}\\bigr)

    computed in float64 with symmetric eigendecompositions (the symmetric form of the
    cross term, so no complex square roots arise). 0 for identical Gaussians.
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    root1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(root1 @ cov2 @ root1)
    value = (mu1 - mu2).square().sum() + torch.trace(cov1 + cov2 - 2 * cross)
    return max(float(value), 0.0)


def classifier_features(classifier: nn.Module, images: Tensor, batch: int = 1000
                        ) -> tuple[Tensor, Tensor]:
    """``images [N, 1, 28, 28] -> (features [N, F], probabilities [N, 10])``, in eval mode."""
    feats, probs = [], []
    with inference(classifier, None) as device:
        for chunk in images.split(batch):
            f = classifier.features(chunk.to(device))
            feats.append(f.float().cpu())
            probs.append(torch.softmax(classifier.head(f).float(), dim=1).cpu())
    return torch.cat(feats), torch.cat(probs)


class SampleQuality(NamedTuple):
    """What the classifier says about a set of images (see the module docstring)."""

    confidence: float  # mean top-class probability
    class_entropy: float  # nats; log(10) = 2.303 is perfect coverage
    frechet: float  # Fréchet distance to the reference features
    class_share: Tensor  # [10], share of images predicted as each digit


def sample_quality(classifier: nn.Module, images: Tensor,
                   reference: tuple[Tensor, Tensor]) -> SampleQuality:
    """Score ``images [N, 1, 28, 28]`` against ``reference = gaussian_stats(test features)``."""
    feats, probs = classifier_features(classifier, images)
    share = torch.bincount(probs.argmax(1), minlength=10).double() / len(probs)
    nonzero = share[share > 0]
    entropy = float(-(nonzero * nonzero.log()).sum()) + 0.0  # no -0.0 for a single class
    mu, cov = gaussian_stats(feats)
    return SampleQuality(confidence=float(probs.max(1).values.mean()),
                         class_entropy=entropy,
                         frechet=frechet_distance(mu, cov, *reference),
                         class_share=share.float())


def fit_code_gaussian(model: nn.Module, loader: DataLoader,
                      max_items: int | None = None) -> tuple[Tensor, Tensor]:
    """Mean ``[D]`` and covariance ``[D, D]`` of ``model.embed`` over ``loader``'s images.

    For an autoencoder, N(mean, covariance) is the fair baseline for sampling: the prior its
    codes actually follow, instead of a N(0, I) it was never asked to match.
    """
    codes, _ = collect_latents(model, loader, max_items=max_items)
    mu, cov = gaussian_stats(codes)
    return mu.float(), cov.float()


def decode_prior_samples(model: nn.Module, n: int, seed: int = 0,
                         gaussian: tuple[Tensor, Tensor] | None = None,
                         batch: int = 1000) -> Tensor:
    """Decode ``n`` codes ``z ~ N(0, I)`` (or ``N(mean, cov)`` for ``gaussian=(mean, cov)``).

    Returns images ``[n, 1, 28, 28]`` on the CPU; the draws are seeded and leave the global
    random state alone.
    """
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=generator)
    if gaussian is not None:
        mean, cov = (t.double() for t in gaussian)
        jitter = 1e-6 * torch.eye(len(mean), dtype=torch.float64) * max(
            float(torch.diagonal(cov).mean()), 1e-12)
        z = (mean + z.double() @ torch.linalg.cholesky(cov + jitter).T).float()
    out = []
    with inference(model, None) as device:
        for chunk in z.split(batch):
            out.append(model.decode(chunk.to(device)).float().cpu())
    return torch.cat(out)



def prior_sample_report(
    model: nn.Module,
    classifier: nn.Module,
    test_loader: DataLoader,
    train_loader: DataLoader | None = None,
    n: int = 10_000,
    seed: int = 0,
    reference_images: int | None = None,
) -> dict[str, dict[str, float | list[float]]]:
    """Score ``n`` decoded prior samples of ``model`` against the test images.

    Returns ``{"standard_normal": scores}`` for z ~ N(0, I) and, when ``train_loader`` is given
    and ``model`` is an autoencoder (no ``reparameterize``), also ``{"fitted_gaussian": ...}``
    for z ~ N(mean, cov) of its training codes (:func:`fit_code_gaussian`). ``scores`` holds
    ``confidence``, ``class_entropy``, ``frechet`` and ``class_share`` (a list of 10). The
    reference features come from the first ``reference_images`` test images (default: all).
    """
    test_images = torch.cat([x for x, *_ in test_loader])[:reference_images]
    reference = gaussian_stats(classifier_features(classifier, test_images)[0])
    priors: dict[str, tuple[Tensor, Tensor] | None] = {"standard_normal": None}
    if train_loader is not None and not hasattr(model, "reparameterize"):
        priors["fitted_gaussian"] = fit_code_gaussian(model, train_loader)
    report = {}
    for name, gaussian in priors.items():
        images = decode_prior_samples(model, n, seed=seed, gaussian=gaussian)
        q = sample_quality(classifier, images, reference)
        report[name] = {"confidence": q.confidence, "class_entropy": q.class_entropy,
                        "frechet": q.frechet, "class_share": q.class_share.tolist(),
                        "samples": n, "seed": seed}
    return report
