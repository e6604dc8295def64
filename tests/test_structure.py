"""The library's shape: one place for each thing, the training step in view, public names between
modules, and descriptions that match the code."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

import helper_lib
from helper_lib.analysis.registry import PRETRAINED_NAMES, SWEEP, SWEEP_NAMES
from helper_lib.assets.pretrained import manifest
from helper_lib.tools import cli

LIB = Path(helper_lib.__file__).parent
REPO = LIB.parent


def _module_files(lib: Path) -> dict[str, Path]:
    """Every ``.py`` file of the package at ``lib``, subpackages included, by its dotted path
    relative to ``lib``: ``train``, ``tools.cli``, ``fast.__init__``, ``__main__``."""
    files = {".".join(p.relative_to(lib).with_suffix("").parts): p
             for p in sorted(lib.rglob("*.py"))}
    on_disk = {Path(d) / f for d, _, names in os.walk(lib) for f in names if f.endswith(".py")}
    assert set(files.values()) == on_disk, "every .py file under the package, at any depth"
    return files


def _private_uses(lib: Path) -> list[str]:
    """Where a module of the package at ``lib`` takes another module's private name:
    ``from .evaluate import _x``, ``from ..train import _x``, ``from helper_lib.train import _x``,
    or ``plotting._x`` after ``from .. import plotting`` (``from ..fast import layers``)."""
    files = _module_files(lib)
    found = []
    for name, path in files.items():
        package = name.split(".")[:-1]  # where this module's relative imports start
        modules = {}  # local name -> a module of the package, for `from .. import plotting`
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                start = package[: len(package) - node.level + 1]
                target = ".".join([*start, *([node.module] if node.module else [])])
                written = "." * node.level + (node.module or "")
            elif (node.module or "").split(".")[0] == lib.name:
                target = node.module.removeprefix(lib.name).lstrip(".")
                written = node.module
            else:
                continue  # another package's private names are its own business
            for alias in node.names:
                full = f"{target}.{alias.name}" if target else alias.name
                if alias.name.startswith("_"):
                    found.append(f"{name}: from {written} import {alias.name}")
                elif full in files or f"{full}.__init__" in files:
                    modules[alias.asname or alias.name] = full
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules and node.attr.startswith("_")):
                found.append(f"{name}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    """A name another module needs is public: ``from .evaluate import _inference`` or
    ``plotting._finish`` would hide a dependency behind an underscore, in any subpackage."""
    seen = set(_module_files(LIB))
    assert {"__init__", "train", "fast.layers", "assets.datasets", "analysis.film",
            "tools.cli", "tools.__init__"} <= seen
    assert _private_uses(LIB) == []


def test_a_module_that_would_break_the_rule_is_caught(tmp_path):
    """The scan above can fail: a private name taken across modules and subpackages, by a
    relative or an absolute import or through an imported module, is reported."""
    bad = tmp_path / "helper_lib"
    for folder, files in {"": ["__init__", "evaluate", "plotting", "train"],
                          "fast": ["__init__", "layers"], "tools": ["__init__"]}.items():
        (bad / folder).mkdir(parents=True, exist_ok=True)
        for stem in files:
            (bad / folder / f"{stem}.py").write_text("")
    (bad / "a.py").write_text("from .evaluate import _secret\n")
    (bad / "tools" / "b.py").write_text(
        "from ..evaluate import _inference, evaluate_vae\nfrom .. import plotting\n"
        "from ..fast import layers as fl\nfrom helper_lib.train import _step\n"
        "plotting._finish(fl._FUSION, plotting.finish_figure)\n")
    assert sorted(_private_uses(bad)) == [
        "a: from .evaluate import _secret", "tools.b: fl._FUSION",
        "tools.b: from ..evaluate import _inference", "tools.b: from helper_lib.train import _step",
        "tools.b: plotting._finish"]
    (bad / "tools" / "deeper").mkdir()
    (bad / "tools" / "deeper" / "c.py").write_text("from ...train import _step\n")
    assert "tools.deeper.c: from ...train import _step" in _private_uses(bad)


def test_the_registry_and_the_pretrained_store_name_the_same_checkpoints():
    """Every .pt file the package's manifest lists has a spec, and every spec a file."""
    shipped = {name[:-3] for name in manifest() if name.endswith(".pt")}
    assert set(PRETRAINED_NAMES) == shipped
    assert set(SWEEP_NAMES) == {s.name for s in SWEEP.values()} - {"conv_vae_mnist_fast"}
    assert all(name.startswith("sweep_") for name in SWEEP_NAMES)


def test_one_smoke_switch():
    """Smoke mode is read by utils.smoke_mode alone: no module or notebook parses VAE_SMOKE."""
    parse = re.compile(r"environ(?:\.get\(|\[)\s*\\?[\"']VAE_SMOKE")
    offenders = [str(p.relative_to(REPO)) for p in [*_module_files(LIB).values(),
                                                    *(REPO / "notebooks").glob("*.ipynb")]
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
    """Nor torchvision (1.5 s of every kernel's and command's start) before data is read: the
    grader's runs, a notebook's first cell and ``python -m helper_lib --help`` do without it."""
    code = ("import sys, helper_lib.train, helper_lib.tools.cli, helper_lib.analysis.film\n"
            "import helper_lib.tools.checks\n"
            "print('matplotlib.pyplot' in sys.modules,"
            " 'helper_lib.analysis.film_plots' in sys.modules, 'torchvision' in sys.modules)\n"
            "import helper_lib.plotting\nprint('torchvision' in sys.modules)\n"
            "helper_lib.get_dataloaders('mnist', batch_size=8, train_subset=16)\n"
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False", "False", "False", "True"]


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
