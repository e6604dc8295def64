"""Notebook 06's library side: the sweep's specs, its reports and its figures."""

from __future__ import annotations

import pytest
import torch

from helper_lib.analysis.registry import PRETRAINED_NAMES, SWEEP, SWEEP_NAMES
from helper_lib.analysis.report import evaluation_report, reconstruction_at_mean
from helper_lib.analysis.sweep import get_model, get_report
from helper_lib.analysis.sweep_plots import (
    latent_pca,
    plot_against_latent_size,
    plot_latent_pca,
    plot_model_rows,
    plot_rate_distortion,
    plot_sample_quality,
)
from helper_lib.evaluate import collect_latents
from helper_lib.models import ConvAutoencoder, ConvVAE


def test_every_sweep_model_is_a_shipped_name_and_the_labels_say_what_it_is():
    names = {spec.name for spec in SWEEP.values()}
    assert names - {"conv_vae_mnist_fast"} == set(SWEEP_NAMES)
    assert names <= set(PRETRAINED_NAMES)
    assert SWEEP["vae_d16_beta784"].label == "VAE D=16 β=784"
    assert SWEEP["vae_bce_d2"].label == "VAE D=2 BCE"
    assert SWEEP["vae_d16_beta0.1"].name == "sweep_vae_d16_beta0p1"


@pytest.fixture(scope="module")
def tiny(mnist_loaders):
    train, _, test = mnist_loaders
    vae = get_model(SWEEP["vae_d4"], train, smoke=True, epochs=1)
    ae = get_model(SWEEP["ae_d2"], train, smoke=True, epochs=1)
    return vae, ae, train, test


def test_smoke_models_are_trained_here_with_the_specs_settings(tiny):
    vae, ae, _, _ = tiny
    assert isinstance(vae, ConvVAE) and vae.latent_dim == 4 and not vae.training
    assert isinstance(ae, ConvAutoencoder) and ae.latent_dim == 2


def test_reconstruction_at_mean_is_the_summed_squared_error_of_decode_embed(tiny):
    vae, _, _, test = tiny
    x = next(iter(test))[0][:64]
    with torch.no_grad():
        expected = (vae.decode(vae.embed(x)) - x).square().flatten(1).sum(1).double()
    got = reconstruction_at_mean(vae, [(x, None)])
    assert got["images"] == 64
    assert got["mean"] == pytest.approx(expected.mean().item(), rel=1e-4)
    assert got["se"] == pytest.approx(expected.std().item() / 8, rel=1e-3)


def test_a_report_is_measured_when_none_is_stored_and_read_when_one_is(tiny):
    vae, ae, train, test = tiny
    report = get_report(vae, SWEEP["vae_d4"], test, k=3, iw_images=32, max_images=128)
    assert report["test_se"]["images"] == 128 and report["iw_log_likelihood"]["images"] == 32
    assert report["iw_log_likelihood"]["k"] == 3
    assert report["active_units"]["of"] == 4
    assert report["test"]["total"] == pytest.approx(
        report["test"]["reconstruction"] + report["test"]["kl"])
    vae.checkpoint_metadata = {"evaluation": {**report, "marker": 1}}
    assert get_report(vae, SWEEP["vae_d4"], test)["marker"] == 1  # stored: not re-measured
    del vae.checkpoint_metadata
    ae_report = evaluation_report(ae, test, max_images=128)
    assert set(ae_report) == {"test", "reconstruction_at_mean"}


def _report(rec, kl, au, of, fd=100.0):
    scores = {"confidence": 0.9, "class_entropy": 2.2, "frechet": fd, "class_share": [0.1] * 10}
    return {"reconstruction_at_mean": {"mean": rec, "se": 0.1},
            "test": {"kl": kl, "total": rec + kl}, "test_se": {"kl": 0.01},
            "iw_log_likelihood": {"nats_per_image": -400.0 - rec, "se": 0.2, "k": 100},
            "active_units": {"count": au, "of": of},
            "samples": {"standard_normal": scores, "fitted_gaussian": scores}}


