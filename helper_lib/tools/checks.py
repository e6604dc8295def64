"""Checks for the exercises: ``check("03.1", answer_1)`` in a notebook, and the grader's scores.

Both paths score the same plain data (:func:`helper_lib.tools.exercises.answer_to_plain`), so a
notebook's verdict and the grader's agree. Each reference is computed here, independently of
the notebooks' solutions: from a closed form, from PyTorch itself (``ConvTranspose2d``,
``torch.distributions``, autograd), or from the shipped models and data (full mode only; in
smoke mode the notebook's models are quick sketches, so those checks say so instead).

A wrong answer gets a hint that points at the step that went wrong, never at the value.
With ``VAE_CHECK_STRICT=1`` (the test suite) a rejected answer raises ``AssertionError``, so a
check that rejects its own solution fails CI.
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..utils import env_flag, smoke_mode
from .exercises import EXERCISES, answer_to_plain, exercise, function_inputs

__all__ = ["STRICT_ENV_VAR", "Verdict", "check", "score"]

#: ``VAE_CHECK_STRICT=1``: a rejected answer raises (the test suite sets it).
STRICT_ENV_VAR = "VAE_CHECK_STRICT"


@dataclass(frozen=True)
class Verdict:
    """A check's outcome. ``status``: ``correct``, ``wrong``, ``unanswered`` or ``full mode
    only``; ``message``: what to do next (a hint when wrong)."""

    exercise: str
    status: str
    message: str

    @property
    def points(self) -> int:
        """1 for a correct answer, else 0."""
        return int(self.status == "correct")

    def _ipython_display_(self) -> None:
        """Shown once: check() has printed it, so a notebook cell that ends with check(...)
        adds no second copy of it as the cell's result."""

    def __str__(self) -> str:
        """One line, wrapped at 80 characters (a slide's width)."""
        mark = {"correct": "✓", "wrong": "✗"}.get(self.status, "·")
        return textwrap.fill(f"{mark} exercise {self.exercise}: {self.status}. {self.message}",
                             width=80, subsequent_indent="  ", break_on_hyphens=False)


class _Wrong(Exception):
    """Raised by a checker with the hint to show."""


