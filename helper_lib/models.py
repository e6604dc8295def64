"""The lecture's convolutional autoencoder (L16) and convolutional VAE (L17.5).

Both share the same convolutional stacks; they differ only in the bottleneck:

* ``ConvAutoencoder``: one ``Linear(3136, latent_dim)`` gives the code ``z``.
* ``ConvVAE``: two separate ``Linear(3136, latent_dim)`` layers give ``mu`` and ``logvar``,
  and ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``.

Shapes (``B`` = batch, ``D`` = ``latent_dim``): images ``[B, 1, 28, 28]`` in ``[0, 1]``;
codes ``[B, D]``.

The stacks are built from ``helper_lib.fast.layers``: ``ConvStack`` (an ``nn.Sequential``) and
``ConvTranspose2d`` are drop-in versions of torch's classes that run faster on CPU and compute
the same thing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# CPU-fast drop-ins for nn.Sequential and nn.ConvTranspose2d (same weights, same results).
from .fast.layers import ConvStack, ConvTranspose2d, Sigmoid
from .utils import check_whole_number

__all__ = [
    "ConvAutoencoder", "ConvVAE", "MnistClassifier", "ConvStack", "ConvTranspose2d", "Trim",
    "count_parameters", "layer_shapes",
]

_FLAT = 64 * 7 * 7  # 3136 features after the encoder's conv stack


class Trim(nn.Module):
    """Crop ``[B, C, H, W]`` to ``[B, C, 28, 28]`` (the decoder produces 29 x 29)."""

    def __init__(self, size: int = 28) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, : self.size, : self.size]


def _encoder_stack() -> ConvStack:
    """``[B, 1, 28, 28] -> [B, 3136]``: four 3x3 convolutions, 28 -> 28 -> 14 -> 7 -> 7."""
    return ConvStack(
        nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1),
        nn.LeakyReLU(0.01),
        nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1),
        nn.LeakyReLU(0.01),
        nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1),
        nn.LeakyReLU(0.01),
        nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1),
        nn.Flatten(),
    )


def _decoder_stack(latent_dim: int) -> ConvStack:
    """``[B, D] -> [B, 1, 28, 28]`` in (0, 1): 7 -> 7 -> 13 -> 27 -> 29, trimmed to 28.

    ``ConvTranspose2d`` and ``ConvStack`` come from ``helper_lib.fast.layers``: a faster bias
    gradient on CPU, and each convolution fused with the LeakyReLU after it on CPU; otherwise
    torch's layers. ``Sigmoid`` (also from there) computes in fp32 under bf16 autocast, so
    outputs near 1 do not round to exactly 1.
    """
    return ConvStack(
        nn.Linear(latent_dim, _FLAT),
        nn.Unflatten(1, (64, 7, 7)),
        ConvTranspose2d(64, 64, kernel_size=3, stride=1, padding=1),
        nn.LeakyReLU(0.01),
        ConvTranspose2d(64, 64, kernel_size=3, stride=2, padding=1),
        nn.LeakyReLU(0.01),
        ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=0),
        nn.LeakyReLU(0.01),
        ConvTranspose2d(32, 1, kernel_size=3, stride=1, padding=0),
        Trim(28),
        Sigmoid(),  # in fp32 even under bf16 autocast, see helper_lib.fast.layers.Sigmoid
    )


class ConvAutoencoder(nn.Module):
    """The L16 convolutional autoencoder, x -> z -> x_hat.

    200,963 parameters at ``latent_dim=2``.
    """

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        check_whole_number("latent_dim", latent_dim, 1, "the lecture uses 2")
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(_encoder_stack(), nn.Linear(_FLAT, latent_dim))
        self.decoder = _decoder_stack(latent_dim)

    def encode(self, x: Tensor) -> Tensor:
        """``[B, 1, 28, 28] -> z [B, D]``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """``z [B, D] -> x_hat [B, 1, 28, 28]`` in (0, 1)."""
        return self.decoder(z)

    def embed(self, x: Tensor) -> Tensor:
        """The deterministic code used for plots: here simply ``z``, ``[B, D]``."""
        return self.encode(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, 1, 28, 28] -> (z [B, D], x_hat [B, 1, 28, 28])``."""
        z = self.encode(x)
        return z, self.decode(z)


class ConvVAE(nn.Module):
    """The L17.5 convolutional VAE. 207,237 parameters at ``latent_dim=2``.

    ``forward`` returns ``(z, mu, logvar, x_hat)``, each ``[B, D]`` except ``x_hat``
    (``[B, 1, 28, 28]``). ``z`` is a fresh random sample on every call, in train and eval mode.
    """

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        check_whole_number("latent_dim", latent_dim, 1, "the lecture uses 2")
        self.latent_dim = latent_dim
        self.encoder = _encoder_stack()
        self.z_mean = nn.Linear(_FLAT, latent_dim)
        self.z_log_var = nn.Linear(_FLAT, latent_dim)
        self.decoder = _decoder_stack(latent_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, 1, 28, 28] -> (mu [B, D], logvar [B, D])``, the parameters of q(z | x)."""
        h = self.encoder(x)
        return self.z_mean(h), self.z_log_var(h)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """``z = mu + sigma * eps`` with ``sigma = exp(logvar / 2)``, ``eps ~ N(0, I)``; ``[B, D]``.

        ``eps`` is drawn with ``randn_like``, so it lands on ``mu``'s device and dtype; the
        randomness sits in ``eps`` alone, so gradients flow to both ``mu`` and ``logvar``.
        """
        eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Tensor) -> Tensor:
        """``z [B, D] -> x_hat [B, 1, 28, 28]`` in (0, 1)."""
        return self.decoder(z)

    def embed(self, x: Tensor) -> Tensor:
        """The deterministic code used for plots: the posterior mean ``mu``, ``[B, D]``."""
        return self.encode(x)[0]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``x [B, 1, 28, 28] -> (z, mu, logvar, x_hat)``."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return z, mu, logvar, self.decode(z)


