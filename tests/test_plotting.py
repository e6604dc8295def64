import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from helper_lib import evaluate, plotting
from helper_lib.history import History
from helper_lib.models import ConvAutoencoder, ConvVAE

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the library must not call plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def history():
    h = History(("total", "reconstruction", "kl"))
    for i in range(300):
        h.batch["total"].append(100 / (1 + i) + 40)
        h.batch["reconstruction"].append(100 / (1 + i) + 35)
        h.batch["kl"].append(5 - 4 / (1 + i))
    h.batches_per_epoch = [100, 100, 100]
    return h


def test_training_loss_has_one_panel_per_component_and_an_epoch_axis(history, tmp_path):
    fig = plotting.plot_training_loss(history, path=tmp_path / "loss.png")
    assert isinstance(fig, Figure)
    main_axes = [ax for ax in fig.axes if ax.get_xlabel() == "iteration"]
    assert len(main_axes) == 3
    tops = [child for ax in main_axes for child in ax.child_axes]  # secondary x axes
    assert [top.get_xlabel() for top in tops] == ["epoch"] * 3
    # raw curve and running average
    assert len(main_axes[0].lines) == 2
    assert (tmp_path / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize("cls", [ConvVAE, ConvAutoencoder])
def test_model_figures_work_for_both_models(cls, mnist_loaders, tmp_path):
    torch.manual_seed(0)
    model = cls()
    _, _, test = mnist_loaders
    x, _ = next(iter(test))
    figs = {
        "rec": plotting.plot_reconstructions(model, x, n=15),
        "latent": plotting.plot_latent_space(model, test, max_items=500, lims=(-3, 3, -3, 3)),
        "samples": plotting.plot_samples(model, n=20, nrow=10),
        "manifold": plotting.plot_latent_manifold(model, n=5),
        "interp": plotting.plot_interpolation(model, x[0], x[1], steps=6),
        "points": plotting.plot_decoded_points(model, [[-2.5, 2.0]], path=tmp_path / "p.png"),
    }
    for fig in figs.values():
        assert isinstance(fig, Figure)
    assert (tmp_path / "p.png").is_file()
    ax = figs["latent"].axes[0]
    assert ax.get_xlim() == (-3, 3)
    assert ax.get_legend() is not None
    # reconstructions: a 2 x 15 grid of 28 x 28 tiles (+ 2 px padding)
    image = figs["rec"].axes[0].images[0].get_array()
    assert image.shape == (2 * 30 + 2, 15 * 30 + 2)
    # every class is labelled at its median code, and the manifold has z ticks
    texts = sorted(t.get_text() for t in ax.texts)
    codes, code_labels = plotting.collect_latents(model, test, max_items=500)
    assert texts == sorted(str(d) for d in code_labels.unique().tolist())
    three = next(t for t in ax.texts if t.get_text() == "3").get_position()
    torch.testing.assert_close(torch.tensor(three, dtype=torch.float32),
                               codes[code_labels == 3].median(dim=0).values)
    manifold = figs["manifold"].axes[0]
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 5))
    assert [t.get_text() for t in manifold.get_xticklabels()] == [f"{q:.2f}" for q in quantiles]
    assert manifold.get_xlabel() == "$z_1$" and "81 %" in manifold.get_title()
    # the interpolation strip: both originals and the six decoded points
    strip = figs["interp"].axes[0].images[0].get_array()
    assert strip.shape == (30 + 2, 8 * 30 + 2)


def test_latent_space_draws_into_a_given_axes(mnist_loaders):
    _, _, test = mnist_loaders
    fig, axes = plt.subplots(1, 2)
    out = plotting.plot_latent_space(ConvVAE(), test, max_items=200, ax=axes[1])
    assert out is fig
    assert axes[1].collections and not axes[0].collections


def test_latent_space_plots_precomputed_codes_without_encoding_again(mnist_loaders, monkeypatch):
    _, _, test = mnist_loaders
    model = ConvVAE()
    latents = evaluate.collect_latents(model, test, max_items=300)
    monkeypatch.setattr(plotting, "collect_latents", lambda *a, **k: pytest.fail("re-encoded"))
    fig = plotting.plot_latent_space(model, latents=latents)
    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert points == 300
    with pytest.raises(ValueError, match="loader"):
        plotting.plot_latent_space(model)
    with pytest.raises(ValueError, match="labels"):
        plotting.plot_latent_space(model, latents=(latents[0], latents[1][:10]))


