"""The latent space forming: snapshot steps, the .npz file, the animation and the CLI's GIF."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from helper_lib import ConvVAE, train_vae
from helper_lib.analysis.film import (
    EARLY_STEPS,
    film_from_snapshots,
    lecture_snapshots,
    load_film,
    save_film,
    snapshot_steps,
)
from helper_lib.analysis.film_plots import animate_film, film_html
from helper_lib.data import get_dataloaders
from helper_lib.evaluate import quantile_grid
from helper_lib.tools.cli import main


def test_snapshot_steps_are_the_early_steps_then_every_epoch_end():
    steps = snapshot_steps(235, 12)  # the lecture's run: 235 batches of 256 per epoch
    assert steps[:len(EARLY_STEPS) + 1] == [*EARLY_STEPS, 235]
    assert steps[-1] == 2820 and len(steps) == len(EARLY_STEPS) + 12
    assert snapshot_steps(4, 2) == [0, 4, 5, 8]  # early steps past the run's end are dropped


def test_the_running_mean_keeps_the_ends_level():
    from helper_lib.analysis.film_plots import running_mean

    np.testing.assert_allclose(running_mean(np.full(10, 4.0), 5), np.full(10, 4.0))
    np.testing.assert_allclose(running_mean(np.arange(5.0), 3), [0.5, 1, 2, 3, 3.5])


def test_quantile_grid_is_laid_out_like_an_image_grid():
    z = quantile_grid(3, (0.1, 0.9))
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor([0.1, 0.5, 0.9]))
    assert z.shape == (9, 2)
    torch.testing.assert_close(z[:3, 0], q)  # z_1 grows to the right along a row
    torch.testing.assert_close(z[::3, 1], q.flip(0))  # z_2 shrinks downwards
    assert torch.all(z[:3, 1] == q[2])  # the top row has the largest z_2


@pytest.fixture(scope="module")
def small_film(tmp_path_factory):
    train, _, test = get_dataloaders(batch_size=64, train_subset=256, seed=2)
    images, labels = test.dataset.tensors
    snaps, index = lecture_snapshots(images, 2, len(train), 2, n_images=300, grid=4)
    model = ConvVAE()
    history = train_vae(model, train, epochs=2, seed=2, precision="fp32", device="cpu",
                        progress=False, snapshots=snaps)
    film = film_from_snapshots(snaps, labels[index], index, history)
    path = save_film(tmp_path_factory.mktemp("film") / "snapshots.npz", film)
    return path, snaps, labels[index], history, model


def test_a_film_round_trips_through_its_npz_file(small_film):
    path, snaps, labels, history, model = small_film
    film = load_film(path)
    assert film.steps.tolist() == [0, 4, 5, 8]  # 4 batches of 64 per epoch, 2 epochs
    assert film.mu.shape == (4, 300, 2) and film.mu.dtype == np.float16
    assert film.decoded.shape == (4, 16, 28, 28) and film.decoded.dtype == np.uint8
    assert np.all(film.decoded % 4 == 0)  # 64 grey levels
    raw = snaps.records[-1]["decoded"].numpy()
    assert np.all(np.abs(raw.astype(int) - film.decoded[-1]) < 4)
    np.testing.assert_array_equal(film.labels, labels.numpy())
    np.testing.assert_allclose(film.kl, history.batch["kl"], rtol=1e-6)
    assert film.batches_per_epoch == 4 and len(film.kl) == 8
    with torch.no_grad():  # the last snapshot is the trained model's code of those images
        mu = model.eval().embed(snaps.images).numpy()
    np.testing.assert_allclose(film.mu[-1].astype(np.float32), mu, atol=3e-3, rtol=2e-3)


def test_the_animation_shows_each_snapshot_with_the_kl_marker_at_its_step(small_film):
    film = load_film(small_film[0])
    anim = animate_film(film, kl_smooth=1)
    fig = anim._fig
    draw = anim._func
    for i in (1, 3):
        draw(i)
        scatter = fig.axes[0].collections[0]
        np.testing.assert_allclose(scatter.get_offsets(), film.mu[i].astype(np.float32))
        marker = fig.axes[2].lines[-1]
        step = int(film.steps[i])
        assert marker.get_xdata()[0] == step
        assert marker.get_ydata()[0] == pytest.approx(film.kl[step - 1])
        shown = fig.axes[1].images[0].get_array()
        assert shown.shape == (2 + 4 * 30, 2 + 4 * 30)  # a 4 x 4 grid of 28-px tiles, padded
        assert shown[2:30, 2:30].tolist() == film.decoded[i, 0].tolist()
    html = film_html(anim)
    assert html.count("data:image/png;base64") == len(film.steps) + 1  # + the static picture
    # without JavaScript the player's picture is the last frame, not an empty <img>
    last = re.findall(r'frames\[\d+\] = "(data:image/[^"]+)"', html)[-1]
    assert re.search(r'<img id="_anim_img\w+" src="([^"]+)"', html).group(1) == last
    # offline: matplotlib's own player would link Font Awesome from a CDN for its icons
    assert "font-awesome" in anim.to_jshtml()
    assert "font-awesome" not in html and "https://" not in html and "fa fa-" not in html
    assert html.count("<button") == 9 and "\u25b6" in html  # the play button has its icon


def test_the_film_command_writes_a_gif_with_one_frame_per_snapshot(small_film, tmp_path, capsys):
    from PIL import Image

    gif = tmp_path / "film.gif"
    assert main(["film", str(small_film[0]), "--out", str(gif), "--dpi", "30"]) == 0
    with Image.open(gif) as im:
        assert im.n_frames == 4
    assert "4 frames" in capsys.readouterr().out


def test_train_snapshots_flag_is_refused_for_an_autoencoder(tmp_path, capsys):
    code = main(["train", "--model", "conv-ae", "--epochs", "1", "--train-subset", "64",
                 "--snapshots", "--no-progress", "--out", str(tmp_path / "ae")])
    assert code == 2
    assert "--snapshots records the latent space of a VAE" in capsys.readouterr().err


def test_the_kl_parts_add_up_to_the_closed_form_kl(small_film):
    from helper_lib.analysis.film import kl_parts
    from helper_lib.losses import kl_divergence

    film = load_film(small_film[0])
    mean_part, var_part = kl_parts(film)
    for i in (0, len(film.steps) - 1):
        mu = torch.from_numpy(film.mu[i].astype(np.float64))
        logvar = torch.from_numpy(film.logvar[i].astype(np.float64))
        total = kl_divergence(mu, logvar).mean().item()  # [N] -> mean over the images
        assert mean_part[i] + var_part[i] == pytest.approx(total, rel=1e-9)
        assert mean_part[i] == pytest.approx(0.5 * (mu**2).sum(1).mean().item())