class MnistClassifier(nn.Module):
    """A small CNN digit classifier, the judge of generated samples (notebook 07).

    Two blocks of two 3x3 convolutions with ReLU and 2x2 max pooling (28 -> 14 -> 7), then
    ``Linear(3136, feature_dim)`` + ReLU, the *features* used for the Fréchet distance, and
    ``Linear(feature_dim, 10)``, the logits. 467,818 parameters at ``feature_dim=128``.
    Shapes: ``x [B, 1, 28, 28] -> logits [B, 10]``; :meth:`features` gives ``[B, feature_dim]``.
    """

    def __init__(self, feature_dim: int = 128) -> None:
        super().__init__()
        check_whole_number("feature_dim", feature_dim, 1)
        self.feature_dim = feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(_FLAT, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, 10)

    def features(self, x: Tensor) -> Tensor:
        """``x [B, 1, 28, 28] -> [B, feature_dim]``, the penultimate layer (after its ReLU)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, 1, 28, 28] -> logits [B, 10]``."""
        return self.head(self.body(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_shapes(model: nn.Module, x: Tensor) -> list[tuple[str, str, tuple[int, ...]]]:
    """Run ``x`` through ``model`` and record every layer's output, in call order.

    Returns rows ``(name, layer, output_shape)``, e.g.
    ``("encoder.0", "Conv2d(1, 32, ...)", (B, 32, 28, 28))``. Only leaf layers are listed
    (not the containers), so the rows read like the architecture from input to output.
    """
    rows: list[tuple[str, str, tuple[int, ...]]] = []
    hooks = []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            def hook(mod: nn.Module, inp: object, out: Tensor, name: str = name) -> None:
                rows.append((name, repr(mod), tuple(out.shape)))
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows
