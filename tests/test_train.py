import json
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helper_lib import train as train_module
from helper_lib import utils
from helper_lib.fast.precision import resolve_precision
from helper_lib.history import History
from helper_lib.models import ConvAutoencoder, ConvVAE, MnistClassifier
from helper_lib.train import train_autoencoder, train_vae


def _vae(seed=0):
    torch.manual_seed(seed)
    return ConvVAE(latent_dim=2)


def test_a_few_hundred_steps_on_real_mnist_lower_the_loss(mnist_loaders):
    train, _, test = mnist_loaders  # 2,048 real images, batches of 64 -> 32 steps per epoch
    model = _vae()
    history = train_vae(model, train, epochs=8, seed=0, device="cpu", progress=False)
    steps = len(history.batch["total"])
    assert steps == 256
    first = sum(history.batch["total"][:20]) / 20
    last = sum(history.batch["total"][-20:]) / 20
    assert last < 0.6 * first  # roughly 180 -> 60 on this subset
    assert history.train["total"][-1] < history.train["total"][0]
    # the reconstruction improves on held-out images too
    x, _ = next(iter(test))
    untrained = _vae()
    with torch.no_grad():
        err_trained = ((model.decode(model.embed(x)) - x) ** 2).sum((1, 2, 3)).mean()
        err_untrained = ((untrained.decode(untrained.embed(x)) - x) ** 2).sum((1, 2, 3)).mean()
    assert err_trained < 0.7 * err_untrained


def test_autoencoder_training_lowers_the_per_pixel_mse(mnist_loaders):
    from helper_lib.evaluate import evaluate_autoencoder

    train, _, test = mnist_loaders
    torch.manual_seed(0)
    model = ConvAutoencoder()
    before = evaluate_autoencoder(model, test, max_items=500)["mse"]  # about 0.23
    history = train_autoencoder(model, train, epochs=3, progress=False)
    assert history.names == ("mse",)
    assert history.train["mse"][-1] < history.train["mse"][0]
    assert evaluate_autoencoder(model, test, max_items=500)["mse"] < 0.6 * before


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_same_seed_gives_an_identical_cpu_history(mnist_loaders, precision):
    from helper_lib.data import get_dataloaders

    def run():
        train, _, _ = get_dataloaders(batch_size=64, train_subset=256, seed=7)
        torch.manual_seed(7)
        return train_vae(ConvVAE(), train, epochs=2, seed=7, device="cpu",
                         precision=precision, progress=False)

    a, b = run(), run()
    assert a.batch == b.batch
    assert a.train == b.train


def test_training_resumes_from_its_checkpoint(tmp_path):
    from helper_lib.data import get_dataloaders

    def fresh():
        train, valid, _ = get_dataloaders(batch_size=64, train_subset=256, seed=3,
                                          validation_fraction=0.01)
        torch.manual_seed(3)
        return ConvVAE(), train, valid

    model, train, valid = fresh()
    straight = train_vae(model, train, epochs=2, seed=3, valid_loader=valid, precision="fp32",
                         device="cpu", progress=False)

    model, train, valid = fresh()
    ckpt = tmp_path / "state.pt"
    first = train_vae(model, train, epochs=1, seed=3, valid_loader=valid, precision="fp32",
                      device="cpu", checkpoint_path=ckpt, progress=False)
    assert first.epochs == 1 and ckpt.is_file()
    model, train, valid = fresh()  # a new process would start like this
    resumed = train_vae(model, train, epochs=2, seed=3, valid_loader=valid, precision="fp32",
                        device="cpu", checkpoint_path=ckpt, progress=False)
    assert resumed.epochs == 2
    assert resumed.batch == straight.batch
    assert resumed.valid == straight.valid
    assert len(resumed.valid["total"]) == 2


def test_nan_loss_stops_training_naming_epoch_and_batch():
    images = torch.rand(64, 1, 28, 28)
    images[40] = float("nan")  # in the 3rd batch of 16
    loader = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=16)
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 3.*lower learning rate"):
        train_vae(ConvVAE(), loader, epochs=2, precision="fp32", progress=False)


def test_history_round_trips_through_json_and_csv(tmp_path):
    h = History(("total", "kl"))
    h.batch["total"] += [3.0, 2.0]
    h.batch["kl"] += [0.5, 0.25]
    h.train["total"].append(2.5)
    h.train["kl"].append(0.375)
    h.valid["total"] = [2.4]
    h.epoch_seconds.append(1.5)
    h.batches_per_epoch.append(2)
    h.to_json(tmp_path / "h.json")
    assert History.from_json(tmp_path / "h.json") == h
    json.loads((tmp_path / "h.json").read_text())
    h.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines == ["epoch,seconds,train_total,train_kl,valid_total", "1,1.5,2.5,0.375,2.4"]


