"""Pixel attributes (ink, slant) and attribute vectors for latent arithmetic (notebook 07)."""

from __future__ import annotations

import pytest
import torch

from helper_lib.attributes import attribute_vector, ink, slant


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