def test_latent_plots_refuse_other_dimensions(mnist_loaders):
    _, _, test = mnist_loaders
    with pytest.raises(ValueError, match="2-D"):
        plotting.plot_latent_space(ConvVAE(latent_dim=3), test, max_items=10)
    with pytest.raises(ValueError, match="latent_dim"):
        plotting.plot_latent_manifold(ConvVAE(latent_dim=3))


def test_bce_vs_mse_marks_each_targets_entropy_and_zero():
    import math

    fig = plotting.plot_bce_vs_mse(targets=(0.2, 0.4))
    ax_b, ax_m = fig.axes
    markers = [line for line in ax_b.lines if line.get_marker() == "o"]
    for line, t in zip(markers, (0.2, 0.4), strict=True):
        entropy = -(t * math.log(t) + (1 - t) * math.log(1 - t))  # BCE at a perfect match
        assert line.get_xdata()[0] == pytest.approx(t)
        assert line.get_ydata()[0] == pytest.approx(entropy, rel=1e-5)  # 0.500, 0.673
    labels = ax_b.get_legend_handles_labels()[1]
    assert labels == ["target 0.2 (minimum 0.500)", "target 0.4 (minimum 0.673)"]
    assert not ax_b.texts  # no value labels on the plot, where they cut the curves
    curves = [line for line in ax_m.lines if line.get_marker() != "o"]
    x, y = curves[0].get_xdata(), curves[0].get_ydata()
    assert y.min() == pytest.approx(0.0, abs=1e-4) and x[y.argmin()] == pytest.approx(0.2, abs=0.01)


def test_kl_surface_has_its_minimum_at_the_prior():
    fig = plotting.plot_kl_surface()
    ax = fig.axes[0]
    star = [line for line in ax.lines if line.get_marker() == "*"][0]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (0, 0)
    contour = ax.collections[0]  # the filled contours start at the KL's minimum, 0
    assert contour.levels[0] == 0.0


def test_sample_histogram_is_a_density_against_the_target_pdf():
    fig = plotting.plot_sample_histogram(torch.randn(1000) * 2 + 1, 1.0, 2.0)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    widths = [p.get_width() for p in ax.patches]
    assert sum(h * w for h, w in zip(heights, widths, strict=True)) == pytest.approx(1.0)
    pdf = ax.lines[0]
    assert max(pdf.get_ydata()) == pytest.approx(1 / (2.0 * (2 * torch.pi) ** 0.5), rel=1e-3)


def test_latent_space_is_drawn_to_scale_with_the_legend_outside():
    codes, labels = torch.randn(200, 2), torch.arange(200) % 10
    fig = plotting.plot_latent_space(ConvVAE(), latents=(codes, labels), lims=(-4, 4, -2, 2))
    ax = fig.axes[0]
    assert ax.get_aspect() == 1.0  # circles look round
    fig.canvas.draw()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [str(d) for d in range(10)]
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # hides no codes
    bare = plotting.plot_latent_space(ConvVAE(), latents=(codes, labels), legend=False)
    assert bare.axes[0].get_legend() is None


def test_a_single_image_is_drawn_large_enough_to_see():
    one = plotting.plot_images(torch.rand(1, 1, 28, 28))
    many = plotting.plot_images(torch.rand(20, 1, 28, 28), nrow=10)
    assert min(one.get_size_inches()) >= 2.4
    assert many.get_size_inches()[0] == pytest.approx(6.0)  # 0.6 in per image