def test_model_comes_back_in_the_default_memory_format(mnist_loaders):
    train, _, _ = mnist_loaders
    model = ConvVAE()
    train_vae(model, [next(iter(train))], epochs=1, device="cpu", progress=False)
    # encoder[0].weight [32, 1, 3, 3] is contiguous in both formats; the others are not
    assert not torch.randn(64, 32, 3, 3).to(memory_format=torch.channels_last).is_contiguous()
    assert all(p.is_contiguous() for p in model.parameters())


def test_progress_bar_in_a_log_file_is_redrawn_only_every_few_seconds(
        mnist_batch, capsys, monkeypatch):
    # Outside a terminal or notebook (a CI log, `nohup ... > log`), the bar redraws at most
    # every 5 s; the running loss shown every 25 batches must not force extra redraws.
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    batches = [(mnist_batch[:8],)] * 80  # 80 steps: the postfix is updated 4 times
    train_vae(_vae(), batches, epochs=1, progress=True)
    out, err = capsys.readouterr()
    assert "epoch   1/1: total" in out  # the epoch summary line is still printed
    # 6 carriage returns however many steps: the bar opens, gets its description, is cleared
    # for the epoch line (2) and redrawn after it, and closes. One more is allowed for a slow
    # machine (a timed redraw after 5 s). A forced redraw per postfix update would add 4.
    assert err.count("\r") <= 7, err


@pytest.mark.parametrize("train, model, needs, use", [
    (train_vae, ConvAutoencoder, r"needs a VAE .*\(z, mu, logvar, x_hat\)", "train_autoencoder"),
    (train_autoencoder, ConvVAE, r"needs an autoencoder .*\(z, x_hat\)", "train_vae"),
])
def test_training_the_wrong_kind_of_model_names_the_right_function(train, model, needs, use):
    loader = DataLoader(TensorDataset(torch.rand(8, 1, 28, 28), torch.zeros(8)), batch_size=4)
    with pytest.raises(TypeError, match=needs) as err:
        train(model(), loader, epochs=1, progress=False)
    assert f"use {use}" in str(err.value)


def test_resuming_uses_the_new_learning_rate_and_keeps_library_metadata(tmp_path):
    from helper_lib.checkpoints import load_checkpoint

    loader = DataLoader(TensorDataset(torch.rand(8, 1, 28, 28), torch.zeros(8)), batch_size=4)
    ckpt = tmp_path / "state.pt"
    # user metadata may not clobber the library's own keys (it used to raise a TypeError)
    train_vae(_vae(), loader, epochs=1, lr=1e-3, checkpoint_path=ckpt, progress=False,
              checkpoint_metadata={"command": "test", "lr": "ignored"})
    meta = load_checkpoint(ckpt)["metadata"]
    assert meta["command"] == "test" and meta["lr"] == 1e-3 and meta["epoch"] == 1
    assert load_checkpoint(ckpt)["optimizer_state"]["param_groups"][0]["lr"] == 1e-3
    train_vae(_vae(), loader, epochs=2, lr=1e-4, checkpoint_path=ckpt, progress=False)
    state = load_checkpoint(ckpt)
    assert state["optimizer_state"]["param_groups"][0]["lr"] == 1e-4  # not the saved 1e-3
    assert state["metadata"]["lr"] == 1e-4 and state["metadata"]["epoch"] == 2


def test_model_comes_back_in_the_default_memory_format_after_an_error():
    images = torch.full((8, 1, 28, 28), float("nan"))
    loader = DataLoader(TensorDataset(images, torch.zeros(8)), batch_size=4)
    model = _vae()
    with pytest.raises(FloatingPointError):
        train_vae(model, loader, epochs=1, device="cpu", precision="fp32", progress=False)
    assert all(p.is_contiguous() for p in model.parameters())


