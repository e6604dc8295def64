"""Any machine a student has: the fused CPU op falls back, the allocator is tuned only for
training, the version and the public address are one each, and every notebook opens with the
install cell."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import helper_lib
from helper_lib.assets import project
from helper_lib.fast import layers
from helper_lib.models import ConvVAE

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture
def fresh_fusion(monkeypatch):
    monkeypatch.setitem(layers._FUSION, "failed", False)
    return layers


def _grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    torch.manual_seed(0)
    _, mu, logvar, x_hat = model(x)
    (x_hat.sum() + mu.sum() + logvar.sum()).backward()
    return x_hat.detach(), [p.grad.clone() for p in model.parameters()]


def _plain_reference(model: nn.Module, x: torch.Tensor, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("VAE_FUSED", "0")
        return _grads(model, x)


def test_vae_fused_0_turns_fusion_off(fresh_fusion, monkeypatch):
    assert layers.fusion_enabled() is layers._fused_ops_available()
    monkeypatch.setenv("VAE_FUSED", "0")
    assert not layers.fusion_enabled()


@pytest.mark.skipif(not layers._fused_ops_available(), reason="this torch has no oneDNN ops")
def test_missing_private_ops_fall_back_to_the_plain_layers(fresh_fusion, monkeypatch):
    torch.manual_seed(0)
    model, x = ConvVAE(), torch.rand(8, 1, 28, 28)
    ref_out, ref_grads = _plain_reference(model, x, monkeypatch)
    monkeypatch.setattr(layers, "_OPS", SimpleNamespace())  # an older torch, an ARM build
    assert not layers.fusion_enabled()
    out, grads = _grads(model, x)
    torch.testing.assert_close(out, ref_out)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)


@pytest.mark.skipif(not layers._fused_ops_available(), reason="this torch has no oneDNN ops")
def test_a_private_op_that_raises_is_given_up_once_with_a_warning(fresh_fusion, monkeypatch):
    torch.manual_seed(0)
    model, x = ConvVAE(), torch.rand(8, 1, 28, 28)
    ref_out, ref_grads = _plain_reference(model, x, monkeypatch)
    calls = []

    def refuses(*args, **kwargs):
        calls.append(1)
        raise TypeError("_convolution_pointwise() got an unexpected keyword (a new signature)")

    monkeypatch.setattr(layers, "_OPS", SimpleNamespace(_convolution_pointwise=refuses,
                                                        _convolution_transpose_pointwise=refuses))
    with pytest.warns(RuntimeWarning, match="using the plain layers from now on"):
        out, grads = _grads(model, x)
    torch.testing.assert_close(out, ref_out)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)
    _grads(model, x)
    assert len(calls) == 1, "once and for all: the op is not tried again"


@pytest.mark.skipif(not layers._fused_ops_available(), reason="this torch has no oneDNN ops")
def test_backward_hooks_are_respected(fresh_fusion, monkeypatch):
    """A full backward hook on a fused convolution fires with that layer's own gradients, and
    the model's gradients stay those of the plain layers."""
    torch.manual_seed(0)
    model = ConvVAE()
    x = torch.rand(4, 1, 28, 28, requires_grad=True)  # so the hook sees grad_input too
    ref_out, ref_grads = _plain_reference(model, x, monkeypatch)
    seen = []
    conv = model.encoder[0]
    conv.register_full_backward_hook(
        lambda m, gi, go: seen.append((gi[0].shape, go[0].shape)))
    out, grads = _grads(model, x)
    assert seen == [(torch.Size([4, 1, 28, 28]), torch.Size([4, 32, 28, 28]))], \
        "the hooked layer ran on its own"
    torch.testing.assert_close(out, ref_out)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)


def _allocator_tuned_after(code: str, env: dict[str, str] | None = None) -> bool:
    script = ("import helper_lib.fast.allocator as u\n" + code + "\nprint(u._ALLOCATOR_TUNED)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**__import__("os").environ, **(env or {})}, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_the_allocator_is_tuned_when_training_starts_and_never_before():
    evaluate = ("import torch; from helper_lib import ConvVAE; from helper_lib.evaluate import "
                "evaluate_vae; from torch.utils.data import DataLoader, TensorDataset\n"
                "x = torch.rand(16, 1, 28, 28); dl = DataLoader(TensorDataset(x, x[:, 0, 0, 0]), "
                "batch_size=8)\nevaluate_vae(ConvVAE(), dl)\n"
                "import helper_lib.plotting, helper_lib.interactive")
    assert not _allocator_tuned_after(evaluate)
    train = evaluate + ("\nfrom helper_lib import train_vae\n"
                        "train_vae(ConvVAE(), dl, 1, progress=False)")
    assert _allocator_tuned_after(train)
    assert not _allocator_tuned_after(train, {"VAE_TUNE_ALLOCATOR": "0"})


def test_the_version_is_one_number():
    assert helper_lib.__version__ == project.VERSION == version("helper_lib")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"] == \
        "helper_lib.assets.project.VERSION"


def test_dependencies_are_ranges_and_requirements_txt_is_an_exact_lock():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = pyproject["project"]["dependencies"]
    assert all(">=" in d and "==" not in d for d in deps), deps
    assert "torch>=2.4" in deps  # is_autocast_enabled("cpu") and CPU fused Adam need 2.4
    lines = [line.split("#")[0].strip() for line in
             (REPO / "requirements.txt").read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("-")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^ ]*", p) for p in pins), pins
    for dep in deps:
        name = re.split(r"[<>=]", dep)[0]
        assert any(p.lower().startswith(f"{name.lower()}==") for p in pins), f"{name} unpinned"


def test_the_public_address_is_written_once_and_everything_agrees():
    """The install cells, the README's launch links, pyproject's URLs and the download address
    all come from helper_lib.project.REPOSITORY."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["urls"]["Repository"] == project.REPOSITORY
    assert project.pretrained_base_url().startswith(project.REPOSITORY + "/raw/v")
    readme = (REPO / "README.md").read_text()
    for path in NOTEBOOKS:
        assert project.colab_url(path.name) in readme, path.name
        assert project.binder_url(path.name) in readme, path.name
        install = "".join(json.loads(path.read_text())["cells"][_first_code(path)]["source"])
        assert f'"{project.install_source()}"' in install, path.name
    # No other address of a GitHub repository of ours anywhere in the notebooks or README.
    owner = project.REPOSITORY.removeprefix("https://github.com/").split("/")[0]
    for path in [*NOTEBOOKS, REPO / "README.md", REPO / "binder" / "requirements.txt"]:
        if not path.exists():
            continue
        for found in re.findall(rf"github\.com/{re.escape(owner)}/[\w.-]+", path.read_text()):
            assert found == project.REPOSITORY.removeprefix("https://"), (path.name, found)


def _first_code(path: Path) -> int:
    cells = json.loads(path.read_text())["cells"]
    return next(i for i, c in enumerate(cells) if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_opens_with_the_install_cell_hidden_from_the_slides(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    install, params = code[0], code[1]
    assert install["metadata"]["tags"] == ["install"]
    assert install["metadata"]["slideshow"]["slide_type"] == "skip"
    assert "parameters" in params["metadata"]["tags"]
    source = "".join(install["source"])
    assert 'find_spec("helper_lib") is None' in source
    assert '"-c", pins.name' in source, "the machine's torch is kept by a constraint"


def test_the_install_cell_costs_nothing_where_helper_lib_is_installed():
    source = "".join(json.loads(NOTEBOOKS[0].read_text())["cells"][_first_code(NOTEBOOKS[0])]
                     ["source"])
    out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout == "" and out.stderr == ""
