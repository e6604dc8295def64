"""What the course has, in one place: its three types of model and every shipped checkpoint.

* :data:`MODEL_TYPES`: ``"vae"`` (L17.5's ``ConvVAE``), ``"autoencoder"`` (L16's
  ``ConvAutoencoder``) and ``"classifier"`` (``MnistClassifier``, which judges samples): the
  class, how to build one, what its ``forward`` returns, and the loss it is trained on.
  :func:`model_type` says which one a model is; :func:`check_outputs` refuses a model of
  another type with a clear message.
* :class:`Spec` and :data:`PRETRAINED`: every checkpoint of ``data/pretrained/`` by name, with
  what it is (type, latent size, reconstruction loss, beta, dataset). The files themselves are
  found, verified and downloaded by :mod:`helper_lib.pretrained` and loaded by
  :func:`helper_lib.checkpoints.load_pretrained`. :data:`SWEEP` names notebook 07's models,
  :data:`LECTURE_VAE` and :data:`FASHION_VAE` those of notebooks 06 and 09.

One word for each thing: a model's *type* is ``"vae"``, ``"autoencoder"`` or ``"classifier"``;
``kind`` is only ever the VAE's reconstruction loss, ``"mse"`` or ``"bce"``. (The command
line's ``--model conv-vae`` and ``conv-ae`` are older spellings of ``vae`` and ``autoencoder``,
kept because the shipped models' recorded commands use them.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from .models import ConvAutoencoder, ConvVAE, MnistClassifier

__all__ = ["ModelType", "MODEL_TYPES", "CLI_ALIASES", "model_type", "model_class",
           "check_outputs", "Spec", "LECTURE_VAE", "FASHION_VAE", "LATENT_SIZES",
           "AE_LATENT_SIZES", "BETAS", "SWEEP", "PRETRAINED", "PRETRAINED_NAMES", "SWEEP_NAMES"]


@dataclass(frozen=True)
class ModelType:
    """One type of model: how to build it and what it returns."""

    name: str  # "vae", "autoencoder" or "classifier"
    cls: type[nn.Module]
    size: str  # the constructor's one argument: "latent_dim" or "feature_dim"
    outputs: tuple[str, ...]  # what forward returns, in order
    label: str  # short, for tables and plots
    words: str  # in a sentence: "a VAE"
    loss: str | None  # the training loss, for a checkpoint's metadata (None: the VAE's kind)

    def build(self, size: int) -> nn.Module:
        """A freshly initialized model, e.g. ``MODEL_TYPES["vae"].build(2)``."""
        return self.cls(**{self.size: size})


MODEL_TYPES: dict[str, ModelType] = {t.name: t for t in (
    ModelType("vae", ConvVAE, "latent_dim", ("z", "mu", "logvar", "x_hat"), "VAE", "a VAE", None),
    ModelType("autoencoder", ConvAutoencoder, "latent_dim", ("z", "x_hat"), "AE",
              "an autoencoder", "mse-per-pixel"),
    ModelType("classifier", MnistClassifier, "feature_dim", ("logits",), "classifier",
              "a classifier", "cross-entropy"),
)}

#: The command line's older names for two types, as the shipped models' commands spell them.
CLI_ALIASES = {"conv-vae": "vae", "conv-ae": "autoencoder"}


def model_class(class_name: str) -> type[nn.Module] | None:
    """The class a checkpoint's ``model_class`` names (``"ConvVAE"``, ...), or ``None``."""
    return next((t.cls for t in MODEL_TYPES.values() if t.cls.__name__ == class_name), None)


def model_type(model: nn.Module) -> ModelType:
    """The :class:`ModelType` of ``model`` (a subclass counts as its base).

    Raises:
        TypeError: ``model`` is none of the course's three classes.
    """
    for t in MODEL_TYPES.values():
        if isinstance(model, t.cls):
            return t
    raise TypeError(f"{type(model).__name__} is not one of the course's models "
                    f"({', '.join(t.cls.__name__ for t in MODEL_TYPES.values())})")


def _signature(t: ModelType) -> str:
    return "logits [B, 10]" if t.name == "classifier" else f"({', '.join(t.outputs)})"


def check_outputs(out: Any, model: nn.Module, expected: str) -> tuple[Tensor, ...]:
    """Return ``out``, what ``model`` returned, as a tuple if it is what an ``expected`` model
    returns (``"vae"``: ``(z, mu, logvar, x_hat)``; ``"autoencoder"``: ``(z, x_hat)``;
    ``"classifier"``: logits ``[B, 10]``).

    Anything else raises a ``TypeError`` that names the functions to use instead, so
    ``train_vae(ConvAutoencoder(), ...)`` fails on its first batch with a clear message rather
    than an unpacking error.
    """
    want = MODEL_TYPES[expected]
    if expected == "classifier":
        if isinstance(out, Tensor) and out.ndim == 2 and out.shape[1] == 10:
            return (out,)
        raise TypeError(f"{type(model).__name__}.forward returned "
                        f"{'a tuple' if isinstance(out, tuple) else type(out).__name__}, but "
                        f"this function needs {want.words} returning {_signature(want)}, like "
                        f"{want.cls.__name__}.")
    if isinstance(out, tuple) and len(out) == len(want.outputs):
        return out
    got = f"a {len(out)}-tuple" if isinstance(out, tuple) else f"a {type(out).__name__}"
    msg = (f"{type(model).__name__}.forward returned {got}, but this function needs "
           f"{want.words} whose forward returns {_signature(want)}, like {want.cls.__name__}.")
    for other in MODEL_TYPES.values():
        if (other.name not in (expected, "classifier") and isinstance(out, tuple)
                and len(out) == len(other.outputs)):
            msg += (f" {_signature(other)} is what {other.words} returns: use "
                    f"train_{other.name} and evaluate_{other.name} for it.")
    raise TypeError(msg)


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
