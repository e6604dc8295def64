"""Fixed grids of latent codes, shared by the manifold plot and the training snapshots."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["quantile_grid"]


def quantile_grid(n: int = 15, quantiles: tuple[float, float] = (0.05, 0.95)) -> Tensor:
    """``[n * n, 2]`` codes at evenly spaced N(0, 1) quantiles along each axis, row by row from
    the top (largest ``z_2``) and left to right (growing ``z_1``): the layout of an image grid,
    in which each image covers an equal share of the prior's mass."""
    axis = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(*quantiles, n))
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
