"""The shipped checkpoints in data/pretrained/ load offline and still score what they recorded."""

import pytest

from helper_lib.checkpoints import load_checkpoint, load_model, pretrained_path, sha256_file
from helper_lib.data import get_dataloaders
from helper_lib.evaluate import reference_eval
from helper_lib.models import count_parameters

EXPECTED = {"conv_vae_mnist": 207_237, "conv_ae_mnist": 200_963}


@pytest.fixture(scope="module")
def test_loader():
    return get_dataloaders("mnist", batch_size=256)[2]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pretrained_checkpoint_matches_its_metadata(name, test_loader):
    path = pretrained_path(name)
    assert path.is_file(), f"{path} is missing: see data/pretrained/README.md"
    assert path.stat().st_size < 2_000_000
    recorded_hash = path.with_name(path.name + ".sha256").read_text().split()[0]
    assert sha256_file(path) == recorded_hash
    meta = load_checkpoint(path)["metadata"]
    model = load_model(path)  # verifies the sha256 again
    assert count_parameters(model) == EXPECTED[name] == meta["parameters"]
    reference = meta["reference_eval"]
    assert reference["images"] == 2000 and reference["seed"] == 0
    kind = meta["loss"].get("kind", "mse")
    measured = reference_eval(model, test_loader, kind if kind in ("mse", "bce") else "mse")
    for key, value in measured.items():
        assert value == pytest.approx(reference[key], rel=0.02), key
    assert meta["command"].startswith("python -m helper_lib train")
    assert path.with_name(f"{name}.history.csv").is_file()