def check_recipes_figure(fig, runs, test_loss, constant_lr):
    """``fig`` is plot_recipes' figure of ``runs`` (label -> History): on the left each run's
    loss per epoch and its test loss as a star, on the right its learning rate, each run in one
    colour of its own and named in both legends."""
    import numpy as np

    assert len(fig.axes) == 2
    left, right = fig.axes
    on_left = {line.get_label(): line for line in left.get_lines()}
    on_right = {line.get_label(): line for line in right.get_lines()}
    legend = []
    for label, history in runs.items():
        curve = on_left.pop(f"{label}: {history.epochs} epochs", None)
        assert curve, f"no loss curve of {label!r} on the left, only {sorted(on_left)}"
        np.testing.assert_array_equal(curve.get_xdata(), np.arange(1, history.epochs + 1))
        np.testing.assert_array_equal(curve.get_ydata(), history.train[history.names[0]])
        legend.append(curve.get_label())
        if label in test_loss:
            star = on_left.pop(f"{label}, test set: {test_loss[label]:.2f}", None)
            assert star, f"no test-set star of {label!r} on the left, only {sorted(on_left)}"
            assert (list(star.get_xdata()), list(star.get_ydata())) == (
                [history.epochs], [test_loss[label]])
            assert star.get_color() == curve.get_color() and star.get_marker() == "*"
            legend.append(star.get_label())
        rate = on_right.pop(label, None)
        assert rate, f"no learning rate of {label!r} on the right, only {sorted(on_right)}"
        assert rate.get_color() == curve.get_color()
        if history.lr:
            steps = np.arange(len(history.lr)) / history.batches_per_epoch[0]
            np.testing.assert_allclose(rate.get_xdata(), steps, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(rate.get_ydata(), history.lr)
        else:
            assert list(rate.get_xdata()) == [0, history.epochs]
            assert list(rate.get_ydata()) == [constant_lr[label]] * 2
    assert on_left == {} and on_right == {}, "nothing drawn but the runs"
    assert len({line.get_color() for line in right.get_lines()}) == len(runs)
    assert [t.get_text() for t in left.get_legend().get_texts()] == legend
    assert [t.get_text() for t in right.get_legend().get_texts()] == list(runs)
    lowest = min([h.train[h.names[0]][-1] for h in runs.values()] + list(test_loss.values()))
    assert left.get_ylim() == (lowest - 1.5, lowest + 12)  # zoomed on the end of training
    assert (left.get_xlabel(), right.get_ylabel()) == ("epoch", "Adam's learning rate")


def test_plot_recipes_draws_each_runs_losses_and_learning_rates():
    from helper_lib.history import History
    from helper_lib.plotting import plot_recipes

    onecycle = History(("total", "kl"), train={"total": [60.0, 45.5, 41.25], "kl": [1, 2, 3]},
                       epoch_seconds=[1.0] * 3, batches_per_epoch=[2] * 3,
                       lr=[1e-4, 3e-3, 6e-3, 2e-3, 5e-4, 1e-6])
    constant = History(("total",), train={"total": [58.0, 47.0]}, epoch_seconds=[1.0] * 2,
                       batches_per_epoch=[4] * 2)
    runs = {"fast": onecycle, "lecture": constant}
    fig = plot_recipes(runs, test_loss={"fast": 40.5}, constant_lr={"lecture": 5e-4})
    check_recipes_figure(fig, runs, {"fast": 40.5}, {"lecture": 5e-4})


def test_the_palettes_keep_every_pair_apart_for_colour_blind_readers():
    """Each pair of the digits' ten colours, and of the series' four, stays at least
    CVD_THRESHOLD apart in CAM02-UCS under simulated protanopia, deuteranopia and tritanopia;
    matplotlib's tab10, which the digits used before, does not (the measure can fail)."""
    from helper_lib.tools.accessibility import CVD_THRESHOLD, cvd_separation

    for palette in (plotting.DIGIT_COLOURS, plotting.SERIES_COLOURS):
        worst = cvd_separation(palette)
        assert all(d >= CVD_THRESHOLD for d, _, _ in worst.values()), worst
    tab10 = cvd_separation([plt.get_cmap("tab10")(i) for i in range(10)])
    assert round(tab10["protanomaly"][0], 1) == 1.6 and tab10["protanomaly"][1:] == (1, 2)
    assert round(tab10["deuteranomaly"][0], 1) == 4.3 and tab10["deuteranomaly"][1:] == (6, 9)


def test_the_latent_space_tells_the_digits_apart_by_label_as_well_as_colour():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(30)
    codes = torch.randn(300, 2, generator=g) * 0.3 + torch.stack(
        [torch.cos(labels * 0.63), torch.sin(labels * 0.63)], 1) * 3
    fig = plotting.plot_latent_space(ConvVAE(latent_dim=2), latents=(codes, labels), legend=False)
    ax = fig.axes[0]
    colours = [matplotlib.colors.to_hex(c.get_facecolor()[0], keep_alpha=False)
               for c in ax.collections]
    assert colours == [c.lower() for c in plotting.DIGIT_COLOURS]
    texts = {t.get_text(): t for t in ax.texts}
    assert sorted(texts) == [str(d) for d in range(10)]  # each cluster named on the plot
    assert all(t.get_color() == "black" for t in texts.values())


def _running_mean_ends(values, window):
    import numpy as np

    avg = np.convolve(values, np.ones(window) / window, mode="valid")
    return avg[0], avg[-1]


def test_the_loss_trends_name_a_dip_and_a_peak_where_the_running_mean_has_one():
    """describe_trends (printed beside the loss curves, and their alt text): a KL that falls
    from 3 to 1 over batches 1-50, then climbs back to 3, dips; a series that rises to 9 and
    falls back to 2 peaks. The window is 10 batches: the running mean at batch b averages
    batches b-9..b."""
    h = History(("kl", "total"))
    h.batch["kl"] = [3 - 2 * i / 49 for i in range(50)] + [1 + 2 * i / 49 for i in range(50)]
    h.batch["total"] = [2 + 7 * min(i, 99 - i) / 49.5 for i in range(100)]
    h.batches_per_epoch = [100]
    kl, total = plotting.describe_trends(h, averaging_iterations=10).split("\n")
    low = sum(h.batch["kl"][45:55]) / 10  # the window that straddles the turn: batches 46-55
    assert min(sum(h.batch["kl"][i:i + 10]) / 10 for i in range(91)) == pytest.approx(low)
    assert kl == (f"KL divergence (running mean of 10 batches): starts at "
                  f"{sum(h.batch['kl'][:10]) / 10:.3g}, dips to {low:.3g} at batch 55, ends at "
                  f"{sum(h.batch['kl'][-10:]) / 10:.3g}")
    assert ", peaks at " in total and ", dips to " not in total
    early = History(("kl",), batch={"kl": h.batch["total"][:60] + h.batch["kl"][10:]},
                    batches_per_epoch=[150])  # a peak, then a dip: named in that order
    assert ", peaks at" in plotting.describe_trends(early, averaging_iterations=10).split(
        ", dips to")[0]
    assert total.startswith("Combined loss (running mean of 10 batches): starts at")
    mono = History(("kl",), batch={"kl": [float(i) for i in range(100)]}, batches_per_epoch=[100])
    assert plotting.describe_trends(mono, averaging_iterations=10) == (
        "KL divergence (running mean of 10 batches): starts at 4.5, ends at 94.5")


def test_the_alt_text_reads_math_labels_as_words_and_says_each_figures_numbers():
    """mathtext becomes words ("0.5²", not the "0.52" that dropping "^" gave); the histogram of
    samples, the BCE curves and the code histograms state the numbers a reader needs: the
    samples' mean and sd, each BCE minimum (the target's entropy, from torch.distributions), and
    each dimension's mean and sd (unbiased, as torch's std and the legend)."""
    assert plotting._plain("N(1.5, 0.5$^2$) density") == "N(1.5, 0.5²) density"
    assert plotting._plain("draws from $q(z \\mid x)$") == "draws from q(z | x)"
    assert plotting._plain("$\\log \\sigma^2$") == "log σ²"
    assert plotting._plain("prediction $\\hat{x}$") == "prediction x\u0302"
    s = torch.tensor([1.0, 2.0, 3.0, 6.0])
    fig = plotting.plot_sample_histogram(s, 1.5, 0.5, bins=4)
    assert fig.alt_text == ("Samples vs. target density: a histogram of 4 samples in 4 bars (mean "
                            "3.000, sd 2.160) drawn over the density curve of N(1.5, 0.5²)")
    entropy = [torch.distributions.Bernoulli(probs=torch.tensor(t)).entropy().item()
               for t in (0.2, 0.4)]
    alt = plotting.plot_bce_vs_mse(targets=(0.2, 0.4)).alt_text
    assert f"not zero: {entropy[0]:.3f} (target 0.2), {entropy[1]:.3f} (target 0.4)." in alt
    codes = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    alt = plotting.plot_code_histograms(codes).alt_text
    assert alt == ("One histogram per dimension of 3 codes μ, each over the N(0, 1) density of "
                   f"the prior: μ1 mean 2.00, sd 2.00; μ2 mean 2.00, sd {3 ** 0.5:.2f}")


def test_the_medians_in_the_alt_text_are_those_the_map_labels():
    """describe_medians (printed beside the map) and the alt text: each digit's median code; a
    zoomed view names only the medians inside it."""
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    codes = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 5.0], [-3.0, 4.0], [-2.0, 2.0],
                          [-1.0, 3.0]])
    assert plotting.describe_medians(codes, labels) == "0 (1.0, 1.0), 1 (-2.0, 3.0)"
    assert plotting.describe_medians(codes, labels, (0, 2, 0, 2)) == "0 (1.0, 1.0)"
    fig = plotting.plot_latent_space(ConvVAE(latent_dim=2), latents=(codes, labels),
                                     lims=(-0.5, 1.5, -0.5, 1.5), title="zoom")
    assert fig.alt_text.endswith("; the digits' medians: 0 (1.0, 1.0)")
    fig = plotting.plot_latent_space(ConvVAE(latent_dim=2), latents=(codes, labels),
                                     lims=(5, 6, 5, 6), title="zoom")
    assert fig.alt_text.endswith("; no digit's median lies in this view")


