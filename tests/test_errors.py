"""Bad inputs, tried as a new user would: one clear ``error: ...`` line and exit status 2 from
the command line, the same message as a ``ValueError`` from the Python API, before any work."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helper_lib.assets.datasets import DatasetCorruptError
from helper_lib.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from helper_lib.data import get_dataloaders
from helper_lib.models import ConvAutoencoder, ConvVAE
from helper_lib.train import train_autoencoder, train_vae
from helper_lib.utils import SettingsError

REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helper_lib", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def _cli_here(*args: str) -> subprocess.CompletedProcess:
    """``python -m helper_lib ARGS`` run in this process (no 2-3 s of a new interpreter's
    imports): the same ``main``, its exit status and its stdout and stderr; the random states
    that ``train``'s ``set_seed`` would change are put back."""
    import contextlib
    import io
    import random

    import numpy as np

    from helper_lib.tools.cli import main

    out, err = io.StringIO(), io.StringIO()
    states = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = main(list(args))
    random.setstate(states[0])
    np.random.set_state(states[1])
    return subprocess.CompletedProcess(["helper_lib", *args], code, out.getvalue(),
                                       err.getvalue())


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0].removeprefix("error: ")


def _tiny_loader():
    x = torch.rand(8, 1, 28, 28)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(8)),
                                       batch_size=4)


@pytest.mark.parametrize(("flag", "value", "api"), [
    ("--epochs", "-1", lambda: train_vae(ConvVAE(), _tiny_loader(), epochs=-1)),
    ("--lr", "-1", lambda: train_vae(ConvVAE(), _tiny_loader(), epochs=1, lr=-1.0)),
    ("--lr", "nan", lambda: train_autoencoder(ConvAutoencoder(), _tiny_loader(), epochs=1,
                                              lr=float("nan"))),
    ("--batch-size", "0", lambda: get_dataloaders(batch_size=0)),
    ("--latent-dim", "0", lambda: ConvVAE(latent_dim=0)),
])
def test_bad_training_settings_exit_2_with_the_api_s_own_message(tmp_path, flag, value, api):
    """The command's own process for the first case (the exit status as a shell sees it);
    ``main`` in this process for the others, to save a new interpreter's start each."""
    out = tmp_path / "run"
    run = _cli if flag == "--epochs" else _cli_here
    message = _one_error_line(run("train", flag, value, "--out", str(out)))
    assert flag.removeprefix("--").replace("-", "_") in message
    assert not out.exists()  # refused before any work: not even the run folder
    with pytest.raises(ValueError) as caught:  # SettingsError is a ValueError
        api()
    assert str(caught.value) == message


def test_latent_dim_zero_no_longer_builds_a_model():
    with pytest.raises(SettingsError, match="latent_dim must be a whole number >= 1, got 0"):
        ConvAutoencoder(latent_dim=0)
    with pytest.raises(SettingsError, match="epochs must be a whole number"):
        train_vae(ConvVAE(), _tiny_loader(), epochs=2.5)


def test_a_code_executing_pickle_is_refused_without_advising_weights_only_false(tmp_path):
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "pwned"
    # The file's payload would create `marker` if it were ever unpickled with full pickle.
    evil_payload = {"format": "helper_lib-checkpoint/1",
                    "model_class": _Evil(f"open({str(marker)!r}, 'w').close()")}
    torch.save(evil_payload, evil)
    message = _one_error_line(_cli("evaluate", str(evil)))
    assert "contains Python objects other than tensors" in message
    assert "will not be loaded" in message and str(evil) in message
    assert "weights_only" not in message
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="will not be loaded"):
        load_checkpoint(evil)


class _Evil:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _copy_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    from helper_lib.assets.datasets import fetch_raw_files

    for f in fetch_raw_files("mnist").iterdir():  # this machine's files (downloaded if need be)
        if not f.name.endswith(".gz"):
            (raw / f.name).symlink_to(f.resolve())
    return raw


@pytest.mark.parametrize(("name", "damage"), [
    ("t10k-images-idx3-ubyte", lambda b: b[: len(b) // 2]),  # truncated
    ("train-labels-idx1-ubyte", lambda b: b"\x00\x00\x09\x09" + b[4:]),  # bad magic number
    ("t10k-labels-idx1-ubyte", lambda b: b""),  # empty
])
def test_a_damaged_idx_file_gives_one_error_naming_the_file(tmp_path, name, damage):
    raw = _copy_raw(tmp_path)
    target = raw / name
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(damage(data))
    with pytest.raises(DatasetCorruptError) as caught:
        get_dataloaders(root=tmp_path)
    assert str(target) in str(caught.value) and "VAE_DATA_DIR" in str(caught.value)
    run = _cli if name.startswith("t10k-images") else _cli_here  # one in its own process
    message = _one_error_line(run("train", "--data-root", str(tmp_path), "--epochs", "1",
                                  "--out", str(tmp_path / "run")))
    assert message == str(caught.value)


def test_save_checkpoint_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_checkpoint(path, ConvVAE(), epoch=1)
    before = path.read_bytes()

    def crash(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, ConvVAE(), epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def _state_epoch(path: Path) -> int:
    try:
        return load_checkpoint(path)["metadata"]["epoch"]
    except CheckpointError:
        return -1  # not there yet


def test_sigkill_mid_epoch_then_the_same_command_resumes_from_the_last_finished_epoch(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "helper_lib", "train", "--train-subset", "512",
               "--batch-size", "32", "--epochs", "6", "--no-progress", "--no-figures",
               "--threads", "1", "--seed", "3"]
    args = [*command, "--out", str(out)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "VAE_PRECISION": "fp32"})
    state = out / "train_state.pt"
    deadline = time.monotonic() + 120
    while _state_epoch(state) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.15)  # into epoch 3 (an epoch of 16 steps takes about a second)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = _state_epoch(state)
    assert 2 <= done < 6, "the kill should land mid-run"
    assert not (out / "model.pt").exists()
    # a temporary file as a kill during a save would leave it: cleaned up on resume
    (out / ".train_state.pt.abc123.tmp").write_bytes(b"partial")

    resumed = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "VAE_PRECISION": "fp32"})
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {state}: {done} of 6 epochs done" in resumed.stdout
    assert not list(out.glob(".*.tmp"))
    final = load_checkpoint(out / "model.pt")["metadata"]
    assert final["epochs"] == 6

    # The same run without the kill ends at exactly the same losses and weights.
    clean = tmp_path / "clean"
    uninterrupted = subprocess.run([*command, "--out", str(clean)], cwd=REPO,
                                   capture_output=True, text=True, timeout=300,
                                   env={**os.environ, "VAE_PRECISION": "fp32"})
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    a, b = load_checkpoint(out / "model.pt"), load_checkpoint(clean / "model.pt")
    assert a["metadata"]["train_final_epoch"] == b["metadata"]["train_final_epoch"]
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(value, b["state_dict"][key], rtol=0, atol=0)
    shutil.rmtree(tmp_path, ignore_errors=True)