def test_sweep_figures_draw_what_they_are_given(tiny):
    vae, ae, _, test = tiny
    vae_reports = {d: _report(40.0 / d, 2.0 * d, d - 1, d) for d in (2, 4, 8)}
    fig = plot_against_latent_size(vae_reports, {2: _report(30.0, 0, 0, 2)})
    assert len(fig.axes) == 4
    assert list(fig.axes[0].lines[0].get_ydata()) == [20.0, 10.0, 5.0]
    assert [p.get_height() for p in fig.axes[3].patches] == [1, 3, 7]
    fig = plot_sample_quality({"VAE": {d: r["samples"]["standard_normal"]
                                       for d, r in vae_reports.items()}})
    assert list(fig.axes[0].lines[0].get_ydata()) == [100.0] * 3
    assert fig.alt_text.endswith("largest: VAE: 100.0 to 100.0, 0.900 to 0.900")
    slow = {d: {"frechet": 1157.6 / d, "confidence": 0.5 + d / 100, "class_entropy": 1.0}
            for d in (2, 32)}
    assert plot_sample_quality({"AE": slow}).alt_text.endswith(  # as the table: no 1.16e+03
        "largest: AE: 578.8 to 36.2, 0.520 to 0.820")
    fig = plot_rate_distortion({0.1: _report(5.0, 30.0, 16, 16), 10: _report(53.0, 0.0, 0, 16),
                                784: _report(53.0, 0.0, 0, 16)})
    assert [t.get_text() for t in fig.axes[0].texts] == ["β=0.1: 16/16 active",
                                                         "β=10, 784: 0/16 active"]
    assert fig.alt_text.endswith("β = 0.1 at (30.0, 5.0), 16 active; β = 10, 784 at (0.0, "
                                 "53.0), 0 active")
    images = next(iter(test))[0][:4]
    fig = plot_model_rows({"vae": vae, "ae": ae}, images, n_samples=5)
    assert fig.axes[2].get_ylabel() == "vae" and fig.axes[4].get_ylabel() == "ae"
    assert fig.axes[3].images[0].get_array().shape[1] == 5 * 28 + 6 * 2  # five samples
    assert fig.alt_text == ("4 test images, then one row per model (vae, ae): its "
                            "reconstructions of those images, and 5 images decoded from prior "
                            "samples")
    pca = latent_pca({"vae": vae}, test, max_items=200)["vae"]
    codes = collect_latents(vae, test, max_items=200)[0].double()
    assert pca.variance == pytest.approx(codes.var(0, unbiased=False).sum().item(), rel=1e-6)
    eig = torch.linalg.eigvalsh(torch.cov(codes.T)).flip(0)  # PCA's shares, independently
    assert pca.shares == pytest.approx((eig[:2] / eig.sum()).tolist(), rel=1e-4)
    fig = plot_latent_pca({"vae": vae}, test, max_items=200)
    assert len(fig.axes[0].collections[0].get_offsets()) == 200
    assert fig.alt_text.endswith(f"vae, variance {pca.variance:.3g}, PCs "
                                 f"{100 * pca.shares[0]:.0f} % + {100 * pca.shares[1]:.0f} %")


def test_the_log_likelihood_can_use_a_random_subset_of_the_test_set(tiny):
    vae, _, _, test = tiny
    first = evaluation_report(vae, test, k=2, iw_images=40, max_images=40)
    random = evaluation_report(vae, test, k=2, iw_images=40, max_images=40, iw_random=True)
    assert first["iw_log_likelihood"]["subset"] == "first"
    assert random["iw_log_likelihood"]["subset"] == "random (seed 0)"
    assert random["iw_log_likelihood"]["images"] == 40
    assert random["iw_log_likelihood"]["nats_per_image"] != first["iw_log_likelihood"][
        "nats_per_image"]


def test_get_model_and_get_classifier_accept_their_default_device():
    """Both defaulted to device="auto" and passed it on to ``Module.to``, which refused it."""
    from helper_lib.analysis.registry import LECTURE_VAE
    from helper_lib.analysis.sweep import get_classifier, get_model

    model = get_model(LECTURE_VAE, train_loader=None)  # shipped: no training, no loader needed
    assert not model.training and next(model.parameters()).device.type in ("cpu", "cuda", "mps")
    assert model.latent_dim == 2
    assert not get_classifier(train_loader=None).training