def test_a_nan_loss_stops_before_its_step_so_the_weights_stay_finite():
    """The guard used to look every 25 steps: the model could already hold NaN weights."""
    torch.manual_seed(0)
    images = torch.rand(64, 1, 28, 28)
    images[20] = float("nan")  # the 2nd batch of 16
    loader = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=16)
    model = ConvVAE()
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 2\. Training stopped before"):
        train_vae(model, loader, epochs=1, precision="fp32", progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _onecycle_state(tmp_path):
    images = torch.rand(32, 1, 28, 28)
    loader = DataLoader(TensorDataset(images, torch.zeros(32, dtype=torch.long)), batch_size=16)
    ckpt = tmp_path / "state.pt"
    train_vae(ConvVAE(), loader, epochs=1, schedule="onecycle", lr=1e-3, precision="fp32",
              checkpoint_path=ckpt, progress=False)
    return loader, ckpt


@pytest.mark.parametrize("damage", ["no scheduler_state", "no lr"])
def test_a_resume_without_the_schedule_or_lr_is_one_clear_error(tmp_path, damage):
    """These used to raise KeyError or TypeError inside the error message itself."""
    loader, ckpt = _onecycle_state(tmp_path)
    state = torch.load(ckpt, weights_only=True)
    if damage == "no scheduler_state":
        del state["scheduler_state"]
        match = "holds no state of the schedule"
    else:
        del state["metadata"]["lr"]
        match = "peak lr=unrecorded"
    torch.save(state, ckpt)
    ckpt.with_name(ckpt.name + ".sha256").unlink(missing_ok=True)
    with pytest.raises(utils.SettingsError, match=match):
        train_vae(ConvVAE(), loader, epochs=2, schedule="onecycle", lr=1e-3, precision="fp32",
                  checkpoint_path=ckpt, progress=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()


class _StopAfter:
    """A loader that raises KeyboardInterrupt after ``n`` batches in all, as if the run was
    killed mid-epoch."""

    def __init__(self, loader, n):
        self.loader, self.n, self.generator = loader, n, getattr(loader, "generator", None)
        self.sampler = loader.sampler

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.n == 0:
                raise KeyboardInterrupt
            self.n -= 1
            yield batch


def test_onecycle_warms_up_to_the_peak_then_anneals_and_resumes_on_the_same_curve(tmp_path):
    from helper_lib.data import get_dataloaders

    def fresh():
        train, _, _ = get_dataloaders(batch_size=64, train_subset=256, seed=5)
        torch.manual_seed(5)
        return ConvVAE(), train

    kw = dict(epochs=3, lr=4e-3, schedule="onecycle", seed=5, precision="fp32", device="cpu",
              progress=False)
    model, train = fresh()
    straight = train_vae(model, train, **kw)
    steps = 3 * len(train)
    assert len(straight.lr) == steps
    peak = max(range(steps), key=straight.lr.__getitem__)
    assert straight.lr[0] == pytest.approx(4e-3 / 25)  # OneCycleLR's div_factor
    assert peak == round(0.3 * steps) - 1 or peak == round(0.3 * steps)
    assert straight.lr[peak] == pytest.approx(4e-3, rel=0.02)
    assert straight.lr[-1] < 4e-3 / 1000

    # Killed in the middle of epoch 2, then resumed: the same steps as without the kill.
    model, train = fresh()
    ckpt = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_vae(model, _StopAfter(train, len(train) + 2), checkpoint_path=ckpt, **kw)
    model, train = fresh()
    resumed = train_vae(model, train, checkpoint_path=ckpt, **kw)
    assert resumed.lr == straight.lr
    assert resumed.batch == straight.batch

    # Constant (the lecture's) is another run entirely; and a one-cycle run cannot be stretched.
    model, train = fresh()
    constant = train_vae(model, train, **{**kw, "schedule": "constant"})
    assert set(constant.lr) == {4e-3} and constant.batch != straight.batch
    model, train = fresh()
    with pytest.raises(ValueError, match="one-cycle run of 3 epochs.*asked: 4 epochs"):
        train_vae(model, train, checkpoint_path=ckpt, **{**kw, "epochs": 4})
    with pytest.raises(ValueError, match="schedule='onecycle', not 'constant'"):
        train_vae(model, train, checkpoint_path=ckpt, **{**kw, "schedule": "constant"})
    with pytest.raises(ValueError, match="schedule must be one of constant, onecycle"):
        train_autoencoder(ConvAutoencoder(), train, epochs=1, schedule="cosine")


def test_snapshots_record_the_latent_space_at_the_chosen_steps_and_survive_a_resume(tmp_path):
    from helper_lib.data import get_dataloaders
    from helper_lib.history import Snapshots

    def fresh():
        train, _, test = get_dataloaders(batch_size=64, train_subset=256, seed=4)
        torch.manual_seed(4)
        images = next(iter(test))[0][:32]
        grid = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-2.0, 0.5]])
        return ConvVAE(), train, Snapshots(steps=[0, 1, 3, 6], images=images, codes=grid)

    model, train, snaps = fresh()
    initial_mu = model.eval().embed(snaps.images).detach()
    kw = dict(epochs=2, seed=4, precision="fp32", device="cpu", progress=False)
    train_vae(model, train, snapshots=snaps, **kw)  # 4 steps per epoch: 8 in all
    assert [r["step"] for r in snaps.records] == [0, 1, 3, 6]
    first = snaps.records[0]
    assert first["mu"].shape == (32, 2) and first["mu"].dtype == torch.float16
    assert first["decoded"].shape == (3, 28, 28) and first["decoded"].dtype == torch.uint8
    torch.testing.assert_close(first["mu"].float(), initial_mu, atol=2e-3, rtol=1e-3)
    assert not torch.equal(snaps.records[3]["mu"], first["mu"])  # the codes moved
    with torch.no_grad():  # the last snapshot is not the final model (step 6 of 8)
        assert not torch.equal(model.embed(snaps.images).half(), snaps.records[3]["mu"])

    # The same run cut after epoch 1 and resumed: the same snapshots, none recorded twice.
    model, train, cut = fresh()
    ckpt = tmp_path / "state.pt"
    train_vae(model, train, snapshots=cut, checkpoint_path=ckpt, **{**kw, "epochs": 1})
    assert [r["step"] for r in cut.records] == [0, 1, 3]
    model, train, resumed = fresh()
    train_vae(model, train, snapshots=resumed, checkpoint_path=ckpt, **kw)
    assert [r["step"] for r in resumed.records] == [0, 1, 3, 6]
    for a, b in zip(resumed.records, snaps.records, strict=True):
        torch.testing.assert_close(a["mu"], b["mu"], atol=0, rtol=0)
        assert torch.equal(a["decoded"], b["decoded"])


