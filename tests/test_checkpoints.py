import pytest
import torch

from helper_lib.assets.downloads import sha256_file
from helper_lib.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_model,
    save_checkpoint,
    write_sha256,
)
from helper_lib.models import ConvAutoencoder, ConvVAE


@pytest.mark.parametrize("cls, dim", [(ConvVAE, 2), (ConvVAE, 8), (ConvAutoencoder, 2)])
def test_round_trip_rebuilds_the_same_model(tmp_path, cls, dim):
    torch.manual_seed(0)
    model = cls(latent_dim=dim)
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=3, command="python -m helper_lib x")
    loaded = load_model(path)
    assert type(loaded) is cls and loaded.latent_dim == dim
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    meta = loaded.checkpoint_metadata
    assert meta["epoch"] == 3 and meta["command"] == "python -m helper_lib x"
    assert meta["versions"]["torch"] == torch.__version__
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind


def test_truncated_file_raises_checkpoint_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", ConvVAE())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupted"):
        load_model(path)


def test_corrupted_bytes_raise_checkpoint_error(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"this is not a checkpoint at all" * 100)
    with pytest.raises(CheckpointError):
        load_model(path)


def test_foreign_pytorch_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save(ConvVAE().state_dict(), path)  # a bare state_dict, not our format
    with pytest.raises(CheckpointError, match="not a helper_lib checkpoint"):
        load_model(path)


def test_shape_mismatch_raises_checkpoint_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", ConvVAE(latent_dim=2))
    payload = torch.load(path, weights_only=True)
    payload["model_kwargs"]["latent_dim"] = 3
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path)


def test_missing_file_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_sha256_sidecar_is_verified(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", ConvVAE())
    digest = write_sha256(path)
    assert digest == sha256_file(path)
    assert load_checkpoint(path)["model_class"] == "ConvVAE"
    (tmp_path / "m.pt.sha256").write_text("0" * 64 + "  m.pt\n")
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(path)
    assert load_checkpoint(path, expected_sha256=digest)  # an explicit hash takes precedence


def test_corrupted_run_checkpoint_is_not_sent_to_git(tmp_path):
    from helper_lib.checkpoints import pretrained_path

    path = save_checkpoint(tmp_path / "m.pt", ConvVAE())
    (tmp_path / "m.pt.sha256").write_text("0" * 64 + "  m.pt\n")
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert "git checkout" not in str(err.value) and "m.pt.sha256" in str(err.value)
    with pytest.raises(CheckpointError, match="git checkout"):
        load_checkpoint(pretrained_path("conv_vae_mnist"), expected_sha256="0" * 64)
