"""Every shipped checkpoint by name, and what model it holds.

:class:`Spec` and :data:`PRETRAINED`: every checkpoint of ``data/pretrained/`` by name, with what
it is (type, latent size, reconstruction loss, beta, dataset). The files themselves are found,
verified and downloaded by :mod:`helper_lib.assets.pretrained` and loaded by
:func:`helper_lib.checkpoints.load_pretrained`. :data:`SWEEP` names notebook 07's models,
:data:`LECTURE_VAE` and :data:`FASHION_VAE` those of notebooks 06 and 09. The three types of
model a spec names are :data:`helper_lib.model_types.MODEL_TYPES`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..model_types import MODEL_TYPES

__all__ = ["Spec", "LECTURE_VAE", "FASHION_VAE", "LATENT_SIZES",
           "AE_LATENT_SIZES", "BETAS", "SWEEP", "PRETRAINED", "PRETRAINED_NAMES", "SWEEP_NAMES"]


@dataclass(frozen=True)
class Spec:
    """A shipped checkpoint: its name in ``data/pretrained/`` and what model it holds."""

    name: str
    model: str  # a key of MODEL_TYPES
    size: int  # latent_dim, or a classifier's feature_dim
    kind: str = "mse"  # a VAE's reconstruction loss
    beta: float = 1.0
    dataset: str = "mnist"

    @property
    def latent_dim(self) -> int:
        """The size of the code ``z`` (a classifier has none: ``ValueError``)."""
        if self.model == "classifier":
            raise ValueError(f"{self.name} is a classifier: it has no latent space")
        return self.size

    @property
    def label(self) -> str:
        """A short label for tables and plots, e.g. ``"VAE D=16 β=3"``."""
        text = f"{MODEL_TYPES[self.model].label} D={self.size}"
        if self.kind != "mse":
            text += f" {self.kind.upper()}"
        if self.beta != 1.0:
            text += f" β={self.beta:g}"
        return text

    def build(self) -> nn.Module:
        """A freshly initialized model of this spec's type and size."""
        return MODEL_TYPES[self.model].build(self.size)


LATENT_SIZES = (2, 4, 8, 16, 32)
AE_LATENT_SIZES = (2, 8, 32)
BETAS = (0.1, 0.3, 1.0, 3.0, 10.0, 784.0)


def _beta_name(beta: float) -> str:
    return f"sweep_vae_d16_beta{beta:g}".replace(".", "p")


#: The lecture's VAE (notebook 05's settings, 50 epochs at a constant rate), as notebooks 06 and
#: 09 use it.
LECTURE_VAE = Spec("conv_vae_mnist", "vae", 2)
#: Notebook 09's Fashion-MNIST VAE.
FASHION_VAE = Spec("fashion_vae_d16", "vae", 16, dataset="fashion-mnist")

#: Notebook 07's models ("measuring the claims"), all trained with ``--recipe fast``.
SWEEP: dict[str, Spec] = {
    **{f"vae_d{d}": Spec("conv_vae_mnist_fast" if d == 2 else f"sweep_vae_d{d}", "vae", d)
       for d in LATENT_SIZES},
    **{f"ae_d{d}": Spec(f"sweep_ae_d{d}", "autoencoder", d) for d in AE_LATENT_SIZES},
    **{f"vae_bce_d{d}": Spec(f"sweep_vae_bce_d{d}", "vae", d, kind="bce") for d in (2, 16)},
    **{f"vae_d16_beta{b:g}": Spec(_beta_name(b), "vae", 16, beta=b) for b in BETAS if b != 1},
}

#: Every checkpoint shipped in ``data/pretrained/``, by name.
PRETRAINED: dict[str, Spec] = {s.name: s for s in (
    LECTURE_VAE,
    Spec("conv_ae_mnist", "autoencoder", 2),
    Spec("classifier_mnist", "classifier", 128),
    Spec("binarized_vae_d32", "vae", 32, kind="bce", dataset="binarized-mnist"),
    *SWEEP.values(),
    FASHION_VAE,
    Spec("classifier_fashion", "classifier", 32, dataset="fashion-mnist"),
)}
PRETRAINED_NAMES = tuple(PRETRAINED)
#: The sweep's own files (its D = 2 VAE is ``conv_vae_mnist_fast``, notebook 05's fast recipe).
SWEEP_NAMES = tuple(s.name for s in SWEEP.values() if s.name.startswith("sweep_"))
