"""The latent explorer: its image follows the sliders; a PNG stands in where widgets cannot run."""

from __future__ import annotations

import pytest
import torch

from helper_lib.evaluate import collect_latents
from helper_lib.interactive import latent_explorer
from helper_lib.models import ConvVAE


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return ConvVAE(latent_dim=2).eval()


def test_without_ipywidgets_a_one_line_hint_and_a_picture(vae, monkeypatch, capsys):
    from matplotlib.figure import Figure

    from helper_lib import interactive

    monkeypatch.setattr(interactive, "widgets", None)
    codes = torch.randn(50, 2)
    picture = latent_explorer(vae, codes, torch.arange(50) % 10)
    assert isinstance(picture, Figure) and len(picture.axes) == 2
    assert picture.alt_text.endswith("z = (0.00, 0.00); beside it, a map of 50 codes of real "
                                     "images, coloured and labelled by digit, with a star at z")
    assert sorted(t.get_text() for t in picture.axes[0].texts) == [str(d) for d in range(10)]
    assert capsys.readouterr().out == interactive.WIDGETS_HINT + "\n"
    assert "pip install 'helper_lib[widgets]'" in interactive.WIDGETS_HINT


def test_the_image_follows_the_sliders(vae, mnist_loaders):
    pytest.importorskip("ipywidgets")
    codes, labels = collect_latents(vae, mnist_loaders[2], max_items=300)
    explorer = latent_explorer(vae, codes, labels)
    assert len(explorer.sliders) == 2 and explorer.map is not None
    before_png, before_map = explorer.digit.value, explorer.map.value
    explorer.sliders[0].value = 2.5  # as if the user dragged the slider
    explorer.sliders[1].value = -1.0
    torch.testing.assert_close(explorer.z(), torch.tensor([[2.5, -1.0]]))
    with torch.no_grad():
        expected = vae.decode(torch.tensor([[2.5, -1.0]]))[0, 0]
    torch.testing.assert_close(explorer.decoded(), expected)
    assert explorer.digit.value != before_png  # the shown image changed with z
    assert explorer.map.value != before_map  # and so did the star on the map
    explorer.sliders[0].value, explorer.sliders[1].value = 0.0, 0.0
    assert explorer.digit.value == before_png  # back at z = 0: the same picture again


def test_one_slider_per_dimension_and_a_static_fallback():
    pytest.importorskip("ipywidgets")
    torch.manual_seed(0)
    explorer = latent_explorer(ConvVAE(latent_dim=5).eval())
    assert len(explorer.sliders) == 5 and explorer.map is None
    bundle = explorer._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    alt = ("Latent explorer, a static picture (run the notebook to move the sliders): the image "
           "the decoder makes of the code its 5 sliders set")
    assert bundle[1]["image/png"]["alt"] == alt and data["text/plain"] == alt  # no repr
    assert bundle[1]["image/png"]["smallest_text_pt"] >= 9  # drawn, not a raster of rasters
    two = latent_explorer(ConvVAE(latent_dim=2).eval(), torch.randn(30, 2), torch.arange(30) % 10)
    two.sliders[0].value = 1.25
    assert two._repr_mimebundle_()[1]["image/png"]["alt"].endswith(
        "of z = (1.25, 0.00); beside it, a map of 30 codes of real images, coloured and "
        "labelled by digit, with a star at z")


def test_a_second_model_decodes_the_same_z_and_the_site_gets_settings_for_shipped_models():
    """compare= shows the other decoder's image of the same z (widget and picture); the
    display bundle carries the site panel's settings (EXPLORER_MIME) only when both models are
    shipped ones (load_pretrained tags them), since those are what the site exports."""
    pytest.importorskip("ipywidgets")
    from helper_lib.interactive import EXPLORER_MIME, site_settings
    from helper_lib.models import ConvAutoencoder

    torch.manual_seed(1)
    vae, ae = ConvVAE(latent_dim=2).eval(), ConvAutoencoder(latent_dim=2).eval()
    codes, labels = torch.randn(30, 2), torch.arange(30) % 10
    explorer = latent_explorer(vae, codes, labels, compare=ae)
    explorer.sliders[1].value = -1.5
    with torch.no_grad():
        want = ae.decode(torch.tensor([[0.0, -1.5]]))[0, 0]
    assert torch.allclose(explorer.decoded(ae), want)
    data, metadata = explorer._repr_mimebundle_()
    assert EXPLORER_MIME not in data  # made here, not shipped: the site keeps the picture
    assert "and the image the autoencoder makes of it" in metadata["image/png"]["alt"]
    vae.pretrained_name, ae.pretrained_name = "conv_vae_mnist", "conv_ae_mnist"
    settings = explorer._repr_mimebundle_()[0][EXPLORER_MIME]
    assert settings["models"] == ["conv_vae_mnist", "conv_ae_mnist"]
    assert settings["titles"] == ["VAE", "autoencoder"] and settings["z"] == [0.0, -1.5]
    assert settings["labels"] == labels.tolist() and len(settings["codes"]) == 30
    median_3 = codes[labels == 3].median(dim=0).values
    assert settings["medians"][3] == [3, *(round(v, 3) for v in median_3.tolist())]
    assert site_settings(ConvVAE(latent_dim=4), codes, labels, 3.0, [0.0] * 4) is None
    with pytest.raises(ValueError, match="the same z must fit both"):
        latent_explorer(vae, codes, labels, compare=ConvAutoencoder(latent_dim=4))
