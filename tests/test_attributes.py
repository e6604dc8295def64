"""Pixel attributes (ink, slant) and attribute vectors for latent arithmetic (notebook 07)."""

from __future__ import annotations

import pytest
import torch

from helper_lib.analysis.attributes import attribute_vector, ink, slant


def _line(top_col: float, bottom_col: float, width: int = 1) -> torch.Tensor:
    """A 28 x 28 image with a straight stroke from row 4 to row 23, ``width`` pixels wide."""
    image = torch.zeros(1, 28, 28)
    for r in range(4, 24):
        c = round(top_col + (bottom_col - top_col) * (r - 4) / 19)
        image[0, r, c:c + width] = 1.0
    return image


def test_slant_is_zero_upright_positive_leaning_right_and_measures_the_shear():
    upright, right, left = _line(14, 14), _line(18, 10), _line(10, 18)
    s = slant(torch.stack([upright, right, left]))
    assert s[0] == pytest.approx(0.0, abs=1e-6)
    assert s[1] > 0.3 and s[2] < -0.3
    assert s[1] == pytest.approx(-s[2], rel=1e-5)
    assert s[1] == pytest.approx(8 / 19, abs=0.03)  # 8 columns over 19 rows


def test_ink_grows_with_stroke_width():
    thin, thick = _line(14, 14, width=1), _line(14, 14, width=3)
    assert ink(torch.stack([thin, thick])).tolist() == [20.0, 60.0]


def test_attribute_vector_points_from_the_least_to_the_most():
    codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 5.0], [4.0, 5.0]])
    values = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(attribute_vector(codes, values, share=0.2),
                               torch.tensor([4.0, 5.0]))
    torch.testing.assert_close(attribute_vector(codes, values, share=0.4),
                               torch.tensor([3.0, 5.0]))
    with pytest.raises(ValueError, match="share"):
        attribute_vector(codes, values, share=0.7)


def test_brightness_and_width_measure_grey_level_and_horizontal_spread():
    from helper_lib.analysis.attributes import brightness, width

    narrow, wide = torch.zeros(1, 28, 28), torch.zeros(1, 28, 28)
    narrow[0, :, 13:15] = 1.0
    wide[0, :, 4:24] = 1.0
    assert brightness(torch.stack([narrow]))[0] == pytest.approx(2 / 28)
    # uniform over c columns: standard deviation sqrt((c^2 - 1) / 12)
    assert width(torch.stack([narrow, wide])).tolist() == pytest.approx(
        [(3 / 12) ** 0.5, (399 / 12) ** 0.5], rel=1e-5)


class _ShiftDecoder(torch.nn.Module):
    """A decoder that draws a vertical bar at column ``14 + 4 z_1``: moving z moves the bar."""

    latent_dim = 2

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # where the model lives: the CPU

    def decode(self, z):
        cols = torch.arange(28, dtype=torch.float32)
        centre = 14 + 4 * z[:, :1]
        rows = torch.exp(-((cols[None] - centre) ** 2))  # [N, 28]
        return rows[:, None, None, :].expand(len(z), 1, 28, 28).clone()


class _LeftRight(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):  # class 1 if the bar's centre is right of the middle, else 0
        centre = (x[:, 0, 0] * torch.arange(28.0)).sum(1) / x[:, 0, 0].sum(1)
        return torch.stack([14 - centre, centre - 14], dim=1)


def test_latent_arithmetic_measures_the_decoded_attribute_and_the_classifier_agreement():
    from helper_lib.analysis.attributes import latent_arithmetic

    def centre(images):
        return (images[:, 0, 0] * torch.arange(28.0)).sum(1) / images[:, 0, 0].sum(1)

    codes = torch.tensor([[0.5, 0.0], [1.2, 0.0], [-0.5, 0.0], [0.25, 0.0]])
    labels = torch.tensor([1, 1, 0, 1])
    out = latent_arithmetic(_ShiftDecoder(), codes, torch.tensor([1.0, 0.0]), [-1, 0, 1], centre,
                            labels=labels, classifier=_LeftRight(), keep=2)
    expected = 14 + 4 * (codes[:, 0].mean() + torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(out.attribute, expected, atol=1e-3, rtol=0)
    assert out.agreement.tolist() == pytest.approx([0.5, 1.0, 0.75])  # -1 moves 2 bars left
    assert out.images.shape == (3, 2, 1, 28, 28)
    assert out.attribute_se[1] > 0


def test_a_per_class_attribute_vector_leaves_out_what_separates_the_classes():
    # Two classes far apart in z_2; within each, the attribute grows along z_1. Pooled, the
    # top 10 % are all class 1 and the vector points along z_2 too; per class it does not.
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(2000, generator=g)
    cls = (torch.arange(2000) % 2)
    codes = torch.stack([z1, 5.0 * cls + 0.1 * torch.randn(2000, generator=g)], dim=1)
    values = z1 + 10.0 * cls  # class 1 simply has more of it
    pooled = attribute_vector(codes, values, 0.1)
    per_class = attribute_vector(codes, values, 0.1, groups=cls)
    assert pooled[1] == pytest.approx(5.0, abs=0.1)
    assert per_class[1] == pytest.approx(0.0, abs=0.05)
    assert per_class[0] == pytest.approx(2 * 1.755, rel=0.06)  # E[z | z > q90] for N(0, 1)
