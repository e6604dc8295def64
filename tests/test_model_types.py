"""The three types of model (:mod:`helper_lib.model_types`) that training, evaluation and the
checkpoints dispatch on."""

from __future__ import annotations

import pytest
import torch

from helper_lib.analysis.registry import PRETRAINED
from helper_lib.model_types import MODEL_TYPES, check_outputs, model_type
from helper_lib.models import ConvAutoencoder, ConvVAE


def test_the_registry_knows_each_type_and_refuses_a_mismatch():
    assert {t.name for t in MODEL_TYPES.values()} == {"vae", "autoencoder", "classifier"}
    assert model_type(ConvVAE()).name == "vae"
    assert model_type(MODEL_TYPES["classifier"].build(32)).name == "classifier"
    assert MODEL_TYPES["autoencoder"].build(8).latent_dim == 8
    ae = ConvAutoencoder()
    out = ae(torch.rand(2, 1, 28, 28))
    assert check_outputs(out, ae, "autoencoder") is out
    with pytest.raises(TypeError, match="use train_autoencoder and evaluate_autoencoder"):
        check_outputs(out, ae, "vae")
    with pytest.raises(ValueError, match="no latent space"):
        PRETRAINED["classifier_mnist"].latent_dim  # noqa: B018 - the property raises