def test_every_figure_says_what_it_shows_from_the_data_drawn(history):
    """The alt text (fig.alt_text, and the notebook output's image/png metadata "alt") is
    written from the data: the training loss's running means, computed here independently;
    and for any figure, no placeholder, no figure repr, at most MAX_ALT characters."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats

    fig = plotting.plot_training_loss(history, keys=["total", "kl"])
    t0, t1 = _running_mean_ends(history.batch["total"], 60)
    k0, k1 = _running_mean_ends(history.batch["kl"], 60)
    assert fig.alt_text == (f"Training loss per batch over 3 epochs (300 batches), running "
                            f"means of 60 batches. Combined loss starts at {t0:.3g}, ends at "
                            f"{t1:.3g}. KL divergence starts at {k0:.3g}, ends at {k1:.3g}")
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(20)
    codes = torch.randn(200, 2, generator=g) + labels[:, None].float()
    latent = plotting.plot_latent_space(ConvVAE(latent_dim=2), latents=(codes, labels))
    assert "200 images" in latent.alt_text and "9 (9." in latent.alt_text
    bump = plotting.plt.figure()  # a density ends where it starts: its top is what to say
    z = torch.linspace(-4, 5, 181, dtype=torch.float64)
    bump.gca().plot(z, torch.distributions.Normal(1.5, 0.5).log_prob(z).exp(),
                    label="N(1.5, 0.5)")
    bump.gca().set(title="Density", xlabel="$z$")
    assert plotting.describe_figure(bump) == ("Density (against z): N(1.5, 0.5) peaks at 0.798 "
                                              "at z = 1.5")
    for figure in (fig, latent, plotting.plot_kl_surface(), plotting.plot_bce_vs_mse()):
        alt = figure.alt_text
        assert 20 < len(alt) <= plotting.MAX_ALT and not alt.startswith(("<Figure", "No desc"))
        assert any(ch.isdigit() for ch in alt), alt
        assert figure.smallest_text_pt >= plotting.MIN_TEXT_PT == 9.0  # was 7 pt (contours)
    shell = InteractiveShell.instance()  # as a notebook shows it: PNG, with the alt beside it
    select_figure_formats(shell, {"png"})
    data, metadata = shell.display_formatter.format(fig)
    assert data["image/png"].startswith("iVBOR") and data["text/plain"] == fig.alt_text
    assert metadata == {"image/png": {"alt": fig.alt_text, "smallest_text_pt": 9.0}}