# ---------------------------------------------------------------------------------- helpers
def _numbers(plain: Any, shape: tuple[int, ...] | None, what: str) -> torch.Tensor:
    """The plain answer as a float64 tensor of ``shape`` (``None``: any), else :class:`_Wrong`."""
    try:
        t = torch.tensor(plain, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise _Wrong(f"expected {what}; got something that is not numbers") from None
    if shape is not None and tuple(t.shape) != shape:
        raise _Wrong(f"expected {what} (shape {list(shape)}), got shape {list(t.shape)}")
    if not torch.isfinite(t).all():
        raise _Wrong("the answer holds NaN or infinite values")
    return t


def _close(answer: torch.Tensor, reference: torch.Tensor, atol: float, rtol: float = 0.0) -> bool:
    return bool(torch.allclose(answer, reference.double(), atol=atol, rtol=rtol))


def _bools(plain: Any, n: int, what: str) -> list[bool]:
    if not isinstance(plain, list) or len(plain) != n or not all(isinstance(b, bool)
                                                                  for b in plain):
        raise _Wrong(f"expected {what}: {n} booleans (True/False), in a tuple or list")
    return plain


def _int_list(plain: Any, what: str) -> list[int]:
    if not isinstance(plain, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                              for v in plain):
        raise _Wrong(f"expected {what}: a list of ints")
    return sorted(plain)


def _calls(plain: Any) -> list[Any]:
    if isinstance(plain, dict) and "not_a_function" in plain:
        raise _Wrong(f"expected a function (def ...), got a {plain['not_a_function']}")
    if not isinstance(plain, dict) or not isinstance(plain.get("calls"), list):
        raise _Wrong("expected a function")
    for result in plain["calls"]:
        if isinstance(result, dict) and "error" in result:
            raise _Wrong(f"your function raised {result['error']}")
    return plain["calls"]


@functools.cache
def _shipped(name: str) -> torch.nn.Module:
    from ..checkpoints import load_pretrained

    return load_pretrained(name, "cpu").eval()  # raises if the file cannot be had


@functools.cache
def _mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of the MNIST ``split`` (``train`` in the loader's seeded order)."""
    from ..data import get_dataloaders

    train, _, test = get_dataloaders("mnist", batch_size=256, seed=123)
    if split == "test":
        return test.dataset.tensors
    return train.dataset.tensors


def loader_of(images: torch.Tensor, labels: torch.Tensor) -> Any:
    """A plain, unshuffled loader of ``images [N, 1, 28, 28]`` and ``labels [N]``."""
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(images, labels), batch_size=256)


def _judge(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped classifier's (confidences [N], classes [N]) for ``images [N, 1, 28, 28]``."""
    with torch.no_grad():
        probs = torch.softmax(_shipped("classifier_mnist")(images.float()), dim=1)
    conf, classes = probs.max(dim=1)
    return conf, classes


# ------------------------------------------------------------------------- the checkers
def _c01_1(plain: Any) -> str:
    from ..models import ConvAutoencoder, ConvVAE, count_parameters

    a = _numbers(plain, (2,), "two ints (autoencoder, VAE)")
    ref = torch.tensor([count_parameters(ConvAutoencoder(10)), count_parameters(ConvVAE(10))])
    if _close(a, ref, 0.5):
        return f"the gap is {int(ref[1] - ref[0]):,}: one more Linear(3136, 10) for log σ²"
    d2 = torch.tensor([count_parameters(ConvAutoencoder(2)), count_parameters(ConvVAE(2))])
    if _close(a, d2, 0.5):
        raise _Wrong("these are the counts at latent_dim = 2: build both models with 10")
    raise _Wrong("count with count_parameters(ConvAutoencoder(10)) and count_parameters("
                 "ConvVAE(10)); the order is (autoencoder, VAE)")


def _c01_2(plain: Any) -> str:
    results = _calls(plain)
    for (size, stride, padding, kernel), got in zip(function_inputs("01.2"), results,
                                                    strict=True):
        layer = torch.nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding)
        want = layer(torch.zeros(1, 1, size, size)).shape[-1]
        if not isinstance(got, (int, float)) or got != want:
            raise _Wrong(f"for (size={size}, stride={stride}, padding={padding}, "
                         f"kernel={kernel}) ConvTranspose2d gives {want}, your function "
                         f"{got!r}: check which terms the stride multiplies and the padding's "
                         "sign")
    return "it agrees with ConvTranspose2d on 8 layer settings"


def _c01_3(plain: Any) -> str:
    got = _bools(plain, 3, "(autoencoder same z, VAE same z, VAE same mu)")
    if got == [True, False, True]:
        return "the VAE draws a fresh ε on every call; μ itself is deterministic"
    raise _Wrong("compare with torch.equal, not ==; the models' outputs are (z, ...) for the "
                 "autoencoder and (z, mu, logvar, ...) for the VAE, and train mode vs eval "
                 "mode does not change whether ε is drawn")


def _c02_1(plain: Any) -> str:
    images = _numbers(plain, None, "images [100, 1, 28, 28]")
    if tuple(images.shape) != (100, 1, 28, 28):
        raise _Wrong(f"expected images of shape [100, 1, 28, 28], got {list(images.shape)}")
    conf, classes = _judge(images)
    share = torch.bincount(classes, minlength=10).double() / len(classes)
    entropy = float(-(share[share > 0] * share[share > 0].log()).sum())
    # measured on the shipped autoencoder, 100 draws, 8 seeds: 2.05-2.17 nats from the fitted
    # Gaussian, 1.76-1.90 from N(0, I) (log 10 = 2.30 for ten equal classes)
    if entropy >= 1.97 and conf.mean() >= 0.75:
        return (f"the classes the judge sees have an entropy of {entropy:.2f} nats (ln 10 = "
                "2.30): the draws now reach the classes out on the arms")
    raise _Wrong(f"the judge's classes have an entropy of only {entropy:.2f} nats (confidence "
                 f"{conf.mean():.2f}): draw from N(mean of the codes, covariance of the codes), "
                 "100 draws, and decode them with the autoencoder, not the VAE")


@functools.cache
def _nearest_distances() -> torch.Tensor:
    vae = _shipped("conv_vae_mnist")
    real = _mnist("test")[0][:2000].reshape(2000, -1)
    z = torch.randn(300, vae.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.stack([torch.cdist(vae.decode(s * z).reshape(300, -1), real).min(dim=1)
                            .values.pow(2).mean() for s in (0.5, 1.0, 3.0)])


def _c02_2(plain: Any) -> str:
    a = _numbers(plain, (3,), "three distances, for s = 0.5, 1, 3")
    if _close(a, _nearest_distances(), 1.0):
        return ("s = 1 lands closest to real digits; the crowded centre (s = 0.5) and the "
                "far-out draws (s = 3) decode farther from any of them")
    raise _Wrong("decode s * z for 300 draws z ~ N(0, I); for each image take the smallest "
                 "squared distance (summed over pixels: torch.cdist, squared) to the first "
                 "2,000 test images, average, in the order s = 0.5, 1, 3")


def _c02_3(plain: Any) -> str:
    results = _calls(plain)
    for (mu, logvar), got in zip(function_inputs("02.3"), results, strict=True):
        want = mu.pow(2).mean(0) + logvar.exp().mean(0)
        g = _numbers(got, tuple(want.shape), f"{want.numel()} numbers, one per dimension")
        if not _close(g, want, 1e-5, 1e-4):
            raise _Wrong("z = mu + sigma * eps with eps independent of mu and E[eps^2] = 1: "
                         "expand E[z_j^2] and average over the images, per dimension; "
                         "remember sigma^2 = exp(logvar)")
    return "E[z²] = E[μ²] + E[σ²] per dimension"


def _c03_1(plain: Any) -> str:
    if not isinstance(plain, list) or len(plain) != 2:
        raise _Wrong("expected a pair: ([three sigmas], one log-variance)")
    sigmas = _numbers(plain[0], (3,), "three sigmas")
    logvar = _numbers(plain[1], (), "one log-variance")
    if not _close(sigmas, torch.exp(torch.tensor([-4.0, 0.0, 2.0]) / 2), 1e-3):
        raise _Wrong("σ² = exp(log σ²), and σ is its square root")
    if not _close(logvar, torch.tensor(2 * math.log(0.1)), 1e-3):
        raise _Wrong("the sigmas are right; for σ = 0.1 take the log of σ², not of σ")
    return "σ = exp(log σ² / 2)"


def _c03_2(plain: Any) -> str:
    results = _calls(plain)
    for (_mu, logvar, eps), got in zip(function_inputs("03.2"), results, strict=True):
        want = 0.5 * torch.exp(logvar / 2) * eps
        g = _numbers(got, tuple(want.shape), f"a gradient of shape {list(want.shape)}")
        if not _close(g, want, 1e-6, 1e-4):
            raise _Wrong("make logvar require grad, build z from *the given* eps (not a fresh "
                         "draw), call z.sum().backward() and return logvar.grad")
    return "autograd's gradient is ½ σ ε, entry by entry"


def _c03_3(plain: Any) -> str:
    a = _numbers(plain, None, "two numbers")
    a = a.reshape(-1)
    if a.numel() != 2:
        raise _Wrong("expected the two entries of mu's gradient")
    if _close(a, torch.tensor([0.5, -1.0]), 1e-4):
        return "only the KL's gradient, μ, reaches μ through sample()"
    raise _Wrong("that is not the gradient of the sample() run: which of the two terms of the "
                 "loss still depends on mu when z carries no graph?")


def _c04_1(plain: Any) -> str:
    a = _numbers(plain, (4,), "(target, its BCE, BCE at 0, BCE at 1)")
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    floor = -(t * torch.log(t.clamp_min(1e-300)) + (1 - t) * torch.log((1 - t).clamp_min(1e-300)))
    ref = torch.tensor([float(t[floor.argmax()]), float(floor.max()), 0.0, 0.0])
    if _close(a, ref, 2e-3):
        return "the BCE of a perfect prediction is the entropy of the target: ln 2 at 0.5"
    raise _Wrong("evaluate F.binary_cross_entropy(t, t) for targets t from 0 to 1: where is it "
                 "largest, and what is it there and at the ends?")


def _c04_2(plain: Any) -> str:
    a = _numbers(plain, (), "one number")
    from torch.distributions import Normal, kl_divergence

    q = Normal(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.5]))
    ref = kl_divergence(q, Normal(0.0, 1.0)).sum()
    if _close(a, ref, 1e-3):
        return "the closed form agrees with torch.distributions"
    raise _Wrong("per dimension ½(μ² + σ² − 1 − ln σ²), summed over the two dimensions; "
                 "note ln σ², not ln σ")