def test_train_step_is_one_step_of_adam_on_the_negative_elbo():
    """The public step: the same update as writing the lecture's loop out by hand."""
    from helper_lib.losses import vae_loss
    from helper_lib.train import train_step

    torch.manual_seed(0)
    x = torch.rand(16, 1, 28, 28)
    by_hand, stepped = ConvVAE(), ConvVAE()
    stepped.load_state_dict(by_hand.state_dict())
    opt_a = torch.optim.Adam(by_hand.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(stepped.parameters(), lr=1e-3)
    torch.manual_seed(1)
    _, mu, logvar, x_hat = by_hand(x)
    loss = vae_loss(x_hat, x, mu, logvar)
    opt_a.zero_grad()
    loss.total.backward()
    opt_a.step()
    torch.manual_seed(1)
    terms = train_step(stepped, x, None, lambda out, x, y: vae_loss(out[3], x, out[1], out[2]),
                       opt_b, resolve_precision("fp32", torch.device("cpu")))
    assert terms.shape == (3,) and not terms.requires_grad
    torch.testing.assert_close(terms[0], loss.total.detach())
    for a, b in zip(by_hand.parameters(), stepped.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def _loader(n: int = 12, labels: bool = True) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return DataLoader(TensorDataset(x, y) if labels else TensorDataset(x), batch_size=4)


@pytest.mark.parametrize("trainer, model", [
    (train_module.train_vae, ConvVAE), (train_module.train_autoencoder, ConvAutoencoder),
    (train_module.train_classifier, MnistClassifier)])
def test_every_training_function_runs_train_step_once_per_batch(monkeypatch, trainer, model):
    calls = []
    real = train_module.train_step

    def counting(*args, **kwargs):
        calls.append(args[1].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", counting)
    history = trainer(model(), _loader(), epochs=2, progress=False, precision="fp32",
                      device="cpu")
    assert len(calls) == 6 == sum(history.batches_per_epoch)  # 2 epochs x 3 batches
    assert calls[0] == (4, 1, 28, 28)


def test_train_model_dispatches_on_the_type_and_refuses_a_vae_option_elsewhere():
    torch.manual_seed(0)
    a, b = ConvVAE(), ConvVAE()
    b.load_state_dict(a.state_dict())
    by_type = train_module.train_model(a, _loader(), 1, progress=False, precision="fp32",
                                device="cpu", seed=1, beta=2.0)
    direct = train_module.train_vae(b, _loader(), 1, progress=False, precision="fp32", device="cpu",
                             seed=1, beta=2.0)
    assert by_type.names == ("total", "reconstruction", "kl")
    assert by_type.batch == direct.batch  # the same run, step for step
    assert train_module.train_model(MnistClassifier(), _loader(), 1, progress=False,
                             device="cpu").names == ("cross_entropy", "error")
    with pytest.raises(utils.SettingsError, match="beta: options of a VAE's loss"):
        train_module.train_model(ConvAutoencoder(), _loader(), 1, beta=2.0, progress=False)
    with pytest.raises(TypeError, match="not one of the course's models"):
        train_module.train_model(nn.Linear(2, 2), _loader(), 1)