def _module_files() -> dict[str, Path]:
    """Every ``.py`` file of helper_lib, subpackages included, by its dotted path relative to
    the package: ``train``, ``assets.datasets``, ``tools.__init__``, ``__main__``."""
    lib = REPO / "helper_lib"
    files = {".".join(p.relative_to(lib).with_suffix("").parts): p
             for p in sorted(lib.rglob("*.py"))}
    on_disk = {Path(d) / f for d, _, names in os.walk(lib) for f in names if f.endswith(".py")}
    assert set(files.values()) == on_disk, "every .py file under the package, at any depth"
    return files


def test_checkpoints_and_train_no_longer_import_each_other():
    """No import cycles inside helper_lib (checkpoints <-> train over History was one), across
    the subpackages too; function-level imports count."""
    import ast

    files = _module_files()
    graph: dict[str, set[str]] = {}
    for name, file in files.items():
        package = name.split(".")[:-1]  # where this module's relative imports start
        deps = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                start = package[: len(package) - node.level + 1]
                target = ".".join([*start, *([node.module] if node.module else [])])
                for alias in node.names:  # `from ..fast import layers`: the module itself
                    full = f"{target}.{alias.name}" if target else alias.name
                    deps.add(full if full in files else target or "__init__")
        graph[name] = {f"{d}.__init__" if f"{d}.__init__" in files else d
                       for d in deps} - {name}
    assert "train" not in graph["checkpoints"] and "history" in graph["checkpoints"]
    assert {"fast.precision", "train"} <= graph["tools.speed"]  # seen through `..`
    assert set(graph) == set(files) and all(d in files for ds in graph.values() for d in ds)

    def reach(start: str, seen: set[str]) -> set[str]:
        for dep in graph.get(start, ()):
            if dep not in seen:
                seen.add(dep)
                reach(dep, seen)
        return seen

    cyclic = sorted(m for m in graph if m in reach(m, set()) and m != "__init__")
    assert cyclic == [], f"import cycles through {cyclic}"


def _readme_section(readme: str, heading: str) -> str:
    start = readme.index(f"\n{heading}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start: end if end != -1 else None]


def test_the_package_docstring_and_the_readme_name_every_module():
    """README's module tables name every module (``data``, ``assets.datasets``); helper_lib's
    docstring names each top-level module and each subpackage, and a subpackage's docstring
    each of its modules."""
    import importlib
    import re

    modules = {name.removesuffix(".__init__") for name in _module_files()} - {"__init__"}
    subpackages = {name for name in modules
                   if (REPO / "helper_lib" / name.replace(".", "/") / "__init__.py").is_file()}
    assert {"fast", "assets", "analysis", "tools"} <= subpackages
    section = _readme_section((REPO / "README.md").read_text(), "## `helper_lib`")
    in_readme = {m for cell in re.findall(r"^\| (`[a-z_.]+`(?:, `[a-z_.]+`)*) \|", section, re.M)
                 for m in re.findall(r"`([a-z_.]+)`", cell)}
    assert modules - subpackages - {"__main__"} - in_readme == set(), "README's module table"
    assert in_readme - modules == set(), "README's module table names no module that is gone"
    for package in ["", *sorted(subpackages)]:  # helper_lib itself, then each subpackage
        where = f"helper_lib.{package}".rstrip(".")
        doc = importlib.import_module(where).__doc__
        named = set(re.findall(rf":mod:`~?{re.escape(where)}\.([a-z_]+)`", doc))
        inside = {m.rpartition(".")[2] for m in modules if m.rpartition(".")[0] == package}
        assert inside - named == set(), f"{where}'s docstring"


def test_export_into_a_folder_it_cannot_make_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    run = _cli_here("export", "--out", str(tmp_path / "afile" / "onnx"))
    assert run.returncode == 2 and run.stdout == ""
    assert _one_error_line(run) == (f"cannot write the models into "
                                    f"{tmp_path / 'afile' / 'onnx'}: Not a directory")
