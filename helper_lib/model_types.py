"""The course's three types of model, and what each one's ``forward`` returns.

:data:`MODEL_TYPES`: ``"vae"`` (L17.5's ``ConvVAE``), ``"autoencoder"`` (L16's
``ConvAutoencoder``) and ``"classifier"`` (``MnistClassifier``, which judges samples): the class,
how to build one, what its ``forward`` returns, and the loss it is trained on. :func:`model_type`
says which one a model is; :func:`check_outputs` refuses a model of another type with a clear
message. ``train_model`` and ``evaluate_model`` dispatch on it, once each.

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
           "check_outputs"]


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