def _c04_3(plain: Any) -> str:
    results = _calls(plain)
    for (d,), got in zip(function_inputs("04.3"), results, strict=True):
        g = _numbers(got, None, "a number")
        if not _close(g.reshape(()), torch.tensor(1.0 / d), 1e-9, 1e-6):
            raise _Wrong(f"for latent_dim = {d} your β is {float(g.reshape(-1)[0]):g}: the "
                         "mean over D dimensions is the sum times what?")
    return "averaging over D dimensions is β = 1/D"


@functools.cache
def _walk_changes() -> torch.Tensor:
    vae = _shipped("conv_vae_mnist")
    z = torch.stack([torch.linspace(-6, 6, 13), torch.zeros(13)], dim=1)
    with torch.no_grad():
        images = vae.decode(z)
    return (images[1:] - images[:-1]).abs().mean(dim=(1, 2, 3))


def _c05_1(plain: Any) -> str:
    a = _numbers(plain, (12,), "12 numbers")
    if _close(a, _walk_changes(), 1e-3):
        return "the images change most near the origin and hardly at all far out"
    raise _Wrong("decode torch.linspace(-6, 6, 13) on z_1 with z_2 = 0 (model.decode, no_grad), "
                 "then average |image[i + 1] − image[i]| over all pixels, for i = 0, ..., 11")


