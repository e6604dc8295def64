"""The library's shape: one place for each thing, the training step in view, public names between
modules, and descriptions that match the code."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import helper_lib
from helper_lib import train
from helper_lib.analysis.registry import PRETRAINED, PRETRAINED_NAMES, SWEEP, SWEEP_NAMES
from helper_lib.assets.pretrained import manifest
from helper_lib.evaluate import (
    evaluate_autoencoder,
    evaluate_classifier,
    evaluate_model,
    evaluate_vae,
)
from helper_lib.model_types import MODEL_TYPES, check_outputs, model_type
from helper_lib.models import ConvAutoencoder, ConvVAE, MnistClassifier
from helper_lib.tools import cli
from helper_lib.utils import SettingsError

LIB = Path(helper_lib.__file__).parent
REPO = LIB.parent


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(LIB.glob("*.py"))}


def test_no_module_uses_another_modules_private_names():
    """A name another module needs is public: ``from .evaluate import _inference`` or
    ``plotting._finish`` would hide a dependency behind an underscore."""
    modules = _modules()
    found = []
    for name, tree in modules.items():
        siblings = {}  # local name -> sibling module, for `from . import plotting`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                for alias in node.names:
                    if node.module is None:
                        siblings[alias.asname or alias.name] = alias.name
                    elif alias.name.startswith("_"):
                        found.append(f"{name}: from .{node.module} import {alias.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in siblings and node.attr.startswith("_")):
                found.append(f"{name}: {node.value.id}.{node.attr}")
    assert found == []


def test_a_module_that_would_break_the_rule_is_caught(tmp_path, monkeypatch):
    """The scan above can fail: a module importing a private name is reported."""
    bad = tmp_path / "helper_lib"
    bad.mkdir()
    (bad / "a.py").write_text("from .evaluate import _secret\n")
    monkeypatch.setattr(sys.modules[__name__], "LIB", bad)
    with pytest.raises(AssertionError):
        test_no_module_uses_another_modules_private_names()


def _loader(n: int = 12, labels: bool = True) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return DataLoader(TensorDataset(x, y) if labels else TensorDataset(x), batch_size=4)


@pytest.mark.parametrize("trainer, model", [
    (train.train_vae, ConvVAE), (train.train_autoencoder, ConvAutoencoder),
    (train.train_classifier, MnistClassifier)])
def test_every_training_function_runs_train_step_once_per_batch(monkeypatch, trainer, model):
    calls = []
    real = train.train_step

    def counting(*args, **kwargs):
        calls.append(args[1].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "train_step", counting)
    history = trainer(model(), _loader(), epochs=2, progress=False, precision="fp32",
                      device="cpu")
    assert len(calls) == 6 == sum(history.batches_per_epoch)  # 2 epochs x 3 batches
    assert calls[0] == (4, 1, 28, 28)


def test_train_model_dispatches_on_the_type_and_refuses_a_vae_option_elsewhere():
    torch.manual_seed(0)
    a, b = ConvVAE(), ConvVAE()
    b.load_state_dict(a.state_dict())
    by_type = train.train_model(a, _loader(), 1, progress=False, precision="fp32",
                                device="cpu", seed=1, beta=2.0)
    direct = train.train_vae(b, _loader(), 1, progress=False, precision="fp32", device="cpu",
                             seed=1, beta=2.0)
    assert by_type.names == ("total", "reconstruction", "kl")
    assert by_type.batch == direct.batch  # the same run, step for step
    assert train.train_model(MnistClassifier(), _loader(), 1, progress=False,
                             device="cpu").names == ("cross_entropy", "error")
    with pytest.raises(SettingsError, match="beta: options of a VAE's loss"):
        train.train_model(ConvAutoencoder(), _loader(), 1, beta=2.0, progress=False)
    with pytest.raises(TypeError, match="not one of the course's models"):
        train.train_model(nn.Linear(2, 2), _loader(), 1)


def test_evaluate_model_gives_what_the_function_for_the_type_gives():
    torch.manual_seed(0)
    loader = _loader(8)
    vae, ae, clf = ConvVAE(), ConvAutoencoder(), MnistClassifier()
    assert evaluate_model(vae, loader, kind="bce") == evaluate_vae(vae, loader, kind="bce")
    assert evaluate_model(ae, loader) == evaluate_autoencoder(ae, loader)
    assert evaluate_model(clf, loader) == evaluate_classifier(clf, loader)


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


def test_the_registry_and_the_pretrained_store_name_the_same_checkpoints():
    """Every .pt file the package's manifest lists has a spec, and every spec a file."""
    shipped = {name[:-3] for name in manifest() if name.endswith(".pt")}
    assert set(PRETRAINED_NAMES) == shipped
    assert set(SWEEP_NAMES) == {s.name for s in SWEEP.values()} - {"conv_vae_mnist_fast"}
    assert all(name.startswith("sweep_") for name in SWEEP_NAMES)


def test_one_smoke_switch():
    """Smoke mode is read by utils.smoke_mode alone: no module or notebook parses VAE_SMOKE."""
    parse = re.compile(r"environ(?:\.get\(|\[)\s*\\?[\"']VAE_SMOKE")
    offenders = [p.name for p in [*LIB.glob("*.py"), *(REPO / "notebooks").glob("*.ipynb")]
                 if parse.search(p.read_text())]
    assert offenders == []
    for nb in (REPO / "notebooks").glob("[0-9]*.ipynb"):
        assert "SMOKE = smoke_mode()" in nb.read_text(), nb.name


def test_the_cli_help_and_docstring_list_every_command():
    parser = cli.build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    assert {"train", "evaluate", "grade", "book", "manifest"} <= commands
    usage = cli.__doc__.split("\n\n")[0]  # python -m helper_lib {train,evaluate,...}
    listed = set(re.search(r"\{([^}]*)\}", usage, re.S).group(1).replace("\n", "").split(","))
    assert listed == commands
    text = parser.format_help()
    assert all(c in text for c in commands)


def test_training_imports_neither_pyplot_nor_the_animation():
    code = ("import sys, helper_lib.train, helper_lib.tools.cli, helper_lib.analysis.film\n"
            "print('matplotlib.pyplot' in sys.modules,"
            " 'helper_lib.analysis.film_plots' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]


def test_shuffle_generator_is_the_one_that_orders_the_batches():
    """Training saves this generator's state to resume a run; it must be the loader's own."""
    from helper_lib.data import get_dataloaders, shuffle_generator

    loader = get_dataloaders("mnist", batch_size=16, train_subset=64, seed=3)[0]
    generator = shuffle_generator(loader)
    assert isinstance(generator, torch.Generator)
    state = generator.get_state()
    first = [y for _, y in loader]
    generator.set_state(state)
    assert all(torch.equal(a, b) for a, b in zip(first, [y for _, y in loader], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, [y for _, y in loader],
                                                      strict=True))  # the next epoch differs
    plain = DataLoader(TensorDataset(torch.zeros(4)), shuffle=True,
                       generator=torch.Generator())
    assert shuffle_generator(plain) is plain.generator
    assert shuffle_generator(DataLoader(TensorDataset(torch.zeros(4)))) is None