@functools.cache
def _misread_class_means() -> list[int]:
    from ..evaluate import collect_latents

    vae = _shipped("conv_vae_mnist")
    images, labels = _mnist("test")
    codes, code_labels = collect_latents(vae, loader_of(images[:2000], labels[:2000]))
    means = torch.stack([codes[code_labels == d].mean(dim=0) for d in range(10)])
    with torch.no_grad():
        _, classes = _judge(vae.decode(means))
    return [d for d in range(10) if int(classes[d]) != d]


def _c05_2(plain: Any) -> str:
    got = _int_list(plain, "the misread digits")
    ref = _misread_class_means()
    if got == ref:
        return "these classes share their region of the 2-D space with another"
    raise _Wrong("average mu over the first 2,000 test images of each class, decode the ten "
                 "means, and ask the shipped classifier which digit each one is; list the "
                 "digits d where it does not say d")


@functools.cache
def _iw_reference() -> torch.Tensor:
    from ..evaluate import importance_weighted_log_likelihood

    images, labels = _mnist("test")
    loader = loader_of(images[:100], labels[:100])  # the estimate is seeded inside
    return torch.tensor([importance_weighted_log_likelihood(_shipped("conv_vae_mnist"), loader,
                                                            k=k) for k in (1, 5, 25)])


def _c06_1(plain: Any) -> str:
    a = _numbers(plain, (3,), "three numbers, for k = 1, 5, 25")
    ref = _iw_reference()
    if _close(a, ref, 0.5) and bool((a[1:] > a[:-1]).all()):
        return "it grows with k, by less each time"
    raise _Wrong("use importance_weighted_log_likelihood(model, test_loader, k=k, "
                 "max_items=100) for k = 1, 5, 25; it is log p(x), so negative and rising "
                 "with k")


@functools.cache
def _ink_ratio() -> torch.Tensor:
    from ..analysis.attributes import ink
    from ..evaluate import importance_weighted_log_likelihood

    images, labels = _mnist("test")
    elbo = importance_weighted_log_likelihood(_shipped("conv_vae_mnist"),
                                              loader_of(images[:200], labels[:200]), k=1,
                                              per_image=True)  # seeded inside: reproducible
    return ink(images[:200][torch.argsort(elbo)[:8]]).mean() / ink(images[:200]).mean()


def _c06_2(plain: Any) -> str:
    a = _numbers(plain, (), "one ratio")
    ref = _ink_ratio()
    if _close(a, ref, 0.05):
        return f"the hardest digits carry about {float(ref):.1f} times the average ink"
    raise _Wrong("take the eight images with the lowest elbo (torch.argsort), sum each image's "
                 "pixels (ink) and divide their mean by the mean ink of all IW_ITEMS images")


def _c07_1(plain: Any) -> str:
    got = _int_list(plain, "dimension indices")
    variances = _shipped("sweep_vae_d16_beta3").checkpoint_metadata["evaluation"][
        "active_units"]["variances"]
    ref = [j for j, v in enumerate(variances) if v > 0.01]
    if got == ref:
        return f"{len(ref)} of 16 dimensions carry information"
    raise _Wrong("a dimension j is active when the variance of mu_j over the test set exceeds "
                 "0.01; indices start at 0")


def _c07_2(plain: Any) -> str:
    from ..analysis.sample_quality import frechet_distance, gaussian_stats

    results = _calls(plain)
    for (x,), got in zip(function_inputs("07.2"), results, strict=True):
        g = _numbers(got, (2,), "two distances (random halves, first vs second half)")
        half = len(x) // 2
        first_second = frechet_distance(*gaussian_stats(x[:half]), *gaussian_stats(x[half:]))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(123))
        halves = frechet_distance(*gaussian_stats(x[order[:half]]),
                                  *gaussian_stats(x[order[half:]]))
        if abs(float(g[1]) - first_second) > 1e-4 * first_second:
            raise _Wrong("the second number: gaussian_stats of features[:N // 2] against "
                         "features[N // 2:], then frechet_distance")
        if not halves / 4 <= float(g[0]) <= 4 * halves + 1e-3:
            raise _Wrong("the first number: split a random permutation (torch.randperm) of "
                         "the rows in two halves, not the rows in their order")
    return "on two shifted populations the ordered split sees the shift; a random one does not"


@functools.cache
def _fitted_trace() -> float:
    from ..analysis.sample_quality import fit_code_gaussian

    images, labels = _mnist("train")
    _, cov = fit_code_gaussian(_shipped("sweep_vae_d16"),  # 2,000 images: within 0.1 of 10,000
                               loader_of(images[:2000], labels[:2000]))
    return float(torch.trace(cov))


def _c07_3(plain: Any) -> str:

    if not isinstance(plain, list) or len(plain) != 2 or not isinstance(plain[1], bool):
        raise _Wrong("expected a pair: (trace, a boolean)")
    trace = _numbers(plain[0], (), "the trace")
    if abs(float(trace) - _fitted_trace()) > 0.5:
        raise _Wrong("fit_code_gaussian(vae, train_eval, max_items=FIT_IMAGES) returns (mean, "
                     "covariance): take the trace of the covariance")
    if plain[1]:
        raise _Wrong("the trace is right; compare the two Fréchet distances again: lower is "
                     "better")
    return "the fitted Gaussian leaves out each image's own σ², so it is narrower than q(z)"


@functools.cache
def _second_axis_opens() -> int:
    from ..analysis.film import load_film
    from ..assets.pretrained import pretrained_file

    film = load_film(pretrained_file("conv_vae_mnist_fast.snapshots.npz"))
    smaller = [float(torch.linalg.eigvalsh(torch.cov(torch.from_numpy(m.astype("float32")).T))
                     .sqrt()[0]) for m in film.mu]
    return next(int(s) for s, v in zip(film.steps, smaller, strict=True) if v > 0.5)


def _c08_1(plain: Any) -> str:
    if not isinstance(plain, int) or isinstance(plain, bool):
        raise _Wrong("expected a step, an int")
    if plain == _second_axis_opens():
        return "the second axis opens as the KL climbs"
    raise _Wrong("both axes spread more than 0.5 when the *smaller* principal standard "
                 "deviation does (eigvalsh sorts ascending); report film.steps at that snapshot")


@functools.cache
def _low_share() -> torch.Tensor:
    from ..analysis.posterior import aggregate_log_density

    vae16 = _shipped("sweep_vae_d16")
    with torch.no_grad():
        mu, logvar = vae16.encode(_mnist("test")[0][:1000])
    g = torch.Generator().manual_seed(123)
    zq = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
    tau = torch.quantile(aggregate_log_density(mu, logvar, zq, leave_out=torch.arange(1000)),
                         0.01)
    zp = torch.randn(1000, 16, generator=g)
    return (aggregate_log_density(mu, logvar, zp) < tau).double().mean()


def _c09_1(plain: Any) -> str:
    a = _numbers(plain, (), "a share")
    if _close(a, _low_share(), 0.02):
        return "more than in 2-D, but still few"
    raise _Wrong("score q's own draws with their own Gaussian left out (leave_out), take the "
                 "1 % quantile as the threshold, and count the prior draws below it")


@functools.cache
def _inks_along() -> list[torch.Tensor]:
    from ..analysis.attributes import ink

    vae16 = _shipped("sweep_vae_d16")
    with torch.no_grad():
        codes_test = vae16.embed(_mnist("test")[0][:300])
        return [torch.stack([ink(vae16.decode(codes_test + m * vector)).mean()
                             for m in (-2, -1, 0, 1, 2)])
                for (vector,) in function_inputs("09.2")]


def _c09_2(plain: Any) -> str:
    results = _calls(plain)
    for ref, got in zip(_inks_along(), results, strict=True):
        g = _numbers(got, (5,), "five inks, one per multiple")
        if not _close(g, ref, 0.5):
            raise _Wrong("for each m in SLANT_MULTIPLES decode codes_test + m * vector (the "
                         "vector passed in, not the notebook's) with vae16 and average ink() "
                         "over the decoded images; keep N_ARITH = 300")
    return "the ink moves with the vector: compare the slant vector's range with the ink vector's"


_CHECKERS: dict[str, Callable[[Any], str]] = {
    "01.1": _c01_1, "01.2": _c01_2, "01.3": _c01_3, "02.1": _c02_1, "02.2": _c02_2,
    "02.3": _c02_3, "03.1": _c03_1, "03.2": _c03_2, "03.3": _c03_3, "04.1": _c04_1,
    "04.2": _c04_2, "04.3": _c04_3, "05.1": _c05_1, "05.2": _c05_2, "06.1": _c06_1,
    "06.2": _c06_2, "07.1": _c07_1, "07.2": _c07_2, "07.3": _c07_3, "08.1": _c08_1,
    "09.1": _c09_1, "09.2": _c09_2,
}
assert set(_CHECKERS) == set(EXERCISES)


def score(exercise_id: str, plain: Any, smoke: bool = False) -> Verdict:
    """Score one exercise's plain answer (:func:`helper_lib.tools.exercises.answer_to_plain`).

    ``smoke``: the answer comes from a smoke-mode run; exercises whose reference is a shipped
    model then get ``full mode only`` instead of a verdict.
    """
    ex = exercise(exercise_id)
    if isinstance(plain, dict) and (plain.get("unanswered") or plain.get("missing")):
        return Verdict(ex.id, "unanswered", f"not answered yet: set {ex.variable} to "
                                            f"{ex.expects}")
    if isinstance(plain, dict) and "too_large" in plain:
        return Verdict(ex.id, "wrong", f"the answer is too large: {plain['too_large']}")
    if isinstance(plain, dict) and "unsupported" in plain:
        return Verdict(ex.id, "wrong", f"expected {ex.expects}, got a {plain['unsupported']}")
    if smoke and ex.full_mode_only:
        return Verdict(ex.id, "full mode only", "this check compares with the shipped models, "
                                                "so it runs in full mode only (VAE_SMOKE=0)")
    try:
        return Verdict(ex.id, "correct", _CHECKERS[ex.id](plain))
    except _Wrong as hint:
        return Verdict(ex.id, "wrong", f"hint: {hint}")


def check(exercise_id: str, answer: Any) -> Verdict:
    """Check ``answer`` to exercise ``exercise_id`` (``"NN.k"``) and print the verdict.

    In smoke mode (``VAE_SMOKE=1``) the checks that compare with the shipped models say that
    they run in full mode only. With ``VAE_CHECK_STRICT=1`` a wrong answer raises.

    Raises:
        KeyError: no such exercise.
        AssertionError: strict mode, and the answer is wrong.
    """
    verdict = score(exercise_id, answer_to_plain(exercise_id, answer), smoke=smoke_mode())
    print(verdict)
    if verdict.status == "wrong" and env_flag(STRICT_ENV_VAR, False):
        raise AssertionError(str(verdict))
    return verdict
